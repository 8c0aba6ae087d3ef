import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiServer, type ApiConnection, type Handler } from '../../src/api/server.js';
import { ApiClient } from '../../src/api/client.js';
import { FrameDecoder, FrameKind, encodeJsonFrame, encodeStreamFrame } from '../../src/api/framing.js';
import { ERROR_CODES, FerryError } from '../../src/errors/index.js';
import { RawPeer } from '../support/raw-peer.js';
import { rejection } from '../support/refusal.js';
import { createHolds } from '../support/holds.js';

/**
 * Replies the test releases: `hold` answers its `tag` once {@link release}
 * opened it (before or after the call arrives), so tests order replies by
 * events, not by sleeping.
 */
const { holdOf, release } = createHolds();

/** The coded error a promise rejects with. */
function handlers(): Map<string, Handler> {
  return new Map<string, Handler>([
    ['echo', async (p) => p],
    ['nothing', async () => undefined],
    ['whoami', async (_p, conn) => ({ id: conn.id, transport: conn.transport, peer: conn.peer })],
    ['hold', async (p) => {
      await holdOf(p.tag as string).promise;
      return p.tag;
    }],
    ['fail.ferry', async () => {
      throw new FerryError('no_domain', "Domain not found: 'ghost'");
    }],
    ['fail.plain', async () => {
      throw new Error('kaboom');
    }],
    ['fail.string', async () => {
      throw 'a bare string';
    }],
    ['never', () => new Promise(() => undefined)],
    ['huge', async () => 'x'.repeat(16 * 1024 * 1024)],
    ['subscribe', async (_p, conn) => {
      conn.subscribed = true;
      return { subscribed: true };
    }],
  ]);
}

let dir: string;
let server: ApiServer;
let sockPath: string;
let staleSockets: string[];
const clients: ApiClient[] = [];

async function client(): Promise<ApiClient> {
  const c = await ApiClient.connect(`ferry+unix:///system?socket=${sockPath}`);
  clients.push(c);
  return c;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-api-'));
  sockPath = join(dir, 'ferryd.sock');
  server = new ApiServer(handlers());
  await server.listenUnix(sockPath);
  // Sockets of a daemon that died without cleaning up: the files stay, nobody listens.
  staleSockets = [join(dir, 'stale.sock'), join(dir, 'dead.sock')];
  const script = `const net = require('net'); let n = 0; for (const p of ${JSON.stringify(staleSockets)}) net.createServer().listen(p, () => ++n === ${staleSockets.length} && process.kill(process.pid, 'SIGKILL'));`;
  expect(spawnSync(process.execPath, ['-e', script]).signal).toBe('SIGKILL');
});

afterAll(async () => {
  for (const c of clients) c.close();
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('ApiServer + ApiClient over a unix socket', () => {
  it('answers a call with the handler result', async () => {
    const c = await client();
    expect(await c.callRaw('echo', { a: 1, b: ['x', { c: null }] })).toEqual({ a: 1, b: ['x', { c: null }] });
    expect(await c.callRaw('nothing', {})).toBeNull();
  });

  it('tells the handler which connection and transport the call came on', async () => {
    const c = await client();
    const who = (await c.callRaw('whoami', {})) as { id: number; transport: string; peer: string };
    expect(who.transport).toBe('unix');
    expect(who.peer).toBe('local');
    const other = (await (await client()).callRaw('whoami', {})) as { id: number };
    expect(other.id).not.toBe(who.id);
  });

  it('matches concurrent replies to their calls by id, whatever order they finish in', async () => {
    const c = await client();
    const calls = ['order-slow', 'order-fast', 'order-middle'].map((tag) => c.callRaw('hold', { tag }));
    const finished: unknown[] = [];
    for (const call of calls) void call.then((tag) => finished.push(tag));
    // Answered in another order than asked: fast, then middle, then slow.
    release('order-fast');
    await calls[1];
    release('order-middle');
    await calls[2];
    release('order-slow');
    expect(await Promise.all(calls)).toEqual(['order-slow', 'order-fast', 'order-middle']);
    expect(finished).toEqual(['order-fast', 'order-middle', 'order-slow']);
  });

  it('passes a FerryError from the handler to the client with the same code and message', async () => {
    const c = await client();
    const err = await rejection(c.callRaw('fail.ferry', {}));
    expect(err.code).toBe('no_domain');
    expect(err.number).toBe(ERROR_CODES.no_domain.number);
    expect(err.message).toBe("Domain not found: 'ghost'");
  });

  it('turns a plain Error from the handler into internal_error, keeping the message', async () => {
    const c = await client();
    const err = await rejection(c.callRaw('fail.plain', {}));
    expect(err.code).toBe('internal_error');
    expect(err.message).toBe('kaboom');
    expect((await rejection(c.callRaw('fail.string', {}))).code).toBe('internal_error');
    // The connection survives handler failures.
    expect(await c.callRaw('echo', { still: 'here' })).toEqual({ still: 'here' });
  });

  it('refuses an unknown method with no_support', async () => {
    const c = await client();
    const err = await rejection(c.callRaw('domain.frobnicate', {}));
    expect(err.code).toBe('no_support');
    expect(err.message).toContain('domain.frobnicate');
    expect((await rejection(c.callRaw('constructor', {}))).code).toBe('no_support');
  });

  it.each([
    ['an array', [1, 2]],
    ['a string', 'all'],
    ['a number', 3],
  ])('refuses params that are %s with invalid_arg', async (_what, params) => {
    const c = await client();
    const err = await rejection(c.callRaw('echo', params as unknown as Record<string, unknown>));
    expect(err.code).toBe('invalid_arg');
  });

  it('treats missing params as an empty object', async () => {
    const peer = await RawPeer.connect(sockPath);
    peer.socket.write(encodeJsonFrame({ type: 'call', id: 4, method: 'echo' }));
    expect(await peer.nextFrame()).toEqual({ type: 'reply', id: 4, result: {} });
    peer.socket.destroy();
  });

  it('answers a JSON frame that is not a call with an rpc error under its id and keeps the connection', async () => {
    const peer = await RawPeer.connect(sockPath);
    peer.socket.write(encodeJsonFrame({ type: 'call', id: 9 }));
    expect(await peer.nextFrame()).toMatchObject({ type: 'reply', id: 9, error: { code: 'rpc' } });
    peer.socket.write(encodeJsonFrame({ type: 'reply', id: 10, method: 'echo' }));
    expect(await peer.nextFrame()).toMatchObject({ type: 'reply', id: 10, error: { code: 'rpc' } });
    peer.socket.write(encodeJsonFrame([1, 2]));
    expect(await peer.nextFrame()).toMatchObject({ type: 'reply', id: 0, error: { code: 'rpc' } });
    peer.socket.write(encodeJsonFrame({ type: 'call', id: -1, method: 'echo' }));
    const bad = (await peer.nextFrame()) as { id: number; error: { code: string } };
    expect(bad.error.code).toBe('rpc');
    expect(bad.id).toBeLessThanOrEqual(0);
    peer.socket.write(encodeJsonFrame({ type: 'call', id: 11, method: 'echo', params: { ok: true } }));
    expect(await peer.nextFrame()).toEqual({ type: 'reply', id: 11, result: { ok: true } });
    peer.socket.destroy();
  });

  it('answers a stream frame (no stream open) with an id-0 rpc error', async () => {
    const peer = await RawPeer.connect(sockPath);
    peer.socket.write(encodeStreamFrame(1, Buffer.from('data')));
    expect(await peer.nextFrame()).toMatchObject({ type: 'reply', id: 0, error: { code: 'rpc' } });
    peer.socket.destroy();
  });

  it('answers garbage bytes with an id-0 rpc error, closes that connection, and keeps serving others', async () => {
    const peer = await RawPeer.connect(sockPath);
    peer.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await peer.closed;
    expect(peer.frames).toHaveLength(1);
    expect(peer.frames[0]).toMatchObject({ type: 'reply', id: 0, error: { code: 'rpc', number: ERROR_CODES.rpc.number } });

    const c = await client();
    expect(await c.callRaw('echo', { after: 'garbage' })).toEqual({ after: 'garbage' });
  });

  it('closes the connection after an oversized frame header even before the payload arrives', async () => {
    const peer = await RawPeer.connect(sockPath);
    const head = Buffer.alloc(5);
    head.writeUInt32BE(0x7fffffff, 0);
    head.writeUInt8(FrameKind.json, 4);
    peer.socket.write(head);
    await peer.closed;
    expect(peer.frames).toEqual([expect.objectContaining({ id: 0, error: expect.objectContaining({ code: 'rpc' }) })]);
  });

  it('answers a result too large for one frame with an rpc error for that call', async () => {
    const c = await client();
    const err = await rejection(c.callRaw('huge', {}));
    expect(err.code).toBe('rpc');
    expect(await c.callRaw('echo', { n: 1 })).toEqual({ n: 1 });
  });

  it('refuses more than 64 calls in flight on one connection with resource_busy', async () => {
    const c = await client();
    const stuck = Array.from({ length: 64 }, () => c.callRaw('never', {}));
    for (const p of stuck) p.catch(() => undefined);
    const err = await rejection(c.callRaw('echo', {}));
    expect(err.code).toBe('resource_busy');
    // Another connection is not affected.
    expect(await (await client()).callRaw('echo', { x: 1 })).toEqual({ x: 1 });
    c.close();
  });

  it('creates the socket file with mode 0600', async () => {
    const st = await stat(sockPath);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
  });

  it('refuses a second listenUnix on a live socket with operation_failed, leaving the first server working', async () => {
    const second = new ApiServer(handlers());
    const err = await rejection(second.listenUnix(sockPath));
    expect(err.code).toBe('operation_failed');
    expect(err.message).toContain(sockPath);
    await second.close();
    expect(existsSync(sockPath)).toBe(true);
    expect(await (await client()).callRaw('echo', { still: 1 })).toEqual({ still: 1 });
  });

  it('replaces a stale socket file left by a killed daemon', async () => {
    const stale = staleSockets[0]!;
    expect((await stat(stale)).isSocket()).toBe(true);

    const s = new ApiServer(handlers());
    await s.listenUnix(stale);
    try {
      expect((await stat(stale)).mode & 0o777).toBe(0o600);
      const c = await ApiClient.connect(`ferry:///system?socket=${stale}`);
      expect(await c.callRaw('echo', { fresh: true })).toEqual({ fresh: true });
      c.close();
    } finally {
      await s.close();
    }
  });

  it('sends events only to connections that subscribed', async () => {
    const a = await client();
    const b = await client();
    const gotA: unknown[] = [];
    const gotB: unknown[] = [];
    a.on('event', (name, data) => gotA.push([name, data]));
    b.on('event', (name, data) => gotB.push([name, data]));
    expect(await a.callRaw('subscribe', {})).toEqual({ subscribed: true });
    const arrived = new Promise<void>((r) => a.once('event', () => r()));

    const conns = [...server.openConnections];
    expect(conns.filter((c: ApiConnection) => c.subscribed)).toHaveLength(1);
    for (const conn of conns) conn.sendEvent('lifecycle', { domain: 'vm1', event: 'started' });

    await arrived;
    // A reply written after the event on b's connection proves nothing was queued for b before it.
    await b.callRaw('echo', {});
    await a.callRaw('echo', {});
    expect(gotA).toEqual([['lifecycle', { domain: 'vm1', event: 'started' }]]);
    expect(gotB).toEqual([]);
  });

  it('forgets a connection when its client closes', async () => {
    const c = await client();
    const who = (await c.callRaw('whoami', {})) as { id: number };
    expect([...server.openConnections].some((x) => x.id === who.id)).toBe(true);
    const gone = new Promise<ApiConnection>((r) => server.on('disconnect', (conn: ApiConnection) => conn.id === who.id && r(conn)));
    c.close();
    const conn = await gone;
    expect(conn.isOpen).toBe(false);
    expect([...server.openConnections].some((x) => x.id === who.id)).toBe(false);
  });

  it('fails pending calls with no_connect when the client closes, and refuses later calls', async () => {
    const c = await client();
    const pending = c.callRaw('never', {});
    const closed = new Promise<FerryError>((r) => c.once('close', r));
    c.close();
    expect((await rejection(pending)).code).toBe('no_connect');
    expect((await closed).code).toBe('no_connect');
    expect((await rejection(c.callRaw('echo', {}))).code).toBe('no_connect');
  });

  it('times out a call with operation_timeout and keeps the connection usable', async () => {
    const c = await client();
    const err = await rejection(c.callRaw('never', {}, { timeoutMs: 50 }));
    expect(err.code).toBe('operation_timeout');
    expect(err.message).toContain('never');
    expect(err.message).toContain('within 50 ms');
    // A late reply to a timed-out call is dropped; other calls still work.
    const late = await rejection(c.callRaw('hold', { tag: 'late' }, { timeoutMs: 20 }));
    expect(late.code).toBe('operation_timeout');
    release('late');
    // One connection keeps order: the late reply comes before this call's, and must not be taken for it.
    expect(await c.callRaw('echo', { ok: 1 }, { timeoutMs: 1000 })).toEqual({ ok: 1 });
  });
});

describe('ApiClient against a misbehaving server', () => {
  /** A fake daemon on a unix socket that answers every chunk it gets with `reply`. */
  async function fakeDaemon(name: string, reply: Buffer): Promise<{ path: string; close: () => Promise<void> }> {
    const path = join(dir, name);
    const srv = createServer((s) => {
      s.on('error', () => undefined);
      s.on('data', () => s.write(reply));
    });
    await new Promise<void>((r) => srv.listen(path, r));
    return { path, close: () => new Promise<void>((r) => srv.close(() => r())) };
  }

  it('an id-0 error reply fails every pending call with that error and closes the client', async () => {
    const d = await fakeDaemon('id0.sock', encodeJsonFrame({ type: 'reply', id: 0, error: { code: 'rpc', number: 39, message: 'bad frame' } }));
    const c = await ApiClient.connect(`ferry:///system?socket=${d.path}`);
    const err = await rejection(c.callRaw('echo', {}));
    expect(err.code).toBe('rpc');
    expect(err.message).toBe('bad frame');
    expect((await rejection(c.callRaw('echo', {}))).code).toBe('rpc');
    c.close();
    await d.close();
  });

  it('garbage from the server fails the pending call with rpc', async () => {
    const d = await fakeDaemon('garbage.sock', Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'));
    const c = await ApiClient.connect(`ferry:///system?socket=${d.path}`);
    expect((await rejection(c.callRaw('echo', {}))).code).toBe('rpc');
    c.close();
    await d.close();
  });

  it('an unknown error code from the server becomes internal_error', async () => {
    const d = await fakeDaemon('oddcode.sock', encodeJsonFrame({ type: 'reply', id: 1, error: { code: 'made_up', number: 999, message: 'odd' } }));
    const c = await ApiClient.connect(`ferry:///system?socket=${d.path}`);
    const err = await rejection(c.callRaw('echo', {}));
    expect(err.code).toBe('internal_error');
    expect(err.message).toBe('odd');
    c.close();
    await d.close();
  });
});

describe('ApiClient.connect failures', () => {
  it('a missing socket gives no_connect with a hint to start ferryd', async () => {
    const missing = join(dir, 'nobody-here.sock');
    const err = await rejection(ApiClient.connect(`ferry:///system?socket=${missing}`));
    expect(err.code).toBe('no_connect');
    expect(err.message).toContain(missing);
    expect(err.message).toMatch(/ferryd/);
  });

  it('a socket file nobody listens on gives no_connect with the same hint', async () => {
    const stale = staleSockets[1]!;
    expect((await stat(stale)).isSocket()).toBe(true);
    const err = await rejection(ApiClient.connect(`ferry:///system?socket=${stale}`));
    expect(err.code).toBe('no_connect');
    expect(err.message).toMatch(/ferryd/);
  });

  it('a bad URI is refused with invalid_arg before connecting', async () => {
    expect((await rejection(ApiClient.connect('qemu:///system'))).code).toBe('invalid_arg');
  });

  it('TLS without credentials in the PKI dir gives auth_failed naming the missing file', async () => {
    const err = await rejection(ApiClient.connect(`ferry+tls://127.0.0.1:1/system?pkipath=${dir}/no-pki`));
    expect(err.code).toBe('auth_failed');
    expect(err.message).toContain('cacert.pem');
  });
});
