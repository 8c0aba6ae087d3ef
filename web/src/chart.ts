/**
 * A live migration chart (uPlot): data remaining (MiB, left axis),
 * throughput and dirty rate (MiB/s, right axis) and the pass over memory,
 * over seconds since the job began; policy steps, the post-copy switch and
 * each new pass are vertical marks with a label.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

const MiB = 1048576;

/** The job figures the chart plots (a subset of JobStats). */
export interface JobSample {
  time_elapsed: number;
  data_remaining?: number;
  memory_bps?: number;
  memory_dirty_rate?: number;
  memory_page_size?: number;
  memory_iteration?: number;
}

export class MigrationChart {
  private readonly data: number[][] = [[], [], [], [], []];
  private readonly marks: Array<{ t: number; label: string }> = [];
  private readonly plot: uPlot;
  private lastIteration: number | undefined;

  constructor(private readonly el: HTMLElement) {
    const marks = this.marks;
    this.plot = new uPlot(
      {
        width: Math.max(320, Math.min(900, el.clientWidth || 640)),
        height: 240,
        scales: { x: { time: false }, mib: {}, rate: {}, iter: { range: (_u, _min, max) => [0, Math.max(4, max + 1)] } },
        axes: [
          { label: 's' },
          { scale: 'mib', label: 'MiB remaining' },
          { scale: 'rate', side: 1, label: 'MiB/s', grid: { show: false } },
        ],
        series: [
          { label: 't (s)' },
          { label: 'remaining (MiB)', scale: 'mib', stroke: '#1f77b4', width: 2 },
          { label: 'throughput (MiB/s)', scale: 'rate', stroke: '#2ca02c' },
          { label: 'dirty rate (MiB/s)', scale: 'rate', stroke: '#d62728' },
          { label: 'pass', scale: 'iter', stroke: '#9467bd', paths: uPlot.paths.stepped!({ align: 1 }) },
        ],
        hooks: {
          draw: [
            (u) => {
              const ctx = u.ctx;
              ctx.save();
              ctx.strokeStyle = '#ff7f0e';
              ctx.fillStyle = '#333';
              ctx.font = `${10 * devicePixelRatio}px sans-serif`;
              for (const m of marks) {
                const x = u.valToPos(m.t, 'x', true);
                if (!Number.isFinite(x)) continue;
                ctx.beginPath();
                ctx.moveTo(x, u.bbox.top);
                ctx.lineTo(x, u.bbox.top + u.bbox.height);
                ctx.stroke();
                ctx.fillText(m.label, x + 3, u.bbox.top + 12 * devicePixelRatio);
              }
              ctx.restore();
            },
          ],
        },
      },
      this.data as uPlot.AlignedData,
      el,
    );
  }

  /** Points plotted so far (also in `data-points`, for tests and for people). */
  get points(): number {
    return this.data[0]!.length;
  }

  add(s: JobSample): void {
    const t = s.time_elapsed / 1000;
    const page = s.memory_page_size ?? 4096;
    if (s.memory_iteration !== undefined && this.lastIteration !== undefined && s.memory_iteration > this.lastIteration) this.marks.push({ t, label: `pass ${s.memory_iteration}` });
    if (s.memory_iteration !== undefined) this.lastIteration = s.memory_iteration;
    const row = [t, (s.data_remaining ?? NaN) / MiB, (s.memory_bps ?? NaN) / MiB, s.memory_dirty_rate !== undefined ? (s.memory_dirty_rate * page) / MiB : NaN, s.memory_iteration ?? NaN];
    row.forEach((v, i) => this.data[i]!.push(v));
    this.plot.setData(this.data as uPlot.AlignedData);
    this.el.dataset.points = String(this.points);
  }

  /** A labelled mark at the latest sample (a policy step, the post-copy switch). */
  markLatest(label: string): void {
    this.marks.push({ t: this.data[0]!.at(-1) ?? 0, label });
    this.plot.redraw();
  }

  destroy(): void {
    this.plot.destroy();
  }
}
