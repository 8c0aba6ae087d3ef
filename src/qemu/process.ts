/** QEMU process supervision: start detached so guests outlive ferryd, re-attach after a restart, detect and classify exits, kill. */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { FerryError } from '../errors/index.js';
import { openLaunchLog, readLogTail } from './log-file.js';
import { isProcessAlive, readProcStatSync } from './proc-stat.js';
import { QmpClient, type QmpEvent } from './qmp-client.js';
import type { QemuStatus } from './status-file.js';

/** Why a QEMU process ended. */
export type ExitReason =
  /** QEMU shut down after a SHUTDOWN event: `guest` true for a guest power-off (or reset with on_reboot=destroy). */
  | { kind: 'shutdown'; guest: boolean; reason?: string }
  /** ferryd killed it ({@link QemuHandle.kill}). */
  | { kind: 'destroyed' }
  /** It ended without a shutdown: crash, external kill. Code and signal are null when ferryd was not its parent. */
  | { kind: 'crashed'; code: number | null; signal: string | null }
  /** It exited before its monitor answered, e.g. a disk that can't be opened. */
  | { kind: 'failed-to-start'; stderrTail: string };

/** Options for {@link QemuProcess.start}. */
export interface QemuStartOptions {
  /** Absolute path of the QEMU binary. */
  binary: string;
  /** argv without the binary, from `buildQemuArgs`; must put QMP at {@link qmpSocketPath}. */
  args: readonly string[];
  /** QMP socket the args tell QEMU to listen on; a stale file there is removed first. */
  qmpSocketPath: string;
  /** QEMU's stdout and stderr are appended here (per-guest log). */
  logPath: string;
  /** Used in error messages. */
  name?: string;
  /** Deadline for QEMU to be up with QMP answering. Default 30000 ms. */
  startTimeoutMs?: number;
  /** How often /proc is checked once QEMU is not our child (after {@link QemuProcess.attach}). Default 500 ms. */
  pollIntervalMs?: number;
  /** Environment for QEMU; ferryd's own by default. */
  env?: NodeJS.ProcessEnv;
}

/** Options for {@link QemuProcess.attach}. */
export interface QemuAttachOptions {
  /** Deadline for the QMP connection. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** See {@link QemuStartOptions.pollIntervalMs}. */
  pollIntervalMs?: number;
}

/** Options for {@link QemuHandle.kill}. */
export interface QemuKillOptions {
  /** Ask QEMU to `quit` over QMP first (default true); false goes straight to SIGKILL. */
  graceful?: boolean;
  /** How long to wait for `quit` to end the process before SIGKILL. Default 10000 ms. */
  gracefulTimeoutMs?: number;
  /** How long to wait for the process to vanish after SIGKILL. Default 5000 ms. */
  killTimeoutMs?: number;
}

/** A running QEMU as ferryd holds it. */
export interface QemuHandle {
  /** QEMU's pid. */
  readonly pid: number;
  /** Start time of {@link pid} in clock ticks after boot (/proc/<pid>/stat field 22). */
  readonly startTime: number;
  /** The QMP connection; closes when QEMU exits. */
  readonly qmp: QmpClient;
  /** Settles once with why QEMU ended. Never settles after {@link detach}. */
  readonly exited: Promise<ExitReason>;
  /** The exit reason once known. */
  readonly exitReason: ExitReason | undefined;
  /** Whether ferryd is QEMU's parent (started it in this process) rather than attached to it. */
  readonly isChild: boolean;
  /**
   * Ends QEMU: `quit` over QMP, then SIGKILL after a deadline. Resolves with
   * the exit reason (`destroyed` unless it had already ended otherwise).
   *
   * @throws FerryError `operation_timeout` if the process is still there after SIGKILL
   *   (e.g. stuck in uninterruptible I/O): ferryd never waits forever on it
   */
  kill(opts?: QemuKillOptions): Promise<ExitReason>;
  /**
   * Lets go of QEMU without stopping it: closes QMP and stops watching. What
   * a ferryd shutdown does; a later {@link QemuProcess.attach} picks it up.
   */
  detach(): void;
}

/** A start failure; {@link reason} carries QEMU's last stderr lines. */
export class QemuStartError extends FerryError {
  /** Why the start failed, as an exit reason. */
  readonly reason: ExitReason;

  constructor(message: string, reason: ExitReason, code: 'operation_failed' | 'operation_timeout' = 'operation_failed') {
    super(code, message);
    this.name = 'QemuStartError';
    this.reason = reason;
  }
}

interface ChildExit {
  code: number | null;
  signal: string | null;
}

const DEFAULT_START_TIMEOUT_MS = 30_000;
const DEFAULT_POLL_INTERVAL_MS = 500;
/** After QMP closes, /proc is checked this often until the process is gone. */
const FAST_POLL_MS = 50;
/** Waiting this long for QMP's close after the process is gone lets a SHUTDOWN event still in the socket be read. */
const QMP_DRAIN_MS = 1_000;

/**
 * Supervises one QEMU process. Create with {@link QemuProcess.start} or
 * {@link QemuProcess.attach}.
 *
 * Exit detection has two modes. While ferryd is QEMU's parent, the child's
 * `exit` event gives the exit code and signal. After a ferryd restart the
 * QEMU is someone else's child (PID 1 adopts it and reaps it only now and
 * then), so exit is detected by the QMP socket closing, confirmed by
 * /proc/<pid>/stat — zombie counts as gone, and a changed start time means
 * the pid now belongs to another process — with a slow poll as a backstop.
 */
export class QemuProcess implements QemuHandle {
  readonly pid: number;
  readonly startTime: number;
  readonly qmp: QmpClient;
  readonly exited: Promise<ExitReason>;
  readonly isChild: boolean;
  /** Milliseconds from spawn to QMP answering, for start()ed processes. */
  readonly startupMs: number | undefined;
  private resolveExited!: (r: ExitReason) => void;
  private reason: ExitReason | undefined;
  private shutdown: { guest: boolean; reason?: string } | undefined;
  private killRequested = false;
  private detached = false;
  private gone = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private readonly pollIntervalMs: number;
  private readonly onQmpEvent = (ev: QmpEvent): void => {
    if (ev.event === 'SHUTDOWN') {
      const reason = typeof ev.data.reason === 'string' ? ev.data.reason : undefined;
      this.shutdown = { guest: ev.data.guest === true, ...(reason !== undefined ? { reason } : {}) };
    }
  };
  private readonly onQmpClose = (): void => {
    // Without a child 'exit' event to tell us, the closed monitor is the
    // earliest sign of exit: check /proc often until the process is gone.
    if (!this.isChild) this.schedulePoll(FAST_POLL_MS);
  };

  private constructor(init: {
    pid: number;
    startTime: number;
    qmp: QmpClient;
    childExit: Promise<ChildExit> | undefined;
    pollIntervalMs: number;
    startupMs?: number;
  }) {
    this.pid = init.pid;
    this.startTime = init.startTime;
    this.qmp = init.qmp;
    this.isChild = init.childExit !== undefined;
    this.startupMs = init.startupMs;
    this.pollIntervalMs = init.pollIntervalMs;
    this.exited = new Promise<ExitReason>((resolve) => {
      this.resolveExited = resolve;
    });
    this.qmp.on('event', this.onQmpEvent);
    this.qmp.on('close', this.onQmpClose);
    if (init.childExit) {
      void init.childExit.then((ex) => this.onGone(ex));
    } else {
      this.schedulePoll(this.pollIntervalMs);
      if (this.qmp.closed) this.onQmpClose();
    }
  }

  /**
   * Starts QEMU detached — its own session, stdin from /dev/null, stdout and
   * stderr appended to the per-guest log, not holding ferryd's event loop —
   * so that it survives a ferryd restart, and waits until QMP answers.
   *
   * "Answers" means a `query-status` reply, not just the greeting: QEMU greets
   * before machine set-up has finished (and may still fail, e.g. on a kernel
   * it can't load), while commands only run once set-up is complete.
   *
   * @throws QemuStartError (`operation_failed`) if QEMU exits during start-up, with
   *   the last lines of its stderr; (`operation_timeout`) if it isn't up by the deadline
   */
  static async start(opts: QemuStartOptions): Promise<QemuProcess> {
    const who = opts.name !== undefined ? `QEMU for ${opts.name}` : 'QEMU';
    const deadline = Date.now() + (opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
    // A socket left by an earlier run would accept nothing, and we'd poll it until the deadline.
    await unlink(opts.qmpSocketPath).catch(() => undefined);

    const log = openLaunchLog(opts.logPath, opts.binary, opts.args);
    const t0 = performance.now();
    let child: ChildProcess;
    try {
      child = spawn(opts.binary, [...opts.args], {
        detached: true,
        stdio: ['ignore', log.fd, log.fd],
        env: opts.env ?? process.env,
      });
    } finally {
      // The child has its own copy of the fd now.
      closeSync(log.fd);
    }

    let childExit: ChildExit | undefined;
    let spawnError: Error | undefined;
    const childExitPromise = new Promise<ChildExit>((resolve) => {
      child.once('exit', (code, signal) => {
        childExit = { code, signal };
        resolve(childExit);
      });
      child.once('error', (err) => {
        // Spawn failures (ENOENT, EACCES) come here and there is no 'exit' event.
        spawnError = err;
        childExit = { code: null, signal: null };
        resolve(childExit);
      });
    });
    // Don't let the child keep ferryd's event loop alive: ferryd may exit while QEMU runs on.
    child.unref();

    const tail = (): Promise<string> => readLogTail(opts.logPath, log.startOffset);
    const startFailure = async (): Promise<QemuStartError> => {
      if (spawnError) {
        return new QemuStartError(`cannot run ${opts.binary}: ${spawnError.message}`, {
          kind: 'failed-to-start',
          stderrTail: spawnError.message,
        });
      }
      const t = await tail();
      const how = childExit?.signal ? `was killed by ${childExit.signal}` : `exited with status ${String(childExit?.code)}`;
      return new QemuStartError(`${who} ${how} during start-up${t ? `: ${t}` : ' without a message'} (log: ${opts.logPath})`, {
        kind: 'failed-to-start',
        stderrTail: t,
      });
    };

    const pid = child.pid;
    // Read the start time at once: the child can't be reaped before we get
    // back to the event loop, so this is certainly our process.
    const st = pid !== undefined ? readProcStatSync(pid) : undefined;
    if (pid === undefined || st === undefined) {
      await childExitPromise;
      throw await startFailure();
    }

    const timedOut = async (): Promise<QemuStartError> => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
      await Promise.race([childExitPromise, sleep(5_000)]);
      const t = await tail();
      return new QemuStartError(
        `${who} did not answer on QMP within ${opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS} ms and was killed${t ? `: ${t}` : ''}`,
        { kind: 'failed-to-start', stderrTail: t },
        'operation_timeout',
      );
    };

    for (;;) {
      if (childExit) throw await startFailure();
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw await timedOut();
      let qmp: QmpClient;
      try {
        qmp = await QmpClient.connect(opts.qmpSocketPath, { timeoutMs: remaining });
      } catch (err) {
        if (err instanceof FerryError && err.code === 'operation_timeout') throw await timedOut();
        // Not listening yet (ENOENT/ECONNREFUSED) or went away: look again shortly.
        await Promise.race([childExitPromise, sleep(20)]);
        continue;
      }
      try {
        await qmp.execute('query-status', undefined, { timeoutMs: Math.max(1, deadline - Date.now()) });
      } catch (err) {
        qmp.close();
        if (err instanceof FerryError && err.code === 'operation_timeout') throw await timedOut();
        // The monitor went away mid-start: QEMU is on its way out.
        await Promise.race([childExitPromise, sleep(2_000)]);
        if (childExit) throw await startFailure();
        throw err;
      }
      return new QemuProcess({
        pid,
        startTime: st.startTime,
        qmp,
        childExit: childExitPromise,
        pollIntervalMs: opts.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS,
        startupMs: Math.round(performance.now() - t0),
      });
    }
  }

  /**
   * Re-attaches to a QEMU that runs from an earlier ferryd, as recorded in
   * its status file: checks the pid is still that QEMU, then connects QMP.
   *
   * @throws FerryError `no_domain` if the process is gone (or the pid is reused),
   *   `operation_failed`/`operation_timeout` if it runs but its monitor can't be reached
   *   (QEMU serves one QMP client at a time: another ferryd may hold it)
   */
  static async attach(
    status: Pick<QemuStatus, 'name' | 'pid' | 'pidStartTime' | 'qmpSocket'>,
    opts: QemuAttachOptions = {},
  ): Promise<QemuProcess> {
    const gone = (): FerryError =>
      new FerryError('no_domain', `QEMU for ${status.name} (pid ${status.pid}) is no longer running`);
    if (!(await isProcessAlive(status.pid, status.pidStartTime))) throw gone();
    let qmp: QmpClient;
    try {
      qmp = await QmpClient.connect(status.qmpSocket, { timeoutMs: opts.connectTimeoutMs ?? 5_000 });
    } catch (err) {
      if (!(await isProcessAlive(status.pid, status.pidStartTime))) throw gone();
      const e = err instanceof FerryError ? err : new FerryError('operation_failed', String(err));
      throw new FerryError(e.code, `cannot re-attach to QEMU for ${status.name} (pid ${status.pid}): ${e.message}`, {
        cause: err,
      });
    }
    return new QemuProcess({
      pid: status.pid,
      startTime: status.pidStartTime,
      qmp,
      childExit: undefined,
      pollIntervalMs: opts.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS,
    });
  }

  get exitReason(): ExitReason | undefined {
    return this.reason;
  }

  async kill(opts: QemuKillOptions = {}): Promise<ExitReason> {
    if (this.reason) return this.reason;
    if (this.detached) throw new FerryError('operation_invalid', `QEMU pid ${this.pid} is detached; attach to it first`);
    this.killRequested = true;
    const graceful = opts.graceful ?? true;
    const gracefulTimeoutMs = opts.gracefulTimeoutMs ?? 10_000;
    const killTimeoutMs = opts.killTimeoutMs ?? 5_000;

    if (graceful && !this.qmp.closed) {
      // QEMU replies and then closes the socket, so a 'closed' error is success too.
      await this.qmp.execute('quit', undefined, { timeoutMs: gracefulTimeoutMs }).catch(() => undefined);
      const r = await this.waitExit(gracefulTimeoutMs);
      if (r) return r;
    }
    // Only signal the pid while it is provably still our QEMU: a reused pid belongs to someone else.
    if (!this.reason && (await isProcessAlive(this.pid, this.startTime))) {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        // Raced with its exit.
      }
    }
    if (!this.isChild) this.schedulePoll(FAST_POLL_MS);
    const r = await this.waitExit(killTimeoutMs);
    if (r) return r;
    throw new FerryError(
      'operation_timeout',
      `QEMU pid ${this.pid} did not exit within ${killTimeoutMs} ms of SIGKILL (stuck in uninterruptible I/O?)`,
    );
  }

  detach(): void {
    if (this.detached) return;
    this.detached = true;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
    this.qmp.off('event', this.onQmpEvent);
    this.qmp.off('close', this.onQmpClose);
    this.qmp.close();
  }

  private async waitExit(ms: number): Promise<ExitReason | undefined> {
    if (this.reason) return this.reason;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private schedulePoll(ms: number): void {
    if (this.detached || this.gone) return;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(() => {
      this.pollTimer = undefined;
      void this.poll();
    }, ms);
    // Watching must not keep ferryd alive on its own.
    this.pollTimer.unref();
  }

  private async poll(): Promise<void> {
    if (this.detached || this.gone) return;
    if (!(await isProcessAlive(this.pid, this.startTime))) {
      await this.onGone({ code: null, signal: null });
      return;
    }
    this.schedulePoll(this.qmp.closed ? FAST_POLL_MS : this.pollIntervalMs);
  }

  private async onGone(ex: ChildExit): Promise<void> {
    if (this.gone || this.detached) return;
    this.gone = true;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    // The process is gone, but the SHUTDOWN event it sent may still be
    // unread in the socket: the exit notification can overtake it. QMP's
    // close comes after all its data, so wait for that (briefly).
    if (!this.qmp.closed) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, QMP_DRAIN_MS);
        function done(): void {
          clearTimeout(t);
          resolve();
        }
        this.qmp.once('close', done);
      });
      this.qmp.close();
    }
    if (this.detached) return;
    let reason: ExitReason;
    if (this.killRequested) reason = { kind: 'destroyed' };
    else if (this.shutdown) reason = { kind: 'shutdown', ...this.shutdown };
    else reason = { kind: 'crashed', code: ex.code, signal: ex.signal };
    this.reason = reason;
    this.qmp.off('event', this.onQmpEvent);
    this.qmp.off('close', this.onQmpClose);
    this.resolveExited(reason);
  }
}
