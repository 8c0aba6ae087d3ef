/**
 * Shared helpers of the benchmark programs: statistics, markdown tables,
 * timed child processes, and a clean-up list that runs on normal exit, on
 * errors and on SIGINT/SIGTERM.
 *
 * Benchmarks are programs, not tests: each one prints a markdown table and
 * writes JSON under bench/results/ (git-ignored).
 */
import { spawn, execFileSync, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import os from 'node:os';
import { REPO_ROOT, sleep } from '../test/support/daemon.js';
import { GUEST_KERNEL } from '../test/support/guest-xml.js';

export { sleep };

/** The checkout's root directory. */
export const ROOT = REPO_ROOT;
/** Built CLI and daemon (run `npm run build` first); {@link useDistSnapshot} points them at a private copy. */
export let CLI = join(ROOT, 'dist', 'cli', 'main.js');
export let DAEMON = join(ROOT, 'dist', 'daemon', 'main.js');
/** The test guest (run `make -C guest` first). */
export const GUEST = GUEST_KERNEL;
export const RESULTS_DIR = join(ROOT, 'bench', 'results');

/** Refuses to run without the build products. */
export function requireBuild(needGuest: boolean): void {
  const missing = [CLI, DAEMON, ...(needGuest ? [GUEST] : [])].filter((p) => !existsSync(p));
  if (missing.length > 0) {
    process.stderr.write(`missing ${missing.join(', ')}: run \`npm run build\`${needGuest ? ' and `make -C guest`' : ''} first\n`);
    process.exit(2);
  }
}

/**
 * Copies dist/ to a private directory under bench/results/ (git-ignored)
 * and runs the CLI and daemon from there, so that a rebuild by someone else
 * in the same checkout cannot change (or half-write) the code under test in
 * the middle of a run. The copy sits inside the checkout so that
 * node_modules and package.json's "type" are found as from dist/. Checks
 * the copy loads (`ferry --help` imports every command) and retries while a
 * build is in flight. Removed at clean-up.
 */
export async function useDistSnapshot(): Promise<void> {
  const dir = join(RESULTS_DIR, `.dist-${process.pid}`);
  onCleanup('dist snapshot', () => rmTree(dir));
  for (let attempt = 1; ; attempt++) {
    rmTree(dir);
    mkdirSync(RESULTS_DIR, { recursive: true });
    execFileSync('cp', ['-a', join(ROOT, 'dist'), dir]);
    const cli = join(dir, 'cli', 'main.js');
    const daemon = join(dir, 'daemon', 'main.js');
    const help = await timedRun(process.execPath, [cli, '--help'], { timeoutMs: 30_000 });
    const daemonHelp = await timedRun(process.execPath, [daemon, '--help'], { timeoutMs: 30_000 });
    if (help.code === 0 && daemonHelp.code === 0) {
      CLI = cli;
      DAEMON = daemon;
      return;
    }
    if (attempt >= 10) throw new Error(`dist/ does not load (is a build running or broken?):\n${help.stderr}${daemonHelp.stderr}`);
    process.stderr.write('dist/ does not load yet (a build in progress?); retrying in 3 s\n');
    await sleep(3000);
  }
}

/** The commit and how many files under src/ differ from it (the tree under test). */
export function buildInfo(): { commit: string; dirtySrcFiles: number } {
  try {
    const commit = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).split('\n').filter(Boolean).length;
    return { commit, dirtySrcFiles: dirty };
  } catch {
    return { commit: 'unknown', dirtySrcFiles: -1 };
  }
}

// ------------------------------------------------------------ statistics

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
}

export function summarize(xs: readonly number[]): Summary {
  const finite = xs.filter((x) => Number.isFinite(x));
  return {
    n: finite.length,
    median: median(finite),
    min: finite.length ? Math.min(...finite) : Number.NaN,
    max: finite.length ? Math.max(...finite) : Number.NaN,
  };
}

/** `median (min-max)` with `digits` decimals; `-` when there is nothing. */
export function fmtSummary(s: Summary, digits = 0, unit = ''): string {
  if (s.n === 0) return '-';
  const f = (x: number) => x.toFixed(digits);
  return s.n === 1 ? `${f(s.median)}${unit}` : `${f(s.median)}${unit} (${f(s.min)}-${f(s.max)})`;
}

/** A markdown table. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Writes `bench/results/NAME.json`; returns its path. */
export function writeResults(name: string, data: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const path = join(RESULTS_DIR, `${name}.json`);
  writeFileSync(path, `${JSON.stringify(data, null, 2)}\n`);
  return path;
}

/** What the machine is, for the JSON record. */
export function machineInfo(): Record<string, unknown> {
  let qemu = 'unknown';
  try {
    qemu = execFileSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? qemu;
  } catch {
    // Not installed: the caller will fail later with a clearer message.
  }
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memTotalMiB: Math.round(os.totalmem() / 1048576),
    loadavg: os.loadavg(),
    node: process.version,
    kernel: os.release(),
    qemu,
    build: buildInfo(),
  };
}

// ------------------------------------------------------------ processes

export interface TimedRun {
  /** Wall time from spawn to exit, ms. */
  ms: number;
  /** With `cpu: true`: user + system CPU time of the process, ms (GNU time, 10 ms resolution). */
  cpuMs?: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const GNU_TIME = '/usr/bin/time';
/** Whether CPU times can be measured (GNU time is installed). */
export const CPU_TIMES = existsSync(GNU_TIME);
let cpuFileSeq = 0;

/**
 * Runs a process to its end and measures its wall time (spawn to exit).
 * With `cpu: true` (and GNU time installed) the process runs under
 * `/usr/bin/time`, which adds one fork+exec to the wall time of every
 * contender alike, and its user + system CPU time is reported too: on a
 * shared machine CPU time moves far less than wall time.
 */
export function timedRun(file: string, args: readonly string[], opts: SpawnOptions & { timeoutMs?: number; cpu?: boolean } = {}): Promise<TimedRun> {
  const cpuFile = opts.cpu && CPU_TIMES ? join(os.tmpdir(), `ferry-bench-cpu-${process.pid}-${cpuFileSeq++}`) : undefined;
  const [f, a] = cpuFile ? [GNU_TIME, ['-f', '%U %S', '-o', cpuFile, file, ...args]] : [file, [...args]];
  return new Promise((resolvePromise, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(f, a, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          child.kill('SIGKILL');
        }, opts.timeoutMs)
      : undefined;
    child.on('error', (err) => {
      if (timer) clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (timer) clearTimeout(timer);
      const out: TimedRun = { ms, code, signal, stdout, stderr };
      if (cpuFile) {
        try {
          // GNU time writes "Command exited with non-zero status N" first when the command failed.
          const last = readFileSync(cpuFile, 'utf8').trim().split('\n').pop() ?? '';
          const [u, s] = last.split(' ').map(Number);
          if (Number.isFinite(u) && Number.isFinite(s)) out.cpuMs = (u! + s!) * 1000;
        } catch {
          // No CPU figure for this run.
        }
        try {
          unlinkSync(cpuFile);
        } catch {
          // Already gone.
        }
      }
      resolvePromise(out);
    });
  });
}

/** Whether `pid` runs and its command line contains `needle` (guards against a reused pid). */
export function pidIs(pid: number, needle: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle);
  } catch {
    return false;
  }
}

/** Sends `signal` to `pid` if it still runs `needle`; true if it was sent. */
export function killIf(pid: number | undefined, needle: string, signal: NodeJS.Signals = 'SIGKILL'): boolean {
  if (!pid || !pidIs(pid, needle)) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Waits until `pid` has gone (or `timeoutMs`). */
export async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (!existsSync(`/proc/${pid}`)) return true;
    // A zombie child still has /proc/PID until reaped; treat state Z as gone.
    try {
      if (/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'))) return true;
    } catch {
      return true;
    }
    await sleep(20);
  }
  return false;
}

/** User + system CPU time a process has used so far, ms (from /proc/PID/stat; USER_HZ 100). */
export function procCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ": state is field 3, so utime (14) and stime (15) are at index 11 and 12.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** VmRSS of a process in KiB (from /proc/PID/status). */
export function vmRssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

// ------------------------------------------------------------ clean-up

type Cleanup = { name: string; fn: () => void };
const cleanups: Cleanup[] = [];
let cleaned = false;

/** Registers a synchronous clean-up step; steps run last-registered first. Returns a remover. */
export function onCleanup(name: string, fn: () => void): () => void {
  const entry = { name, fn };
  cleanups.push(entry);
  return () => {
    const i = cleanups.indexOf(entry);
    if (i >= 0) cleanups.splice(i, 1);
  };
}

/** Runs every registered clean-up step once (also safe to call from 'exit'). */
export function runCleanups(): void {
  if (cleaned) return;
  cleaned = true;
  const verbose = process.env.BENCH_VERBOSE_CLEANUP === '1';
  while (cleanups.length > 0) {
    const c = cleanups.pop()!;
    try {
      if (verbose) process.stderr.write(`${new Date().toISOString()} clean-up: ${c.name}\n`);
      c.fn();
    } catch (err) {
      process.stderr.write(`clean-up "${c.name}" failed: ${(err as Error).message}\n`);
    }
  }
}

/** Runs `main` with clean-up on success, error, SIGINT, SIGTERM and SIGHUP. */
export function runMain(main: () => Promise<void>): void {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\n${sig}: cleaning up\n`);
      // Give the event loop a moment first: under tsx the parent process waits ~30 ms for
      // this process to acknowledge the signal over IPC, and SIGKILLs it if a synchronous
      // clean-up blocks that message.
      setTimeout(() => {
        runCleanups();
        process.exit(130);
      }, 100);
    });
  }
  process.on('exit', () => runCleanups());
  main().then(
    () => {
      runCleanups();
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      runCleanups();
      process.exit(1);
    },
  );
}

/** Parses `--name VALUE` / `--name=VALUE` from argv. */
export function argValue(name: string): string | undefined {
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === `--${name}`) return argv[i + 1];
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return undefined;
}

export function argFlag(name: string): boolean {
  return process.argv.slice(2).includes(`--${name}`);
}

/** A positive integer option with a default. */
export function argInt(name: string, dflt: number): number {
  const v = argValue(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) {
    process.stderr.write(`--${name} expects a positive integer, not '${v}'\n`);
    process.exit(2);
  }
  return n;
}

/** Removes a directory tree (synchronously, for clean-up). */
export function rmTree(path: string): void {
  execFileSync('rm', ['-rf', '--one-file-system', path]);
}

/** Rotates `xs` left by `k` (to alternate which contender goes first). */
export function rotate<T>(xs: readonly T[], k: number): T[] {
  const n = xs.length;
  if (n === 0) return [];
  const s = ((k % n) + n) % n;
  return [...xs.slice(s), ...xs.slice(0, s)];
}

/**
 * Samples the VmRSS of some processes every `everyMs` while started: the
 * first sample, the peak and the last sample of each (KiB). A process that
 * has gone keeps what was sampled before.
 */
export class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  private readonly first = new Map<number, number>();
  private readonly peak = new Map<number, number>();
  private readonly last = new Map<number, number>();

  constructor(
    private readonly pids: readonly number[],
    private readonly everyMs = 50,
  ) {}

  private sample(): void {
    for (const pid of this.pids) {
      let kib: number;
      try {
        kib = vmRssKiB(pid);
      } catch {
        continue;
      }
      if (!this.first.has(pid)) this.first.set(pid, kib);
      this.peak.set(pid, Math.max(this.peak.get(pid) ?? 0, kib));
      this.last.set(pid, kib);
    }
  }

  /** Takes a sample now and then every `everyMs` until {@link stop}. */
  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.everyMs);
    this.timer.unref();
    return this;
  }

  /** Takes a last sample, stops; per pid (in the order given) first, peak and last VmRSS, KiB. */
  stop(): Array<{ pid: number; firstKiB: number; peakKiB: number; lastKiB: number }> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.sample();
    return this.pids.map((pid) => ({ pid, firstKiB: this.first.get(pid) ?? Number.NaN, peakKiB: this.peak.get(pid) ?? Number.NaN, lastKiB: this.last.get(pid) ?? Number.NaN }));
  }
}

/** KiB as MiB with one decimal. */
export const mibOf = (kib: number) => (kib / 1024).toFixed(1);
