/**
 * The byte relay of a TUNNELLED migration. On the source, QEMU connects to
 * a unix socket of ferryd and its stream is piped into a daemon-to-daemon
 * connection; on the destination, that connection is piped into the unix
 * socket QEMU listens on.
 *
 * When both sides are plain sockets (a ferry+tcp or ferry+unix daemon
 * connection, not TLS, not a libvirt stream), the bytes are moved by
 * native/ferry-relay, a small helper that ferryd hands both sockets to: it
 * splices them through a pipe in the kernel, so no byte enters ferryd.
 * Otherwise (or with FERRY_TUNNEL_RELAY=node, or when the helper is not
 * built) ferryd copies them itself, pausing the reader whenever the writer
 * has a window's worth queued, so memory stays bounded and a slow link
 * slows QEMU down. docs/performance.md ("The tunnel after issue 17") has the measurements
 * behind the choice.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { createConnection, createServer, Socket, type NetConnectOpts } from 'node:net';
import { unlink } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FerryError } from '../errors/index.js';

/**
 * How a relay between two plain sockets moves bytes: `splice` and
 * `readwrite` in the native helper (kernel splice through a pipe, or
 * read/write with one reused buffer), `node` in ferryd's own event loop.
 * Sides that are not plain sockets always use `node`.
 */
export type RelayCopy = 'splice' | 'readwrite' | 'node';

/**
 * The native helper, built by `make -C native` (scripts/setup.sh does):
 * native/build/ferry-relay of the checkout this module is in, found
 * upwards from it (src/, dist/, or a copy of dist/ inside the checkout).
 */
export const RELAY_HELPER = findUp(dirname(fileURLToPath(import.meta.url)), join('native', 'build', 'ferry-relay'));

function findUp(from: string, rel: string): string {
  for (let dir = from, i = 0; i < 8; i++, dir = dirname(dir)) {
    if (existsSync(join(dir, rel))) return join(dir, rel);
    if (dirname(dir) === dir) break;
  }
  return join(from, '..', '..', rel);
}

/** The copy ferryd uses: FERRY_TUNNEL_RELAY when set (for measurements), else splice when the helper is built. */
function defaultRelayCopy(env: NodeJS.ProcessEnv = process.env): RelayCopy {
  const asked = env.FERRY_TUNNEL_RELAY;
  if (asked === 'node' || asked === 'splice' || asked === 'readwrite') return asked === 'node' || existsSync(RELAY_HELPER) ? asked : 'node';
  return existsSync(RELAY_HELPER) ? 'splice' : 'node';
}

let processDefault: RelayCopy | undefined;
const relayCopy = (): RelayCopy => (processDefault ??= defaultRelayCopy());

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
export async function openRelay(path: string, open: () => Promise<Duplex>, log: (msg: string) => void, copy: RelayCopy = relayCopy()): Promise<Relay> {
  await unlink(path).catch(() => undefined);
  // Every socket or helper of the relay, so that a stuck relay can be cut on both sides.
  const sockets = new Set<Cuttable>();
  const track = (s: Cuttable) => {
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
        const helper = splice(qemu, peer, copy, (msg) => log(`migration tunnel ${path}: ${msg}`));
        if (helper) track(helper);
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
export function attachToQemu(peer: Duplex, path: string, log: (msg: string) => void = () => undefined, copy: RelayCopy = relayCopy()): void {
  const qemu = createConnection({ path, highWaterMark: RELAY_CHUNK } as NetConnectOpts);
  // Until splice owns both sides: a peer that dies while QEMU's socket connects takes that socket down too.
  const peerGone = () => qemu.destroy();
  peer.once('close', peerGone);
  peer.on('error', () => undefined);
  qemu.once('connect', () => {
    peer.off('close', peerGone);
    splice(peer, qemu, copy, (msg) => log(`migration tunnel to ${path}: ${msg}`));
  });
  qemu.once('error', () => peer.destroy());
}

/** What a stuck relay can be cut through: a socket, or the helper process. */
interface Cuttable {
  destroy(): void;
  once(event: 'close', listener: () => void): unknown;
}

/**
 * Connects two duplex streams both ways, with the helper when both are
 * plain sockets and `copy` asks for it (returning the helper), else in
 * ferryd. Either way: the end of one side's data ends the other after
 * everything buffered has been written (so the tail of the stream is never
 * dropped); an error on either side, or a side that closes without ending
 * its data, breaks both.
 */
function splice(a: Duplex, b: Duplex, copy: RelayCopy, log: (msg: string) => void): Cuttable | undefined {
  if (copy !== 'node' && isPlainSocket(a) && isPlainSocket(b) && !a.destroyed && !b.destroyed) return handToHelper(a, b, copy, log);
  pipeBoth(a, b);
  return undefined;
}

const isPlainSocket = (s: Duplex): s is Socket => s instanceof Socket && !(s instanceof TLSSocket);

/** Whether this process has said once that tunnels go through the helper. */
let announced = false;

/**
 * Hands sockets `a` and `b` to native/ferry-relay as its fds 3 and 4 and
 * lets go of them. Both must be paused, as the relay's callers leave them.
 * What ferryd already read from either socket (bytes unshifted at a
 * hand-over, or read while paused) is passed on the helper's stdin, which
 * writes it before relaying, so nothing is dropped or reordered. Writes
 * ferryd queued on either socket are flushed first.
 */
function handToHelper(a: Socket, b: Socket, copy: 'splice' | 'readwrite', log: (msg: string) => void): Cuttable {
  const done = new EventEmitter();
  let child: ChildProcess | undefined;
  let over = false;
  const finish = () => {
    if (over) return;
    over = true;
    done.emit('close');
  };
  // Before the hand-over a broken side breaks both, as in ferryd's own relay.
  const failEarly = () => {
    a.destroy();
    b.destroy();
    finish();
  };
  for (const s of [a, b]) {
    s.on('error', failEarly);
    s.once('close', failEarly);
  }
  const flushed = (s: Socket) => (s.writableLength === 0 ? Promise.resolve() : new Promise<void>((r) => s.once('drain', () => r())));
  void Promise.all([flushed(a), flushed(b)]).then(() => {
    if (over) return;
    // From here to the sockets' destruction nothing yields to the event loop, so ferryd reads nothing more from them.
    const forB = drainBuffered(a);
    const forA = drainBuffered(b);
    for (const s of [a, b]) {
      s.off('error', failEarly);
      s.off('close', failEarly);
    }
    if (!announced) {
      announced = true;
      log(`relayed by ${RELAY_HELPER} (--copy ${copy}), not in ferryd`);
    }
    try {
      child = spawn(RELAY_HELPER, ['--copy', copy], { stdio: ['pipe', 'pipe', 'pipe', a, b] });
    } catch (err) {
      log(`cannot start ${RELAY_HELPER}: ${(err as Error).message}; closing both sides, so the migration fails`);
      failEarly();
      return;
    }
    // The helper holds its own copies of both sockets now; ferryd's go without touching the connections.
    a.destroy();
    b.destroy();
    let stderr = '';
    let stdout = '';
    child.stderr!.setEncoding('utf8').on('data', (t: string) => (stderr = (stderr + t).slice(-2000)));
    child.stdout!.setEncoding('utf8').on('data', (t: string) => (stdout = (stdout + t).slice(-2000)));
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(Buffer.concat([lengthPrefix(forB.length), forB, lengthPrefix(forA.length), forA]));
    child.once('error', (err) => {
      log(`cannot start ${RELAY_HELPER}: ${err.message}; the migration fails`);
      finish();
    });
    // 'close', not 'exit': the helper's last line on stdout is read by then.
    child.once('close', (code, signal) => {
      const tally = relayTally(stdout);
      if (tally) log(tallyLine(tally));
      if (code !== 0) log(`the relay helper ended with ${signal ?? `status ${code}`}${stderr.trim() ? `: ${stderr.trim()}` : ''}`);
      finish();
    });
  });
  return {
    destroy: () => (child ? child.kill('SIGKILL') : failEarly()),
    once: (event, listener) => done.once(event, listener),
  };
}

/** The helper's exit line (see native/ferry-relay.c): bytes each way and its CPU time. */
export function relayTally(stdout: string): { forward: number; back: number; userMs: number; sysMs: number } | undefined {
  const m = /relayed 3to4=(\d+) 4to3=(\d+) user_us=(\d+) sys_us=(\d+)/.exec(stdout);
  return m ? { forward: Number(m[1]), back: Number(m[2]), userMs: Number(m[3]) / 1000, sysMs: Number(m[4]) / 1000 } : undefined;
}

/** The line ferryd logs when a helper exits: what it moved, and its CPU (which benchmarks count as the daemon's). */
function tallyLine(t: NonNullable<ReturnType<typeof relayTally>>): string {
  return `relayed ${t.forward} bytes forward and ${t.back} back; helper CPU ${(t.userMs + t.sysMs).toFixed(1)} ms (user ${t.userMs.toFixed(1)}, sys ${t.sysMs.toFixed(1)})`;
}

/** The CPU of every relay helper that exited in a piece of ferryd's log (its {@link tallyLine}s), ms; undefined without one. */
export function helperCpuInLog(log: string): { user: number; sys: number } | undefined {
  let user = 0;
  let sys = 0;
  let found = false;
  for (const m of log.matchAll(/helper CPU [\d.]+ ms \(user ([\d.]+), sys ([\d.]+)\)/g)) {
    found = true;
    user += Number(m[1]);
    sys += Number(m[2]);
  }
  return found ? { user, sys } : undefined;
}

/** Everything a paused socket has buffered in ferryd. */
function drainBuffered(s: Socket): Buffer {
  const parts: Buffer[] = [];
  for (let chunk = s.read() as Buffer | null; chunk !== null; chunk = s.read() as Buffer | null) parts.push(chunk);
  return Buffer.concat(parts);
}

function lengthPrefix(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/**
 * Pipes two duplex streams into each other in ferryd (see {@link splice}).
 */
function pipeBoth(a: Duplex, b: Duplex): void {
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
