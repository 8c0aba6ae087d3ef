import { describe, expect, it } from 'vitest';
import { ConvergenceWatch, DEFAULT_POLICY, liveEstimate, resolvePolicy, type LiveSample, type MigrationPolicy, type PolicyAction } from '../../src/migration/convergence.js';
import type { FerryError } from '../../src/errors/index.js';

const MiB = 1024 * 1024;

/** A sample of a migration that moves `bw` MiB/s while the guest dirties `dirty` MiB/s, `rem` MiB remaining, pass `it`, at second `t`. */
function sample(t: number, it: number, rem: number, bw: number, dirty: number, extra: Partial<LiveSample> = {}): LiveSample {
  return { atMs: t * 1000, iteration: it, remainingBytes: rem * MiB, totalBytes: 256 * MiB, bandwidthBytesPerS: bw * MiB, dirtyBytesPerS: dirty * MiB, downtimeLimitMs: 300, throttlePercent: 0, postcopy: false, ...extra };
}

/** Feeds a stalled migration (`rem` MiB left each pass) pass by pass; returns every action, in order. */
function runStalled(policy: MigrationPolicy, allowed: { throttle: boolean; postcopy: boolean }, passes: number, bw = 16, dirty = 60, rem = 64): PolicyAction[] {
  const w = new ConvergenceWatch(policy, allowed, 256 * MiB);
  const out: PolicyAction[] = [];
  let downtime = 300;
  for (let i = 1; i <= passes; i++) {
    for (const a of w.sample(sample(i * 4, i, rem, bw, dirty, { downtimeLimitMs: downtime })).actions) {
      out.push(a);
      if (a.kind === 'set-downtime') downtime = a.ms;
    }
  }
  return out;
}

describe('liveEstimate: the forecast model fed with live figures', () => {
  it('a migration whose stream outruns the guest converges, with an ETA; the phase names the pass', () => {
    const e = liveEstimate(sample(3, 3, 40, 100, 20));
    expect(e.converging).toBe(true);
    expect(e.etaMs).toBeGreaterThan(0);
    expect(e.phase).toBe('iteration 3');
  });

  it('a guest dirtying faster than the stream moves: not converging, and no ETA rather than a wrong one', () => {
    const e = liveEstimate(sample(10, 4, 64, 16, 60));
    expect(e.converging).toBe(false);
    expect(e.etaMs).toBeNull();
  });

  it('during the first pass the verdict is unknown but the time to finish the pass is known; post-copy has its own ETA', () => {
    const first = liveEstimate(sample(1, 1, 200, 100, 0));
    expect(first).toMatchObject({ converging: 'unknown', phase: 'first pass' });
    expect(first.etaMs).toBe(2000);
    expect(liveEstimate(sample(5, 3, 50, 100, 60, { postcopy: true }))).toMatchObject({ converging: true, phase: 'post-copy', etaMs: 500 });
  });
});

describe('liveEstimate with what each pass started with', () => {
  it('passes that keep starting at the same size are not converging, however close QEMU\'s dirty rate is to the bandwidth', () => {
    // QEMU reads a working set rewritten within a pass as working set / pass time: just under the bandwidth.
    const w = new ConvergenceWatch(DEFAULT_POLICY, { throttle: false, postcopy: false }, 256 * MiB);
    const verdicts: Array<boolean | 'unknown'> = [];
    for (let pass = 2; pass <= 8; pass++) {
      // Each pass starts near 61 MiB and drains; samples at the start, middle and end of the pass.
      for (const rem of [61, 30, 3]) {
        const e = w.sample(sample(pass * 4 + (61 - rem) / 16, pass, rem, 48, 47)).estimate;
        verdicts.push(e.converging);
        if (pass >= 3) expect(e.etaMs, `pass ${pass}, ${rem} MiB left`).toBeNull();
      }
    }
    expect(verdicts.slice(3).every((v) => v === false)).toBe(true);
  });

  it('passes that start smaller each time converge, with an ETA that adds the passes still to come', () => {
    const starts = [128 * MiB, 64 * MiB, 32 * MiB];
    // One shrinking pass alone could be noise: unknown, no ETA.
    expect(liveEstimate(sample(5, 3, 32, 10, 4), starts.slice(1))).toMatchObject({ converging: 'unknown', etaMs: null });
    // 32 MiB left at 100 MiB/s; then 16, 8, 4... until it fits the 30 MiB threshold: only this pass remains.
    expect(liveEstimate(sample(5, 3, 32, 100, 40), starts)).toMatchObject({ converging: true });
    const e = liveEstimate(sample(5, 3, 32, 10, 4), starts);
    // At 10 MiB/s the threshold is 3 MiB: this pass (3.2 s), then 16, 8 and 4 MiB (2.8 s) before 2 MiB fits.
    expect(e.converging).toBe(true);
    expect(e.etaMs).toBeGreaterThan(5900);
    expect(e.etaMs).toBeLessThan(6200);
  });
});

describe('ConvergenceWatch: the policy', () => {
  it('none: never acts', () => {
    expect(runStalled({ ...DEFAULT_POLICY, mode: 'none' }, { throttle: true, postcopy: true }, 10)).toEqual([]);
  });

  it('warn (the default): one warning with the numbers and what would help, nothing else', () => {
    const acts = runStalled(DEFAULT_POLICY, { throttle: false, postcopy: false }, 10);
    expect(acts.map((a) => a.kind)).toEqual(['warn']);
    expect(acts[0]!.message).toMatch(/not converging.*dirties 60\.0 MiB\/s.*moves 16\.0 MiB\/s/);
    expect(acts[0]!.message).toMatch(/--postcopy.*--auto-converge/);
  });

  it('a converging migration draws no warning', () => {
    const w = new ConvergenceWatch(DEFAULT_POLICY, { throttle: false, postcopy: false }, 256 * MiB);
    const acts = [1, 2, 3, 4].flatMap((i) => w.sample(sample(i, i, 64 / 2 ** i, 100, 20)).actions);
    expect(acts).toEqual([]);
  });

  it('auto: raises the downtime limit straight to what the rest needs when that is within the cap', () => {
    // 24 MiB left at 16 MiB/s needs about 1.5 s: within the 2 s cap.
    const w = new ConvergenceWatch({ ...DEFAULT_POLICY, mode: 'auto' }, { throttle: false, postcopy: false }, 256 * MiB);
    const acts = [1, 2, 3].flatMap((i) => w.sample(sample(i * 2, i, 24, 16, 30)).actions);
    const raise = acts.find((a) => a.kind === 'set-downtime');
    expect(raise?.kind === 'set-downtime' && raise.ms).toBeGreaterThanOrEqual(1500);
    expect(raise?.kind === 'set-downtime' && raise.ms).toBeLessThanOrEqual(2000);
  });

  it('auto: escalates one step per pass in order (throttle, post-copy) when the downtime cannot help, and stops after post-copy', () => {
    const acts = runStalled({ ...DEFAULT_POLICY, mode: 'auto' }, { throttle: true, postcopy: true }, 12);
    expect(acts.map((a) => a.kind)).toEqual(['warn', 'throttle-harder', 'start-postcopy']);
  });

  it('auto with nothing allowed that could help: aborts, saying what was tried and what to allow', () => {
    const acts = runStalled({ ...DEFAULT_POLICY, mode: 'auto' }, { throttle: false, postcopy: false }, 12);
    expect(acts.map((a) => a.kind)).toEqual(['warn', 'abort']);
    expect(acts[1]!.message).toMatch(/did not converge.*keeps running on the source.*--postcopy.*--auto-converge/);
  });

  it('auto with a reachable cap walks the downtime ladder first, then aborts if that did not help', () => {
    // 40 MiB left at 16 MiB/s needs 2.5 s: above the 2 s cap but not far above it, so the ladder is worth climbing.
    const acts = runStalled({ ...DEFAULT_POLICY, mode: 'auto', downtimeSteps: 3 }, { throttle: false, postcopy: false }, 12, 16, 60, 40).filter((a) => a.kind !== 'warn');
    const ms = acts.filter((a) => a.kind === 'set-downtime').map((a) => (a.kind === 'set-downtime' ? a.ms : 0));
    expect(ms.length).toBeGreaterThan(0);
    expect(ms).toEqual([...ms].sort((a, b) => a - b));
    expect(Math.max(...ms)).toBeLessThanOrEqual(2000);
    expect(acts.at(-1)?.kind).toBe('abort');
  });

  it('a stall without a model verdict (data remaining not shrinking for the progress timeout) also counts', () => {
    const w = new ConvergenceWatch({ ...DEFAULT_POLICY, progressTimeoutS: 5 }, { throttle: false, postcopy: false }, 256 * MiB);
    // Passes not yet counted (iteration 1 throughout): only the clock shows the stall.
    const acts = [0, 2, 4, 6].flatMap((t) => w.sample(sample(t, 1, 100, 16, 0)).actions);
    expect(acts.map((a) => a.kind)).toEqual(['warn']);
    expect(acts[0]!.message).toMatch(/has not shrunk for [56] s/);
  });

  it('completion timeout per GiB: abort, post-copy (only with POSTCOPY) or pause, once, at seconds x GiB', () => {
    const at = (action: MigrationPolicy['completionAction'], postcopy: boolean) => {
      // 2 GiB of memory, 10 s per GiB: 20 s.
      const w = new ConvergenceWatch({ ...DEFAULT_POLICY, mode: 'none', completionTimeoutPerGiBS: 10, completionAction: action }, { throttle: false, postcopy }, 2048 * MiB);
      // mode none: the completion timeout still acts (it is a bound the user set), and only once.
      return [5, 19, 20, 25].flatMap((t) => w.sample(sample(t, 2, 50, 100, 20)).actions);
    };
    expect(at('abort', false).map((a) => a.kind)).toEqual(['abort']);
    expect(at('postcopy', true).map((a) => a.kind)).toEqual(['start-postcopy']);
    expect(at('postcopy', false).map((a) => a.kind)).toEqual(['abort']);
    expect(at('pause', false).map((a) => a.kind)).toEqual(['pause']);
  });
});

describe('resolvePolicy', () => {
  it('takes any subset over the host default and checks each value, naming the CLI option', () => {
    expect(resolvePolicy(undefined, DEFAULT_POLICY)).toEqual(DEFAULT_POLICY);
    expect(resolvePolicy({ mode: 'auto', maxDowntimeMs: 800 }, DEFAULT_POLICY)).toEqual({ ...DEFAULT_POLICY, mode: 'auto', maxDowntimeMs: 800 });
    const bad = (raw: unknown): FerryError => {
      try {
        resolvePolicy(raw, DEFAULT_POLICY);
      } catch (err) {
        return err as FerryError;
      }
      throw new Error('accepted');
    };
    expect(bad({ mode: 'always' }).message).toContain('--policy');
    expect(bad({ maxDowntimeMs: 0 }).message).toContain('--max-downtime');
    expect(bad({ completionAction: 'explode' }).message).toContain('--completion-action');
    expect(bad({ constructor: 1 }).code).toBe('invalid_arg');
    expect(bad([1]).code).toBe('invalid_arg');
  });
});
