/**
 * Hostile input for ferryd's libvirt-protocol listener, like `protocol.ts`
 * and `drive.ts` for the native one: each case is bytes sent on one fresh
 * connection (random bytes, random headers, every procedure of the table
 * with random or truncated bodies before and after a valid CONNECT_OPEN,
 * impossible and huge lengths, unknown programs, stream messages for
 * serials that have no stream, keepalive traffic, frames split into small
 * pieces). Every message the daemon sends back is read with the
 * hand-written decoders of `test/support/libvirt-wire.ts` and this file
 * (not src/libvirt's), and must be a well-formed reply, keepalive, stream
 * message or event: an error carries a `remote_error` that decodes exactly,
 * with a libvirt number from the error table. Where the outcome is known
 * (a truncated body, an unknown procedure, a frame that cannot be valid)
 * the case checks that outcome too.
 *
 * src/libvirt's encoders and the procedure table are used only to *build*
 * valid frames and, for a successful reply, to check the body has the
 * table's shape; what counts as an error reply, a known code, a valid
 * frame or a closed connection is decided here.
 */
import { createConnection } from 'node:net';
import { ERROR_CODES } from '../../src/errors/index.js';
import { decode, type Xdr } from '../../src/libvirt/xdr.js';
import { EVENT_MESSAGES, PROCEDURES } from '../../src/libvirt/procedures.js';
import { encodeWire, KEEPALIVE_PROGRAM, MsgStatus, MsgType, REMOTE_PROGRAM, WireReader, xdrString, xdrUint, type WireMessage } from '../support/libvirt-wire.js';
import { Rng } from './rng.js';

/** libvirt's message size limit (32 MiB) and the smallest possible message (length word and header). */
const MESSAGE_MAX = 32 * 1024 * 1024;
const MESSAGE_MIN = 28;
/** virErrorNumbers the daemon may answer: those of Ferry's error table. */
const KNOWN_CODES: ReadonlySet<number> = new Set(Object.values(ERROR_CODES).map((e) => e.number));
const CODE_NAME: ReadonlyMap<number, string> = new Map(Object.entries(ERROR_CODES).map(([name, e]) => [e.number as number, name]));
const VIR_ERR = { noSupport: 3, operationDenied: 29, rpc: 39, operationInvalid: 55, resourceBusy: 87 } as const;

/** The table's procedures by number: name, and whether the arguments are void. */
const TABLE = Object.entries(PROCEDURES).map(([name, p]) => ({ name, number: p.number, args: p.args as Xdr<unknown>, ret: p.ret as Xdr<unknown> }));
const BY_NUMBER = new Map(TABLE.map((p) => [p.number, p]));
const EVENT_NUMBERS = new Set(Object.values(EVENT_MESSAGES).map((e) => e.number));

/** One frame of a case: the bytes, and what the case knows about the call in it. */
interface Sent {
  serial: number;
  procedure: number;
  program: number;
  /** The header's version, when not 1: an error reply to an unknown program or version echoes it, as libvirtd's does. */
  version?: number;
  /** Error code the reply must carry (one of), or 'ok' for a success, or 'any' for either. */
  expect: 'any' | 'ok' | readonly number[];
}

export interface LibvirtCase {
  kind: string;
  /** Pieces written one after the other. */
  pieces: Buffer[];
  /** Calls of the remote (or another) program in the pieces, whose replies are checked. */
  calls: Sent[];
  /** Serials of stream CONTINUE messages for which no stream exists: each gets one stream error. */
  strayStreams: number[];
  /** Keepalive PINGs sent: each gets a PONG. */
  pings: number;
  /** The framing breaks at the end: an rpc error reply (serial 0) and a close must follow. */
  framingError: boolean;
  /** The framing may or may not break (random bytes): the daemon may close, or not. */
  framingUnknown: boolean;
  /** Close our side right after writing. */
  endEarly: boolean;
}

// ---------------------------------------------------------------------------
// Building frames

const call = (procedure: number, serial: number, body: Buffer, program = REMOTE_PROGRAM, version = 1) => encodeWire({ program, version, procedure, serial, type: MsgType.call, status: MsgStatus.ok }, body);
const AUTH_LIST_BODY = Buffer.alloc(0);
/** remote_connect_open_args { remote_string name = "qemu:///system"; unsigned flags = 0 } */
const OPEN_BODY = Buffer.concat([xdrUint(1), xdrString('qemu:///system'), xdrUint(0)]);

/** Random XDR-ish tokens: the pieces libvirt arguments are made of. */
function token(rng: Rng): Buffer {
  switch (rng.int(0, 8)) {
    case 0: return xdrUint(0);
    case 1: return xdrUint(1);
    case 2: return xdrUint(rng.int(0, 20));
    case 3: return xdrUint(rng.int(0, 0xffffffff));
    case 4: return xdrString(Buffer.from(rng.nasty(24), 'utf8').toString('utf8'));
    case 5: return xdrString(`fuzz-${rng.int(0, 99)}`);
    case 6: return rng.bytes(16);
    case 7: return xdrString(rng.pick(['qemu:///system', 'tcp://127.0.0.1:1', 'vda', 'migrate_disks', 'bandwidth', '{"ferry":1,"phase":"begin"}']));
    default: return Buffer.concat([xdrString(rng.pick(['bandwidth', 'migrate_uri', 'migrate_disks', 'destination_xml', 'x'])), xdrUint(rng.int(1, 7)), xdrUint(rng.int(0, 3))]);
  }
}

function soup(rng: Rng): Buffer {
  return Buffer.concat(Array.from({ length: rng.int(0, 8) }, () => token(rng)));
}

/**
 * Bodies that decode as each procedure's arguments, found by trying token
 * soups against the table (the table's decoder only filters what to send).
 */
const VALID_BODIES: ReadonlyMap<number, Buffer[]> = (() => {
  const rng = new Rng(0x11b71);
  const out = new Map<number, Buffer[]>();
  for (const p of TABLE) {
    const found: Buffer[] = [];
    for (let i = 0; i < 3000 && found.length < 6; i++) {
      const body = soup(rng);
      try {
        decode(p.args, body);
        found.push(body);
      } catch {
        // Not this shape.
      }
    }
    out.set(p.number, found);
  }
  return out;
})();

/** Procedures for which a valid body was found (the rest are fuzzed with random bodies only). */
export function proceduresWithValidBodies(): number {
  return [...VALID_BODIES.values()].filter((b) => b.length > 0).length;
}

/** Procedures whose handlers may do real work with valid random arguments; they are sent only with broken bodies. */
const NO_VALID_CALLS = new Set<number>([
  // Peer-to-peer perform dials whatever URI the soup produced.
  PROCEDURES.DOMAIN_MIGRATE_PERFORM3_PARAMS.number,
]);

/** The fuzz case number `i` of seed `seed`. */
export function libvirtCase(seed: number, i: number): LibvirtCase {
  const rng = new Rng(seed * 9_000_011 + i);
  const c: LibvirtCase = { kind: '', pieces: [], calls: [], strayStreams: [], pings: 0, framingError: false, framingUnknown: false, endEarly: false };
  let serial = rng.int(1, 1_000_000);
  const open = rng.next() < 0.6;
  const add = (frame: Buffer, sent?: Omit<Sent, 'serial'> & { serial?: number }) => {
    c.pieces.push(frame);
    if (sent) c.calls.push({ serial: sent.serial ?? frame.readUInt32BE(20), procedure: sent.procedure, program: sent.program, version: frame.readUInt32BE(8), expect: sent.expect });
  };
  const handshake = () => {
    add(call(66, serial, AUTH_LIST_BODY), { procedure: 66, program: REMOTE_PROGRAM, expect: 'ok' });
    serial++;
    add(call(1, serial, OPEN_BODY), { procedure: 1, program: REMOTE_PROGRAM, expect: 'ok' });
    serial++;
  };
  /** What a call with a body that cannot decode must be answered: not supported, not open, read-only, busy, or the rpc error. */
  const brokenExpect = (procedure: number, opened: boolean): readonly number[] => {
    const p = BY_NUMBER.get(procedure);
    if (!p) return [VIR_ERR.noSupport];
    const beforeOpenOk = procedure === 1 || procedure === 60 || procedure === 66;
    return [VIR_ERR.noSupport, VIR_ERR.rpc, VIR_ERR.resourceBusy, VIR_ERR.operationDenied, ...(opened || beforeOpenOk ? [] : [VIR_ERR.operationInvalid])];
  };
  const anyProcedure = () => (rng.next() < 0.85 ? rng.pick(TABLE).number : rng.pick([0, -1, 2 ** 31 - 1, rng.int(400, 100_000), 318, 363]));

  const k = rng.int(0, 14);
  switch (k) {
    case 0: {
      c.kind = 'random bytes';
      c.pieces.push(rng.bytes(rng.int(0, 2048)));
      c.framingUnknown = true;
      c.endEarly = rng.next() < 0.5;
      break;
    }
    case 1: {
      c.kind = 'random header, random body';
      if (open) handshake();
      const body = rng.bytes(rng.int(0, 64));
      const program = rng.pick([REMOTE_PROGRAM, REMOTE_PROGRAM, KEEPALIVE_PROGRAM, rng.int(0, 0xffffffff)]);
      const head = Buffer.alloc(28);
      head.writeUInt32BE(28 + body.length, 0);
      head.writeUInt32BE(program >>> 0, 4);
      head.writeUInt32BE(rng.pick([1, 1, 0, 2, rng.int(0, 0xffffffff)]) >>> 0, 8);
      head.writeInt32BE(rng.pick([anyProcedure(), rng.int(-2147483648, 2147483647)]) | 0, 12);
      head.writeInt32BE(rng.pick([0, 1, 2, 3, 4, 5, 6, rng.int(-2147483648, 2147483647)]) | 0, 16);
      head.writeUInt32BE(rng.int(0, 0xffffffff) >>> 0, 20);
      head.writeInt32BE(rng.pick([0, 1, 2, rng.int(-2147483648, 2147483647)]) | 0, 24);
      c.pieces.push(Buffer.concat([head, body]));
      break;
    }
    case 2:
    case 3: {
      // Every procedure of the table, with random bodies, before or after open.
      c.kind = `random bodies for table procedures (${open ? 'after' : 'before'} open)`;
      if (open) handshake();
      for (let n = rng.int(1, 6); n > 0; n--) {
        const procedure = anyProcedure();
        add(call(procedure, serial++, rng.next() < 0.5 ? rng.bytes(rng.int(0, 96)) : soup(rng)), { procedure, program: REMOTE_PROGRAM, expect: 'any' });
      }
      break;
    }
    case 4: {
      c.kind = `valid bodies for table procedures (${open ? 'after' : 'before'} open)`;
      if (open) handshake();
      for (let n = rng.int(1, 4); n > 0; n--) {
        const p = rng.pick(TABLE);
        const bodies = VALID_BODIES.get(p.number)!;
        if (bodies.length === 0 || NO_VALID_CALLS.has(p.number)) continue;
        add(call(p.number, serial++, rng.pick(bodies)), { procedure: p.number, program: REMOTE_PROGRAM, expect: 'any' });
      }
      break;
    }
    case 5: {
      c.kind = `truncated or overlong bodies (${open ? 'after' : 'before'} open)`;
      if (open) handshake();
      for (let n = rng.int(1, 4); n > 0; n--) {
        const p = rng.pick(TABLE);
        const bodies = VALID_BODIES.get(p.number)!;
        if (bodies.length === 0) continue;
        const valid = rng.pick(bodies);
        // A strict prefix of a valid body cannot decode; neither can a valid body with bytes after it.
        const broken = valid.length > 0 && rng.next() < 0.6 ? valid.subarray(0, rng.int(0, valid.length - 1)) : Buffer.concat([valid, rng.bytes(rng.pick([1, 3, 4, 8]))]);
        add(call(p.number, serial++, broken), { procedure: p.number, program: REMOTE_PROGRAM, expect: brokenExpect(p.number, open) });
      }
      break;
    }
    case 6: {
      c.kind = 'declared length above 32 MiB';
      if (open) handshake();
      const head = call(rng.pick(TABLE).number, serial++, Buffer.alloc(0));
      head.writeUInt32BE(rng.pick([MESSAGE_MAX + 1, MESSAGE_MAX + rng.int(2, 1 << 30), 0xffffffff]), 0);
      c.pieces.push(Buffer.concat([head, rng.bytes(rng.int(0, 256))]));
      c.framingError = true;
      break;
    }
    case 7: {
      c.kind = 'declared length below 28';
      if (open) handshake();
      const len = rng.int(0, MESSAGE_MIN - 1);
      const b = Buffer.alloc(4);
      b.writeUInt32BE(len, 0);
      c.pieces.push(Buffer.concat([b, rng.bytes(rng.int(0, 40))]));
      c.framingError = true;
      break;
    }
    case 8: {
      c.kind = 'huge declared length, never sent';
      if (open) handshake();
      const total = rng.int(1 << 20, MESSAGE_MAX);
      const head = call(rng.pick(TABLE).number, serial++, Buffer.alloc(0));
      head.writeUInt32BE(total, 0);
      c.pieces.push(Buffer.concat([head, rng.bytes(rng.int(0, 64 * 1024))]));
      c.endEarly = rng.next() < 0.5;
      break;
    }
    case 9: {
      c.kind = 'unknown program or version';
      if (open) handshake();
      for (let n = rng.int(1, 4); n > 0; n--) {
        let program = rng.int(0, 0xffffffff);
        if (program === REMOTE_PROGRAM || program === KEEPALIVE_PROGRAM) program = 0x12345678;
        const remoteWrongVersion = rng.next() < 0.3;
        add(call(anyProcedure(), serial++, rng.bytes(rng.int(0, 32)), remoteWrongVersion ? REMOTE_PROGRAM : program, remoteWrongVersion ? rng.pick([0, 2, 0xffffffff]) : 1), {
          procedure: -1,
          program: remoteWrongVersion ? REMOTE_PROGRAM : program,
          expect: [VIR_ERR.rpc],
        });
      }
      break;
    }
    case 10: {
      c.kind = `stream messages for serials without a stream (${open ? 'after' : 'before'} open)`;
      if (open) handshake();
      for (let n = rng.int(1, 5); n > 0; n--) {
        const s = serial++;
        const status = rng.pick([MsgStatus.continue, MsgStatus.continue, MsgStatus.ok, MsgStatus.error]);
        c.pieces.push(encodeWire({ program: REMOTE_PROGRAM, procedure: rng.pick([304, 0, anyProcedure()]), serial: s, type: MsgType.stream, status }, rng.bytes(rng.int(status === MsgStatus.continue ? 1 : 0, 200))));
        if (status === MsgStatus.continue) c.strayStreams.push(s);
      }
      break;
    }
    case 11: {
      c.kind = 'keepalive traffic';
      if (open) handshake();
      for (let n = rng.int(1, 5); n > 0; n--) {
        const proc = rng.pick([1, 1, 2, 0, 3, rng.int(4, 1000)]);
        const type = rng.pick([MsgType.message, MsgType.message, MsgType.call]);
        c.pieces.push(encodeWire({ program: KEEPALIVE_PROGRAM, procedure: proc, serial: rng.pick([0, rng.int(1, 1000)]), type }, proc === 1 && rng.next() < 0.8 ? Buffer.alloc(0) : rng.bytes(rng.int(0, 16))));
        // Only libvirt's own PING (version 1, type MESSAGE) is keepalive: that one, and only that one, gets a PONG.
        if (proc === 1 && type === MsgType.message) c.pings++;
      }
      break;
    }
    case 12: {
      c.kind = 'frames split into small pieces';
      handshake();
      for (let n = rng.int(1, 5); n > 0; n--) {
        const p = rng.pick(TABLE);
        const bodies = VALID_BODIES.get(p.number)!;
        const useValid = bodies.length > 0 && !NO_VALID_CALLS.has(p.number) && rng.next() < 0.5;
        add(call(p.number, serial++, useValid ? rng.pick(bodies) : soup(rng)), { procedure: p.number, program: REMOTE_PROGRAM, expect: 'any' });
      }
      const all = Buffer.concat(c.pieces);
      c.pieces = [];
      for (let at = 0; at < all.length; ) {
        const n = rng.int(1, 40);
        c.pieces.push(all.subarray(at, at + n));
        at += n;
      }
      break;
    }
    case 13: {
      c.kind = 'too many calls in flight';
      handshake();
      // More calls than the 64 a connection may have in flight, in one write: each is answered, done or refused as busy.
      for (let n = rng.int(65, 130); n > 0; n--) add(call(PROCEDURES.CONNECT_LIST_ALL_DOMAINS.number, serial++, Buffer.concat([xdrUint(1), xdrUint(0)])), { procedure: 273, program: REMOTE_PROGRAM, expect: 'any' });
      c.pieces = [Buffer.concat(c.pieces)];
      break;
    }
    default: {
      c.kind = 'valid frame, then garbage';
      handshake();
      add(call(PROCEDURES.CONNECT_GET_HOSTNAME.number, serial++, Buffer.alloc(0)), { procedure: 59, program: REMOTE_PROGRAM, expect: 'ok' });
      const b = Buffer.alloc(4);
      b.writeUInt32BE(rng.pick([0, 5, 27, MESSAGE_MAX + 1]), 0);
      c.pieces.push(b);
      c.framingError = true;
      break;
    }
  }
  if (c.pieces.length === 0) c.pieces.push(Buffer.alloc(0));
  return c;
}

// ---------------------------------------------------------------------------
// Checking what the daemon sends

/** A `remote_error` read independently of src/libvirt; throws unless the body is exactly one. */
export function readRemoteError(body: Buffer): { code: number; domain: number; message: string | null; level: number } {
  let at = 0;
  const need = (n: number) => {
    if (at + n > body.length) throw new Error(`remote_error ends at byte ${body.length}, needs ${at + n}`);
  };
  const int = () => {
    need(4);
    const v = body.readInt32BE(at);
    at += 4;
    return v;
  };
  const str = () => {
    const n = body.readUInt32BE((need(4), at));
    at += 4;
    if (n > 1048576) throw new Error(`remote_error string of ${n} bytes`);
    need((n + 3) & ~3);
    const s = body.toString('utf8', at, at + n);
    for (let i = n; i < ((n + 3) & ~3); i++) if (body[at + i] !== 0) throw new Error('remote_error string padding is not zero');
    at += (n + 3) & ~3;
    return s;
  };
  const opt = <T>(read: () => T): T | null => {
    const m = int();
    if (m !== 0 && m !== 1) throw new Error(`remote_error optional marked ${m}`);
    return m === 1 ? read() : null;
  };
  const code = int();
  const domain = int();
  const message = opt(str);
  const level = int();
  opt(() => {
    str();
    need(16);
    at += 16;
    return int();
  });
  opt(str);
  opt(str);
  opt(str);
  int();
  int();
  opt(() => {
    str();
    need(16);
    at += 16;
    return 0;
  });
  if (at !== body.length) throw new Error(`${body.length - at} bytes after the remote_error`);
  return { code, domain, message, level };
}

/** What one case saw. */
interface Observed {
  messages: WireMessage[];
  closedByServer: boolean;
  readError?: string;
}

export interface LibvirtFuzzReport {
  cases: number;
  findings: string[];
  /** Error codes seen (by Ferry's name), with counts. */
  codes: Record<string, number>;
  /** Successful replies seen. */
  okReplies: number;
  /** Case kinds run, with counts. */
  kinds: Record<string, number>;
  /** Messages of internal errors (VIR_ERR_INTERNAL_ERROR) hostile input provoked, distinct, at most 20. */
  internal: string[];
}

function exchange(socketPath: string, c: LibvirtCase, idleMs: number): Promise<Observed> {
  return new Promise((resolve) => {
    const s = createConnection({ path: socketPath });
    const reader = new WireReader();
    const seen: Observed = { messages: [], closedByServer: false };
    let finished = false;
    let idle: NodeJS.Timeout | undefined;
    let writing = true;
    const outstanding = new Set(c.calls.map((x) => x.serial));
    const done = () => {
      if (finished) return;
      finished = true;
      clearTimeout(idle);
      clearTimeout(cap);
      s.destroy();
      resolve(seen);
    };
    const complete = () => !writing && outstanding.size === 0 && c.strayStreams.length === 0 && c.pings === 0 && !c.framingError;
    const arm = () => {
      clearTimeout(idle);
      // Everything expected arrived: a short grace for anything that should not come; else wait for silence.
      idle = setTimeout(done, complete() ? 30 : outstanding.size > 0 ? Math.max(idleMs, 3_000) : idleMs);
    };
    const cap = setTimeout(done, 15_000);
    s.on('error', () => undefined);
    s.on('close', () => {
      if (!finished) seen.closedByServer = true;
      done();
    });
    s.on('data', (chunk: Buffer) => {
      try {
        for (const m of reader.push(chunk)) {
          seen.messages.push(m);
          if (m.header.type === MsgType.reply) outstanding.delete(m.header.serial);
        }
      } catch (err) {
        seen.readError = (err as Error).message;
      }
      arm();
    });
    s.once('connect', async () => {
      for (const p of c.pieces) {
        if (s.destroyed) break;
        s.write(p);
        if (c.pieces.length > 1) await new Promise((r) => setImmediate(r));
      }
      writing = false;
      if (c.endEarly) s.end();
      arm();
    });
  });
}

/** Checks one case's messages; returns the findings. */
function check(c: LibvirtCase, o: Observed, report: LibvirtFuzzReport, label: string): string[] {
  const f: string[] = [];
  const note = (what: string) => f.push(`${label}: ${what}`);
  if (o.readError) note(`the daemon's bytes do not split into messages: ${o.readError}`);
  const sentBySerial = new Map<number, Sent[]>();
  for (const s of c.calls) sentBySerial.set(s.serial, [...(sentBySerial.get(s.serial) ?? []), s]);
  const replies = new Map<number, number>();
  let pongs = 0;
  let framingReply = false;
  const stray = new Set(c.strayStreams);
  const streamErrors = new Map<number, number>();
  const codeOf = (m: WireMessage, what: string): number | null => {
    try {
      const e = readRemoteError(m.body);
      if (!KNOWN_CODES.has(e.code)) note(`${what}: error code ${e.code} is not in the error table (${JSON.stringify(e.message)})`);
      if (e.level !== 2) note(`${what}: error level ${e.level}, not VIR_ERR_ERROR (2)`);
      if (e.message === null || e.message === '') note(`${what}: error without a message`);
      if (e.domain !== 7 && e.domain !== 10) note(`${what}: error domain ${e.domain}`);
      if (e.code === 1 && report.internal.length < 20 && !report.internal.includes(String(e.message))) report.internal.push(String(e.message));
      const name = CODE_NAME.get(e.code) ?? String(e.code);
      report.codes[name] = (report.codes[name] ?? 0) + 1;
      return e.code;
    } catch (err) {
      note(`${what}: the error body is not a remote_error: ${(err as Error).message}`);
      return null;
    }
  };
  for (const m of o.messages) {
    const h = m.header;
    const what = `message ${JSON.stringify(h)}`;
    if (m.body.length + 28 > MESSAGE_MAX) note(`${what}: larger than 32 MiB`);
    const echoesVersion = h.type === MsgType.reply && h.status === MsgStatus.error && ((sentBySerial.get(h.serial) ?? []).some((x) => x.version === h.version) || c.kind.startsWith('random'));
    if (h.version !== 1 && !echoesVersion) note(`${what}: version ${h.version}`);
    if (h.program === KEEPALIVE_PROGRAM) {
      if (h.type !== MsgType.message || (h.procedure !== 1 && h.procedure !== 2) || m.body.length !== 0 || h.status !== 0) note(`${what}: not a keepalive PING or PONG`);
      if (h.procedure === 2) pongs++;
      continue;
    }
    if (h.type === MsgType.reply) {
      if (h.serial === 0 && h.procedure === 0 && h.status === MsgStatus.error && (c.framingError || c.framingUnknown) && !sentBySerial.has(0)) {
        framingReply = true;
        if (codeOf(m, `${what} (framing error reply)`) !== VIR_ERR.rpc) note(`${what}: a framing error is not answered with VIR_ERR_RPC`);
        continue;
      }
      const sent = sentBySerial.get(h.serial);
      const count = (replies.get(h.serial) ?? 0) + 1;
      replies.set(h.serial, count);
      if (!sent && !c.framingUnknown && !c.kind.startsWith('random header')) note(`${what}: a reply to serial ${h.serial}, which no call had`);
      if (sent && count > sent.length) note(`${what}: more replies to serial ${h.serial} than calls`);
      const s = sent?.find((x) => x.procedure === h.procedure || x.procedure === -1) ?? sent?.[0];
      if (s && s.procedure !== -1 && h.procedure !== s.procedure) note(`${what}: the reply names procedure ${h.procedure}, the call was ${s.procedure}`);
      if (s && h.program !== s.program) note(`${what}: the reply names program ${h.program.toString(16)}, the call was ${s.program.toString(16)}`);
      if (h.status === MsgStatus.error) {
        const code = codeOf(m, what);
        if (s && s.expect === 'ok') note(`${what}: ${c.kind}: expected success, got error ${code}`);
        if (s && Array.isArray(s.expect) && code !== null && !s.expect.includes(code)) note(`${what}: expected error ${(s.expect as number[]).join(' or ')}, got ${code}`);
      } else if (h.status === MsgStatus.ok) {
        report.okReplies++;
        if (s && Array.isArray(s.expect)) note(`${what}: expected error ${(s.expect as number[]).join(' or ')}, got success`);
        if (m.body.length % 4 !== 0) note(`${what}: a body of ${m.body.length} bytes, not a multiple of four`);
        const p = BY_NUMBER.get(h.procedure);
        if (!p) note(`${what}: success for procedure ${h.procedure}, which is not in the table`);
        else {
          try {
            decode(p.ret, m.body);
          } catch (err) {
            note(`${what}: the success body is not ${p.name}'s reply: ${(err as Error).message}`);
          }
        }
      } else note(`${what}: reply status ${h.status}`);
      continue;
    }
    if (h.type === MsgType.stream) {
      if (h.program !== REMOTE_PROGRAM) note(`${what}: a stream message of another program`);
      if (!stray.has(h.serial) && !c.kind.startsWith('random')) note(`${what}: a stream message for serial ${h.serial}, which has no stream`);
      if (h.status === MsgStatus.error) codeOf(m, what);
      else note(`${what}: a stream message with status ${h.status} for a stream that never was`);
      streamErrors.set(h.serial, (streamErrors.get(h.serial) ?? 0) + 1);
      continue;
    }
    if (h.type === MsgType.message) {
      if (h.program !== REMOTE_PROGRAM || !EVENT_NUMBERS.has(h.procedure)) note(`${what}: an unsolicited message that is no event`);
      continue;
    }
    note(`${what}: message type ${h.type}`);
  }
  // Outcomes the case knows.
  if (c.framingError) {
    if (!framingReply) note('a framing error got no rpc error reply');
    if (!o.closedByServer) note('the daemon kept a connection whose framing broke');
  }
  if (!c.framingError && !c.framingUnknown && o.closedByServer && !c.endEarly && !c.kind.startsWith('huge declared')) note('the daemon closed a connection whose framing was valid');
  if (!o.closedByServer) {
    for (const s of c.calls) if (!replies.has(s.serial)) note(`no reply to serial ${s.serial} (procedure ${s.procedure}) of ${c.kind}`);
    for (const s of c.strayStreams) if ((streamErrors.get(s) ?? 0) !== 1) note(`stream data for serial ${s} without a stream got ${streamErrors.get(s) ?? 0} stream errors, not one`);
    if (pongs < c.pings) note(`${c.pings} PINGs got ${pongs} PONGs`);
    if (pongs > c.pings) note(`${pongs} PONGs for ${c.pings} PINGs: a keepalive message that is not libvirt's PING (another type) was answered`);
  }
  return f;
}

/** Runs `count` libvirt-protocol cases of `seed` against the socket, `parallel` connections at a time. */
export async function fuzzLibvirt(socketPath: string, seed: number, count: number, parallel = 8, idleMs = 150): Promise<LibvirtFuzzReport> {
  const report: LibvirtFuzzReport = { cases: 0, findings: [], codes: {}, okReplies: 0, kinds: {}, internal: [] };
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const c = libvirtCase(seed, i);
      const label = `libvirt case ${seed}/${i} (${c.kind})`;
      const o = await exchange(socketPath, c, idleMs);
      report.findings.push(...check(c, o, report, label));
      report.kinds[c.kind] = (report.kinds[c.kind] ?? 0) + 1;
      report.cases++;
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return report;
}

/** A domain as CONNECT_LIST_ALL_DOMAINS lists it. */
export interface ListedDomain {
  name: string;
  uuid: string;
  id: number;
}

/**
 * A fresh connection after the fuzz: AUTH_LIST, CONNECT_OPEN and
 * CONNECT_LIST_ALL_DOMAINS must succeed; returns the domains listed (read
 * here, byte by byte). Throws with what went wrong otherwise.
 */
export async function libvirtHealthCheck(socketPath: string): Promise<ListedDomain[]> {
  const c: LibvirtCase = {
    kind: 'health check',
    pieces: [call(66, 1, AUTH_LIST_BODY), call(1, 2, OPEN_BODY), call(273, 3, Buffer.concat([xdrUint(1), xdrUint(0)]))],
    calls: [
      { serial: 1, procedure: 66, program: REMOTE_PROGRAM, expect: 'ok' },
      { serial: 2, procedure: 1, program: REMOTE_PROGRAM, expect: 'ok' },
      { serial: 3, procedure: 273, program: REMOTE_PROGRAM, expect: 'ok' },
    ],
    strayStreams: [],
    pings: 0,
    framingError: false,
    framingUnknown: false,
    endEarly: false,
  };
  const o = await exchange(socketPath, c, 2_000);
  const report: LibvirtFuzzReport = { cases: 0, findings: [], codes: {}, okReplies: 0, kinds: {}, internal: [] };
  const findings = check(c, o, report, 'health check');
  if (findings.length > 0) throw new Error(findings.join('\n'));
  const list = o.messages.find((m) => m.header.serial === 3 && m.header.type === MsgType.reply);
  if (!list || list.header.status !== MsgStatus.ok) throw new Error('CONNECT_LIST_ALL_DOMAINS got no successful reply');
  // remote_connect_list_all_domains_ret: remote_nonnull_domain domains<>, unsigned int ret
  const b = list.body;
  let at = 0;
  const n = b.readUInt32BE(at);
  at += 4;
  const out: ListedDomain[] = [];
  for (let i = 0; i < n; i++) {
    const len = b.readUInt32BE(at);
    const name = b.toString('utf8', at + 4, at + 4 + len);
    at += 4 + ((len + 3) & ~3);
    const hex = b.toString('hex', at, at + 16);
    at += 16;
    const id = b.readInt32BE(at);
    at += 4;
    out.push({ name, uuid: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`, id });
  }
  const ret = b.readUInt32BE(at);
  at += 4;
  if (ret !== n || at !== b.length) throw new Error(`CONNECT_LIST_ALL_DOMAINS answered ${n} domains, ret ${ret}, ${b.length - at} bytes after`);
  return out;
}
