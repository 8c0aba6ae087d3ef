import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { processAlive } from '../support/daemon.js';

const HOLDER = resolve(import.meta.dirname, '..', 'support', 'tether-holder.ts');
const dir = mkdtempSync(join(tmpdir(), 'ferry-tether-'));
const children: ChildProcess[] = [];

afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

/** A process whose name starts with "qemu", as the tether expects of what it kills. */
function fakeQemu(name = 'qemu-fake'): ChildProcess {
  const bin = join(dir, name);
  copyFileSync('/bin/sleep', bin);
  const p = spawn(bin, ['600'], { stdio: 'ignore' });
  children.push(p);
  return p;
}

/** Runs the stand-in daemon, which ties `pid` to itself; resolves once it did. */
async function daemonTying(pid: number, release = false): Promise<ChildProcess> {
  const d = spawn(process.execPath, ['--import', 'tsx', HOLDER, String(pid), ...(release ? ['release'] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(d);
  await new Promise<void>((r) => d.stdout!.on('data', (c: Buffer) => c.toString().includes('tied') && r()));
  return d;
}

/** Resolves once the tether of `pid` has acted and exited (it reads one line, then acts or not). */
async function tetherGone(pid: number): Promise<void> {
  for (;;) {
    const code = await new Promise<number | null>((r) => spawn('pgrep', ['-f', `ferry-tether ${pid}`]).once('exit', r));
    if (code !== 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function exited(p: ChildProcess): Promise<void> {
  return p.exitCode !== null || p.signalCode !== null ? Promise.resolve() : new Promise((r) => p.once('exit', () => r()));
}

describe('tetherToDaemon', () => {
  it('kills the tied QEMU when its daemon dies, however it dies', async () => {
    const qemu = fakeQemu();
    const daemon = await daemonTying(qemu.pid!);
    expect(await processAlive(qemu.pid!)).toBe(true);
    daemon.kill('SIGKILL');
    await exited(qemu);
    expect(qemu.signalCode).toBe('SIGKILL');
  });

  it('lets a released QEMU outlive its daemon', async () => {
    const qemu = fakeQemu();
    const daemon = await daemonTying(qemu.pid!, true);
    daemon.kill('SIGKILL');
    await exited(daemon);
    // The tether has read 'release' and gone: the QEMU still runs.
    await tetherGone(qemu.pid!);
    expect(await processAlive(qemu.pid!)).toBe(true);
  });

  it('does not kill a process that is not a QEMU (the pid was reused)', async () => {
    const other = fakeQemu('not-an-emulator');
    const daemon = await daemonTying(other.pid!);
    daemon.kill('SIGKILL');
    await exited(daemon);
    await tetherGone(other.pid!);
    expect(await processAlive(other.pid!)).toBe(true);
  });
});

process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
