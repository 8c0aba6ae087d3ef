/**
 * libvirt's RPC framing: every message is a 4-byte length (counting
 * itself), a 24-byte header (program, version, procedure, type, serial,
 * status) and an XDR body. The decoder refuses frames that are too short
 * or too long before it buffers them.
 */
import { FerryError } from '../errors/index.js';

/** `virNetMessageType`. */
export const MessageType = { call: 0, reply: 1, message: 2, stream: 3, callWithFds: 4, replyWithFds: 5, streamHole: 6 } as const;
/** `virNetMessageStatus`. */
export const MessageStatus = { ok: 0, error: 1, continue: 2 } as const;

/** The fixed header of every message. */
export interface RpcHeader {
  program: number;
  version: number;
  procedure: number;
  type: number;
  serial: number;
  status: number;
}

/** One decoded message. */
export interface RpcMessage {
  header: RpcHeader;
  body: Buffer;
}

const LEN_BYTES = 4;
export const HEADER_BYTES = 24;
/** Largest message accepted (libvirt's own limit, 32 MiB). */
export const MESSAGE_MAX = 32 * 1024 * 1024;
/** Largest payload of one stream message (libvirt's legacy limit, which every peer accepts). */
export const STREAM_CHUNK_MAX = 262144 - HEADER_BYTES;

/** Encodes a header and body into one frame. */
export function encodeMessage(header: RpcHeader, body: Buffer = Buffer.alloc(0)): Buffer {
  const total = LEN_BYTES + HEADER_BYTES + body.length;
  if (total > MESSAGE_MAX) throw new FerryError('rpc', `a message of ${total} bytes is larger than the protocol allows (${MESSAGE_MAX})`);
  const buf = Buffer.allocUnsafe(LEN_BYTES + HEADER_BYTES);
  buf.writeUInt32BE(total, 0);
  buf.writeUInt32BE(header.program >>> 0, 4);
  buf.writeUInt32BE(header.version >>> 0, 8);
  buf.writeInt32BE(header.procedure | 0, 12);
  buf.writeInt32BE(header.type | 0, 16);
  buf.writeUInt32BE(header.serial >>> 0, 20);
  buf.writeInt32BE(header.status | 0, 24);
  return Buffer.concat([buf, body]);
}

/**
 * A frame that cannot be valid, with the whole messages that came before
 * it in the same read (they deserve their answers before the hang-up).
 */
export class BrokenFrameError extends FerryError {
  constructor(
    message: string,
    readonly decoded: RpcMessage[],
  ) {
    super('rpc', message);
  }
}

/** Splits a byte stream into messages; throws a {@link BrokenFrameError} on a frame that cannot be valid. */
export class RpcDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** Bytes held for a message not yet complete. */
  get pendingBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): RpcMessage[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: RpcMessage[] = [];
    for (;;) {
      if (this.buffered < LEN_BYTES) break;
      const head = this.peek(LEN_BYTES);
      const total = head.readUInt32BE(0);
      if (total < LEN_BYTES + HEADER_BYTES) throw new BrokenFrameError(`a message length of ${total} bytes is shorter than a header`, out);
      if (total > MESSAGE_MAX) throw new BrokenFrameError(`a message of ${total} bytes is larger than the protocol allows (${MESSAGE_MAX})`, out);
      if (this.buffered < total) break;
      const frame = this.take(total);
      out.push({
        header: {
          program: frame.readUInt32BE(4),
          version: frame.readUInt32BE(8),
          procedure: frame.readInt32BE(12),
          type: frame.readInt32BE(16),
          serial: frame.readUInt32BE(20),
          status: frame.readInt32BE(24),
        },
        body: frame.subarray(LEN_BYTES + HEADER_BYTES),
      });
    }
    return out;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!;
    const all = Buffer.concat(this.chunks);
    this.chunks = [all];
    return all;
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const frame = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return frame;
  }
}
