/**
 * The convergence forecast: from what can be measured before a migration
 * (memory size, memory the guest has touched, its dirty rate, the
 * bandwidth, the downtime limit, the chosen flags), how QEMU's pre-copy
 * will go, pass by pass, and, for one that will not finish, what would
 * make it finish and at what cost. Pure: the measuring is in
 * forecast-inputs.ts, the model is documented in docs/convergence.md.
 *
 * The model is QEMU's algorithm with rates in place of pages: the first
 * pass sends every touched page (untouched pages cost a few bytes each);
 * each later pass sends what the guest dirtied during the previous one,
 * which is the dirty rate times the pass's duration, capped by the
 * working set (a guest cannot dirty more than it writes to); QEMU stops
 * the guest and sends the rest once that rest fits in the downtime limit
 * at the current bandwidth. If the guest dirties at least as fast as the
 * stream moves, the rest never shrinks: pre-copy does not converge.
 *
 * Calibrated against QEMU 7.2 under TCG by bench/forecast-accuracy.ts
 * (docs/convergence.md has the table): the constants below say what each
 * figure is. Two refinements of QEMU's algorithm came from it: QEMU checks
 * the rest only between rounds of sending, so after the first pass the
 * guest must dirty less than the slack below the threshold, not the whole
 * threshold (QEMU_ROUND_MS); and the stop-and-copy runs without the
 * max-bandwidth cap, at the stream's ceiling (STREAM_CEILING_BYTES_PER_S),
 * so the downtime is far below what the cap would give.
 */

/** Bytes of one guest page. */
export const PAGE_BYTES = 4096;
/** Bytes on the wire for one zero page (QEMU's page header with the zero flag). */
export const ZERO_PAGE_WIRE_BYTES = 9;
/**
 * Time to send the device state and switch over, beyond the last RAM bytes (ms).
 * Calibrated by bench/forecast-accuracy.ts: QEMU's downtime of an idle guest
 * (nothing left to copy) was 4, 12, 8 and 15 ms at the four bandwidths (was 5).
 */
export const SWITCHOVER_MS = 10;
/**
 * Fixed cost inside the job outside the stream, ms: QEMU's setup (the
 * destination connection, the first dirty-bitmap sync) and the
 * completion. Calibrated by bench/forecast-accuracy.ts against the job's
 * time_elapsed (domjobinfo): QEMU's setup_time was 50 to 71 ms in every
 * run, and an idle guest's time_elapsed less its data at the cap left
 * 22 to 63 ms (was 150, which also counted the CLI's own start).
 */
export const DEFAULT_SETUP_MS = 50;
/**
 * What QEMU 7.2 under TCG moves at most on one stream, bytes/s, whatever the
 * path carries: without a cap the test guest's first pass (65 MiB of data,
 * 192 MiB of zero pages) ran at 625 to 985 MiB/s where the path measured
 * 2.4 to 3.3 GiB/s (bench/forecast-accuracy.ts). The inputs clamp the
 * bandwidth to it (forecast-inputs.ts), and the stop-and-copy, which QEMU
 * runs without its max-bandwidth cap, runs at it.
 */
export const STREAM_CEILING_BYTES_PER_S = 800 * 1024 * 1024;
/**
 * QEMU checks whether the rest fits in the downtime only between two
 * rounds of sending, and a capped round is one rate-limit window
 * (BUFFER_DELAY, 100 ms): after the first pass, which ends in untouched
 * memory (zero pages, sent at once), a pass stops with up to one round's
 * worth below the threshold still pending, so what the guest dirtied
 * meanwhile must fit in that slack, half a round on average, not in the
 * whole threshold. Calibrated by bench/forecast-accuracy.ts: a writer at
 * 30 MiB/s under a 32 MiB/s cap took 58 dirty syncs (the threshold alone
 * says about 20), at 10 MiB/s under 32 MiB/s 6.
 */
export const QEMU_ROUND_MS = 100;
/**
 * QEMU's dirty-bitmap syncs beyond the model's passes: one at setup, before
 * the first pass, and one at completion (domjobinfo's memory_iteration is
 * the sync count): measured 3 for every one-pass run with a cap.
 */
export const QEMU_EXTRA_SYNCS = 2;
/** More passes than this and pre-copy is called non-converging, whatever the trend. */
export const MAX_PASSES = 100;
/** A pass that leaves at least this share of the previous one is not progress. */
const NO_PROGRESS = 0.98;
/** QEMU's auto-converge defaults: the first throttle and each step (percent of vCPU time taken). */
export const AUTO_CONVERGE_DEFAULTS = { initial: 20, increment: 10, max: 99 } as const;

/** What the forecast starts from. */
export interface ForecastInput {
  /** Guest RAM, bytes. */
  memoryBytes: number;
  /** RAM the guest has touched (the QEMU process's resident guest memory), bytes: what the first pass really sends. */
  touchedBytes: number;
  /** Measured dirty rate, bytes per second. */
  dirtyBytesPerS: number;
  /** The memory the guest keeps rewriting, bytes, when known; else the touched memory bounds it. */
  workingSetBytes?: number;
  /** What the stream can move, bytes per second. */
  bandwidthBytesPerS: number;
  /** QEMU's downtime limit, ms. */
  downtimeLimitMs: number;
  /** Fixed cost outside the stream, ms. */
  setupMs?: number;
  /** AUTO_CONVERGE and its parameters (percent). */
  autoConverge?: { initial?: number; increment?: number };
  /** POSTCOPY: after the first pass, switch to post-copy (as `--postcopy-after-precopy` does). */
  postcopy?: boolean;
}

/** One pass over memory. */
export interface ForecastPass {
  bytes: number;
  ms: number;
  /** The vCPU throttle during this pass (auto-converge), percent. */
  throttlePercent: number;
}

/** A change that would make a non-converging migration finish, and its price. */
export interface ForecastAdvice {
  /** What to change, in Ferry's (virsh's) options. */
  action: string;
  /** What it would give. */
  effect: string;
  /** What it costs. */
  cost: string;
  /** The forecast with the change, when the model can tell. */
  total_ms?: number;
  downtime_ms?: number;
}

/** The forecast. Field names are the `--json` ones. */
export interface Forecast {
  converges: boolean;
  /** How it finishes: plain pre-copy, with throttled vCPUs, or by switching to post-copy. */
  mode: 'pre-copy' | 'auto-converge' | 'post-copy';
  /** Passes over memory, the first included. */
  iterations: number;
  /** What QEMU's dirty-sync count (domjobinfo's memory_iteration) will read at the end: the passes plus {@link QEMU_EXTRA_SYNCS}. */
  memory_iteration: number;
  /** Whole migration, setup included, ms (the time until the passes stop growing, for one that does not converge). */
  total_ms: number;
  /** The guest's pause at the switch-over, ms. */
  downtime_ms: number;
  /** Bytes sent. */
  data_bytes: number;
  /** Post-copy: how long the guest runs on the destination while its memory still comes from the source, ms. */
  postcopy_window_ms?: number;
  /** Auto-converge: the vCPU throttle reached, percent. */
  throttle_percent?: number;
  /** The dirty rate is within the measurement's noise of the bandwidth: the verdict could go either way. */
  borderline?: boolean;
  /** Why it converges or not, in one sentence with the numbers. */
  reason: string;
  /** For one that does not converge: what would help. */
  advice: ForecastAdvice[];
  passes: ForecastPass[];
}

const MIB = 1024 * 1024;
const mib = (b: number): string => `${(b / MIB).toFixed(1)} MiB`;
const mibps = (b: number): string => `${(b / MIB).toFixed(1)} MiB/s`;

/** The first pass: every touched page in full, the others as zero-page records. */
function firstPassBytes(i: ForecastInput): number {
  const touched = Math.min(i.touchedBytes, i.memoryBytes);
  return touched + ((i.memoryBytes - touched) / PAGE_BYTES) * ZERO_PAGE_WIRE_BYTES;
}

/** The working set: known, else bounded by what the guest has touched. */
function workingSet(i: ForecastInput): number {
  return Math.min(i.workingSetBytes ?? i.touchedBytes, i.memoryBytes);
}

/** Plain pre-copy, optionally with auto-converge's throttle. */
function simulatePrecopy(i: ForecastInput, throttle?: { initial: number; increment: number }): Omit<Forecast, 'advice' | 'reason'> & { stalledAt: number } {
  const B = Math.max(1, i.bandwidthBytesPerS);
  const threshold = (B * i.downtimeLimitMs) / 1000;
  const W = workingSet(i);
  const passes: ForecastPass[] = [];
  let bytes = firstPassBytes(i);
  let p = 0;
  let highDirtyPasses = 0;
  let data = 0;
  let ms = i.setupMs ?? DEFAULT_SETUP_MS;
  const fast = Math.max(B, STREAM_CEILING_BYTES_PER_S);
  // After the first pass, what may be dirtied between two checks: half a round below the threshold (QEMU_ROUND_MS).
  const slackLater = Math.min(threshold, (B * QEMU_ROUND_MS) / 1000) / 2;
  for (;;) {
    const passMs = (bytes / B) * 1000;
    passes.push({ bytes, ms: passMs, throttlePercent: p });
    data += bytes;
    ms += passMs;
    const rate = i.dirtyBytesPerS * (1 - p / 100);
    const dirtied = Math.min(W, (rate * passMs) / 1000);
    // What is pending at QEMU's check: after the first pass, which ends in untouched memory, only what the guest
    // dirtied; after a later one, also the part of the pass still below the threshold (the slack's complement).
    const carry = passes.length === 1 ? 0 : Math.min(bytes, threshold - slackLater);
    const pending = Math.min(Math.max(W, dirtied), carry + dirtied);
    if (pending <= threshold) {
      // QEMU stops the guest and sends the rest without its cap (migration_completion lifts the rate limit).
      // (The carry is counted in its pass's stream time too: at most T - slack at B, a few % of a run; it keeps
      // total = setup + passes + downtime.)
      const downtime = (pending / fast) * 1000 + SWITCHOVER_MS;
      const iterations = passes.length + (dirtied > 0 ? 1 : 0);
      return { converges: true, mode: p > 0 ? 'auto-converge' : 'pre-copy', iterations, memory_iteration: passes.length + QEMU_EXTRA_SYNCS, total_ms: Math.round(ms + downtime), downtime_ms: Math.round(downtime), data_bytes: Math.round(data + dirtied), passes, ...(p > 0 ? { throttle_percent: p } : {}), stalledAt: 0 };
    }
    // No progress, and no throttle left to tighten: this is where pre-copy stays.
    const stalled = dirtied >= bytes * NO_PROGRESS && (!throttle || p >= AUTO_CONVERGE_DEFAULTS.max);
    if (throttle && !stalled) {
      // As QEMU 7.2's migration_trigger_throttle: a period in which the guest dirtied more than half of what
      // was sent is high; two high periods (not necessarily in a row) raise the throttle once and start the count again.
      if (dirtied > bytes / 2) highDirtyPasses++;
      if (highDirtyPasses >= 2 && p < AUTO_CONVERGE_DEFAULTS.max) {
        highDirtyPasses = 0;
        p = p === 0 ? throttle.initial : Math.min(AUTO_CONVERGE_DEFAULTS.max, p + throttle.increment);
      }
    }
    if (stalled || passes.length >= MAX_PASSES) {
      return { converges: false, mode: throttle ? 'auto-converge' : 'pre-copy', iterations: passes.length, memory_iteration: passes.length + QEMU_EXTRA_SYNCS - 1, total_ms: Math.round(ms), downtime_ms: Math.round((dirtied / B) * 1000 + SWITCHOVER_MS), data_bytes: Math.round(data), passes, ...(p > 0 ? { throttle_percent: p } : {}), stalledAt: dirtied };
    }
    bytes = dirtied;
  }
}

/** Post-copy after the first pass: the guest moves, the rest of its memory follows on demand and in the background. */
function simulatePostcopy(i: ForecastInput): Omit<Forecast, 'advice' | 'reason'> {
  const B = Math.max(1, i.bandwidthBytesPerS);
  const first = firstPassBytes(i);
  const firstMs = (first / B) * 1000;
  const rest = Math.min(workingSet(i), (i.dirtyBytesPerS * firstMs) / 1000);
  const windowMs = (rest / B) * 1000;
  const setup = i.setupMs ?? DEFAULT_SETUP_MS;
  return {
    converges: true,
    mode: 'post-copy',
    iterations: 1,
    memory_iteration: 1 + QEMU_EXTRA_SYNCS,
    total_ms: Math.round(setup + firstMs + SWITCHOVER_MS + windowMs),
    downtime_ms: SWITCHOVER_MS,
    data_bytes: Math.round(first + rest),
    postcopy_window_ms: Math.round(windowMs),
    passes: [{ bytes: first, ms: firstMs, throttlePercent: 0 }],
  };
}

/** Forecasts the migration described by `i`, with advice when it would not finish. */
export function forecastMigration(i: ForecastInput): Forecast {
  const { stalledAt, ...f } = forecastCore(i);
  const out = f.converges ? f : { ...f, advice: adviseFor(i, stalledAt) };
  // A dirty rate this close to the bandwidth is within the measurement's noise: say the verdict could go either way.
  const ratio = i.bandwidthBytesPerS > 0 ? i.dirtyBytesPerS / i.bandwidthBytesPerS : 0;
  if (!i.postcopy && ratio > 1 - BORDERLINE && ratio < 1 + BORDERLINE) {
    return { ...out, borderline: true, reason: `${out.reason} (the dirty rate is within ${Math.round(BORDERLINE * 100)} % of the bandwidth, inside the measurement's noise: the verdict could go either way)` };
  }
  return out;
}

/**
 * How close the dirty rate may be to the bandwidth before the verdict is
 * called borderline: a steady writer's 1 s page-sampling figure moves by
 * about +-15 % (measured: 26 to 34 MiB/s for a 30 MiB/s writer).
 */
export const BORDERLINE = 0.15;

/** The forecast without advice, and for one that does not finish, what each pass leaves dirty. */
function forecastCore(i: ForecastInput): Forecast & { stalledAt: number } {
  if (i.postcopy) {
    const f = simulatePostcopy(i);
    return { ...f, reason: `the first pass sends ${mib(f.passes[0]!.bytes)} in ${(f.passes[0]!.ms / 1000).toFixed(1)} s; then the guest moves and the ${mib(f.data_bytes - f.passes[0]!.bytes)} it dirtied meanwhile follow in post-copy`, advice: [], stalledAt: 0 };
  }
  const throttle = i.autoConverge ? { initial: i.autoConverge.initial ?? AUTO_CONVERGE_DEFAULTS.initial, increment: i.autoConverge.increment ?? AUTO_CONVERGE_DEFAULTS.increment } : undefined;
  const f = simulatePrecopy(i, throttle);
  const stalledAt = f.stalledAt;
  const B = i.bandwidthBytesPerS;
  const R = i.dirtyBytesPerS;
  if (f.converges) {
    const reason = f.passes.length <= 1
      ? `the guest dirties ${mibps(R)}; what it dirties during the first pass fits in the ${i.downtimeLimitMs} ms downtime at ${mibps(B)}`
      : `the guest dirties ${mibps(R)}, ${R < B ? 'less' : 'no less'} than the ${mibps(B)} the stream moves; after ${f.passes.length} passes the rest fits in the ${i.downtimeLimitMs} ms downtime${f.throttle_percent ? ` (vCPUs throttled to ${100 - f.throttle_percent} %)` : ''}`;
    return { ...f, reason, advice: [] };
  }
  const reason = `the guest dirties ${mibps(R * (1 - (f.throttle_percent ?? 0) / 100))} and the stream moves ${mibps(B)}: each pass leaves about ${mib(stalledAt)} dirty, which needs ${Math.round((stalledAt / Math.max(1, B)) * 1000)} ms of downtime, more than the ${i.downtimeLimitMs} ms limit`;
  return { ...f, reason, advice: [] };
}

/** What would make a non-converging pre-copy finish, each with the model's figures. */
function adviseFor(i: ForecastInput, stalledAt: number): ForecastAdvice[] {
  const out: ForecastAdvice[] = [];
  const B = Math.max(1, i.bandwidthBytesPerS);
  const neededDowntime = Math.ceil((stalledAt / B) * 1000 + SWITCHOVER_MS);
  const withDowntime = forecastCore({ ...i, downtimeLimitMs: neededDowntime + 1 });
  out.push({
    action: `allow ${neededDowntime} ms of downtime: --policy auto --max-downtime ${neededDowntime} (or ferry migrate-setmaxdowntime DOMAIN ${neededDowntime} while it runs)`,
    effect: withDowntime.converges ? `finishes in about ${(withDowntime.total_ms / 1000).toFixed(1)} s` : 'may still not finish',
    cost: `the guest stops for about ${withDowntime.downtime_ms} ms at the switch-over`,
    total_ms: withDowntime.total_ms,
    downtime_ms: withDowntime.downtime_ms,
  });
  if (!i.autoConverge) {
    const ac = forecastCore({ ...i, autoConverge: {} });
    if (ac.converges) {
      out.push({
        action: '--auto-converge (AUTO_CONVERGE; with --policy auto the throttle also steepens when it falls short)',
        effect: `finishes in about ${(ac.total_ms / 1000).toFixed(1)} s with ${ac.downtime_ms} ms of downtime`,
        cost: `the guest's vCPUs are throttled, up to ${ac.throttle_percent ?? 0} % of their time taken, until the switch-over`,
        total_ms: ac.total_ms,
        downtime_ms: ac.downtime_ms,
      });
    }
  }
  const pc = forecastCore({ ...i, postcopy: true, autoConverge: undefined });
  out.push({
    action: '--postcopy --policy auto (switches to post-copy once pre-copy stalls), or --postcopy --postcopy-after-precopy (switches after the first pass)',
    effect: `finishes in about ${(pc.total_ms / 1000).toFixed(1)} s with about ${pc.downtime_ms} ms of downtime`,
    cost: `for about ${((pc.postcopy_window_ms ?? 0) / 1000).toFixed(1)} s after the switch the guest's memory is split between the hosts: losing the source host or the link then loses the guest`,
    total_ms: pc.total_ms,
    downtime_ms: pc.downtime_ms,
  });
  return out;
}
