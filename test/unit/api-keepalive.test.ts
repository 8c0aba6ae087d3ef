import { describe, it, expect, afterEach } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiServer, type Handler } from '../../src/api/server.js';
import { ApiClient } from '../../src/api/client.js';
import { Keepalive, keepaliveBoundMs, parseKeepalive } from '../../src/api/keepalive.js';
import type { FerryError } from '../../src/errors/index.js';
import { RawPeer } from '../support/raw-peer.js';
import { expectRefused } from '../support/refusal.js';

const isPing = (f: unknown) => (f as { type?: string })?.type === 'ping';
const isPong = (f: unknown) => (f as { type?: string })?.type === 'pong';
const FAST = { intervalS: 1, count: 2 };

let dir: string | undefined;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

async function apiServer(handlers = new Map<string, Handler>([['echo', async (p) => p]])): Promise<string> {
  dir = await mkdtemp(join(tmpdir(), 'ferry-keepalive-'));
  const path = join(dir, 'ferryd.sock');
  const server = new ApiServer(handlers, () => undefined, FAST);
  await server.listenUnix(path);
  cleanups.push(() => server.close());
  return path;
}

/** A server that accepts connections and hands each socket to `onSocket` as a raw peer. */
async function rawServer(onSocket: (peer: RawPeer) => void): Promise<string> {
  dir = await mkdtemp(join(tmpdir(), 'ferry-keepalive-'));
  const path = join(dir, 'raw.sock');
  const srv: Server = createServer((s) => onSocket(new RawPeer(s)));
  await new Promise<void>((r) => srv.listen(path, () => r()));
  cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
  return path;
}

describe('keepalive settings', () => {
  it('bounds the silence of a vanished peer at interval x count seconds; interval 0 is off', () => {
    expect(keepaliveBoundMs({ intervalS: 5, count: 5 })).toBe(25_000);
    expect(keepaliveBoundMs({ intervalS: 0, count: 5 })).toBe(Infinity);
  });

  it('refuses values that are not whole numbers in range, naming the option', () => {
    expect(parseKeepalive(undefined, undefined)).toEqual({ intervalS: 5, count: 5 });
    expectRefused(() => parseKeepalive('x', undefined), 'invalid_arg', '--keepalive-interval', "not 'x'");
    expectRefused(() => parseKeepalive('1.5', undefined), 'invalid_arg', '--keepalive-interval');
    expectRefused(() => parseKeepalive('4000', undefined), 'invalid_arg', '--keepalive-interval', '3600');
    expectRefused(() => parseKeepalive(undefined, '0'), 'invalid_arg', '--keepalive-count', 'from 1 to 100');
  });

  it('an off keepalive never pings nor declares the peer dead', () => {
    const k = new Keepalive({ intervalS: 0, count: 1 }, () => expect.unreachable('pinged'), () => expect.unreachable('declared dead')).start();
    k.stop();
  });
});

describe('daemon side', () => {
  it('pings a silent client and closes its connection once it stays silent for the bound', async () => {
    const path = await apiServer();
    const peer = await RawPeer.connect(path);
    cleanups.push(() => void peer.socket.destroy());
    await peer.framesMatching(isPing);
    await peer.closed;
    expect(peer.frames.filter(isPing).length).toBeGreaterThanOrEqual(1);
  });

  it('keeps a client that answers its pings, however long it is otherwise idle', async () => {
    const path = await apiServer();
    const peer = await RawPeer.connect(path);
    cleanups.push(() => void peer.socket.destroy());
    let closed = false;
    void peer.closed.then(() => (closed = true));
    // Answer every ping; after more pings than the count allows silent intervals, the connection is still open.
    peer.socket.on('data', () => {
      if (peer.frames.some(isPing)) peer.send({ type: 'pong' });
    });
    await peer.framesMatching(isPing, FAST.count + 2);
    expect(closed).toBe(false);
    peer.send({ type: 'call', id: 1, method: 'echo', params: { still: 'here' } });
    const reply = await peer.framesMatching((f) => (f as { id?: number }).id === 1);
    expect(reply[0]).toEqual({ type: 'reply', id: 1, result: { still: 'here' } });
  });

  it('answers a client ping with a pong', async () => {
    const path = await apiServer();
    const peer = await RawPeer.connect(path);
    cleanups.push(() => void peer.socket.destroy());
    peer.send({ type: 'ping' });
    await peer.framesMatching(isPong);
  });
});

describe('client side', () => {
  it('fails a pending call with no_connect when the daemon stops answering without closing', async () => {
    const path = await rawServer(() => undefined); // accepts, then never says a word
    const c = await ApiClient.connect(`ferry+unix:///system?socket=${path}`, { keepalive: FAST });
    cleanups.push(() => c.close());
    const call = c.callRaw('migration.perform', {}, { timeoutMs: 0 }).then(
      () => expect.unreachable('answered'),
      (e: unknown) => e as FerryError,
    );
    const lost = await c.whenClosed();
    const err = await call;
    expect(err.code).toBe('no_connect');
    expect(err.message).toMatch(/keepalive/);
    expect(lost).toBe(err);
    expect(c.isClosed).toBe(true);
  });

  it('answers the daemon’s pings, and a busy daemon (answering pings) is not declared dead', async () => {
    let server: RawPeer | undefined;
    const path = await rawServer((p) => {
      server = p;
      p.socket.on('data', () => {
        if (p.frames.some(isPing)) p.send({ type: 'pong' });
      });
    });
    const c = await ApiClient.connect(`ferry+unix:///system?socket=${path}`, { keepalive: FAST });
    cleanups.push(() => c.close());
    let closed = false;
    void c.whenClosed().then(() => (closed = true));
    const s = await (async () => {
      while (!server) await new Promise((r) => setImmediate(r));
      return server;
    })();
    s.send({ type: 'ping' });
    await s.framesMatching(isPong);
    // The client pings the silent server; the server's pongs keep the connection alive past the bound.
    await s.framesMatching(isPing, FAST.count + 2);
    expect(closed).toBe(false);
  });
});
