/**
 * Driving the dashboard: Debian's Chromium through playwright-core (its
 * own browser download does not work on these machines), optionally
 * inside a network namespace (a host), and HTTP requests made from inside
 * a namespace, for what another machine sees.
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { REPO_ROOT, makeTempDir } from './daemon.js';

/** Debian's Chromium. */
export const CHROMIUM = '/usr/bin/chromium';

/** Where the browser tests put their screenshots (kept after the run, for people to look at). */
export const ARTIFACTS_DIR = join(REPO_ROOT, 'test-artifacts');

/** Whether Chromium is installed (scripts/setup.sh installs it). */
export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM);
}

/** Headless Chromium, run inside `ns` when given (a wrapper script enters the namespace; Playwright talks over a pipe). */
export async function launchChromium(ns?: string): Promise<Browser> {
  let executablePath = CHROMIUM;
  if (ns !== undefined) {
    executablePath = join(makeTempDir('ferry-chromium-'), 'chromium-in-netns');
    writeFileSync(executablePath, `#!/bin/sh\nexec ip netns exec ${ns} ${CHROMIUM} "$@"\n`);
    chmodSync(executablePath, 0o755);
  }
  // As root Chromium needs --no-sandbox (PLATFORM.md).
  return chromium.launch({ executablePath, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'], timeout: 60_000 });
}

/** A screenshot path under test-artifacts/SUITE/, the folder made. */
export function artifactPath(suite: string, name: string): string {
  const dir = join(ARTIFACTS_DIR, suite);
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}

/** What an HTTP request answered. */
export interface HttpAnswer {
  status: number;
  body: string;
  headers: Record<string, string>;
}

/**
 * Makes one HTTP request from inside namespace `ns` (another machine, when
 * `ns` is not the server's) with node:http, which sends the headers as
 * given (`Host` too, unlike fetch); bounded by 10 s.
 */
export function httpFrom(ns: string | undefined, url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<HttpAnswer> {
  const script = `const [url, init] = JSON.parse(process.argv[1]);
const req = require('node:http').request(url, { method: init.method ?? 'GET', headers: init.headers ?? {}, timeout: 10000 }, (res) => {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (d) => { body += d; if (body.length > 65536) res.destroy(); });
  const done = () => process.stdout.write(JSON.stringify({ status: res.statusCode, body, headers: res.headers }));
  res.on('end', done);
  // An event stream never ends: its first bytes are the answer.
  if ((res.headers['content-type'] ?? '').startsWith('text/event-stream')) res.once('data', () => { done(); process.exit(0); });
});
req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
req.on('error', (e) => { process.stderr.write(String(e)); process.exit(1); });
req.end(init.body);`;
  const argv = [process.execPath, '-e', script, JSON.stringify([url, init])];
  const [file, args] = ns === undefined ? [argv[0]!, argv.slice(1)] : ['ip', ['netns', 'exec', ns, ...argv]];
  return new Promise((resolve, reject) =>
    execFile(file, args, { timeout: 15_000, encoding: 'utf8' }, (err, stdout, stderr) => (err ? reject(new Error(`request to ${url} failed: ${stderr || err.message}`)) : resolve(JSON.parse(stdout) as HttpAnswer))),
  );
}
