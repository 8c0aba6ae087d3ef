/**
 * One ferryd per run directory. A second daemon on the same directories
 * would fight the first over QEMU's single QMP connection and could start
 * a guest twice, so start-up takes `RUN_DIR/ferryd.pid` exclusively before
 * it touches any guest. A file left by a daemon that died is taken over.
 *
 * The file is never there half-written: the pid goes into a file of our
 * own first, which is then hard-linked into place (`link` fails if the
 * name exists). Taking over a stale file is guarded by a second file,
 * `ferryd.pid.takeover`, made the same way: only its holder may remove the
 * stale lock, and only after checking it is still the stale one, so two
 * daemons starting at once cannot both remove it and both go on.
 */
import { randomBytes } from 'node:crypto';
import { link, open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FerryError } from '../errors/index.js';

/** Attempts before giving up; each waits a little while another daemon's takeover is in progress. */
const ATTEMPTS = 100;
const RETRY_MS = 20;

/** Takes the lock; resolves a function that releases it. */
export async function acquireInstanceLock(runDir: string): Promise<() => Promise<void>> {
  const path = join(runDir, 'ferryd.pid');
  const content = `${process.pid}\n`;
  const mine = join(runDir, `.ferryd.pid.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(mine, 'wx', 0o644);
  try {
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      if (await linked(mine, path)) {
        return async () => {
          const owner = await readFile(path, 'utf8').catch(() => '');
          if (owner === content) await unlink(path).catch(() => undefined);
        };
      }
      const stale = await readFile(path, 'utf8').catch(() => undefined);
      // Gone meanwhile (its daemon stopped, or a takeover is under way): try again.
      if (stale === undefined) continue;
      const pid = pidIn(stale);
      if (pid !== undefined && (await isFerryd(pid))) {
        throw new FerryError('operation_failed', `another ferryd (pid ${pid}) already uses the run directory ${runDir}; stop it first or give this one its own --run-dir and --state-dir`);
      }
      // The daemon that wrote it is gone: take the lock over, unless another daemon is doing so right now.
      if (!(await takeOver(path, stale, mine))) await sleep(RETRY_MS);
    }
  } finally {
    await unlink(mine).catch(() => undefined);
  }
  throw new FerryError('operation_failed', `cannot take the lock ${path}: other daemons kept changing it`);
}

/**
 * Removes the stale lock `path` whose content was `stale`, holding the
 * takeover guard. Resolves false if another daemon holds the guard (the
 * caller waits and looks again). A guard whose holder is no longer a
 * running ferryd (it died in the few milliseconds of a takeover) is
 * removed so that the next attempt can take it.
 */
async function takeOver(path: string, stale: string, mine: string): Promise<boolean> {
  const guard = `${path}.takeover`;
  if (!(await linked(mine, guard))) {
    const holderText = await readFile(guard, 'utf8').catch(() => undefined);
    const holder = holderText === undefined ? undefined : pidIn(holderText);
    if (holderText !== undefined && (holder === undefined || !(await isFerryd(holder)))) await unlink(guard).catch(() => undefined);
    return false;
  }
  try {
    // Under the guard nobody else removes the lock; a daemon can only create it where there is none.
    // So if it still reads as the stale one, it is: a new owner's file has other content.
    const now = await readFile(path, 'utf8').catch(() => undefined);
    if (now === stale) await unlink(path).catch(() => undefined);
    return true;
  } finally {
    await unlink(guard).catch(() => undefined);
  }
}

/** Hard-links `from` to `to`; false if `to` exists. */
async function linked(from: string, to: string): Promise<boolean> {
  try {
    await link(from, to);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

function pidIn(text: string): number | undefined {
  const pid = Number(text.trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

async function isFerryd(pid: number): Promise<boolean> {
  if (pid === process.pid) return false;
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && /ferryd|daemon\/main\.js/.test(cmdline);
  } catch {
    return false;
  }
}
