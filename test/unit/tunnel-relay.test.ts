/**
 * The tunnel relay moves a migration stream byte for byte: the whole
 * stream, in order, its end included, also when the receiving side is slow
 * (the relay must stop reading rather than buffer without bound), and from
 * a daemon connection that was handed over with bytes already buffered.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ApiConnection } from '../../src/api/server.js';
import { attachToQemu, openRelay } from '../../src/migration/tunnel.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const listen = (srv: Server, arg: string | number) => new Promise<void>((r) => (typeof arg === 'string' ? srv.listen(arg, () => r()) : srv.listen(arg, '127.0.0.1', () => r())));
const port = (srv: Server) => (srv.address() as { port: number }).port;

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

describe('tunnel relay', () => {
  it('relays a stream from the QEMU-side unix socket to the peer connection unchanged, end included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-relay-'));
    const data = randomBytes(48 * 1024 * 1024);
    let received!: Promise<Buffer>;
    const peerSrv = createServer((s) => (received = collect(s)));
    await listen(peerSrv, 0);
    const relay = await openRelay(join(dir, 'r.sock'), () => new Promise((r) => {
      const c = createConnection({ host: '127.0.0.1', port: port(peerSrv) }, () => r(c));
    }));
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

  it('stops reading while the receiver is stalled (bounded memory) and then delivers everything', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-relay-'));
    const data = randomBytes(64 * 1024 * 1024);
    let received!: Promise<Buffer>;
    const peerSrv = createServer((s) => (received = collect(s, 1500)));
    await listen(peerSrv, 0);
    const relay = await openRelay(join(dir, 'r.sock'), () => new Promise((r) => {
      const c = createConnection({ host: '127.0.0.1', port: port(peerSrv) }, () => r(c));
    }));
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
    let received!: Promise<Buffer>;
    const qemuSrv = createServer((s) => (received = collect(s)));
    await listen(qemuSrv, join(dir, 'q.sock'));
    attachToQemu(raw, join(dir, 'q.sock'));
    await new Promise<void>((r) => {
      const t = setInterval(() => {
        if (received) {
          clearInterval(t);
          r();
        }
      }, 10);
    });
    const got = await received;
    expect(got.length).toBe(data.length);
    expect(sha(got)).toBe(sha(data));
    // The API connection lets go of the socket once the relay owns it.
    expect(apiClosed).toBe(true);
    qemuSrv.close();
  }, 60_000);
});
