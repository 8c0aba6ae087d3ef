/**
 * The tunnel hand-over: bytes that reach a daemon connection after it was
 * turned into a tunnel, but before the relay to QEMU is connected, must be
 * delivered, not dropped (a dropped first chunk is "Not a migration stream"
 * on the destination).
 */
import { createServer, type Socket } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/api/client.js';
import { FrameDecoder, encodeJsonFrame } from '../../src/api/framing.js';
import { ApiConnection } from '../../src/api/server.js';
import { migrationHandlers } from '../../src/api/migration-handlers.js';
import type { Migrations } from '../../src/migration/host-migrations.js';
import { attachToQemu } from '../../src/migration/tunnel.js';
import { closed, listen, socketPair } from '../support/sockets.js';

describe('tunnel hand-over', () => {
  it('keeps bytes that arrive between takeOverSocket and the relay being attached', async () => {
    const { server, client, close } = await socketPair();
    const conn = new ApiConnection(server, 'tcp', 'test', new Map(), () => undefined);
    const raw = conn.takeOverSocket();
    const payload = Buffer.from('QEVM\x00\x00\x00\x03 the first bytes of a stream');
    client.write(payload);
    // The relay connects to QEMU only later.
    await new Promise((r) => setTimeout(r, 100));
    const path = join(mkdtempSync(join(tmpdir(), 'ferry-tunnel-')), 'qemu.sock');
    const received: Buffer[] = [];
    const got = new Promise<Buffer>((resolve) => {
      const qemu = createServer((s) => {
        s.on('data', (d: Buffer) => {
          received.push(d);
          const all = Buffer.concat(received);
          if (all.length >= payload.length) {
            resolve(all);
            s.destroy();
            qemu.close();
          }
        });
      });
      qemu.listen(path, () => attachToQemu(raw, path));
    });
    expect((await got).equals(payload)).toBe(true);
    client.destroy();
    close();
  });

  it('keeps tunnel bytes that arrive in the same read as the hand-over answer (an NBD server speaks first)', async () => {
    const first = Buffer.from('NBDMAGIC\x00\x00\x42\x02\x81\x86\x12\x53 the server speaks first');
    const srv = createServer((s) => {
      const dec = new FrameDecoder();
      s.on('data', (d: Buffer) => {
        for (const f of dec.push(d)) {
          const call = f.kind === 1 ? (f as { message: { id: number } }).message : undefined;
          if (!call) continue;
          // The answer and the first raw bytes of the tunnel in one write: one read on the other side.
          s.write(Buffer.concat([encodeJsonFrame({ type: 'reply', id: call.id, result: { attached: true } }), first]));
        }
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as { port: number }).port;
    const client = await ApiClient.connect(`ferry+tcp://127.0.0.1:${port}/system`);
    await client.callRaw('migration.tunnelAttach', { jobId: 'j', channel: 'nbd' }, { handover: true });
    const raw = client.detachSocket();
    const got = await new Promise<Buffer>((resolve) => {
      const parts: Buffer[] = [];
      raw.on('data', (d: Buffer) => {
        parts.push(d);
        if (Buffer.concat(parts).length >= first.length) resolve(Buffer.concat(parts));
      });
      raw.resume();
    });
    expect(got.equals(first)).toBe(true);
    raw.destroy();
    srv.close();
  });

  it('closes QEMU\'s connection when the daemon connection fails while it is being connected', async () => {
    const { server, client, close } = await socketPair();
    client.on('error', () => undefined);
    const path = join(mkdtempSync(join(tmpdir(), 'ferry-tunnel-')), 'qemu.sock');
    let accepted!: (s: Socket) => void;
    const atQemu = new Promise<Socket>((r) => (accepted = r));
    const qemu = createServer((s) => accepted(s));
    await listen(qemu, path);
    attachToQemu(server, path);
    server.destroy(new Error('connection reset by the source daemon'));
    // QEMU's incoming side must not wait forever on a stream whose other end is gone.
    await closed(await atQemu);
    qemu.close();
    close();
  }, 5_000);

  it('migration.tunnelAttach closes and logs a connection that cannot be handed over (bytes arrived too early)', async () => {
    const { server, client, close } = await socketPair();
    const logged: string[] = [];
    const conn = new ApiConnection(server, 'tcp', 'test', new Map(), () => undefined);
    const fake = { incoming: { tunnelPathOf: () => '/nonexistent/qemu.sock' } } as unknown as Migrations;
    const attach = migrationHandlers(fake, (m) => logged.push(m))['migration.tunnelAttach'];
    // Half a frame header reaches the connection before the tunnel is ready: the hand-over must refuse it.
    const arrived = new Promise((r) => server.once('data', r));
    client.write(Buffer.from([0, 0, 0]));
    await arrived;
    expect(await attach({ jobId: 'job-1', channel: 'migration' }, conn)).toEqual({ attached: true });
    await closed(client);
    expect(logged.join('\n')).toContain('bytes arrived before the tunnel was ready');
    expect(logged.join('\n')).toContain('job-1');
    close();
  }, 5_000);
});
