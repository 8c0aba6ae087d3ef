/**
 * Framing of the native protocol. Every frame is
 * `u32 length (big-endian, of what follows) | u8 kind | payload`.
 * Kind 1 carries one JSON message; kind 2 is reserved for binary stream
 * chunks (`u32 stream id | bytes`) so that bulk data (a tunnelled
 * migration) can share a connection with control messages without being
 * JSON-encoded.
 */
import { FerryError } from '../errors/index.js';

/** Frame kinds. */
export const FrameKind = { json: 1, stream: 2 } as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** Largest frame a peer may send (length field value). Larger ones close the connection. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;

/** A decoded frame. */
export type Frame =
  | { kind: typeof FrameKind.json; message: unknown }
  | { kind: typeof FrameKind.stream; streamId: number; data: Buffer };

/** Encodes one JSON message as a frame. */
export function encodeJsonFrame(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  if (body.length + 1 > MAX_FRAME_BYTES) {
    throw new FerryError('rpc', `message of ${body.length} bytes exceeds the ${MAX_FRAME_BYTES}-byte frame limit`);
  }
  const head = Buffer.allocUnsafe(5);
  head.writeUInt32BE(body.length + 1, 0);
  head.writeUInt8(FrameKind.json, 4);
  return Buffer.concat([head, body]);
}

/** Encodes one binary stream chunk as a frame. */
export function encodeStreamFrame(streamId: number, data: Buffer): Buffer {
  if (data.length + 5 > MAX_FRAME_BYTES) {
    throw new FerryError('rpc', `stream chunk of ${data.length} bytes exceeds the ${MAX_FRAME_BYTES}-byte frame limit`);
  }
  const head = Buffer.allocUnsafe(9);
  head.writeUInt32BE(data.length + 5, 0);
  head.writeUInt8(FrameKind.stream, 4);
  head.writeUInt32BE(streamId >>> 0, 5);
  return Buffer.concat([head, data]);
}

/**
 * Incremental decoder: feed it socket chunks, get whole frames. A protocol
 * violation (oversized length, unknown kind, bad JSON) throws a
 * `FerryError('rpc')`; the caller answers it and closes the connection,
 * because after a framing error the byte stream cannot be trusted.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /**
   * Adds bytes and returns every frame completed by them. With `stopAfter`,
   * decoding stops after the first frame it accepts: what follows stays
   * buffered, unread (see {@link takeRest}).
   */
  push(chunk: Buffer, stopAfter?: (f: Frame) => boolean): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const head = this.peek(5);
      const length = head.readUInt32BE(0);
      if (length < 1 || length > MAX_FRAME_BYTES) {
        throw new FerryError('rpc', `invalid frame length ${length} (limit ${MAX_FRAME_BYTES} bytes)`);
      }
      if (this.buffered >= 5) {
        const kind = head.readUInt8(4);
        if (kind !== FrameKind.json && kind !== FrameKind.stream) {
          throw new FerryError('rpc', `unknown frame kind ${kind}`);
        }
      }
      if (this.buffered < 4 + length) break;
      const frame = this.take(4 + length);
      const decoded = decodeFrameBody(frame.subarray(4));
      frames.push(decoded);
      if (stopAfter?.(decoded)) break;
    }
    return frames;
  }

  /** Removes and returns the bytes buffered but not decoded (a connection turned into a raw tunnel). */
  takeRest(): Buffer {
    const rest = Buffer.concat(this.chunks);
    this.chunks = [];
    this.buffered = 0;
    return rest;
  }

  /** Bytes received but not yet part of a whole frame. */
  get pendingBytes(): number {
    return this.buffered;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0] && this.chunks[0].length >= n) return this.chunks[0];
    const all = Buffer.concat(this.chunks);
    this.chunks = [all];
    return all;
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }
}

function decodeFrameBody(body: Buffer): Frame {
  const kind = body.readUInt8(0);
  if (kind === FrameKind.stream) {
    if (body.length < 5) throw new FerryError('rpc', 'stream frame shorter than its header');
    return { kind, streamId: body.readUInt32BE(1), data: Buffer.from(body.subarray(5)) };
  }
  let message: unknown;
  try {
    message = JSON.parse(body.subarray(1).toString('utf8'));
  } catch {
    throw new FerryError('rpc', 'frame does not hold valid JSON');
  }
  return { kind: FrameKind.json, message };
}
