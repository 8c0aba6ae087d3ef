/**
 * A short measurement of the path a migration stream would take: the
 * destination listens once on a port of its migration range, the source
 * connects to the destination's data address and sends for about a
 * second, and the destination answers with what it received and when.
 * The rate counts from the first megabyte on, so a link shaper's initial
 * burst does not inflate it. Every step is bounded in time.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { FerryError } from '../errors/index.js';
import type { PortReservations } from './ports.js';

/** How long the source sends (ms). */
export const PROBE_SEND_MS = 1000;
/** The most the source sends (bytes), so a fast path takes less than the full second. */
export const PROBE_MAX_BYTES = 512 * 1024 * 1024;
/** Bytes not counted at the start (a shaper's burst, TCP's slow start). */
const WARMUP_BYTES = 1024 * 1024;
/** How long the destination waits for the source to connect and finish (ms). */
const PROBE_WAIT_MS = 10_000;

/** What the destination measured. */
export interface ProbeResult {
  /** Bytes counted (after the warm-up). */
  bytes: number;
  /** From the end of the warm-up to the last byte, ms. */
  ms: number;
  /** The rate, bytes per second (0 when too little arrived to tell). */
  bytesPerS: number;
}

/**
 * Destination: listens on a free port of the migration range on `host`
 * for one probe connection; returns the port. The answer goes back on the
 * same connection as one JSON line once the source has finished sending.
 */
export async function listenForProbe(ports: PortReservations, host: string, log: (msg: string) => void): Promise<number> {
  let server: Server | undefined;
  let port = 0;
  await ports.onFreePort(host, undefined, true, (p) => new Promise<void>((resolve, reject) => {
    const s = createServer((sock) => {
      s.close();
      measure(sock);
    });
    s.once('error', reject);
    s.listen(p, host, () => {
      server = s;
      resolve();
    });
  }), (p) => (port = p));
  const srv = server!;
  const giveUp = setTimeout(() => {
    log(`bandwidth probe on port ${port}: nobody came within ${PROBE_WAIT_MS} ms`);
    srv.close();
  }, PROBE_WAIT_MS);
  giveUp.unref();
  srv.once('close', () => {
    clearTimeout(giveUp);
    ports.release(port);
  });
  return port;
}

/** Counts what arrives on `sock` until the sender half-closes, then answers with the measurement. */
function measure(sock: Socket): void {
  let total = 0;
  let countFrom = 0;
  let lastAt = 0;
  sock.on('error', () => undefined);
  const cut = setTimeout(() => sock.destroy(), PROBE_WAIT_MS);
  sock.on('data', (chunk: Buffer) => {
    const before = total;
    total += chunk.length;
    lastAt = performance.now();
    if (before < WARMUP_BYTES && total >= WARMUP_BYTES) countFrom = lastAt;
  });
  sock.once('end', () => {
    clearTimeout(cut);
    const bytes = Math.max(0, total - WARMUP_BYTES);
    const ms = countFrom > 0 ? lastAt - countFrom : 0;
    const result: ProbeResult = { bytes, ms: Math.round(ms * 1000) / 1000, bytesPerS: ms > 0 ? Math.round((bytes / ms) * 1000) : 0 };
    sock.end(`${JSON.stringify(result)}\n`);
  });
}

/** Source: sends to the destination's probe at `host:port` for about a second and returns its measurement. */
export function sendProbe(host: string, port: number): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ host, port });
    const chunk = Buffer.alloc(256 * 1024, 0x5a);
    let sent = 0;
    let answer = '';
    let done = false;
    const finish = (err: Error | null, r?: ProbeResult) => {
      if (done) return;
      done = true;
      clearTimeout(bound);
      sock.destroy();
      if (err) reject(err);
      else resolve(r!);
    };
    const bound = setTimeout(() => finish(new FerryError('operation_timeout', `the bandwidth probe to ${host}:${port} did not finish within ${PROBE_WAIT_MS} ms`)), PROBE_WAIT_MS);
    sock.once('error', (err) => finish(new FerryError('no_connect', `cannot measure the path to ${host}:${port}: ${err.message}`)));
    sock.on('data', (b: Buffer) => {
      answer += b.toString('utf8');
      if (answer.length > 4096) finish(new FerryError('rpc', 'the bandwidth probe answered more than a measurement'));
    });
    sock.once('end', () => {
      try {
        const r = JSON.parse(answer.trim()) as ProbeResult;
        if (typeof r.bytesPerS !== 'number' || typeof r.bytes !== 'number' || typeof r.ms !== 'number') throw new Error('fields missing');
        finish(null, r);
      } catch (err) {
        finish(new FerryError('rpc', `the bandwidth probe's answer cannot be read: ${(err as Error).message}`));
      }
    });
    sock.once('connect', () => {
      const started = performance.now();
      const pump = () => {
        while (!done) {
          if (performance.now() - started >= PROBE_SEND_MS || sent >= PROBE_MAX_BYTES) {
            sock.end();
            return;
          }
          sent += chunk.length;
          if (!sock.write(chunk)) {
            sock.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
  });
}
