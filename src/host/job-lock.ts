/**
 * Per-domain job control. At most one modify job runs at a time (define,
 * start, suspend, ...); callers queue for it with a deadline. A long-running
 * async job (a migration) holds the domain across many calls and says which
 * modify jobs may still run beside it: with CHANGE_PROTECTION none that
 * change the definition.
 */
import { FerryError } from '../errors/index.js';

/** The kind of a modify job, used to decide what an async job allows. */
export type ModifyKind = 'define' | 'undefine' | 'start' | 'destroy' | 'shutdown' | 'suspend' | 'resume' | 'autostart' | 'migration';

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
            reject(new FerryError('operation_timeout', `cannot start ${kind} on domain '${this.domainName()}': another job (${this.holder ?? 'queued'}) still holds it after ${waitMs} ms`));
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
    try {
      this.checkAllowed(kind);
      this.holder = kind;
      return await fn();
    } finally {
      this.holder = null;
      release();
    }
  }

  /** Starts an async job; refused if one is running already. */
  beginAsync(job: Omit<AsyncJob, 'startedAt'>): AsyncJob {
    if (this.asyncJob) {
      throw new FerryError('operation_invalid', `domain '${this.domainName()}' already has a ${this.asyncJob.kind} job running`);
    }
    this.asyncJob = { ...job, startedAt: Date.now() };
    return this.asyncJob;
  }

  /** Ends the async job `job` (no-op if another one is current). */
  endAsync(job: AsyncJob): void {
    if (this.asyncJob === job) this.asyncJob = null;
  }

  private checkAllowed(kind: ModifyKind): void {
    const a = this.asyncJob;
    if (a && !a.allowed.has(kind)) {
      throw new FerryError('operation_invalid', `cannot ${kind} domain '${this.domainName()}' while its ${a.kind} job runs: ${a.reason}`);
    }
  }
}
