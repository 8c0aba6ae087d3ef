/**
 * Starting and stopping a ferryd for a benchmark: temp state and run
 * directories, optionally inside a network namespace and serving libvirt's
 * protocol on TCP, with everything it started (its QEMUs, found through
 * their status files) killed at clean-up.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readStatusFiles } from '../test/support/daemon.js';
import { DAEMON, killIf, onCleanup, sleep } from './lib.js';

export interface FerrydOptions {
  /** Directory for this daemon's state, run dir and log. */
  dir: string;
  hostName: string;
  /** Network namespace to run in (none: this one). */
  netns?: string;
  /** `HOST:PORT` for `--listen-tcp ... --insecure`. */
  listenTcp?: string;
  /** `HOST:PORT` for `--libvirt-listen-tcp ... --insecure`: libvirt's wire protocol, for stock virsh (`qemu+tcp://HOST:PORT/system`). */
  libvirtTcp?: string;
  /** `HOST:PORT` for `--listen-tls` (needs {@link tlsDir}). */
  listenTls?: string;
  /** `--tls-dir`: server credentials for `--listen-tls`, client credentials for peer connections. */
  tlsDir?: string;
  /** More ferryd arguments, appended last (e.g. `--max-outgoing-migrations 4`). */
  extraArgs?: string[];
}

export interface Ferryd {
  pid: number;
  stateDir: string;
  runDir: string;
  logPath: string;
  socketPath: string;
  /** `ferry+unix:///system?socket=...` */
  unixUri: string;
  /** Milliseconds from spawn to the `ready:` log line. */
  readyMs: number;
  /** Kills the QEMUs it runs (status files), stops the daemon; idempotent, synchronous. */
  stop(): void;
}

/** pids of the QEMUs a ferryd runs, from its status files (read as the e2e harness reads them). */
export function qemuPidsOf(runDir: string): number[] {
  return readStatusFiles(runDir)
    .map((s) => s.pid)
    .filter((pid) => typeof pid === 'number');
}

/** Starts a ferryd with `--accel tcg` and waits for its `ready:` line. */
export async function startFerryd(o: FerrydOptions): Promise<Ferryd> {
  const stateDir = join(o.dir, 'state');
  const runDir = join(o.dir, 'run');
  const logPath = join(o.dir, 'ferryd.log');
  const args = [DAEMON, '--state-dir', stateDir, '--run-dir', runDir, '--accel', 'tcg', '--host-name', o.hostName];
  if (o.listenTcp) args.push('--listen-tcp', o.listenTcp);
  if (o.libvirtTcp) args.push('--libvirt-listen-tcp', o.libvirtTcp);
  if (o.listenTcp || o.libvirtTcp) args.push('--insecure');
  if (o.tlsDir) args.push('--tls-dir', o.tlsDir);
  if (o.listenTls) args.push('--listen-tls', o.listenTls);
  args.push(...(o.extraArgs ?? []));
  const [file, argv] = o.netns ? ['ip', ['netns', 'exec', o.netns, process.execPath, ...args]] : [process.execPath, args];
  mkdirSync(o.dir, { recursive: true });
  const fd = openSync(logPath, 'w');
  const t0 = process.hrtime.bigint();
  // Own process group: a Ctrl-C at the terminal reaches only the benchmark, which then cleans up in order.
  const child = spawn(file, argv, { stdio: ['ignore', 'ignore', fd], detached: true });
  closeSync(fd);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`cannot start ferryd (${file})`);
  child.unref();
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    for (const q of qemuPidsOf(runDir)) killIf(q, 'qemu', 'SIGKILL');
    if (killIf(pid, DAEMON, 'SIGTERM')) {
      // Synchronous wait (clean-up may run from the 'exit' handler): up to 3 s.
      const end = Date.now() + 3000;
      while (Date.now() < end && existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(safeRead(`/proc/${pid}/status`))) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      }
      killIf(pid, DAEMON, 'SIGKILL');
    }
    // Anything it started after our sweep (unlikely): sweep again.
    for (const q of qemuPidsOf(runDir)) killIf(q, 'qemu', 'SIGKILL');
  };
  const unregister = onCleanup(`ferryd ${o.hostName}`, stop);
  const end = Date.now() + 30_000;
  let readyMs = Number.NaN;
  while (Date.now() < end) {
    const log = safeRead(logPath);
    if (/ready:/.test(log)) {
      readyMs = Number(process.hrtime.bigint() - t0) / 1e6;
      break;
    }
    if (/cannot start/.test(log) || child.exitCode !== null) throw new Error(`ferryd ${o.hostName} did not start:\n${log}`);
    await sleep(10);
  }
  if (!Number.isFinite(readyMs)) throw new Error(`ferryd ${o.hostName} not ready after 30 s:\n${safeRead(logPath)}`);
  const socketPath = join(runDir, 'ferryd.sock');
  return {
    pid,
    stateDir,
    runDir,
    logPath,
    socketPath,
    unixUri: `ferry+unix:///system?socket=${socketPath}`,
    readyMs,
    stop() {
      stop();
      unregister();
    },
  };
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
