/** The per-guest QEMU log (its stdout/stderr): a header per launch and reading back what one launch wrote. */
import { closeSync, fstatSync, openSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';

/** An open log file descriptor plus the offset where this launch's output begins. */
export interface OpenedLog {
  fd: number;
  /** Byte offset just after the header: QEMU's own output starts here. */
  startOffset: number;
}

/**
 * Opens (appending) the QEMU log for a new launch and writes a header naming
 * the time and exact command, as libvirt's per-domain log does: when a guest
 * misbehaves, the first question is always "what was QEMU started with".
 * The fd is handed to the child as stdout and stderr; the caller closes its copy.
 */
export function openLaunchLog(path: string, binary: string, args: readonly string[]): OpenedLog {
  const fd = openSync(path, 'a', 0o600);
  try {
    const header = `${new Date().toISOString()}: starting QEMU (ferryd pid ${process.pid})\n${shellQuote([binary, ...args])}\n`;
    writeSync(fd, header);
    return { fd, startOffset: fstatSync(fd).size };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/**
 * The last `maxLines` lines QEMU wrote after `fromOffset`, for error
 * messages. Reads at most `maxBytes` so a runaway log can't blow up memory.
 */
export async function readLogTail(path: string, fromOffset: number, maxLines = 10, maxBytes = 16 * 1024): Promise<string> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return '';
  }
  try {
    const size = (await fh.stat()).size;
    const start = Math.max(fromOffset, size - maxBytes);
    if (size <= start) return '';
    const buf = Buffer.alloc(size - start);
    await fh.read(buf, 0, buf.length, start);
    const lines = buf.toString('utf8').split('\n').map((l) => l.trimEnd()).filter((l) => l !== '');
    return lines.slice(-maxLines).join('\n');
  } finally {
    await fh.close();
  }
}

/** Quotes an argv for display so it can be pasted into a POSIX shell. */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_./:=@%+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}
