/**
 * The native API server: accepts connections on the local unix socket, on a
 * mutual-TLS listener and (tests only) on plain TCP, decodes frames, checks
 * each call's envelope and hands it to the method handlers. Nothing a peer
 * sends can make it throw: every problem is answered with a coded error.
 */
import type { Server, Socket } from 'node:net';
import { EventEmitter } from 'node:events';
import { FerryError, toFerryError } from '../errors/index.js';
import { FrameDecoder, FrameKind, encodeJsonFrame } from './framing.js';
import type { CallMessage, EventMessage, PingMessage, PongMessage, ReplyMessage } from './protocol.js';
import { DEFAULT_KEEPALIVE, Keepalive, type KeepaliveSettings } from './keepalive.js';
import type { TlsCredentials } from './tls.js';
import { addressPort, closeServer, listenMutualTls, listenPlainTcp, listenUnixOwnerOnly, type Transport } from './listeners.js';

export type { Transport } from './listeners.js';

/**
 * Who made a call, for the few methods that depend on it: `events.subscribe`
 * (the connection gets events), `migration.begin`/`prepare` (a job owned by
 * the connection), `migration.tunnelAttach` (the connection becomes the
 * stream). An {@link ApiConnection} is one; the HTTP listener's calls are
 * another (src/http/server.ts), which offers none of those methods.
 */
export interface Caller {
  readonly id: number;
  /** How the call came: the native API's listeners, or the HTTP listener. */
  readonly transport: Transport | 'http';
  readonly peer: string;
  subscribed: boolean;
  /** Aborted when the caller goes away. */
  readonly closedSignal: AbortSignal;
  readonly isOpen: boolean;
  once(event: 'close', listener: () => void): unknown;
  /** Hands the caller's socket over (it then carries a stream only). */
  takeOverSocket(): Socket;
  close(): void;
}

/** A method handler. `params` is untrusted: handlers validate it. */
export type Handler = (params: Record<string, unknown>, conn: Caller) => Promise<unknown>;

/** Calls a single connection may have in flight before it is told to wait. */
const MAX_IN_FLIGHT = 64;

/** Connections served at once; more are answered `resource_busy` and closed. */
export const MAX_CONNECTIONS = 256;

/**
 * Bytes of not-yet-complete frames all connections together may hold. One
 * frame may be 16 MiB; without a shared budget, many connections each
 * trickling a big frame would grow the daemon without bound.
 */
export const PENDING_BYTES_BUDGET = 128 * 1024 * 1024;

/** The shared account of {@link PENDING_BYTES_BUDGET}. */
interface PendingAccount {
  used: number;
}

/** One client connection. Emits 'close' once. */
export class ApiConnection extends EventEmitter implements Caller {
  private static nextId = 1;
  /** Daemon-local connection number, for logs and job ownership. */
  readonly id = ApiConnection.nextId++;
  /** Whether the client asked for events. */
  subscribed = false;
  private inFlight = 0;
  private closed = false;
  private readonly decoder = new FrameDecoder();
  private readonly keepalive: Keepalive;
  private readonly closing = new AbortController();

  constructor(
    private readonly socket: Socket,
    readonly transport: Transport,
    /** Peer description for logs: address or certificate subject. */
    readonly peer: string,
    private readonly handlers: ReadonlyMap<string, Handler>,
    private readonly log: (msg: string) => void,
    private readonly pending: PendingAccount = { used: 0 },
    keepalive: KeepaliveSettings = DEFAULT_KEEPALIVE,
  ) {
    super();
    socket.setNoDelay(true);
    // A client that vanished without closing (a cut link, a frozen host) is closed like one that hung up,
    // so everything waiting on this connection's 'close' (an incoming migration, a managed job) acts.
    this.keepalive = new Keepalive(keepalive, () => this.write({ type: 'ping' }), (silentMs) => {
      this.log(`connection ${this.id} (${this.peer}): no sign of life for ${silentMs} ms (keepalive); closing`);
      this.socket.destroy();
    }).start();
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.keepalive.stop();
      this.account(0);
      this.closing.abort();
      this.emit('close');
    });
  }

  /** Aborts when the connection closes (already aborted if it has), for work that the connection owns. */
  get closedSignal(): AbortSignal {
    return this.closing.signal;
  }

  /** Bytes of this connection's unfinished frame counted in the shared budget. */
  private accounted = 0;

  private account(bytes: number): void {
    this.pending.used += bytes - this.accounted;
    this.accounted = bytes;
  }

  /** Whether the connection is still open. */
  get isOpen(): boolean {
    return !this.closed;
  }

  /** Sends an event if the client subscribed. */
  sendEvent(event: string, data: unknown): void {
    if (!this.subscribed) return;
    const msg: EventMessage = { type: 'event', event, data };
    this.write(msg);
  }

  /**
   * Hands the raw socket to the caller (a migration tunnel), once the reply
   * to the current call has been written: the connection stops reading
   * frames, and from then on carries bytes only.
   */
  takeOverSocket(): Socket {
    // Paused first: bytes arriving before the new owner listens must wait, not be dropped.
    this.socket.pause();
    this.socket.removeAllListeners('data');
    // Raw bytes from here: the relay's own end decides when the stream is over.
    this.keepalive.stop();
    if (this.decoder.pendingBytes > 0) throw new FerryError('rpc', 'bytes arrived before the tunnel was ready');
    return this.socket;
  }

  /** Closes the connection. */
  close(): void {
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private write(msg: ReplyMessage | EventMessage | PingMessage | PongMessage): void {
    if (this.closed || this.socket.destroyed) return;
    try {
      this.socket.write(encodeJsonFrame(msg));
    } catch (err) {
      // A result too large for a frame: answer with the error instead.
      if ('id' in msg) this.socket.write(encodeJsonFrame({ type: 'reply', id: msg.id, error: toFerryError(err).toPayload() }));
    }
  }

  private onData(chunk: Buffer): void {
    this.keepalive.heard();
    let frames;
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      // The byte stream is no longer trustworthy: say why, then hang up.
      this.log(`connection ${this.id} (${this.peer}): ${toFerryError(err).message}; closing`);
      this.write({ type: 'reply', id: 0, error: toFerryError(err, 'rpc').toPayload() });
      this.close();
      return;
    }
    this.account(this.decoder.pendingBytes);
    if (this.pending.used > PENDING_BYTES_BUDGET) {
      this.log(`connection ${this.id} (${this.peer}): unfinished frames of all connections exceed ${PENDING_BYTES_BUDGET} bytes; closing this one`);
      this.write({ type: 'reply', id: 0, error: new FerryError('resource_busy', 'the daemon is holding too many unfinished messages; try again').toPayload() });
      this.close();
      this.socket.removeAllListeners('data');
      this.account(0);
      return;
    }
    for (const frame of frames) {
      if (frame.kind !== FrameKind.json) {
        this.write({ type: 'reply', id: 0, error: new FerryError('rpc', 'no stream is open on this connection').toPayload() });
        continue;
      }
      this.onMessage(frame.message);
    }
  }

  private onMessage(message: unknown): void {
    const kind = message && typeof message === 'object' ? (message as { type?: unknown }).type : undefined;
    if (kind === 'ping' || kind === 'pong') {
      if (kind === 'ping') this.write({ type: 'pong' });
      return;
    }
    const m = message as Partial<CallMessage> | null;
    const id = m && typeof m === 'object' && Number.isSafeInteger(m.id) && (m.id as number) > 0 ? (m.id as number) : 0;
    if (!m || typeof m !== 'object' || Array.isArray(m) || m.type !== 'call' || id <= 0 || typeof m.method !== 'string') {
      this.write({ type: 'reply', id, error: new FerryError('rpc', 'expected a call message {type:"call", id>0, method, params}').toPayload() });
      return;
    }
    const params = m.params ?? {};
    if (typeof params !== 'object' || params === null || Array.isArray(params)) {
      this.write({ type: 'reply', id, error: new FerryError('invalid_arg', `params of ${m.method} must be an object`).toPayload() });
      return;
    }
    const handler = this.handlers.get(m.method);
    if (!handler) {
      this.write({ type: 'reply', id, error: new FerryError('no_support', `unknown method '${m.method.slice(0, 100)}'`).toPayload() });
      return;
    }
    if (this.inFlight >= MAX_IN_FLIGHT) {
      this.write({ type: 'reply', id, error: new FerryError('resource_busy', `more than ${MAX_IN_FLIGHT} calls in flight on this connection`).toPayload() });
      return;
    }
    this.inFlight++;
    handler(params as Record<string, unknown>, this)
      .then(
        (result) => this.write({ type: 'reply', id, result: result ?? null }),
        (err) => this.write({ type: 'reply', id, error: toFerryError(err).toPayload() }),
      )
      .finally(() => {
        this.inFlight--;
      });
  }
}

/** Listens on any number of endpoints and serves one handler table. */
export class ApiServer extends EventEmitter {
  private readonly servers: Server[] = [];
  private readonly connections = new Set<ApiConnection>();
  private readonly pending: PendingAccount = { used: 0 };

  constructor(
    private readonly handlers: ReadonlyMap<string, Handler>,
    private readonly log: (msg: string) => void = () => undefined,
    /** How every connection checks that its client is alive. */
    private readonly keepalive: KeepaliveSettings = DEFAULT_KEEPALIVE,
  ) {
    super();
  }

  /** Every open connection (for broadcasting events). */
  get openConnections(): ReadonlySet<ApiConnection> {
    return this.connections;
  }

  /** Listens on a unix socket only its owner may use (see {@link listenUnixOwnerOnly}). */
  async listenUnix(path: string): Promise<void> {
    this.servers.push(await listenUnixOwnerOnly(path, this.accept));
  }

  /** Listens for mutual-TLS connections: a client without a certificate signed by our CA is refused. */
  async listenTls(host: string, port: number, creds: TlsCredentials): Promise<number> {
    const server = await listenMutualTls(host, port, creds, this.accept, this.log);
    this.servers.push(server);
    return addressPort(server);
  }

  /** Listens on plain TCP with no authentication. For tests only; the caller warns. */
  async listenTcp(host: string, port: number): Promise<number> {
    const server = await listenPlainTcp(host, port, this.accept);
    this.servers.push(server);
    return addressPort(server);
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    for (const c of this.connections) c.close();
    await Promise.all(this.servers.map(closeServer));
  }

  private readonly accept = (socket: Socket, transport: Transport, peer: string): void => {
    if (this.connections.size >= MAX_CONNECTIONS) {
      this.log(`refusing a connection from ${peer}: ${MAX_CONNECTIONS} connections are open`);
      socket.on('error', () => undefined);
      socket.end(encodeJsonFrame({ type: 'reply', id: 0, error: new FerryError('resource_busy', `the daemon serves at most ${MAX_CONNECTIONS} connections at once`).toPayload() }));
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    const conn = new ApiConnection(socket, transport, peer, this.handlers, this.log, this.pending, this.keepalive);
    this.connections.add(conn);
    conn.once('close', () => {
      this.connections.delete(conn);
      this.emit('disconnect', conn);
    });
    this.emit('connection', conn);
  };
}
