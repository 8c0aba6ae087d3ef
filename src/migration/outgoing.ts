/**
 * The source's phases: begin (checks, the XML and cookie to send), perform
 * (QEMU's `migrate`, followed to its end) and confirm (on success stop the
 * source QEMU and undefine if asked; on failure take the guest back). The
 * controls of a running job are in job-control.ts, the rollback when its
 * managing client goes away in owner-gone.ts, restart recovery in
 * recovery.ts.
 */
import { randomUUID } from 'node:crypto';
import { DomainDocument } from '../domain/index.js';
import { FerryError, toFerryError } from '../errors/index.js';
import { hasFlag, migrationMode, qemuInetHost, selectedDisks, type MigrationParams } from '../flags/index.js';
import type { Host } from '../host/host.js';
import type { HostedDomain } from '../host/hosted-domain.js';
import { statsFromQemu, type JobStats, type QemuMigrateInfo } from '../host/job-stats.js';
import { eventTimeMs, hostCpuFeatures, probeCpuCapabilities, resolveQemuBinary, type QmpClient, type QmpEvent } from '../qemu/index.js';
import { admitOnSource } from './admission.js';
import { OutgoingJobControl, UNLIMITED_SPEED_MIB } from './job-control.js';
import { COOKIE_VERSION, type BeginResult, type ConfirmArgs, type MigrationRequest, type PerformArgs, type PerformResult } from './phase-messages.js';
import { cancelMigration, followMigration, pausePostcopy, prepareQemuForMigration, waitForMigrationStatus, type FollowOptions, type MigrationEnd } from './qemu-migration.js';
import { MIB, migrationSetup } from './tuning.js';
import { checkMigrationSafe } from './safety.js';
import { addTlsCreds } from './qemu-tls.js';
import { MEMLOCK_OVERHEAD_KIB, raiseMemlock, raiseMemlockForZeroCopy } from './memlock.js';
import { DiskMirrors, describeStorage, withDiskStats } from './storage-copy.js';
import { MigrationJournal, type JournalPhase } from './journal.js';
import type { OutcomeQuery, OutgoingJob, OutgoingJobs } from './outgoing-job.js';
import { rollBackOwnerGone } from './owner-gone.js';
import { holdPoint } from './test-hold.js';
import { postcopyPausedError } from './postcopy-errors.js';
import { MigrationSlots, defaultMigrationLimit } from './slots.js';
import { ConvergenceWatch, DEFAULT_POLICY, resolvePolicy, type LiveSample, type MigrationPolicy, type PolicyAction } from './convergence.js';

/** How long a post-copy stream may move no byte before it is paused, unless ferryd says otherwise (ms). */
export const DEFAULT_POSTCOPY_STALL_MS = 10_000;

/** QEMU's default downtime limit, ms. */
const DEFAULT_DOWNTIME_LIMIT_MS = 300;

/** A live sample for the convergence watch from a `query-migrate` answer; undefined before RAM figures exist. */
function liveSampleOf(info: QemuMigrateInfo, atMs: number, downtimeLimitMs: number): LiveSample | undefined {
  const ram = info.ram;
  if (!ram || ram.remaining === undefined || ram.total === undefined) return undefined;
  return {
    atMs,
    iteration: ram['dirty-sync-count'] ?? 1,
    remainingBytes: ram.remaining,
    totalBytes: ram.total,
    bandwidthBytesPerS: ram.mbps !== undefined ? (ram.mbps * 1e6) / 8 : 0,
    dirtyBytesPerS: (ram['dirty-pages-rate'] ?? 0) * (ram['page-size'] ?? 4096),
    downtimeLimitMs,
    throttlePercent: info['cpu-throttle-percentage'] ?? 0,
    postcopy: info.status === 'postcopy-active',
  };
}

/** The source side of migrations on one host. */
export class OutgoingMigrations {
  private readonly jobs: OutgoingJobs = new Map();
  private readonly journal: MigrationJournal;
  /** The controls of running jobs: statistics, abort, post-copy, speed and downtime. */
  readonly control: OutgoingJobControl;
  /** At most this many outgoing migrations run at once; the others queue. */
  readonly slots: MigrationSlots;

  constructor(
    private readonly host: Host,
    private readonly log: (msg: string) => void,
    /** Asks a destination how a job whose answer was lost ended (see {@link OutcomeQuery}). */
    private readonly askOutcome: OutcomeQuery,
    private readonly qemuTlsDir?: string,
    /** What a job does when it does not converge, unless its request says otherwise. */
    private readonly defaultPolicy: MigrationPolicy = DEFAULT_POLICY,
    /**
     * In the post-copy phase, how long QEMU may send nothing before the
     * migration is paused (ms): a silent link would otherwise hold both
     * halves of the guest for as long as TCP retries.
     */
    private readonly postcopyStallMs: number = DEFAULT_POSTCOPY_STALL_MS,
  ) {
    this.journal = new MigrationJournal(host.config.stateDir);
    this.slots = new MigrationSlots('outgoing', host.config.migrationLimits?.outgoing ?? defaultMigrationLimit(), log);
    this.control = new OutgoingJobControl(host, log, this.jobs);
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
    const resume = hasFlag(flags, 'POSTCOPY_RESUME');
    if (resume) await requirePausedPostcopy(d);
    const policy = resolvePolicy(req.policy, this.defaultPolicy);
    const copied = new Set(hasFlag(flags, 'NON_SHARED_DISK') || hasFlag(flags, 'NON_SHARED_INC') ? selectedDisks(defNow.disks, params) : []);
    if (!offline && d.runtime && !resume) {
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
      policy,
      // Resuming: the switch to post-copy happened long ago; this guest never runs here again.
      ...(resume ? { resume: true, postcopy: true } : {}),
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
      if (resume) await requirePausedPostcopy(d);
      if (offline && !d.persistentDoc) throw new FerryError('operation_invalid', `domain '${d.name}' was undefined while its migration was queued`);
      const xml = this.xmlToSend(d, params, offline);
      const storage = !offline && !resume && d.runtime ? await describeStorage(d.runtime.qemu.qmp, d.runtime.liveDoc.def, flags, params) : undefined;
      if (storage) job.storage = storage;
      await this.note(job, 'begun', 'fatal');
      await holdPoint(this.host.config.runDir, 'source-begun', this.log);
      const persistentXml = hasFlag(flags, 'PERSIST_DEST') ? this.persistentXml(d, params) : undefined;
      // A host-passthrough guest sees this host's CPU: the destination compares its own with it.
      const liveDef = d.runtime?.liveDoc.def;
      const hostCpu = liveDef?.cpu?.mode === 'host-passthrough' && d.runtime && !resume ? hostCpuFeatures(await probeCpuCapabilities(resolveQemuBinary(liveDef.emulator), d.runtime.accel)) : undefined;
      this.host.events.migrationStarted(d, migrationMode(flags));
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
          ...(hostCpu ? { hostCpu } : {}),
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
    if (job.resume) return this.performResume(job, rt, args);
    let ioError = false;
    let stoppedAt: number | undefined;
    let lastThrottle: number | undefined;
    let restoreMemlock: (() => Promise<void>) | undefined;
    const onEvent = (ev: QmpEvent) => {
      // QEMU's own time of the stop (this host's wall clock), not when the event got here.
      if (ev.event === 'STOP' && stoppedAt === undefined) stoppedAt = eventTimeMs(ev) ?? Date.now();
      if (ev.event === 'MIGRATION_PASS') {
        const st = job.stats;
        this.host.events.migrationIteration(d, Number((ev.data as { pass?: number } | undefined)?.pass ?? 0), {
          ...(st?.time_remaining !== undefined && st.convergence !== 'not converging' ? { time_remaining: st.time_remaining } : {}),
          ...(st?.convergence ? { convergence: st.convergence } : {}),
        });
      }
      if (ev.event === 'BLOCK_IO_ERROR' && hasFlag(job.flags, 'ABORT_ON_ERROR')) {
        ioError = true;
        void cancelMigration(qmp).catch(() => undefined);
      }
    };
    qmp.on('event', onEvent);
    try {
      const speed = this.control.speedOf(d.uuid);
      const tls = hasFlag(job.flags, 'TLS')
        ? { tlsCredsId: await addTlsCreds(qmp, this.qemuTlsDir, 'client'), tlsHostname: job.params['tls.destination'] ?? qemuInetHost(args.migrateUri) ?? args.migrateUri }
        : {};
      if (hasFlag(job.flags, 'RDMA_PIN_ALL')) await raiseMemlock(rt.qemu.pid, rt.liveDoc.def.hardLimitKiB ?? rt.liveDoc.def.memoryKiB, this.log);
      if (hasFlag(job.flags, 'ZEROCOPY')) {
        // As libvirt: the hard limit when the guest has one, else all its memory plus QEMU's own share.
        const kib = rt.liveDoc.def.hardLimitKiB ?? rt.liveDoc.def.memoryKiB + MEMLOCK_OVERHEAD_KIB;
        restoreMemlock = await raiseMemlockForZeroCopy(rt.qemu.pid, kib, '--zerocopy (ZEROCOPY)', this.log);
      }
      await prepareQemuForMigration(qmp, migrationSetup(job.flags, job.params, 'source', { ...(speed !== undefined && speed < UNLIMITED_SPEED_MIB ? { speedMiB: speed } : {}), ...tls }));
      job.downtimeLimitMs = (await qmp.execute<{ 'downtime-limit'?: number }>('query-migrate-parameters'))['downtime-limit'] ?? DEFAULT_DOWNTIME_LIMIT_MS;
      const watch = new ConvergenceWatch(job.policy, { throttle: hasFlag(job.flags, 'AUTO_CONVERGE'), postcopy: hasFlag(job.flags, 'POSTCOPY') }, rt.liveDoc.def.memoryKiB * 1024);
      job.convergence = watch;
      const streamStart = Date.now();
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
          syncWrites: hasFlag(job.flags, 'NON_SHARED_SYNCHRONOUS_WRITES'),
        });
        this.log(`copying ${job.storage.disks.length} disk(s) of '${d.name}' (${job.storage.sync}${hasFlag(job.flags, 'NON_SHARED_SYNCHRONOUS_WRITES') ? ', synchronous writes' : ''}) before its memory`);
        const mirrors = job.mirrors;
        await mirrors.waitReady({
          aborted: () => job.abortRequested || ioError,
          onProgress: (disk) => {
            job.stats = withDiskStats({ type: 'Unbounded', operation: 'Outgoing migration', time_elapsed: Date.now() - job.startedAt, phase: 'storage' }, disk);
          },
        });
      }
      // The source pauses itself at switch-over; record that pause as 'migrating', not 'unknown'.
      this.host.migrationStates.expectSwitchoverPause(rt);
      await qmp.execute('migrate', { uri: args.migrateUri });
      const follow = (stopAtPostcopy: boolean, extra: Partial<FollowOptions> = {}) =>
        followMigration(qmp, {
          ...extra,
          pollMs: 250,
          stopAtPostcopy,
          onProgress: (info) => {
            const mem = statsFromQemu(info, { operation: 'Outgoing migration', elapsedMs: Date.now() - job.startedAt, type: 'Unbounded' });
            job.stats = job.mirrors ? withDiskStats(mem, job.mirrors.stats()) : mem;
            if (job.mirrors) void job.mirrors.refresh();
            if (info['cpu-throttle-percentage']) lastThrottle = info['cpu-throttle-percentage'];
            const sample = liveSampleOf(info, Date.now() - streamStart, job.downtimeLimitMs ?? DEFAULT_DOWNTIME_LIMIT_MS);
            if (!sample) return;
            // The ETA and the verdict come from the forecast model fed with QEMU's live figures.
            const { estimate: est, actions } = watch.sample(sample);
            job.stats = { ...job.stats, phase: est.phase, convergence: est.converging === 'unknown' ? 'unknown' : est.converging ? 'converging' : 'not converging' };
            if (est.etaMs !== null) job.stats.time_remaining = est.etaMs;
            if (job.warning) job.stats.warning = job.warning;
            if (watch.steps.length) job.stats.policy_steps = watch.steps.join('; ');
            for (const action of actions) void this.carryOut(job, qmp, action);
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
        this.followPostcopyRest(job, qmp, (o) => follow(false, o));
        return { stats: statsFromQemu(end.info, { operation: 'Outgoing migration', elapsedMs: Date.now() - job.startedAt, type: 'Unbounded' }), ...(stoppedAt !== undefined ? { sourceStoppedAt: stoppedAt } : {}), postcopy: true };
      }
      const memStats = statsFromQemu(end.info, { operation: 'Outgoing migration', elapsedMs: Date.now() - job.startedAt, type: end.status === 'completed' ? 'Completed' : end.status === 'cancelled' ? 'Cancelled' : 'Failed' });
      const stats = job.mirrors ? withDiskStats(memStats, job.mirrors.stats()) : memStats;
      // QEMU drops the throttle from its answer once the job ends; keep the last one seen, as libvirt does.
      if (stats.auto_converge_throttle === undefined && lastThrottle !== undefined) stats.auto_converge_throttle = lastThrottle;
      job.stats = stats;
      if (end.status !== 'completed') {
        job.phase = 'perform-failed';
        if (end.status === 'postcopy-paused') job.postcopy = true;
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
      // Make sure QEMU's stream stops: a half-run migration must not complete behind our back. A post-copy
      // stream is paused instead, its pages kept: the destination holds the guest's device state.
      await (job.postcopy ? pausePostcopy(qmp) : cancelMigration(qmp)).catch(() => undefined);
      // The disk copies stop too; the source keeps running on its own images.
      await job.mirrors?.abort().catch(() => undefined);
      // The guest stays here: its QEMU goes back to the locked-memory limit it had.
      await restoreMemlock?.();
      throw err;
    } finally {
      qmp.off('event', onEvent);
      // The driving client left while QEMU streamed: roll back now that perform has settled.
      if (job.ownerLost) void this.ownerGone(job.id).catch((e: Error) => this.log(`rollback of migration job ${job.id} failed: ${e.message}`));
    }
  }

  /**
   * Follows the post-copy phase to its end in the background (confirm
   * waits for it): a stream that moves nothing for the stall bound is
   * paused, so that both sides wait in `postcopy-paused` and the migration
   * can be resumed (POSTCOPY_RESUME) instead of hanging on a dead link.
   */
  private followPostcopyRest(job: OutgoingJob, qmp: QmpClient, follow: (o: Partial<FollowOptions>) => Promise<MigrationEnd>): void {
    const completion = follow({
      pauseWhenStalledMs: this.postcopyStallMs,
      onStall: (ms) => this.log(`post-copy migration of '${job.domain.name}' (job ${job.id}) sent nothing for ${ms} ms: pausing it so that it can be resumed`),
    });
    job.completion = completion;
    void completion.then((e) => {
      job.stats = { ...statsFromQemu(e.info, { operation: 'Outgoing migration', elapsedMs: Date.now() - job.startedAt, type: e.status === 'completed' ? 'Completed' : 'Failed' }) };
    });
  }

  /**
   * perform of a POSTCOPY_RESUME job: QEMU reconnects to the destination's
   * new listener (`migrate` with `resume`) and sends the pages the
   * destination still lacks. Returns once QEMU is back in the post-copy
   * phase; the rest is followed as in any post-copy. If QEMU cannot
   * reconnect it falls back to `postcopy-paused` by itself, and the job
   * fails with both sides still paused, ready for another try.
   */
  private async performResume(job: OutgoingJob, rt: NonNullable<HostedDomain['runtime']>, args: PerformArgs): Promise<PerformResult> {
    const d = job.domain;
    const qmp = rt.qemu.qmp;
    const follow = (stopAtPostcopy: boolean, extra: Partial<FollowOptions> = {}) =>
      followMigration(qmp, {
        ...extra,
        pollMs: 250,
        stopAtPostcopy,
        onProgress: (info) => {
          job.stats = { ...statsFromQemu(info, { operation: 'Outgoing migration', elapsedMs: Date.now() - job.startedAt, type: 'Unbounded' }), phase: info.status ?? 'postcopy-recover' };
        },
      });
    try {
      await holdPoint(this.host.config.runDir, 'source-performing', this.log);
      if (job.abortRequested) throw this.abortedError(job);
      this.log(`resuming the paused post-copy migration of '${d.name}' (job ${job.id}) to ${args.migrateUri}`);
      await qmp.execute('migrate', { uri: args.migrateUri, resume: true });
      // QEMU leaves postcopy-paused once its new connection is under way, not always before `migrate` answers.
      const left = await waitForMigrationStatus(qmp, ['postcopy-recover', 'postcopy-active', 'completed', 'failed'], 10_000);
      if (left === 'postcopy-paused') throw new FerryError('operation_failed', `resuming the post-copy migration of '${d.name}' failed: QEMU did not reconnect to ${args.migrateUri} within 10 s; both sides stay paused, and it can be tried again`);
      const end = await follow(true);
      if (end.status !== 'postcopy-active' && end.status !== 'completed') {
        throw new FerryError('operation_failed', `resuming the post-copy migration of '${d.name}' failed: ${'error' in end ? end.error : end.status}; both sides stay paused, and it can be tried again`);
      }
      await this.host.migrationStates.markPostcopyResumed(d, rt, 'source');
      job.phase = 'performed';
      void this.note(job, 'performed', 'background');
      if (end.status === 'completed') {
        job.completion = Promise.resolve(end);
        job.stats = statsFromQemu(end.info, { operation: 'Outgoing migration', elapsedMs: Date.now() - job.startedAt, type: 'Completed' });
      } else {
        this.followPostcopyRest(job, qmp, (o) => follow(false, o));
      }
      return { stats: statsFromQemu(end.info, { operation: 'Outgoing migration', elapsedMs: Date.now() - job.startedAt, type: 'Unbounded' }), postcopy: true };
    } catch (err) {
      job.phase = 'perform-failed';
      // Never cancel a post-copy stream: a reconnect that half happened is paused again, the pages kept.
      const status = (await qmp.execute<{ status?: string }>('query-migrate').catch(() => ({ status: 'unknown' }))).status;
      if (status === 'postcopy-active' || status === 'postcopy-recover') {
        await pausePostcopy(qmp).catch(() => undefined);
        await waitForMigrationStatus(qmp, ['postcopy-paused', 'completed', 'failed'], 10_000).catch(() => undefined);
      }
      throw err;
    }
  }

  /**
   * Carries out one step of the job's convergence policy (see
   * convergence.ts), tells the log and the event subscribers, and never
   * throws: a step QEMU refuses is reported, the migration goes on.
   */
  private async carryOut(job: OutgoingJob, qmp: QmpClient, a: PolicyAction): Promise<void> {
    this.log(`migration of '${job.domain.name}' (job ${job.id}): ${a.message}`);
    // The job's statistics say it before the event goes out: a client that asks on the event sees it.
    if (a.kind === 'warn') job.warning = a.message;
    const steps = job.convergence?.steps ?? [];
    if (job.stats) {
      if (job.warning) job.stats.warning = job.warning;
      if (steps.length) job.stats.policy_steps = steps.join('; ');
    }
    this.host.events.migrationPolicy(job.domain, a.kind, a.message);
    try {
      switch (a.kind) {
        case 'warn':
          break;
        case 'set-downtime':
          await qmp.execute('migrate-set-parameters', { 'downtime-limit': a.ms });
          job.downtimeLimitMs = a.ms;
          break;
        case 'throttle-harder':
          await qmp.execute('migrate-set-parameters', { 'cpu-throttle-increment': a.incrementPercent });
          break;
        case 'start-postcopy':
          job.postcopyRequested = true;
          await qmp.execute('migrate-start-postcopy');
          break;
        case 'pause':
          await this.host.lifecycle.suspend(job.domain.uuid);
          break;
        case 'abort':
          job.abortReason = a.message;
          await this.control.stopStreaming(job);
          break;
      }
    } catch (err) {
      this.log(`migration of '${job.domain.name}' (job ${job.id}): the policy step '${a.kind}' failed: ${toFerryError(err).message}`);
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
          if (end.status === 'postcopy-paused') {
            failed = true;
            await this.takeBack(job);
            job.phase = 'cancelled';
            throw postcopyPausedError(d.name, end.error, job.destUri);
          }
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

  private async completeSource(job: OutgoingJob): Promise<void> {
    const rt = job.domain.runtime;
    await stopSource(this.host, job.domain, hasFlag(job.flags, 'OFFLINE') ? null : rt, job.flags);
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
    this.host.events.jobCompleted(d, d.completedJob, migrationMode(job.flags));
    void this.forget(job);
    setTimeout(() => this.jobs.delete(job.id), 10 * 60_000).unref();
  }

  /**
   * The client driving job `jobId` went away: roll the job back where that
   * is safe (see owner-gone.ts).
   */
  ownerGone(jobId: string): Promise<void> {
    return rollBackOwnerGone(this.jobs.get(jobId), {
      log: this.log,
      askOutcome: this.askOutcome,
      stopStreaming: (job) => this.control.stopStreaming(job),
      confirm: (args) => this.confirm(args),
    });
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

/** The source's part of a successful migration: stop its QEMU (if any) and undefine the domain when asked. */
export async function stopSource(host: Host, d: HostedDomain, rt: HostedDomain['runtime'], flags: number): Promise<void> {
  if (rt) await host.migrationStates.stopAfterMigration(d, rt);
  if (hasFlag(flags, 'UNDEFINE_SOURCE')) await host.migrationStates.undefineAfterMigration(d);
}

/**
 * POSTCOPY_RESUME's check on the source: the guest's post-copy broke after
 * the switch and its QEMU waits in `postcopy-paused`.
 */
async function requirePausedPostcopy(d: HostedDomain): Promise<void> {
  const rt = d.runtime;
  const status = rt && !rt.qemu.exitReason ? ((await rt.qemu.qmp.execute<{ status?: string }>('query-migrate').catch(() => ({ status: 'unknown' }))).status ?? 'none') : 'no QEMU';
  if (status !== 'postcopy-paused') {
    throw new FerryError('operation_invalid', `domain '${d.name}' has no paused post-copy migration to resume (its migration status here is ${status})`);
  }
}
