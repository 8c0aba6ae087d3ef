/** Splits a byte stream into newline-terminated lines with a hard cap on line length. */
import { FerryError } from '../errors/index.js';

/**
 * Accumulates chunks and hands back complete lines.
 *
 * Works on bytes, not strings, so a multi-byte UTF-8 character split across
 * two chunks is decoded whole. Line ends are `\n` with an optional `\r`
 * before it (QMP sends `\r\n`); empty lines are dropped. The cap stops a
 * misbehaving peer from making us buffer without bound.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;

  /** @param maxLineBytes longest line accepted, excluding the line end */
  constructor(private readonly maxLineBytes: number) {}

  /**
   * Adds a chunk and returns the lines it completed, in order.
   *
   * @throws FerryError `rpc` when a line exceeds the cap; the splitter is then unusable
   */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break;
      const piece = chunk.subarray(start, nl);
      this.checkSize(this.size + piece.length);
      let line = this.size === 0 ? piece : Buffer.concat([...this.parts, piece], this.size + piece.length);
      this.parts = [];
      this.size = 0;
      if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
      if (line.length > 0) lines.push(line.toString('utf8'));
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.checkSize(this.size + rest.length);
      // Copy: the caller's buffer may be reused by the stream.
      this.parts.push(Buffer.from(rest));
      this.size += rest.length;
    }
    return lines;
  }

  private checkSize(n: number): void {
    if (n > this.maxLineBytes) {
      this.parts = [];
      this.size = 0;
      throw new FerryError('rpc', `QMP message longer than ${this.maxLineBytes} bytes; closing the connection`);
    }
  }
}
