/**
 * The few `qemu-img` calls a storage migration needs: reading an image's
 * format and virtual size, and creating a target image. Arguments are
 * passed as an argv (no shell) and paths are absolute, so a path can never
 * be read as an option or as a `json:` pseudo-filename.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { FerryError } from '../errors/index.js';

const run = promisify(execFile);

/** What `qemu-img info` says about one image. */
export interface ImageInfo {
  format: string;
  virtualSize: number;
  backingFilename?: string;
  backingFormat?: string;
}

function requireAbsolute(path: string, what: string): void {
  if (!path.startsWith('/')) throw new FerryError('invalid_arg', `${what} must be an absolute path, not '${path}'`);
}

/**
 * Reads an image's header. `-U` lets it read an image a running QEMU holds
 * (only the header is read, which is stable). Returns undefined when the
 * file does not exist.
 */
export async function imageInfo(path: string, qemuImg = 'qemu-img'): Promise<ImageInfo | undefined> {
  requireAbsolute(path, 'an image path');
  try {
    const { stdout } = await run(qemuImg, ['info', '-U', '--output=json', path], { timeout: 30_000 });
    const j = JSON.parse(stdout) as { format?: string; 'virtual-size'?: number; 'backing-filename'?: string; 'full-backing-filename'?: string; 'backing-filename-format'?: string };
    return {
      format: j.format ?? 'raw',
      virtualSize: Number(j['virtual-size'] ?? 0),
      ...(j['full-backing-filename'] ?? j['backing-filename'] ? { backingFilename: j['full-backing-filename'] ?? j['backing-filename'] } : {}),
      ...(j['backing-filename-format'] ? { backingFormat: j['backing-filename-format'] } : {}),
    };
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new FerryError('operation_failed', `cannot run ${qemuImg}: it is not installed`);
    if (/No such file or directory/.test(e.stderr ?? '')) return undefined;
    throw new FerryError('operation_failed', `qemu-img cannot read ${path}: ${(e.stderr ?? e.message).trim()}`);
  }
}

/** Creates an image of `format` and `size` bytes, optionally as an overlay on `backing`. */
export async function createImage(path: string, format: 'raw' | 'qcow2', size: number, backing?: { path: string; format: string }, qemuImg = 'qemu-img'): Promise<void> {
  requireAbsolute(path, 'an image path');
  const args = ['create', '-q', '-f', format];
  if (backing) {
    requireAbsolute(backing.path, 'a backing image path');
    args.push('-F', backing.format, '-b', backing.path);
  }
  args.push(path, String(size));
  try {
    await run(qemuImg, args, { timeout: 60_000 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    throw new FerryError('operation_failed', `cannot create the target image ${path}: ${(e.stderr ?? e.message).trim()}`);
  }
}
