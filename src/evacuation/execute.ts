/**
 * Running an evacuation: the loop that asks the scheduler what to start,
 * starts it, records how each migration ended, and asks again, until every
 * guest is settled or the user stopped it. No I/O of its own: the
 * migrations, the record's storage, the clock and the log are injected, so
 * that the loop is tested with fakes and run by ferryd with real
 * migrations (src/migration/evacuations.ts).
 *
 * Every change of the record goes through `record.ts` (`markStarted`,
 * `markEnded`) and is saved before the next decision that depends on it;
 * saves are written in order, each with the record as it is when written.
 */
import { toFerryError } from '../errors/index.js';
import { hostNameOf, isSettled, markEnded, markStarted, type EvacuationRecord, type MigrationOutcome } from './record.js';
import { inFlight, nextMigrations, type HostLimits, type MigrationStart } from './scheduler.js';

/** What the run does to the world. */
export interface ExecutorOps {
  /** Runs one migration to its end and says how it ended; a rejection counts as an unknown outcome. */
  migrate(start: MigrationStart): Promise<MigrationOutcome>;
  /** Aborts the running migration `start` (the second Ctrl-C); its `migrate` then ends `interrupted` or `failed`. */
  abort(start: MigrationStart): Promise<void>;
  /** Stores the record (atomically). A failure is logged and stops new starts: a run must not get ahead of its record. */
  save(record: EvacuationRecord): Promise<void>;
  now(): number;
  log(msg: string): void;
  /** Called after every change of the record or the run's state. */
  changed(): void;
}

/** Where a run is: starting migrations, letting the running ones end (`stopping`), aborting them, or over. */
export type RunState = 'running' | 'stopping' | 'aborting' | 'ended';

/** A run's settings. */
export interface RunOptions {
  /** Migrations in flight at once, at most. */
  maxParallel: number;
  /** Per host URI; by default the limits in the record's host facts. */
  limits?: Record<string, HostLimits>;
}

/** One evacuation being carried out. */
export class EvacuationRun {
  private current: EvacuationRecord;
  private runState: RunState = 'running';
  private readonly running = new Map<string, MigrationStart>();
  private wake: (() => void) | undefined;
  private saving: Promise<void> = Promise.resolve();
  private saveFailed = false;
  private most = 0;

  constructor(
    record: EvacuationRecord,
    private readonly options: RunOptions,
    private readonly ops: ExecutorOps,
  ) {
    this.current = record;
  }

  get record(): EvacuationRecord {
    return this.current;
  }

  get state(): RunState {
    return this.runState;
  }

  /** The migrations running now. */
  get inFlight(): MigrationStart[] {
    return [...this.running.values()];
  }

  /** The most migrations this run had in flight at once. */
  get maxInFlight(): number {
    return this.most;
  }

  /**
   * Stops the run: nothing new starts; the running migrations end by
   * themselves, or with `abort` are aborted (each guest stays on the source
   * and is `pending` again, its destination not blamed). Stopping twice
   * with `abort` the second time aborts what still runs.
   */
  stop(abort: boolean): void {
    if (this.runState === 'ended') return;
    const escalate = abort && this.runState !== 'aborting';
    if (this.runState === 'running' || escalate) this.runState = abort ? 'aborting' : 'stopping';
    if (escalate) {
      for (const s of this.running.values()) {
        this.ops.log(`evacuation: aborting the migration of '${s.name}'`);
        this.ops.abort(s).catch((err) => this.ops.log(`evacuation: could not abort the migration of '${s.name}': ${toFerryError(err).message}`));
      }
    }
    this.ops.changed();
    this.wake?.();
  }

  /** Runs until every guest is settled, or the run was stopped and nothing runs any more. Resolves with the last record, saved. */
  async run(): Promise<EvacuationRecord> {
    for (;;) {
      const stopping = this.runState !== 'running' || this.saveFailed;
      for (const s of nextMigrations({ record: this.current, maxParallel: this.options.maxParallel, stopping, ...(this.options.limits ? { limits: this.options.limits } : {}) })) this.launch(s);
      if (this.running.size === 0) break;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
    await this.saving;
    this.runState = 'ended';
    this.ops.changed();
    return this.current;
  }

  /** True when nothing is left to do for this record (see `isSettled`). */
  get settled(): boolean {
    return isSettled(this.current);
  }

  private launch(s: MigrationStart): void {
    this.current = markStarted(this.current, s.name, this.ops.now());
    this.running.set(s.name, s);
    this.most = Math.max(this.most, this.running.size);
    this.save();
    this.ops.log(`evacuation: start '${s.name}' to ${this.hostName(s.destination)} (attempt ${s.attempt}); ${this.loadLine(s)}`);
    this.ops.changed();
    const started = this.ops.now();
    void this.ops
      .migrate(s)
      .catch((err): MigrationOutcome => ({ result: 'unknown', error: toFerryError(err).message }))
      .then((ended) => {
        // A migration the user aborted is not its destination's failure.
        const outcome: MigrationOutcome = ended.result === 'failed' && this.runState === 'aborting' ? { result: 'interrupted', error: `aborted by the user (${ended.error})` } : ended;
        this.running.delete(s.name);
        this.current = markEnded(this.current, s.name, outcome, this.ops.now());
        this.save();
        this.ops.log(`evacuation: '${s.name}' ended: ${this.describe(outcome, s, this.ops.now() - started)}`);
        this.ops.changed();
        this.wake?.();
      });
  }

  private save(): void {
    const record = (): EvacuationRecord => this.current;
    this.saving = this.saving.then(() =>
      this.ops.save(record()).catch((err) => {
        if (!this.saveFailed) this.ops.log(`evacuation: cannot store the record, starting no more migrations: ${toFerryError(err).message}`);
        this.saveFailed = true;
      }),
    );
  }

  /** The numbers in flight after a start, for the log: the evacuation's, the source's outgoing, the destination's incoming. */
  private loadLine(s: MigrationStart): string {
    const r = this.current;
    const limits = this.options.limits;
    const lim = (uri: string) => limits?.[uri] ?? [r.source, ...r.destinations].find((h) => h.uri === uri)?.migrations ?? { maxOutgoing: 0, maxIncoming: 0 };
    const running = r.guests.filter(inFlight);
    const incoming = running.filter((e) => e.guest.state === 'running' && e.attempts.at(-1)?.destination === s.destination).length;
    const into = s.offline ? 'offline: no incoming slot' : `incoming to ${this.hostName(s.destination)} ${incoming} of ${lim(s.destination).maxIncoming}`;
    return `in flight ${running.length} (max ${this.options.maxParallel}); outgoing from ${r.source.name} ${running.length} of ${lim(r.source.uri).maxOutgoing}; ${into}`;
  }

  private describe(o: MigrationOutcome, s: MigrationStart, ms: number): string {
    switch (o.result) {
      case 'migrated':
        return `migrated to ${this.hostName(o.at ?? s.destination)} in ${ms} ms${o.downtimeMs !== undefined ? ` (downtime ${o.downtimeMs} ms)` : ''}`;
      case 'failed':
        return `failed on ${this.hostName(s.destination)}: ${o.error}`;
      case 'unknown':
        return `unknown: ${o.error}`;
      case 'interrupted':
        return `stopped: ${o.error}`;
    }
  }

  private hostName(uri: string): string {
    return hostNameOf(this.current, uri);
  }
}
