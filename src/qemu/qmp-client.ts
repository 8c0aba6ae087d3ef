/** Ferry's own QMP client: one unix-socket connection to a QEMU monitor, commands matched to replies by id, events as a stream. */
import { EventEmitter } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import { FerryError } from '../errors/index.js';
import { LineSplitter } from './line-splitter.js';

/** An asynchronous QMP event, e.g. `SHUTDOWN` or `MIGRATION`. */
export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

/** The wall-clock time QEMU stamped on an event, in epoch ms (undefined when it carried none). */
export function eventTimeMs(ev: QmpEvent): number | undefined {
  const t = ev.timestamp.seconds * 1000 + ev.timestamp.microseconds / 1000;
  return Number.isFinite(t) && t > 0 ? Math.round(t) : undefined;
}

/** The greeting QEMU sends when a client connects. */
export interface QmpGreeting {
  QMP: {
    version: { qemu: { major: number; minor: number; micro: number }; package: string };
    capabilities: string[];
  };
}

/** Options for {@link QmpClient.connect}. */
export interface QmpConnectOptions {
  /** Deadline for connect + greeting + capability negotiation. Default 5000 ms. */
  timeoutMs?: number;
  /** Default deadline for {@link QmpClient.execute}. Default 30000 ms. */
  commandTimeoutMs?: number;
  /** Longest accepted message in bytes. Default 64 MiB. */
  maxLineBytes?: number;
}

/** Options for one {@link QmpClient.execute} call. */
export interface QmpExecuteOptions {
  /** Deadline for the reply; `Infinity` waits as long as the connection lives. */
  timeoutMs?: number;
}

/** Events a {@link QmpClient} emits. */
export interface QmpClientEvents {
  /** Every QMP event, in arrival order. */
  event: [QmpEvent];
  /** The connection ended; `error` says why when it was not a clean end of stream. */
  close: [error: FerryError | undefined];
}

/** A command QEMU answered with an error; the QMP error class is kept for callers that branch on it. */
export class QmpCommandError extends FerryError {
  /** QMP's error class, e.g. `GenericError`, `CommandNotFound`, `DeviceNotActive`. */
  readonly qmpClass: string;
  /** The command that was refused. */
  readonly command: string;
  /** QMP's own description. */
  readonly desc: string;

  constructor(command: string, qmpClass: string, desc: string) {
    super('operation_failed', `QEMU refused ${command}: ${desc}`);
    this.name = 'QmpCommandError';
    this.command = command;
    this.qmpClass = qmpClass;
    this.desc = desc;
  }
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: FerryError) => void;
  timer: NodeJS.Timeout | undefined;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

/**
 * A QMP connection. Create with {@link QmpClient.connect}; the returned client
 * has already negotiated capabilities and is in command mode.
 *
 * Several {@link execute} calls may be in flight at once: each request
 * carries an id that QEMU echoes, and replies are matched by it. QEMU runs
 * commands one at a time in order anyway, but ids mean a late reply to a
 * timed-out command can never be taken for the answer to a later one.
 */
export class QmpClient extends EventEmitter<QmpClientEvents> {
  /** The greeting QEMU sent. */
  readonly greeting: QmpGreeting;
  private readonly socket: Socket;
  private readonly splitter: LineSplitter;
  private readonly pending = new Map<string, Pending>();
  private readonly commandTimeoutMs: number;
  private nextId = 1;
  private closedWith: { error: FerryError | undefined } | undefined;

  private constructor(socket: Socket, splitter: LineSplitter, greeting: QmpGreeting, commandTimeoutMs: number) {
    super();
    this.socket = socket;
    this.splitter = splitter;
    this.greeting = greeting;
    this.commandTimeoutMs = commandTimeoutMs;
  }

  /**
   * Connects to a QMP unix socket, reads the greeting and negotiates
   * capabilities (none requested: Ferry needs no out-of-band commands).
   *
   * @throws FerryError `operation_timeout` if it takes longer than `timeoutMs`,
   *   `operation_failed` if the socket can't be reached or the peer doesn't speak QMP
   */
  static async connect(socketPath: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const maxLineBytes = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    const socket = createConnection({ path: socketPath });
    const splitter = new LineSplitter(maxLineBytes);

    // Phase 1: socket connected and greeting received, with our own listeners;
    // the client object takes the socket over only once that has worked.
    const greetingPromise = new Promise<{ greeting: QmpGreeting; rest: string[] }>((resolve, reject) => {
      const timer = setTimeout(() => {
        fail(new FerryError('operation_timeout', `QMP at ${socketPath} did not greet within ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('error', onError);
        socket.off('close', onClose);
      };
      const fail = (err: FerryError): void => {
        cleanup();
        socket.destroy();
        reject(err);
      };
      const onError = (err: NodeJS.ErrnoException): void => {
        fail(new FerryError('operation_failed', `cannot connect to QMP at ${socketPath}: ${err.message}`, { cause: err }));
      };
      const onClose = (): void => {
        fail(new FerryError('operation_failed', `QMP at ${socketPath} closed the connection before greeting`));
      };
      const onData = (chunk: Buffer): void => {
        let lines: string[];
        try {
          lines = splitter.push(chunk);
        } catch (err) {
          fail(err as FerryError);
          return;
        }
        if (lines.length === 0) return;
        const [first, ...rest] = lines;
        let parsed: unknown;
        try {
          parsed = JSON.parse(first as string);
        } catch {
          fail(new FerryError('rpc', `QMP at ${socketPath} sent something that is not JSON: ${truncate(first as string)}`));
          return;
        }
        if (!isGreeting(parsed)) {
          fail(new FerryError('rpc', `QMP at ${socketPath} sent no QMP greeting: ${truncate(first as string)}`));
          return;
        }
        cleanup();
        // Hold further data until the client's own listeners are attached.
        socket.pause();
        resolve({ greeting: parsed, rest });
      };
      socket.on('data', onData);
      socket.on('error', onError);
      socket.on('close', onClose);
    });

    const deadline = Date.now() + timeoutMs;
    const { greeting, rest } = await greetingPromise;
    const client = new QmpClient(socket, splitter, greeting, opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS);
    client.attachSocket();
    // Anything that arrived in the same chunk as the greeting (unlikely before
    // negotiation, but cheap to honour) is handled in order.
    for (const line of rest) client.handleLine(line);
    try {
      await client.execute('qmp_capabilities', undefined, { timeoutMs: Math.max(1, deadline - Date.now()) });
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  /** Whether the connection has ended. */
  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  /**
   * Runs a QMP command and resolves with its `return` value.
   *
   * @param args the command's `arguments` object, if any
   * @throws QmpCommandError (`operation_failed`) if QEMU answers with an error,
   *   FerryError `operation_timeout` if no reply arrives in time (the command may
   *   still run in QEMU), `operation_failed` if the connection is or becomes closed
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: QmpExecuteOptions = {}): Promise<T> {
    if (this.closedWith !== undefined) {
      return Promise.reject(closedError(command, this.closedWith.error));
    }
    const id = `ferry-${this.nextId++}`;
    const timeoutMs = opts.timeoutMs ?? this.commandTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const entry: Pending = {
        command,
        resolve: resolve as (value: unknown) => void,
        reject,
        timer: undefined,
      };
      if (Number.isFinite(timeoutMs)) {
        entry.timer = setTimeout(() => {
          // Forget the id: a reply that comes later is dropped, never matched to another request.
          this.pending.delete(id);
          reject(new FerryError('operation_timeout', `QEMU did not answer ${command} within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.pending.set(id, entry);
      const msg: Record<string, unknown> = { execute: command, id };
      if (args !== undefined) msg.arguments = args;
      this.socket.write(`${JSON.stringify(msg)}\n`);
    });
  }

  /**
   * Resolves with the next event named `name` (and accepted by `predicate`)
   * that arrives after this call. Register before triggering the event —
   * events that arrived earlier are not replayed.
   *
   * @throws FerryError `operation_timeout` after `timeoutMs`, `operation_failed` if the connection closes first
   */
  waitForEvent(name: string, predicate: (ev: QmpEvent) => boolean = () => true, timeoutMs = 30_000): Promise<QmpEvent> {
    if (this.closedWith !== undefined) {
      return Promise.reject(closedError(`the ${name} event`, this.closedWith.error));
    }
    return new Promise<QmpEvent>((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('event', onEvent);
        this.off('close', onClose);
      };
      const onEvent = (ev: QmpEvent): void => {
        if (ev.event !== name) return;
        let ok: boolean;
        try {
          ok = predicate(ev);
        } catch (err) {
          cleanup();
          reject(err instanceof FerryError ? err : new FerryError('internal_error', String(err), { cause: err }));
          return;
        }
        if (!ok) return;
        cleanup();
        resolve(ev);
      };
      const onClose = (error: FerryError | undefined): void => {
        cleanup();
        reject(closedError(`the ${name} event`, error));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new FerryError('operation_timeout', `QEMU sent no ${name} event within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on('event', onEvent);
      this.on('close', onClose);
    });
  }

  /**
   * All events from now on as an async iterator; it ends when the connection
   * closes or the loop is left. Events are buffered while the consumer is busy.
   */
  events(): AsyncIterableIterator<QmpEvent> {
    const queue: QmpEvent[] = [];
    let waiting: ((r: IteratorResult<QmpEvent>) => void) | undefined;
    let done = this.closedWith !== undefined;
    const onEvent = (ev: QmpEvent): void => {
      if (waiting) {
        const w = waiting;
        waiting = undefined;
        w({ value: ev, done: false });
      } else {
        queue.push(ev);
      }
    };
    const finish = (): void => {
      done = true;
      this.off('event', onEvent);
      this.off('close', finish);
      if (waiting) {
        const w = waiting;
        waiting = undefined;
        w({ value: undefined, done: true });
      }
    };
    if (!done) {
      this.on('event', onEvent);
      this.on('close', finish);
    }
    const iterator: AsyncIterableIterator<QmpEvent> = {
      next: () => {
        const ev = queue.shift();
        if (ev !== undefined) return Promise.resolve({ value: ev, done: false });
        if (done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          waiting = resolve;
        });
      },
      return: () => {
        finish();
        queue.length = 0;
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /**
   * Closes the connection from our side. Pending commands are rejected and
   * `close` is emitted. QEMU keeps running: this is how ferryd lets go of a
   * guest it will re-attach to later.
   */
  close(): void {
    this.socket.destroy();
    this.finish(undefined);
  }

  private attachSocket(): void {
    this.socket.on('data', (chunk: Buffer) => {
      let lines: string[];
      try {
        lines = this.splitter.push(chunk);
      } catch (err) {
        this.socket.destroy();
        this.finish(err as FerryError);
        return;
      }
      for (const line of lines) {
        if (this.closedWith !== undefined) return;
        this.handleLine(line);
      }
    });
    this.socket.on('error', (err: NodeJS.ErrnoException) => {
      this.finish(new FerryError('operation_failed', `QMP connection failed: ${err.message}`, { cause: err }));
    });
    // 'close' follows 'error' too; finish() is idempotent and keeps the first reason.
    this.socket.on('close', () => this.finish(undefined));
    this.socket.resume();
  }

  private handleLine(line: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      // A monitor that sends garbage can't be trusted to match replies anymore.
      this.socket.destroy();
      this.finish(new FerryError('rpc', `QEMU sent a QMP message that is not JSON: ${truncate(line)}`));
      return;
    }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) return;
    const m = msg as Record<string, unknown>;
    if (typeof m.event === 'string') {
      const ev: QmpEvent = {
        event: m.event,
        data: isRecord(m.data) ? m.data : {},
        timestamp: isRecord(m.timestamp)
          ? { seconds: Number(m.timestamp.seconds), microseconds: Number(m.timestamp.microseconds) }
          : { seconds: 0, microseconds: 0 },
      };
      this.emit('event', ev);
      return;
    }
    // Replies without a known id (QEMU's answer to unparseable input, or to a
    // request that already timed out) belong to nobody and are dropped.
    if (typeof m.id !== 'string') return;
    const entry = this.pending.get(m.id);
    if (entry === undefined) return;
    this.pending.delete(m.id);
    if (entry.timer) clearTimeout(entry.timer);
    if ('return' in m) {
      entry.resolve(m.return);
    } else if (isRecord(m.error)) {
      const cls = typeof m.error.class === 'string' ? m.error.class : 'GenericError';
      const desc = typeof m.error.desc === 'string' ? m.error.desc : 'no description';
      entry.reject(new QmpCommandError(entry.command, cls, desc));
    } else {
      entry.reject(new FerryError('rpc', `QEMU sent a malformed reply to ${entry.command}: ${truncate(line)}`));
    }
  }

  private finish(error: FerryError | undefined): void {
    if (this.closedWith !== undefined) return;
    this.closedWith = { error };
    for (const [id, entry] of this.pending) {
      this.pending.delete(id);
      if (entry.timer) clearTimeout(entry.timer);
      entry.reject(closedError(entry.command, error));
    }
    this.emit('close', error);
  }
}

function closedError(what: string, cause: FerryError | undefined): FerryError {
  const why = cause ? `: ${cause.message}` : '';
  return new FerryError('operation_failed', `QMP connection closed while waiting for ${what}${why}`, { cause });
}

function isGreeting(v: unknown): v is QmpGreeting {
  return isRecord(v) && isRecord(v.QMP);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function truncate(s: string, max = 200): string {
  return s.length > max ? `${s.slice(0, max)}...` : s;
}
