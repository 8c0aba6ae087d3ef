/**
 * Live migration end to end: two ferryd hosts (two network namespaces
 * joined by a veth link when the machine allows it, else two daemons on
 * loopback), real QEMU (TCG) running the test guest, `ferry migrate` driven
 * the way a user would, and checks of what a user would look at: `list`,
 * `domstate --reason`, `dominfo`, `dumpxml`, `domjobinfo`, the guest's
 * heartbeat in both hosts' serial logs (the counter carries on across the
 * migration: the destination's first = the source's last + 1, no CORRUPT),
 * and the QEMU processes themselves.
 *
 * Needs `npm run build` and `make -C guest`. At most two QEMUs at a time
 * (one guest and its incoming copy; the prepare-refusal test has one guest
 * on each host).
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, constants as fsConstants, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/api/client.js';
import type { LifecycleEvent } from '../../src/api/protocol.js';
import { MIGRATION_FLAGS, MIGRATION_PARAMS } from '../../src/flags/index.js';
import {
  resetDaemons,
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
import { testGuestXml } from '../support/guest-xml.js';
import { createHostPair, inNetns, netnsAvailable, type HostPair } from '../support/netns.js';
import { expectContinuity as continuityAfter, expectHeartbeatCarriesOn, lastCounter, serialText, waitCounterAbove, waitHeartbeats } from '../support/heartbeat.js';
import { findCounterAnomalies, parseSerialLog } from '../support/serial.js';

// ------------------------------------------------------------------ hosts

/** One host as the tests see it. */
interface TestHost {
  label: 'A' | 'B';
  d: FerrydHandle;
  /** Network namespace (undefined in the loopback fallback). */
  ns: string | undefined;
  /** Address of its network interface (the veth in its namespace, or 127.0.0.1). */
  addr: string;
  /** `ferry+tcp://ADDR:PORT/system`: how the other host reaches this one. */
  tcpUri: string;
}

/** FERRY_E2E_NO_NETNS=1 forces the loopback fallback (to check it on a machine that has namespaces). */
const USE_NETNS = !process.env.FERRY_E2E_NO_NETNS && netnsAvailable();
let pair: HostPair | undefined;
let A: TestHost;
let B: TestHost;
let xmlDir: string;
const varTmpDirs: string[] = [];

/** A free TCP port on 127.0.0.1 (loopback fallback: fixed ports, so that a restarted daemon keeps its URI). */
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
  return { label, d, ns, addr, tcpUri: `ferry+tcp://${addr}:${port}/system` };
}

useDaemonCleanup(() => resetDaemons([A?.d, B?.d]));

beforeAll(async () => {
  xmlDir = makeTempDir('ferry-mig-xml-');
  if (USE_NETNS) {
    // Unique per process: another run of this file (e.g. a full e2e run) must not delete our namespaces.
    pair = createHostPair(`fmig${process.pid}`, 57);
    A = await startHost('A', pair.a.ns, pair.a.address, 16609);
    B = await startHost('B', pair.b.ns, pair.b.address, 16609);
  } else {
    A = await startHost('A', undefined, '127.0.0.1', await freePort());
    B = await startHost('B', undefined, '127.0.0.1', await freePort());
  }
});

afterAll(() => {
  pair?.destroy();
  for (const d of varTmpDirs) rmSync(d, { recursive: true, force: true });
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

/** `ferry --json migrate FLAGS... NAME DEST` on A, towards B unless `dest` says otherwise. */
function migrate(name: string, flags: string[], opts: { timeoutMs?: number; dest?: string } = {}): Promise<CliResult> {
  return on(A, ['migrate', ...flags, name, opts.dest ?? B.tcpUri], { json: true, timeoutMs: opts.timeoutMs ?? 90_000 });
}

function expectOk(r: CliResult, what: string): void {
  expect(r.code, `${what}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(0);
}

/** A --json command that must fail with `code` (one of them, if a list) and `number`; returns the message. */
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

/** `domstate --reason NAME`, or `ERROR <stderr>`. */
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

/** One row of `ferry --json list --all`. */
interface Row {
  name: string;
  uuid: string;
  id: number | null;
  state: string;
  reason: string;
  persistent: boolean;
}

/** `ferry --json list --all` on a host, as `name -> "state (reason)" [persistent|transient]` plus the rows. */
async function view(h: TestHost): Promise<{ rows: Row[]; of(name: string): string | undefined }> {
  const r = await on(h, ['list', '--all'], { json: true });
  expectOk(r, `list --all on ${h.label}`);
  const rows = r.json as Row[];
  return {
    rows,
    of: (name) => {
      const x = rows.find((y) => y.name === name);
      return x && `${x.state} (${x.reason}) ${x.persistent ? 'persistent' : 'transient'}`;
    },
  };
}

/** A spawned `ferry --json` whose process the test signals itself (Ctrl-C, SIGKILL). */
function spawnFerry(h: TestHost, args: string[]): { kill(sig: NodeJS.Signals): void; done: Promise<CliResult> } {
  const cmd = inNetns(h.ns, [process.execPath, CLI_JS, '-c', h.d.uri, '--json', ...args]);
  // `ip netns exec` execs the command in place: the child is the CLI itself, and gets the signal.
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
  return { kill: (sig) => child.kill(sig), done };
}

/** The API of a host, for set-up and for polling (what the tests assert goes through the CLI). */
async function api<T>(h: TestHost, fn: (c: ApiClient) => Promise<T>): Promise<T> {
  const c = await ApiClient.connect(h.d.uri);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

// ------------------------------------------------------------------ guests

/** A memory-writing guest: 64 MiB working set rewritten at 30 MiB/s, a heartbeat every 200 ms. */
const BUSY = 'ws=64 rate=30 hb=200';
/** A light guest for the tests about definitions and refusals. */
const LIGHT = 'ws=8 rate=5 hb=200';
const TITLE = '<title>Ferry e2e test guest</title>';

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

/**
 * Starts a fresh guest (persistent: define + start; transient: create) on
 * A unless `on` says otherwise, and waits for its first heartbeats.
 */
async function bootGuest(tag: string, o: { transient?: boolean; cmdline?: string; extraDevices?: string; on?: TestHost; name?: string } = {}): Promise<Guest> {
  const h = o.on ?? A;
  const name = o.name ?? guestName(tag);
  const uuid = randomUUID();
  const xml = testGuestXml({ name, uuid, memoryKiB: 262148, cmdline: o.cmdline ?? BUSY, ...(o.extraDevices ? { extraDevices: o.extraDevices } : {}) });
  const xmlPath = join(xmlDir, `${name}-${h.label}.xml`);
  writeFileSync(xmlPath, xml);
  await api(h, async (c) => {
    if (o.transient) await c.call('domain.create', { xml });
    else {
      await c.call('domain.define', { xml });
      await c.call('domain.start', { domain: name });
    }
  });
  await waitHeartbeats(h, name);
  return { name, uuid, xmlPath, xml };
}

/** After a migration of `name` from `from` (default A) to `to` (default B, there called `destName`): see {@link continuityAfter}. */
function expectContinuity(name: string, destName = name, from: TestHost = A, to: TestHost = B): Promise<void> {
  return continuityAfter(name, from, to, destName);
}

/** A's guest carries on with no restart: one boot, counters +1 each, no CORRUPT, and it still prints. */
function expectHeartbeatOnA(name: string): Promise<void> {
  return expectHeartbeatCarriesOn(A, name);
}

interface QemuId {
  pid: number;
  pidStartTime: number;
}

/** The QEMU of `name` on a host, from its status file. */
function qemuOf(h: TestHost, name: string): QemuId {
  const st = statusOf(h.d.runDir, name);
  expect(st, `status file of '${name}' on ${h.label}`).toBeDefined();
  return { pid: st!.pid, pidStartTime: st!.pidStartTime };
}

async function expectQemuGone(q: QemuId, what: string): Promise<void> {
  await waitFor(`${what}: QEMU pid ${q.pid} to exit`, async () => !(await processAlive(q.pid, q.pidStartTime)), 15_000, 50);
}

/** B has no domain (not even a definition) and no QEMU. */
async function expectNothingOnB(): Promise<void> {
  await waitFor('no QEMU on B', () => qemuPidsMentioning(B.d.runDir).length === 0 && readStatusFiles(B.d.runDir).length === 0, 15_000, 100);
  expect((await view(B)).rows, "B's list --all").toEqual([]);
}

/** Waits until the migration job of `name` on A has sent data (domjobinfo's data processed). */
async function waitDataProcessed(name: string): Promise<void> {
  await waitFor(
    `domjobinfo of '${name}' to show data processed`,
    () => api(A, async (c) => ((await c.callRaw('domain.jobInfo', { domain: name })) as { data_processed?: number }).data_processed! > 0),
    30_000,
    100,
  );
}

/** Samples a host's serial log of `name` twice `ms` apart: a paused guest prints nothing. */
async function expectNoNewHeartbeats(h: TestHost, name: string, ms = 1200): Promise<void> {
  const before = serialText(h, name);
  await sleep(ms); // Deliberate: showing the absence of heartbeats takes a while (hb=200: ~6 if it ran).
  expect(serialText(h, name).length, `'${name}' wrote to its serial port on ${h.label} while paused`).toBe(before.length);
}

/** A `--bandwidth 20` live migration of a BUSY guest (30 MiB/s of rewrites): it cannot converge on its own. */
function slowMigration(name: string): Promise<CliResult> {
  return migrate(name, ['--live', '--p2p', '--bandwidth', '20'], { timeoutMs: 120_000 });
}

/**
 * After a failed migration: exactly one copy, on A, in the same QEMU, its
 * heartbeat carrying on with no restart; A's definition as before; nothing on B.
 */
async function expectRolledBack(g: Guest, q: QemuId): Promise<void> {
  await waitFor(
    `'${g.name}' running on A with no job`,
    () =>
      api(A, async (c) => {
        const st = await c.call('domain.state', { domain: g.name });
        const job = (await c.callRaw('domain.jobInfo', { domain: g.name })) as { type: string };
        return st.state === 'running' && job.type === 'None';
      }),
    20_000,
    100,
  );
  expect(await processAlive(q.pid, q.pidStartTime), "A's QEMU is the one that ran before").toBe(true);
  const a = await view(A);
  expect(a.of(g.name), "A's view").toMatch(/^running \((booted|migration canceled)\) persistent$/);
  expect(a.rows.find((x) => x.name === g.name)?.uuid).toBe(g.uuid);
  await expectHeartbeatOnA(g.name);
  await expectNothingOnB();
  expect(parseSerialLog(serialText(B, g.name)).heartbeats, 'the guest ran on B').toEqual([]);
}

/** Whether files in `dir` can be opened with O_DIRECT (what cache='none' needs). */
function supportsODirect(dir: string): boolean {
  const probe = join(dir, '.odirect-probe');
  try {
    closeSync(openSync(probe, fsConstants.O_CREAT | fsConstants.O_RDWR | fsConstants.O_DIRECT, 0o600));
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe, { force: true });
  }
}

/** Runs `fn` over `items`, `n` at a time (CLI calls that only validate: no reason to wait for each). */
async function inBatches<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += n) await Promise.all(items.slice(i, i + n).map(fn));
}

/** Whether a `migrate` option is a flag or parameter the build does not implement yet (*later* in docs/migration-flags.md). */
function isLaterOption(option: string): boolean {
  const spec = [...MIGRATION_FLAGS, ...MIGRATION_PARAMS].find((x) => x.option === option);
  // Every option of this build may be 'supported'; the type then no longer names 'later'.
  return (spec?.availability as string | undefined) === 'later';
}

// ------------------------------------------------------------------ tests

describe('live migration', () => {
  for (const mode of ['p2p', 'managed'] as const) {
    it(`${mode}: a memory-writing guest moves to B with its heartbeat counter intact`, async () => {
      const g = await bootGuest(mode);
      const srcQemu = qemuOf(A, g.name);

      const r = await migrate(g.name, mode === 'p2p' ? ['--live', '--p2p'] : ['--live']);
      expectOk(r, `migrate ${mode}`);
      expect(r.json.result).toMatchObject({ state: 'running', reason: 'migrated', persistent: false });
      expect(r.json.stats.downtime, 'stats.downtime').toEqual(expect.any(Number));
      expect(r.json.stats.downtime).toBeGreaterThanOrEqual(0);
      expect(r.json.stats.data_processed, 'stats.data_processed').toBeGreaterThan(0);
      expect(r.json.wallTimeMs).toBeGreaterThan(0);

      expect((await listRows(A)).map((x) => x.name), "A's list of running domains").not.toContain(g.name);
      expect(await domstate(A, g.name)).toBe('shut off (migrated)');
      expect((await listRows(B)).find((x) => x.name === g.name)?.state).toBe('running');
      expect(await domstate(B, g.name)).toBe('running (migrated)');
      await expectContinuity(g.name);

      await expectQemuGone(srcQemu, "A's QEMU");
      expect(statusOf(A.d.runDir, g.name), "A's status file").toBeUndefined();
    });
  }
});

describe('definitions after a migration', () => {
  const NEW_TITLE = '<title>Persisted by the migration</title>';
  const cases: Array<{
    title: string;
    transient?: boolean;
    flags: (g: Guest) => string[];
    destName?: (g: Guest) => string;
    check: (g: Guest) => Promise<void>;
  }> = [
    {
      title: '(a) persistent source, no flags: A keeps it shut off (migrated), B runs it transient',
      flags: () => ['--live', '--p2p'],
      check: async (g) => {
        expect((await view(A)).of(g.name)).toBe('shutoff (migrated) persistent');
        expect((await dominfo(B, g.name)).Persistent).toBe('no');
      },
    },
    {
      title: '(b) --persistent: defined on both, shut off on A, persistent and running on B',
      flags: () => ['--live', '--persistent'],
      check: async (g) => {
        expect((await view(A)).of(g.name)).toBe('shutoff (migrated) persistent');
        expect((await dominfo(B, g.name)).Persistent).toBe('yes');
      },
    },
    {
      title: '(c) --persistent --undefinesource: only B has it, persistent',
      flags: () => ['--live', '--p2p', '--persistent', '--undefinesource'],
      check: async (g) => {
        expectError(await on(A, ['dominfo', g.name], { json: true }), 'no_domain', `dominfo ${g.name} on A`, 42);
        expect((await view(B)).of(g.name)).toBe('running (migrated) persistent');
      },
    },
    {
      title: "(d) --undefinesource alone: A's definition is removed, B runs it transient",
      flags: () => ['--live', '--undefinesource'],
      check: async (g) => {
        expect((await view(A)).of(g.name)).toBeUndefined();
        expect((await dominfo(B, g.name)).Persistent).toBe('no');
      },
    },
    {
      title: '(e) transient source (create) with --persistent: persistent on B, nothing left on A',
      transient: true,
      flags: () => ['--live', '--p2p', '--persistent'],
      check: async (g) => {
        expect((await view(A)).of(g.name)).toBeUndefined();
        expect((await dominfo(B, g.name)).Persistent).toBe('yes');
        expect((await ok(B, ['dumpxml', '--inactive', g.name])).stdout).toContain(`<uuid>${g.uuid}</uuid>`);
      },
    },
    {
      title: '(f) --persistent-xml FILE: B persists that definition (a changed <title>), the live one is unchanged',
      flags: (g) => {
        const file = join(xmlDir, `${g.name}.persist.xml`);
        writeFileSync(file, g.xml.replace(TITLE, NEW_TITLE));
        return ['--live', '--p2p', '--persistent', '--persistent-xml', file];
      },
      check: async (g) => {
        expect((await view(B)).of(g.name)).toBe('running (migrated) persistent');
        expect((await ok(B, ['dumpxml', '--inactive', g.name])).stdout).toContain(NEW_TITLE);
        expect((await ok(B, ['dumpxml', g.name])).stdout).toContain(TITLE);
        expect((await ok(A, ['dumpxml', '--inactive', g.name])).stdout, "A's own definition").toContain(TITLE);
      },
    },
    {
      title: '(g) --dname NEWNAME: the guest runs on B under the new name',
      flags: (g) => ['--live', '--p2p', '--dname', `${g.name}-renamed`],
      destName: (g) => `${g.name}-renamed`,
      check: async (g) => {
        const b = await view(B);
        expect(b.rows.map((x) => [x.name, x.uuid])).toEqual([[`${g.name}-renamed`, g.uuid]]);
        expect(b.of(`${g.name}-renamed`)).toBe('running (migrated) transient');
        expect((await view(A)).of(g.name)).toBe('shutoff (migrated) persistent');
      },
    },
  ];
  for (const c of cases) {
    it(c.title, async () => {
      const g = await bootGuest('def', { cmdline: LIGHT, ...(c.transient ? { transient: true } : {}) });
      const destName = c.destName?.(g) ?? g.name;
      const r = await migrate(g.name, c.flags(g));
      expectOk(r, 'migrate');
      expect(await domstate(B, destName)).toBe('running (migrated)');
      await c.check(g);
      await expectContinuity(g.name, destName);
    });
  }
});

describe('paused guests', () => {
  it('--suspend (PAUSED): B keeps the guest paused; resume on B carries the heartbeat on at last+1', async () => {
    const g = await bootGuest('susp');
    const r = await migrate(g.name, ['--live', '--p2p', '--suspend']);
    expectOk(r, 'migrate --suspend');
    expect(r.json.result).toMatchObject({ state: 'paused' });
    expect((await listRows(B)).find((x) => x.name === g.name)?.state).toBe('paused');
    expect(await domstate(A, g.name)).toBe('shut off (migrated)');
    await expectNoNewHeartbeats(B, g.name);
    expect(parseSerialLog(serialText(B, g.name)).heartbeats, 'heartbeats on B before resume').toEqual([]);

    expect((await ok(B, ['resume', g.name])).stdout).toContain('resumed');
    expect(await domstate(B, g.name)).toMatch(/^running/);
    await expectContinuity(g.name);
  });

  // libvirt keeps a guest that was paused on the source paused on the destination.
  it('a guest paused on A before the migration stays paused on B', async () => {
    const g = await bootGuest('prepaused', { cmdline: LIGHT });
    await ok(A, ['suspend', g.name]);
    const r = await migrate(g.name, ['--live', '--p2p']);
    expectOk(r, 'migrate of a paused guest');
    expect(await domstate(A, g.name)).toBe('shut off (migrated)');
    expect(await domstate(B, g.name), "B's state of a guest that was paused on A").toMatch(/^paused/);
    await expectNoNewHeartbeats(B, g.name);
    await ok(B, ['resume', g.name]);
    await expectContinuity(g.name);
  });
});

describe('non-live migration', () => {
  it('without --live the guest is paused on A during the copy and runs on B afterwards', async () => {
    const g = await bootGuest('nonlive');
    // 20 MiB/s for ~64 MiB of written memory: the copy takes a few seconds, long enough to look at A.
    const pending = migrate(g.name, ['--p2p', '--bandwidth', '20']);
    await waitFor(
      `'${g.name}' paused (migrating) on A`,
      () => api(A, async (c) => (await c.call('domain.state', { domain: g.name })).reason === 'migrating'),
      30_000,
      50,
    );
    expect(await domstate(A, g.name), "A's state during the copy").toBe('paused (migrating)');
    await expectNoNewHeartbeats(A, g.name, 600);
    expectOk(await pending, 'non-live migrate');
    expect(await domstate(A, g.name)).toBe('shut off (migrated)');
    expect(await domstate(B, g.name)).toBe('running (migrated)');
    await expectContinuity(g.name);
  });
});

describe('offline migration', () => {
  it('--offline --persistent of a shut-off domain moves only its definition', async () => {
    const name = guestName('offline-off');
    await api(A, (c) => c.call('domain.define', { xml: testGuestXml({ name, uuid: randomUUID(), memoryKiB: 262148, cmdline: LIGHT }) }));
    // A shut-off domain does not migrate live.
    expect(expectError(await migrate(name, ['--live', '--p2p']), 'operation_invalid', 'live migrate of a shut-off domain', 55)).toContain(name);

    expectOk(await migrate(name, ['--offline', '--persistent', '--p2p']), 'offline migrate');
    expect((await listRows(B, '--all')).map((x) => [x.name, x.state])).toEqual([[name, 'shut off']]);
    expect((await dominfo(B, name)).Persistent).toBe('yes');
    expect(qemuPidsMentioning(B.d.runDir), 'QEMU started on B').toEqual([]);
    expect(readStatusFiles(B.d.runDir)).toEqual([]);
    // The source keeps its domain (no --undefinesource).
    expect((await view(A)).of(name)).toMatch(/^shutoff \(\w+\) persistent$/);
  });

  it('--offline --persistent of a running domain: A keeps running it, B gets the definition', async () => {
    const g = await bootGuest('offline-run', { cmdline: LIGHT });
    const q = qemuOf(A, g.name);
    expectOk(await migrate(g.name, ['--offline', '--persistent']), 'offline migrate of a running domain');
    expect(await domstate(A, g.name)).toBe('running (booted)');
    expect(await processAlive(q.pid, q.pidStartTime)).toBe(true);
    await expectHeartbeatOnA(g.name);
    expect((await view(B)).of(g.name)).toMatch(/^shutoff \(\w+\) persistent$/);
    expect(qemuPidsMentioning(B.d.runDir), 'QEMU started on B').toEqual([]);
  });
});

describe('refused requests change nothing', () => {
  it('every invalid combination the CLI can express is refused with its code before any host changes', async () => {
    const g = await bootGuest('invalid', { cmdline: LIGHT });
    const q = qemuOf(A, g.name);
    // Rules are checked in the order of docs/migration-flags.md and the first broken one is
    // reported: `not-implemented` (rule 3) comes before the combination rules, so a request
    // that names a flag or parameter still marked *later* is argument_unsupported (naming
    // what is not implemented) whatever else it breaks. Otherwise the combination rule's code
    // applies. The docs are generated from the tables in src/flags, read here too, so the
    // expectations follow as features land.
    type Case = { args: string[]; code: string; number: number; names: string[]; validOnceImplemented?: boolean };
    const ruled: Case[] = [
      // tunnelled-needs-p2p (4)
      { args: ['--live', '--tunnelled'], code: 'invalid_arg', number: 8, names: ['--tunnelled', '--p2p'] },
      // storage-copy-exclusive (5)
      { args: ['--live', '--p2p', '--copy-storage-all', '--copy-storage-inc'], code: 'invalid_arg', number: 8, names: ['--copy-storage-all', '--copy-storage-inc'] },
      // offline-needs-persist (6)
      { args: ['--offline'], code: 'operation_invalid', number: 55, names: ['--offline', '--persistent'] },
      // rule 6 is checked before offline-excludes-memory-options (9)
      { args: ['--offline', '--live'], code: 'operation_invalid', number: 55, names: ['--offline', '--persistent'] },
      { args: ['--offline', '--persistent', '--live'], code: 'invalid_arg', number: 8, names: ['--offline', '--live'] },
      { args: ['--offline', '--persistent', '--suspend'], code: 'invalid_arg', number: 8, names: ['--offline', '--suspend'] },
      // postcopy-needs-live (10)
      { args: ['--postcopy'], code: 'argument_unsupported', number: 74, names: ['--postcopy', '--live'] },
      // rdma-pin-all-needs-rdma-uri (16)
      { args: ['--live', '--rdma-pin-all'], code: 'invalid_arg', number: 8, names: ['--rdma-pin-all', '--migrateuri'] },
      // disk-params-need-storage-copy (17)
      { args: ['--live', '--migrate-disks', 'vda'], code: 'operation_unsupported', number: 84, names: ['--migrate-disks'] },
      // compression-needs-compressed (20)
      { args: ['--live', '--comp-mt-level', '3'], code: 'invalid_arg', number: 8, names: ['--comp-mt-level', '--compressed'] },
      // auto-converge-params-need-flag (26)
      { args: ['--live', '--auto-converge-initial', '20'], code: 'invalid_arg', number: 8, names: ['--auto-converge-initial', '--auto-converge'] },
      // destination-name-valid (30)
      { args: ['--live', '--dname', 'a/b'], code: 'invalid_arg', number: 8, names: ['--dname'] },
      // migrate-uri-scheme (15)
      { args: ['--live', '--migrateuri', 'ftp://host/x'], code: 'argument_unsupported', number: 74, names: ['--migrateuri'] },
      // Only refused while not implemented.
      { args: ['--live', '--compressed'], code: '', number: 0, names: [], validOnceImplemented: true },
      { args: ['--live', '--postcopy'], code: '', number: 0, names: [], validOnceImplemented: true },
      // Not a rule of the table: the CLI refuses it itself.
      { args: ['--live', '--direct'], code: 'argument_unsupported', number: 74, names: ['--direct'] },
    ];
    const cases: Case[] = [];
    for (const c of ruled) {
      const later = c.args.filter(isLaterOption);
      if (later.length > 0) cases.push({ args: c.args, code: 'argument_unsupported', number: 74, names: later });
      else if (!c.validOnceImplemented) cases.push(c);
    }
    await inBatches(cases, 4, async (c) => {
      const msg = expectError(await migrate(g.name, c.args), c.code, `migrate ${c.args.join(' ')}`, c.number);
      for (const n of c.names) expect(msg, `message of migrate ${c.args.join(' ')}`).toContain(n);
    });

    // The source daemon applies the same rules to a request that does not come through the CLI.
    const LIVE = 1;
    const PEER2PEER = 2;
    const TUNNELLED = 4;
    const OFFLINE = 1024;
    await api(A, async (c) => {
      const refuse = async (flags: number, params: Record<string, unknown>, code: string) => {
        const err = await c.callRaw('domain.migrate', { domain: g.name, destUri: B.tcpUri, flags, params }).then(
          () => null,
          (e: { code?: string }) => e,
        );
        expect(err?.code, `domain.migrate flags=${flags} params=${JSON.stringify(params)}`).toBe(code);
      };
      await refuse(PEER2PEER | OFFLINE, {}, 'operation_invalid');
      await refuse(LIVE | TUNNELLED, {}, isLaterOption('--tunnelled') ? 'argument_unsupported' : 'invalid_arg');
      await refuse(PEER2PEER | LIVE, { destination_name: 'a/b' }, 'invalid_arg');
      await refuse(PEER2PEER | LIVE, { no_such_param: 1 }, 'invalid_arg');
    });

    const more: Array<{ what: string; args: string[]; dest: string; code: string; number: number; text: RegExp }> = [
      // To the host itself, in both modes.
      { what: 'p2p to A itself', args: ['--live', '--p2p'], dest: A.tcpUri, code: 'operation_invalid', number: 55, text: /same host/ },
      { what: 'managed to A itself', args: ['--live'], dest: A.tcpUri, code: 'operation_invalid', number: 55, text: /same host/ },
      // To an address where no daemon listens, in both modes.
      { what: 'p2p to nowhere', args: ['--live', '--p2p'], dest: B.tcpUri.replace(/:(\d+)\//, (_, p: string) => `:${Number(p) + 1}/`), code: 'no_connect', number: 5, text: /./ },
      { what: 'managed to nowhere', args: ['--live'], dest: B.tcpUri.replace(/:(\d+)\//, (_, p: string) => `:${Number(p) + 1}/`), code: 'no_connect', number: 5, text: /./ },
    ];
    await inBatches(more, 4, async (c) => {
      expect(expectError(await migrate(g.name, c.args, { dest: c.dest }), c.code, c.what, c.number)).toMatch(c.text);
    });

    // Nothing happened anywhere.
    expect(await domstate(A, g.name)).toBe('running (booted)');
    expect(await processAlive(q.pid, q.pidStartTime)).toBe(true);
    expect(parseFields((await ok(A, ['domjobinfo', '--completed', g.name])).stdout)['Job type'], 'a job ran on A').toBe('None');
    await expectHeartbeatOnA(g.name);
    expect((await view(B)).rows).toEqual([]);
    expect(qemuPidsMentioning(B.d.runDir)).toEqual([]);
  });
});

describe('failures leave exactly one running copy', () => {
  it('destination QEMU killed during perform: migrate fails, A keeps running the guest', async () => {
    const g = await bootGuest('kill-dst-qemu');
    const q = qemuOf(A, g.name);
    const pending = slowMigration(g.name);
    await waitDataProcessed(g.name);
    const dst = readStatusFiles(B.d.runDir).find((s) => s.name === g.name);
    expect(dst, "B's status file of the incoming copy").toBeDefined();
    process.kill(dst!.pid, 'SIGKILL');
    const r = await pending;
    expect(r.code, `migrate after B's QEMU was killed: ${r.stdout}`).toBe(1);
    expect(r.json?.error?.code).toEqual(expect.any(String));
    await expectRolledBack(g, q);
  });

  it("destination ferryd killed during perform: A cancels the stream at once and takes the guest back; B's QEMU exits; B's restarted ferryd has nothing left", async () => {
    const g = await bootGuest('kill-dst-ferryd');
    const q = qemuOf(A, g.name);
    const pending = slowMigration(g.name);
    await waitDataProcessed(g.name);
    const dstQemu = readStatusFiles(B.d.runDir).find((s) => s.name === g.name);
    expect(dstQemu).toBeDefined();
    await B.d.kill9();
    // The source sees the destination's connection reset and cancels the stream: it does not wait for QEMU to finish.
    const message = expectError(await pending, 'operation_failed', "migrate after B's ferryd was killed");
    expect(message).toMatch(/lost the connection to the destination host/);
    // B's copy never ran, and with its stream cancelled it exits without its daemon.
    expect(parseSerialLog(serialText(B, g.name)).heartbeats, 'heartbeats printed on B').toEqual([]);
    await expectQemuGone(dstQemu!, "B's unfinished incoming QEMU");

    await B.d.restart();
    await expectRolledBack(g, q);
  });

  it('domjobabort on A mid-copy: migrate fails with operation_aborted, A keeps running the guest', async () => {
    const g = await bootGuest('abort');
    const q = qemuOf(A, g.name);
    const pending = slowMigration(g.name);
    await waitDataProcessed(g.name);
    await ok(A, ['domjobabort', g.name]);
    expectError(await pending, 'operation_aborted', 'migrate after domjobabort', 78);
    await expectRolledBack(g, q);
    expect(parseFields((await ok(A, ['domjobinfo', '--completed', g.name])).stdout)['Job type']).toBe('Cancelled');
    // A pause behind ferryd's back (the monitor) after the aborted copy is not taken for the migration's: virsh shows 'unknown'.
    await ok(A, ['qemu-monitor-command', '--hmp', g.name, 'stop']);
    await waitFor('the pause to show', async () => (await ok(A, ['domstate', '--reason', g.name])).stdout.trim().startsWith('paused'), 10_000);
    expect((await ok(A, ['domstate', '--reason', g.name])).stdout.trim()).toBe('paused (unknown)');
  });

  it('Ctrl-C on ferry migrate mid-copy aborts the job: A keeps running the guest', async () => {
    const g = await bootGuest('sigint');
    const q = qemuOf(A, g.name);
    const p = spawnFerry(A, ['migrate', '--live', '--p2p', '--bandwidth', '20', g.name, B.tcpUri]);
    await waitDataProcessed(g.name);
    p.kill('SIGINT');
    const r = await p.done;
    expectError(r, 'operation_aborted', 'migrate after Ctrl-C', 78);
    expect(r.stderr).toMatch(/aborting/);
    await expectRolledBack(g, q);
  });

  it('prepare refused on B (a domain of that name, another uuid): A and B untouched', async () => {
    const g = await bootGuest('dup', { cmdline: LIGHT });
    const q = qemuOf(A, g.name);
    const other = await bootGuest('dup', { cmdline: LIGHT, on: B, name: g.name });
    const otherQ = qemuOf(B, g.name);
    const msg = expectError(await migrate(g.name, ['--live', '--p2p']), ['dom_exist', 'operation_invalid'], 'migrate onto a running namesake');
    expect(msg).toContain(g.name);
    expect(await domstate(A, g.name)).toBe('running (booted)');
    expect(await processAlive(q.pid, q.pidStartTime)).toBe(true);
    await expectHeartbeatOnA(g.name);
    // B's own guest is untouched: same QEMU, same uuid, one boot, heartbeat going on.
    expect(await processAlive(otherQ.pid, otherQ.pidStartTime)).toBe(true);
    expect((await view(B)).rows.map((x) => [x.name, x.uuid, x.state])).toEqual([[g.name, other.uuid, 'running']]);
    await waitCounterAbove(B, g.name, lastCounter(B, g.name) + 1);
    const bLog = parseSerialLog(serialText(B, g.name));
    expect(bLog.events.filter((e) => e.kind === 'boot')).toHaveLength(1);
    expect(findCounterAnomalies(bLog.heartbeats, 1)).toEqual([]);

    // The namesake shut off but still defined on B: refused with dom_exist.
    await ok(B, ['destroy', g.name]);
    expectError(await migrate(g.name, ['--live']), 'dom_exist', 'migrate onto a defined namesake', 28);
    expect((await view(B)).rows.map((x) => [x.name, x.uuid, x.state])).toEqual([[g.name, other.uuid, 'shutoff']]);
    expect(await domstate(A, g.name)).toBe('running (booted)');
    await expectHeartbeatOnA(g.name);
  });

  it('destroy on A during the migration (allowed) aborts it: no copy runs anywhere', async () => {
    const g = await bootGuest('destroy');
    const q = qemuOf(A, g.name);
    const pending = slowMigration(g.name);
    await waitDataProcessed(g.name);
    await ok(A, ['destroy', g.name]);
    const r = await pending;
    expect(r.code, `migrate after destroy: ${r.stdout}`).toBe(1);
    await expectQemuGone(q, "A's QEMU");
    expect(await domstate(A, g.name)).toBe('shut off (destroyed)');
    expect((await view(A)).of(g.name)).toBe('shutoff (destroyed) persistent');
    await expectNothingOnB();
    expect(parseSerialLog(serialText(B, g.name)).heartbeats, 'the guest ran on B').toEqual([]);
  });

  it('managed mode: the CLI killed (SIGKILL) mid-copy, both daemons roll back on their own', async () => {
    const g = await bootGuest('cli-kill');
    const q = qemuOf(A, g.name);
    const p = spawnFerry(A, ['migrate', '--live', '--bandwidth', '20', g.name, B.tcpUri]);
    await waitDataProcessed(g.name);
    p.kill('SIGKILL');
    await p.done;
    await expectRolledBack(g, q);
  });
});

describe('round trip and stream addresses', () => {
  it('A -> B -> A: the guest comes back to the host that still holds its definition, counter intact', async () => {
    const g = await bootGuest('roundtrip');
    expectOk(await migrate(g.name, ['--live', '--p2p', '--persistent']), 'migrate A -> B');
    expect((await view(A)).of(g.name)).toBe('shutoff (migrated) persistent');
    expect((await view(B)).of(g.name)).toBe('running (migrated) persistent');
    await expectContinuity(g.name);

    // Back, driven from B (p2p, B's daemon connects to A), leaving nothing on B.
    const back = await on(B, ['migrate', '--live', '--p2p', '--persistent', '--undefinesource', g.name, A.tcpUri], { json: true, timeoutMs: 90_000 });
    expectOk(back, 'migrate B -> A');
    expect(await domstate(A, g.name)).toBe('running (migrated)');
    expect((await view(A)).of(g.name)).toBe('running (migrated) persistent');
    expect((await view(B)).rows, "B's list --all").toEqual([]);
    await expectContinuity(g.name, g.name, B, A);
    expect(qemuPidsMentioning(B.d.runDir)).toEqual([]);
  });

  // A port in --migrateuri is where the destination listens (firewalls).
  it('--migrateuri tcp://B:PORT: the destination listens on that port and the stream uses it', async () => {
    const g = await bootGuest('miguri', { cmdline: LIGHT });
    const port = USE_NETNS ? 49201 : await freePort();
    const r = await migrate(g.name, ['--live', '--p2p', '--migrateuri', `tcp://${B.addr}:${port}`]);
    expectOk(r, `migrate --migrateuri tcp://${B.addr}:${port}`);
    expect(await domstate(B, g.name)).toBe('running (migrated)');
    expect(B.d.stderr()).toMatch(new RegExp(`incoming migration of '${g.name}' .*listening on \\S*:${port}(?!\\d)`));
    await expectContinuity(g.name);
  });

  it('--migrateuri tcp://B (no port) with --listen-address B: the destination picks the port', async () => {
    const g = await bootGuest('listen', { cmdline: LIGHT });
    const r = await migrate(g.name, ['--live', '--migrateuri', `tcp://${B.addr}`, '--listen-address', B.addr]);
    expectOk(r, 'migrate --migrateuri tcp://B --listen-address B');
    expect(await domstate(B, g.name)).toBe('running (migrated)');
    expect(B.d.stderr()).toMatch(new RegExp(`incoming migration of '${g.name}' .*listening on (tcp:)?${B.addr.replace(/\./g, '\\.')}:\\d+`));
    await expectContinuity(g.name);
  });
});

describe('change protection', () => {
  it('during a migration define and undefine are refused with operation_invalid, suspend is allowed', async () => {
    const g = await bootGuest('cp');
    const pending = slowMigration(g.name);
    await waitDataProcessed(g.name);

    const changed = join(xmlDir, `${g.name}.changed.xml`);
    writeFileSync(changed, g.xml.replace(TITLE, '<title>changed mid-migration</title>'));
    await inBatches([['define', changed], ['undefine', g.name], ['autostart', g.name], ['resume', g.name]], 4, async (args) => {
      const msg = expectError(await on(A, args, { json: true }), 'operation_invalid', `${args[0]} during the migration`, 55);
      expect(msg).toContain(g.name);
    });
    // A second migration of the same domain cannot start beside the first.
    expect(expectError(await migrate(g.name, ['--live', '--p2p']), 'operation_invalid', 'a second migrate', 55)).toContain(g.name);
    // suspend is allowed (to help the copy converge), and here it does.
    expectOk(await on(A, ['suspend', g.name]), 'suspend during the migration');
    expect(await domstate(A, g.name)).toBe('paused (user)');

    expectOk(await pending, 'migrate after suspend');
    expect(await domstate(A, g.name)).toBe('shut off (migrated)');
    const inactive = (await ok(A, ['dumpxml', '--inactive', g.name])).stdout;
    expect(inactive).toContain(TITLE);
    expect(inactive).not.toContain('changed mid-migration');
    // The guest was paused on A when the copy ended: resume it on B if it is paused there, then check the counter.
    const st = await domstate(B, g.name);
    expect(st).toMatch(/^(running|paused)/);
    if (st.startsWith('paused')) await ok(B, ['resume', g.name]);
    await expectContinuity(g.name);
  });
});

describe('UNSAFE', () => {
  const diskXml = (path: string, dev: string, cache: string, readonly = false) =>
    `    <disk type='file' device='disk'><driver name='qemu' type='raw' cache='${cache}'/><source file='${path}'/><target dev='${dev}' bus='virtio'/>${readonly ? '<readonly/>' : ''}</disk>`;

  function rawImage(dir: string, name: string): string {
    const path = join(dir, name);
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', path, '16M']);
    return path;
  }

  it("a writable disk with cache='writeback' on a local fs is refused with migrate_unsafe; --unsafe migrates it", async () => {
    const img = rawImage(makeTempDir('ferry-mig-disk-'), 'wb.raw');
    const g = await bootGuest('unsafe', { cmdline: LIGHT, extraDevices: diskXml(img, 'vda', 'writeback') });
    const q = qemuOf(A, g.name);
    const msg = expectError(await migrate(g.name, ['--live', '--p2p']), 'migrate_unsafe', 'migrate with a writeback disk', 81);
    expect(msg).toContain('vda');
    expect(msg).toContain(img);
    expect(await domstate(A, g.name)).toBe('running (booted)');
    expect(await processAlive(q.pid, q.pidStartTime)).toBe(true);
    expect((await view(B)).rows).toEqual([]);

    expectOk(await migrate(g.name, ['--live', '--p2p', '--unsafe']), 'migrate --unsafe');
    expect(await domstate(B, g.name)).toBe('running (migrated)');
    await expectContinuity(g.name);
  });

  it("cache='none' and read-only disks migrate without --unsafe", async () => {
    // cache='none' is O_DIRECT: its image must be on a filesystem that supports it (tmpfs does not).
    let dir: string | undefined;
    for (const candidate of [() => makeTempDir('ferry-mig-disk-'), () => mkdtempSync(join('/var/tmp', 'ferry-mig-disk-'))]) {
      const d = candidate();
      if (d.startsWith('/var/tmp')) varTmpDirs.push(d);
      if (supportsODirect(d)) {
        dir = d;
        break;
      }
    }
    const devices = [diskXml(rawImage(makeTempDir('ferry-mig-disk-'), 'ro.raw'), 'vdb', 'writeback', true)];
    if (dir) devices.push(diskXml(rawImage(dir, 'none.raw'), 'vda', 'none'));
    else console.warn("no O_DIRECT-capable filesystem for the cache='none' image: that sub-case is skipped");
    const g = await bootGuest('safe', { cmdline: LIGHT, extraDevices: devices.join('\n') });
    expectOk(await migrate(g.name, ['--live', '--p2p']), 'migrate with cache=none and read-only disks');
    expect(await domstate(B, g.name)).toBe('running (migrated)');
    await expectContinuity(g.name);
  });
});

describe('job statistics and control', () => {
  it('setspeed/getspeed, set/getmaxdowntime, domjobinfo while running and --completed on both hosts, --verbose progress', async () => {
    const g = await bootGuest('jobctl');
    await ok(A, ['migrate-setspeed', g.name, '25']);
    expect((await ok(A, ['migrate-getspeed', g.name])).stdout.trim()).toBe('25');
    await ok(A, ['migrate-setmaxdowntime', g.name, '500']);
    expect((await ok(A, ['migrate-getmaxdowntime', g.name])).stdout.trim()).toBe('500');

    // The speed set above caps this migration (25 MiB/s < the guest's 30 MiB/s of rewrites): it stays in progress.
    const pending = on(A, ['migrate', '--live', '--p2p', '--verbose', g.name, B.tcpUri], { timeoutMs: 120_000 });
    await waitDataProcessed(g.name);
    await sleep(1200); // Let --verbose draw at least one progress line (it polls every second).
    const info = parseFields((await ok(A, ['domjobinfo', g.name])).stdout);
    expect(info).toMatchObject({ 'Job type': 'Unbounded', Operation: 'Outgoing migration' });
    for (const field of ['Time elapsed', 'Data processed', 'Data remaining', 'Data total', 'Memory processed', 'Memory bandwidth']) {
      expect(info[field], `domjobinfo field ${field}`).toBeDefined();
    }
    expect(parseFloat(info['Data processed']!)).toBeGreaterThan(0);
    expect((await ok(A, ['migrate-getspeed', g.name])).stdout.trim()).toBe('25');

    await ok(A, ['migrate-setspeed', g.name, '0']);
    const r = await pending;
    expectOk(r, 'migrate --verbose');
    expect(r.stderr).toMatch(/Migration: \[\s*\d+ %\]/);
    expect(r.stdout).toContain('Migration: [100 %]');

    const doneA = parseFields((await ok(A, ['domjobinfo', '--completed', g.name])).stdout);
    const doneB = parseFields((await ok(B, ['domjobinfo', '--completed', g.name])).stdout);
    expect(doneA).toMatchObject({ 'Job type': 'Completed', Operation: 'Outgoing migration' });
    expect(doneB).toMatchObject({ 'Job type': 'Completed', Operation: 'Incoming migration' });
    expect(doneA['Total downtime'], 'downtime on A').toMatch(/^\d+ ms$/);
    expect(doneB['Total downtime'], 'downtime on B').toBe(doneA['Total downtime']);
    await expectContinuity(g.name);
  });
});

describe('lifecycle events', () => {
  it('B reports started/resumed migrated (and defined added), A stopped migrated (and undefined removed)', async () => {
    const g = await bootGuest('events', { cmdline: LIGHT });
    const subA = await ApiClient.connect(A.d.uri);
    const subB = await ApiClient.connect(B.d.uri);
    const evA: LifecycleEvent[] = [];
    const evB: LifecycleEvent[] = [];
    try {
      subA.on('event', (n: string, e: LifecycleEvent) => void (n === 'domain.lifecycle' && e.domain === g.name && evA.push(e)));
      subB.on('event', (n: string, e: LifecycleEvent) => void (n === 'domain.lifecycle' && e.domain === g.name && evB.push(e)));
      await subA.call('events.subscribe', {});
      await subB.call('events.subscribe', {});
      expectOk(await migrate(g.name, ['--live', '--p2p', '--persistent', '--undefinesource']), 'migrate');
      await waitFor('the events', () => evA.some((e) => e.kind === 'undefined') && evB.some((e) => e.kind === 'resumed'), 10_000, 50);
      await sleep(300); // Let any stray event arrive before comparing.
    } finally {
      subA.close();
      subB.close();
    }
    const onB = evB.map((e) => `${e.kind} ${e.detail}`);
    const onA = evA.map((e) => `${e.kind} ${e.detail}`);
    expect(onB, "B's events").toContain('started migrated');
    expect(onB).toContain('resumed migrated');
    expect(onB).toContain('defined added');
    expect(onB.indexOf('started migrated'), "B's events").toBeLessThan(onB.indexOf('resumed migrated'));
    expect(onB.filter((p) => !['started migrated', 'resumed migrated', 'defined added'].includes(p)), "B's other events").toEqual([]);
    expect(onA, "A's events").toContain('stopped migrated');
    expect(onA).toContain('undefined removed');
    expect(onA.indexOf('stopped migrated'), "A's events").toBeLessThan(onA.indexOf('undefined removed'));
    expect(onA.filter((p) => p.startsWith('resumed') || p.startsWith('started')), "A's resumed/started events").toEqual([]);
    expect([...evA, ...evB].every((e) => e.uuid === g.uuid)).toBe(true);
  });

  // A non-live migration pauses the source once: one `suspended migrated` event (libvirt's detail).
  it('non-live: A reports one suspended event for its pause, then stopped migrated', async () => {
    const g = await bootGuest('nonlive-events', { cmdline: LIGHT });
    const sub = await ApiClient.connect(A.d.uri);
    const events: string[] = [];
    try {
      sub.on('event', (n: string, e: LifecycleEvent) => void (n === 'domain.lifecycle' && e.domain === g.name && events.push(`${e.kind} ${e.detail}`)));
      await sub.call('events.subscribe', {});
      expectOk(await migrate(g.name, ['--p2p']), 'non-live migrate');
      await waitFor('the stopped event', () => events.some((e) => e.startsWith('stopped')), 10_000, 50);
      await sleep(300); // Let any stray event arrive before comparing.
    } finally {
      sub.close();
    }
    expect(events, "A's events").toEqual(['suspended migrated', 'stopped migrated']);
  });
});
