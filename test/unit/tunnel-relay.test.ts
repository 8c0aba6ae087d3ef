/**
 * The tunnel relay moves a migration stream byte for byte: the whole
 * stream, in order, its end included, also when the receiving side is slow
 * (the relay must stop reading rather than buffer without bound), and from
 * a daemon connection that was handed over with bytes already buffered.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { ApiConnection } from '../../src/api/server.js';
import { attachToQemu, helperCpuInLog, openRelay, RELAY_HELPER, type RelayCopy } from '../../src/migration/tunnel.js';
import { closed, listen, portOf as port } from '../support/sockets.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Collects everything a socket receives until its end; with `stallMs`, reads nothing for that long first. */
function collect(s: Socket, stallMs = 0): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    if (stallMs > 0) {
      s.pause();
      setTimeout(() => s.resume(), stallMs);
    }
    s.on('data', (d: Buffer) => parts.push(d));
    s.once('end', () => resolve(Buffer.concat(parts)));
    s.once('error', reject);
  });
}

/** Writes `data` in pieces of random size, then ends; resolves once all is handed to the socket. */
async function feed(s: Socket, data: Buffer): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const n = Math.min(data.length - off, 1 + Math.floor(Math.random() * 200_000));
    if (!s.write(data.subarray(off, off + n))) await new Promise((r) => s.once('drain', r));
    off += n;
  }
  s.end();
}

/** Every way of copying: the native helper's two (setup.sh builds it) and ferryd's own. */
const COPIES: RelayCopy[] = existsSync(RELAY_HELPER) ? ['splice', 'readwrite', 'node'] : ['node'];

describe.each(COPIES)('tunnel relay (%s)', (copy) => {
  it('relays a stream from the QEMU-side unix socket to the peer connection unchanged, end included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-relay-'));
    const data = randomBytes(48 * 1024 * 1024);
    let received!: Promise<Buffer>;
    const peerSrv = createServer((s) => (received = collect(s)));
    await listen(peerSrv, 0);
    const relay = await openRelay(join(dir, 'r.sock'), () => new Promise((r) => {
      const c = createConnection({ host: '127.0.0.1', port: port(peerSrv) }, () => r(c));
    }), () => undefined, copy);
    const qemu = createConnection({ path: relay.path });
    await new Promise((r) => qemu.once('connect', r));
    await feed(qemu, data);
    await new Promise((r) => setTimeout(r, 0));
    const got = await received;
    expect(got.length).toBe(data.length);
    expect(sha(got)).toBe(sha(data));
    relay.close();
    peerSrv.close();
    qemu.destroy();
  }, 60_000);

  it('relays both directions at once, bytes the peer connection had buffered before the relay first', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-relay-'));
    const down = randomBytes(24 * 1024 * 1024);
    const up = randomBytes(3 * 1024 * 1024);
    const head = Buffer.from('NBDMAGIC greeting sent right after the hand-over');
    let far!: Socket;
    // Both directions end on their own: neither test end may close its side when the other's data ends.
    const farReady = new Promise<void>((r) => {
      const peerSrv = createServer({ allowHalfOpen: true }, (s) => {
        peerSrv.close();
        far = s;
        r();
      });
      void listen(peerSrv, 0).then(() => {
        peerPort = port(peerSrv);
        opened();
      });
    });
    let peerPort = 0;
    let opened!: () => void;
    const listening = new Promise<void>((r) => (opened = r));
    await listening;
    const logged: string[] = [];
    let tallied!: () => void;
    const helperExited = new Promise<void>((r) => (tallied = r));
    let handedOver!: () => void;
    const relayOwnsPeer = new Promise<void>((r) => (handedOver = r));
    const relay = await openRelay(join(dir, 'r.sock'), async () => {
      const c = createConnection({ host: '127.0.0.1', port: peerPort, allowHalfOpen: true });
      await new Promise((r) => c.once('connect', r));
      await farReady;
      // The far end speaks first, and ferryd has read it before the relay takes the socket (as detachSocket leaves it).
      far.write(head);
      await new Promise((r) => c.once('readable', r));
      c.pause();
      setImmediate(handedOver);
      return c;
    }, (m) => {
      logged.push(m);
      if (/relayed \d+ bytes forward/.test(m)) tallied();
    }, copy);
    const qemu = createConnection({ path: relay.path, allowHalfOpen: true });
    await new Promise((r) => qemu.once('connect', r));
    const atQemu = collect(qemu);
    await relayOwnsPeer;
    const atFar = collect(far);
    await Promise.all([feed(qemu, down), feed(far, up)]);
    const [gotQemu, gotFar] = await Promise.all([atQemu, atFar]);
    expect(sha(gotFar)).toBe(sha(down));
    expect(gotQemu.length).toBe(head.length + up.length);
    expect(sha(gotQemu)).toBe(sha(Buffer.concat([head, up])));
    if (copy !== 'node') {
      // Both directions ended, so the helper exits and ferryd logs what it moved and the CPU it used.
      await helperExited;
      expect(logged.join('\n')).toContain(`relayed ${down.length} bytes forward and ${head.length + up.length} back`);
      expect(helperCpuInLog(logged.join('\n'))).toBeDefined();
    }
    relay.close();
  }, 60_000);

  it('stops reading while the receiver is stalled (bounded memory) and then delivers everything', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-relay-'));
    const data = randomBytes(64 * 1024 * 1024);
    let received!: Promise<Buffer>;
    const peerSrv = createServer((s) => (received = collect(s, 1500)));
    await listen(peerSrv, 0);
    const relay = await openRelay(join(dir, 'r.sock'), () => new Promise((r) => {
      const c = createConnection({ host: '127.0.0.1', port: port(peerSrv) }, () => r(c));
    }), () => undefined, copy);
    const qemu = createConnection({ path: relay.path });
    await new Promise((r) => qemu.once('connect', r));
    let accepted = 0;
    const sent = feed(qemu, data);
    const probe = setInterval(() => (accepted = qemu.bytesWritten - qemu.writableLength), 50);
    await new Promise((r) => setTimeout(r, 1000));
    // While the receiver reads nothing, the relay may hold its window plus what the kernels buffer, not the whole stream.
    const whileStalled = accepted;
    await sent;
    const got = await received;
    clearInterval(probe);
    expect(whileStalled).toBeLessThan(40 * 1024 * 1024);
    expect(sha(got)).toBe(sha(data));
    relay.close();
    peerSrv.close();
    qemu.destroy();
  }, 60_000);

  it('relays a handed-over daemon connection, bytes buffered before the hand-over first', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-relay-'));
    const data = randomBytes(32 * 1024 * 1024);
    const conn = new Promise<Socket>((resolve) => {
      const srv = createServer((s) => {
        srv.close();
        resolve(s);
      });
      void listen(srv, 0).then(() => {
        const client = createConnection({ host: '127.0.0.1', port: port(srv) });
        client.once('connect', () => {
          // The first bytes arrive before the relay is attached; the rest after.
          client.write(data.subarray(0, 100_000));
          setTimeout(() => void feed(client, data.subarray(100_000)), 200);
        });
      });
    });
    const server = await conn;
    const api = new ApiConnection(server, 'tcp', 'test', new Map(), () => undefined);
    let apiClosed = false;
    api.once('close', () => (apiClosed = true));
    const raw = api.takeOverSocket();
    await new Promise((r) => setTimeout(r, 100));
    let received: Promise<Buffer> | undefined;
    const qemuSrv = createServer((s) => (received = collect(s)));
    await listen(qemuSrv, join(dir, 'q.sock'));
    attachToQemu(raw, join(dir, 'q.sock'), () => undefined, copy);
    await new Promise<void>((r) => {
      const t = setInterval(() => {
        if (received) {
          clearInterval(t);
          r();
        }
      }, 10);
    });
    const got = (await received)!;
    expect(got.length).toBe(data.length);
    expect(sha(got)).toBe(sha(data));
    // The API connection lets go of the socket once the relay owns it.
    expect(apiClosed).toBe(true);
    qemuSrv.close();
  }, 60_000);
});

describe.each(COPIES)('tunnel relay when a side fails (%s)', (copy) => {
  /** A relay whose peer side is a loopback connection; resolves once QEMU's side is connected and the peer accepted. */
  async function established() {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-relay-'));
    let accepted!: (s: Socket) => void;
    const remote = new Promise<Socket>((r) => (accepted = r));
    const peerSrv = createServer((s) => {
      peerSrv.close();
      s.on('error', () => undefined);
      accepted(s);
    });
    await listen(peerSrv, 0);
    let local!: Socket;
    const relay = await openRelay(join(dir, 'r.sock'), () => new Promise((r) => {
      local = createConnection({ host: '127.0.0.1', port: port(peerSrv) }, () => r(local));
    }), () => undefined, copy);
    const qemu = createConnection({ path: relay.path });
    qemu.on('error', () => undefined);
    const peer = await remote;
    // Established means bytes flow: one from QEMU's side reaches the peer.
    qemu.write('Q');
    await new Promise((r) => peer.once('data', r));
    return { relay, qemu, peer, local: () => local };
  }

  it('logs why the tunnel could not be opened and closes QEMU\'s side', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-relay-'));
    const logged: string[] = [];
    const relay = await openRelay(join(dir, 'r.sock'), () => Promise.reject(new Error('the destination refused the tunnel')), (m) => logged.push(m), copy);
    const qemu = createConnection({ path: relay.path });
    qemu.on('error', () => undefined);
    await closed(qemu);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toContain('the destination refused the tunnel');
    expect(logged[0]).toContain(relay.path);
    relay.close();
  });

  // ferryd's own relay only: the helper's sockets are no longer ferryd's to destroy (see the reset test below).
  it.skipIf(copy !== 'node')('closes QEMU\'s side when the peer connection is destroyed without an end', async () => {
    const { relay, qemu, peer, local } = await established();
    // The daemon connection dies locally (e.g. a keepalive timeout): 'close', no 'end', no 'error'.
    local().destroy();
    await closed(qemu);
    await closed(peer);
    relay.close();
  }, 5_000);

  it('closes QEMU\'s side when the far end of the peer connection resets', async () => {
    const { relay, qemu, peer } = await established();
    peer.resetAndDestroy();
    await closed(qemu);
    relay.close();
  }, 5_000);

  it('cuts a relay still open a minute after close, on both sides, also a QEMU connection still waiting for its peer', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-relay-'));
    let opened!: () => void;
    const opening = new Promise<void>((r) => (opened = r));
    // The destination never answers: QEMU's connection waits for a peer that never comes.
    const relay = await openRelay(join(dir, 'r.sock'), () => {
      opened();
      return new Promise<never>(() => undefined);
    }, () => undefined, copy);
    const qemu = createConnection({ path: relay.path });
    qemu.on('error', () => undefined);
    await opening;
    closeAndLetStuckTimerFire(relay);
    await closed(qemu);
  }, 5_000);

  it('cuts both sides of an established relay a minute after close', async () => {
    const { relay, qemu, peer } = await established();
    closeAndLetStuckTimerFire(relay);
    await closed(peer);
    await closed(qemu);
  }, 5_000);
});

/** Closes `relay` and lets its one-minute stuck timer fire at once (fake timers for just that). */
function closeAndLetStuckTimerFire(relay: { close(): void }): void {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  try {
    relay.close();
    vi.advanceTimersByTime(60_000);
  } finally {
    vi.useRealTimers();
  }
}
