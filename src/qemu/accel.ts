/** Chooses KVM or TCG: KVM only where a probe guest really runs at a useful speed under it, with the answer cached. */
import { spawn } from 'node:child_process';
import { open, readFile, stat } from 'node:fs/promises';
import { release } from 'node:os';
import { FerryError, showValue } from '../errors/index.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { resolveQemuBinary } from './binary.js';
import type { Accel } from './command-line.js';

/** The configured accelerator policy. */
export type AccelSetting = 'auto' | 'kvm' | 'tcg';

/** One timed probe run. */
export interface ProbeRun {
  /** The workload reached its marker before the deadline. */
  ok: boolean;
  /** Milliseconds from spawn to the marker (or to giving up). */
  ms: number;
  /** What happened, for the reason text and logs (e.g. QEMU's error). */
  detail: string;
}

/** The outcome of {@link resolveAccel}. */
export interface AccelDecision {
  accel: Accel;
  /** One sentence for logs and `ferry` output saying why. */
  reason: string;
  /** The probe timings behind an `auto` decision, when a probe ran (or was cached). */
  kvmMs?: number;
  tcgMs?: number;
  /** True when the decision came from the cache file. */
  cached?: boolean;
}

/** Options for {@link resolveAccel}; everything has a default, the hooks exist for tests. */
export interface AccelProbeOptions {
  /** Where the `auto` decision is cached; no caching without it. */
  cacheFile?: string;
  /** How long a cached decision stays valid. Default 24 h. */
  cacheMaxAgeMs?: number;
  /** QEMU binary; `qemu-system-x86_64` on PATH by default. */
  binary?: string;
  /** KVM device node. Default `/dev/kvm`. */
  kvmDevice?: string;
  /**
   * A small multiboot test kernel to use as the probe workload (its first
   * `HB` line on COM1 is the marker). Without it — or if the file is missing —
   * the workload is the SeaBIOS firmware's power-on self test.
   */
  guestKernel?: string;
  /** Kernel command line for {@link guestKernel}. Default `ws=1 rate=0 hb=50`. */
  guestKernelCmdline?: string;
  /** Deadline for the KVM probe. Default 5000 ms. */
  kvmDeadlineMs?: number;
  /** Clock, for cache ages. */
  now?: () => number;
  /** Replaces the real probe (tests). */
  runProbe?: (accel: Accel, deadlineMs: number) => Promise<ProbeRun>;
  /** Replaces the /dev/kvm check (tests): resolves undefined if usable, else why not. */
  checkKvmDevice?: (path: string) => Promise<string | undefined>;
}

/** Cache file format; bump the version on any change. */
interface AccelCache {
  version: 1;
  key: CacheKey;
  decidedAt: number;
  accel: Accel;
  reason: string;
  kvmMs?: number;
  tcgMs?: number;
}

/** What the decision depends on: a new kernel, QEMU or KVM module may change the answer. */
interface CacheKey {
  binary: string;
  binaryMtimeMs: number;
  kernelRelease: string;
}

const DEFAULT_CACHE_MAX_AGE_MS = 24 * 60 * 60 * 1000;
const DEFAULT_KVM_DEADLINE_MS = 5_000;
/** TCG's probe only sets the yardstick; give it room on a busy machine. */
const TCG_DEADLINE_MS = 10_000;
/**
 * KVM must be at least about as fast as TCG on the same workload. The slack
 * absorbs QEMU start-up noise, which dominates both runs on a healthy host;
 * a broken nested KVM is orders of magnitude slower, not 1.5x.
 */
const KVM_SLOWER_FACTOR = 1.5;
const KVM_SLACK_MS = 250;

/**
 * Decides the accelerator for this host.
 *
 * - `tcg`: TCG, no questions.
 * - `kvm`: KVM if /dev/kvm can be opened, else an error (the user asked for it).
 * - `auto`: TCG if /dev/kvm is missing or can't be opened. Otherwise a probe:
 *   the same tiny workload runs once under KVM (with a deadline) and once
 *   under TCG, each timed from spawn to a marker line on a serial/debug port.
 *   KVM wins only if it finished and was not clearly slower than TCG — an
 *   openable /dev/kvm that runs guests a thousand times too slowly (some nested
 *   set-ups) loses. The decision is cached in `cacheFile`, keyed on the
 *   QEMU binary and host kernel, for `cacheMaxAgeMs`.
 *
 * @throws FerryError `config_unsupported` for `kvm` without a usable /dev/kvm
 */
export async function resolveAccel(setting: AccelSetting, opts: AccelProbeOptions = {}): Promise<AccelDecision> {
  const kvmDevice = opts.kvmDevice ?? '/dev/kvm';
  const checkKvm = opts.checkKvmDevice ?? checkKvmDevice;
  if (setting === 'tcg') return { accel: 'tcg', reason: 'TCG is configured' };
  const kvmProblem = await checkKvm(kvmDevice);
  if (setting === 'kvm') {
    if (kvmProblem !== undefined) {
      throw new FerryError('config_unsupported', `KVM is configured but ${kvmProblem}; configure accel auto or tcg`);
    }
    return { accel: 'kvm', reason: 'KVM is configured' };
  }
  if (setting !== 'auto') throw new FerryError('invalid_arg', `unknown accelerator setting ${showValue(setting)}`);
  // Always checked live, never cached: cheap, and the module can come and go.
  if (kvmProblem !== undefined) return { accel: 'tcg', reason: `${kvmProblem}, so TCG` };

  const now = opts.now ?? Date.now;
  const binary = opts.binary ?? resolveQemuBinary(undefined);
  const key = await cacheKey(binary);
  if (opts.cacheFile !== undefined) {
    const cached = await readCache(opts.cacheFile, key, now(), opts.cacheMaxAgeMs ?? DEFAULT_CACHE_MAX_AGE_MS);
    if (cached) return cached;
  }

  const runProbe = opts.runProbe ?? (await realProbe(binary, opts));
  const decision = await probeDecision(runProbe, opts.kvmDeadlineMs ?? DEFAULT_KVM_DEADLINE_MS);
  if (opts.cacheFile !== undefined) {
    const entry: AccelCache = { version: 1, key, decidedAt: now(), ...decision };
    // A cache that can't be written only costs another probe next time.
    await writeFileAtomic(opts.cacheFile, `${JSON.stringify(entry, null, 2)}\n`, 0o644).catch(() => undefined);
  }
  return decision;
}

async function probeDecision(
  runProbe: (accel: Accel, deadlineMs: number) => Promise<ProbeRun>,
  kvmDeadlineMs: number,
): Promise<AccelDecision> {
  const kvm = await runProbe('kvm', kvmDeadlineMs);
  if (!kvm.ok) {
    return { accel: 'tcg', reason: `the KVM probe guest failed (${kvm.detail}), so TCG` };
  }
  const tcg = await runProbe('tcg', TCG_DEADLINE_MS);
  if (!tcg.ok) {
    // No yardstick; KVM did run, which is the better bet.
    return { accel: 'kvm', reason: `the KVM probe ran in ${kvm.ms} ms (TCG probe failed: ${tcg.detail})`, kvmMs: kvm.ms };
  }
  const limit = tcg.ms * KVM_SLOWER_FACTOR + KVM_SLACK_MS;
  if (kvm.ms <= limit) {
    return { accel: 'kvm', reason: `the KVM probe ran in ${kvm.ms} ms against ${tcg.ms} ms under TCG`, kvmMs: kvm.ms, tcgMs: tcg.ms };
  }
  return {
    accel: 'tcg',
    reason: `KVM is too slow here: the probe took ${kvm.ms} ms under KVM against ${tcg.ms} ms under TCG`,
    kvmMs: kvm.ms,
    tcgMs: tcg.ms,
  };
}

/** Whether the KVM device can be opened read-write, as QEMU must; undefined if so, else why not. */
export async function checkKvmDevice(path: string): Promise<string | undefined> {
  try {
    const fh = await open(path, 'r+');
    await fh.close();
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return `${path} does not exist`;
    if (code === 'EACCES' || code === 'EPERM') return `${path} can't be opened (permission denied)`;
    return `${path} can't be opened (${(err as Error).message})`;
  }
}

async function cacheKey(binary: string): Promise<CacheKey> {
  let binaryMtimeMs = 0;
  try {
    binaryMtimeMs = (await stat(binary)).mtimeMs;
  } catch {
    // A missing binary fails later with a clear message; here it just means "no match".
  }
  return { binary, binaryMtimeMs, kernelRelease: release() };
}

async function readCache(path: string, key: CacheKey, nowMs: number, maxAgeMs: number): Promise<AccelDecision | undefined> {
  let c: Partial<AccelCache>;
  try {
    c = JSON.parse(await readFile(path, 'utf8')) as Partial<AccelCache>;
  } catch {
    return undefined;
  }
  if (c.version !== 1 || (c.accel !== 'kvm' && c.accel !== 'tcg') || typeof c.reason !== 'string') return undefined;
  if (typeof c.decidedAt !== 'number' || nowMs - c.decidedAt > maxAgeMs || nowMs < c.decidedAt) return undefined;
  if (JSON.stringify(c.key) !== JSON.stringify(key)) return undefined;
  const d: AccelDecision = { accel: c.accel, reason: c.reason, cached: true };
  if (typeof c.kvmMs === 'number') d.kvmMs = c.kvmMs;
  if (typeof c.tcgMs === 'number') d.tcgMs = c.tcgMs;
  return d;
}

async function realProbe(binary: string, opts: AccelProbeOptions): Promise<(accel: Accel, deadlineMs: number) => Promise<ProbeRun>> {
  let kernel: string | undefined;
  if (opts.guestKernel !== undefined) {
    kernel = await stat(opts.guestKernel).then(
      (s) => (s.isFile() ? opts.guestKernel : undefined),
      () => undefined,
    );
  }
  return (accel, deadlineMs) =>
    runAccelProbe(binary, accel, deadlineMs, kernel !== undefined ? { path: kernel, cmdline: opts.guestKernelCmdline } : undefined);
}

/**
 * Runs the probe workload once and times it from spawn to its marker.
 *
 * Firmware workload: SeaBIOS's power-on self test, whose log goes to the
 * debug port 0x402; the marker is its boot attempt ("Booting from" / "No
 * bootable device"), reached after PCI enumeration, option ROM scans and
 * memory set-up — thousands of instructions and port I/O exits, a fair
 * sample of what a booting guest does. Kernel workload: the test kernel's
 * first `HB` heartbeat on COM1.
 */
export function runAccelProbe(
  binary: string,
  accel: Accel,
  deadlineMs: number,
  kernel?: { path: string; cmdline?: string | undefined },
): Promise<ProbeRun> {
  const base = ['-nodefaults', '-no-user-config', '-display', 'none', '-machine', 'pc', '-accel', accel, '-m', '32M'];
  const out = ['-chardev', 'stdio,id=out,signal=off'];
  const args = kernel
    ? [...base, ...out, '-device', 'isa-serial,chardev=out', '-kernel', kernel.path, '-append', kernel.cmdline ?? 'ws=1 rate=0 hb=50']
    : [...base, ...out, '-device', 'isa-debugcon,iobase=0x402,chardev=out'];
  const marker = kernel ? /(?:^|\n)HB / : /Booting from |No bootable device/;
  return new Promise<ProbeRun>((resolve) => {
    const t0 = performance.now();
    const elapsed = (): number => Math.round(performance.now() - t0);
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let settled = false;
    const finish = (run: ProbeRun): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(run);
    };
    const timer = setTimeout(() => finish({ ok: false, ms: elapsed(), detail: `no result within ${deadlineMs} ms` }), deadlineMs);
    child.stdout.on('data', (d: Buffer) => {
      // Keep only a tail: the marker is short and the log can be long.
      stdout = (stdout + d.toString('latin1')).slice(-4096);
      if (marker.test(stdout)) finish({ ok: true, ms: elapsed(), detail: 'marker seen' });
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString('utf8')).slice(-2048);
    });
    child.on('error', (err) => finish({ ok: false, ms: elapsed(), detail: `cannot run ${binary}: ${err.message}` }));
    child.on('exit', (code, signal) => {
      const lastLine = stderr.trim().split('\n').pop() ?? '';
      finish({ ok: false, ms: elapsed(), detail: lastLine || `QEMU exited (${signal ?? code})` });
    });
  });
}
