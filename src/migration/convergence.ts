/**
 * Watching a running pre-copy and acting on what it shows: the live
 * forecast (the forecast model fed with QEMU's live figures) gives the
 * honest ETA, or "unknown" when the migration is not converging; a stall
 * (data remaining not shrinking for a window) or the live verdict makes
 * the policy escalate one allowed step at a time: a higher downtime limit
 * (up to a cap), harder vCPU throttling (when AUTO_CONVERGE is on), the
 * switch to post-copy (when POSTCOPY is on), and at last a clean abort
 * that says what was tried and what the user could allow. A completion
 * timeout per GiB of memory ends the job with its own action. Pure: the
 * caller feeds samples and carries out the actions (see outgoing.ts).
 */
import { FerryError } from '../errors/index.js';
import { forecastMigration, SWITCHOVER_MS } from './forecast.js';

/** What a migration does when it does not converge. */
export type PolicyMode = 'none' | 'warn' | 'auto';
/** What the completion timeout does when it expires. */
export type CompletionAction = 'abort' | 'postcopy' | 'pause';

/** The policy of one migration; every bound has the meaning the peers' users know. */
export interface MigrationPolicy {
  /** none: watch only; warn: say so once when it does not converge; auto: escalate. */
  mode: PolicyMode;
  /** The highest downtime limit the policy may set, ms (Nova's live_migration_downtime). */
  maxDowntimeMs: number;
  /** In how many steps the downtime limit rises to its cap (Nova's live_migration_downtime_steps). */
  downtimeSteps: number;
  /** Seconds without data remaining reaching a new low before the migration counts as stalled (KubeVirt's progressTimeout); 0 = off. */
  progressTimeoutS: number;
  /** Seconds per GiB of guest memory before the completion action (Nova's live_migration_completion_timeout, KubeVirt's completionTimeoutPerGiB); 0 = off. */
  completionTimeoutPerGiBS: number;
  completionAction: CompletionAction;
}

/**
 * The defaults, and why (figures in docs/convergence.md):
 * - warn: a migration that does not converge is said to be so, with the
 *   numbers, but nothing is done that the user did not ask for;
 * - 2000 ms: a pause most TCP peers and guests ride out (TCP retransmits
 *   within 1 s; common application heartbeats are several seconds);
 * - 4 steps: each step waits a pass, so the cap is reached after four
 *   passes that did not converge;
 * - 20 s without progress: longer than a pass of a 1 GiB guest at
 *   100 MiB/s, so a slow but shrinking first pass is not a stall;
 * - 0 (no completion timeout): as in libvirt; Nova's 800 s/GiB is
 *   available as an option.
 */
export const DEFAULT_POLICY: MigrationPolicy = {
  mode: 'warn',
  maxDowntimeMs: 2000,
  downtimeSteps: 4,
  progressTimeoutS: 20,
  completionTimeoutPerGiBS: 0,
  completionAction: 'abort',
};

/** One sample of a running migration, from QEMU's `query-migrate` and the job. */
export interface LiveSample {
  /** ms since the job's perform began. */
  atMs: number;
  /** QEMU's `dirty-sync-count`: passes over memory so far. */
  iteration: number;
  remainingBytes: number;
  totalBytes: number;
  /** Throughput, bytes/s. */
  bandwidthBytesPerS: number;
  /** Dirty rate, bytes/s (QEMU's dirty pages per second × page size). */
  dirtyBytesPerS: number;
  downtimeLimitMs: number;
  /** vCPU throttle in force, percent. */
  throttlePercent: number;
  /** QEMU reports post-copy active. */
  postcopy: boolean;
}

/** What the flags allow the policy to do. */
export interface PolicyAllowance {
  /** AUTO_CONVERGE: QEMU throttles; the policy may throttle harder. */
  throttle: boolean;
  /** POSTCOPY: the policy may switch to post-copy. */
  postcopy: boolean;
}

/** An action for the caller to carry out; each also goes out as an event. */
export type PolicyAction =
  | { kind: 'warn'; message: string }
  | { kind: 'set-downtime'; ms: number; message: string }
  | { kind: 'throttle-harder'; incrementPercent: number; message: string }
  | { kind: 'start-postcopy'; message: string }
  | { kind: 'pause'; message: string }
  | { kind: 'abort'; message: string };

/** The live verdict and ETA. */
export interface LiveEstimate {
  converging: boolean | 'unknown';
  /** ms until the switch-over completes, or null when it cannot be known. */
  etaMs: number | null;
  /** The phase, as the progress bar shows it: "first pass", "iteration N", "post-copy". */
  phase: string;
}

const MIB = 1024 * 1024;

/** A pass whose start leaves at least this share of the previous pass's start is no progress. */
const NO_SHRINK = 0.9;

/**
 * The live forecast from one sample and what each pass started with (the
 * data remaining right after QEMU's bitmap sync, oldest first). QEMU's
 * dirty rate is measured per pass: a guest that rewrites its working set
 * within a pass reads as working set / pass time, which sits just under
 * the bandwidth whatever the guest really does, so the rate alone cannot
 * tell a slow convergence from none. What the passes start with can:
 * once two are known, their ratio is the contraction per pass, and a
 * ratio near 1 above the downtime threshold means not converging; two
 * shrinking ratios in a row mean converging, with the passes to come
 * extrapolated; anything between is unknown, with no ETA.
 */
export function liveEstimate(s: LiveSample, passStarts: readonly number[] = []): LiveEstimate {
  const phase = s.postcopy ? 'post-copy' : s.iteration <= 1 ? 'first pass' : `iteration ${s.iteration}`;
  const B = s.bandwidthBytesPerS;
  if (s.postcopy) return { converging: true, etaMs: B > 0 ? Math.round((s.remainingBytes / B) * 1000) : null, phase };
  if (B <= 0) return { converging: 'unknown', etaMs: null, phase };
  // The first pass's own dirty rate is not yet known to QEMU: only its remaining bytes tell.
  if (s.iteration <= 1) return { converging: 'unknown', etaMs: Math.round((s.remainingBytes / B) * 1000), phase };
  const threshold = (B * s.downtimeLimitMs) / 1000;
  if (passStarts.length >= 2) {
    const last = passStarts[passStarts.length - 1]!;
    const prev = passStarts[passStarts.length - 2]!;
    if (last <= threshold) return { converging: true, etaMs: Math.round((s.remainingBytes / B) * 1000 + SWITCHOVER_MS), phase };
    const q = prev > 0 ? last / prev : 1;
    if (q >= NO_SHRINK) return { converging: false, etaMs: null, phase };
    // One shrinking pass may be noise (a guest starved of CPU for a moment writes less): it takes two in a row.
    const before = passStarts.length >= 3 ? passStarts[passStarts.length - 3]! : undefined;
    if (before === undefined || prev / before >= NO_SHRINK) return { converging: 'unknown', etaMs: null, phase };
    // The passes to come shrink by q each: the rest of this one, then last x q^k until it fits the threshold.
    let ms = (s.remainingBytes / B) * 1000;
    for (let next = last * q; next > threshold && ms < 24 * 3600_000; next *= q) ms += (next / B) * 1000;
    return { converging: true, etaMs: Math.round(ms + SWITCHOVER_MS), phase };
  }
  if (s.dirtyBytesPerS <= 0) return { converging: 'unknown', etaMs: Math.round((s.remainingBytes / B) * 1000), phase };
  const f = forecastMigration({
    memoryBytes: s.remainingBytes,
    touchedBytes: s.remainingBytes,
    // What this pass started with is what the guest rewrites between syncs, at least.
    workingSetBytes: Math.max(passStarts.at(-1) ?? s.remainingBytes, s.remainingBytes, 1),
    dirtyBytesPerS: s.dirtyBytesPerS,
    bandwidthBytesPerS: B,
    downtimeLimitMs: s.downtimeLimitMs,
    setupMs: 0,
  });
  return { converging: f.converges, etaMs: f.converges ? f.total_ms : null, phase };
}

/** The live state of one job's policy. */
export class ConvergenceWatch {
  private bestRemaining = Number.POSITIVE_INFINITY;
  private bestAtMs = 0;
  private warned = false;
  private completionFired = false;
  private downtimeStep = 0;
  private initialDowntimeMs: number | undefined;
  private throttled = false;
  private postcopyAsked = false;
  private lastStepIteration = -1;
  private lastStepAtMs = 0;
  private readonly tried: string[] = [];
  private done = false;
  /** Data remaining at the first sample of each pass after the first (what the pass started with). */
  private readonly passStarts: number[] = [];
  private lastIteration = 0;

  constructor(
    private readonly policy: MigrationPolicy,
    private readonly allowed: PolicyAllowance,
    /** Guest memory, bytes (for the completion timeout per GiB). */
    private readonly memoryBytes: number,
  ) {}

  /** The steps taken so far, each recorded before its action is returned (the job's `policy_steps`). */
  get steps(): readonly string[] {
    return this.tried;
  }

  /**
   * Takes one sample: the live estimate (ETA, verdict, phase) and what the
   * policy does now (usually nothing).
   */
  sample(s: LiveSample): { estimate: LiveEstimate; actions: PolicyAction[] } {
    if (s.iteration !== this.lastIteration) {
      this.lastIteration = s.iteration;
      if (s.iteration >= 2) this.passStarts.push(s.remainingBytes);
      if (this.passStarts.length > 16) this.passStarts.shift();
    }
    const estimate = liveEstimate(s, this.passStarts);
    return { estimate, actions: this.feed(s, estimate) };
  }

  /** The policy's response to sample `s` whose live estimate is `live`. */
  private feed(s: LiveSample, live: LiveEstimate): PolicyAction[] {
    if (this.done || s.postcopy) return [];
    const out: PolicyAction[] = [];
    this.initialDowntimeMs ??= s.downtimeLimitMs;
    if (s.remainingBytes < this.bestRemaining * 0.98) {
      this.bestRemaining = s.remainingBytes;
      this.bestAtMs = s.atMs;
    }
    // The completion timeout is a bound the user set: it holds whatever the mode.
    const timeout = this.policy.completionTimeoutPerGiBS * Math.max(1, this.memoryBytes / (1024 * MIB)) * 1000;
    if (this.policy.completionTimeoutPerGiBS > 0 && !this.completionFired && s.atMs >= timeout) {
      this.completionFired = true;
      return [this.completion(s, timeout)];
    }
    if (this.policy.mode === 'none') return [];
    const stalled = this.policy.progressTimeoutS > 0 && s.atMs - this.bestAtMs >= this.policy.progressTimeoutS * 1000;
    const notConverging = (live.converging === false && s.iteration >= 3) || stalled;
    if (!notConverging) return out;
    const why = describe(s, stalled ? `data remaining has not shrunk for ${Math.round((s.atMs - this.bestAtMs) / 1000)} s` : undefined);
    if (!this.warned) {
      this.warned = true;
      out.push({ kind: 'warn', message: `the migration is not converging: ${why}${this.policy.mode === 'warn' ? `; ${adviceLine(this.allowed, s, this.policy)}` : ''}` });
    }
    if (this.policy.mode !== 'auto') return out;
    // One step per pass (or per progress window when passes take long): let each step show its effect.
    const waited = s.iteration > this.lastStepIteration || s.atMs - this.lastStepAtMs >= Math.max(5000, this.policy.progressTimeoutS * 1000);
    if (!waited) return out;
    const step = this.nextStep(s, why);
    if (step) {
      this.lastStepIteration = s.iteration;
      this.lastStepAtMs = s.atMs;
      this.bestAtMs = s.atMs;
      out.push(step);
    }
    return out;
  }

  private nextStep(s: LiveSample, why: string): PolicyAction | undefined {
    const initial = this.initialDowntimeMs ?? s.downtimeLimitMs;
    const needed = Math.ceil((s.remainingBytes / Math.max(1, s.bandwidthBytesPerS)) * 1000 + SWITCHOVER_MS);
    // A higher limit helps only if the cap can hold what each pass leaves: else the ladder is skipped, and said so.
    if (this.downtimeStep < this.policy.downtimeSteps && s.downtimeLimitMs < this.policy.maxDowntimeMs && needed > this.policy.maxDowntimeMs * 2) {
      this.downtimeStep = this.policy.downtimeSteps;
      this.tried.push(`no higher downtime limit: the rest needs about ${needed} ms, far above the ${this.policy.maxDowntimeMs} ms cap`);
    }
    if (this.downtimeStep < this.policy.downtimeSteps && s.downtimeLimitMs < this.policy.maxDowntimeMs) {
      this.downtimeStep++;
      const linear = Math.round(initial + ((this.policy.maxDowntimeMs - initial) * this.downtimeStep) / this.policy.downtimeSteps);
      // Straight to what the rest needs when that is within the cap; else the next step of the ladder.
      const ms = Math.min(this.policy.maxDowntimeMs, needed <= this.policy.maxDowntimeMs ? Math.max(needed, s.downtimeLimitMs + 1) : linear);
      if (needed <= this.policy.maxDowntimeMs) this.downtimeStep = this.policy.downtimeSteps;
      this.tried.push(`downtime limit raised to ${ms} ms`);
      return { kind: 'set-downtime', ms, message: `raising the downtime limit from ${s.downtimeLimitMs} to ${ms} ms (cap ${this.policy.maxDowntimeMs} ms): ${why}` };
    }
    if (this.allowed.throttle && !this.throttled) {
      this.throttled = true;
      this.tried.push('vCPU throttling made steeper');
      return { kind: 'throttle-harder', incrementPercent: 20, message: `throttling the guest's vCPUs harder (currently ${s.throttlePercent} % taken, +20 % per pass from now): ${why}` };
    }
    if (this.allowed.postcopy && !this.postcopyAsked) {
      this.postcopyAsked = true;
      this.tried.push('switched to post-copy');
      this.done = true;
      return { kind: 'start-postcopy', message: `switching to post-copy: ${why}; until the rest of its memory has arrived, losing the source host or the link loses the guest` };
    }
    this.done = true;
    const tried = this.tried.length ? `tried: ${this.tried.join('; ')}` : 'nothing it was allowed to try';
    return { kind: 'abort', message: `the migration did not converge (${why}); the policy ${tried}; the guest keeps running on the source. ${adviceLine(this.allowed, s, this.policy)}` };
  }

  private completion(s: LiveSample, timeoutMs: number): PolicyAction {
    const after = `the completion timeout (${this.policy.completionTimeoutPerGiBS} s per GiB: ${Math.round(timeoutMs / 1000)} s) expired with ${(s.remainingBytes / MIB).toFixed(1)} MiB remaining`;
    this.done = true;
    this.tried.push(`completion timeout expired (action ${this.policy.completionAction})`);
    if (this.policy.completionAction === 'postcopy') {
      if (this.allowed.postcopy) return { kind: 'start-postcopy', message: `${after}: switching to post-copy` };
      return { kind: 'abort', message: `${after}; its action is post-copy, but the migration was started without --postcopy (POSTCOPY): aborting; the guest keeps running on the source` };
    }
    if (this.policy.completionAction === 'pause') return { kind: 'pause', message: `${after}: pausing the guest so the copy can finish (it resumes on the destination)` };
    return { kind: 'abort', message: `${after}: aborting; the guest keeps running on the source` };
  }
}

/** The numbers behind a verdict, in one clause. */
function describe(s: LiveSample, extra?: string): string {
  const parts = [`the guest dirties ${(s.dirtyBytesPerS / MIB).toFixed(1)} MiB/s, the stream moves ${(s.bandwidthBytesPerS / MIB).toFixed(1)} MiB/s, ${(s.remainingBytes / MIB).toFixed(1)} MiB remain after ${s.iteration} passes (downtime limit ${s.downtimeLimitMs} ms)`];
  if (extra) parts.push(extra);
  return parts.join('; ');
}

/** What the user could allow, given what was allowed. */
function adviceLine(allowed: PolicyAllowance, s: LiveSample, policy: MigrationPolicy): string {
  const needed = Math.ceil((s.remainingBytes / Math.max(1, s.bandwidthBytesPerS)) * 1000 + SWITCHOVER_MS);
  const options: string[] = [];
  if (!allowed.postcopy) options.push('--postcopy (with --policy auto, or migrate-postcopy)');
  if (!allowed.throttle) options.push('--auto-converge');
  options.push(`a downtime of about ${needed} ms (--max-downtime ${needed} with --policy auto, or migrate-setmaxdowntime)`);
  if (policy.mode !== 'auto') options.push('--policy auto');
  return `what could finish it: ${options.join(', or ')}`;
}

/** The CLI option of each policy field, for messages. */
export const POLICY_OPTIONS: Record<keyof MigrationPolicy, string> = {
  mode: '--policy',
  maxDowntimeMs: '--max-downtime',
  downtimeSteps: '--downtime-steps',
  progressTimeoutS: '--progress-timeout',
  completionTimeoutPerGiBS: '--completion-timeout-per-gib',
  completionAction: '--completion-action',
};

const POLICY_BOUNDS: Record<'maxDowntimeMs' | 'downtimeSteps' | 'progressTimeoutS' | 'completionTimeoutPerGiBS', { min: number; max: number; unit: string }> = {
  maxDowntimeMs: { min: 1, max: 2_000_000, unit: 'ms' },
  downtimeSteps: { min: 1, max: 100, unit: 'steps' },
  progressTimeoutS: { min: 0, max: 86_400, unit: 's' },
  completionTimeoutPerGiBS: { min: 0, max: 86_400, unit: 's per GiB' },
};

/**
 * A request's policy (any subset of fields, untrusted) over `base` (the
 * host's default).
 *
 * @throws FerryError `invalid_arg` naming the option at fault
 */
export function resolvePolicy(raw: unknown, base: MigrationPolicy): MigrationPolicy {
  if (raw === undefined || raw === null) return base;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new FerryError('invalid_arg', 'the migration policy must be an object of policy settings');
  const r = raw as Record<string, unknown>;
  const out: MigrationPolicy = { ...base };
  for (const key of Object.keys(r)) {
    if (!Object.hasOwn(POLICY_OPTIONS, key)) throw new FerryError('invalid_arg', `unknown migration policy setting '${key.slice(0, 60)}'`);
  }
  if (r.mode !== undefined) {
    if (r.mode !== 'none' && r.mode !== 'warn' && r.mode !== 'auto') throw new FerryError('invalid_arg', `${POLICY_OPTIONS.mode} must be none, warn or auto`);
    out.mode = r.mode;
  }
  if (r.completionAction !== undefined) {
    if (r.completionAction !== 'abort' && r.completionAction !== 'postcopy' && r.completionAction !== 'pause') throw new FerryError('invalid_arg', `${POLICY_OPTIONS.completionAction} must be abort, postcopy or pause`);
    out.completionAction = r.completionAction;
  }
  for (const [key, b] of Object.entries(POLICY_BOUNDS) as Array<[keyof typeof POLICY_BOUNDS, (typeof POLICY_BOUNDS)[keyof typeof POLICY_BOUNDS]]>) {
    const v = r[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < b.min || v > b.max) throw new FerryError('invalid_arg', `${POLICY_OPTIONS[key]} must be a whole number from ${b.min} to ${b.max} (${b.unit})`);
    out[key] = v;
  }
  return out;
}
