/**
 * Listening sockets shared by ferryd's servers (the native API and the
 * libvirt protocol): a unix socket only its owner may use, mutual TLS that
 * refuses clients without a certificate from our CA, and plain TCP.
 */
import { createServer as createNetServer, createConnection, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { chmod, unlink, stat } from 'node:fs/promises';
import { FerryError } from '../errors/index.js';
import type { TlsCredentials } from './tls.js';

/** How a connection reached the daemon. */
export type Transport = 'unix' | 'tls' | 'tcp';

/** Called for every accepted connection, with a peer description for logs. */
export type AcceptFn = (socket: Socket, transport: Transport, peer: string) => void;

/**
 * Listens on a unix socket readable and writable by its owner only. A
 * stale socket file is replaced; a live one (another daemon) is refused.
 */
export async function listenUnixOwnerOnly(path: string, accept: AcceptFn): Promise<Server> {
  if (await socketIsLive(path)) {
    throw new FerryError('operation_failed', `another daemon is already listening on ${path}`);
  }
  await unlink(path).catch(() => undefined);
  const server = createNetServer((socket) => accept(socket, 'unix', 'local'));
  // umask closes the window between bind() and chmod() in which the socket would be world-accessible.
  const oldMask = process.umask(0o177);
  try {
    await listen(server, { path });
  } finally {
    process.umask(oldMask);
  }
  await chmod(path, 0o600);
  return server;
}

/** Listens for mutual-TLS connections: a client without a certificate signed by our CA is refused. */
export async function listenMutualTls(host: string, port: number, creds: TlsCredentials, accept: AcceptFn, log: (msg: string) => void): Promise<Server> {
  const server = createTlsServer(
    { ca: creds.ca, cert: creds.cert, key: creds.key, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2', handshakeTimeout: 10_000 },
    (socket: TLSSocket) => {
      const subject = socket.getPeerCertificate()?.subject?.CN ?? 'unknown';
      accept(socket, 'tls', `${socket.remoteAddress}:${socket.remotePort} CN=${subject}`);
    },
  );
  server.on('tlsClientError', (err, socket) => {
    log(`TLS handshake from ${socket.remoteAddress ?? '?'} refused: ${err.message}`);
  });
  await listen(server, { host, port });
  return server;
}

/** Listens on plain TCP with no authentication; the caller warns. */
export async function listenPlainTcp(host: string, port: number, accept: AcceptFn): Promise<Server> {
  const server = createNetServer((socket) => accept(socket, 'tcp', `${socket.remoteAddress}:${socket.remotePort}`));
  await listen(server, { host, port });
  return server;
}

/** The port a TCP or TLS server listens on (after binding port 0). */
export function addressPort(server: Server): number {
  const a = server.address();
  return typeof a === 'object' && a ? a.port : 0;
}

/** Closes `server`, resolving once it stopped listening. */
export function closeServer(server: Server): Promise<void> {
  return new Promise<void>((r) => server.close(() => r()));
}

function listen(server: Server, opts: { path?: string; host?: string; port?: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(new FerryError('system_error', `cannot listen on ${opts.path ?? `${opts.host}:${opts.port}`}: ${err.message}`)));
    server.listen(opts, () => resolve());
  });
}

async function socketIsLive(path: string): Promise<boolean> {
  try {
    await stat(path);
  } catch {
    return false;
  }
  return new Promise((resolve) => {
    const s = createConnection({ path });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
