/** Crash-safe file replacement: a reader sees the old content or the new, never a torn file. */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { FerryError } from '../errors/index.js';

/**
 * Replaces `path` with `data` atomically and durably.
 *
 * The temp file lives in the same directory so that `rename` stays within
 * one filesystem (and so is atomic). It is fsynced before the rename so a
 * power cut cannot leave the new name pointing at empty blocks, and the
 * directory after, so the rename itself survives.
 *
 * @throws FerryError `write_failed`
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await mkdir(dir, { recursive: true });
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw new FerryError('write_failed', `cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
  await syncDir(dir, `wrote ${path}`);
}

/**
 * Removes `path` (if present) and makes the removal durable.
 *
 * @throws FerryError `write_failed`
 */
export async function removeFileDurable(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new FerryError('write_failed', `cannot remove ${path}: ${(err as Error).message}`, { cause: err });
  }
  await syncDir(dirname(path), `removed ${path}`);
}

async function syncDir(dir: string, what: string): Promise<void> {
  try {
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch (err) {
    // The change is in place; only its durability across a power cut is in doubt.
    throw new FerryError('write_failed', `${what} but could not sync its directory: ${(err as Error).message}`, { cause: err });
  }
}
