/**
 * The controls of a host's running outgoing migrations: statistics
 * (`domjobinfo`), abort (`domjobabort`) and the driver's cancel, the switch
 * to post-copy (`migrate-postcopy`), speed (`migrate-setspeed`/`getspeed`)
 * and maximum downtime (`migrate-setmaxdowntime`/`getmaxdowntime`).
 */
import { FerryError } from '../errors/index.js';
import { MAX_BANDWIDTH_MIB, MAX_POSTCOPY_BANDWIDTH_MIB, hasFlag } from '../flags/index.js';
import type { Host } from '../host/host.js';
import type { HostedDomain } from '../host/hosted-domain.js';
import type { JobStats } from '../host/job-stats.js';
import type { OutgoingJob, OutgoingJobs } from './outgoing-job.js';
import { cancelMigration, pausePostcopy } from './qemu-migration.js';
import { MIB, UNLIMITED_BANDWIDTH_BYTES } from './tuning.js';

/** libvirt's "unlimited" migration speed in MiB/s, as `migrate-getspeed` reports it: the bandwidth parameter's maximum. */
export const UNLIMITED_SPEED_MIB = MAX_BANDWIDTH_MIB;

/** The controls of the outgoing jobs of one host. */
export class OutgoingJobControl {
  /** Per-domain speed set by `migrate-setspeed` (MiB/s), used by the next migration. */
  private readonly speeds = new Map<string, number>();

  constructor(
    private readonly host: Host,
    private readonly log: (msg: string) => void,
    /** The source side's job table (see outgoing.ts). */
    private readonly jobs: OutgoingJobs,
  ) {}

  /** The speed `migrate-setspeed` set for a domain's migrations (MiB/s), if any. */
  speedOf(uuid: string): number | undefined {
    return this.speeds.get(uuid);
  }

  /** The id of the domain's outgoing job that has not ended yet, if any (a libvirt client names jobs by domain). */
  currentJobId(ref: unknown): string | undefined {
    return this.unended(this.host.registry.lookup(ref))?.id;
  }

  private unended(d: HostedDomain): OutgoingJob | undefined {
    return [...this.jobs.values()].find((j) => j.domain === d && j.phase !== 'confirmed' && j.phase !== 'cancelled');
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

  /**
   * Aborts the running job of a domain (`domjobabort`). A migration in its
   * post-copy phase cannot be aborted (the destination runs the guest);
   * with `postcopy` (`domjobabort --postcopy`) it is paused instead: both
   * QEMU processes stop the stream and wait in `postcopy-paused`, to be
   * resumed with POSTCOPY_RESUME.
   */
  async abort(ref: unknown, opts: { postcopy?: boolean } = {}): Promise<void> {
    const d = this.host.registry.lookup(ref);
    const postcopy = [...this.jobs.values()].find((j) => j.domain === d && j.postcopy && (j.phase === 'performing' || j.phase === 'performed'));
    if (opts.postcopy) {
      if (!postcopy || !d.runtime) throw new FerryError('operation_invalid', `domain '${d.name}' has no migration in its post-copy phase to pause`);
      this.log(`pausing the post-copy migration of '${d.name}' (job ${postcopy.id}) on request`);
      await pausePostcopy(d.runtime.qemu.qmp);
      return;
    }
    if (postcopy) throw new FerryError('operation_invalid', `cannot abort migration in post-copy mode: the destination already runs '${d.name}'; pause it with --postcopy (domjobabort --postcopy) to resume it later`);
    const job = [...this.jobs.values()].find((j) => j.domain === d && (j.phase === 'queued' || j.phase === 'begun' || j.phase === 'performing'));
    if (!job) throw new FerryError('operation_invalid', `domain '${d.name}' has no migration job to abort`);
    await this.stopStreaming(job);
  }

  /**
   * Cancels job `jobId` if it has not finished streaming: a queued job
   * leaves the queue, a running stream is cancelled (its perform then fails
   * with `why`). A job past the stream is left alone: only confirm ends it.
   */
  async cancel(jobId: string, why: string): Promise<void> {
    const job = this.jobs.get(jobId);
    if (!job || !(job.phase === 'queued' || job.phase === 'begun' || job.phase === 'performing')) return;
    this.log(`cancelling migration job ${job.id} of '${job.domain.name}' (${job.phase}): ${why}`);
    job.abortReason ??= why;
    await this.stopStreaming(job);
  }

  /**
   * Stops a job short of the switch-over: a queued job leaves the queue, a
   * running stream is cancelled; mirrors still catching up notice it at
   * their next poll.
   */
  async stopStreaming(job: OutgoingJob): Promise<void> {
    job.abortRequested = true;
    if (job.phase === 'queued') job.ticket.cancel(`the migration of '${job.domain.name}' was aborted while it waited for a slot${job.abortReason ? `: ${job.abortReason}` : ''}`);
    // A post-copy stream is never cancelled (the destination runs the guest): it is paused, its pages kept.
    if (job.phase === 'performing' && job.domain.runtime) await (job.postcopy ? pausePostcopy(job.domain.runtime.qemu.qmp).catch(() => undefined) : cancelMigration(job.domain.runtime.qemu.qmp));
    // Mirrors still catching up notice the request at their next poll.
  }

  /** `domjobinfo`: the running job's statistics, or with `completed` the last finished job's. */
  jobInfo(ref: unknown, completed: boolean, incoming?: (uuid: string) => JobStats | undefined): JobStats {
    const d = this.host.registry.lookup(ref);
    if (completed) return d.completedJob ?? { type: 'None', operation: 'Outgoing migration', time_elapsed: 0 };
    const job = this.unended(d);
    if (!job && d.status.state === 'paused' && d.status.reason === 'post-copy failed') {
      // The job ended when its stream broke, but the migration waits in QEMU to be resumed: say so.
      return { type: 'Unbounded', operation: 'Outgoing migration', time_elapsed: 0, phase: 'postcopy-paused', ...(d.completedJob?.errmsg ? { errmsg: d.completedJob.errmsg } : {}) };
    }
    if (!job) return incoming?.(d.uuid) ?? { type: 'None', operation: 'Outgoing migration', time_elapsed: 0 };
    const elapsed = Date.now() - job.startedAt;
    if (job.phase === 'queued') return { type: 'Unbounded', operation: 'Outgoing migration', time_elapsed: elapsed, queue_position: job.ticket.position() };
    // time_remaining comes from the forecast model with live figures (outgoing.ts); none when it cannot be known.
    return { ...(job.stats ?? { operation: 'Outgoing migration' }), type: 'Unbounded', time_elapsed: elapsed } as JobStats;
  }

  /** `migrate-setmaxdowntime` (ms). */
  async setMaxDowntime(ref: unknown, ms: unknown): Promise<void> {
    if (typeof ms !== 'number' || !Number.isSafeInteger(ms) || ms < 1 || ms > 2_000_000) throw new FerryError('invalid_arg', 'downtime must be an integer number of milliseconds between 1 and 2000000');
    const rt = this.activeRuntime(ref);
    await rt.qemu.qmp.execute('migrate-set-parameters', { 'downtime-limit': ms });
    // A running job's policy and live forecast reckon with the new limit.
    const job = this.unended(this.host.registry.lookup(ref));
    if (job) job.downtimeLimitMs = ms;
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

  /**
   * `migrate-setspeed --postcopy` (MiB/s): the speed of the post-copy
   * phase, on the running QEMU (a running migration and later ones).
   * 0 means no limit, as in libvirt.
   */
  async setPostcopySpeed(ref: unknown, mib: unknown): Promise<void> {
    if (typeof mib !== 'number' || !Number.isSafeInteger(mib) || mib < 0 || mib > MAX_POSTCOPY_BANDWIDTH_MIB) throw new FerryError('invalid_arg', `post-copy bandwidth must be an integer number of MiB/s between 0 and ${MAX_POSTCOPY_BANDWIDTH_MIB}`);
    const rt = this.activeRuntime(ref);
    await rt.qemu.qmp.execute('migrate-set-parameters', { 'max-postcopy-bandwidth': mib * MIB });
  }

  /** `migrate-getspeed --postcopy` (MiB/s; 0 = no limit). */
  async getPostcopySpeed(ref: unknown): Promise<number> {
    const rt = this.activeRuntime(ref);
    const p = await rt.qemu.qmp.execute<{ 'max-postcopy-bandwidth'?: number }>('query-migrate-parameters');
    return Math.floor((p['max-postcopy-bandwidth'] ?? 0) / MIB);
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
}
