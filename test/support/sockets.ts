/**
 * Socket helpers of the unit tests: connected TCP pairs on the loopback,
 * listening servers, and waiting for a socket event without sleeping.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

/** Starts `srv` on a unix socket path, or on a loopback TCP port when given a number (0: any free port). */
export function listen(srv: Server, at: string | number): Promise<void> {
  return new Promise((resolve) => (typeof at === 'string' ? srv.listen(at, () => resolve()) : srv.listen(at, '127.0.0.1', () => resolve())));
}

/** The TCP port `srv` listens on. */
export function portOf(srv: Server): number {
  return (srv.address() as { port: number }).port;
}

/** A connected loopback TCP pair: `server` is the accepted end, `client` the connecting one; `close` stops the listener. */
export function socketPair(): Promise<{ server: Socket; client: Socket; close: () => void }> {
  return new Promise((resolve) => {
    let client!: Socket;
    const srv = createServer((server) => resolve({ server, client, close: () => srv.close() }));
    void listen(srv, 0).then(() => {
      client = createConnection({ host: '127.0.0.1', port: portOf(srv) });
    });
  });
}

/** Resolves when `s` has closed (at once if it already has). */
export function closed(s: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (s.closed) resolve();
    else s.once('close', () => resolve());
  });
}
