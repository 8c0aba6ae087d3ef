/**
 * The convergence forecast (src/migration/forecast.ts) as a user relies on
 * it: relations between the rates and the verdict, hand-computed cases
 * with the constants the module exports, the advice for a migration that
 * will not finish, and finite answers for extreme inputs. Also the two
 * measuring helpers that feed it and need no QEMU: the resident guest RAM
 * read from a hand-written /proc/PID/smaps, and the bandwidth probe over
 * loopback.
 */
import { createConnection, createServer } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  AUTO_CONVERGE_DEFAULTS,
  DEFAULT_SETUP_MS,
  MAX_PASSES,
  PAGE_BYTES,
  STREAM_CEILING_BYTES_PER_S,
  SWITCHOVER_MS,
  ZERO_PAGE_WIRE_BYTES,
  forecastMigration,
  type Forecast,
  type ForecastInput,
} from '../../src/migration/forecast.js';
import { PROBE_MAX_BYTES, listenForProbe, sendProbe } from '../../src/migration/bandwidth-probe.js';
import { PortReservations } from '../../src/migration/ports.js';
import { parseGuestRamResidentKiB } from '../../src/qemu/guest-ram.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** A guest of `mem` bytes, all touched, rewriting `ws` at `R`, over a stream of `B`, 300 ms downtime limit. */
function input(o: Partial<ForecastInput> & { R: number; B: number }): ForecastInput {
  const { R, B, ...rest } = o;
  return { memoryBytes: GiB, touchedBytes: GiB, dirtyBytesPerS: R, bandwidthBytesPerS: B, downtimeLimitMs: 300, ...rest };
}

/** Every number of a forecast (its advice's too) is finite. */
function expectFinite(f: Forecast): void {
  const nums: Array<[string, number | undefined]> = [
    ['iterations', f.iterations],
    ['total_ms', f.total_ms],
    ['downtime_ms', f.downtime_ms],
    ['data_bytes', f.data_bytes],
    ['postcopy_window_ms', f.postcopy_window_ms],
    ['throttle_percent', f.throttle_percent],
    ...f.passes.flatMap((p, i): Array<[string, number]> => [[`passes[${i}].bytes`, p.bytes], [`passes[${i}].ms`, p.ms]]),
    ...f.advice.flatMap((a, i): Array<[string, number | undefined]> => [[`advice[${i}].total_ms`, a.total_ms], [`advice[${i}].downtime_ms`, a.downtime_ms]]),
  ];
  for (const [k, v] of nums) if (v !== undefined) expect(Number.isFinite(v), `${k} = ${v}`).toBe(true);
  expect(f.passes.length).toBeLessThanOrEqual(MAX_PASSES);
  expect(f.reason).not.toMatch(/NaN|Infinity/);
}

describe('forecastMigration: the hand-computed case', () => {
  // Memory 100 MiB, all touched; working set 10 MiB rewritten at 5 MiB/s; 50 MiB/s; 100 ms downtime limit.
  // Pass 1: 100 MiB in 2 s; the guest dirties min(10, 5 x 2) = 10 MiB, above the 50 x 0.1 = 5 MiB threshold.
  // Pass 2: 10 MiB in 0.2 s; dirtied 5 x 0.2 = 1 MiB <= 5 MiB: stop-copy of 1 MiB (20 ms) + the switch-over.
  const i: ForecastInput = { memoryBytes: 100 * MiB, touchedBytes: 100 * MiB, workingSetBytes: 10 * MiB, dirtyBytesPerS: 5 * MiB, bandwidthBytesPerS: 50 * MiB, downtimeLimitMs: 100 };
  const f = forecastMigration(i);

  it('converges in plain pre-copy: two passes and the stop-copy', () => {
    expect(f.converges).toBe(true);
    expect(f.mode).toBe('pre-copy');
    expect(f.passes.map((p) => ({ bytes: p.bytes, ms: p.ms, throttlePercent: p.throttlePercent }))).toEqual([
      { bytes: 100 * MiB, ms: 2000, throttlePercent: 0 },
      { bytes: 10 * MiB, ms: 200, throttlePercent: 0 },
    ]);
    expect(f.iterations).toBe(3);
    expect(f.advice).toEqual([]);
    expect(f.throttle_percent).toBeUndefined();
    expect(f.postcopy_window_ms).toBeUndefined();
  });

  it('downtime = the last 1 MiB at the stream ceiling (QEMU lifts the cap for the final copy) + the switch-over; total = setup + passes + downtime; data = passes + the rest', () => {
    // The rest is at least the 1 MiB dirtied in pass 2 and at most the 5 MiB threshold (QEMU checks between rounds, so part of the pass may still be pending).
    expect(f.downtime_ms).toBeGreaterThanOrEqual(Math.round((MiB / STREAM_CEILING_BYTES_PER_S) * 1000 + SWITCHOVER_MS));
    expect(f.downtime_ms).toBeLessThanOrEqual(Math.round(((5 * MiB) / STREAM_CEILING_BYTES_PER_S) * 1000 + SWITCHOVER_MS));
    expect(f.total_ms).toBe(Math.round(DEFAULT_SETUP_MS + 2000 + 200 + f.downtime_ms));
    expect(f.data_bytes).toBe(100 * MiB + 10 * MiB + 1 * MiB);
  });

  it('total and data are the sums of the passes in general (setup given)', () => {
    const g = forecastMigration({ ...i, setupMs: 1234 });
    expect(g.total_ms).toBe(Math.round(1234 + g.passes.reduce((s, p) => s + p.ms, 0) + g.downtime_ms));
    expect(g.total_ms - f.total_ms).toBe(1234 - DEFAULT_SETUP_MS);
  });

  it('the reason has the numbers: both rates and the limit', () => {
    expect(f.reason).toContain('5.0 MiB/s');
    expect(f.reason).toContain('50.0 MiB/s');
    expect(f.reason).toContain('100 ms');
  });

  it('post-copy of the same guest: one pass, a window of what it dirtied meanwhile at B', () => {
    // First pass 2 s; dirtied min(10, 5 x 2) = 10 MiB, sent in post-copy at 50 MiB/s: 200 ms.
    const p = forecastMigration({ ...i, postcopy: true });
    expect(p).toMatchObject({ converges: true, mode: 'post-copy', iterations: 1, downtime_ms: SWITCHOVER_MS, postcopy_window_ms: 200, data_bytes: 110 * MiB, advice: [] });
    expect(p.total_ms).toBe(DEFAULT_SETUP_MS + 2000 + SWITCHOVER_MS + 200);
  });
});

describe('forecastMigration: relations', () => {
  it('a guest dirtying less than the bandwidth converges, with more passes the closer the rates are', () => {
    const B = 100 * MiB;
    let prev = 0;
    const seen: string[] = [];
    for (const ratio of [0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9]) {
      const f = forecastMigration(input({ R: ratio * B, B }));
      seen.push(`${ratio}:${f.iterations}`);
      expect(f.converges, `R = ${ratio} B: ${f.reason}`).toBe(true);
      expect(f.mode).toBe('pre-copy');
      expect(f.advice).toEqual([]);
      expect(f.iterations, seen.join(' ')).toBeGreaterThanOrEqual(prev);
      expect(f.downtime_ms).toBeLessThanOrEqual(300 + SWITCHOVER_MS);
      prev = f.iterations;
    }
    // And strictly more between the ends of the range.
    expect(forecastMigration(input({ R: 0.9 * B, B })).iterations).toBeGreaterThan(forecastMigration(input({ R: 0.3 * B, B })).iterations);
  });

  it('a guest dirtying at least the bandwidth, with a working set above B x downtime, does not converge; the reason names both rates', () => {
    for (const [R, B, W] of [
      [40 * MiB, 4 * MiB, 64 * MiB],
      [10 * MiB, 10 * MiB, 64 * MiB],
      [200 * MiB, 100 * MiB, 512 * MiB],
      [100 * MiB, 99 * MiB, 30 * MiB],
    ] as const) {
      expect(W).toBeGreaterThan(B * 0.3);
      const f = forecastMigration(input({ R, B, workingSetBytes: W, touchedBytes: 512 * MiB }));
      expect(f.converges, `R ${R / MiB} B ${B / MiB} W ${W / MiB}: ${f.reason}`).toBe(false);
      expect(f.mode).toBe('pre-copy');
      expect(f.reason).toContain(`${(R / MiB).toFixed(1)} MiB/s`);
      expect(f.reason).toContain(`${(B / MiB).toFixed(1)} MiB/s`);
      expect(f.reason).toContain('300 ms');
      expect(f.advice.length).toBeGreaterThan(0);
      expect(f.downtime_ms, 'what the stop-copy would take is above the limit').toBeGreaterThan(300);
    }
  });

  it('a working set that fits in the downtime converges after the first pass, even dirtied at 50x the bandwidth', () => {
    const B = 10 * MiB;
    // Threshold: 10 MiB/s x 300 ms = 3 MiB; a 2 MiB working set rewritten at 500 MiB/s.
    const f = forecastMigration(input({ R: 500 * MiB, B, workingSetBytes: 2 * MiB, memoryBytes: 64 * MiB, touchedBytes: 64 * MiB }));
    expect(f.converges, f.reason).toBe(true);
    expect(f.passes).toHaveLength(1);
    expect(f.iterations).toBe(2);
    // The stop-copy sends the whole working set, 2 MiB, at the stream ceiling: QEMU lifts the cap for it.
    expect(f.downtime_ms).toBe(Math.round(((2 * MiB) / STREAM_CEILING_BYTES_PER_S) * 1000 + SWITCHOVER_MS));
    expect(f.data_bytes).toBe(66 * MiB);
    // One pass and the stop-copy: the reason must not speak of 'after 2 passes'.
    expect(f.reason).toMatch(/first pass fits in the 300 ms downtime/);
  });

  it('untouched memory costs ZERO_PAGE_WIRE_BYTES per page in the first pass', () => {
    const idle = forecastMigration({ memoryBytes: GiB, touchedBytes: 0, dirtyBytesPerS: 0, bandwidthBytesPerS: 10 * MiB, downtimeLimitMs: 300 });
    expect(idle.passes[0]!.bytes).toBe((GiB / PAGE_BYTES) * ZERO_PAGE_WIRE_BYTES);
    expect(idle.converges).toBe(true);
    expect(idle.iterations).toBe(1);
    const part = forecastMigration({ memoryBytes: GiB, touchedBytes: 100 * MiB, dirtyBytesPerS: 0, bandwidthBytesPerS: 10 * MiB, downtimeLimitMs: 300 });
    expect(part.passes[0]!.bytes).toBe(100 * MiB + ((GiB - 100 * MiB) / PAGE_BYTES) * ZERO_PAGE_WIRE_BYTES);
    // 100 MiB at 10 MiB/s is 10 s; the zero pages add about 0.2 s, not 92 s.
    expect(part.passes[0]!.ms).toBeGreaterThan(10_000);
    expect(part.passes[0]!.ms).toBeLessThan(10_300);
    // More touched than there is memory counts as all of it.
    const over = forecastMigration({ memoryBytes: 64 * MiB, touchedBytes: 128 * MiB, dirtyBytesPerS: 0, bandwidthBytesPerS: 10 * MiB, downtimeLimitMs: 300 });
    expect(over.passes[0]!.bytes).toBe(64 * MiB);
  });

  it('a guest that dirties nothing: one pass, the switch-over as downtime, no stop-copy data', () => {
    const f = forecastMigration(input({ R: 0, B: 100 * MiB }));
    expect(f).toMatchObject({ converges: true, mode: 'pre-copy', iterations: 1, downtime_ms: SWITCHOVER_MS, data_bytes: GiB, advice: [] });
    expect(f.total_ms).toBe(DEFAULT_SETUP_MS + 10_240 + SWITCHOVER_MS);
  });

  it('auto-converge converges where plain pre-copy stalls, and says how far it throttled', () => {
    for (const [R, B] of [
      [6 * MiB, 5 * MiB],
      [12 * MiB, 8 * MiB],
      [40 * MiB, 4 * MiB],
    ] as const) {
      const base = input({ R, B, memoryBytes: 256 * MiB, touchedBytes: 100 * MiB, workingSetBytes: 64 * MiB });
      const plain = forecastMigration(base);
      expect(plain.converges, `plain, R ${R / MiB} B ${B / MiB}`).toBe(false);
      const ac = forecastMigration({ ...base, autoConverge: {} });
      expect(ac.converges, `auto-converge, R ${R / MiB} B ${B / MiB}: ${ac.reason}`).toBe(true);
      expect(ac.mode).toBe('auto-converge');
      expect(ac.throttle_percent).toBeGreaterThanOrEqual(AUTO_CONVERGE_DEFAULTS.initial);
      expect(ac.throttle_percent).toBeLessThanOrEqual(AUTO_CONVERGE_DEFAULTS.max);
      // The throttle only grows, starts at the initial step, and the reason says what the vCPUs keep.
      const steps = ac.passes.map((p) => p.throttlePercent);
      expect(steps).toEqual([...steps].sort((a, b) => a - b));
      expect(steps.find((p) => p > 0)).toBe(AUTO_CONVERGE_DEFAULTS.initial);
      expect(steps.at(-1)).toBe(ac.throttle_percent);
      expect(ac.reason).toContain(`throttled to ${100 - ac.throttle_percent!} %`);
      expect(ac.advice).toEqual([]);
      // A faster first step reaches the switch-over no later.
      const eager = forecastMigration({ ...base, autoConverge: { initial: 50, increment: 25 } });
      expect(eager.converges).toBe(true);
      expect(eager.total_ms).toBeLessThanOrEqual(ac.total_ms);
    }
  });

  it("auto-converge steps the throttle as QEMU 7.2 does: every second high-dirty period (migration_trigger_throttle resets its count)", () => {
    // QEMU, migration/ram.c migration_trigger_throttle(): if (dirtied > transferred x 50 % && ++dirty_rate_high_cnt >= 2)
    // { dirty_rate_high_cnt = 0; mig_throttle_guest_down(); }; the count is not reset by a low period.
    // A 64 MiB working set rewritten at 40 MiB/s over 4 MiB/s: every pass is a high-dirty one (>= 1 s each), so the
    // throttle starts after pass 2 and then steps after every second pass: 0 0 20 20 30 30 40 40 ...
    const f = forecastMigration(input({ R: 40 * MiB, B: 4 * MiB, memoryBytes: 256 * MiB, touchedBytes: 100 * MiB, workingSetBytes: 64 * MiB, autoConverge: {} }));
    expect(f.passes.slice(0, 8).map((p) => p.throttlePercent)).toEqual([0, 0, 20, 20, 30, 30, 40, 40]);
  });

  it('post-copy always converges, with a window of what the guest dirtied during the first pass, sent at B', () => {
    for (const [R, B, W] of [
      [40 * MiB, 4 * MiB, 64 * MiB],
      [1000 * MiB, 1 * MiB, 512 * MiB],
      [1 * MiB, 100 * MiB, 64 * MiB],
      [0, 10 * MiB, 64 * MiB],
    ] as const) {
      const i = input({ R, B, workingSetBytes: W, postcopy: true });
      const f = forecastMigration(i);
      expect(f.converges).toBe(true);
      expect(f.mode).toBe('post-copy');
      expect(f.advice).toEqual([]);
      const firstS = f.passes[0]!.bytes / B;
      const dirtied = Math.min(W, R * firstS);
      expect(f.postcopy_window_ms).toBe(Math.round((dirtied / B) * 1000));
      expect(f.downtime_ms).toBe(SWITCHOVER_MS);
      expect(f.data_bytes).toBe(Math.round(f.passes[0]!.bytes + dirtied));
    }
  });

  it('advice for one that will not finish: the downtime it needs, auto-converge, post-copy with its window, each with a cost', () => {
    // 256 MiB guest, 100 MiB touched, 64 MiB rewritten at 40 MiB/s, 4 MiB/s, 300 ms: the rest stays at 64 MiB = 16 s at 4 MiB/s.
    const i = input({ R: 40 * MiB, B: 4 * MiB, memoryBytes: 256 * MiB, touchedBytes: 100 * MiB, workingSetBytes: 64 * MiB });
    const f = forecastMigration(i);
    expect(f.converges).toBe(false);
    expect(f.advice).toHaveLength(3);
    const [down, ac, pc] = f.advice as [NonNullable<Forecast['advice'][0]>, NonNullable<Forecast['advice'][0]>, NonNullable<Forecast['advice'][0]>];
    const needed = 16_000 + SWITCHOVER_MS;
    expect(down.action).toContain(`migrate-setmaxdowntime DOMAIN ${needed}`);
    expect(down.cost).toMatch(/stops for about \d+ ms/);
    // The advised limit does make it converge, with about that downtime.
    const withIt = forecastMigration({ ...i, downtimeLimitMs: needed });
    expect(withIt.converges, withIt.reason).toBe(true);
    expect(down.downtime_ms).toBe(withIt.downtime_ms);
    expect(down.total_ms).toBe(withIt.total_ms);

    expect(ac.action).toMatch(/--auto-converge/);
    expect(ac.cost).toMatch(/throttled, up to \d+ %/);
    const acF = forecastMigration({ ...i, autoConverge: {} });
    expect(ac.total_ms).toBe(acF.total_ms);
    expect(ac.downtime_ms).toBe(acF.downtime_ms);

    expect(pc.action).toMatch(/--postcopy/);
    const pcF = forecastMigration({ ...i, postcopy: true });
    expect(pcF.postcopy_window_ms).toBe(16_000);
    expect(pc.cost).toContain(`${(16_000 / 1000).toFixed(1)} s`);
    expect(pc.cost).toMatch(/losing the source host or the link then loses the guest/);
    expect(pc.total_ms).toBe(pcF.total_ms);
    expect(pc.downtime_ms).toBe(SWITCHOVER_MS);
    for (const a of f.advice) {
      expect(a.effect.length).toBeGreaterThan(0);
      expect(a.cost.length).toBeGreaterThan(0);
    }
  });

  it('auto-converge is advised only when it would converge, and not when already asked for', () => {
    // A throttle cannot help when even a 1 %-speed guest dirties more than the stream moves: R x 1 % > B.
    const i = input({ R: 2000 * MiB, B: 4 * MiB, memoryBytes: 256 * MiB, touchedBytes: 256 * MiB, workingSetBytes: 64 * MiB });
    const f = forecastMigration(i);
    expect(f.converges).toBe(false);
    expect(forecastMigration({ ...i, autoConverge: {} }).converges).toBe(false);
    expect(f.advice.map((a) => a.action).join('\n')).not.toMatch(/--auto-converge/);
    expect(f.advice.some((a) => /--postcopy/.test(a.action))).toBe(true);
    expect(f.advice.some((a) => /migrate-setmaxdowntime/.test(a.action))).toBe(true);
    // Asked for and still not enough: advice without auto-converge, still the downtime and post-copy.
    const withAc = forecastMigration({ ...i, autoConverge: {} });
    expect(withAc.mode).toBe('auto-converge');
    expect(withAc.throttle_percent).toBe(AUTO_CONVERGE_DEFAULTS.max);
    expect(withAc.advice.map((a) => a.action).join('\n')).not.toMatch(/--auto-converge/);
    expect(withAc.advice.some((a) => /--postcopy/.test(a.action))).toBe(true);
  });

  it('no advice when it converges (pre-copy, auto-converge, post-copy)', () => {
    expect(forecastMigration(input({ R: 10 * MiB, B: 100 * MiB })).advice).toEqual([]);
    expect(forecastMigration(input({ R: 10 * MiB, B: 100 * MiB, autoConverge: {} })).advice).toEqual([]);
    expect(forecastMigration(input({ R: 400 * MiB, B: 100 * MiB, postcopy: true })).advice).toEqual([]);
  });
});

describe('forecastMigration: extreme inputs end, with finite numbers', () => {
  const cases: Array<[string, ForecastInput]> = [
    ['R = 0', input({ R: 0, B: 100 * MiB })],
    ['B = 0', input({ R: 10 * MiB, B: 0 })],
    ['B = 1 byte/s', input({ R: 10 * MiB, B: 1 })],
    ['B tiny, R = 0', input({ R: 0, B: 1 })],
    ['memory 0', { memoryBytes: 0, touchedBytes: 0, dirtyBytesPerS: 100 * MiB, bandwidthBytesPerS: 10 * MiB, downtimeLimitMs: 300 }],
    ['downtime limit 0', input({ R: 10 * MiB, B: 100 * MiB })],
    ['R just below B', input({ R: 99.9 * MiB, B: 100 * MiB })],
    ['R = 0.97 B (many passes)', input({ R: 97 * MiB, B: 100 * MiB, memoryBytes: 64 * GiB, touchedBytes: 64 * GiB })],
    ['huge memory, slow link', input({ R: 1e12, B: 1, memoryBytes: 2 ** 53, touchedBytes: 2 ** 53 })],
    ['huge rates', input({ R: 1e15, B: 1e15, memoryBytes: 1e18, touchedBytes: 1e18 })],
    ['huge everything with auto-converge', input({ R: 1e15, B: 1e6, memoryBytes: 1e18, touchedBytes: 1e18, autoConverge: { initial: 1, increment: 1 } })],
    ['huge everything with post-copy', input({ R: 1e15, B: 1, memoryBytes: 1e18, touchedBytes: 1e18, postcopy: true })],
    ['downtime limit huge', input({ R: 1e9, B: 1e6, downtimeLimitMs: 1e12 })],
  ];
  cases[5]![1].downtimeLimitMs = 0;
  for (const [name, i] of cases) {
    it(name, () => {
      for (const variant of [i, { ...i, autoConverge: {} }, { ...i, postcopy: true }]) {
        const f = forecastMigration(variant);
        expectFinite(f);
        expect(typeof f.converges).toBe('boolean');
        expect(f.iterations).toBeGreaterThanOrEqual(1);
        expect(f.total_ms).toBeGreaterThanOrEqual(0);
        expect(f.data_bytes).toBeGreaterThanOrEqual(0);
        if (f.converges) expect(f.advice).toEqual([]);
        else expect(f.advice.length).toBeGreaterThan(0);
      }
    });
  }

  it('memory 0 converges at once with only the switch-over', () => {
    const f = forecastMigration(cases[4]![1]);
    expect(f).toMatchObject({ converges: true, iterations: 1, data_bytes: 0, downtime_ms: SWITCHOVER_MS, total_ms: DEFAULT_SETUP_MS + SWITCHOVER_MS });
  });
});

describe('parseGuestRamResidentKiB on /proc/PID/smaps text', () => {
  /** One smaps entry as the kernel writes it (a subset of the fields, in the kernel's order). */
  const entry = (range: string, perms: string, path: string, sizeKiB: number, rssKiB: number): string =>
    [
      `${range} ${perms} 00000000 00:00 0${path ? `                          ${path}` : ''}`,
      `Size:           ${String(sizeKiB).padStart(8)} kB`,
      'KernelPageSize:        4 kB',
      'MMUPageSize:           4 kB',
      `Rss:            ${String(rssKiB).padStart(8)} kB`,
      `Pss:            ${String(rssKiB).padStart(8)} kB`,
      'Pss_Dirty:             0 kB',
      'Shared_Clean:          0 kB',
      'Shared_Dirty:          0 kB',
      'Private_Clean:         0 kB',
      `Private_Dirty:  ${String(rssKiB).padStart(8)} kB`,
      `Referenced:     ${String(rssKiB).padStart(8)} kB`,
      `Anonymous:      ${String(rssKiB).padStart(8)} kB`,
      'AnonHugePages:     2048 kB',
      'Swap:                  0 kB',
      'Locked:                0 kB',
      'THPeligible:    1',
      'VmFlags: rd wr mr mw me ac sd ',
    ].join('\n');

  /** As seen on this machine for `-m 262148k` under TCG: the RAM at memoryKiB + 4, the code buffer 1 GiB - 4 KiB, rwx. */
  const smaps = (memoryKiB: number, ramRss: number, tcgSize = 1048572): string =>
    [
      entry('55d0c8a00000-55d0c9145000', 'r-xp', '/usr/bin/qemu-system-x86_64', 7444, 6012),
      entry('55d0ca6b3000-55d0ca8f1000', 'rw-p', '[heap]', 2296, 1880),
      entry('7f72e7e00000-7f72f7e02000', 'rw-p', '', memoryKiB + 4, ramRss),
      entry('7f72f7e02000-7f72f7e03000', '---p', '', 4, 0),
      entry('7f72f8000000-7f72f8200000', 'rw-p', '', 2048, 132),
      entry('7f7300000000-7f733ffff000', 'rwxp', '', tcgSize, 2048),
      entry('7f7340000000-7f7340021000', 'rw-p', '', 132, 8),
      entry('7f73a0e00000-7f73a0e40000', 'rw-p', '', 256, 256),
      entry('7ffc1b6d2000-7ffc1b6f3000', 'rw-p', '[stack]', 132, 40),
      '',
    ].join('\n');

  it('the test guest (262148 KiB): the Rss of the RAM mapping', () => {
    expect(parseGuestRamResidentKiB(smaps(262148, 34824), 262148)).toBe(34824);
  });

  it('a guest whose RAM is just below the 1 GiB code buffer: the RAM mapping (closest in size) wins', () => {
    // 1 GiB - 2 MiB guest: the code buffer (1 GiB - 4 KiB) is within 4 MiB above it too.
    expect(parseGuestRamResidentKiB(smaps(1046528, 500_000), 1046528)).toBe(500_000);
    // 1 GiB guest: the code buffer is smaller than the guest and is not a candidate.
    expect(parseGuestRamResidentKiB(smaps(1048576, 777_777), 1048576)).toBe(777_777);
  });

  it('all of a fully touched guest', () => {
    expect(parseGuestRamResidentKiB(smaps(262148, 262152), 262148)).toBe(262152);
  });

  it('no mapping of the size: undefined (the forecast then assumes all memory touched)', () => {
    expect(parseGuestRamResidentKiB(smaps(262148, 1000), 4 * 1048576)).toBeUndefined();
    expect(parseGuestRamResidentKiB('', 262148)).toBeUndefined();
  });
});

describe('bandwidth probe over loopback', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A port nobody listens on now (the kernel's pick, released). */
  async function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
  }

  function canConnect(port: number): Promise<boolean> {
    return new Promise((resolve) => {
      const c = createConnection({ host: '127.0.0.1', port });
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
  }

  it('listenForProbe on a port of the range, sendProbe to it: bytes and a rate above 0, and the port is free again', async () => {
    const base = 50_000 + Math.floor(Math.random() * 5000);
    const ports = new PortReservations(() => ({ min: base, max: base + 20 }));
    const logs: string[] = [];
    const port = await listenForProbe(ports, '127.0.0.1', (m) => logs.push(m));
    expect(port).toBeGreaterThanOrEqual(base);
    expect(port).toBeLessThanOrEqual(base + 20);
    const started = Date.now();
    const r = await sendProbe('127.0.0.1', port);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(r.bytes).toBeGreaterThan(0);
    expect(r.bytes).toBeLessThanOrEqual(PROBE_MAX_BYTES);
    expect(r.ms).toBeGreaterThan(0);
    expect(r.bytesPerS).toBeGreaterThan(0);
    // The rate is bytes over ms (ms is rounded to the microsecond in the answer).
    expect(Math.abs(r.bytesPerS / ((r.bytes / r.ms) * 1000) - 1)).toBeLessThan(1e-3);
    // One probe per listen: the listener is gone.
    expect(await canConnect(port)).toBe(false);
    expect(logs).toEqual([]);
  });

  it('sendProbe to a port where nobody listens: a coded error, quickly', async () => {
    const port = await freePort();
    await expect(sendProbe('127.0.0.1', port)).rejects.toMatchObject({ code: 'no_connect' });
  });

  it('a probe nobody connects to gives its port back after the wait', async () => {
    const p = await freePort();
    const ports = new PortReservations(() => ({ min: p, max: p }));
    const logs: string[] = [];
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const port = await listenForProbe(ports, '127.0.0.1', (m) => logs.push(m));
    expect(port).toBe(p);
    // The only port of the range is held: a second probe finds none.
    await expect(listenForProbe(ports, '127.0.0.1', () => undefined)).rejects.toThrow(/no free migration port/);
    vi.advanceTimersByTime(10_000);
    expect(logs.join('\n')).toMatch(new RegExp(`port ${p}: nobody came`));
    vi.useRealTimers();
    // Closed and released: the same port can be taken again.
    await vi.waitFor(async () => expect(await canConnect(p)).toBe(false));
    const again = await vi.waitFor(() => listenForProbe(ports, '127.0.0.1', () => undefined), { timeout: 2000, interval: 50 });
    expect(again).toBe(p);
    const r = await sendProbe('127.0.0.1', again);
    expect(r.bytesPerS).toBeGreaterThan(0);
  });
});

describe('borderline verdicts', () => {
  it('a dirty rate within the measurement noise of the bandwidth is flagged, and the reason says the verdict could go either way', () => {
    const base = { memoryBytes: 256 * MiB, touchedBytes: 74 * MiB, workingSetBytes: 64 * MiB, bandwidthBytesPerS: 32 * MiB, downtimeLimitMs: 300 };
    const near = forecastMigration({ ...base, dirtyBytesPerS: 34 * MiB });
    expect(near.borderline).toBe(true);
    expect(near.reason).toMatch(/either way/);
    const far = forecastMigration({ ...base, dirtyBytesPerS: 10 * MiB });
    expect(far.borderline).toBeUndefined();
    expect(forecastMigration({ ...base, dirtyBytesPerS: 60 * MiB }).borderline).toBeUndefined();
  });
});

