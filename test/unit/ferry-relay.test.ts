/**
 * native/ferry-relay on its own (the relay's stream tests run it through
 * src/migration/tunnel.ts): its bounds. A relay whose one direction ended
 * while the other stays silent is broken after --other-direction-s: both
 * connections are reset, stderr says why, and the exit line tells what
 * moved. Bytes ferryd had buffered come first.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { RELAY_HELPER, relayTally } from '../../src/migration/tunnel.js';
import { closed, listen, portOf } from '../support/sockets.js';

/** A connected TCP pair on loopback: the end handed to the helper, and the far end the test keeps. */
async function tcpPair(): Promise<{ near: Socket; far: Socket; server: Server }> {
  let far!: Socket;
  const server = createServer({ allowHalfOpen: true }, (s) => (far = s));
  await listen(server, 0);
  const near = createConnection({ host: '127.0.0.1', port: portOf(server), allowHalfOpen: true });
  await new Promise((r) => near.once('connect', r));
  while (!far) await new Promise((r) => setImmediate(r));
  near.pause();
  return { near, far, server };
}

describe.skipIf(!existsSync(RELAY_HELPER))('ferry-relay', () => {
  it('breaks a relay whose other direction stays open after one ended, and says what moved', async () => {
    const a = await tcpPair();
    const b = await tcpPair();
    const child = spawn(RELAY_HELPER, ['--other-direction-s', '1'], { stdio: ['pipe', 'pipe', 'pipe', a.near, b.near] });
    a.near.destroy();
    b.near.destroy();
    child.stdin!.end(Buffer.alloc(8));
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (t: string) => (stdout += t));
    child.stderr!.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    for (const s of [a.far, b.far]) s.on('error', () => undefined);
    const atB: Buffer[] = [];
    b.far.on('data', (d: Buffer) => atB.push(d));
    // One direction (a -> b) carries its bytes and ends; b -> a stays silent.
    a.far.end(Buffer.from('the whole stream'));
    const code = await new Promise<number | null>((r) => child.once('close', r));
    // a's far end was still sending: it sees the reset. b's far end had its stream ended cleanly; what it sends now is refused.
    await closed(a.far);
    b.far.write('late');
    await closed(b.far);
    expect(code).toBe(1);
    expect(stderr).toContain('still open after the other direction ended');
    expect(Buffer.concat(atB).toString()).toBe('the whole stream');
    expect(relayTally(stdout)).toMatchObject({ forward: 16, back: 0 });
    a.server.close();
    b.server.close();
  }, 10_000);

  it('exits 0 once both directions ended, each far end having seen the other\'s bytes and end', async () => {
    const a = await tcpPair();
    const b = await tcpPair();
    const child = spawn(RELAY_HELPER, [], { stdio: ['pipe', 'pipe', 'pipe', a.near, b.near] });
    a.near.destroy();
    b.near.destroy();
    // Bytes ferryd had read before the hand-over: 3 for b, 2 for a; they arrive first.
    child.stdin!.end(Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from('xyz'), Buffer.from([0, 0, 0, 2]), Buffer.from('uv')]));
    const got = (s: Socket) =>
      new Promise<string>((resolve) => {
        let t = '';
        s.setEncoding('utf8').on('data', (d: string) => (t += d));
        s.once('end', () => resolve(t));
      });
    const atA = got(a.far);
    const atB = got(b.far);
    a.far.end('-from-a');
    b.far.end('-from-b');
    expect(await atB).toBe('xyz-from-a');
    expect(await atA).toBe('uv-from-b');
    expect(await new Promise((r) => child.once('close', r))).toBe(0);
    a.server.close();
    b.server.close();
  }, 10_000);
});
