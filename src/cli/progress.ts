/**
 * The `migrate --verbose` progress line: percent (as virsh computes it from
 * data remaining and total), throughput, data remaining, dirty rate,
 * iteration, the phase, and an ETA from the daemon's live forecast that
 * only counts down unless there is a reason: a new pass over memory re-bases
 * it at once, saying so; otherwise a higher estimate is shown only when it
 * has stayed higher for several samples. A migration the forecast finds
 * not converging has no ETA, and the line says why.
 */
import { percentDone, type JobStats } from '../host/job-stats.js';

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
  private lastIteration: number | undefined;
  /** Why the last ETA went up, shown next to it once. */
  private rebasedBecause: string | undefined;

  /** virsh's percentage: the part of the total that is no longer remaining. */
  static percent(s: JobStats): number {
    return percentDone(s.data_total, s.data_remaining) ?? 0;
  }

  /**
   * The ETA to show for `s` at time `now` (ms), or null when unknown. The
   * daemon's figure (the forecast model with live figures) is used when it
   * gives one; a migration it finds not converging has none.
   */
  eta(s: JobStats, now: number): number | null {
    if (s.convergence === 'not converging') {
      this.shownEtaMs = null;
      return null;
    }
    const raw = s.time_remaining !== undefined ? s.time_remaining : s.data_remaining !== undefined && s.memory_bps ? (s.data_remaining / s.memory_bps) * 1000 : null;
    if (raw === null) return this.shownEtaMs;
    // A new pass over memory is a reason for the estimate to grow: re-base at once, and say so.
    const newPass = s.memory_iteration !== undefined && this.lastIteration !== undefined && s.memory_iteration !== this.lastIteration;
    this.lastIteration = s.memory_iteration;
    if (newPass && this.shownEtaMs !== null && raw > this.shownEtaMs) {
      this.shownEtaMs = raw;
      this.lastAt = now;
      this.rebasedBecause = `pass ${s.memory_iteration}`;
      return raw;
    }
    this.rebasedBecause = undefined;
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
    if (s.phase) parts.push(s.phase);
    if (s.memory_bps !== undefined) parts.push(`${formatBytes(s.memory_bps)}/s`);
    if (s.data_remaining !== undefined) parts.push(`${formatBytes(s.data_remaining)} remaining`);
    if (s.memory_dirty_rate !== undefined) parts.push(`dirty ${s.memory_dirty_rate} pages/s`);
    if (s.memory_iteration !== undefined) parts.push(`iteration ${s.memory_iteration}`);
    const eta = this.eta(s, now);
    if (eta !== null) parts.push(`ETA ${(eta / 1000).toFixed(1)} s${this.rebasedBecause ? ` (up: ${this.rebasedBecause})` : ''}`);
    else if (s.convergence === 'not converging') parts.push('ETA unknown: not converging');
    return parts.join('  ');
  }
}
