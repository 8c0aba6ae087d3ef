/**
 * ferryd and ferry end to end: a real daemon, real QEMU (TCG) running the
 * test guest, driven through the CLI the way a user would, checking what a
 * user would look at (list, domstate --reason, dominfo, the heartbeat on
 * the serial console).
 *
 * Needs `npm run build` and `make -C guest`. At most two QEMUs at a time.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DOMParser } from '@xmldom/xmldom';
import { beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/api/client.js';
import type { LifecycleEvent } from '../../src/api/protocol.js';
import {
  emptyDaemon,
  ferry,
  ferryOk,
  killQemusOf,
  makeTempDir,
  openFilesOf,
  parseFields,
  parseListTable,
  processAlive,
  qemuPidsMentioning,
  runDaemonToExit,
  sleep,
  startDaemon,
  statusOf,
  useDaemonCleanup,
  waitFor,
  type FerrydHandle,
  type StatusFileInfo,
} from '../support/daemon.js';
import { consoleLog, counterAbove, heartbeats, serialLogFile, waitForHeartbeat, writeGuestXml, xmlEscape } from '../support/guest-xml.js';
import { findCounterAnomalies, type SerialLog } from '../support/serial.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The daemon shared by the tests that don't restart it. */
let shared: FerrydHandle;
let xmlDir: string;

/** Between tests: destroy and undefine whatever a test left on the shared daemon (at most 2 QEMUs at once). */
async function resetShared(): Promise<void> {
  if (!shared) return;
  if (!shared.alive()) {
    await killQemusOf(shared.runDir, shared.stateDir);
    throw new Error(`the shared ferryd is gone; its stderr:\n${shared.stderr()}`);
  }
  await emptyDaemon(shared.uri);
}

useDaemonCleanup(resetShared);

beforeAll(async () => {
  shared = await startDaemon({ hostName: 'e2e-lifecycle' });
  xmlDir = makeTempDir('ferry-xml-');
});

// ------------------------------------------------------------------ helpers

function cli(d: FerrydHandle) {
  return {
    ok: (args: string[]) => ferryOk(args, { uri: d.uri }),
    json: async (args: string[]) => (await ferryOk(args, { uri: d.uri, json: true })).json,
    state: async (name: string) => (await ferryOk(['domstate', '--reason', name], { uri: d.uri })).stdout.trim(),
    list: async (...args: string[]) => parseListTable((await ferryOk(['list', ...args], { uri: d.uri })).stdout),
    info: async (name: string) => parseFields((await ferryOk(['dominfo', name], { uri: d.uri })).stdout),
    /** Runs a command that must fail with `code`/`number` in --json mode; returns the message. */
    fails: async (args: string[], code: string, number: number): Promise<string> => {
      const r = await ferry(args, { uri: d.uri, json: true });
      expect(r.code, `ferry ${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(1);
      expect(r.json?.error, `ferry ${args.join(' ')} printed ${r.stdout}`).toMatchObject({ code, number });
      expect(typeof r.json.error.message).toBe('string');
      return r.json.error.message as string;
    },
    /** The daemon still answers: `list` works. */
    answers: async () => {
      const r = await ferry(['list', '--all'], { uri: d.uri });
      expect(r.code, `list after an error: ${r.stderr}`).toBe(0);
    },
  };
}

/** Waits for `domstate --reason` to print exactly `want`. */
async function waitState(d: FerrydHandle, name: string, want: string, timeoutMs = 30_000): Promise<void> {
  let last = '';
  try {
    await waitFor(
      `domstate --reason ${name} = '${want}'`,
      async () => {
        const r = await ferry(['domstate', '--reason', name], { uri: d.uri });
        last = (r.stdout + r.stderr).trim();
        return last === want;
      },
      timeoutMs,
      150,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; domstate said: '${last}'`);
  }
}

function rowOf(rows: Array<{ id: string; name: string; state: string }>, name: string) {
  return rows.find((r) => r.name === name);
}

/** The heartbeats of a log must run 1, 2, 3, ... from boot, with exactly one boot and every check OK. */
function expectContinuousFromBoot(log: SerialLog, what: string): void {
  expect(log.events.filter((e) => e.kind === 'boot'), `${what}: the guest booted more than once`).toHaveLength(1);
  expect(findCounterAnomalies(log.heartbeats, 1), `${what}: heartbeat counter anomalies`).toEqual([]);
  expect(log.corrupt, `${what}: guest reported corruption`).toBe(false);
  expect(log.heartbeats.every((h) => h.check === 'OK')).toBe(true);
}

/** Samples the serial log twice `ms` apart: a paused guest prints nothing. */
async function expectNoProgress(d: FerrydHandle, name: string, ms = 1200): Promise<number> {
  const before = await consoleLog(d.uri, name);
  await sleep(ms); // Deliberate: proving the absence of heartbeats needs a period of time (hb=200 -> ~6 expected if running).
  const after = await consoleLog(d.uri, name);
  expect(after.log.lastHeartbeat?.counter, `'${name}' printed heartbeats while paused`).toBe(before.log.lastHeartbeat?.counter);
  expect(after.text.length, `'${name}' wrote to its serial port while paused`).toBe(before.text.length);
  return before.log.lastHeartbeat?.counter ?? 0;
}

/** After a pause at heartbeat `last`, the guest continues with last+1, ... — no restart, no gap. */
async function expectContinuesAfter(d: FerrydHandle, name: string, last: number): Promise<SerialLog> {
  const log = await waitForHeartbeat(d.uri, name, counterAbove(last + 1), 20_000);
  const i = log.heartbeats.findIndex((h) => h.counter === last);
  expect(i, `heartbeat ${last} is missing from the log`).toBeGreaterThanOrEqual(0);
  expect(log.heartbeats[i + 1]?.counter, `heartbeat after ${last}`).toBe(last + 1);
  expectContinuousFromBoot(log, name);
  return log;
}

async function waitGone(pid: number, startTime?: number): Promise<void> {
  await waitFor(`QEMU pid ${pid} to be gone`, async () => !(await processAlive(pid, startTime)), 15_000, 50);
}

// ------------------------------------------------------------------ tests

describe('persistent domain lifecycle', () => {
  it('define, start, heartbeat, dominfo, suspend/resume, destroy, undefine', async () => {
    const c = cli(shared);
    const file = writeGuestXml(xmlDir, { name: 'life1' });

    const defined = await c.json(['define', file]);
    expect(defined).toMatchObject({ name: 'life1', state: 'shutoff', persistent: true, id: null });
    const uuid = defined.uuid as string;
    expect(uuid).toMatch(UUID_RE);

    let row = rowOf(await c.list('--all'), 'life1');
    expect(row).toEqual({ id: '-', name: 'life1', state: 'shut off' });
    expect(rowOf(await c.list('--inactive'), 'life1')).toEqual(row);
    expect((await c.list('--state-running')).map((r) => r.name)).not.toContain('life1');
    expect((await c.ok(['domid', 'life1'])).stdout.trim(), 'a shut-off domain has no Id').toBe('-');
    expect(rowOf(await c.list(), 'life1'), 'list without --all shows only active domains').toBeUndefined();
    const xml = (await c.ok(['dumpxml', 'life1'])).stdout;
    expect(xml).toContain(`<uuid>${uuid}</uuid>`);
    expect((await c.ok(['domuuid', 'life1'])).stdout.trim()).toBe(uuid);

    expect((await c.ok(['start', 'life1'])).stdout).toContain("Domain 'life1' started");
    row = rowOf(await c.list(), 'life1');
    expect(row?.state).toBe('running');
    expect(row?.id).toMatch(/^[1-9]\d*$/);
    expect((await c.ok(['domid', 'life1'])).stdout.trim()).toBe(row?.id);
    expect((await c.ok(['domname', row!.id])).stdout.trim()).toBe('life1');
    expect((await c.ok(['domname', uuid])).stdout.trim()).toBe('life1');
    expect((await c.list('--inactive')).map((r) => r.name)).not.toContain('life1');
    expect((await c.list('--state-running')).map((r) => r.name)).toContain('life1');

    let log = await waitForHeartbeat(shared.uri, 'life1', heartbeats(3), 30_000);
    expect(log.boot).toMatchObject({ wsMib: 8, hbMs: 200 });
    expectContinuousFromBoot(log, 'life1');
    const later = await waitForHeartbeat(shared.uri, 'life1', counterAbove(log.lastHeartbeat!.counter), 10_000);
    expect(later.lastHeartbeat!.check).toBe('OK');

    const info = await c.info('life1');
    expect(info).toMatchObject({
      Name: 'life1',
      UUID: uuid,
      State: 'running',
      Persistent: 'yes',
      'Max memory': '262148 KiB',
      'Used memory': '262148 KiB',
      Autostart: 'disable',
      Accelerator: 'tcg',
      Id: row!.id,
    });

    expect((await c.ok(['suspend', 'life1'])).stdout).toContain('suspended');
    expect(await c.state('life1')).toBe('paused (user)');
    expect(rowOf(await c.list(), 'life1')?.state).toBe('paused');
    const pausedAt = await expectNoProgress(shared, 'life1');
    expect(pausedAt).toBeGreaterThan(0);

    expect((await c.ok(['resume', 'life1'])).stdout).toContain('resumed');
    expect(await c.state('life1')).toBe('running (unpaused)');
    log = await expectContinuesAfter(shared, 'life1', pausedAt);

    const st = statusOf(shared.runDir, 'life1');
    expect(st, 'status file of a running domain').toBeDefined();
    expect((await c.ok(['destroy', 'life1'])).stdout).toContain('destroyed');
    expect(await c.state('life1')).toBe('shut off (destroyed)');
    expect(rowOf(await c.list('--all'), 'life1')).toEqual({ id: '-', name: 'life1', state: 'shut off' });
    await waitGone(st!.pid, st!.pidStartTime);
    expect(statusOf(shared.runDir, 'life1'), 'status file after destroy').toBeUndefined();

    expect((await c.ok(['undefine', 'life1'])).stdout).toContain('undefined');
    expect(rowOf(await c.list('--all'), 'life1')).toBeUndefined();
    await c.fails(['dominfo', 'life1'], 'no_domain', 42);
  });

  it('create makes a transient domain that cannot be undefined and vanishes when destroyed', async () => {
    const c = cli(shared);
    const file = writeGuestXml(xmlDir, { name: 'trans1' });
    expect((await c.ok(['create', file])).stdout).toContain("Domain 'trans1' created");
    expect(rowOf(await c.list(), 'trans1')?.state).toBe('running');
    const info = await c.info('trans1');
    expect(info.Persistent).toBe('no');
    expect(info.State).toBe('running');
    expect(rowOf(await c.list('--transient'), 'trans1')).toBeDefined();
    expect(rowOf(await c.list('--persistent'), 'trans1')).toBeUndefined();
    await waitForHeartbeat(shared.uri, 'trans1', heartbeats(1), 30_000);
    const st = statusOf(shared.runDir, 'trans1')!;

    const msg = await c.fails(['undefine', 'trans1'], 'operation_invalid', 55);
    expect(msg).toContain('trans1');
    expect(await c.state('trans1')).toMatch(/^running/);
    expect(await processAlive(st.pid, st.pidStartTime)).toBe(true);
    const last = (await consoleLog(shared.uri, 'trans1')).log.lastHeartbeat?.counter ?? 0;
    await waitForHeartbeat(shared.uri, 'trans1', counterAbove(last), 10_000);

    await c.ok(['destroy', 'trans1']);
    expect(rowOf(await c.list('--all'), 'trans1'), 'a destroyed transient domain is gone').toBeUndefined();
    await c.fails(['domstate', 'trans1'], 'no_domain', 42);
    await waitGone(st.pid, st.pidStartTime);
  });

  it('undefine of a running persistent domain keeps it running as a transient one', async () => {
    const c = cli(shared);
    const file = writeGuestXml(xmlDir, { name: 'undef-run' });
    await c.ok(['define', file]);
    await c.ok(['start', 'undef-run']);
    const st = statusOf(shared.runDir, 'undef-run')!;
    expect((await c.ok(['undefine', 'undef-run'])).stdout).toContain("Domain 'undef-run' has been undefined");

    expect(rowOf(await c.list(), 'undef-run')?.state).toBe('running');
    expect(await c.state('undef-run')).toMatch(/^running/);
    expect((await c.info('undef-run')).Persistent).toBe('no');
    expect(rowOf(await c.list('--all', '--persistent'), 'undef-run')).toBeUndefined();
    expect(readdirSync(join(shared.stateDir, 'domains')).filter((f) => f.startsWith('undef-run'))).toEqual([]);
    expect(await processAlive(st.pid, st.pidStartTime)).toBe(true);
    await waitForHeartbeat(shared.uri, 'undef-run', heartbeats(1), 30_000);

    await c.ok(['destroy', 'undef-run']);
    expect(rowOf(await c.list('--all'), 'undef-run')).toBeUndefined();
    await waitGone(st.pid, st.pidStartTime);
  });

  it('shutdown: the guest powers off on the ACPI power button -> shut off (shutdown)', async () => {
    const c = cli(shared);
    await c.ok(['define', writeGuestXml(xmlDir, { name: 'sd1' })]);
    await c.ok(['start', 'sd1']);
    const st = statusOf(shared.runDir, 'sd1')!;
    // Presses before the guest armed its power button are lost (guest/README.md).
    await waitForHeartbeat(shared.uri, 'sd1', (l) => l.ready !== undefined, 30_000);

    expect((await c.ok(['shutdown', 'sd1'])).stdout).toContain('is being shutdown');
    await waitState(shared, 'sd1', 'shut off (shutdown)', 20_000);
    expect((await consoleLog(shared.uri, 'sd1')).log.poweroff, 'the guest saw the power button').toBe(true);
    await waitGone(st.pid, st.pidStartTime);
    expect(statusOf(shared.runDir, 'sd1')).toBeUndefined();
    expect(rowOf(await c.list('--all'), 'sd1')).toEqual({ id: '-', name: 'sd1', state: 'shut off' });
  });

  it('a guest killed from outside is shut off (crashed), and can be started again', async () => {
    const c = cli(shared);
    await c.ok(['define', writeGuestXml(xmlDir, { name: 'crash1' })]);
    await c.ok(['start', 'crash1']);
    await waitForHeartbeat(shared.uri, 'crash1', heartbeats(1), 30_000);
    const st = statusOf(shared.runDir, 'crash1')!;
    process.kill(st.pid, 'SIGKILL');

    await waitState(shared, 'crash1', 'shut off (crashed)', 15_000);
    expect(statusOf(shared.runDir, 'crash1')).toBeUndefined();
    expect(shared.stderr()).toMatch(/domain 'crash1' stopped: QEMU ended unexpectedly/);

    await c.ok(['start', 'crash1']);
    expect(await c.state('crash1')).toBe('running (booted)');
    const log = await waitForHeartbeat(shared.uri, 'crash1', heartbeats(1), 30_000);
    expectContinuousFromBoot(log, 'crash1 after restart');
    await c.ok(['destroy', 'crash1']);
  });
});

describe('autostart', () => {
  it('autostart starts the domain when ferryd starts with a new run dir; --disable turns it off', async () => {
    const d = await startDaemon({ hostName: 'e2e-autostart' });
    const c = cli(d);
    await c.ok(['define', writeGuestXml(xmlDir, { name: 'auto1' })]);
    expect((await c.ok(['autostart', 'auto1'])).stdout).toContain('marked as autostarted');
    expect((await c.list('--all', '--autostart')).map((r) => r.name)).toEqual(['auto1']);
    expect((await c.info('auto1')).Autostart).toBe('enable');
    expect(await c.state('auto1')).toMatch(/^shut off/);

    // A new run dir is what a host reboot looks like (it is a tmpfs).
    const run2 = join(makeTempDir('ferry-run-'), 'run');
    await d.restart({ runDir: run2 });
    expect(rowOf(await c.list(), 'auto1')?.state).toBe('running');
    expect((await c.list('--autostart')).map((r) => r.name)).toEqual(['auto1']);
    expect(d.stderr()).toContain("autostarted domain 'auto1'");
    await waitForHeartbeat(d.uri, 'auto1', heartbeats(2), 30_000);

    // Once per run dir: a daemon restart (no reboot) does not start it again.
    await c.ok(['destroy', 'auto1']);
    await d.restart();
    expect(await c.state('auto1')).toMatch(/^shut off/);

    expect((await c.ok(['autostart', '--disable', 'auto1'])).stdout).toContain('unmarked as autostarted');
    expect(await c.list('--all', '--autostart')).toEqual([]);
    expect((await c.info('auto1')).Autostart).toBe('disable');
    await d.restart({ runDir: join(makeTempDir('ferry-run-'), 'run') });
    expect(await c.state('auto1')).toMatch(/^shut off/);
    expect((await c.info('auto1')).Autostart).toBe('disable');
    await d.stop();
  });
});

describe('lifecycle events', () => {
  it('a subscriber receives defined, started, suspended, resumed, stopped, undefined in order', async () => {
    const c = cli(shared);
    const sub = await ApiClient.connect(shared.uri);
    const quiet = await ApiClient.connect(shared.uri);
    const events: LifecycleEvent[] = [];
    const unsubscribedSaw: unknown[] = [];
    try {
      sub.on('event', (name: string, data: LifecycleEvent) => {
        if (name === 'domain.lifecycle' && data.domain === 'ev1') events.push(data);
      });
      quiet.on('event', (...a: unknown[]) => unsubscribedSaw.push(a));
      expect(await sub.call('events.subscribe', {})).toEqual({ subscribed: true });
      await quiet.call('domain.list', {});

      const defined = await c.json(['define', writeGuestXml(xmlDir, { name: 'ev1' })]);
      await c.ok(['start', 'ev1']);
      await c.ok(['suspend', 'ev1']);
      await c.ok(['resume', 'ev1']);
      await c.ok(['destroy', 'ev1']);
      await c.ok(['undefine', 'ev1']);
      await waitFor('the undefined event', () => events.some((e) => e.kind === 'undefined'), 10_000, 50);
      // A round trip on the subscribed connection: every event published before it has arrived, duplicates included.
      await sub.call('domain.list', {});

      expect(events.map((e) => [e.kind, e.detail])).toEqual([
        ['defined', 'added'],
        ['started', 'booted'],
        ['suspended', 'paused'],
        ['resumed', 'unpaused'],
        ['stopped', 'destroyed'],
        ['undefined', 'removed'],
      ]);
      expect(events.every((e) => e.uuid === defined.uuid)).toBe(true);
      const times = events.map((e) => Date.parse(e.timestamp));
      expect(times.every((t, i) => !Number.isNaN(t) && (i === 0 || t >= times[i - 1]!))).toBe(true);
      expect(unsubscribedSaw, 'a connection that did not subscribe gets no events').toEqual([]);
    } finally {
      sub.close();
      quiet.close();
    }
  });
});

describe('restart safety', () => {
  for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
    it(`guests survive ferryd ${signal} and are re-attached with the same Id, state, pid and heartbeat`, async () => {
      const d = await startDaemon({ hostName: `e2e-restart-${signal}` });
      const c = cli(d);
      await c.ok(['define', writeGuestXml(xmlDir, { name: 'rs-run' })]);
      await c.ok(['define', writeGuestXml(xmlDir, { name: 'rs-pause' })]);
      await c.ok(['start', 'rs-run']);
      await c.ok(['start', 'rs-pause']);
      await waitForHeartbeat(d.uri, 'rs-pause', heartbeats(2), 30_000);
      await c.ok(['suspend', 'rs-pause']);
      await waitForHeartbeat(d.uri, 'rs-run', heartbeats(2), 30_000);

      const before = (await c.json(['list', '--all'])) as Array<{ name: string; id: number; state: string; reason: string }>;
      const idOf = (rows: typeof before, n: string) => rows.find((r) => r.name === n)?.id;
      expect(idOf(before, 'rs-run')).toEqual(expect.any(Number));
      expect(idOf(before, 'rs-pause')).toEqual(expect.any(Number));
      const stRun = statusOf(d.runDir, 'rs-run')!;
      const stPause = statusOf(d.runDir, 'rs-pause')!;
      const pausedAt = serialLogFile(d.stateDir, 'rs-pause').log.lastHeartbeat!.counter;

      const exit = await d.stop(signal);
      if (signal === 'SIGTERM') {
        expect(exit.code, 'ferryd exits 0 on SIGTERM').toBe(0);
        expect(d.stderr()).toContain('SIGTERM: stopping');
      } else {
        expect(exit.signal).toBe('SIGKILL');
      }
      // The guests do not depend on the daemon.
      expect(await processAlive(stRun.pid, stRun.pidStartTime)).toBe(true);
      expect(await processAlive(stPause.pid, stPause.pidStartTime)).toBe(true);
      // Nobody listens on the socket now (after SIGKILL the socket file is still there: a stale socket).
      if (signal === 'SIGKILL') expect(existsSync(d.socketPath), 'stale socket file').toBe(true);
      const noDaemon = await ferry(['list'], { uri: d.uri, json: true });
      expect(noDaemon.code).toBe(1);
      expect(noDaemon.json?.error).toMatchObject({ code: 'no_connect', number: 5 });
      // The running guest keeps running while the daemon is away.
      const runTextBefore = serialLogFile(d.stateDir, 'rs-run').text;
      const pauseTextBefore = serialLogFile(d.stateDir, 'rs-pause').text;
      const lastSeen = serialLogFile(d.stateDir, 'rs-run').log.lastHeartbeat!.counter;
      await waitFor('a heartbeat while ferryd is down', () => serialLogFile(d.stateDir, 'rs-run').log.lastHeartbeat!.counter > lastSeen, 10_000, 50);

      await d.restart();
      expect(d.stderr()).toMatch(/re-attached to running domain 'rs-run'/);
      const after = (await c.json(['list', '--all'])) as typeof before;
      expect(after.find((r) => r.name === 'rs-run')).toMatchObject({ id: idOf(before, 'rs-run'), state: 'running', persistent: true });
      expect(after.find((r) => r.name === 'rs-pause')).toMatchObject({ id: idOf(before, 'rs-pause'), state: 'paused', persistent: true });
      expect(await c.state('rs-pause')).toBe('paused (user)');
      expect(await c.state('rs-run')).toMatch(/^running/);
      expect(statusOf(d.runDir, 'rs-run')?.pid, 'same QEMU for rs-run').toBe(stRun.pid);
      expect(statusOf(d.runDir, 'rs-pause')?.pid, 'same QEMU for rs-pause').toBe(stPause.pid);
      expect((await c.info('rs-run')).Id).toBe(String(idOf(before, 'rs-run')));

      // The heartbeat never restarted: one boot, counters 1, 2, 3, ... across the restart,
      // and what the guest printed before the restart is still the start of its log.
      const runLog = await waitForHeartbeat(d.uri, 'rs-run', counterAbove(lastSeen + 2), 15_000);
      expectContinuousFromBoot(runLog, 'rs-run across the ferryd restart');
      expect((await consoleLog(d.uri, 'rs-run')).text.startsWith(runTextBefore), 'rs-run serial log was rewritten').toBe(true);
      const pause = await consoleLog(d.uri, 'rs-pause');
      expect(pause.log.lastHeartbeat?.counter, 'the paused guest stayed paused').toBe(pausedAt);
      expect(pause.text, 'a paused guest prints nothing').toBe(pauseTextBefore);

      // Everything still works on the re-attached guests.
      await c.ok(['resume', 'rs-pause']);
      expect(await c.state('rs-pause')).toBe('running (unpaused)');
      await expectContinuesAfter(d, 'rs-pause', pausedAt);

      await c.ok(['suspend', 'rs-run']);
      expect(await c.state('rs-run')).toBe('paused (user)');
      const runPausedAt = await expectNoProgress(d, 'rs-run', 800);
      await c.ok(['resume', 'rs-run']);
      expect(await c.state('rs-run')).toBe('running (unpaused)');
      await expectContinuesAfter(d, 'rs-run', runPausedAt);

      if (signal === 'SIGKILL') {
        await c.ok(['destroy', 'rs-run']);
        expect(await c.state('rs-run')).toBe('shut off (destroyed)');
        await waitGone(stRun.pid, stRun.pidStartTime);
        // A re-attached QEMU is not ferryd's child: its death must still be noticed.
        process.kill(stPause.pid, 'SIGKILL');
        await waitState(d, 'rs-pause', 'shut off (crashed)', 15_000);
      } else {
        // The power button and the guest's power-off on a re-attached QEMU.
        await c.ok(['shutdown', 'rs-run']);
        await waitState(d, 'rs-run', 'shut off (shutdown)', 20_000);
        await waitGone(stRun.pid, stRun.pidStartTime);
        await c.ok(['destroy', 'rs-pause']);
        expect(await c.state('rs-pause')).toBe('shut off (destroyed)');
        await waitGone(stPause.pid, stPause.pidStartTime);
      }
      expect(statusOf(d.runDir, 'rs-run')).toBeUndefined();
      expect(statusOf(d.runDir, 'rs-pause')).toBeUndefined();

      // Ids are not reused after the restart.
      await c.ok(['start', 'rs-run']);
      const newId = (await c.json(['domid', 'rs-run'])).id as number;
      expect(newId).toBeGreaterThan(Math.max(idOf(before, 'rs-run')!, idOf(before, 'rs-pause')!));
      await c.ok(['destroy', 'rs-run']);
      await d.stop();
    });
  }
});

describe('restart safety: transient domains and state changes', () => {
  it('a transient domain and one undefined while running come back as transient after a ferryd crash', async () => {
    const d = await startDaemon({ hostName: 'e2e-restart-transient' });
    const c = cli(d);
    await c.ok(['create', writeGuestXml(xmlDir, { name: 'rt-trans' })]);
    await c.ok(['define', writeGuestXml(xmlDir, { name: 'rt-undef' })]);
    await c.ok(['start', 'rt-undef']);
    await c.ok(['undefine', 'rt-undef']);
    const ids = (await c.json(['list'])) as Array<{ name: string; id: number }>;
    await waitForHeartbeat(d.uri, 'rt-trans', heartbeats(1), 30_000);

    await d.kill9();
    await d.restart();
    for (const name of ['rt-trans', 'rt-undef']) {
      const info = await c.info(name);
      expect(info, name).toMatchObject({ State: 'running', Persistent: 'no', Id: String(ids.find((r) => r.name === name)?.id) });
    }
    expect(await c.list('--all', '--persistent')).toEqual([]);
    const last = (await consoleLog(d.uri, 'rt-trans')).log.lastHeartbeat?.counter ?? 0;
    const log = await waitForHeartbeat(d.uri, 'rt-trans', counterAbove(last), 10_000);
    expectContinuousFromBoot(log, 'rt-trans');

    await c.ok(['destroy', 'rt-trans']);
    await c.ok(['destroy', 'rt-undef']);
    expect(await c.list('--all'), 'destroyed transient domains are gone').toEqual([]);
    await d.kill9();
    await d.restart();
    expect(await c.list('--all'), 'nothing comes back after another restart').toEqual([]);
  });

  it('a guest that died while ferryd was down is shut off after the restart and can be started again', async () => {
    const d = await startDaemon({ hostName: 'e2e-restart-dead' });
    const c = cli(d);
    await c.ok(['define', writeGuestXml(xmlDir, { name: 'dead1' })]);
    await c.ok(['start', 'dead1']);
    const oldId = (await c.json(['domid', 'dead1'])).id as number;
    const st = statusOf(d.runDir, 'dead1')!;
    await d.kill9();
    process.kill(st.pid, 'SIGKILL');
    await waitGone(st.pid, st.pidStartTime);

    await d.restart();
    expect(await c.state('dead1')).toMatch(/^shut off/);
    expect(rowOf(await c.list('--all'), 'dead1')).toEqual({ id: '-', name: 'dead1', state: 'shut off' });
    expect(statusOf(d.runDir, 'dead1'), 'stale status file').toBeUndefined();
    await c.ok(['start', 'dead1']);
    expect(await c.state('dead1')).toBe('running (booted)');
    const log = await waitForHeartbeat(d.uri, 'dead1', heartbeats(1), 30_000);
    expectContinuousFromBoot(log, 'dead1 after a fresh start');
    expect(typeof oldId).toBe('number');
    await c.ok(['destroy', 'dead1']);
    await d.stop();
  });

  // suspend/resume answer only once the new state is in the status file, so
  // a crash right after the answer keeps the reason.
  it('a suspend that was acknowledged survives an immediate ferryd crash as paused (user)', async () => {
    const d = await startDaemon({ hostName: 'e2e-restart-ack' });
    const c = cli(d);
    await c.ok(['create', writeGuestXml(xmlDir, { name: 'ack1' })]);
    await waitForHeartbeat(d.uri, 'ack1', heartbeats(1), 30_000);
    const api = await ApiClient.connect(d.uri);
    try {
      await api.call('domain.suspend', { domain: 'ack1' });
      process.kill(d.pid, 'SIGKILL'); // the moment the answer is in: a crash now must not lose it
    } finally {
      api.close();
    }
    await d.restart();
    expect(await c.state('ack1')).toBe('paused (user)');
  });

  // A second ferryd on the same run dir must not touch the first one's
  // guests (QEMU serves one QMP client; taking them for gone would let a
  // later start run a guest twice): the run dir lock refuses it up front.
  it('a second ferryd on the same dirs refuses to start and leaves the running guests alone', async () => {
    const d = await startDaemon({ hostName: 'e2e-second' });
    const c = cli(d);
    await c.ok(['define', writeGuestXml(xmlDir, { name: 'second1' })]);
    await c.ok(['start', 'second1']);
    const st = statusOf(d.runDir, 'second1')!;

    const second = await runDaemonToExit(['--state-dir', d.stateDir, '--run-dir', d.runDir, '--accel', 'tcg'], 30_000);
    expect(second.code).not.toBe(0);
    expect(second.stderr).toMatch(/another (ferryd|daemon)/);
    expect(d.alive()).toBe(true);
    expect(await c.state('second1')).toMatch(/^running/);

    // What the first daemon needs to find its guest again must still be there.
    expect(statusOf(d.runDir, 'second1')?.pid, 'status file of the running guest').toBe(st.pid);
    await d.kill9();
    await d.restart();
    expect(await c.state('second1')).toMatch(/^running/);
    await c.fails(['start', 'second1'], 'operation_invalid', 55);
    expect(qemuPidsMentioning(st.uuid)).toEqual([st.pid]);
  });
});

describe('definitions', () => {
  it('redefining a running domain changes the next boot, not the running guest', async () => {
    const c = cli(shared);
    const { uuid } = await c.json(['define', writeGuestXml(xmlDir, { name: 'redef1' })]);
    await c.ok(['start', 'redef1']);
    await c.ok(['define', writeGuestXml(xmlDir, { name: 'redef1', uuid, cmdline: 'ws=8 rate=5 hb=250' }, 'redef1-b.xml')]);
    expect((await c.ok(['dumpxml', 'redef1'])).stdout).toContain('hb=200');
    expect((await c.ok(['dumpxml', '--inactive', 'redef1'])).stdout).toContain('hb=250');
    expect((await c.info('redef1')).Persistent).toBe('yes');
    const log = await waitForHeartbeat(shared.uri, 'redef1', heartbeats(1), 30_000);
    expect(log.boot?.hbMs).toBe(200);

    await c.ok(['destroy', 'redef1']);
    expect((await c.ok(['dumpxml', 'redef1'])).stdout).toContain('hb=250');
    await c.ok(['start', 'redef1']);
    const log2 = await waitForHeartbeat(shared.uri, 'redef1', heartbeats(1), 30_000);
    expect(log2.boot?.hbMs, 'the new definition is used at the next start').toBe(250);
    expectContinuousFromBoot(log2, 'redef1 second boot');
    await c.ok(['destroy', 'redef1']);
  });

  // Names become file names: every name the rules accept must be startable
  // (status files are named by UUID, names are limited to 200 UTF-8 bytes).
  it('a name the rules accept either starts or is refused when defined', async () => {
    const c = cli(shared);
    const name = 'é'.repeat(40);
    const r = await ferry(['define', writeGuestXml(xmlDir, { name }, 'longname.xml')], { uri: shared.uri, json: true });
    if (r.code !== 0) {
      expect(r.json?.error?.code).toBe('xml_error');
      return;
    }
    const s = await ferry(['start', name], { uri: shared.uri, json: true });
    expect(s.json?.error).toBeUndefined();
    expect(s.code).toBe(0);
    expect(await c.state(name)).toBe('running (booted)');
  });
});

describe('errors', () => {
  it('malformed XML is refused with xml_error naming the problem', async () => {
    const c = cli(shared);
    const unclosed = join(xmlDir, 'unclosed.xml');
    const notXml = join(xmlDir, 'not-xml.xml');
    const empty = join(xmlDir, 'empty.xml');
    writeFileSync(unclosed, "<domain type='qemu'><name>bad1</name><memory>262148</memory>\n");
    writeFileSync(notXml, 'this is not XML\n');
    writeFileSync(empty, '');

    const m1 = await c.fails(['define', unclosed], 'xml_error', 27);
    expect(m1).toMatch(/line 1/);
    expect(m1).toMatch(/unclosed/i);
    expect(m1).toContain('domain');
    await c.answers();
    const m2 = await c.fails(['define', notXml], 'xml_error', 27);
    expect(m2).toMatch(/malformed|root/i);
    await c.answers();
    await c.fails(['define', empty], 'xml_error', 27);
    await c.fails(['create', unclosed], 'xml_error', 27);
    await c.answers();

    // Text mode: `error: ...` on stderr, exit 1, nothing on stdout.
    const r = await ferry(['define', unclosed], { uri: shared.uri });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: .*unclosed/im);
    expect(r.stdout).toBe('');
    expect(rowOf(await c.list('--all'), 'bad1')).toBeUndefined();
  });

  it('names with / , or ../ are refused (xml_error) and write nothing', async () => {
    const c = cli(shared);
    const before = readdirSync(shared.stateDir, { recursive: true }).sort();
    const cases = [
      ['a/b', '/'],
      ['a,b', ','],
      ['../evil', '/'],
      ['..', '.'],
    ] as const;
    await Promise.all(
      cases.map(async ([name, ch], i) => {
        const file = writeGuestXml(xmlDir, { name }, `badname-${i}.xml`);
        const msg = await c.fails(['define', file], 'xml_error', 27);
        expect(msg).toContain(`'${ch}'`);
        await c.fails(['create', file], 'xml_error', 27);
      }),
    );
    await c.answers();
    expect(readdirSync(shared.stateDir, { recursive: true }).sort()).toEqual(before);
    expect(readdirSync(join(shared.stateDir, '..'))).not.toContain('evil.xml');
    expect(qemuPidsMentioning(shared.runDir)).toEqual([]);
  });

  it('an unknown domain is no_domain (42) for every command', async () => {
    const c = cli(shared);
    // Independent calls: run them side by side (each CLI run is mostly node start-up).
    await Promise.all([
      ...['dominfo', 'domstate', 'dumpxml', 'start', 'destroy', 'suspend', 'resume', 'shutdown', 'undefine', 'autostart', 'domid'].map((cmd) =>
        c.fails([cmd, 'no-such-domain'], 'no_domain', 42),
      ),
      c.fails(['console', '--log', 'no-such-domain'], 'no_domain', 42),
      c.fails(['dominfo', '00000000-0000-4000-8000-000000000000'], 'no_domain', 42),
      c.fails(['dominfo', '4242'], 'no_domain', 42),
    ]);
    const r = await ferry(['dominfo', 'no-such-domain'], { uri: shared.uri });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: .*no-such-domain/m);
    await c.answers();
  });

  it('a duplicate name or uuid is dom_exist (28) and leaves the existing domain alone', async () => {
    const c = cli(shared);
    const u1 = '6a1f3c2e-9d4b-4c8a-8e1f-0b2c3d4e5f60';
    const u2 = '7b2e4d3f-0e5c-4d9b-9f20-1c3d4e5f6071';
    await c.ok(['define', writeGuestXml(xmlDir, { name: 'dup1', uuid: u1 })]);
    const sameNameOtherUuid = writeGuestXml(xmlDir, { name: 'dup1', uuid: u2 }, 'dup-a.xml');
    const sameUuidOtherName = writeGuestXml(xmlDir, { name: 'dup2', uuid: u1 }, 'dup-b.xml');
    await c.fails(['define', sameNameOtherUuid], 'dom_exist', 28);
    await c.fails(['define', sameUuidOtherName], 'dom_exist', 28);
    await c.fails(['create', sameNameOtherUuid], 'dom_exist', 28);
    await c.fails(['create', sameUuidOtherName], 'dom_exist', 28);
    await c.answers();
    const rows = (await c.json(['list', '--all'])) as Array<{ name: string; uuid: string }>;
    expect(rows.filter((r) => r.name.startsWith('dup'))).toEqual([expect.objectContaining({ name: 'dup1', uuid: u1, state: 'shutoff' })]);
    expect((await c.ok(['dumpxml', 'dup1'])).stdout).toContain(`<uuid>${u1}</uuid>`);
    expect(qemuPidsMentioning(u1)).toEqual([]);
    expect(qemuPidsMentioning(u2)).toEqual([]);

    // The same name and uuid again is an update, as in libvirt.
    await c.ok(['define', writeGuestXml(xmlDir, { name: 'dup1', uuid: u1, cmdline: 'ws=8 rate=5 hb=300' }, 'dup-c.xml')]);
    expect((await c.ok(['dumpxml', 'dup1'])).stdout).toContain('hb=300');
  });

  it('operations invalid in the current state are operation_invalid (55)', async () => {
    const c = cli(shared);
    await c.ok(['define', writeGuestXml(xmlDir, { name: 'inv1' })]);
    for (const msg of await Promise.all(['suspend', 'resume', 'destroy', 'shutdown'].map((cmd) => c.fails([cmd, 'inv1'], 'operation_invalid', 55)))) {
      expect(msg).toContain('inv1');
    }
    expect(await c.state('inv1')).toMatch(/^shut off/);
    await c.ok(['start', 'inv1']);
    await c.fails(['start', 'inv1'], 'operation_invalid', 55);
    expect(await c.state('inv1')).toBe('running (booted)');
    expect(qemuPidsMentioning(shared.runDir)).toHaveLength(1);
    await c.answers();
    await c.ok(['destroy', 'inv1']);
  });

  it('concurrent starts of one domain launch one QEMU; concurrent defines of one name make one domain', async () => {
    const c = cli(shared);
    await c.ok(['define', writeGuestXml(xmlDir, { name: 'race1' })]);
    const starts = await Promise.all([0, 1, 2].map(() => ferry(['start', 'race1'], { uri: shared.uri, json: true })));
    expect(starts.filter((r) => r.code === 0)).toHaveLength(1);
    for (const r of starts.filter((x) => x.code !== 0)) expect(r.json?.error?.code).toBe('operation_invalid');
    expect(qemuPidsMentioning(shared.runDir)).toHaveLength(1);
    expect(await c.state('race1')).toBe('running (booted)');
    await c.ok(['destroy', 'race1']);

    const files = [0, 1, 2].map((i) => writeGuestXml(xmlDir, { name: 'race2', uuid: `0000000${i}-1111-4222-8333-444455556666` }, `race2-${i}.xml`));
    const defs = await Promise.all(files.map((f) => ferry(['define', f], { uri: shared.uri, json: true })));
    expect(defs.filter((r) => r.code === 0)).toHaveLength(1);
    for (const r of defs.filter((x) => x.code !== 0)) expect(r.json?.error?.code).toBe('dom_exist');
    expect((await c.list('--all')).filter((r) => r.name === 'race2')).toHaveLength(1);
  });

  it('a disk that does not exist is operation_failed with QEMU\'s message; nothing is left running', async () => {
    const c = cli(shared);
    const missing = join(xmlDir, 'no-such-dir', 'missing-disk.img');
    const disk = `    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${xmlEscape(missing)}'/><target dev='vda' bus='virtio'/></disk>`;
    await c.ok(['define', writeGuestXml(xmlDir, { name: 'nodisk', extraDevices: disk })]);
    const msg = await c.fails(['start', 'nodisk'], 'operation_failed', 9);
    expect(msg).toContain(missing);
    expect(msg).toMatch(/No such file or directory/);
    expect(await c.state('nodisk')).toMatch(/^shut off/);
    expect(rowOf(await c.list('--all'), 'nodisk')?.id).toBe('-');
    expect(statusOf(shared.runDir, 'nodisk')).toBeUndefined();
    expect(qemuPidsMentioning(shared.runDir)).toEqual([]);

    const transient = writeGuestXml(xmlDir, { name: 'nodisk-t', extraDevices: disk });
    const msg2 = await c.fails(['create', transient], 'operation_failed', 9);
    expect(msg2).toContain(missing);
    expect(rowOf(await c.list('--all'), 'nodisk-t'), 'a transient domain that failed to start is not kept').toBeUndefined();
    expect(qemuPidsMentioning(shared.runDir)).toEqual([]);
    await c.answers();
  });

  it('no daemon on the socket is no_connect (5), exit 1', async () => {
    const dir = makeTempDir('ferry-nosock-');
    const uri = `ferry+unix:///system?socket=${join(dir, 'ferryd.sock')}`;
    const j = await ferry(['list', '--all'], { uri, json: true });
    expect(j.code).toBe(1);
    expect(j.json?.error).toMatchObject({ code: 'no_connect', number: 5 });
    const t = await ferry(['list', '--all'], { uri });
    expect(t.code).toBe(1);
    expect(t.stderr).toMatch(/^error: .*ferryd\.sock/m);
    expect(t.stdout).toBe('');
  });
});

describe('hostile disk path', () => {
  it('a disk path with commas, quotes and = starts and dumpxml shows it unchanged', async () => {
    const c = cli(shared);
    const dir = join(makeTempDir('ferry-disk-'), `a,b=c"d`);
    mkdirSync(dir);
    const path = join(dir, `x,y=z"w'q,file.driver=nbd.img`);
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', path, '1M']);
    const disk = `    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${xmlEscape(path)}'/><target dev='vda' bus='virtio'/></disk>`;
    await c.ok(['define', writeGuestXml(xmlDir, { name: 'hostile1', extraDevices: disk })]);
    await c.ok(['start', 'hostile1']);
    expect(await c.state('hostile1')).toBe('running (booted)');
    await waitForHeartbeat(shared.uri, 'hostile1', heartbeats(1), 30_000);

    for (const args of [['dumpxml', 'hostile1'], ['dumpxml', '--inactive', 'hostile1']]) {
      const xml = (await c.ok(args)).stdout;
      const doc = new DOMParser().parseFromString(xml, 'text/xml');
      const source = doc.getElementsByTagName('source')[0];
      expect(source?.getAttribute('file'), `${args.join(' ')}:\n${xml}`).toBe(path);
    }
    // QEMU opened exactly that file (no option injection, no other file).
    const st = statusOf(shared.runDir, 'hostile1') as StatusFileInfo;
    expect(openFilesOf(st.pid)).toContain(path);
    await c.ok(['destroy', 'hostile1']);
  });
});
