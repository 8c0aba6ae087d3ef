/**
 * Per-domain job control. At most one modify job runs at a time (define,
 * start, suspend, ...); callers queue for it with a deadline. A long-running
 * async job (a migration) holds the domain across many calls and says which
 * modify jobs may still run beside it: with CHANGE_PROTECTION none that
 * change the definition. It queues like a modify job to start, so it never
 * begins in the middle of one.
 */
import { FerryError } from '../errors/index.js';

/** The kind of a modify job, used to decide what an async job allows. */
export type ModifyKind = 'define' | 'undefine' | 'start' | 'destroy' | 'shutdown' | 'suspend' | 'resume' | 'autostart' | 'migration' | 'measure';

/** A running async job (e.g. an outgoing migration). */
export interface AsyncJob {
  readonly kind: 'migration-out' | 'migration-in';
  readonly startedAt: number;
  /** Modify kinds allowed while this job runs. */
  readonly allowed: ReadonlySet<ModifyKind>;
  /** Why the others are refused, for the error message. */
  readonly reason: string;
}

/** Default wait for the modify lock, like libvirt's 30 s job wait. */
export const DEFAULT_LOCK_WAIT_MS = 30_000;

/** The job state of one domain. */
export class DomainJobLock {
  private tail: Promise<void> = Promise.resolve();
  private holder: ModifyKind | null = null;
  private asyncJob: AsyncJob | null = null;

  constructor(private readonly domainName: () => string) {}

  /** The modify job running now, if any. */
  get currentModify(): ModifyKind | null {
    return this.holder;
  }

  /** The async job running now, if any. */
  get currentAsync(): AsyncJob | null {
    return this.asyncJob;
  }

  /**
   * Runs `fn` as a modify job of kind `kind`, after the jobs queued before
   * it. Refused at once if an async job forbids `kind`; times out with
   * `operation_timeout` naming the job that holds the lock.
   */
  async run<T>(kind: ModifyKind, fn: () => Promise<T>, waitMs = DEFAULT_LOCK_WAIT_MS): Promise<T> {
    this.checkAllowed(kind);
    const release = await this.queue(kind, waitMs);
    try {
      this.checkAllowed(kind);
      this.holder = kind;
      return await fn();
    } finally {
      this.holder = null;
      release();
    }
  }

  /**
   * Starts an async job once the modify jobs running or queued before it
   * have ended, so that it never begins while, say, `define` is writing the
   * definition it is about to read; the jobs queued after it then run under
   * its rules. Waits like {@link run}.
   *
   * @throws FerryError `operation_invalid` if an async job runs already (at
   *   once, or when this one's turn comes), `operation_timeout` if the modify
   *   jobs before it still hold the domain after `waitMs`
   */
  async beginAsync(job: Omit<AsyncJob, 'startedAt'>, waitMs = DEFAULT_LOCK_WAIT_MS): Promise<AsyncJob> {
    this.refuseSecondAsync();
    const release = await this.queue(`a ${job.kind} job`, waitMs);
    try {
      this.refuseSecondAsync();
      this.asyncJob = { ...job, startedAt: Date.now() };
      return this.asyncJob;
    } finally {
      release();
    }
  }

  /** Ends the async job `job` (no-op if another one is current). */
  endAsync(job: AsyncJob): void {
    if (this.asyncJob === job) this.asyncJob = null;
  }

  /**
   * Takes the next place in the queue and waits for the jobs before it;
   * resolves the function that hands the lock on. `what` names the waiter
   * in the timeout message.
   */
  private async queue(what: string, waitMs: number): Promise<() => void> {
    const previous = this.tail;
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    this.tail = previous.then(() => mine);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        previous,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            reject(new FerryError('operation_timeout', `cannot start ${what} on domain '${this.domainName()}': another job (${this.holder ?? 'queued'}) still holds it after ${waitMs} ms`));
          }, waitMs);
        }),
      ]);
    } catch (err) {
      // Keep the queue intact: our slot is released once the earlier job ends.
      void previous.then(release);
      throw err;
    } finally {
      if (timer) clearTimeout(timer);
    }
    return release;
  }

  private refuseSecondAsync(): void {
    if (this.asyncJob) {
      throw new FerryError('operation_invalid', `domain '${this.domainName()}' already has a ${this.asyncJob.kind} job running`);
    }
  }

  private checkAllowed(kind: ModifyKind): void {
    const a = this.asyncJob;
    if (a && !a.allowed.has(kind)) {
      throw new FerryError('operation_invalid', `cannot ${kind} domain '${this.domainName()}' while its ${a.kind} job runs: ${a.reason}`);
    }
  }
}
