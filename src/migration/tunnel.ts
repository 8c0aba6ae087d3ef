/**
 * The byte relay of a TUNNELLED migration. On the source, QEMU connects to
 * a unix socket of ferryd and its stream is piped into a daemon-to-daemon
 * connection; on the destination, that connection is piped into the unix
 * socket QEMU listens on. `pipe` pauses the reader whenever the writer's
 * buffer is full, so memory stays bounded and a slow link slows QEMU down.
 */
import { createConnection, createServer, type NetConnectOpts, type Socket } from 'node:net';
import { unlink } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import { FerryError } from '../errors/index.js';

/** Read size of the relay's sockets. */
const RELAY_CHUNK = 1024 * 1024;

/** A listening relay endpoint for the source QEMU. */
export interface Relay {
  /** The unix socket QEMU migrates to (`unix:PATH`). */
  path: string;
  close(): void;
}

/**
 * Listens on `path`; when QEMU connects, opens the peer side with `open`
 * and pipes both ways. A failure on either side ends both, which QEMU
 * reports as a failed migration; a peer that cannot be opened is logged
 * with `log` (QEMU itself only sees its connection close).
 */
export async function openRelay(path: string, open: () => Promise<Duplex>, log: (msg: string) => void): Promise<Relay> {
  await unlink(path).catch(() => undefined);
  // Every socket of the relay, QEMU's and the peers', so that a stuck relay can be cut on both sides.
  const sockets = new Set<Duplex>();
  const track = (s: Duplex) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  // Big reads mean fewer trips through the event loop per megabyte relayed.
  const server = createServer({ pauseOnConnect: true, highWaterMark: RELAY_CHUNK }, (qemu: Socket) => {
    track(qemu);
    // QEMU's errors show in its own migration status; the relay only has to let go of the socket.
    qemu.on('error', () => undefined);
    open().then(
      (peer) => {
        track(peer);
        splice(qemu, peer);
        qemu.resume();
      },
      (err: unknown) => {
        log(`migration tunnel ${path}: cannot open the connection to the destination daemon: ${err instanceof Error ? err.message : String(err)}; closing QEMU's side, so the migration fails`);
        qemu.destroy();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new FerryError('operation_failed', `cannot open the tunnel socket ${path}: ${err.message}`)));
    server.listen(path, () => resolve());
  });
  return {
    path,
    close() {
      // QEMU reports `completed` once its last byte is in our socket, not once we forwarded it:
      // the pipes end by themselves when the data has gone. Only a relay stuck for a minute is cut, on both sides.
      server.close();
      const stuck = setTimeout(() => {
        for (const s of sockets) s.destroy();
      }, 60_000);
      stuck.unref();
      void unlink(path).catch(() => undefined);
    },
  };
}

/**
 * Connects `peer` (a daemon connection handed over for the stream) to the
 * QEMU listening on `path`. If either side fails, before or after the
 * connection to QEMU is made, both are closed.
 */
export function attachToQemu(peer: Duplex, path: string): void {
  const qemu = createConnection({ path, highWaterMark: RELAY_CHUNK } as NetConnectOpts);
  // Until splice owns both sides: a peer that dies while QEMU's socket connects takes that socket down too.
  const peerGone = () => qemu.destroy();
  peer.once('close', peerGone);
  peer.on('error', () => undefined);
  qemu.once('connect', () => {
    peer.off('close', peerGone);
    splice(peer, qemu);
  });
  qemu.once('error', () => peer.destroy());
}

/**
 * Pipes two duplex streams into each other. The end of one side's data
 * ends the other after everything buffered has been written (so the tail
 * of the stream is never dropped); an error on either side, or a side that
 * closes without ending its data (destroyed), destroys both.
 */
function splice(a: Duplex, b: Duplex): void {
  // A bulk stream: let TCP coalesce segments (the control connection keeps Nagle off).
  for (const s of [a, b]) if ('setNoDelay' in s && typeof s.setNoDelay === 'function') (s as Socket).setNoDelay(false);
  const fail = () => {
    a.destroy();
    b.destroy();
  };
  if (a.destroyed || b.destroyed) {
    fail();
    return;
  }
  pump(a, b);
  pump(b, a);
  // A side handed over paused (see takeOverSocket/detachSocket) flows from here.
  a.resume();
  b.resume();
  a.on('error', fail);
  b.on('error', fail);
  // A side that closes after both its directions ended cleanly changes nothing (the other side still flushes the tail);
  // one that closes without (a local destroy, a keepalive timeout) cuts the other side.
  for (const s of [a, b]) {
    s.once('close', () => {
      if (!s.readableEnded || !s.writableFinished) fail();
    });
  }
}

/** Bytes the relay lets queue towards one side before it stops reading the other. */
const RELAY_WINDOW = 8 * 1024 * 1024;

/**
 * Copies `from` into `to` like `pipe`, but keeps up to {@link RELAY_WINDOW}
 * bytes in flight instead of stopping at the socket's 16 KiB mark, so the
 * relay is not stop-and-go; memory stays bounded by the window.
 */
function pump(from: Duplex, to: Duplex): void {
  from.on('data', (chunk: Buffer) => {
    to.write(chunk);
    if (to.writableLength > RELAY_WINDOW && !from.isPaused()) {
      from.pause();
      to.once('drain', () => from.resume());
    }
  });
  from.once('end', () => to.end());
}
