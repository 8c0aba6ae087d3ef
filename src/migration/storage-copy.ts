/**
 * The source side of a storage copy (NON_SHARED_DISK / NON_SHARED_INC):
 * which disks go, how the destination should prepare them, and the mirror
 * jobs that copy them into the destination's NBD exports while the guest
 * runs. A mirror that has caught up ("ready") keeps copying the guest's new
 * writes; completing it at the switch-over (a soft cancel of a ready
 * mirror) copies what is left and detaches it without ever switching the
 * source to the copy, so a failed migration leaves the source's own images
 * untouched.
 */
import { readFile, stat } from 'node:fs/promises';
import type { DomainDef } from '../domain/index.js';
import { FerryError } from '../errors/index.js';
import { hasFlag, selectedDisks, type MigrationParams } from '../flags/index.js';
import type { JobStats } from '../host/job-stats.js';
import { diskNodeNames, type QmpClient, type QmpEvent } from '../qemu/index.js';
import type { NbdTarget, StorageCookie, StorageDiskInfo } from './phase-messages.js';

/** This kernel's boot id: equal on two "hosts" that are namespaces of one machine. */
export async function bootId(): Promise<string> {
  return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim();
}

/** QEMU's `query-block` image description (the part Ferry reads). */
interface QemuImage {
  filename?: string;
  format?: string;
  'virtual-size'?: number;
  'backing-image'?: QemuImage;
}

/**
 * Describes the disks a storage copy of `def` moves, from the running
 * QEMU's view of its images; undefined without a storage-copy flag.
 */
export async function describeStorage(qmp: QmpClient, def: DomainDef, flags: number, params: MigrationParams): Promise<StorageCookie | undefined> {
  const full = hasFlag(flags, 'NON_SHARED_DISK');
  if (!full && !hasFlag(flags, 'NON_SHARED_INC')) return undefined;
  const targets = selectedDisks(def.disks, params);
  const blocks = await qmp.execute<Array<{ inserted?: { 'node-name'?: string; image?: QemuImage } }>>('query-block');
  const boot = await bootId();
  const disks: StorageDiskInfo[] = [];
  for (const target of targets) {
    const disk = def.disks.find((d) => d.targetDev === target)!;
    const node = diskNodeNames(target).format;
    const image = blocks.find((b) => b.inserted?.['node-name'] === node)?.inserted?.image;
    if (!image || typeof image['virtual-size'] !== 'number') throw new FerryError('operation_failed', `QEMU does not report the image of disk ${target}`);
    const info: StorageDiskInfo = { target, format: disk.format, capacity: image['virtual-size'] };
    const backing = image['backing-image'];
    if (!full && backing && typeof backing['virtual-size'] === 'number' && backing.filename) {
      info.backing = { path: disk.backingStore?.sourcePath ?? backing.filename, format: disk.backingStore?.format ?? backing.format ?? 'raw', capacity: backing['virtual-size'] };
    }
    if (disk.sourcePath) {
      const st = await stat(disk.sourcePath).catch(() => undefined);
      if (st) info.file = { bootId: boot, dev: st.dev, ino: st.ino };
    }
    disks.push(info);
  }
  return { sync: full ? 'full' : 'top', disks };
}

/** A block job as `query-block-jobs` shows it. */
interface BlockJobInfo {
  device: string;
  len: number;
  offset: number;
  speed?: number;
  ready?: boolean;
  status?: string;
  error?: string;
}

/** Node name of the NBD client node that writes into the destination's copy of `target`. */
const targetNode = (target: string) => `migrate-${target}`;
/** Job id of the mirror of `target`. */
const mirrorJob = (target: string) => `mirror-${target}`;

/** Disk figures for job statistics, with libvirt's names. */
export type DiskStats = Pick<JobStats, 'disk_total' | 'disk_processed' | 'disk_remaining' | 'disk_bps'>;

/** The running mirrors of one outgoing migration. */
export class DiskMirrors {
  private figures: DiskStats = {};
  private lastSample?: { at: number; processed: number };
  private done = false;

  private constructor(
    private readonly qmp: QmpClient,
    private readonly targets: readonly string[],
  ) {}

  /**
   * Connects to the destination's exports and starts one mirror per disk.
   * On any failure what was started is torn down again.
   */
  static async start(
    qmp: QmpClient,
    opts: {
      disks: readonly StorageDiskInfo[];
      sync: 'full' | 'top';
      nbd: NbdTarget;
      tls?: { credsId: string; hostname: string };
      speedBytes?: number;
      /**
       * NON_SHARED_SYNCHRONOUS_WRITES: QEMU's write-blocking copy mode, in which a guest write completes only
       * once it is on the destination too, so the copy converges however fast the guest writes; the default
       * (background) mode lets the guest write at full speed and copies dirty regions afterwards.
       */
      syncWrites?: boolean;
    },
  ): Promise<DiskMirrors> {
    const server =
      opts.nbd.transport === 'unix'
        ? { type: 'unix', path: opts.nbd.path }
        : opts.nbd.transport === 'tcp'
          ? { type: 'inet', host: opts.nbd.host, port: String(opts.nbd.port) }
          : undefined;
    if (!server || (server.type === 'inet' && (!opts.nbd.host || opts.nbd.host === '*'))) {
      throw new FerryError('operation_failed', `the destination's disk server address is not usable (${JSON.stringify(opts.nbd)})`);
    }
    const mirrors = new DiskMirrors(qmp, opts.disks.map((d) => d.target));
    try {
      for (const disk of opts.disks) {
        const exportName = opts.nbd.exports[disk.target];
        if (!exportName) throw new FerryError('operation_failed', `the destination does not export disk ${disk.target}`);
        await qmp.execute('blockdev-add', {
          driver: 'nbd',
          'node-name': targetNode(disk.target),
          server,
          export: exportName,
          ...(opts.tls ? { 'tls-creds': opts.tls.credsId, 'tls-hostname': opts.tls.hostname } : {}),
        });
        await qmp.execute('blockdev-mirror', {
          'job-id': mirrorJob(disk.target),
          device: diskNodeNames(disk.target).format,
          target: targetNode(disk.target),
          sync: opts.sync,
          'auto-dismiss': false,
          ...(opts.syncWrites ? { 'copy-mode': 'write-blocking' } : {}),
          ...(opts.speedBytes !== undefined ? { speed: opts.speedBytes } : {}),
        });
      }
    } catch (err) {
      await mirrors.abort();
      throw new FerryError('operation_failed', `cannot start copying the disks: ${(err as Error).message}`);
    }
    return mirrors;
  }

  /** The latest disk figures (zeros before the first poll). */
  stats(): DiskStats {
    return { ...this.figures };
  }

  /**
   * Waits until every mirror has caught up with its disk. Polls QEMU, so
   * progress is visible meanwhile; fails when a mirror fails, QEMU exits
   * or `aborted()` turns true.
   */
  async waitReady(opts: { aborted: () => boolean; onProgress?: (s: DiskStats) => void; pollMs?: number }): Promise<void> {
    // Polled for progress; a job event (a mirror ready, failed or finished) ends the wait at once,
    // so the memory copy starts as soon as the last disk is ready.
    let wake: (() => void) | undefined;
    const onEvent = (ev: QmpEvent) => {
      if (ev.event === 'BLOCK_JOB_READY' || ev.event === 'JOB_STATUS_CHANGE' || ev.event === 'BLOCK_JOB_ERROR' || ev.event === 'BLOCK_JOB_COMPLETED') wake?.();
    };
    this.qmp.on('event', onEvent);
    try {
      for (;;) {
        if (opts.aborted()) throw new FerryError('operation_aborted', 'the migration was aborted while the disks were being copied');
        const jobs = await this.poll();
        opts.onProgress?.(this.stats());
        this.throwOnFailure(jobs);
        if (jobs.every((j) => j.ready === true || j.status === 'ready')) return;
        await new Promise<void>((r) => {
          const timer = setTimeout(r, opts.pollMs ?? 200);
          wake = () => {
            clearTimeout(timer);
            r();
          };
        });
        wake = undefined;
      }
    } finally {
      this.qmp.off('event', onEvent);
    }
  }

  /** Samples the mirrors' progress (for statistics while the memory migrates). */
  async refresh(): Promise<void> {
    await this.poll().catch(() => undefined);
  }

  /**
   * At the switch-over (the source is paused): copies what is left and
   * detaches each mirror from the destination, keeping the source on its
   * own images.
   */
  async complete(): Promise<void> {
    for (const t of this.targets) await this.qmp.execute('block-job-cancel', { device: mirrorJob(t) });
    const deadline = Date.now() + 120_000;
    for (;;) {
      const jobs = await this.poll();
      this.throwOnFailure(jobs.filter((j) => j.status === 'concluded'));
      if (jobs.every((j) => j.status === 'concluded')) break;
      if (Date.now() > deadline) throw new FerryError('operation_timeout', 'the disk copies did not complete within 120 s of the switch-over');
      await new Promise((r) => setTimeout(r, 50));
    }
    this.figures.disk_remaining = 0;
    if (this.figures.disk_total !== undefined) this.figures.disk_processed = this.figures.disk_total;
    await this.detach();
  }

  /** Stops the copies at once and drops the connections to the destination (a failed or aborted migration). */
  async abort(): Promise<void> {
    if (this.qmp.closed) return;
    for (const t of this.targets) await this.qmp.execute('block-job-cancel', { device: mirrorJob(t), force: true }).catch(() => undefined);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const jobs = await this.poll().catch(() => [] as BlockJobInfo[]);
      if (jobs.every((j) => j.status === 'concluded' || j.status === 'null')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await this.detach();
  }

  private async detach(): Promise<void> {
    if (this.done) return;
    this.done = true;
    for (const t of this.targets) {
      await this.qmp.execute('job-dismiss', { id: mirrorJob(t) }).catch(() => undefined);
      await this.qmp.execute('blockdev-del', { 'node-name': targetNode(t) }).catch(() => undefined);
    }
  }

  /** This migration's mirrors as QEMU reports them now; updates the figures. */
  private async poll(): Promise<BlockJobInfo[]> {
    const all = await this.qmp.execute<BlockJobInfo[]>('query-block-jobs', undefined, { timeoutMs: 10_000 });
    const mine = new Set(this.targets.map(mirrorJob));
    const jobs = all.filter((j) => mine.has(j.device));
    const missing = this.targets.filter((t) => !jobs.some((j) => j.device === mirrorJob(t)));
    if (missing.length > 0 && !this.done) throw new FerryError('operation_failed', `the copy of disk ${missing.join(', ')} stopped unexpectedly`);
    let total = 0;
    let processed = 0;
    for (const j of jobs) {
      total += j.len;
      processed += Math.min(j.offset, j.len);
    }
    const now = Date.now();
    const bps = this.lastSample && now > this.lastSample.at ? Math.max(0, Math.round(((processed - this.lastSample.processed) * 1000) / (now - this.lastSample.at))) : undefined;
    this.lastSample = { at: now, processed };
    this.figures = { disk_total: total, disk_processed: processed, disk_remaining: Math.max(0, total - processed), ...(bps !== undefined ? { disk_bps: bps } : {}) };
    return jobs;
  }

  private throwOnFailure(jobs: BlockJobInfo[]): void {
    const failed = jobs.find((j) => j.error !== undefined || (j.status === 'concluded' && j.offset < j.len && !j.ready));
    if (failed) throw new FerryError('operation_failed', `copying disk ${failed.device.replace(/^mirror-/, '')} failed: ${failed.error ?? 'the mirror stopped before it was complete'}`);
  }
}

/**
 * Removes the mirrors (and their connections to a destination) that an
 * earlier ferryd left in a source QEMU: after a restart nobody owns them.
 */
export async function dropLeftoverMirrors(qmp: QmpClient): Promise<void> {
  const jobs = await qmp.execute<BlockJobInfo[]>('query-block-jobs').catch(() => [] as BlockJobInfo[]);
  for (const j of jobs.filter((x) => x.device.startsWith(mirrorJob('')))) {
    const target = j.device.slice(mirrorJob('').length);
    await qmp.execute('block-job-cancel', { device: j.device, force: true }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));
    await qmp.execute('job-dismiss', { id: j.device }).catch(() => undefined);
    await qmp.execute('blockdev-del', { 'node-name': targetNode(target) }).catch(() => undefined);
  }
}

/** Adds disk figures to memory statistics the way libvirt does: `data_*` is memory plus disks. */
export function withDiskStats(stats: JobStats, disk: DiskStats): JobStats {
  const out: JobStats = { ...stats, ...disk };
  if (disk.disk_total !== undefined) out.data_total = (stats.memory_total ?? 0) + disk.disk_total;
  if (disk.disk_processed !== undefined) out.data_processed = (stats.memory_processed ?? 0) + disk.disk_processed;
  if (disk.disk_remaining !== undefined) out.data_remaining = (stats.memory_remaining ?? 0) + disk.disk_remaining;
  return out;
}
