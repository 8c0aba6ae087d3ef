/**
 * Watching a migration from outside: the stream on the wire (a veth's
 * transmit counter) and the CPU time and I/O of the processes involved,
 * from /proc. Shared by the migration benchmarks.
 */
import { readFileSync } from 'node:fs';

/** Monotonic milliseconds. */
export const now = () => Number(process.hrtime.bigint()) / 1e6;

/** Read/write syscalls and bytes of a process (/proc/PID/io: rchar, wchar, syscr, syscw). */
export interface ProcIo {
  rchar: number;
  wchar: number;
  syscr: number;
  syscw: number;
}

export function procIo(pid: number): ProcIo | undefined {
  try {
    const t = readFileSync(`/proc/${pid}/io`, 'utf8');
    const get = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(t)?.[1]);
    const io = { rchar: get('rchar'), wchar: get('wchar'), syscr: get('syscr'), syscw: get('syscw') };
    return Object.values(io).every(Number.isFinite) ? io : undefined;
  } catch {
    return undefined;
  }
}

export function ioDelta(a: ProcIo | undefined, b: ProcIo | undefined): ProcIo | undefined {
  return a && b ? { rchar: b.rchar - a.rchar, wchar: b.wchar - a.wchar, syscr: b.syscr - a.syscr, syscw: b.syscw - a.syscw } : undefined;
}

/** Processes whose CPU time is sampled while the stream is on the wire. */
export type CpuProbe = 'ferrydA' | 'ferrydB' | 'qemuSrc' | 'qemuDst';
/** Where to find a probed process: its pid, or undefined while it is not known (yet). */
export type ProbePids = Partial<Record<CpuProbe, () => number | undefined>>;

/** User + system CPU of `pid` in clock ticks (USER_HZ 100), or undefined once it is gone. */
export function cpuTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return undefined;
  }
}

/** Busy and total clock ticks of all CPUs together (/proc/stat `cpu` line; idle + iowait count as not busy). */
export function machineTicks(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    return { busy: total - v[3]! - v[4]!, total };
  } catch {
    return undefined;
  }
}

/**
 * The stream within transmit-counter samples taken every 10 ms: from the
 * last sample before the first burst (more than 64 KiB in one sample) to the
 * sample that saw the last burst. API calls between daemons are far smaller.
 */
export function streamWindow(tx: readonly number[]): { first: number; last: number } | undefined {
  let first = -1;
  let last = -1;
  for (let i = 1; i < tx.length; i++) {
    if (tx[i]! - tx[i - 1]! > 64 * 1024) {
      if (first < 0) first = i - 1;
      last = i;
    }
  }
  return first < 0 ? undefined : { first, last };
}

/**
 * Times the migration stream on the wire: samples the transmit byte counter
 * of the source host's veth (from /proc/PID/net/dev of a process inside that
 * namespace) every 10 ms. The stream runs from the last sample before the
 * first burst (> 64 KiB in one sample) to the sample that saw the last
 * burst; API calls between the daemons are far smaller. The same clock for
 * every contender, independent of QEMU's statistics (which QEMU 7.2 may not
 * have computed yet when it first says `completed`).
 *
 * Each sample also reads the CPU time of the probed processes (both
 * ferryds, both QEMUs) and of the whole machine, so that the CPU each one
 * used while the stream was on the wire can be told (10 ms resolution).
 */
export class WireMonitor {
  private samples: Array<{ t: number; tx: number; cpu: Partial<Record<CpuProbe, number>>; machine?: { busy: number; total: number } }> = [];
  private timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly pid: number,
    private readonly dev: string,
  ) {}

  /** Whether the device is visible (else the monitor measures nothing). */
  usable(): boolean {
    return this.read() !== undefined;
  }

  private read(): number | undefined {
    try {
      const line = readFileSync(`/proc/${this.pid}/net/dev`, 'utf8')
        .split('\n')
        .find((l) => l.trim().startsWith(`${this.dev}:`));
      if (!line) return undefined;
      const f = line.slice(line.indexOf(':') + 1).trim().split(/\s+/);
      return Number(f[8]);
    } catch {
      return undefined;
    }
  }

  start(probes: ProbePids = {}): void {
    if (this.timer) clearInterval(this.timer);
    this.samples = [];
    const sample = () => {
      const tx = this.read();
      if (tx === undefined) return;
      const cpu: Partial<Record<CpuProbe, number>> = {};
      for (const [k, pidOf] of Object.entries(probes) as Array<[CpuProbe, () => number | undefined]>) {
        const pid = pidOf();
        const ticks = pid !== undefined ? cpuTicks(pid) : undefined;
        if (ticks !== undefined) cpu[k] = ticks;
      }
      const machine = machineTicks();
      this.samples.push({ t: now(), tx, cpu, ...(machine ? { machine } : {}) });
    };
    sample();
    this.timer = setInterval(sample, 10);
  }

  /** Stops sampling; returns the stream's duration and bytes, and the CPU used meanwhile, if a stream was seen. */
  stop(): { ms: number; bytes: number; cpuMs: Partial<Record<CpuProbe, number>>; machineBusyPct?: number } | undefined {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const s = this.samples;
    const w = streamWindow(s.map((x) => x.tx));
    if (!w) return undefined;
    const { first, last } = w;
    // Per process: the earliest sample in the window that saw it to the latest (a QEMU may start or end inside it).
    const cpuMs: Partial<Record<CpuProbe, number>> = {};
    const window = s.slice(first, last + 1);
    for (const k of ['ferrydA', 'ferrydB', 'qemuSrc', 'qemuDst'] as const) {
      const seen = window.filter((x) => x.cpu[k] !== undefined);
      if (seen.length >= 2) cpuMs[k] = (seen[seen.length - 1]!.cpu[k]! - seen[0]!.cpu[k]!) * 10;
    }
    const m0 = s[first]!.machine;
    const m1 = s[last]!.machine;
    const machineBusyPct = m0 && m1 && m1.total > m0.total ? (100 * (m1.busy - m0.busy)) / (m1.total - m0.total) : undefined;
    return { ms: s[last]!.t - s[first]!.t, bytes: s[last]!.tx - s[first]!.tx, cpuMs, ...(machineBusyPct !== undefined ? { machineBusyPct } : {}) };
  }
}
