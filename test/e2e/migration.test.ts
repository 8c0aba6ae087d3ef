/**
 * Live migration end to end: two ferryd hosts (two network namespaces
 * joined by a veth link when the machine allows it, else two daemons on
 * loopback), real QEMU (TCG) running the test guest, `ferry migrate` driven
 * the way a user would, and checks of what a user would look at: `list`,
 * `domstate --reason`, `dominfo`, `dumpxml`, `domjobinfo`, the guest's
 * heartbeat on both hosts' serial logs (the counter must carry on across
 * the migration: destination's first = source's last + 1, no CORRUPT), and
 * the QEMU processes themselves.
 *
 * Needs `npm run build` and `make -C guest`. At most two QEMUs at a time
 * (one guest, plus its incoming copy during a migration; the prepare
 * refusal test has one guest on each host).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, constants as fsConstants, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/api/client.js';
import type { LifecycleEvent } from '../../src/api/protocol.js';
import {
  CLI_JS,
  REPO_ROOT,
  ferry,
  makeTempDir,
  parseFields,
  parseListTable,
  processAlive,
  qemuPidsMentioning,
  readStatusFiles,
  sleep,
  startDaemon,
  statusOf,
  useDaemonCleanup,
  waitFor,
  type CliResult,
  type FerrydHandle,
} from '../support/daemon.js';
import { serialLogFile, testGuestXml } from '../support/guest-xml.js';
import { createHostPair, inNetns, netnsAvailable, type HostPair } from '../support/netns.js';
import { checkMigrationContinuity, findCounterAnomalies, parseSerialLog } from '../support/serial.js';

// ------------------------------------------------------------------ hosts

/** One host as the tests see it. */
interface TestHost {
  label: 'A' | 'B';
  d: FerrydHandle;
  /** Network namespace (undefined in the loopback fallback). */
  ns: string | undefined;
  /** Address of its TCP listener. */
  addr: string;
  port: number;
  /** `ferry+tcp://ADDR:PORT/system`: how the other host (and the CLI on it) reaches this one. */
  tcpUri: string;
}

const USE_NETNS = netnsAvailable();
let pair: HostPair | undefined;
let A: TestHost;
let B: TestHost;
let xmlDir: string;

/** A free TCP port on 127.0.0.1 (loopback fallback: fixed ports so that a restarted daemon keeps its URI). */
function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => res(port));
    });
  });
}

async function startHost(label: 'A' | 'B', ns: string | undefined, addr: string, port: number): Promise<TestHost> {
  const d = await startDaemon({ hostName: `mig-host-${label.toLowerCase()}`, listenTcp: `${addr}:${port}`, ...(ns ? { netns: ns } : {}) });
  expect(d.tcpPort).toBe(port);
  return { label, d, ns, addr, port, tcpUri: `ferry+tcp://${addr}:${port}/system` };
}

/** Between tests: both daemons up, and no domain left on either (destroyed and undefined through the API). */
async function resetHosts(): Promise<void> {
  for (const h of [A, B]) {
    if (!h) continue;
    if (!h.d.alive()) await h.d.restart();
    const c = await ApiClient.connect(h.d.uri);
    try {
      for (const d of await c.call('domain.list', { all: true })) {
        if (d.id !== null) await c.call('domain.destroy', { domain: d.uuid }).catch(() => undefined);
        if (d.persistent) await c.call('domain.undefine', { domain: d.uuid }).catch(() => undefined);
      }
    } finally {
      c.close();
    }
  }
}

useDaemonCleanup(resetHosts);

beforeAll(async () => {
  xmlDir = makeTempDir('ferry-mig-xml-');
  if (USE_NETNS) {
    pair = createHostPair('ferrymig', 57);
    A = await startHost('A', pair.a.ns, pair.a.address, 16609);
    B = await startHost('B', pair.b.ns, pair.b.address, 16609);
  } else {
    A = await startHost('A', undefined, '127.0.0.1', await freePort());
    B = await startHost('B', undefined, '127.0.0.1', await freePort());
  }
});

afterAll(() => {
  pair?.destroy();
});

// ------------------------------------------------------------------ CLI helpers

/** `ferry -c <host's unix socket> ...`, run on that host (inside its namespace). */
function on(h: TestHost, args: string[], opts: { json?: boolean; timeoutMs?: number } = {}): Promise<CliResult> {
  return ferry(args, { uri: h.d.uri, ...(h.ns ? { netns: h.ns } : {}), ...opts });
}

async function ok(h: TestHost, args: string[]): Promise<CliResult> {
  const r = await on(h, args);
  expect(r.code, `host ${h.label}: ferry ${args.join(' ')}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(0);
  return r;
}

/** `migrate` on A towards B (extra args before the domain); --json. */
function migrate(name: string, flags: string[], opts: { timeoutMs?: number; dest?: string } = {}): Promise<CliResult> {
  return on(A, ['migrate', ...flags, name, opts.dest ?? B.tcpUri], { json: true, timeoutMs: opts.timeoutMs ?? 90_000 });
}

function expectOk(r: CliResult, what: string): void {
  expect(r.code, `${what}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(0);
}

/** A command that must fail with `code` (and `number`, when given) in --json mode; returns the message. */
function expectError(r: CliResult, code: string | string[], what: string, number?: number): string {
  expect(r.code, `${what} should fail\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(1);
  const err = r.json?.error;
  expect(err, `${what}: no JSON error in ${r.stdout}`).toBeDefined();
  if (Array.isArray(code)) expect(code, `${what}: ${JSON.stringify(err)}`).toContain(err.code);
  else expect(err.code, `${what}: ${err.message}`).toBe(code);
  if (number !== undefined) expect(err.number, `${what}: ${err.message}`).toBe(number);
  expect(typeof err.message).toBe('string');
  return err.message as string;
}

async function domstate(h: TestHost, name: string): Promise<string> {
  const r = await on(h, ['domstate', '--reason', name]);
  return (r.code === 0 ? r.stdout : `ERROR ${r.stderr}`).trim();
}

async function listRows(h: TestHost, ...args: string[]) {
  return parseListTable((await ok(h, ['list', ...args])).stdout);
}

async function dominfo(h: TestHost, name: string): Promise<Record<string, string>> {
  return parseFields((await ok(h, ['dominfo', name])).stdout);
}

/** A spawned `ferry` whose process the test signals itself (Ctrl-C, SIGKILL). */
function spawnFerry(h: TestHost, args: string[]): { pid: number; kill(sig: NodeJS.Signals): void; done: Promise<CliResult> } {
  const cmd = inNetns(h.ns, [process.execPath, CLI_JS, '-c', h.d.uri, '--json', ...args]);
  // `ip netns exec` execs the command in place: the child's pid is the CLI's own.
  const child = spawn(cmd.file, cmd.args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<CliResult>((res) => {
    child.once('close', (code, signal) => {
      const r: CliResult = { code: code ?? (signal ? 128 : -1), stdout, stderr };
      try {
        r.json = JSON.parse(stdout);
      } catch {
        // Not JSON (e.g. killed).
      }
      res(r);
    });
  });
  return { pid: child.pid!, kill: (sig) => child.kill(sig), done };
}

// ------------------------------------------------------------------ guests

/** A memory-writing guest: 64 MiB working set rewritten at 30 MiB/s, a heartbeat every 200 ms. */
const BUSY = 'ws=64 rate=30 hb=200';
/** A light guest for the tests about definitions and refusals. */
const LIGHT = 'ws=8 rate=5 hb=200';

let guestSeq = 0;
/** A unique domain name per test. */
function guestName(tag: string): string {
  return `mig-${tag}-${++guestSeq}`;
}

interface Guest {
  name: string;
  uuid: string;
  xmlPath: string;
  xml: string;
}

/** The API of a host for set-up (not what the tests check). */
async function api<T>(h: TestHost, fn: (c: ApiClient) => Promise<T>): Promise<T> {
  const c = await ApiClient.connect(h.d.uri);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

/**
 * Starts a fresh guest on A (persistent: define + start; transient: create)
 * and waits for its first heartbeats in A's serial log.
 */
async function bootGuest(tag: string, o: { transient?: boolean; cmdline?: string; extraDevices?: string; on?: TestHost; name?: string; uuid?: string } = {}): Promise<Guest> {
  const h = o.on ?? A;
  const name = o.name ?? guestName(tag);
  const uuid = o.uuid ?? randomUUID();
  const xml = testGuestXml({ name, uuid, memoryKiB: 262148, cmdline: o.cmdline ?? BUSY, ...(o.extraDevices ? { extraDevices: o.extraDevices } : {}) });
  const xmlPath = join(xmlDir, `${name}.xml`);
  writeFileSync(xmlPath, xml);
  await api(h, async (c) => {
    if (o.transient) await c.call('domain.create', { xml });
    else {
      await c.call('domain.define', { xml });
      await c.call('domain.start', { domain: name });
    }
  });
  await waitHeartbeats(h, name, 3);
  return { name, uuid, xmlPath, xml };
}

/** The host's serial log file of `name` (STATE_DIR/logs/NAME.serial.log). */
function serialText(h: TestHost, name: string): string {
  return serialLogFile(h.d.stateDir, name).text;
}

function lastCounter(h: TestHost, name: string): number {
  return parseSerialLog(serialText(h, name)).lastHeartbeat?.counter ?? 0;
}

/** Waits until the host's serial log of `name` has a heartbeat above `counter` (default: at least `n` heartbeats). */
async function waitHeartbeats(h: TestHost, name: string, n: number, timeoutMs = 30_000): Promise<void> {
  await waitFor(`${n} heartbeats of '${name}' on ${h.label}`, () => parseSerialLog(serialText(h, name)).heartbeats.length >= n, timeoutMs, 100);
}

async function waitCounterAbove(h: TestHost, name: string, counter: number, timeoutMs = 20_000): Promise<void> {
  await waitFor(`heartbeat of '${name}' above ${counter} on ${h.label}`, () => lastCounter(h, name) > counter, timeoutMs, 100);
}

/**
 * After a migration of `name` (running on B as `destName`): B's heartbeats
 * carry on from A's last one. Waits until B printed a few more (~1 s).
 */
async function expectContinuity(name: string, destName = name): Promise<void> {
  const srcText = serialText(A, name);
  const srcLast = parseSerialLog(srcText).lastHeartbeat?.counter ?? 0;
  expect(srcLast, `A's serial log of '${name}' has heartbeats`).toBeGreaterThan(0);
  await waitCounterAbove(B, destName, srcLast + 4);
  const c = checkMigrationContinuity(srcText, serialText(B, destName));
  expect(c.problems, `heartbeat continuity of '${name}' (A's last ${c.sourceLast?.counter}, B's first ${c.destinationFirst?.counter})`).toEqual([]);
  expect(c.destinationFirst?.counter).toBe(srcLast + 1);
  // B's QEMU did not boot the guest again: no boot line of its own.
  expect(parseSerialLog(serialText(B, destName)).boot, `'${destName}' booted afresh on B`).toBeUndefined();
}

/** A's guest carries on with no restart: one boot, counters strictly +1, no CORRUPT, and it still prints. */
async function expectStillRunningOnA(name: string): Promise<void> {
  const before = lastCounter(A, name);
  await waitCounterAbove(A, name, before + 2);
  const log = parseSerialLog(serialText(A, name));
  expect(log.events.filter((e) => e.kind === 'boot'), `'${name}' booted more than once on A`).toHaveLength(1);
  expect(findCounterAnomalies(log.heartbeats, 1), `heartbeat anomalies of '${name}' on A`).toEqual([]);
  expect(log.corrupt, `'${name}' reported corruption`).toBe(false);
  expect(await domstate(A, name)).toMatch(/^running/);
}

/** The QEMU of `name` on A, from A's status file. */
function qemuOf(h: TestHost, name: string): { pid: number; pidStartTime: number } {
  const st = statusOf(h.d.runDir, name);
  expect(st, `status file of '${name}' on ${h.label}`).toBeDefined();
  return { pid: st!.pid, pidStartTime: st!.pidStartTime };
}

async function expectQemuGone(q: { pid: number; pidStartTime: number }, what: string): Promise<void> {
  await waitFor(`${what}: QEMU pid ${q.pid} to exit`, async () => !(await processAlive(q.pid, q.pidStartTime)), 15_000, 50);
}

/** B has no running (or paused) domain and no QEMU. */
async function expectNothingOnB(name?: string): Promise<void> {
  await waitFor('no QEMU on B', () => qemuPidsMentioning(B.d.runDir).length === 0 && readStatusFiles(B.d.runDir).length === 0, 15_000, 100);
  const rows = await listRows(B, '--all');
  expect(rows, "B's list --all").toEqual([]);
  if (name) expect(await domstate(B, name)).toMatch(/^ERROR/);
}

/** Waits until domjobinfo on A says the migration has sent data. */
async function waitDataProcessed(name: string): Promise<void> {
  await waitFor(
    `domjobinfo of '${name}' to show data processed`,
    () => api(A, async (c) => ((await c.callRaw('domain.jobInfo', { domain: name })) as { data_processed?: number }).data_processed! > 0),
    30_000,
    100,
  );
}

// ------------------------------------------------------------------ tests

describe('live migration', () => {
  for (const mode of ['p2p', 'managed'] as const) {
    it(`${mode}: a memory-writing guest moves to B with its heartbeat counter intact`, async () => {
      let t0 = Date.now(); const T = (w: string) => { console.log(w, Date.now() - t0); t0 = Date.now(); };
      const g = await bootGuest(mode);
      T('boot');
      const srcQemu = qemuOf(A, g.name);

      const r = await migrate(g.name, mode === 'p2p' ? ['--live', '--p2p'] : ['--live']);
      expectOk(r, `migrate ${mode}`);
      expect(r.json.result).toMatchObject({ state: 'running', reason: 'migrated', persistent: false });
      expect(r.json.stats.downtime, 'stats.downtime').toEqual(expect.any(Number));
      expect(r.json.stats.downtime).toBeGreaterThanOrEqual(0);
      expect(r.json.stats.data_processed, 'stats.data_processed').toBeGreaterThan(0);
      expect(r.json.wallTimeMs).toBeGreaterThan(0);
      T('migrate');

      expect((await listRows(A)).map((x) => x.name), "A's list of running domains").not.toContain(g.name);
      expect(await domstate(A, g.name)).toBe('shut off (migrated)');
      expect(await domstate(B, g.name)).toBe('running (migrated)');
      expect((await listRows(B)).find((x) => x.name === g.name)?.state).toBe('running');
      T('cli checks');
      await expectContinuity(g.name);
      T('continuity');
      await expectQemuGone(srcQemu, "A's QEMU");
      expect(statusOf(A.d.runDir, g.name), "A's status file").toBeUndefined();
    });
  }
});
