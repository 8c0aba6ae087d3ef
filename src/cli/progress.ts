/**
 * The `migrate --verbose` progress line: percent (as virsh computes it from
 * data remaining and total), throughput, data remaining, dirty rate,
 * iteration and an ETA that only counts down: a raw estimate that rises
 * (a new dirty-page pass) is not shown as the clock going back; the
 * estimate is re-based only when it has stayed higher for several samples.
 */
import type { JobStats } from '../host/job-stats.js';

const MIB = 1024 * 1024;

/** Formats a byte count as MiB/GiB. */
export function formatBytes(n: number): string {
  return n >= 1024 * MIB ? `${(n / 1024 / MIB).toFixed(2)} GiB` : `${(n / MIB).toFixed(1)} MiB`;
}

/** Tracks successive job statistics and renders the progress line. */
export class MigrationProgress {
  private shownEtaMs: number | null = null;
  private lastAt = 0;
  private higherSamples = 0;

  /** virsh's percentage: the part of the total that is no longer remaining. */
  static percent(s: JobStats): number {
    if (!s.data_total || s.data_remaining === undefined) return 0;
    return Math.max(0, Math.min(99, Math.floor(100 - (s.data_remaining * 100) / s.data_total)));
  }

  /** The ETA to show for `s` at time `now` (ms), or null when unknown. */
  eta(s: JobStats, now: number): number | null {
    const raw = s.data_remaining !== undefined && s.memory_bps ? (s.data_remaining / s.memory_bps) * 1000 : null;
    if (raw === null) return this.shownEtaMs;
    if (this.shownEtaMs === null) {
      this.shownEtaMs = raw;
    } else {
      const countedDown = Math.max(0, this.shownEtaMs - (now - this.lastAt));
      if (raw <= countedDown) {
        this.shownEtaMs = raw;
        this.higherSamples = 0;
      } else if (++this.higherSamples >= 4) {
        // The estimate has been higher for a while: the work really grew. Re-base once, visibly.
        this.shownEtaMs = raw;
        this.higherSamples = 0;
      } else {
        this.shownEtaMs = countedDown;
      }
    }
    this.lastAt = now;
    return this.shownEtaMs;
  }

  /** One progress line for `s`. */
  line(s: JobStats, now: number): string {
    const parts = [`Migration: [${String(MigrationProgress.percent(s)).padStart(3)} %]`];
    if (s.memory_bps !== undefined) parts.push(`${formatBytes(s.memory_bps)}/s`);
    if (s.data_remaining !== undefined) parts.push(`${formatBytes(s.data_remaining)} remaining`);
    if (s.memory_dirty_rate !== undefined) parts.push(`dirty ${s.memory_dirty_rate} pages/s`);
    if (s.memory_iteration !== undefined) parts.push(`iteration ${s.memory_iteration}`);
    const eta = this.eta(s, now);
    if (eta !== null) parts.push(`ETA ${(eta / 1000).toFixed(1)} s`);
    return parts.join('  ');
  }
}
