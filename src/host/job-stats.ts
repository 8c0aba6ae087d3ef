/**
 * Migration job statistics with libvirt's field names (as `virsh
 * domjobinfo` shows them), computed from QEMU's `query-migrate` and from
 * wall-clock times Ferry records itself: QEMU's own counters have been seen
 * to read 0 after some runs.
 */

/**
 * virsh's percentage of a migration: the part of the data total no longer
 * remaining, whole, kept within 0..99 while it runs; undefined while either
 * figure is unknown. The CLI's progress lines and the dashboard show it.
 */
export function percentDone(total: number | undefined, remaining: number | undefined): number | undefined {
  if (!total || remaining === undefined) return undefined;
  return Math.max(0, Math.min(99, Math.floor(100 - (remaining * 100) / total)));
}

/** The subset of QEMU's `query-migrate` answer Ferry reads. */
export interface QemuMigrateInfo {
  status?: string;
  'total-time'?: number;
  'expected-downtime'?: number;
  downtime?: number;
  'setup-time'?: number;
  'error-desc'?: string;
  ram?: {
    transferred?: number;
    remaining?: number;
    total?: number;
    duplicate?: number;
    normal?: number;
    'normal-bytes'?: number;
    mbps?: number;
    'dirty-pages-rate'?: number;
    'dirty-sync-count'?: number;
    'page-size'?: number;
    'postcopy-requests'?: number;
  };
  'cpu-throttle-percentage'?: number;
  'xbzrle-cache'?: { 'cache-size'?: number; bytes?: number; pages?: number; 'cache-miss'?: number; 'cache-miss-rate'?: number; 'encoding-rate'?: number; overflow?: number };
  compression?: { pages?: number; busy?: number; 'busy-rate'?: number; 'compressed-size'?: number; 'compression-rate'?: number };
}

/** libvirt's job types, as virsh prints them. */
export type JobType = 'None' | 'Unbounded' | 'Completed' | 'Failed' | 'Cancelled';

/** Job statistics in libvirt's typed-parameter names (VIR_DOMAIN_JOB_*). */
export interface JobStats {
  type: JobType;
  /** libvirt's operation: 'Outgoing migration' / 'Incoming migration'. */
  operation: 'Outgoing migration' | 'Incoming migration';
  time_elapsed: number;
  time_remaining?: number;
  downtime?: number;
  setup_time?: number;
  data_total?: number;
  data_processed?: number;
  data_remaining?: number;
  memory_total?: number;
  memory_processed?: number;
  memory_remaining?: number;
  memory_constant?: number;
  memory_normal?: number;
  memory_normal_bytes?: number;
  /** Bytes per second. */
  memory_bps?: number;
  /** Pages per second. */
  memory_dirty_rate?: number;
  memory_iteration?: number;
  memory_page_size?: number;
  memory_postcopy_requests?: number;
  auto_converge_throttle?: number;
  /** Storage copy: bytes of all copied disks. */
  disk_total?: number;
  disk_processed?: number;
  disk_remaining?: number;
  /** Storage copy: bytes per second. */
  disk_bps?: number;
  /** XBZRLE cache size, bytes. */
  compression_cache?: number;
  /** Bytes sent XBZRLE-encoded (or, for mt, compressed). */
  compression_bytes?: number;
  /** Pages sent XBZRLE-encoded (or, for mt, compressed). */
  compression_pages?: number;
  compression_cache_misses?: number;
  compression_overflow?: number;
  /** The job waits for a migration slot: its place in the queue (1 = next). */
  queue_position?: number;
  /** Ferry's own measurement of the whole job, ms (wall clock). */
  wall_time?: number;
  /** Where a running migration is: 'first pass', 'iteration N', 'post-copy', 'storage'. */
  phase?: string;
  /** The live verdict of the forecast model (see src/migration/convergence.ts). */
  convergence?: 'converging' | 'not converging' | 'unknown';
  /** The policy's warning, once the migration was found not to converge. */
  warning?: string;
  /** The policy's steps so far, in order. */
  policy_steps?: string;
  errmsg?: string;
}

/** Converts a `query-migrate` answer plus our own elapsed time into {@link JobStats}. */
export function statsFromQemu(info: QemuMigrateInfo, opts: { operation: JobStats['operation']; elapsedMs: number; type: JobType }): JobStats {
  const ram = info.ram ?? {};
  const s: JobStats = { type: opts.type, operation: opts.operation, time_elapsed: opts.elapsedMs };
  const set = <K extends keyof JobStats>(k: K, v: JobStats[K] | undefined) => {
    if (v !== undefined && v !== null && !(typeof v === 'number' && !Number.isFinite(v))) s[k] = v;
  };
  set('downtime', info.downtime);
  set('setup_time', info['setup-time']);
  set('data_total', ram.total);
  set('data_processed', ram.transferred);
  set('data_remaining', ram.remaining);
  set('memory_total', ram.total);
  set('memory_processed', ram.transferred);
  set('memory_remaining', ram.remaining);
  set('memory_constant', ram.duplicate);
  set('memory_normal', ram.normal);
  set('memory_normal_bytes', ram['normal-bytes']);
  set('memory_bps', ram.mbps !== undefined ? Math.round((ram.mbps * 1e6) / 8) : undefined);
  set('memory_dirty_rate', ram['dirty-pages-rate']);
  set('memory_iteration', ram['dirty-sync-count']);
  set('memory_page_size', ram['page-size']);
  set('memory_postcopy_requests', ram['postcopy-requests']);
  set('auto_converge_throttle', info['cpu-throttle-percentage']);
  const x = info['xbzrle-cache'];
  if (x) {
    set('compression_cache', x['cache-size']);
    set('compression_bytes', x.bytes);
    set('compression_pages', x.pages);
    set('compression_cache_misses', x['cache-miss']);
    set('compression_overflow', x.overflow);
  }
  const c = info.compression;
  if (c && !x) {
    set('compression_bytes', c['compressed-size']);
    set('compression_pages', c.pages);
  }
  if (info['error-desc']) s.errmsg = info['error-desc'];
  return s;
}
