/**
 * The native API client, used by the CLI and by a daemon calling another
 * daemon. One connection, calls matched to replies by id, events emitted.
 */
import { createConnection, type Socket } from 'node:net';
import { EventEmitter } from 'node:events';
import { FerryError } from '../errors/index.js';
import { FrameDecoder, FrameKind, encodeJsonFrame, type Frame } from './framing.js';
import type { ApiMethod, ApiMethods, CallMessage, EventMessage, PingMessage, PongMessage, ReplyMessage } from './protocol.js';
import { parseConnectionUri, type ConnectionTarget } from './uri.js';
import { DEFAULT_KEEPALIVE, Keepalive, keepaliveBoundMs, type KeepaliveSettings } from './keepalive.js';

/** Options of {@link ApiClient.connect}. */
export interface ConnectOptions {
  /** Give up connecting after this long. */
  timeoutMs?: number;
  /** Default PKI directory for TLS URIs without `pkipath`. */
  pkiDir?: string;
  /** How this client checks that the daemon is alive (libvirt's defaults when omitted). */
  keepalive?: KeepaliveSettings;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: FerryError) => void;
  timer?: NodeJS.Timeout;
  /** A successful answer turns the connection into a raw tunnel: nothing after it is API. */
  handover?: boolean;
}

/**
 * A connection to one ferryd. Emits `event` (name, data) for subscribed
 * events and `close` when the connection ends.
 */
export class ApiClient extends EventEmitter {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly decoder = new FrameDecoder();
  /** Raw tunnel bytes read together with a hand-over answer, returned to the socket by detachSocket(). */
  private tunnelHead: Buffer | undefined;
  private closedError: FerryError | null = null;
  private readonly keepalive: Keepalive;
  /** Settled once, when the connection ends (see {@link whenClosed}). */
  private readonly closedPromise: Promise<FerryError>;
  private resolveClosed!: (err: FerryError) => void;

  private constructor(
    private readonly socket: Socket,
    /** Where this client is connected. */
    readonly target: ConnectionTarget,
    /** The keepalive in force on this connection. */
    readonly keepaliveSettings: KeepaliveSettings,
  ) {
    super();
    this.closedPromise = new Promise((r) => (this.resolveClosed = r));
    socket.setNoDelay(true);
    // A daemon that stops answering without closing (a cut link, a frozen host) ends the connection like one that closed it.
    this.keepalive = new Keepalive(keepaliveSettings, () => this.send({ type: 'ping' }), (silentMs) => {
      this.fail(new FerryError('no_connect', `lost the connection to ${target.uri}: no answer for ${Math.round(silentMs / 1000)} s (keepalive: ${keepaliveSettings.intervalS} s x ${keepaliveSettings.count})`));
      socket.destroy();
    }).start();
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => this.fail(socketError(target, err)));
    socket.on('close', () => this.fail(new FerryError('no_connect', `connection to ${target.uri} closed`)));
  }

  /** Connects to the daemon named by `uri` (a string or a parsed target). */
  static async connect(uri: string | ConnectionTarget, opts: ConnectOptions = {}): Promise<ApiClient> {
    const target = typeof uri === 'string' ? parseConnectionUri(uri, { pkiDir: opts.pkiDir }) : uri;
    if (target.protocol === 'libvirt') throw new FerryError('invalid_arg', `'${target.uri}' names a daemon speaking libvirt's protocol; ferry connects with ferry:// URIs (virsh uses qemu:// ones)`);
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const socket = await openSocket(target, timeoutMs);
    return new ApiClient(socket, target, opts.keepalive ?? DEFAULT_KEEPALIVE);
  }

  /** Whether the connection has ended (calls now fail without being sent). */
  get isClosed(): boolean {
    return this.closedError !== null;
  }

  /**
   * Resolves with the reason once the connection has ended: the daemon
   * closed it, the network reset it, or keepalive found the daemon silent
   * for its whole bound. Never rejects.
   */
  whenClosed(): Promise<FerryError> {
    return this.closedPromise;
  }

  /** The longest a vanished daemon can go unnoticed on this connection, in ms. */
  get livenessBoundMs(): number {
    return keepaliveBoundMs(this.keepaliveSettings);
  }

  /** Calls `method`; rejects with the daemon's coded error. */
  call<M extends ApiMethod>(method: M, params: ApiMethods[M]['params'], opts: { timeoutMs?: number } = {}): Promise<ApiMethods[M]['result']> {
    return this.callRaw(method, params as Record<string, unknown>, opts) as Promise<ApiMethods[M]['result']>;
  }

  /** Calls any method name (for tests and forward compatibility). */
  callRaw(method: string, params: Record<string, unknown>, opts: { timeoutMs?: number; handover?: boolean } = {}): Promise<unknown> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    const msg: CallMessage = { type: 'call', id, method, params };
    return new Promise((resolve, reject) => {
      const p: Pending = { resolve, reject, ...(opts.handover ? { handover: true } : {}) };
      if (opts.timeoutMs) {
        p.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new FerryError('operation_timeout', `${method} got no answer from ${this.target.uri} within ${opts.timeoutMs} ms`));
        }, opts.timeoutMs);
      }
      this.pending.set(id, p);
      this.send(msg);
    });
  }

  private send(msg: CallMessage | PingMessage | PongMessage): void {
    if (!this.socket.destroyed) this.socket.write(encodeJsonFrame(msg));
  }

  /**
   * Gives up the API on this connection and returns its socket for raw
   * bytes (a migration tunnel). Call only with no call pending.
   */
  detachSocket(): Socket {
    // Paused first: bytes arriving before the new owner listens must wait, not be dropped.
    this.socket.pause();
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('close');
    this.socket.removeAllListeners('error');
    this.keepalive.stop();
    this.closedError = new FerryError('no_connect', 'the connection was turned into a data tunnel');
    // Tunnel bytes that came in the same read as the hand-over answer go back in front.
    if (this.tunnelHead && this.tunnelHead.length > 0) this.socket.unshift(this.tunnelHead);
    this.tunnelHead = undefined;
    return this.socket;
  }

  /** Closes the connection; pending calls fail. */
  close(): void {
    this.socket.end();
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.keepalive.heard();
    let frames;
    let handedOver = false;
    // The peer may start the raw stream right after a hand-over answer (an NBD server speaks
    // first), even in the same read: those bytes are not frames.
    const isHandover = (f: Frame) => {
      const m = f.kind === FrameKind.json ? (f.message as ReplyMessage | undefined) : undefined;
      handedOver = m?.type === 'reply' && !('error' in m) && this.pending.get(m.id)?.handover === true;
      return handedOver;
    };
    try {
      frames = this.decoder.push(chunk, isHandover);
    } catch (err) {
      this.fail(err as FerryError);
      this.socket.destroy();
      return;
    }
    for (const f of frames) {
      if (f.kind !== FrameKind.json) continue;
      const m = f.message as ReplyMessage | EventMessage | PingMessage | PongMessage;
      if (m?.type === 'ping') {
        this.send({ type: 'pong' });
      } else if (m?.type === 'event') {
        this.emit('event', m.event, m.data);
      } else if (m?.type === 'reply') {
        const p = this.pending.get(m.id);
        if (!p) {
          // id 0: the server could not attribute an error to a call (a framing problem).
          if (m.id === 0 && 'error' in m) this.fail(FerryError.fromPayload(m.error));
          continue;
        }
        this.pending.delete(m.id);
        if (p.timer) clearTimeout(p.timer);
        if ('error' in m) p.reject(FerryError.fromPayload(m.error));
        else p.resolve(m.result);
      }
    }
    if (handedOver) {
      // Stop reading as the API until detachSocket() hands the socket over.
      this.socket.pause();
      this.socket.removeAllListeners('data');
      this.tunnelHead = this.decoder.takeRest();
    }
  }

  private fail(err: FerryError): void {
    if (this.closedError) return;
    this.closedError = err;
    this.keepalive.stop();
    this.resolveClosed(err);
    for (const [, p] of this.pending) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.emit('close', err);
  }
}

/** Opens the socket a connection URI names (TLS with the client credentials of its PKI directory), bounded by `timeoutMs`. */
export async function openSocket(target: ConnectionTarget, timeoutMs: number): Promise<Socket> {
  let socket: Socket;
  let readyEvent = 'connect';
  switch (target.transport) {
    case 'unix':
      socket = createConnection({ path: target.socketPath });
      break;
    case 'tcp':
      socket = createConnection({ host: target.host, port: target.port });
      break;
    case 'tls': {
      // node:tls and the credentials reader (node:crypto) load only for TLS: `ferry` over a unix socket starts ~3 ms sooner (docs/performance.md).
      const [{ connect: tlsConnect, checkServerIdentity }, { loadTlsCredentials }] = await Promise.all([import('node:tls'), import('./tls.js')]);
      const creds = await loadTlsCredentials(target.pkiDir, 'client');
      socket = tlsConnect({
        host: target.host,
        port: target.port,
        ca: creds.ca,
        cert: creds.cert,
        key: creds.key,
        servername: isIp(target.host) ? undefined : target.host,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
        // no_verify=1 keeps the CA check but skips the host name check, as libvirt's no_verify relaxes its checks.
        checkServerIdentity: target.verifyServer ? checkServerIdentity : () => undefined,
      });
      readyEvent = 'secureConnect';
      break;
    }
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new FerryError('no_connect', `cannot connect to ${target.uri}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once(readyEvent, () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(err.code === 'EACCES' ? new FerryError('access_denied', connectHint(target, err)) : socketError(target, err, connectHint(target, err)));
    });
  });
}

/**
 * A socket error as a coded error. TLS alerts mean the other side refused
 * our certificate (or we refused its): that is an authentication failure,
 * not a network one, and the message says what to check.
 */
function socketError(target: ConnectionTarget, err: NodeJS.ErrnoException, message?: string): FerryError {
  if (typeof err.code === 'string' && (err.code.startsWith('ERR_SSL') || err.code.startsWith('ERR_TLS') || err.code.includes('CERT'))) {
    return new FerryError('auth_failed', `TLS authentication with ${target.uri} failed (${err.message.trim()}): check that both certificates are signed by the CA the other side trusts and are valid now`);
  }
  return new FerryError('no_connect', message ?? `connection to ${target.uri} failed: ${err.message}`);
}

function connectHint(target: ConnectionTarget, err: NodeJS.ErrnoException): string {
  if (target.transport === 'unix' && (err.code === 'ENOENT' || err.code === 'ECONNREFUSED')) {
    return `cannot connect to ${target.uri}: no daemon listens on ${target.socketPath} (is ferryd running?)`;
  }
  return `cannot connect to ${target.uri}: ${err.message}`;
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
