/**
 * The tunnel hand-over: bytes that reach a daemon connection after it was
 * turned into a tunnel, but before the relay to QEMU is connected, must be
 * delivered, not dropped (a dropped first chunk is "Not a migration stream"
 * on the destination).
 */
import { createConnection, createServer, type Socket } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ApiConnection } from '../../src/api/server.js';
import { attachToQemu } from '../../src/migration/tunnel.js';

function pair(): Promise<{ server: Socket; client: Socket; close: () => void }> {
  return new Promise((resolve) => {
    const srv = createServer((server) => resolve({ server, client, close: () => srv.close() }));
    let client: Socket;
    srv.listen(0, '127.0.0.1', () => {
      client = createConnection({ host: '127.0.0.1', port: (srv.address() as { port: number }).port });
    });
  });
}

describe('tunnel hand-over', () => {
  it('keeps bytes that arrive between takeOverSocket and the relay being attached', async () => {
    const { server, client, close } = await pair();
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
});
