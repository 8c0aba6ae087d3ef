/**
 * A client of libvirt's remote protocol, for ferryd's peer-to-peer
 * migrations to a destination named by a `qemu+...` URI: it opens the
 * connection (auth list, open), calls procedures from the table in
 * `procedures.ts`, answers and sends keepalive pings, and carries the
 * outgoing stream of a tunnelled migration.
 */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { FerryError, toFerryError } from '../errors/index.js';
import { openSocket } from '../api/client.js';
import { DEFAULT_KEEPALIVE, Keepalive, type KeepaliveSettings } from '../api/keepalive.js';
import { parseConnectionUri, type ConnectionTarget } from '../api/uri.js';
import { decode, encode, type Xdr } from './xdr.js';
import { encodeMessage, MessageStatus, MessageType, RpcDecoder, STREAM_CHUNK_MAX, type RpcHeader, type RpcMessage } from './rpc.js';
import { isKeepalivePing, keepaliveHeader, KEEPALIVE_PING, KEEPALIVE_PONG, KEEPALIVE_PROGRAM, PROCEDURES, REMOTE_PROGRAM, REMOTE_VERSION, type ArgsOf, type ProcedureName, type RetOf } from './procedures.js';
import { remoteError } from './wire-types.js';
import { ferryErrorOf, remoteErrorOf } from './errors.js';

interface Pending {
  resolve(body: Buffer): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout | undefined;
}

/** Options of {@link LibvirtClient.connect}. */
export interface LibvirtConnectOptions {
  /** PKI directory for `qemu+tls` URIs without `pkipath`. */
  pkiDir?: string;
  timeoutMs?: number;
  keepalive?: KeepaliveSettings;
}

/** One connection to a daemon speaking libvirt's protocol. */
export class LibvirtClient {
  private readonly decoder = new RpcDecoder();
  private nextSerial = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly streams = new Map<number, (m: RpcMessage) => void>();
  private closedError: FerryError | null = null;
  private readonly closedWaiters: Array<(err: Error) => void> = [];
  private readonly keepalive: Keepalive;
  private awaitingTlsConfirmation: boolean;

  private constructor(
    private readonly socket: Socket,
    readonly target: ConnectionTarget,
    keepalive: KeepaliveSettings,
  ) {
    socket.setNoDelay(true);
    this.awaitingTlsConfirmation = target.transport === 'tls';
    this.keepalive = new Keepalive(keepalive, () => this.write(keepaliveHeader(KEEPALIVE_PING)), (silentMs) => {
      this.fail(new FerryError('no_connect', `lost the connection to ${target.uri}: no answer for ${Math.round(silentMs / 1000)} s (keepalive)`));
      socket.destroy();
    }).start();
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(new FerryError('no_connect', `connection to ${target.uri} failed: ${err.message}`)));
    socket.on('close', () => this.fail(new FerryError('no_connect', `connection to ${target.uri} closed`)));
  }

  /** Connects to `uri` (a `qemu+...` URI) and opens the QEMU driver there. */
  static async connect(uri: string, opts: LibvirtConnectOptions = {}): Promise<LibvirtClient> {
    const target = parseConnectionUri(uri, { ...(opts.pkiDir ? { pkiDir: opts.pkiDir } : {}) });
    if (target.protocol !== 'libvirt') throw new FerryError('invalid_arg', `'${uri}' is not a libvirt URI (qemu+tcp://, qemu+tls://, qemu+unix://)`);
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const client = new LibvirtClient(await openSocket(target, timeoutMs), target, opts.keepalive ?? DEFAULT_KEEPALIVE);
    try {
      await client.call('AUTH_LIST', {}, timeoutMs);
      await client.call('CONNECT_OPEN', { name: 'qemu:///system', flags: 0 }, timeoutMs);
      // As libvirt's client does: saying we speak keepalive makes the daemon ping us too, so each side notices a silent other.
      await client.call('CONNECT_SUPPORTS_FEATURE', { feature: 10 }, timeoutMs);
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  /** Whether the connection has ended. */
  get isClosed(): boolean {
    return this.closedError !== null;
  }

  /** Resolves (never rejects) with the reason once the connection is lost. */
  whenClosed(): Promise<Error> {
    if (this.closedError) return Promise.resolve(this.closedError);
    return new Promise((r) => this.closedWaiters.push(r));
  }

  /** Calls procedure `name`; `timeoutMs` 0 waits as long as the connection lives. */
  async call<N extends ProcedureName>(name: N, args: ArgsOf<N>, timeoutMs = 30_000): Promise<RetOf<N>> {
    const p = PROCEDURES[name];
    const serial = this.nextSerial++;
    const body = await this.request(serial, p.number, encode(p.args as Xdr<ArgsOf<N>>, args), timeoutMs);
    return decode(p.ret as Xdr<RetOf<N>>, body);
  }

  /**
   * Calls procedure `name`, which opens a stream (PREPARE_TUNNEL3_PARAMS),
   * and returns its reply with a writable stream: what is written goes to
   * the daemon as the stream's data; ending it finishes the stream and
   * waits for the daemon's acknowledgement.
   */
  async callWithStream<N extends ProcedureName>(name: N, args: ArgsOf<N>, timeoutMs = 30_000): Promise<{ ret: RetOf<N>; stream: Duplex }> {
    const p = PROCEDURES[name];
    const serial = this.nextSerial++;
    const stream = new OutgoingStream(this, serial, p.number);
    this.streams.set(serial, (m) => stream.onServerMessage(m));
    try {
      const body = await this.request(serial, p.number, encode(p.args as Xdr<ArgsOf<N>>, args), timeoutMs);
      return { ret: decode(p.ret as Xdr<RetOf<N>>, body), stream };
    } catch (err) {
      this.streams.delete(serial);
      throw err;
    }
  }

  /** Sends one stream message; resolves when the socket took it (backpressure). */
  sendStream(serial: number, procedure: number, status: number, body?: Buffer): Promise<void> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const ok = this.socket.write(encodeMessage({ program: REMOTE_PROGRAM, version: REMOTE_VERSION, procedure, type: MessageType.stream, serial, status }, body), (err) => (err ? reject(err) : undefined));
      if (ok) resolve();
      else this.socket.once('drain', () => resolve());
    });
  }

  /** Stops routing stream messages of `serial`. */
  dropStream(serial: number): void {
    this.streams.delete(serial);
  }

  close(): void {
    this.fail(new FerryError('no_connect', `connection to ${this.target.uri} closed`));
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private request(serial: number, procedure: number, body: Buffer, timeoutMs: number): Promise<Buffer> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const timer = timeoutMs > 0 ? setTimeout(() => {
        this.pending.delete(serial);
        reject(new FerryError('operation_timeout', `no answer from ${this.target.uri} within ${timeoutMs} ms`));
      }, timeoutMs) : undefined;
      this.pending.set(serial, { resolve, reject, timer });
      this.write({ program: REMOTE_PROGRAM, version: REMOTE_VERSION, procedure, type: MessageType.call, serial, status: MessageStatus.ok }, body);
    });
  }

  private write(header: RpcHeader, body?: Buffer): void {
    if (this.closedError || this.socket.destroyed) return;
    this.socket.write(encodeMessage(header, body));
  }

  private onData(chunk: Buffer): void {
    this.keepalive.heard();
    if (this.awaitingTlsConfirmation && chunk.length > 0) {
      // After the TLS handshake a libvirt server sends one byte: 1 when it accepted our certificate.
      this.awaitingTlsConfirmation = false;
      if (chunk[0] !== 1) {
        this.fail(new FerryError('auth_failed', `${this.target.uri} refused our TLS client certificate`));
        this.socket.destroy();
        return;
      }
      chunk = chunk.subarray(1);
      if (chunk.length === 0) return;
    }
    let messages: RpcMessage[];
    try {
      messages = this.decoder.push(chunk);
    } catch (err) {
      this.fail(toFerryError(err, 'rpc'));
      this.socket.destroy();
      return;
    }
    for (const m of messages) {
      const h = m.header;
      if (h.program === KEEPALIVE_PROGRAM) {
        if (isKeepalivePing(h)) this.write(keepaliveHeader(KEEPALIVE_PONG));
        continue;
      }
      if (h.type === MessageType.stream) {
        this.streams.get(h.serial)?.(m);
        continue;
      }
      if (h.type !== MessageType.reply) continue;
      const p = this.pending.get(h.serial);
      if (!p) continue;
      this.pending.delete(h.serial);
      clearTimeout(p.timer);
      if (h.status === MessageStatus.ok) p.resolve(m.body);
      else {
        try {
          p.reject(ferryErrorOf(decode(remoteError, m.body)));
        } catch {
          p.reject(new FerryError('rpc', `${this.target.uri} answered an error that cannot be read`));
        }
      }
    }
  }

  private fail(err: FerryError): void {
    if (this.closedError) return;
    this.closedError = err;
    this.keepalive.stop();
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    for (const s of this.streams.values()) s({ header: { program: REMOTE_PROGRAM, version: REMOTE_VERSION, procedure: 0, type: MessageType.stream, serial: 0, status: MessageStatus.error }, body: Buffer.alloc(0) });
    this.streams.clear();
    for (const w of this.closedWaiters.splice(0)) w(err);
  }
}

/**
 * The sending side of a libvirt stream as a Node stream: writes become
 * stream messages of at most {@link STREAM_CHUNK_MAX} bytes; the end sends
 * the finishing message and completes once the daemon acknowledged it. It
 * never yields data of its own: its readable side ends with the stream.
 */
class OutgoingStream extends Duplex {
  private finishAck: ((err?: Error) => void) | null = null;
  private ended = false;

  constructor(
    private readonly client: LibvirtClient,
    private readonly serial: number,
    private readonly procedure: number,
  ) {
    super({ allowHalfOpen: true });
  }

  onServerMessage(m: RpcMessage): void {
    if (m.header.status === MessageStatus.continue) return;
    let err: Error | undefined;
    if (m.header.status === MessageStatus.error) {
      try {
        err = ferryErrorOf(decode(remoteError, m.body));
      } catch {
        err = new FerryError('operation_failed', 'the destination ended the migration stream with an error');
      }
    }
    this.client.dropStream(this.serial);
    if (this.finishAck) {
      const ack = this.finishAck;
      this.finishAck = null;
      ack(err);
    } else if (err) this.destroy(err);
    if (!this.ended) {
      this.ended = true;
      this.push(null);
    }
  }

  override _read(): void {
    // Nothing flows back on a migration stream.
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    void this.sendChunks(chunk).then(() => cb(), (err: Error) => cb(err));
  }

  private async sendChunks(chunk: Buffer): Promise<void> {
    for (let off = 0; off < chunk.length; off += STREAM_CHUNK_MAX) {
      await this.client.sendStream(this.serial, this.procedure, MessageStatus.continue, chunk.subarray(off, off + STREAM_CHUNK_MAX));
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.finishAck = (err) => cb(err ?? null);
    this.client.sendStream(this.serial, this.procedure, MessageStatus.ok).catch((err: Error) => {
      this.finishAck = null;
      cb(err);
    });
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (err && !this.ended && !this.client.isClosed) void this.client.sendStream(this.serial, this.procedure, MessageStatus.error, encode(remoteError, remoteErrorOf(new FerryError('operation_aborted', err.message)))).catch(() => undefined);
    this.client.dropStream(this.serial);
    cb(err);
  }
}
