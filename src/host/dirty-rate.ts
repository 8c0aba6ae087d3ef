/**
 * Memory dirty-rate measurement of a running domain (virsh's
 * `domdirtyrate-calc` and `domstats --dirtyrate`): QEMU's `calc-dirty-rate`
 * starts a measurement over a period, `query-dirty-rate` reads its state and
 * result. The checks libvirt makes before asking QEMU are made here, first.
 *
 * What QEMU 7.2 measures: the pages written at least once during the period
 * (page sampling: the share of sampled pages whose content changed; dirty
 * bitmap: every page QEMU saw written), divided by the period, in MiB/s. A
 * guest that rewrites a small working set faster than once per period is
 * therefore measured at working set / period, not at its write rate.
 */
import { FerryError } from '../errors/index.js';
import { QmpCommandError } from '../qemu/index.js';
import type { HostedDomain } from './hosted-domain.js';
import type { DomainRegistry } from './registry.js';

/**
 * How QEMU measures (QMP `DirtyRateMeasureMode`), each with libvirt's
 * `virDomainDirtyRateCalcFlags` bit:
 * - `page-sampling` (0, the default): hashes a sample of pages (512 per GiB)
 *   at the start and the end of the period and scales the share that
 *   changed; costs nothing while the guest runs.
 * - `dirty-bitmap` (1): turns on KVM's dirty-page logging for the period
 *   and counts every page written; exact, but the guest pays for the write
 *   tracking while it runs. Needs KVM without a dirty ring.
 * - `dirty-ring` (2): KVM's per-vCPU dirty ring, also per vCPU; needs KVM
 *   with `dirty-ring-size` set.
 *
 * Under TCG only page sampling works: QEMU 7.2 asks KVM whether its dirty
 * ring is on before either of the other two, with no KVM there, and the
 * QEMU process dies of it (SIGSEGV; QEMU 9.1 refuses them instead). So
 * ferryd refuses both for a TCG guest before QEMU is asked.
 */
export const DIRTY_RATE_MODES = {
  'page-sampling': { flag: 0 },
  'dirty-bitmap': { flag: 1 },
  'dirty-ring': { flag: 2 },
} as const;

/** A measurement mode. */
export type DirtyRateMode = keyof typeof DIRTY_RATE_MODES;

/** A measurement's state, with libvirt's `virDomainDirtyRateStatus` number. */
export const DIRTY_RATE_STATUSES = {
  unstarted: 0,
  measuring: 1,
  measured: 2,
} as const;

/** A measurement's state. */
export type DirtyRateStatus = keyof typeof DIRTY_RATE_STATUSES;

/** The measuring period libvirt allows, in whole seconds (QEMU allows the same). */
export const DIRTY_RATE_SECONDS = { min: 1, max: 60, default: 1 } as const;

/** The last measurement of a domain, as `query-dirty-rate` reports it. */
export interface DirtyRateInfo {
  status: DirtyRateStatus;
  /**
   * When the measurement started, in seconds: QEMU 7.2 reads its realtime
   * clock, which counts from an arbitrary point (the host's boot), not the
   * epoch (QEMU 8.2 and later give epoch seconds); 0 before any.
   */
  startTime: number;
  /** The measuring period in seconds (0 before any). */
  calcTime: number;
  mode: DirtyRateMode;
  /** Pages written during the period, MiB per second; null until measured. */
  megabytesPerSecond: number | null;
}

/** What {@link DirtyRates.start} started. */
export interface DirtyRateStarted {
  domain: string;
  seconds: number;
  mode: DirtyRateMode;
}

/**
 * Checks a measuring period as libvirt does: a whole number of seconds, 1 to 60.
 *
 * @throws FerryError `invalid_arg` naming the value and the range
 */
export function checkDirtyRateSeconds(seconds: unknown): number {
  if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < DIRTY_RATE_SECONDS.min || seconds > DIRTY_RATE_SECONDS.max) {
    throw new FerryError(
      'invalid_arg',
      `seconds=${typeof seconds === 'number' || typeof seconds === 'string' ? String(seconds) : typeof seconds} is invalid: a dirty-rate calculation takes a whole number of seconds from ${DIRTY_RATE_SECONDS.min} to ${DIRTY_RATE_SECONDS.max}`,
    );
  }
  return seconds;
}

/**
 * Checks a measurement mode name; undefined means `page-sampling`, QEMU's and libvirt's default.
 *
 * @throws FerryError `invalid_arg` listing the modes
 */
export function checkDirtyRateMode(mode: unknown): DirtyRateMode {
  if (mode === undefined) return 'page-sampling';
  if (typeof mode !== 'string' || !Object.prototype.hasOwnProperty.call(DIRTY_RATE_MODES, mode)) {
    throw new FerryError('invalid_arg', `unknown dirty-rate mode '${String(mode)}': use ${Object.keys(DIRTY_RATE_MODES).join(', ')}`);
  }
  return mode as DirtyRateMode;
}

/**
 * The mode libvirt's `virDomainStartDirtyRateCalc` flags select: none is
 * page sampling, DIRTY_BITMAP (1) or DIRTY_RING (2), not both.
 *
 * @throws FerryError `invalid_arg` for unknown bits or both modes
 */
export function dirtyRateModeOfFlags(flags: number): DirtyRateMode {
  const known = DIRTY_RATE_MODES['dirty-bitmap'].flag | DIRTY_RATE_MODES['dirty-ring'].flag;
  const unknown = (flags & ~known) >>> 0;
  if (unknown !== 0) throw new FerryError('invalid_arg', `unsupported flags (0x${unknown.toString(16)}) in function virDomainStartDirtyRateCalc`);
  if (flags === known) throw new FerryError('invalid_arg', 'the dirty-bitmap (1) and dirty-ring (2) modes are mutually exclusive');
  if (flags === DIRTY_RATE_MODES['dirty-bitmap'].flag) return 'dirty-bitmap';
  if (flags === DIRTY_RATE_MODES['dirty-ring'].flag) return 'dirty-ring';
  return 'page-sampling';
}

/**
 * Reads QEMU's `query-dirty-rate` answer (QEMU 7.2's `DirtyRateInfo`).
 *
 * @throws FerryError `internal_error` when the answer does not have that shape
 */
export function parseDirtyRateInfo(raw: unknown): DirtyRateInfo {
  const r = raw as Record<string, unknown> | null;
  const bad = (why: string): never => {
    throw new FerryError('internal_error', `QEMU's query-dirty-rate answer is not understood: ${why}`);
  };
  if (!r || typeof r !== 'object') return bad('not an object');
  const status = r.status;
  if (typeof status !== 'string' || !(status in DIRTY_RATE_STATUSES)) return bad(`status ${JSON.stringify(status)}`);
  const num = (key: string): number => {
    const v = r[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) return bad(`${key} ${JSON.stringify(v)}`);
    return v;
  };
  // QEMU before 6.2 had no mode: its only mode was page sampling.
  const mode = r.mode === undefined ? 'page-sampling' : r.mode;
  if (typeof mode !== 'string' || !(mode in DIRTY_RATE_MODES)) return bad(`mode ${JSON.stringify(mode)}`);
  const rate = r['dirty-rate'];
  return {
    status: status as DirtyRateStatus,
    startTime: num('start-time'),
    calcTime: num('calc-time'),
    mode: mode as DirtyRateMode,
    megabytesPerSecond: status === 'measured' && typeof rate === 'number' && Number.isFinite(rate) ? rate : null,
  };
}

/**
 * Starts and reads dirty-rate measurements of the host's domains. A
 * measurement runs inside QEMU: starting one holds the domain's job lock
 * only for the call that starts it, as libvirt does, so a migration may
 * begin while it measures.
 */
export class DirtyRates {
  constructor(private readonly registry: DomainRegistry) {}

  /**
   * `domdirtyrate-calc`: starts measuring `ref`'s memory dirty rate over
   * `seconds` with `mode`. Arguments are checked before the domain is
   * looked at; the result comes later from {@link query}.
   *
   * @throws FerryError `invalid_arg` (seconds, mode), `no_domain`,
   *   `operation_invalid` (not running, or a measurement already running),
   *   `operation_unsupported` (dirty-bitmap or dirty-ring without KVM)
   *
   * `samplePagesPerGiB` (page sampling; QEMU takes 128 to 4096, default
   * 512) trades a little QEMU time for precision: the forecast asks for the
   * most.
   */
  async start(ref: unknown, seconds: unknown, mode: unknown, opts: { samplePagesPerGiB?: number } = {}): Promise<DirtyRateStarted> {
    const period = checkDirtyRateSeconds(seconds);
    const how = checkDirtyRateMode(mode);
    const d = this.registry.lookup(ref);
    return d.jobs.run('measure', async () => {
      const rt = runningRuntime(d);
      if (how !== 'page-sampling' && rt.accel !== 'kvm') {
        const needs = how === 'dirty-ring' ? "KVM's dirty ring" : "KVM's dirty-page log";
        throw new FerryError(
          'operation_unsupported',
          `${how} calculation needs ${needs}, but domain '${d.name}' runs under ${rt.accel.toUpperCase()} (where QEMU 7.2 would crash on it); use page-sampling, the default mode`,
        );
      }
      try {
        await rt.qemu.qmp.execute('calc-dirty-rate', { 'calc-time': period, mode: how, ...(how === 'page-sampling' && opts.samplePagesPerGiB !== undefined ? { 'sample-pages': opts.samplePagesPerGiB } : {}) });
      } catch (err) {
        throw explainQemuRefusal(err, d.name, how);
      }
      return { domain: d.name, seconds: period, mode: how };
    });
  }

  /**
   * The last measurement of domain `d`, or null while it is not running
   * (libvirt then reports no `dirtyrate.*` fields). Takes no job lock: the
   * query only reads.
   */
  async query(d: HostedDomain): Promise<DirtyRateInfo | null> {
    const rt = d.runtime;
    if (!rt || !d.active) return null;
    return parseDirtyRateInfo(await rt.qemu.qmp.execute('query-dirty-rate'));
  }
}

function runningRuntime(d: HostedDomain): NonNullable<HostedDomain['runtime']> {
  if (!d.runtime || !d.active) throw new FerryError('operation_invalid', `domain '${d.name}' is not running: a dirty-rate calculation needs a running guest`);
  return d.runtime;
}

/** QEMU's refusals of `calc-dirty-rate` in Ferry's words, with a code that says what to do. */
function explainQemuRefusal(err: unknown, name: string, mode: DirtyRateMode): unknown {
  if (!(err instanceof QmpCommandError)) return err;
  if (/already|in progress|measuring/i.test(err.desc)) {
    return new FerryError('operation_invalid', `a dirty-rate calculation is already running on domain '${name}'; read it with domstats --dirtyrate and start another when it is measured (QEMU: ${err.desc})`);
  }
  if (mode !== 'page-sampling' && /not enabled|requires kvm/i.test(err.desc)) {
    const other = mode === 'dirty-ring' ? 'page-sampling or dirty-bitmap' : 'page-sampling or dirty-ring';
    return new FerryError('operation_unsupported', `${mode} calculation is not available on domain '${name}' with this QEMU's KVM set-up (dirty-ring needs dirty-ring-size, dirty-bitmap needs it off); use ${other} (QEMU: ${err.desc})`);
  }
  return err;
}
