/**
 * Debian's stock `virsh` (package libvirt-clients) against ferryd's libvirt
 * protocol listeners: one-shot commands with a deadline, `virsh event
 * --loop` followed line by line, connection URI builders, and parsers of
 * what virsh prints (its `list` table, `Key: value` blocks).
 *
 * virsh runs with LANG=C (so its messages are the English ones the tests
 * match), without LIBVIRT_DEFAULT_URI, and with HOME and the XDG dirs in a
 * temp dir (virsh writes ~/.cache/libvirt and reads ~/.config/libvirt).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, parseFields, parseListTable, REPO_ROOT, type ListRow } from './daemon.js';
import { inNetns } from './netns.js';

/** The virsh of the libvirt-clients package. */
export const VIRSH = '/usr/bin/virsh';

/** What {@link virsh} resolves. */
export interface VirshResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@link virsh}. */
export interface VirshOptions {
  /** Deadline; virsh is killed (SIGKILL) and the call rejects after it. Default 30 s. */
  timeoutMs?: number;
  /** Run virsh inside this network namespace (as a user on that host). */
  netns?: string;
}

let home: string | undefined;

/** A private HOME for virsh, made once per test file (and again if a cleanup removed it). */
function virshHome(): string {
  if (home === undefined || !existsSync(home)) {
    home = makeTempDir('ferry-virsh-home-');
    for (const d of ['.cache', '.config', 'run']) mkdirSync(join(home, d), { recursive: true });
  }
  return home;
}

/** The environment virsh (or python3-libvirt) runs in: C locale, no default URI, a private HOME. */
export function libvirtClientEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('LIBVIRT_') || k.startsWith('VIRSH_') || k.startsWith('LC_')) delete env[k];
  const h = virshHome();
  return {
    ...env,
    LANG: 'C',
    LC_ALL: 'C',
    HOME: h,
    XDG_CACHE_HOME: join(h, '.cache'),
    XDG_CONFIG_HOME: join(h, '.config'),
    XDG_RUNTIME_DIR: join(h, 'run'),
  };
}

/** `qemu+unix:///system?socket=PATH`: ferryd's `--libvirt-socket`. */
export function libvirtUnixUri(path: string): string {
  return `qemu+unix:///system?socket=${encodeURI(path)}`;
}

/** `qemu+tcp://HOST:PORT/system`: ferryd's `--libvirt-listen-tcp` (no authentication). */
export function libvirtTcpUri(host: string, port: number): string {
  return `qemu+tcp://${host.includes(':') ? `[${host}]` : host}:${port}/system`;
}

/** `qemu+tls://HOST:PORT/system?pkipath=DIR`: ferryd's `--libvirt-listen-tls`, with the client credentials in DIR. */
export function libvirtTlsUri(host: string, port: number, pkiDir: string): string {
  return `qemu+tls://${host.includes(':') ? `[${host}]` : host}:${port}/system?pkipath=${encodeURI(pkiDir)}`;
}

function shown(uri: string, args: string[]): string {
  return `virsh -c '${uri}' ${args.join(' ')}`;
}

/**
 * Runs `virsh -c URI ...args`. Resolves on any exit status; rejects when
 * virsh does not finish within the deadline (it is killed) or cannot run.
 */
export function virsh(uri: string, args: string[], opts: VirshOptions = {}): Promise<VirshResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const cmd = inNetns(opts.netns, [VIRSH, '-c', uri, ...args]);
    const child = spawn(cmd.file, cmd.args, { cwd: REPO_ROOT, env: libvirtClientEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${shown(uri, args)} could not run: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(new Error(`${shown(uri, args)} did not finish within ${timeoutMs} ms (killed)\nstdout: ${stdout}\nstderr: ${stderr}`));
      } else if (code === null) {
        reject(new Error(`${shown(uri, args)} was killed by ${signal}\nstdout: ${stdout}\nstderr: ${stderr}`));
      } else {
        resolve({ code, stdout, stderr });
      }
    });
  });
}

/** Runs virsh and throws with its output unless it exits 0. */
export async function virshOk(uri: string, args: string[], opts: VirshOptions = {}): Promise<VirshResult> {
  const r = await virsh(uri, args, opts);
  if (r.code !== 0) throw new Error(`${shown(uri, args)} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** A running `virsh event --loop`: its stdout so far, line by line. */
export interface VirshEventLoop {
  /** Complete lines printed so far. */
  lines(): string[];
  /** Everything virsh wrote on stderr so far. */
  stderr(): string;
  /** Whether virsh has exited (it should not, until {@link stop}). */
  exited(): boolean;
  /** Interrupts virsh (SIGINT, as Ctrl-C; SIGKILL after 5 s) and resolves when it has gone. */
  stop(): Promise<void>;
}

/**
 * Spawns `virsh -c URI event --loop --all` (or `virsh -c URI ...args`).
 * stdout is line-buffered (stdbuf) so that each event arrives as virsh
 * prints it. Stop it with {@link VirshEventLoop.stop}.
 */
export function startVirshEventLoop(uri: string, args: string[] = ['event', '--loop', '--all'], opts: { netns?: string } = {}): VirshEventLoop {
  const cmd = inNetns(opts.netns, ['stdbuf', '-oL', VIRSH, '-c', uri, ...args]);
  const child = spawn(cmd.file, cmd.args, { cwd: REPO_ROOT, env: libvirtClientEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let gone = false;
  const closed = new Promise<void>((resolve) => {
    child.once('close', () => {
      gone = true;
      resolve();
    });
  });
  child.once('error', (e) => {
    err += `[harness] ${e.message}\n`;
  });
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  return {
    lines: () => out.split('\n').slice(0, -1),
    stderr: () => err,
    exited: () => gone,
    stop: async () => {
      if (gone) return;
      child.kill('SIGINT');
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await closed;
      clearTimeout(t);
    },
  };
}

/** Parses `virsh list` (` Id   Name   State`, a dashes line, then a row per domain; `-` for the id of an inactive one). */
export function parseVirshList(text: string): ListRow[] {
  return parseListTable(text);
}

/** Parses virsh's `Key:   value` blocks (`dominfo`, `nodeinfo`, `domjobinfo`, `version`). */
export function parseVirshFields(text: string): Record<string, string> {
  return parseFields(text);
}

/** `virsh list ...args` parsed; throws unless virsh exits 0. */
export async function virshList(uri: string, args: string[] = ['--all'], opts: VirshOptions = {}): Promise<ListRow[]> {
  return parseVirshList((await virshOk(uri, ['list', ...args], opts)).stdout);
}

/** The names `virsh list ...args` shows, sorted. */
export async function virshListNames(uri: string, args: string[] = ['--all'], opts: VirshOptions = {}): Promise<string[]> {
  return (await virshList(uri, args, opts)).map((r) => r.name).sort();
}
