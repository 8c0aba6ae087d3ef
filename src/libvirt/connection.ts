/**
 * One client of the libvirt-protocol server: decodes frames, answers the
 * keepalive program, dispatches calls of the `remote` program to the
 * handlers, carries events and streams. Whatever a peer sends, it gets a
 * coded error or a clean close, and nothing it sends can throw out of here.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { FerryError, toFerryError } from '../errors/index.js';
import { Keepalive, type KeepaliveSettings } from '../api/keepalive.js';
import type { Transport } from '../api/listeners.js';
import { decode, encode, type Xdr } from './xdr.js';
import { BrokenFrameError, encodeMessage, MessageStatus, MessageType, RpcDecoder, type RpcHeader, type RpcMessage } from './rpc.js';
import { EVENT_MESSAGES, isKeepalivePing, keepaliveHeader, KEEPALIVE_PING, KEEPALIVE_PONG, KEEPALIVE_PROGRAM, PROCEDURE_BY_NUMBER, PROCEDURES, REMOTE_PROGRAM, REMOTE_VERSION, type ArgsOf, type ProcedureName, type RetOf } from './procedures.js';
import { remoteErrorOf } from './errors.js';
import { remoteError } from './wire-types.js';

/** What a handler knows about the call it serves. */
export interface CallContext {
  readonly conn: LibvirtConnection;
  /** The call's serial: a stream the call opens carries it. */
  readonly serial: number;
}

/** A handler of procedure `N`; its arguments are decoded but not yet checked for meaning. */
export type ProcedureHandler<N extends ProcedureName> = (args: ArgsOf<N>, call: CallContext) => Promise<RetOf<N>>;

/** The handler table: a procedure without a handler is "not supported". */
export type ProcedureHandlers = { [N in ProcedureName]?: ProcedureHandler<N> };

/** Procedures a client may call before CONNECT_OPEN. */
const BEFORE_OPEN: ReadonlySet<ProcedureName> = new Set(['AUTH_LIST', 'CONNECT_OPEN', 'CONNECT_SUPPORTS_FEATURE']);

/** Calls a connection may have in flight before it is told to wait. */
const MAX_IN_FLIGHT = 64;

/** Where the bytes of an incoming stream (a tunnelled migration) go. */
export interface StreamSink {
  /** Takes one chunk; returns false when the connection should stop reading until `resume` is called. */
  data(chunk: Buffer, resume: () => void): boolean;
  /** The client finished the stream. */
  end(): void;
  /** The client aborted the stream, or the connection closed. */
  abort(why: Error): void;
}

/** A domain event registration (`virConnectDomainEventRegisterAny`). */
export interface EventRegistration {
  readonly callbackId: number;
  readonly eventId: number;
  /** Only this domain's events, when set. */
  readonly domainUuid: string | null;
}

/** Shared budget of bytes held for unfinished frames, across connections. */
export interface PendingAccount {
  used: number;
  readonly limit: number;
}

/** One client connection. Emits 'close' once. */
export class LibvirtConnection extends EventEmitter {
  private static nextId = 1;
  /** Daemon-local connection number, for logs. */
  readonly id = LibvirtConnection.nextId++;
  /** The URI the client opened, once CONNECT_OPEN succeeded. */
  openedUri: string | null = null;
  /** Opened with VIR_CONNECT_RO: procedures that change anything are refused. */
  readOnly = false;
  private readonly decoder = new RpcDecoder();
  private readonly keepalive: Keepalive;
  private keepaliveStarted = false;
  private readonly closing = new AbortController();
  private closed = false;
  private inFlight = 0;
  /** A broken frame arrived: close once the calls before it are answered. */
  private closeWhenIdle = false;
  private accounted = 0;
  private nextCallbackId = 1;
  private readonly registrations = new Map<number, EventRegistration>();
  private readonly streams = new Map<number, StreamSink>();

  constructor(
    private readonly socket: Socket,
    readonly transport: Transport,
    /** Peer description for logs: address or certificate subject. */
    readonly peer: string,
    private readonly handlers: ProcedureHandlers,
    private readonly log: (msg: string) => void,
    private readonly pending: PendingAccount,
    keepalive: KeepaliveSettings,
  ) {
    super();
    socket.setNoDelay(true);
    // A client that never asked for keepalive pings (libvirt pings only those that did) is still
    // watched by TCP's own keepalive, so a vanished peer is noticed and what it owned is released.
    if (transport !== 'unix') socket.setKeepAlive(true, 10_000);
    this.keepalive = new Keepalive(keepalive, () => this.send(keepaliveHeader(KEEPALIVE_PING)), (silentMs) => {
      this.log(`libvirt connection ${this.id} (${this.peer}): no sign of life for ${silentMs} ms (keepalive); closing`);
      this.socket.destroy();
    });
    // libvirt's TLS clients wait for one byte after the handshake: 1 says the server accepted their certificate.
    if (transport === 'tls') socket.write(Buffer.from([1]));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.keepalive.stop();
      this.account(0);
      for (const s of this.streams.values()) s.abort(new FerryError('rpc', 'the client connection closed'));
      this.streams.clear();
      this.closing.abort();
      this.emit('close');
    });
  }

  /** Aborts when the connection closes, for work the connection owns. */
  get closedSignal(): AbortSignal {
    return this.closing.signal;
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** The local address the client reached us on (for a data address it can reach back), if over IP. */
  get localAddress(): string | undefined {
    return this.transport === 'unix' ? undefined : this.socket.localAddress;
  }

  /** Starts pinging the client (it said it understands keepalive), as libvirtd does. */
  startKeepalive(): void {
    if (this.keepaliveStarted || this.closed) return;
    this.keepaliveStarted = true;
    this.keepalive.start();
  }

  /** Registers for domain events; returns the callback id the client will see in each event. */
  registerEvents(eventId: number, domainUuid: string | null): number {
    if (this.registrations.size >= 256) throw new FerryError('resource_busy', 'this connection has 256 event callbacks registered already');
    const callbackId = this.nextCallbackId++;
    this.registrations.set(callbackId, { callbackId, eventId, domainUuid });
    return callbackId;
  }

  /** Removes a registration; unknown ids are an error, as in libvirt. */
  deregisterEvents(callbackId: number): void {
    if (!this.registrations.delete(callbackId)) throw new FerryError('invalid_arg', `no domain event callback with id ${callbackId} is registered`);
  }

  /** Registrations that want event `eventId` of domain `uuid`. */
  registrationsFor(eventId: number, uuid: string): EventRegistration[] {
    return [...this.registrations.values()].filter((r) => r.eventId === eventId && (r.domainUuid === null || r.domainUuid === uuid));
  }

  /** Sends an event message (no reply expected). */
  sendEvent<N extends keyof typeof EVENT_MESSAGES>(name: N, body: Parameters<(typeof EVENT_MESSAGES)[N]['args']['write']>[1]): void {
    const m = EVENT_MESSAGES[name];
    this.sendBody({ program: REMOTE_PROGRAM, version: REMOTE_VERSION, procedure: m.number, type: MessageType.message, serial: 0, status: MessageStatus.ok }, m.args as Xdr<typeof body>, body);
  }

  /** Routes the client's stream messages of call `serial` to `sink` until it ends. */
  acceptStream(serial: number, sink: StreamSink): void {
    this.streams.set(serial, sink);
  }

  /** Tells the client that the stream of call `serial` ended well (or with `err`). */
  finishStream(serial: number, procedure: number, err?: unknown): void {
    this.streams.delete(serial);
    const header = { program: REMOTE_PROGRAM, version: REMOTE_VERSION, procedure, type: MessageType.stream, serial, status: err ? MessageStatus.error : MessageStatus.ok };
    if (err) this.sendBody(header, remoteError, remoteErrorOf(toFerryError(err)));
    else this.send(header);
  }

  /** Closes the connection once the calls in flight are answered (at most a second from now). */
  private closeWhenAnswered(): void {
    if (this.inFlight === 0) return this.close();
    this.closeWhenIdle = true;
    setTimeout(() => this.close(), 1000).unref();
  }

  /** Closes the connection. */
  close(): void {
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private send(header: RpcHeader, body?: Buffer): void {
    if (this.closed || this.socket.destroyed) return;
    this.socket.write(encodeMessage(header, body));
  }

  private sendBody<T>(header: RpcHeader, type: Xdr<T>, value: T): void {
    let body: Buffer;
    try {
      body = encode(type, value);
    } catch (err) {
      // A reply too large or malformed for the wire: answer the call with the error instead.
      if (header.type !== MessageType.reply) return;
      this.send({ ...header, status: MessageStatus.error }, encode(remoteError, remoteErrorOf(toFerryError(err))));
      return;
    }
    this.send(header, body);
  }

  private account(bytes: number): void {
    this.pending.used += bytes - this.accounted;
    this.accounted = bytes;
  }

  private onData(chunk: Buffer): void {
    this.keepalive.heard();
    let messages: RpcMessage[];
    try {
      messages = this.decoder.push(chunk);
    } catch (err) {
      // The calls before the broken frame are answered; then the byte stream can no longer be trusted: say why, hang up.
      if (err instanceof BrokenFrameError) for (const m of err.decoded) this.onMessage(m);
      this.log(`libvirt connection ${this.id} (${this.peer}): ${toFerryError(err).message}; closing`);
      this.replyError({ program: REMOTE_PROGRAM, version: REMOTE_VERSION, procedure: 0, type: MessageType.reply, serial: 0, status: MessageStatus.error }, toFerryError(err, 'rpc'));
      this.socket.removeAllListeners('data');
      this.closeWhenAnswered();
      return;
    }
    this.account(this.decoder.pendingBytes);
    if (this.pending.used > this.pending.limit) {
      this.log(`libvirt connection ${this.id} (${this.peer}): unfinished messages of all connections exceed ${this.pending.limit} bytes; closing this one`);
      this.close();
      this.socket.removeAllListeners('data');
      this.account(0);
      return;
    }
    for (const m of messages) this.onMessage(m);
  }

  private onMessage(m: RpcMessage): void {
    const h = m.header;
    if (h.program === KEEPALIVE_PROGRAM) {
      if (isKeepalivePing(h)) this.send(keepaliveHeader(KEEPALIVE_PONG));
      return;
    }
    if (h.program !== REMOTE_PROGRAM || h.version !== REMOTE_VERSION) {
      this.replyError({ ...h, type: MessageType.reply }, new FerryError('rpc', `unknown program ${h.program.toString(16)} version ${h.version}; this server speaks libvirt's remote program ${REMOTE_PROGRAM.toString(16)} version ${REMOTE_VERSION}`));
      return;
    }
    if (h.type === MessageType.stream) return this.onStream(m);
    if (h.type !== MessageType.call) {
      if (h.type !== MessageType.reply && h.type !== MessageType.message) this.replyError({ ...h, type: MessageType.reply }, new FerryError('rpc', `unexpected message type ${h.type}`));
      return;
    }
    const name = PROCEDURE_BY_NUMBER.get(h.procedure);
    const handler = name ? (this.handlers[name] as ProcedureHandler<ProcedureName> | undefined) : undefined;
    if (!name || !handler) {
      this.replyError({ ...h, type: MessageType.reply }, new FerryError('no_support', `procedure ${name ?? h.procedure} of the remote program is not implemented by ferryd`));
      return;
    }
    if (this.openedUri === null && !BEFORE_OPEN.has(name)) {
      this.replyError({ ...h, type: MessageType.reply }, new FerryError('operation_invalid', 'the connection is not open: call CONNECT_OPEN first'));
      return;
    }
    if (this.readOnly && PROCEDURES[name].changes) {
      this.replyError({ ...h, type: MessageType.reply }, new FerryError('operation_denied', `read only access prevents ${name}`));
      return;
    }
    if (this.inFlight >= MAX_IN_FLIGHT) {
      this.replyError({ ...h, type: MessageType.reply }, new FerryError('resource_busy', `more than ${MAX_IN_FLIGHT} calls in flight on this connection`));
      return;
    }
    const p = PROCEDURES[name];
    let args: unknown;
    try {
      args = decode(p.args as Xdr<unknown>, m.body);
    } catch (err) {
      this.replyError({ ...h, type: MessageType.reply }, toFerryError(err, 'rpc'));
      return;
    }
    this.inFlight++;
    const replyHeader = { ...h, type: MessageType.reply, status: MessageStatus.ok };
    handler(args as never, { conn: this, serial: h.serial })
      .then(
        (ret) => this.sendBody(replyHeader, p.ret as Xdr<unknown>, ret),
        (err) => this.replyError(replyHeader, toFerryError(err)),
      )
      .catch((err) => this.log(`libvirt connection ${this.id}: cannot answer ${name}: ${toFerryError(err).message}`))
      .finally(() => {
        this.inFlight--;
        if (this.closeWhenIdle && this.inFlight === 0) this.close();
      });
  }

  private onStream(m: RpcMessage): void {
    const sink = this.streams.get(m.header.serial);
    if (!sink) {
      // Data for a stream that ended or never was: the client learns once, through the stream's own error.
      if (m.header.status === MessageStatus.continue) this.finishStream(m.header.serial, m.header.procedure, new FerryError('rpc', `no stream is open for call ${m.header.serial}`));
      return;
    }
    if (m.header.status === MessageStatus.continue) {
      if (m.body.length === 0) return;
      const more = sink.data(m.body, () => this.socket.resume());
      if (!more) this.socket.pause();
    } else if (m.header.status === MessageStatus.ok) {
      this.streams.delete(m.header.serial);
      sink.end();
    } else {
      this.streams.delete(m.header.serial);
      let why = 'the client aborted the stream';
      try {
        why = decode(remoteError, m.body).message ?? why;
      } catch {
        // An abort without a readable reason is still an abort.
      }
      sink.abort(new FerryError('operation_aborted', why));
    }
  }

  private replyError(header: RpcHeader, err: FerryError): void {
    this.send({ ...header, status: MessageStatus.error }, encode(remoteError, remoteErrorOf(err)));
  }
}
