/**
 * End-to-end harness: runs the real `ferryd` (node dist/daemon/main.js) in
 * temporary directories and the real `ferry` CLI (node dist/cli/main.js)
 * against it, and cleans up every daemon, QEMU and directory afterwards.
 *
 * Needs `npm run build` (dist/) and `make -C guest` first.
 *
 * Use {@link useDaemonCleanup} once per test file, or call
 * {@link cleanupAll} from your own hooks.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeEach } from 'vitest';
import { readProcStat } from '../../src/qemu/proc-stat.js';
import { inNetns } from './netns.js';

/** Repository root (tests run with it as the working directory). */
export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');
export const DAEMON_JS = join(REPO_ROOT, 'dist', 'daemon', 'main.js');
export const CLI_JS = join(REPO_ROOT, 'dist', 'cli', 'main.js');

/** Options of {@link startDaemon}. Directories default to fresh temp dirs under os.tmpdir(). */
export interface DaemonOptions {
  hostName?: string;
  hostUuid?: string;
  /** Default 'tcg' (skips the accelerator probe). */
  accel?: 'auto' | 'kvm' | 'tcg';
  /** HOST:PORT for --listen-tcp; --insecure is added unless `insecure: false`. */
  listenTcp?: string;
  insecure?: boolean;
  /** HOST:PORT for --listen-tls (needs tlsDir). */
  listenTls?: string;
  tlsDir?: string;
  /** Serve libvirt's wire protocol on RUN_DIR/libvirt-sock (`--libvirt-socket`). */
  libvirtSocket?: boolean;
  /** HOST:PORT for --libvirt-listen-tcp; --insecure is added unless `insecure: false`. */
  libvirtTcp?: string;
  /** HOST:PORT for --libvirt-listen-tls (needs tlsDir). */
  libvirtTls?: string;
  stateDir?: string;
  runDir?: string;
  /** More ferryd arguments, appended last. */
  extraArgs?: string[];
  /** Deadline for the socket and the `ready:` line. Default 30 s. */
  readyTimeoutMs?: number;
  /** Run ferryd (and so its QEMUs) inside this network namespace: a separate host. */
  netns?: string;
  /** Extra environment for ferryd (e.g. FERRY_TEST_HOOKS=1). */
  env?: Record<string, string>;
}

/** A running ferryd. `pid` and the stderr buffer follow {@link FerrydHandle.restart}. */
export interface FerrydHandle {
  readonly pid: number;
  readonly stateDir: string;
  readonly runDir: string;
  readonly socketPath: string;
  /** `ferry+unix:///system?socket=RUN_DIR/ferryd.sock`. */
  readonly uri: string;
  /** Ports from the `ready:` line, when those listeners are on. */
  readonly tlsPort: number | undefined;
  readonly tcpPort: number | undefined;
  /** The libvirt-protocol endpoints from the `ready:` line (`libvirt-unix PATH`, `libvirt-tcp HOST:PORT`, `libvirt-tls HOST:PORT`). */
  readonly libvirtSocketPath: string | undefined;
  readonly libvirtTcpPort: number | undefined;
  readonly libvirtTlsPort: number | undefined;
  /** Everything the current and earlier ferryd processes of this handle wrote on stderr. */
  stderr(): string;
  /** Sends `signal` (default SIGTERM) and waits for the process to exit; resolves its exit code/signal. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL and wait: the daemon gets no chance to clean up. */
  kill9(): Promise<void>;
  /** Starts ferryd again with the same options (stopping it first with SIGTERM if it still runs); `runDir` may be replaced. */
  restart(over?: { runDir?: string }): Promise<void>;
  /** Whether the ferryd process is running. */
  alive(): boolean;
}

interface Tracked {
  handle: FerrydHandle;
  proc: () => ChildProcess | null;
  runDirs: Set<string>;
}

const daemons: Tracked[] = [];
const tempDirs: string[] = [];

/** A fresh temp dir under os.tmpdir(), removed by {@link cleanupAll}. */
export function makeTempDir(prefix = 'ferry-e2e-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** Environment for child processes without anything that would redirect the CLI. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.FERRY_DEFAULT_URI;
  delete env.FERRY_PKI_DIR;
  return env;
}

function daemonArgs(o: DaemonOptions, stateDir: string, runDir: string): string[] {
  const args = [DAEMON_JS, '--state-dir', stateDir, '--run-dir', runDir, '--accel', o.accel ?? 'tcg'];
  if (o.hostName !== undefined) args.push('--host-name', o.hostName);
  if (o.hostUuid !== undefined) args.push('--host-uuid', o.hostUuid);
  if (o.listenTls !== undefined) args.push('--listen-tls', o.listenTls);
  if (o.tlsDir !== undefined) args.push('--tls-dir', o.tlsDir);
  if (o.listenTcp !== undefined) args.push('--listen-tcp', o.listenTcp);
  if (o.libvirtSocket) args.push('--libvirt-socket', join(runDir, 'libvirt-sock'));
  if (o.libvirtTcp !== undefined) args.push('--libvirt-listen-tcp', o.libvirtTcp);
  if (o.libvirtTls !== undefined) args.push('--libvirt-listen-tls', o.libvirtTls);
  if ((o.listenTcp !== undefined || o.libvirtTcp !== undefined) && o.insecure !== false) args.push('--insecure');
  args.push(...(o.extraArgs ?? []));
  return args;
}

/**
 * Starts ferryd and waits until its socket file exists and it logged
 * `ready:`. Rejects (with its stderr) if it exits or is not ready in time.
 */
export async function startDaemon(opts: DaemonOptions = {}): Promise<FerrydHandle> {
  let base: string | undefined;
  const dir = (name: string): string => {
    base ??= makeTempDir('ferryd-');
    return join(base, name);
  };
  const stateDir = opts.stateDir ?? dir('state');
  let runDir = opts.runDir ?? dir('run');
  let proc: ChildProcess | null = null;
  let exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> = Promise.resolve({ code: null, signal: null });
  let exited = true;
  let log = '';
  let currentLogStart = 0;
  let tlsPort: number | undefined;
  let tcpPort: number | undefined;
  let libvirtSocketPath: string | undefined;
  let libvirtTcpPort: number | undefined;
  let libvirtTlsPort: number | undefined;
  const runDirs = new Set<string>([runDir]);

  const launch = async (): Promise<void> => {
    const socketPath = join(runDir, 'ferryd.sock');
    currentLogStart = log.length;
    const cmd = inNetns(opts.netns, [process.execPath, ...daemonArgs(opts, stateDir, runDir)]);
    // `ip netns exec` execs the command in place, so the pid is ferryd's own.
    const child = spawn(cmd.file, cmd.args, {
      cwd: REPO_ROOT,
      env: { ...cleanEnv(), ...opts.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    proc = child;
    exited = false;
    exit = new Promise((res) => {
      child.once('exit', (code, signal) => {
        exited = true;
        log += `[harness] ferryd pid ${child.pid} exited (code ${code}, signal ${signal})\n`;
        res({ code, signal });
      });
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      log += d;
    });
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
    for (;;) {
      const mine = log.slice(currentLogStart);
      const ready = /ferryd: ready: (.*)$/m.exec(mine);
      if (ready && existsSync(socketPath)) {
        tlsPort = portOf(ready[1]!, 'tls');
        tcpPort = portOf(ready[1]!, 'tcp');
        libvirtSocketPath = endpointOf(ready[1]!, 'libvirt-unix');
        libvirtTcpPort = portOf(ready[1]!, 'libvirt-tcp');
        libvirtTlsPort = portOf(ready[1]!, 'libvirt-tls');
        return;
      }
      if (exited) {
        const r = await exit;
        throw new Error(`ferryd exited (code ${r.code}, signal ${r.signal}) before it was ready:\n${mine}`);
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`ferryd was not ready within ${opts.readyTimeoutMs ?? 30_000} ms:\n${mine}`);
      }
      await sleep(25);
    }
  };

  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (!proc || exited) return exit;
    proc.kill(signal);
    const r = await Promise.race([exit, sleep(10_000).then(() => null)]);
    if (r) return r;
    proc.kill('SIGKILL');
    return exit;
  };

  const handle: FerrydHandle = {
    get pid() {
      return proc?.pid ?? -1;
    },
    stateDir,
    get runDir() {
      return runDir;
    },
    get socketPath() {
      return join(runDir, 'ferryd.sock');
    },
    get uri() {
      return `ferry+unix:///system?socket=${join(runDir, 'ferryd.sock')}`;
    },
    get tlsPort() {
      return tlsPort;
    },
    get tcpPort() {
      return tcpPort;
    },
    get libvirtSocketPath() {
      return libvirtSocketPath;
    },
    get libvirtTcpPort() {
      return libvirtTcpPort;
    },
    get libvirtTlsPort() {
      return libvirtTlsPort;
    },
    stderr: () => log,
    stop,
    kill9: async () => {
      await stop('SIGKILL');
    },
    restart: async (over = {}) => {
      await stop('SIGTERM');
      if (over.runDir !== undefined) {
        runDir = over.runDir;
        runDirs.add(runDir);
      }
      await launch();
    },
    alive: () => proc !== null && !exited,
  };
  daemons.push({ handle, proc: () => proc, runDirs });
  await launch();
  return handle;
}

/** The address of one endpoint of the `ready:` line (`unix PATH, tls HOST:PORT, libvirt-tcp HOST:PORT, ...`). */
function endpointOf(endpoints: string, transport: string): string | undefined {
  // Whole entries only: `tls` must not match inside `libvirt-tls`.
  for (const entry of endpoints.split(',')) {
    const m = /^\s*(\S+) (.+?)\s*$/.exec(entry);
    if (m && m[1] === transport) return m[2];
  }
  return undefined;
}

function portOf(endpoints: string, transport: 'tls' | 'tcp' | 'libvirt-tls' | 'libvirt-tcp'): number | undefined {
  const m = /:(\d+)$/.exec(endpointOf(endpoints, transport) ?? '');
  return m ? Number(m[1]) : undefined;
}

/** What {@link ferry} returns. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Parsed stdout in `--json` mode (undefined if it is not JSON). */
  json?: any;
}

/** Options of {@link ferry}. */
export interface CliOptions {
  /** Connection URI (`-c`); omitted when undefined. */
  uri?: string;
  /** Adds the global `--json` and parses stdout. */
  json?: boolean;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Run the CLI inside this network namespace (as a user on that host). */
  netns?: string;
}

/** Runs `node dist/cli/main.js [-c URI] [--json] ...args`; never rejects on a non-zero exit. */
export function ferry(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const argv = [CLI_JS];
  if (opts.uri !== undefined) argv.push('-c', opts.uri);
  if (opts.json) argv.push('--json');
  argv.push(...args);
  return new Promise((res, rej) => {
    const cmd = inNetns(opts.netns, [process.execPath, ...argv]);
    execFile(
      cmd.file,
      cmd.args,
      { cwd: REPO_ROOT, env: { ...cleanEnv(), ...opts.env }, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: unknown; killed?: boolean }) | null;
        if (e && typeof e.code !== 'number') {
          if (e.killed) return rej(new Error(`ferry ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
          return rej(e);
        }
        const r: CliResult = { code: e ? (e.code as unknown as number) : 0, stdout, stderr };
        if (opts.json) {
          try {
            r.json = JSON.parse(stdout);
          } catch {
            // Left undefined: the test will say what it got.
          }
        }
        res(r);
      },
    );
  });
}

/** Runs ferry and fails with its output unless it exits 0; returns the result. */
export async function ferryOk(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const r = await ferry(args, opts);
  if (r.code !== 0) throw new Error(`ferry ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** Runs ferryd with `args` (after node and the script) expecting it to exit on its own; resolves code and output. */
export function runDaemonToExit(args: string[], timeoutMs = 20_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; stdout: string }> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [DAEMON_JS, ...args], { cwd: REPO_ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      res({ code, signal, stderr, stdout });
    });
  });
}

/** One row of `ferry list` in human form. */
export interface ListRow {
  id: string;
  name: string;
  state: string;
}

/** Parses the table `ferry list` prints (Id, Name, State; columns padded with spaces). */
export function parseListTable(text: string): ListRow[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const header = lines[0] ?? '';
  const nameAt = header.indexOf('Name');
  const stateAt = header.indexOf('State');
  if (nameAt < 0 || stateAt < 0) throw new Error(`not a list table:\n${text}`);
  return lines.slice(2).map((l) => ({
    id: l.slice(0, nameAt).trim(),
    name: l.slice(nameAt, stateAt).trim(),
    state: l.slice(stateAt).trim(),
  }));
}

/** Parses `Key: value` lines (dominfo, sysinfo). */
export function parseFields(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (m) out[m[1]!.trim()] = m[2]!.trim();
  }
  return out;
}

/** What a status file in RUN_DIR/qemu says, as much as the tests need. */
export interface StatusFileInfo {
  name: string;
  uuid: string;
  pid: number;
  pidStartTime: number;
  serialLog: string;
  state?: string;
  /** ferryd's own fields: `incoming` stays true until finish hands an incoming QEMU the guest. */
  extra?: { incoming?: boolean };
}

/** Reads RUN_DIR/qemu/*.status.json. */
export function readStatusFiles(runDir: string): StatusFileInfo[] {
  const dir = join(runDir, 'qemu');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: StatusFileInfo[] = [];
  for (const n of names) {
    if (!n.endsWith('.status.json')) continue;
    try {
      out.push(JSON.parse(readFileSync(join(dir, n), 'utf8')) as StatusFileInfo);
    } catch {
      // Half-written or removed meanwhile.
    }
  }
  return out;
}

/** The status file of domain `name`, if there is one. */
export function statusOf(runDir: string, name: string): StatusFileInfo | undefined {
  return readStatusFiles(runDir).find((s) => s.name === name);
}

/** Whether `pid` runs (not a zombie), optionally checking it is the process that started at `startTime`. */
export async function processAlive(pid: number, startTime?: number): Promise<boolean> {
  const st = await readProcStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X') return false;
  return startTime === undefined || st.startTime === startTime;
}

/** Pids of QEMU processes whose command line mentions `needle` (a temp dir, a uuid). */
export function qemuPidsMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (!cmdline.startsWith('qemu-system') && !cmdline.includes('/qemu-system')) continue;
    if (!cmdline.includes(needle)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state === 'Z' || state === 'X') continue;
    } catch {
      continue;
    }
    out.push(Number(entry));
  }
  return out;
}

/** The files a process has open (targets of /proc/PID/fd/*). */
export function openFilesOf(pid: number): string[] {
  const out: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      out.push(readlinkSync(`/proc/${pid}/fd/${fd}`));
    } catch {
      // Closed meanwhile.
    }
  }
  return out;
}

/**
 * Polls `fn` until it returns something other than undefined/false, or
 * throws after `timeoutMs` with `what` and the last value/error seen.
 */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    }
    await sleep(intervalMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Stops every daemon started through this module (SIGKILL), kills every
 * QEMU they left (from the status files of every run dir they used, and any
 * QEMU whose command line names one of those dirs), and removes temp dirs.
 */
export async function cleanupAll(): Promise<void> {
  await stopAllDaemons();
  for (const t of daemons.splice(0)) {
    for (const runDir of t.runDirs) await killQemusOf(runDir, t.handle.stateDir);
  }
  for (const dir of tempDirs.splice(0)) {
    for (const pid of qemuPidsMentioning(dir)) killQuietly(pid);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Kills every daemon (not their QEMUs). */
export async function stopAllDaemons(): Promise<void> {
  for (const t of daemons) if (t.handle.alive()) await t.handle.kill9();
}

/** Kills the QEMUs recorded in `runDir`'s status files and any QEMU naming `runDir` or `stateDir`. */
export async function killQemusOf(runDir: string, stateDir?: string): Promise<void> {
  const pids = new Set<number>();
  for (const s of readStatusFiles(runDir)) {
    if (await processAlive(s.pid, s.pidStartTime)) pids.add(s.pid);
  }
  for (const p of qemuPidsMentioning(runDir)) pids.add(p);
  if (stateDir) for (const p of qemuPidsMentioning(stateDir)) pids.add(p);
  for (const pid of pids) killQuietly(pid);
  const deadline = Date.now() + 5_000;
  for (const pid of pids) {
    while ((await processAlive(pid)) && Date.now() < deadline) await sleep(20);
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Gone already.
  }
}

/**
 * Registers the cleanup hooks for a test file. After each test, every
 * daemon started *during* that test is killed together with its QEMUs (so a
 * failed test cannot leave guests behind on a 2-core machine), and
 * `between` runs (e.g. to destroy the guests of a daemon shared by the
 * file's tests through its API; an error it throws fails the test, after
 * the cleanup). After the file,
 * everything else goes: daemons, QEMUs, temp dirs.
 */
export function useDaemonCleanup(between?: () => Promise<void>): void {
  let mark = 0;
  beforeEach(() => {
    mark = daemons.length;
  });
  afterEach(async () => {
    let failure: unknown;
    try {
      if (between) await between();
    } catch (err) {
      failure = err;
    }
    for (const t of daemons.slice(mark)) {
      if (t.handle.alive()) await t.handle.kill9();
      for (const runDir of t.runDirs) await killQemusOf(runDir, t.handle.stateDir);
    }
    // Reported after the cleanup, so that the test shows why (e.g. a shared daemon died).
    if (failure) throw failure;
  });
  afterAll(async () => {
    await cleanupAll();
  });
}

/** Destroys every running domain of the daemon at `uri` and undefines every persistent one. */
/** Between tests on shared daemons: each one running again, with no domain left (destroyed and undefined through the API). */
export async function resetDaemons(handles: ReadonlyArray<FerrydHandle | undefined>): Promise<void> {
  for (const h of handles) {
    if (!h) continue;
    if (!h.alive()) await h.restart();
    await emptyDaemon(h.uri);
  }
}

export async function emptyDaemon(uri: string): Promise<void> {
  const { ApiClient } = await import('../../src/api/client.js');
  const c = await ApiClient.connect(uri);
  try {
    for (const d of await c.call('domain.list', { all: true })) {
      if (d.id !== null) await c.call('domain.destroy', { domain: d.uuid }).catch(() => undefined);
      if (d.persistent) await c.call('domain.undefine', { domain: d.uuid }).catch(() => undefined);
    }
  } finally {
    c.close();
  }
}

/**
 * A `between` hook for {@link useDaemonCleanup}: a daemon that died during
 * the test is restarted for the next one, and the test fails with the end
 * of its log.
 */
export function restartIfDied(get: () => FerrydHandle | undefined): () => Promise<void> {
  return async () => {
    const d = get();
    if (d && !d.alive()) {
      const tail = d.stderr().slice(-3000);
      await d.restart();
      throw new Error(`ferryd died during this test; its log ends:\n${tail}`);
    }
  };
}

