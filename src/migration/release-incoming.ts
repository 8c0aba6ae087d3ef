/**
 * Releases a destination QEMU that waits for a stream no daemon will ever
 * finish. When the destination daemon is lost before the source started
 * its memory stream (a storage copy still mirroring, say), that QEMU would
 * wait for it forever. QEMU 7.2 exits when an incoming stream fails, so
 * the source opens the stream's endpoint and closes it after a few bytes
 * that are not a migration header. A QEMU that expects TLS only logs the
 * failed handshake: it stays until its daemon restarts and cleans it up.
 */
import { createConnection, type Socket } from 'node:net';
import { qemuInetAddress, qemuUnixPath } from '../flags/index.js';

/** How long the source tries to reach the destination QEMU's listener. */
const RELEASE_TIMEOUT_MS = 3000;

/** Not a migration stream's magic ('QEVM'): QEMU refuses it at once. */
const NOT_A_STREAM = Buffer.from('FERRY-RELEASE\n');

/**
 * Connects to the incoming endpoint `uri` (QEMU's `tcp:HOST:PORT` or
 * `unix:PATH`) and hangs up after a bogus header. Resolves whether or not
 * it got through; never takes longer than {@link RELEASE_TIMEOUT_MS}.
 */
export function releaseIncomingQemu(uri: string): Promise<boolean> {
  const inet = qemuInetAddress(uri);
  const tcp = inet?.transport === 'tcp' ? inet : undefined;
  const unix = qemuUnixPath(uri);
  if (!tcp && unix === undefined) return Promise.resolve(false);
  return new Promise((resolve) => {
    let sock: Socket;
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), RELEASE_TIMEOUT_MS);
    sock = tcp ? createConnection({ host: tcp.host, port: tcp.port }) : createConnection({ path: unix! });
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.end(NOT_A_STREAM, () => done(true)));
  });
}
