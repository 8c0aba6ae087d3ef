/**
 * The libvirt-protocol server connection and client over a real unix
 * socket, with fake handlers (no host behind them). The server side is
 * driven byte by byte with the hand-written wire helpers of
 * `test/support/libvirt-wire.ts` (independent of src/libvirt), as a libvirt
 * peer would see it: the open handshake, unknown procedures and programs,
 * keepalive, garbage, serials, calls finishing out of order, streams. The
 * client half is `LibvirtClient` against the same server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { FerryError } from '../../src/errors/index.js';
import { LibvirtConnection, type PendingAccount, type ProcedureHandlers } from '../../src/libvirt/connection.js';
import { LibvirtClient } from '../../src/libvirt/client.js';
import { decodeRemoteError, encodeWire, KEEPALIVE_PING, KEEPALIVE_PONG, KEEPALIVE_PROGRAM, MsgStatus, MsgType, REMOTE_PROGRAM, WireReader, xdrString, xdrUint, type WireMessage } from '../support/libvirt-wire.js';
import { rejection } from '../support/refusal.js';
import { createHolds } from '../support/holds.js';

/** Replies the test releases by tag, so tests order replies by events, not by sleeping. */
const { holdOf, release } = createHolds();

/** What the fake stream sink of a tunnelled prepare saw, by the tag in its cookie. */
interface StreamRecord {
  chunks: Buffer[];
  ended: boolean;
  aborted: Error | null;
  /** Resolves when the stream ended or aborted. */
  done: Promise<void>;
}
const streams = new Map<string, StreamRecord>();
/** Procedures the server was called with, in order, by connection id. */
const calls = new Map<number, string[]>();

const UUID = Buffer.from('5c4e7a638f274b6e9c1d3a2f0e8b7d14', 'hex');

function handlers(): ProcedureHandlers {
  const note = (conn: LibvirtConnection, what: string) => calls.set(conn.id, [...(calls.get(conn.id) ?? []), what]);
  return {
    AUTH_LIST: async (_a, { conn }) => {
      note(conn, 'AUTH_LIST');
      return { types: [0] };
    },
    CONNECT_OPEN: async (a, { conn }) => {
      note(conn, `CONNECT_OPEN ${a.name}`);
      conn.openedUri = a.name ?? 'qemu:///system';
      return {};
    },
    CONNECT_SUPPORTS_FEATURE: async (a, { conn }) => {
      note(conn, `CONNECT_SUPPORTS_FEATURE ${a.feature}`);
      if (a.feature === 10) conn.startKeepalive();
      return { supported: a.feature === 10 ? 1 : 0 };
    },
    CONNECT_GET_HOSTNAME: async () => ({ hostname: 'fake-host' }),
    // CONNECT_GET_TYPE is in the table but has no handler here: "not supported".
    CONNECT_LIST_ALL_DOMAINS: async () => {
      throw new Error('a plain error from a handler');
    },
    DOMAIN_LOOKUP_BY_NAME: async (a) => {
      if (a.name.startsWith('hold:')) await holdOf(a.name).promise;
      if (a.name === 'ghost') throw new FerryError('no_domain', "no domain with matching name 'ghost'");
      if (a.name === 'huge') return { dom: { name: 'x'.repeat(1048577), uuid: UUID, id: 1 } };
      return { dom: { name: a.name, uuid: UUID, id: 7 } };
    },
    DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS: async (a, { conn, serial }) => {
      const tag = a.cookieIn.toString('utf8');
      let finish!: () => void;
      const rec: StreamRecord = { chunks: [], ended: false, aborted: null, done: new Promise((r) => (finish = r)) };
      streams.set(tag, rec);
      conn.acceptStream(serial, {
        data: (c) => {
          rec.chunks.push(Buffer.from(c));
          return true;
        },
        end: () => {
          rec.ended = true;
          finish();
          // The acknowledgement waits for the test when it asked so.
          const ack = tag.startsWith('delay-ack') ? holdOf(tag).promise : Promise.resolve();
          void ack.then(() => conn.finishStream(serial, 304, tag.startsWith('fail-ack') ? new FerryError('operation_failed', 'the destination QEMU went away') : undefined));
        },
        abort: (why) => {
          rec.aborted = why;
          finish();
        },
      });
      return { cookieOut: Buffer.from(`ok:${tag}`) };
    },
  };
}

let dir: string;
let sockPath: string;
let server: Server;
const connections: LibvirtConnection[] = [];
const logs: string[] = [];
const pending: PendingAccount = { used: 0, limit: 128 * 1024 * 1024 };
const peers: Peer[] = [];
const clients: LibvirtClient[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-libvirt-'));
  sockPath = join(dir, 'libvirt-sock');
  const table = handlers();
  server = createServer((socket) => {
    // Keepalive starts only for a client that asked for it (CONNECT_SUPPORTS_FEATURE 10); then a 3 s bound.
    connections.push(new LibvirtConnection(socket, 'unix', 'test peer', table, (m) => logs.push(m), pending, { intervalS: 1, count: 3 }));
  });
  await new Promise<void>((r) => server.listen(sockPath, r));
});

afterAll(async () => {
  for (const p of peers) p.socket.destroy();
  for (const c of clients) c.close();
  for (const c of connections) c.close();
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

/** A raw libvirt peer on one connection: sends frames, awaits the messages it gets. */
class Peer {
  private readonly reader = new WireReader();
  private readonly inbox: WireMessage[] = [];
  private wake: (() => void) | null = null;
  readonly closed: Promise<void>;
  isClosed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.inbox.push(...this.reader.push(chunk));
      this.wake?.();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((r) =>
      socket.once('close', () => {
        this.isClosed = true;
        this.wake?.();
        r();
      }),
    );
  }

  static async open(): Promise<Peer> {
    const s = createConnection({ path: sockPath });
    await once(s, 'connect');
    const p = new Peer(s);
    peers.push(p);
    return p;
  }

  /** Opens and does the handshake a libvirt client does. */
  static async opened(): Promise<Peer> {
    const p = await Peer.open();
    expect((await p.call(66, 1)).header.status).toBe(MsgStatus.ok);
    expect((await p.call(1, 2, Buffer.concat([xdrUint(1), xdrString('qemu:///system'), xdrUint(0)]))).header.status).toBe(MsgStatus.ok);
    return p;
  }

  send(...frames: Buffer[]): void {
    for (const f of frames) this.socket.write(f);
  }

  /** Sends a call of the remote program and waits for the reply of its serial. */
  async call(procedure: number, serial: number, body: Buffer = Buffer.alloc(0)): Promise<WireMessage> {
    this.send(encodeWire({ program: REMOTE_PROGRAM, procedure, serial }, body));
    return this.next((m) => m.header.type === MsgType.reply && m.header.serial === serial);
  }

  /** The first message (not yet taken) matching `pred`; waits up to `timeoutMs`. */
  async next(pred: (m: WireMessage) => boolean = () => true, timeoutMs = 5_000): Promise<WireMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex(pred);
      if (i >= 0) return this.inbox.splice(i, 1)[0]!;
      if (this.isClosed) throw new Error(`the server closed the connection; unread: ${JSON.stringify(this.inbox.map((m) => m.header))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching message within ${timeoutMs} ms; unread: ${JSON.stringify(this.inbox.map((m) => m.header))}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
      this.wake = null;
    }
  }

  /** Messages received and not taken yet. */
  get unread(): WireMessage[] {
    return [...this.inbox];
  }
}

/** Expects `m` to be an error reply to (procedure, serial) of `program` with virErrorNumber `code`; returns the error. */
function expectErrorReply(m: WireMessage, code: number, procedure?: number, serial?: number, program = REMOTE_PROGRAM) {
  expect(m.header.program).toBe(program);
  expect(m.header.type).toBe(MsgType.reply);
  expect(m.header.status).toBe(MsgStatus.error);
  if (procedure !== undefined) expect(m.header.procedure).toBe(procedure);
  if (serial !== undefined) expect(m.header.serial).toBe(serial);
  const e = decodeRemoteError(m.body);
  expect(e.code, e.message ?? '').toBe(code);
  expect(e.level).toBe(2);
  expect(e.message).toBeTruthy();
  return e;
}

const lookupArgs = (name: string) => xdrString(name);
/** remote_domain_migrate_prepare_tunnel3_params_args: params<>, cookie_in, flags. */
const tunnelArgs = (tag: string, flags = 4) => Buffer.concat([xdrUint(0), xdrString(tag), xdrUint(flags)]);
const streamMsg = (serial: number, status: number, body: Buffer = Buffer.alloc(0)) => encodeWire({ program: REMOTE_PROGRAM, procedure: 304, serial, type: MsgType.stream, status }, body);

describe('LibvirtConnection: the open handshake', () => {
  it('refuses calls before CONNECT_OPEN, except AUTH_LIST, CONNECT_OPEN and CONNECT_SUPPORTS_FEATURE', async () => {
    const p = await Peer.open();
    const early = expectErrorReply(await p.call(59, 1), 55, 59, 1);
    expect(early.message).toContain('CONNECT_OPEN');
    expectErrorReply(await p.call(23, 2, lookupArgs('vm')), 55, 23, 2);

    const auth = await p.call(66, 3);
    expect(auth.header).toMatchObject({ program: REMOTE_PROGRAM, version: 1, procedure: 66, type: MsgType.reply, serial: 3, status: MsgStatus.ok });
    // remote_auth_list_ret: types<> = [REMOTE_AUTH_NONE]
    expect(auth.body.toString('hex')).toBe('0000000100000000');

    const feature = await p.call(60, 4, xdrUint(9));
    expect(feature.header.status).toBe(MsgStatus.ok);
    expect(feature.body.toString('hex')).toBe('00000000');

    const open = await p.call(1, 5, Buffer.concat([xdrUint(1), xdrString('qemu:///system'), xdrUint(0)]));
    expect(open.header).toMatchObject({ procedure: 1, type: MsgType.reply, serial: 5, status: MsgStatus.ok });
    expect(open.body.length).toBe(0);

    const host = await p.call(59, 6);
    expect(host.header.status).toBe(MsgStatus.ok);
    expect(host.body).toEqual(xdrString('fake-host'));
  });

  it('CONNECT_OPEN with the name absent (NULL) is a valid call', async () => {
    const p = await Peer.open();
    const open = await p.call(1, 1, Buffer.concat([xdrUint(0), xdrUint(0)]));
    expect(open.header.status).toBe(MsgStatus.ok);
    expect((await p.call(59, 2)).header.status).toBe(MsgStatus.ok);
  });
});

describe('LibvirtConnection: what any peer can send', () => {
  it('an unknown procedure number gets REPLY/ERROR with VIR_ERR_NO_SUPPORT (3), before and after open', async () => {
    const p = await Peer.open();
    expectErrorReply(await p.call(9999, 11), 3, 9999, 11);
    expectErrorReply(await p.call(-1, 12), 3, -1, 12);
    const q = await Peer.opened();
    expectErrorReply(await q.call(9999, 13), 3, 9999, 13);
    // In libvirt's table, but no handler on this server.
    expectErrorReply(await q.call(3, 14), 3, 3, 14);
  });

  it('a keepalive PING (program "keep", procedure 1, type MESSAGE) gets a PONG (procedure 2), even before open', async () => {
    const p = await Peer.open();
    p.send(encodeWire({ program: KEEPALIVE_PROGRAM, procedure: KEEPALIVE_PING, serial: 0, type: MsgType.message }));
    const pong = await p.next();
    expect(pong.header).toEqual({ program: KEEPALIVE_PROGRAM, version: 1, procedure: KEEPALIVE_PONG, type: MsgType.message, serial: 0, status: MsgStatus.ok });
    expect(pong.body.length).toBe(0);
    // A PONG from the peer needs no answer.
    p.send(encodeWire({ program: KEEPALIVE_PROGRAM, procedure: KEEPALIVE_PONG, serial: 0, type: MsgType.message }));
    expect((await p.call(66, 1)).header.status).toBe(MsgStatus.ok);
    expect(p.unread).toEqual([]);
  });

  it('a PONG is keepalive version 1: a PING of another version is not libvirt’s keepalive and gets no PONG of that version', async () => {
    // libvirt's virKeepAliveCheckMessage takes only program "keep", version 1, type MESSAGE as keepalive; a peer
    // reading a PONG of version 2 would not recognise it either.
    const p = await Peer.open();
    p.send(encodeWire({ program: KEEPALIVE_PROGRAM, version: 2, procedure: KEEPALIVE_PING, serial: 0, type: MsgType.message }));
    expect((await p.call(66, 1)).header.status).toBe(MsgStatus.ok);
    await new Promise((r) => setTimeout(r, 50));
    for (const m of p.unread) expect(m.header).toMatchObject({ program: KEEPALIVE_PROGRAM, version: 1 });
  });

  it('a frame of declared length 5 gets an error reply, and the connection is closed', async () => {
    const p = await Peer.open();
    p.send(Buffer.from([0, 0, 0, 5, 0xff]));
    const m = await p.next();
    expectErrorReply(m, 39);
    await p.closed;
  });

  it('a call sent in the same write as a broken frame is answered before the connection closes', async () => {
    const p = await Peer.open();
    p.send(Buffer.concat([encodeWire({ program: REMOTE_PROGRAM, version: 1, procedure: 66, serial: 7, type: MsgType.call }), Buffer.from([0, 0, 0, 5, 0xff])]));
    const replies = [await p.next(), await p.next()];
    const answered = replies.find((m) => m.header.serial === 7);
    expect(answered?.header).toMatchObject({ procedure: 66, serial: 7, status: MsgStatus.ok });
    expectErrorReply(replies.find((m) => m !== answered)!, 39);
    await p.closed;
  });

  it('a frame declaring more than 32 MiB gets an error reply and the connection is closed, before anything is buffered', async () => {
    const p = await Peer.open();
    p.send(Buffer.from([0x02, 0x00, 0x00, 0x01]));
    expectErrorReply(await p.next(), 39);
    await p.closed;
  });

  it('an unknown program (or version) gets an error reply echoing the serial, and the connection stays usable', async () => {
    const p = await Peer.open();
    p.send(encodeWire({ program: 0x12345678, procedure: 1, serial: 41 }));
    // As libvirtd's virNetServerProgramUnknownError: the reply carries the caller's program and serial.
    expectErrorReply(await p.next((m) => m.header.serial === 41), 39, 1, 41, 0x12345678);
    p.send(encodeWire({ program: REMOTE_PROGRAM, version: 2, procedure: 66, serial: 42 }));
    expectErrorReply(await p.next((m) => m.header.serial === 42), 39, undefined, 42);
    expect((await p.call(66, 43)).header.status).toBe(MsgStatus.ok);
    expect(p.isClosed).toBe(false);
  });

  it('arguments that do not decode get an rpc error, and the connection stays usable', async () => {
    const p = await Peer.open();
    // CONNECT_OPEN with the name pointer marked present but no string after it.
    expectErrorReply(await p.call(1, 1, xdrUint(1)), 39, 1, 1);
    // Trailing bytes after AUTH_LIST's empty arguments.
    expectErrorReply(await p.call(66, 2, xdrUint(0)), 39, 66, 2);
    // A string declaring 4 GiB.
    const q = await Peer.opened();
    expectErrorReply(await q.call(23, 3, Buffer.from('ffffffff00000000', 'hex')), 39, 23, 3);
    expect((await p.call(66, 4)).header.status).toBe(MsgStatus.ok);
  });

  it('echoes serials exactly, including 0 and 2^32-1', async () => {
    const p = await Peer.opened();
    for (const serial of [0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 123456]) {
      const m = await p.call(59, serial);
      expect(m.header.serial).toBe(serial);
      expect(m.header.procedure).toBe(59);
    }
  });

  it('two calls in flight complete out of order, each reply with its own serial', async () => {
    const p = await Peer.opened();
    p.send(encodeWire({ program: REMOTE_PROGRAM, procedure: 23, serial: 100 }, lookupArgs('hold:slow')), encodeWire({ program: REMOTE_PROGRAM, procedure: 23, serial: 101 }, lookupArgs('fast')));
    const first = await p.next((m) => m.header.type === MsgType.reply);
    expect(first.header.serial).toBe(101);
    // remote_domain_lookup_by_name_ret: the domain reference named "fast"
    expect(first.body.subarray(0, 8)).toEqual(xdrString('fast'));
    release('hold:slow');
    const second = await p.next((m) => m.header.type === MsgType.reply);
    expect(second.header.serial).toBe(100);
    expect(second.body.subarray(0, 16)).toEqual(xdrString('hold:slow'));
    expect(second.body.readInt32BE(second.body.length - 4)).toBe(7);
  });

  it('a handler’s FerryError keeps its libvirt number; a plain Error is an internal error (1)', async () => {
    const p = await Peer.opened();
    const e = expectErrorReply(await p.call(23, 1, lookupArgs('ghost')), 42, 23, 1);
    expect(e.message).toBe("Domain not found: no domain with matching name 'ghost'");
    expect(e.domain).toBe(10);
    expectErrorReply(await p.call(273, 2, Buffer.concat([xdrUint(1), xdrUint(0)])), 1, 273, 2);
  });

  it('a reply too large for the protocol is answered with an error instead', async () => {
    const p = await Peer.opened();
    expectErrorReply(await p.call(23, 1, lookupArgs('huge')), 39, 23, 1);
    expect((await p.call(59, 2)).header.status).toBe(MsgStatus.ok);
  });

  it('at most 64 calls in flight: the 65th is refused as busy (87), the others complete', async () => {
    const p = await Peer.opened();
    const frames = Array.from({ length: 65 }, (_, i) => encodeWire({ program: REMOTE_PROGRAM, procedure: 23, serial: 1000 + i }, lookupArgs('hold:many')));
    p.send(Buffer.concat(frames));
    expectErrorReply(await p.next((m) => m.header.serial === 1064), 87, 23, 1064);
    release('hold:many');
    for (let i = 0; i < 64; i++) expect((await p.next((m) => m.header.serial === 1000 + i)).header.status).toBe(MsgStatus.ok);
  });

  it('replies and events sent to the server are ignored; an unknown message type is answered with an error', async () => {
    const p = await Peer.opened();
    p.send(encodeWire({ program: REMOTE_PROGRAM, procedure: 59, serial: 5, type: MsgType.reply }));
    p.send(encodeWire({ program: REMOTE_PROGRAM, procedure: 318, serial: 6, type: MsgType.message }));
    p.send(encodeWire({ program: REMOTE_PROGRAM, procedure: 59, serial: 7, type: 9 }));
    expectErrorReply(await p.next((m) => m.header.serial === 7), 39);
    expect((await p.call(59, 8)).header.status).toBe(MsgStatus.ok);
    expect(p.unread).toEqual([]);
  });
});

describe('LibvirtConnection: streams', () => {
  it('acceptStream routes CONTINUE data to the sink in order; OK ends it and the server acknowledges with OK', async () => {
    const p = await Peer.opened();
    // The data may follow the call at once, before its reply.
    p.send(
      encodeWire({ program: REMOTE_PROGRAM, procedure: 304, serial: 200 }, tunnelArgs('s-ok')),
      streamMsg(200, MsgStatus.continue, Buffer.from('hello ')),
      streamMsg(200, MsgStatus.continue, Buffer.alloc(0)),
      streamMsg(200, MsgStatus.continue, Buffer.from('world')),
    );
    const reply = await p.next((m) => m.header.type === MsgType.reply);
    expect(reply.header).toMatchObject({ serial: 200, procedure: 304, status: MsgStatus.ok });
    expect(reply.body).toEqual(xdrString('ok:s-ok'));
    p.send(streamMsg(200, MsgStatus.ok));
    const ack = await p.next((m) => m.header.type === MsgType.stream);
    expect(ack.header).toEqual({ program: REMOTE_PROGRAM, version: 1, procedure: 304, type: MsgType.stream, serial: 200, status: MsgStatus.ok });
    const rec = streams.get('s-ok')!;
    expect(Buffer.concat(rec.chunks).toString()).toBe('hello world');
    expect(rec.ended).toBe(true);
    expect(rec.aborted).toBeNull();
  });

  it('ERROR from the client aborts the stream, with the client’s message', async () => {
    const p = await Peer.opened();
    expect((await p.call(304, 201, tunnelArgs('s-abort'))).header.status).toBe(MsgStatus.ok);
    p.send(streamMsg(201, MsgStatus.continue, Buffer.from('partial')));
    // remote_error: code 1, domain 0, message "source gave up", level 2, the rest absent / 0
    const err = Buffer.concat([xdrUint(1), xdrUint(0), xdrUint(1), xdrString('source gave up'), xdrUint(2), xdrUint(0), xdrUint(0), xdrUint(0), xdrUint(0), xdrUint(0), xdrUint(0), xdrUint(0)]);
    p.send(streamMsg(201, MsgStatus.error, err));
    const rec = streams.get('s-abort')!;
    await rec.done;
    expect(Buffer.concat(rec.chunks).toString()).toBe('partial');
    expect(rec.ended).toBe(false);
    expect(rec.aborted).toBeInstanceOf(FerryError);
    expect((rec.aborted as FerryError).code).toBe('operation_aborted');
    expect(rec.aborted!.message).toBe('source gave up');
    // The stream is gone: more data for it is refused through the stream.
    p.send(streamMsg(201, MsgStatus.continue, Buffer.from('late')));
    const late = await p.next((m) => m.header.type === MsgType.stream);
    expect(late.header).toMatchObject({ serial: 201, status: MsgStatus.error });
    expect(decodeRemoteError(late.body).code).toBe(39);
  });

  it('an abort whose error body does not decode still aborts', async () => {
    const p = await Peer.opened();
    expect((await p.call(304, 202, tunnelArgs('s-abort-garbled'))).header.status).toBe(MsgStatus.ok);
    p.send(streamMsg(202, MsgStatus.error, Buffer.from([1, 2, 3])));
    const rec = streams.get('s-abort-garbled')!;
    await rec.done;
    expect((rec.aborted as FerryError).code).toBe('operation_aborted');
  });

  it('stream data for a serial without a stream gets one stream error; OK or ERROR for it is ignored', async () => {
    const p = await Peer.opened();
    p.send(streamMsg(777, MsgStatus.ok), streamMsg(778, MsgStatus.error), streamMsg(779, MsgStatus.continue, Buffer.from('x')));
    const m = await p.next();
    expect(m.header).toMatchObject({ program: REMOTE_PROGRAM, type: MsgType.stream, serial: 779, status: MsgStatus.error });
    expect(decodeRemoteError(m.body).code).toBe(39);
    expect((await p.call(59, 1)).header.status).toBe(MsgStatus.ok);
    expect(p.unread).toEqual([]);
  });

  it('the connection closing aborts an open stream', async () => {
    const p = await Peer.opened();
    expect((await p.call(304, 203, tunnelArgs('s-closed'))).header.status).toBe(MsgStatus.ok);
    p.socket.destroy();
    const rec = streams.get('s-closed')!;
    await rec.done;
    expect(rec.aborted).toBeInstanceOf(FerryError);
  });
});

describe('LibvirtConnection: keepalive', () => {
  it('a client that asked for keepalive is pinged, and dropped when it never answers; one that answers stays', async () => {
    const silent = await Peer.opened();
    expect((await silent.call(60, 3, xdrUint(10))).body.toString('hex')).toBe('00000001');
    const client = await LibvirtClient.connect(`qemu+unix:///system?socket=${sockPath}`, { keepalive: { intervalS: 0, count: 1 } });
    clients.push(client);
    const ping = await silent.next((m) => m.header.program === KEEPALIVE_PROGRAM, 3_000);
    expect(ping.header).toEqual({ program: KEEPALIVE_PROGRAM, version: 1, procedure: KEEPALIVE_PING, type: MsgType.message, serial: 0, status: MsgStatus.ok });
    const started = Date.now();
    await silent.closed;
    expect(Date.now() - started).toBeLessThan(4_000);
    // The LibvirtClient answered its pings (it sends none of its own here) and is still served.
    expect(client.isClosed).toBe(false);
    expect(await client.call('CONNECT_GET_HOSTNAME', {})).toEqual({ hostname: 'fake-host' });
  });
});

describe('LibvirtClient against the server', () => {
  async function connect(): Promise<LibvirtClient> {
    const c = await LibvirtClient.connect(`qemu+unix:///system?socket=${sockPath}`, { keepalive: { intervalS: 0, count: 1 } });
    clients.push(c);
    return c;
  }

  it('connects with AUTH_LIST, CONNECT_OPEN qemu:///system and the keepalive feature question, in that order', async () => {
    const before = new Set(calls.keys());
    await connect();
    const mine = [...calls.entries()].filter(([id]) => !before.has(id)).map(([, c]) => c);
    expect(mine).toContainEqual(['AUTH_LIST', 'CONNECT_OPEN qemu:///system', 'CONNECT_SUPPORTS_FEATURE 10']);
  });

  it('a call round trip', async () => {
    const c = await connect();
    expect(await c.call('CONNECT_GET_HOSTNAME', {})).toEqual({ hostname: 'fake-host' });
    expect(await c.call('DOMAIN_LOOKUP_BY_NAME', { name: 'vm-ä' })).toEqual({ dom: { name: 'vm-ä', uuid: UUID, id: 7 } });
  });

  it('concurrent calls each get their own reply', async () => {
    const c = await connect();
    const slow = c.call('DOMAIN_LOOKUP_BY_NAME', { name: 'hold:client' });
    expect((await c.call('DOMAIN_LOOKUP_BY_NAME', { name: 'quick' })).dom.name).toBe('quick');
    release('hold:client');
    expect((await slow).dom.name).toBe('hold:client');
  });

  it('an error reply becomes a FerryError with the libvirt number mapped back and libvirt’s prefix removed', async () => {
    const c = await connect();
    const err = await rejection(c.call('DOMAIN_LOOKUP_BY_NAME', { name: 'ghost' }));
    expect(err.code).toBe('no_domain');
    expect(err.number).toBe(42);
    expect(err.message).toBe("no domain with matching name 'ghost'");
    expect((await rejection(c.call('CONNECT_GET_TYPE', {}))).code).toBe('no_support');
    expect((await rejection(c.call('CONNECT_LIST_ALL_DOMAINS', { needResults: 1, flags: 0 }))).code).toBe('internal_error');
    // Still usable.
    expect(await c.call('CONNECT_GET_HOSTNAME', {})).toEqual({ hostname: 'fake-host' });
  });

  it('callWithStream: the bytes written arrive in order, in chunks the protocol allows, and the end waits for the server’s OK', async () => {
    const c = await connect();
    const { ret, stream } = await c.callWithStream('DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS', { params: [], cookieIn: Buffer.from('delay-ack-1'), flags: 4 });
    expect(ret.cookieOut.toString()).toBe('ok:delay-ack-1');
    const payload = Buffer.alloc(700_000);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
    let finished = false;
    const finish = new Promise<void>((resolve, reject) => {
      stream.once('finish', () => {
        finished = true;
        resolve();
      });
      stream.once('error', reject);
    });
    stream.write(payload.subarray(0, 300_000));
    stream.write(payload.subarray(300_000));
    stream.end();
    const rec = await (async () => {
      for (;;) {
        const r = streams.get('delay-ack-1');
        if (r) return r;
        await new Promise((x) => setTimeout(x, 10));
      }
    })();
    await rec.done;
    expect(rec.ended).toBe(true);
    expect(Buffer.concat(rec.chunks).equals(payload)).toBe(true);
    expect(Math.max(...rec.chunks.map((b) => b.length))).toBeLessThanOrEqual(262120);
    // The server has the end but has not acknowledged it: the writer is not finished yet.
    await new Promise((r) => setTimeout(r, 100));
    expect(finished).toBe(false);
    release('delay-ack-1');
    await finish;
    expect(finished).toBe(true);
  });

  it('callWithStream: a server that ends the stream with an error fails the writer with that error', async () => {
    const c = await connect();
    const { stream } = await c.callWithStream('DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS', { params: [], cookieIn: Buffer.from('fail-ack-1'), flags: 4 });
    const failed = new Promise<Error>((resolve) => stream.once('error', resolve));
    stream.end(Buffer.from('data'));
    const err = await failed;
    expect(err).toBeInstanceOf(FerryError);
    expect((err as FerryError).code).toBe('operation_failed');
    expect(err.message).toBe('the destination QEMU went away');
  });

  it('calls in flight fail with no_connect when the connection goes', async () => {
    const c = await connect();
    const pendingCall = c.call('DOMAIN_LOOKUP_BY_NAME', { name: 'hold:never' });
    await new Promise((r) => setTimeout(r, 50));
    // The server side of this client's connection is the newest one.
    connections.at(-1)!.close();
    const err = await rejection(pendingCall);
    expect(err.code).toBe('no_connect');
    expect(c.isClosed).toBe(true);
    expect((await rejection(c.call('CONNECT_GET_HOSTNAME', {}))).code).toBe('no_connect');
  });

  it('refuses a ferry URI', async () => {
    expect((await rejection(LibvirtClient.connect(`ferry+unix:///system?socket=${sockPath}`))).code).toBe('invalid_arg');
  });
});
