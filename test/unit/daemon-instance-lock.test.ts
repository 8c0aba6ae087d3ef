/**
 * The instance lock (RUN_DIR/ferryd.pid): one ferryd per run directory. A
 * lock left by a daemon that died is taken over, and when two daemons start
 * at once on such a stale lock, exactly one of them gets it.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireInstanceLock } from '../../src/daemon/instance-lock.js';

const CONTENDER = resolve(import.meta.dirname, '..', 'support', 'ferryd-lock-contender.ts');

/** A pid that belonged to a process that has ended (and been reaped). */
function deadPid(): number {
  const r = spawnSync('true');
  if (!r.pid) throw new Error('cannot spawn true');
  return r.pid;
}

/** Another "ferryd" process that takes the lock when asked (see test/support/ferryd-lock-contender.ts). */
class Contender {
  private readonly lines: Interface;
  private readonly answers: string[] = [];
  private waiting: Array<(line: string) => void> = [];

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    this.lines = createInterface({ input: child.stdout });
    this.lines.on('line', (l) => {
      const w = this.waiting.shift();
      if (w) w(l);
      else this.answers.push(l);
    });
  }

  static start(runDir: string): Contender {
    return new Contender(spawn(process.execPath, ['--import', 'tsx', CONTENDER, runDir], { stdio: ['pipe', 'pipe', 'pipe'] }));
  }

  /** Sends a command and resolves its answer. */
  ask(command: 'acquire' | 'release'): Promise<string> {
    this.child.stdin.write(`${command}\n`);
    const ready = this.answers.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    return new Promise((r) => this.waiting.push(r));
  }

  stop(): void {
    this.child.kill();
  }
}

let dirs: string[] = [];
const contenders: Contender[] = [];
afterEach(() => {
  for (const c of contenders.splice(0)) c.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

function runDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ferry-lock-'));
  dirs.push(d);
  return d;
}

describe('instance lock', () => {
  it('takes a free run directory, writes its pid, and removes the file on release', async () => {
    const dir = runDir();
    const release = await acquireInstanceLock(dir);
    expect(readFileSync(join(dir, 'ferryd.pid'), 'utf8').trim()).toBe(String(process.pid));
    await release();
    expect(existsSync(join(dir, 'ferryd.pid'))).toBe(false);
  });

  it('takes over a lock whose daemon is gone', async () => {
    const dir = runDir();
    writeFileSync(join(dir, 'ferryd.pid'), `${deadPid()}\n`);
    const release = await acquireInstanceLock(dir);
    expect(readFileSync(join(dir, 'ferryd.pid'), 'utf8').trim()).toBe(String(process.pid));
    await release();
  });

  it('refuses a run directory that a live ferryd holds, naming its pid', async () => {
    const dir = runDir();
    const other = Contender.start(dir);
    contenders.push(other);
    expect(await other.ask('acquire')).toBe('won');
    const holder = readFileSync(join(dir, 'ferryd.pid'), 'utf8').trim();
    await expect(acquireInstanceLock(dir)).rejects.toMatchObject({ code: 'operation_failed', message: expect.stringContaining(`pid ${holder}`) });
    expect(await other.ask('release')).toBe('released');
  });

  it('lets exactly one of two ferryd starting at the same time take over a stale lock', async () => {
    const dir = runDir();
    const a = Contender.start(dir);
    const b = Contender.start(dir);
    contenders.push(a, b);
    // Several rounds: the two reach the stale file within the same few milliseconds, in varying order.
    for (let round = 0; round < 15; round++) {
      writeFileSync(join(dir, 'ferryd.pid'), `${deadPid()}\n`);
      const answers = await Promise.all([a.ask('acquire'), b.ask('acquire')]);
      const winners = answers.filter((x) => x === 'won');
      expect(winners, `round ${round}: ${answers.join(' / ')}`).toHaveLength(1);
      const loser = answers.find((x) => x !== 'won');
      expect(loser).toMatch(/^lost operation_failed: another ferryd \(pid \d+\) already uses the run directory/);
      const winner = answers[0] === 'won' ? a : b;
      const pid = Number(readFileSync(join(dir, 'ferryd.pid'), 'utf8').trim());
      expect(loser).toContain(`pid ${pid}`);
      expect(await winner.ask('release')).toBe('released');
    }
  }, 60_000);
});
