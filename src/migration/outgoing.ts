/**
 * The source's phases: begin (checks, the XML and cookie to send), perform
 * (QEMU's `migrate`, followed to its end) and confirm (on success stop the
 * source QEMU and undefine if asked; on failure take the guest back), plus
 * the controls of a running job: statistics, abort, speed and downtime.
 */
import { randomUUID } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { DomainDocument } from '../domain/index.js';
import { FerryError, toFerryError } from '../errors/index.js';
import { MAX_BANDWIDTH_MIB, hasFlag, qemuInetHost, selectedDisks, type MigrationParams } from '../flags/index.js';
import type { Host } from '../host/host.js';
import type { HostedDomain } from '../host/hosted-domain.js';
import type { AsyncJob } from '../host/job-lock.js';
import { statsFromQemu, type JobStats } from '../host/job-stats.js';
import { eventTimeMs, type QmpClient, type QmpEvent } from '../qemu/index.js';
import { admitOnSource } from './admission.js';
import { COOKIE_VERSION, type BeginResult, type ConfirmArgs, type MigrationRequest, type PerformArgs, type PerformResult } from './phases.js';
import { cancelMigration, followMigration, prepareQemuForMigration, type MigrationEnd } from './qemu-migration.js';
import { MIB, UNLIMITED_BANDWIDTH_BYTES, migrationSetup } from './tuning.js';
import { checkMigrationSafe } from './safety.js';
import { addTlsCreds } from './qemu-tls.js';
import { raiseMemlock } from './memlock.js';
import { DiskMirrors, describeStorage, dropLeftoverMirrors, withDiskStats } from './storage-copy.js';
import type { StorageCookie } from './phases.js';
import { MigrationJournal, type JournalEntry, type JournalPhase } from './journal.js';
import { holdPoint } from './test-hold.js';
import { releaseIncomingQemu } from './release-incoming.js';
import { MigrationSlots, type SlotTicket } from './slots.js';

/** libvirt's "unlimited" migration speed in MiB/s, as `migrate-getspeed` reports it: the bandwidth parameter's maximum. */
const UNLIMITED_SPEED_MIB = MAX_BANDWIDTH_MIB;

/** Where a source job stands. */
type OutgoingPhase = 'queued' | 'begun' | 'performing' | 'performed' | 'perform-failed' | 'confirmed' | 'cancelled';

interface OutgoingJob {
  id: string;
  domain: HostedDomain;
  flags: number;
  params: MigrationParams;
  asyncJob: AsyncJob;
  phase: OutgoingPhase;
  startedAt: number;
  wasRunning: boolean;
  stats: JobStats | null;
  abortRequested: boolean;
  /** Why the job was cancelled, when something other than `domjobabort` cancelled it (a lost destination, say). */
  abortReason?: string;
  /** The destination daemon was lost: nobody there will clean up its waiting QEMU (see release-incoming.ts). */
  destinationLost?: boolean;
  /** The client that drives this job (managed mode) went away; the job is rolled back once it is safe. */
  ownerLost?: boolean;
  /** Stops listening for the owner's departure once the job has ended. */
  dropOwner?: () => void;
  /** Set once the migration switched to post-copy: the source never resumes after that. */
  postcopy?: boolean;
  /** `migrate-postcopy` was called. */
  postcopyRequested?: boolean;
  /** Post-copy: the rest of the stream, followed in the background after perform returned. */
  completion?: Promise<MigrationEnd>;
  /** Storage copy: the disks going, as told to the destination. */
  storage?: StorageCookie;
  /** Storage copy: the running mirrors. */
  mirrors?: DiskMirrors;
  /** The destination daemon's URI, when known: a restarted ferryd asks it how the job ended. */
  destUri?: string;
  /** This job's outgoing migration slot (see slots.ts). */
  ticket: SlotTicket;
  /** The job's journal writes, in order (a later write or the removal never overtakes an earlier one). */
  journalChain?: Promise<void>;
  /** Why the job failed, for `domjobinfo --completed`. */
  errmsg?: string;
}

/** After a restart, how often and how many times a destination that does not answer is asked how a job ended. */
const RECOVERY_ASK_INTERVAL_MS = 10_000;
const RECOVERY_ASKS = 6;

/** How a destination answers "did you finish?" for a job a restarted source finds in its journal. */
export type OutcomeQuery = (destUri: string, domainUuid: string) => Promise<'finished' | 'aborted' | 'unreachable'>;

/** The source side of migrations on one host. */
export class OutgoingMigrations {
  private readonly jobs = new Map<string, OutgoingJob>();
  /** Per-domain speed set by `migrate-setspeed` (MiB/s), used by the next migration. */
  private readonly speeds = new Map<string, number>();
  private readonly journal: MigrationJournal;
  /** At most this many outgoing migrations run at once; the others queue. */
  readonly slots: MigrationSlots;

  constructor(
    private readonly host: Host,
    private readonly log: (msg: string) => void,
    /** Asks a destination how a job whose answer was lost ended (see {@link OutcomeQuery}). */
    private readonly askOutcome: OutcomeQuery,
    private readonly qemuTlsDir?: string,
  ) {
    this.journal = new MigrationJournal(host.config.stateDir);
    this.slots = new MigrationSlots('outgoing', host.config.migrationLimits?.outgoing ?? defaultMigrationLimit());
  }

  /**
   * Writes the job's phase down, after any earlier write of the same job.
   * 'fatal': awaited, and a failure aborts the job (the write comes before
   * anything irreversible). 'wait': awaited, a failure only logged.
   * 'background': not awaited, for the write that falls while the guest is
   * paused at the switch-over; recovery does not need it, since it reads the
   * state of the migration from QEMU itself.
   */
  private note(job: OutgoingJob, phase: JournalPhase, how: 'fatal' | 'wait' | 'background'): Promise<void> {
    const entry = {
      jobId: job.id,
      domainUuid: job.domain.uuid,
      domainName: job.domain.name,
      flags: job.flags,
      ...(job.destUri ? { destUri: job.destUri } : {}),
      wasRunning: job.wasRunning,
      phase,
      ...(job.postcopy ? { postcopy: true } : {}),
    };
    const write = (job.journalChain ?? Promise.resolve()).then(() => this.journal.write(entry));
    job.journalChain = write.catch((err: Error) => this.log(`cannot update the journal of migration job ${job.id}: ${err.message}`));
    if (how === 'background') return Promise.resolve();
    if (how === 'wait') return job.journalChain;
    return write.catch((err: Error) => {
      throw new FerryError('write_failed', `cannot record migration job ${job.id} in the journal: ${err.message}`);
    });
  }

  /** Removes the job's journal entry after its pending writes. */
  private forget(job: OutgoingJob): Promise<void> {
    const done = (job.journalChain ?? Promise.resolve()).then(() => this.journal.remove(job.id));
    job.journalChain = done;
    return done;
  }

  /**
   * begin: validate, lock the domain for the job, and produce the XML and
   * cookie. `owner` aborts when the client driving the job (managed mode)
   * goes away, even while the job still waits in the queue: the job is then
   * rolled back as far as is safe (see {@link ownerGone}).
   */
  async begin(ref: unknown, req: MigrationRequest & { destUri?: string }, owner?: AbortSignal): Promise<BeginResult> {
    const d = this.host.registry.lookup(ref);
    const offline = hasFlag(req.flags, 'OFFLINE');
    const live = d.runtime?.liveDoc ?? null;
    const defNow = (live ?? d.persistentDoc ?? d.currentDoc).def;
    // Every rule of the table, with the guest's state: running, persistent, not paused by an I/O error, ...
    const request = admitOnSource(req, d);
    const { flags, params } = request;
    const copied = new Set(hasFlag(flags, 'NON_SHARED_DISK') || hasFlag(flags, 'NON_SHARED_INC') ? selectedDisks(defNow.disks, params) : []);
    if (!offline && d.runtime) {
      if (!hasFlag(flags, 'UNSAFE')) await checkMigrationSafe(d.runtime.liveDoc.def, copied);
      if (d.runtime.accel === 'tcg' && d.runtime.liveDoc.def.memoryKiB % 256 === 0 && hasFlag(flags, 'LIVE')) {
        // QEMU 7.2 under TCG can lose dirty pages of a RAM block whose size is a multiple of 256 KiB (see docs/migration.md).
        this.log(`WARNING: '${d.name}' has ${d.runtime.liveDoc.def.memoryKiB} KiB of memory, a multiple of 256 KiB, and runs under TCG: QEMU 7.2 may lose pages the guest writes during a live migration; an odd size such as ${d.runtime.liveDoc.def.memoryKiB + 4} KiB is safe`);
      }
    }
    // Waits for a modify job in progress (an offline migration must not read a definition that define is writing).
    const asyncJob = await d.jobs.beginAsync({
      kind: 'migration-out',
      // Change protection is always in force (both sides support it): only suspend (to help convergence) and destroy may run beside the job.
      allowed: new Set(['suspend', 'destroy', 'migration']),
      reason: 'the domain is migrating and its configuration is protected until the job ends (CHANGE_PROTECTION)',
    });
    const job: OutgoingJob = {
      id: randomUUID(),
      domain: d,
      flags,
      params,
      asyncJob,
      phase: 'queued',
      startedAt: Date.now(),
      wasRunning: d.status.state === 'running',
      stats: null,
      abortRequested: false,
      ...(typeof req.destUri === 'string' && req.destUri !== '' ? { destUri: req.destUri } : {}),
      ticket: this.slots.claim(),
    };
    this.jobs.set(job.id, job);
    if (owner) {
      const gone = () => void this.ownerGone(job.id).catch((err: Error) => this.log(`rollback of migration job ${job.id} failed: ${err.message}`));
      if (owner.aborted) queueMicrotask(gone);
      else {
        owner.addEventListener('abort', gone, { once: true });
        job.dropOwner = () => owner.removeEventListener('abort', gone);
      }
    }
    try {
      if (job.ticket.position() > 0) this.log(`migration of '${d.name}' queued at position ${job.ticket.position()}: ${this.slots.limit} outgoing migrations already run`);
      await job.ticket.granted;
      job.phase = 'begun';
      // The guest may have been paused or stopped while it waited.
      job.wasRunning = d.status.state === 'running';
      if (!offline && (!d.active || !d.runtime)) throw new FerryError('operation_invalid', `domain '${d.name}' stopped while its migration was queued`);
      if (offline && !d.persistentDoc) throw new FerryError('operation_invalid', `domain '${d.name}' was undefined while its migration was queued`);
      const xml = this.xmlToSend(d, params, offline);
      const storage = !offline && d.runtime ? await describeStorage(d.runtime.qemu.qmp, d.runtime.liveDoc.def, flags, params) : undefined;
      if (storage) job.storage = storage;
      await this.note(job, 'begun', 'fatal');
      await holdPoint(this.host.config.runDir, 'source-begun', this.log);
      const persistentXml = hasFlag(flags, 'PERSIST_DEST') ? this.persistentXml(d, params) : undefined;
      return {
        jobId: job.id,
        xml,
        cookie: {
          version: COOKIE_VERSION,
          source: this.host.config.identity,
          jobId: job.id,
          domain: { name: d.name, uuid: d.uuid },
          ...(persistentXml !== undefined ? { persistentXml } : {}),
          wasRunning: job.wasRunning,
          ...(storage ? { storage } : {}),
        },
      };
    } catch (err) {
      job.ticket.release();
      job.dropOwner?.();
      this.jobs.delete(job.id);
      await this.forget(job);
      d.jobs.endAsync(asyncJob);
      throw err;
    }
  }

  /** perform: run QEMU's migration to `migrateUri` and follow it to its end. */
  async perform(args: PerformArgs): Promise<PerformResult> {
    const job = this.get(args.jobId);
    if (job.phase !== 'begun') throw new FerryError('operation_invalid', `migration job ${job.id} is ${job.phase}, not ready to perform`);
    if (job.abortRequested) throw this.abortedError(job);
    const d = job.domain;
    const rt = d.runtime;
    if (!rt) throw new FerryError('operation_failed', `domain '${d.name}' stopped before its migration could start`);
    job.phase = 'performing';
    const qmp = rt.qemu.qmp;
    try {
      await this.note(job, 'performing', 'fatal');
    } catch (err) {
      job.phase = 'perform-failed';
      throw err;
    }
    let ioError = false;
    let streamStarted = false;
    let stoppedAt: number | undefined;
    let lastThrottle: number | undefined;
    const onEvent = (ev: QmpEvent) => {
      // QEMU's own time of the stop (this host's wall clock), not when the event got here.
      if (ev.event === 'STOP' && stoppedAt === undefined) stoppedAt = eventTimeMs(ev) ?? Date.now();
      if (ev.event === 'MIGRATION_PASS') this.host.events.migrationIteration(d, Number((ev.data as { pass?: number } | undefined)?.pass ?? 0));
      if (ev.event === 'BLOCK_IO_ERROR' && hasFlag(job.flags, 'ABORT_ON_ERROR')) {
        ioError = true;
        void cancelMigration(qmp).catch(() => undefined);
      }
    };
    qmp.on('event', onEvent);
    try {
      const speed = this.speeds.get(d.uuid);
      const tls = hasFlag(job.flags, 'TLS')
        ? { tlsCredsId: await addTlsCreds(qmp, this.qemuTlsDir, 'client'), tlsHostname: job.params['tls.destination'] ?? qemuInetHost(args.migrateUri) ?? args.migrateUri }
        : {};
      if (hasFlag(job.flags, 'RDMA_PIN_ALL')) await raiseMemlock(rt.qemu.pid, rt.liveDoc.def.hardLimitKiB ?? rt.liveDoc.def.memoryKiB, this.log);
      await prepareQemuForMigration(qmp, migrationSetup(job.flags, job.params, 'source', { ...(speed !== undefined && speed < UNLIMITED_SPEED_MIB ? { speedMiB: speed } : {}), ...tls }));
      if (!hasFlag(job.flags, 'LIVE') && d.status.state === 'running') {
        stoppedAt = Date.now();
        await this.host.migrationStates.pauseForMigration(d, rt);
      }
      await holdPoint(this.host.config.runDir, 'source-performing', this.log);
      if (job.abortRequested) throw this.abortedError(job);
      if (job.storage && job.storage.disks.length > 0) {
        if (!args.nbd) throw new FerryError('operation_failed', `the destination offered no disk server for the storage copy of '${d.name}'`);
        const bw = job.params.bandwidth ?? (speed !== undefined && speed < UNLIMITED_SPEED_MIB ? speed : undefined);
        job.mirrors = await DiskMirrors.start(qmp, {
          disks: job.storage.disks,
          sync: job.storage.sync,
          nbd: args.nbd,
          ...(tls.tlsCredsId ? { tls: { credsId: tls.tlsCredsId, hostname: job.params['tls.destination'] ?? args.nbd.host ?? tls.tlsHostname } } : {}),
          ...(bw !== undefined ? { speedBytes: bw * MIB } : {}),
        });
        this.log(`copying ${job.storage.disks.length} disk(s) of '${d.name}' (${job.storage.sync}) before its memory`);
        const mirrors = job.mirrors;
        await mirrors.waitReady({
          aborted: () => job.abortRequested || ioError,
          onProgress: (disk) => {
            job.stats = withDiskStats({ type: 'Unbounded', operation: 'Outgoing migration', time_elapsed: Date.now() - job.startedAt }, disk);
          },
        });
      }
      // The source pauses itself at switch-over; record that pause as 'migrating', not 'unknown'.
      this.host.migrationStates.expectSwitchoverPause(rt);
      streamStarted = true;
      await qmp.execute('migrate', { uri: args.migrateUri });
      const follow = (stopAtPostcopy: boolean) =>
        followMigration(qmp, {
          pollMs: 250,
          stopAtPostcopy,
          onProgress: (info) => {
            const mem = statsFromQemu(info, { operation: 'Outgoing migration', elapsedMs: Date.now() - job.startedAt, type: 'Unbounded' });
            job.stats = job.mirrors ? withDiskStats(mem, job.mirrors.stats()) : mem;
            if (job.mirrors) void job.mirrors.refresh();
            if (info['cpu-throttle-percentage']) lastThrottle = info['cpu-throttle-percentage'];
          },
        });
      const end = await follow(hasFlag(job.flags, 'POSTCOPY'));
      if ((end.status === 'completed' || end.status === 'postcopy-active') && job.mirrors) {
        // The source is paused now: copy the disks' last writes and detach, before the destination may run.
        await job.mirrors.complete();
      }
      if (end.status === 'postcopy-active') {
        // QEMU 7.2 reports postcopy-active before it stops the vCPUs; the downtime is measured from that stop.
        if (stoppedAt === undefined) stoppedAt = await untilStopped(qmp, () => stoppedAt);
        // From here the destination holds the newest state: the source must never run this guest again.
        job.postcopy = true;
        job.phase = 'performed';
        void this.note(job, 'performed', 'background');
        await holdPoint(this.host.config.runDir, 'source-switched', this.log);
        const completion = follow(false);
        job.completion = completion;
        void completion.then((e) => {
          job.stats = { ...statsFromQemu(e.info, { operation: 'Outgoing migration', elapsedMs: Date.now() - job.startedAt, type: e.status === 'completed' ? 'Completed' : 'Failed' }) };
        });
        return { stats: statsFromQemu(end.info, { operation: 'Outgoing migration', elapsedMs: Date.now() - job.startedAt, type: 'Unbounded' }), ...(stoppedAt !== undefined ? { sourceStoppedAt: stoppedAt } : {}) };
      }
      const memStats = statsFromQemu(end.info, { operation: 'Outgoing migration', elapsedMs: Date.now() - job.startedAt, type: end.status === 'completed' ? 'Completed' : end.status === 'cancelled' ? 'Cancelled' : 'Failed' });
      const stats = job.mirrors ? withDiskStats(memStats, job.mirrors.stats()) : memStats;
      // QEMU drops the throttle from its answer once the job ends; keep the last one seen, as libvirt does.
      if (stats.auto_converge_throttle === undefined && lastThrottle !== undefined) stats.auto_converge_throttle = lastThrottle;
      job.stats = stats;
      if (end.status !== 'completed') {
        job.phase = 'perform-failed';
        if (end.info.status === 'postcopy-paused') job.postcopy = true;
        if (ioError) throw new FerryError('operation_aborted', `migration of '${d.name}' cancelled: a disk I/O error occurred and --abort-on-error (ABORT_ON_ERROR) was given`);
        if (job.abortRequested || end.status === 'cancelled') throw this.abortedError(job);
        throw new FerryError('operation_failed', `migration of '${d.name}' failed: ${'error' in end ? end.error : end.status}`);
      }
      job.phase = 'performed';
      void this.note(job, 'performed', 'background');
      await holdPoint(this.host.config.runDir, 'source-switched', this.log);
      return { stats, ...(stoppedAt !== undefined ? { sourceStoppedAt: stoppedAt } : {}) };
    } catch (err) {
      if (job.phase === 'performing') job.phase = 'perform-failed';
      // No switch-over happened: a STOP from now on (a user's suspend) is not the migration's.
      this.host.migrationStates.dropSwitchoverPause(rt);
      // Make sure QEMU's stream stops: a half-run migration must not complete behind our back.
      await cancelMigration(qmp).catch(() => undefined);
      // The disk copies stop too; the source keeps running on its own images.
      await job.mirrors?.abort().catch(() => undefined);
      // A cancelled stream makes the destination QEMU exit; one never started must be made to.
      if (job.destinationLost && !streamStarted) await releaseIncomingQemu(args.migrateUri);
      throw err;
    } finally {
      qmp.off('event', onEvent);
      // The driving client left while QEMU streamed: roll back now that perform has settled.
      if (job.ownerLost) void this.ownerGone(job.id).catch((e: Error) => this.log(`rollback of migration job ${job.id} failed: ${e.message}`));
    }
  }

  /** The error of a job that was cancelled: by `domjobabort`, or for the reason recorded. */
  private abortedError(job: OutgoingJob): FerryError {
    return new FerryError('operation_aborted', `migration of '${job.domain.name}' was aborted${job.abortReason ? `: ${job.abortReason}` : ''}`);
  }

  /** confirm: finish the source side of a successful job, or take the guest back after a failed one. */
  async confirm(args: ConfirmArgs): Promise<void> {
    const job = this.get(args.jobId);
    if (job.phase === 'confirmed' || job.phase === 'cancelled') return;
    const d = job.domain;
    let failed = args.cancelled;
    try {
      if (args.cancelled && args.outcomeUnknown !== undefined) {
        // Nobody knows whether the destination resumed the guest: leave it paused here, end the job.
        this.log(`migration job ${job.id} of '${d.name}' ends with an unknown outcome; the guest stays paused here: ${args.outcomeUnknown}`);
        await job.mirrors?.abort().catch(() => undefined);
        job.errmsg = args.outcomeUnknown;
        job.phase = 'cancelled';
      } else if (!args.cancelled) {
        await this.note(job, 'confirming', 'wait');
        await holdPoint(this.host.config.runDir, 'source-confirming', this.log);
        if (job.phase !== 'performed' && !hasFlag(job.flags, 'OFFLINE')) {
          failed = true;
          throw new FerryError('operation_invalid', `migration job ${job.id} is ${job.phase}; it cannot be confirmed as a success`);
        }
        if (job.completion) {
          // Post-copy: the rest of the memory is still flowing to the destination; wait for it.
          const end = await job.completion;
          if (end.status !== 'completed') {
            failed = true;
            await this.takeBack(job);
            job.phase = 'cancelled';
            throw new FerryError('operation_failed', `post-copy migration of '${d.name}' failed after the switch: ${'error' in end ? end.error : end.status}; the guest is paused here and runs, degraded, on the destination`);
          }
        }
        if (args.downtimeMs !== undefined && job.stats) job.stats.downtime = args.downtimeMs;
        await this.completeSource(job);
        job.phase = 'confirmed';
      } else {
        await this.takeBack(job);
        job.phase = 'cancelled';
      }
    } catch (err) {
      job.errmsg ??= toFerryError(err).message;
      throw err;
    } finally {
      this.finishJob(job, failed);
    }
  }

  /** `migrate-postcopy`: switches a running POSTCOPY migration of a domain to post-copy. */
  async startPostcopy(ref: unknown): Promise<void> {
    const d = this.host.registry.lookup(ref);
    const job = [...this.jobs.values()].find((j) => j.domain === d && j.phase === 'performing');
    if (!job) throw new FerryError('operation_invalid', `domain '${d.name}' has no migration running that could switch to post-copy`);
    if (!hasFlag(job.flags, 'POSTCOPY')) throw new FerryError('operation_invalid', `the migration of '${d.name}' was started without --postcopy (POSTCOPY), so post-copy is not enabled`);
    if (job.postcopyRequested) return;
    await d.runtime!.qemu.qmp.execute('migrate-start-postcopy');
    // Marked as switched only when QEMU reports post-copy: until then a failure leaves the source running.
    job.postcopyRequested = true;
  }

  /** Aborts the running job of a domain (`domjobabort`). */
  async abort(ref: unknown): Promise<void> {
    const d = this.host.registry.lookup(ref);
    const job = [...this.jobs.values()].find((j) => j.domain === d && (j.phase === 'queued' || j.phase === 'begun' || j.phase === 'performing'));
    if (!job) throw new FerryError('operation_invalid', `domain '${d.name}' has no migration job to abort`);
    await this.stopStreaming(job);
  }

  /**
   * Cancels job `jobId` if it has not finished streaming: a queued job
   * leaves the queue, a running stream is cancelled (its perform then fails
   * with `why`). A job past the stream is left alone: only confirm ends it.
   * With `destinationLost`, the destination daemon is gone and its QEMU is
   * released by the source (see release-incoming.ts).
   */
  async cancel(jobId: string, why: string, destinationLost = false): Promise<void> {
    const job = this.jobs.get(jobId);
    if (!job || !(job.phase === 'queued' || job.phase === 'begun' || job.phase === 'performing')) return;
    this.log(`cancelling migration job ${job.id} of '${job.domain.name}' (${job.phase}): ${why}`);
    job.abortReason ??= why;
    if (destinationLost) job.destinationLost = true;
    await this.stopStreaming(job);
  }

  private async stopStreaming(job: OutgoingJob): Promise<void> {
    job.abortRequested = true;
    if (job.phase === 'queued') job.ticket.cancel(`the migration of '${job.domain.name}' was aborted while it waited for a slot${job.abortReason ? `: ${job.abortReason}` : ''}`);
    if (job.phase === 'performing' && job.domain.runtime) await cancelMigration(job.domain.runtime.qemu.qmp);
    // Mirrors still catching up notice the request at their next poll.
  }

  /**
   * The client driving job `jobId` went away: roll the job back where that
   * is safe. Queued or streaming, it is cancelled (and confirmed as failed
   * once perform has settled); after the stream, the destination is asked
   * whether it runs the guest, and with no answer the job ends with the
   * guest paused here (it may run there).
   */
  async ownerGone(jobId: string): Promise<void> {
    const job = this.jobs.get(jobId);
    if (!job || job.phase === 'confirmed' || job.phase === 'cancelled') return;
    if (!job.ownerLost) this.log(`the client managing migration job ${job.id} of '${job.domain.name}' went away in phase ${job.phase}`);
    job.ownerLost = true;
    if (job.phase === 'queued' || job.phase === 'performing') {
      job.abortReason ??= 'the client managing the migration went away';
      // begin's or perform's own failure path runs next; perform's calls ownerGone again when it has settled.
      await this.stopStreaming(job);
      return;
    }
    if (job.phase === 'performed') {
      const outcome = job.destUri ? await this.askOutcome(job.destUri, job.domain.uuid) : 'unreachable';
      if (outcome === 'unreachable') {
        await this.confirm({
          jobId,
          cancelled: true,
          outcomeUnknown: `the client managing the migration went away after the stream completed, and ${job.destUri ?? 'the destination'} cannot be asked whether it runs the guest: check it there, then 'ferry resume' or 'ferry destroy' the guest here`,
        });
        return;
      }
      await this.confirm({ jobId, cancelled: outcome !== 'finished' });
      return;
    }
    await this.confirm({ jobId, cancelled: true });
  }


  /** `domjobinfo`: the running job's statistics, or with `completed` the last finished job's. */
  jobInfo(ref: unknown, completed: boolean, incoming?: (uuid: string) => JobStats | undefined): JobStats {
    const d = this.host.registry.lookup(ref);
    if (completed) return d.completedJob ?? { type: 'None', operation: 'Outgoing migration', time_elapsed: 0 };
    const job = [...this.jobs.values()].find((j) => j.domain === d && j.phase !== 'confirmed' && j.phase !== 'cancelled');
    if (!job) return incoming?.(d.uuid) ?? { type: 'None', operation: 'Outgoing migration', time_elapsed: 0 };
    const elapsed = Date.now() - job.startedAt;
    if (job.phase === 'queued') return { type: 'Unbounded', operation: 'Outgoing migration', time_elapsed: elapsed, queue_position: job.ticket.position() };
    const s: JobStats = { ...(job.stats ?? { operation: 'Outgoing migration' }), type: 'Unbounded', time_elapsed: elapsed } as JobStats;
    if (s.memory_remaining !== undefined && s.memory_bps) s.time_remaining = Math.round((s.memory_remaining / s.memory_bps) * 1000);
    return s;
  }

  /** `migrate-setmaxdowntime` (ms). */
  async setMaxDowntime(ref: unknown, ms: unknown): Promise<void> {
    if (typeof ms !== 'number' || !Number.isSafeInteger(ms) || ms < 1 || ms > 2_000_000) throw new FerryError('invalid_arg', 'downtime must be an integer number of milliseconds between 1 and 2000000');
    const rt = this.activeRuntime(ref);
    await rt.qemu.qmp.execute('migrate-set-parameters', { 'downtime-limit': ms });
  }

  /** `migrate-getmaxdowntime` (ms). */
  async getMaxDowntime(ref: unknown): Promise<number> {
    const rt = this.activeRuntime(ref);
    const p = await rt.qemu.qmp.execute<{ 'downtime-limit'?: number }>('query-migrate-parameters');
    return p['downtime-limit'] ?? 300;
  }

  /** `migrate-setspeed` (MiB/s): applies to a running migration at once and to later ones. */
  async setSpeed(ref: unknown, mib: unknown): Promise<void> {
    if (typeof mib !== 'number' || !Number.isSafeInteger(mib) || mib < 0 || mib > UNLIMITED_SPEED_MIB) throw new FerryError('invalid_arg', `bandwidth must be an integer number of MiB/s between 0 and ${UNLIMITED_SPEED_MIB}`);
    const d = this.host.registry.lookup(ref);
    // 0 means "no limit", as libvirt reads it.
    const value = mib === 0 ? UNLIMITED_SPEED_MIB : mib;
    this.speeds.set(d.uuid, value);
    if (d.runtime) await d.runtime.qemu.qmp.execute('migrate-set-parameters', { 'max-bandwidth': value >= UNLIMITED_SPEED_MIB ? UNLIMITED_BANDWIDTH_BYTES : value * MIB });
  }

  /** `migrate-getspeed` (MiB/s). */
  getSpeed(ref: unknown): number {
    const d = this.host.registry.lookup(ref);
    return this.speeds.get(d.uuid) ?? UNLIMITED_SPEED_MIB;
  }

  private activeRuntime(ref: unknown) {
    const d = this.host.registry.lookup(ref);
    if (!d.runtime || !d.active) throw new FerryError('operation_invalid', `domain '${d.name}' is not running`);
    return d.runtime;
  }

  private async completeSource(job: OutgoingJob): Promise<void> {
    const rt = job.domain.runtime;
    await this.stopSource(job.domain, hasFlag(job.flags, 'OFFLINE') ? null : rt, job.flags);
  }


  private async takeBack(job: OutgoingJob): Promise<void> {
    const d = job.domain;
    const rt = d.runtime;
    if (!rt || rt.qemu.exitReason) return;
    // Completed or not, the copies' connections to the destination go: the source never used the copies.
    await job.mirrors?.abort().catch(() => undefined);
    const q = await rt.qemu.qmp.execute<{ running: boolean; status: string }>('query-status').catch(() => null);
    // A switch that was asked for may have happened even if no poll saw 'postcopy-active': QEMU then stays stopped.
    if (job.postcopy || (job.postcopyRequested && q && !q.running)) {
      // After the post-copy switch the source's memory is stale: resuming it would fork the guest.
      await this.host.migrationStates.markPostcopyFailed(d, rt, 'source');
      return;
    }
    // A QEMU that runs already (resumed by hand, say) only has its state recorded.
    if (job.wasRunning && q && (!q.running || d.status.state !== 'running')) await this.host.migrationStates.takeBack(d, rt, q.running);
  }

  private finishJob(job: OutgoingJob, failed: boolean): void {
    const d = job.domain;
    const elapsed = Date.now() - job.startedAt;
    const base: JobStats = job.stats ?? { type: 'Completed', operation: 'Outgoing migration', time_elapsed: elapsed };
    d.completedJob = { ...base, type: failed ? (job.abortRequested ? 'Cancelled' : 'Failed') : 'Completed', time_elapsed: elapsed, wall_time: elapsed, ...(failed && job.errmsg ? { errmsg: job.errmsg } : {}) };
    job.dropOwner?.();
    d.jobs.endAsync(job.asyncJob);
    job.ticket.release();
    this.host.events.jobCompleted(d, d.completedJob);
    void this.forget(job);
    setTimeout(() => this.jobs.delete(job.id), 10 * 60_000).unref();
  }

  /**
   * After a restart: settles every job the journal lists. The rule is the
   * driver's: the source takes its guest back unless the destination may
   * run it. A source QEMU that never completed sending cannot have handed
   * the guest over, so it is taken back at once; one that completed asks
   * the destination; one in post-copy never runs here again. When the
   * destination cannot be asked, the guest stays paused and the question is
   * asked again every 10 s.
   */
  async recover(): Promise<void> {
    const entries = await this.journal.list((f, why) => this.log(`ignoring unreadable migration journal file ${f}: ${why}`));
    for (const e of entries) {
      const d = this.host.registry.getByUuid(e.domainUuid);
      let lock: AsyncJob | undefined;
      try {
        // Held from before ferryd serves its sockets: no resume may run a guest the destination may already run.
        if (d && e.phase !== 'begun') lock = await d.jobs.beginAsync({ kind: 'migration-out', allowed: new Set(['destroy']), reason: 'an interrupted migration is being settled after a restart' });
      } catch (err) {
        this.log(`migration job ${e.jobId} of '${e.domainName}' cannot be settled after the restart: ${toFerryError(err).message}`);
        continue;
      }
      void this.recoverOne(e, d)
        .catch((err) => this.log(`migration job ${e.jobId} of '${e.domainName}' could not be settled after the restart: ${toFerryError(err).message}`))
        .finally(() => {
          if (d && lock) d.jobs.endAsync(lock);
        });
    }
  }

  /** Settles one journal entry; the caller holds the domain's job lock. */
  private async recoverOne(e: JournalEntry, d: HostedDomain | undefined): Promise<void> {
    const ask = this.askOutcome;
    const rt = d?.runtime;
    const done = async (what: string) => {
      this.log(`migration job ${e.jobId} of '${e.domainName}', interrupted by a restart in phase ${e.phase}: ${what}`);
      await this.journal.remove(e.jobId);
    };
    if (!d) return done('the domain is gone; nothing to do');
    if (e.phase === 'begun') return done('it had not started; nothing changed');
    let unanswered = 0;
    for (;;) {
      const rtNow = d.runtime;
      if (!rtNow || rtNow !== rt) {
        // The source QEMU is gone: only the definition may be left to settle.
        if (e.phase === 'confirming' || (e.destUri && (await ask(e.destUri, e.domainUuid)) === 'finished')) {
          await this.stopSource(d, null, e.flags);
          return await done('the guest runs on the destination; source cleaned up');
        }
        return await done('the source QEMU is gone and the destination does not run the guest');
      }
      const qmp = rtNow.qemu.qmp;
      const info = await qmp.execute<{ status?: string }>('query-migrate').catch(() => ({ status: 'unknown' }));
      const status = info.status ?? 'none';
      if (e.postcopy && status === 'completed') {
        // The post-copy stream finished while this daemon was down: the destination has the whole guest.
        await this.stopSource(d, rtNow, e.flags);
        return await done('the post-copy stream completed; source cleaned up');
      }
      if (status === 'postcopy-active' || status === 'postcopy-paused' || status === 'postcopy-recover' || e.postcopy) {
        if (status === 'postcopy-active') {
          const end = await followMigration(qmp, { pollMs: 500 });
          if (end.status === 'completed') {
            await this.stopSource(d, rtNow, e.flags);
            return await done('the post-copy stream completed; source cleaned up');
          }
        }
        await this.host.migrationStates.markPostcopyFailed(d, rtNow, 'source');
        return await done('the post-copy stream broke; the guest is paused here and runs, degraded, on the destination');
      }
      if (['setup', 'active', 'pre-switchover', 'device', 'wait-unplug', 'cancelling'].includes(status)) {
        await cancelMigration(qmp).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      const answer = status === 'completed' || e.phase === 'confirming' ? (e.destUri ? await ask(e.destUri, e.domainUuid) : 'unreachable') : 'aborted';
      if (answer === 'finished') {
        await this.stopSource(d, rtNow, e.flags);
        return await done('the guest runs on the destination; source cleaned up');
      }
      if (answer === 'aborted') {
        await this.resumeAfterRecovery(d, rtNow, e.wasRunning);
        return await done('the destination does not run the guest; it runs here again');
      }
      if (++unanswered >= RECOVERY_ASKS) {
        const why = `cannot learn from ${e.destUri ?? 'the destination (its URI is unknown)'} whether it runs the guest after ${unanswered} tries; the guest stays paused here so it cannot run twice: check the destination with 'ferry list', then 'ferry destroy' it here if it runs there, else 'ferry resume' it here`;
        d.completedJob = { type: 'Failed', operation: 'Outgoing migration', time_elapsed: 0, errmsg: why };
        return await done(why);
      }
      this.log(`migration job ${e.jobId} of '${e.domainName}': cannot learn from ${e.destUri ?? 'the destination (its URI is unknown)'} whether it runs the guest; it stays paused here, asking again in ${RECOVERY_ASK_INTERVAL_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, RECOVERY_ASK_INTERVAL_MS));
    }
  }

  /** The source's part of a successful migration: stop its QEMU (if any) and undefine the domain when asked. */
  private async stopSource(d: HostedDomain, rt: HostedDomain['runtime'], flags: number): Promise<void> {
    if (rt) await this.host.migrationStates.stopAfterMigration(d, rt);
    if (hasFlag(flags, 'UNDEFINE_SOURCE')) await this.host.migrationStates.undefineAfterMigration(d);
  }

  private async resumeAfterRecovery(d: HostedDomain, rt: NonNullable<HostedDomain['runtime']>, wasRunning: boolean): Promise<void> {
    // Disk-copy connections a killed ferryd left behind lead to a destination that gave up.
    await dropLeftoverMirrors(rt.qemu.qmp);
    const q = await rt.qemu.qmp.execute<{ running: boolean }>('query-status');
    if (wasRunning && !q.running) await this.host.migrationStates.takeBack(d, rt, false);
  }

  private xmlToSend(d: HostedDomain, params: MigrationParams, offline: boolean): string {
    const base = offline ? d.persistentDoc! : d.runtime!.liveDoc;
    const destXml = params.destination_xml;
    if (typeof destXml !== 'string') return base.toXml();
    const doc = DomainDocument.parse(destXml);
    if (doc.def.uuid !== d.uuid) throw new FerryError('invalid_arg', `the XML given with --xml has uuid ${doc.def.uuid}, but domain '${d.name}' has uuid ${d.uuid}`);
    if (doc.def.memoryKiB !== base.def.memoryKiB || doc.def.vcpus !== base.def.vcpus) {
      throw new FerryError('invalid_arg', `the XML given with --xml changes the guest's memory or vCPUs, which a migration cannot do (memory ${base.def.memoryKiB} KiB, ${base.def.vcpus} vCPUs)`);
    }
    return doc.toXml();
  }

  /** The definition to persist on the destination: persistent_xml, then destination_xml, then the source's. */
  private persistentXml(d: HostedDomain, params: MigrationParams): string {
    const pick = typeof params.persistent_xml === 'string' ? params.persistent_xml : typeof params.destination_xml === 'string' ? params.destination_xml : undefined;
    if (pick !== undefined) {
      const doc = DomainDocument.parse(pick);
      if (doc.def.uuid !== d.uuid) throw new FerryError('invalid_arg', `the persistent XML has uuid ${doc.def.uuid}, but domain '${d.name}' has uuid ${d.uuid}`);
      return doc.toXml();
    }
    // A transient domain has only its live definition; libvirt persists that one.
    return (d.persistentDoc ?? d.runtime?.liveDoc ?? d.currentDoc).toXml();
  }

  private get(jobId: string): OutgoingJob {
    const job = this.jobs.get(jobId);
    if (!job) throw new FerryError('operation_invalid', `no outgoing migration job ${jobId} on this host`);
    return job;
  }
}

/** The default limit of concurrent migrations each way: the number of cores, at least 2 (see slots.ts). */
export function defaultMigrationLimit(): number {
  return Math.max(2, availableParallelism());
}

/**
 * When the source's vCPUs stopped: the STOP event's time if it has arrived
 * (`seen`), else the moment `query-status` first says not running (the event
 * precedes that answer on the QMP socket), waiting up to 5 s.
 */
async function untilStopped(qmp: QmpClient, seen: () => number | undefined): Promise<number | undefined> {
  const until = Date.now() + 5000;
  while (Date.now() < until) {
    const st = await qmp.execute<{ running?: boolean }>('query-status');
    if (!st.running) return seen() ?? Date.now();
    await new Promise((r) => setTimeout(r, 10));
  }
  return seen();
}
