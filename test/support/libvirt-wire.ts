/**
 * libvirt's RPC framing encoded by hand, for tests that talk to ferryd's
 * libvirt listeners byte by byte (hostile input, unknown procedures,
 * keepalive). Independent of src/libvirt on purpose: the test states the
 * protocol as libvirt's `virnetprotocol.x` and `remote_protocol.x` define
 * it, so a mistake shared by the server's encoder cannot hide.
 *
 * A message is a 4-byte big-endian length that counts itself, a 24-byte
 * header (program u32, version u32, procedure i32, type i32, serial u32,
 * status i32) and an XDR body.
 */
import { createConnection, type Socket } from 'node:net';

/** libvirt's `remote` program. */
export const REMOTE_PROGRAM = 0x20008086;
/** libvirt's `keepalive` program ('keep'); PING = 1, PONG = 2, sent as type MESSAGE. */
export const KEEPALIVE_PROGRAM = 0x6b656570;
export const KEEPALIVE_PING = 1;
export const KEEPALIVE_PONG = 2;

/** `virNetMessageType`. */
export const MsgType = { call: 0, reply: 1, message: 2, stream: 3 } as const;
/** `virNetMessageStatus`. */
export const MsgStatus = { ok: 0, error: 1, continue: 2 } as const;

/** A few `virErrorNumber`s the tests check. */
export const VirErr = { noSupport: 3, rpc: 39, noDomain: 42, operationInvalid: 55 } as const;

/** The 24-byte header. */
export interface WireHeader {
  program: number;
  version: number;
  procedure: number;
  type: number;
  serial: number;
  status: number;
}

/** One message as read off the wire. */
export interface WireMessage {
  header: WireHeader;
  body: Buffer;
}

/** Encodes one message; `header` defaults to a call (version 1, status OK). */
export function encodeWire(h: Partial<WireHeader> & { program: number; procedure: number; serial: number }, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(28);
  head.writeUInt32BE(28 + body.length, 0);
  head.writeUInt32BE(h.program >>> 0, 4);
  head.writeUInt32BE((h.version ?? 1) >>> 0, 8);
  head.writeInt32BE(h.procedure | 0, 12);
  head.writeInt32BE(h.type ?? MsgType.call, 16);
  head.writeUInt32BE(h.serial >>> 0, 20);
  head.writeInt32BE(h.status ?? MsgStatus.ok, 24);
  return Buffer.concat([head, body]);
}

/** Splits received bytes into messages (no length limit: the tests only read what the server sends). */
export class WireReader {
  private buf = Buffer.alloc(0);

  push(chunk: Buffer): WireMessage[] {
    this.buf = Buffer.concat([this.buf, chunk]);
    const out: WireMessage[] = [];
    while (this.buf.length >= 4) {
      const total = this.buf.readUInt32BE(0);
      if (total < 28) throw new Error(`the server sent a message of length ${total}, shorter than a header`);
      if (this.buf.length < total) break;
      const f = this.buf.subarray(0, total);
      out.push({
        header: {
          program: f.readUInt32BE(4),
          version: f.readUInt32BE(8),
          procedure: f.readInt32BE(12),
          type: f.readInt32BE(16),
          serial: f.readUInt32BE(20),
          status: f.readInt32BE(24),
        },
        body: Buffer.from(f.subarray(28)),
      });
      this.buf = this.buf.subarray(total);
    }
    return out;
  }
}

/** XDR `string<>`: length, bytes, zero padding to 4. */
export function xdrString(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  const out = Buffer.alloc(4 + Math.ceil(bytes.length / 4) * 4);
  out.writeUInt32BE(bytes.length, 0);
  bytes.copy(out, 4);
  return out;
}

/** XDR `unsigned int`. */
export function xdrUint(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

/** The leading fields of a `remote_error` (code, domain, optional message, level). */
export interface RemoteError {
  code: number;
  domain: number;
  message: string | null;
  level: number;
}

/** Decodes the start of a `remote_error` body; throws when the body is too short for it. */
export function decodeRemoteError(body: Buffer): RemoteError {
  let at = 0;
  const int = () => {
    if (at + 4 > body.length) throw new Error(`remote_error body ends at byte ${body.length}, before offset ${at + 4}`);
    const v = body.readInt32BE(at);
    at += 4;
    return v;
  };
  const code = int();
  const domain = int();
  let message: string | null = null;
  if (int() !== 0) {
    const len = int();
    if (at + len > body.length) throw new Error(`remote_error message of ${len} bytes runs past the body`);
    message = body.toString('utf8', at, at + len);
    at += Math.ceil(len / 4) * 4;
  }
  return { code, domain, message, level: int() };
}

/** What {@link wireExchange} saw. */
export interface WireExchange {
  messages: WireMessage[];
  /** The server closed the connection (or reset it). */
  closed: boolean;
  /** Bytes the reader could not split into messages. */
  readError?: string;
}

/** Where to connect: a unix socket path or a TCP port on 127.0.0.1. */
export type WireTarget = { path: string } | { host: string; port: number };

/**
 * Sends `chunks` on a fresh connection (optionally half-closing after
 * them) and collects what comes back for up to `waitMs`, until the server
 * closes, or until `want` messages arrived (then 200 ms more, to see a
 * close that would follow them).
 */
export function wireExchange(target: WireTarget, chunks: Buffer[], opts: { waitMs?: number; endAfter?: boolean; want?: number } = {}): Promise<WireExchange> {
  const { waitMs = 3_000, endAfter = false, want = Infinity } = opts;
  return new Promise((resolve) => {
    const s: Socket = 'path' in target ? createConnection({ path: target.path }) : createConnection({ host: target.host, port: target.port });
    const reader = new WireReader();
    const res: WireExchange = { messages: [], closed: false };
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(res);
    };
    const timer = setTimeout(finish, waitMs);
    s.on('connect', () => {
      for (const c of chunks) s.write(c);
      if (endAfter) s.end();
    });
    s.on('data', (chunk: Buffer) => {
      try {
        res.messages.push(...reader.push(chunk));
        if (res.messages.length >= want) setTimeout(finish, 200);
      } catch (err) {
        res.readError = (err as Error).message;
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      if (!done) res.closed = true;
      finish();
    });
  });
}
