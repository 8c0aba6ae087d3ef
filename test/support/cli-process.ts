/**
 * A `ferry` command run as a child process that the test can watch and
 * signal while it runs (Ctrl-C, SIGKILL), where {@link ferry} in daemon.ts
 * only gives the result once it exited. Same environment and working
 * directory as {@link ferry}; inside a host's network namespace when asked.
 */
import { spawn } from 'node:child_process';
import { CLI_JS, REPO_ROOT, type CliOptions, type CliResult } from './daemon.js';
import { inNetns } from './netns.js';

/** A `ferry` process still running, or ended. */
export interface FerryProcess {
  /** The CLI's own pid (`ip netns exec` execs it in place). */
  readonly pid: number;
  /** What it printed so far. */
  stdout(): string;
  stderr(): string;
  /** Whether it has exited. */
  exited(): boolean;
  /** Sends a signal to the CLI itself. */
  kill(signal: NodeJS.Signals): void;
  /**
   * Resolves when it exits, never rejects: `code` is 128 + the signal's
   * number when a signal ended it (`signal` says which), `json` the parsed
   * stdout in `--json` mode. Killed with SIGKILL after `timeoutMs`.
   */
  done: Promise<CliResult & { signal: NodeJS.Signals | null }>;
}

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

/** Starts `node dist/cli/main.js [-c URI] [--json] ...args` (as {@link ferry} runs it) and returns at once. */
export function spawnFerry(args: string[], opts: CliOptions = {}): FerryProcess {
  const argv = [CLI_JS];
  if (opts.uri !== undefined) argv.push('-c', opts.uri);
  if (opts.json) argv.push('--json');
  argv.push(...args);
  const env = { ...process.env, ...opts.env };
  delete env.FERRY_DEFAULT_URI;
  delete env.FERRY_PKI_DIR;
  const cmd = inNetns(opts.netns, [process.execPath, ...argv]);
  const child = spawn(cmd.file, cmd.args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let exited = false;
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  const done = new Promise<CliResult & { signal: NodeJS.Signals | null }>((res) => {
    child.once('close', (code, signal) => {
      exited = true;
      clearTimeout(timer);
      const r: CliResult & { signal: NodeJS.Signals | null } = { code: code ?? 128 + (signal ? (SIGNAL_NUMBERS[signal] ?? 0) : 0), stdout, stderr, signal };
      if (opts.json) {
        try {
          r.json = JSON.parse(stdout);
        } catch {
          // Left undefined: the test shows what it got.
        }
      }
      res(r);
    });
  });
  return {
    get pid() {
      return child.pid ?? -1;
    },
    stdout: () => stdout,
    stderr: () => stderr,
    exited: () => exited,
    kill: (signal) => {
      if (!exited) child.kill(signal);
    },
    done,
  };
}
