/**
 * One ferryd per run directory. A second daemon on the same directories
 * would fight the first over QEMU's single QMP connection and could start
 * a guest twice, so start-up takes `RUN_DIR/ferryd.pid` exclusively before
 * it touches any guest. A file left by a daemon that died is taken over.
 */
import { open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../errors/index.js';

/** Takes the lock; resolves a function that releases it. */
export async function acquireInstanceLock(runDir: string): Promise<() => Promise<void>> {
  const path = join(runDir, 'ferryd.pid');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o644);
      await fh.writeFile(`${process.pid}\n`);
      await fh.sync();
      await fh.close();
      return async () => {
        const owner = await readFile(path, 'utf8').catch(() => '');
        if (owner.trim() === String(process.pid)) await unlink(path).catch(() => undefined);
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    if (Number.isSafeInteger(pid) && pid > 0 && (await isFerryd(pid))) {
      throw new FerryError('operation_failed', `another ferryd (pid ${pid}) already uses the run directory ${runDir}; stop it first or give this one its own --run-dir and --state-dir`);
    }
    // The daemon that wrote it is gone: take the lock over.
    await unlink(path).catch(() => undefined);
  }
  throw new FerryError('operation_failed', `cannot take the lock ${path}`);
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
