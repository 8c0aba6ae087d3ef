/**
 * Evacuation end to end (issue 15, docs/evacuation.md): three hosts as
 * network namespaces on one bridge, each link shaped to 200 Mbit/s, each
 * ferryd allowing 3 outgoing and 2 incoming migrations at once. Host 1 runs
 * a fleet of memory-writing test guests (odd RAM sizes, persistent: defined
 * then started) and is emptied with
 *
 *     ferry -c H1 evacuate --to H2 --to H3 --include-inactive --json
 *
 * - 12 running guests and one inactive definition: exit 0; every guest runs
 *   on exactly one destination and is defined there (the inactive one only
 *   defined), nothing of them is left on h1; each heartbeat carries on from
 *   h1's last count + 1 with no CORRUPT; the record and `evacuate-status`
 *   say done for each; ferryd's logs show that no number in flight ever
 *   passed its limit (the evacuation's --max-parallel, h1's outgoing slots,
 *   each destination's incoming slots) and that the evacuation did reach
 *   its limit;
 * - faults while migrations run, 6 guests each, the same check afterwards:
 *   - a destination's ferryd killed (SIGKILL) and restarted a few seconds
 *     later;
 *   - the same while it holds a migration inside finish (a test hold
 *     point): the outcome is unknown, the guest waits paused on h1, and
 *     `ferry evacuate` run again once h2 is back resumes and moves it;
 *   - the link to a destination cut for 20 s;
 *   - the evacuating CLI killed, then `ferry evacuate` run again: it
 *     attaches and finishes;
 *   - the source's ferryd killed and restarted, then `ferry evacuate` run
 *     again: it continues from its record and finishes; the same while a
 *     migration waits in confirm (its guest already runs on the
 *     destination): that guest counts as done and is not moved again;
 *   - Ctrl-C twice in `ferry evacuate`: nothing new starts, the running
 *     migrations are aborted and their guests run on at h1; run again, it
 *     finishes.
 *   - a destination put in maintenance midway: what runs there finishes,
 *     what is sent there afterwards is refused and retried on the other.
 *
 * A guest whose migration outcome is unknown is never retried by the run
 * itself (docs/evacuation.md, "Failures"): when a fault leaves one, the
 * first command exits 1 with operation_failed and the user runs it again
 * once the fault is over, which must then finish. Every wait is bounded,
 * and events are ordered by what the hosts report, never by sleeping.
 *
 * Needs `npm run build`, `make -C guest` and root (network namespaces).
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EvacuationStatus } from '../../src/api/protocol.js';
import { expectCliOk } from '../support/cli-result.js';
import { spawnFerry, type FerryProcess } from '../support/cli-process.js';
import { createCluster, type Cluster, type ClusterHost } from '../support/cluster.js';
import { qemuPidsMentioning, resetDaemons, sleep, useDaemonCleanup, waitFor, type CliResult } from '../support/daemon.js';
import {
  createFleet,
  describeRecord,
  evacuationEnds,
  evacuationStarts,
  evacuationStatus,
  expectEvacuated,
  fleetOf,
  forgetEvacuation,
  heartbeatHost,
  limitsSeen,
  listingOf,
  statusCounts,
  stopEvacuation,
  type FleetGuest,
} from '../support/evacuation.js';
import { expectHeartbeatCarriesOn } from '../support/heartbeat.js';
import { netnsAvailable } from '../support/netns.js';

/** Each ferryd's migration limits; the evacuation's --max-parallel defaults to the source's outgoing one. */
const LIMITS = { maxParallel: 3, maxOutgoing: 3, maxIncoming: 2 };
/** A silent peer is noticed after 2 s x 3, so that a cut link fails the migrations into it within the test's time. */
const KEEPALIVE = ['--keepalive-interval', '2', '--keepalive-count', '3'];
/** The whole evacuation command, faults included, ends within this (else it is killed and the test fails). */
const EVACUATE_MS = 240_000;
/** The fault tests' guests: a 40 MiB working set rewritten at 1 MiB/s takes seconds to move at 200 Mbit/s shared by three. */
const FAULT_FLEET = { running: 6, firstMiB: 64, cmdline: 'ws=40 rate=1 hb=200' };

let cluster: Cluster | undefined;
let h1: ClusterHost;
let h2: ClusterHost;
let h3: ClusterHost;
/** The guests of the running test, for the cleanup. */
let fleet: FleetGuest[] = [];

// Between tests: every link up, no evacuation running or unfinished on h1, every host up and empty, no QEMU of the fleet left.
useDaemonCleanup(async () => {
  if (!cluster) return;
  for (const h of cluster.hosts) {
    cluster.setLink(h, true);
    for (const f of ['test-hold', 'held-dest-prepared', 'held-dest-finishing', 'held-source-confirming']) rmSync(join(h.d.runDir, f), { force: true });
  }
  if (h1.d.alive()) await stopEvacuation(h1).catch(() => undefined);
  await resetDaemons([h1.d, h2.d, h3.d]);
  for (const h of cluster.hosts) expectCliOk(await h.ferry(['maintenance', 'disable']), `maintenance disable on ${h.name}`);
  for (const g of fleet) for (const pid of qemuPidsMentioning(g.uuid)) process.kill(pid, 'SIGKILL');
  fleet = [];
  await forgetEvacuation(h1, [h2.tcpUri, h3.tcpUri]);
});

beforeAll(async () => {
  if (!netnsAvailable()) return;
  cluster = await createCluster({
    prefix: `ev${process.pid % 10000}`,
    subnet: 223,
    hosts: 3,
    rate: '200mbit',
    extraArgs: ['--max-outgoing-migrations', String(LIMITS.maxOutgoing), '--max-incoming-migrations', String(LIMITS.maxIncoming), ...KEEPALIVE],
    // Hold points (src/migration/test-hold.ts), for the test that kills a destination inside finish.
    env: { FERRY_TEST_HOOKS: '1' },
  });
  [h1, h2, h3] = cluster.hosts as [ClusterHost, ClusterHost, ClusterHost];
});

afterAll(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

/** `ferry -c H1 --json evacuate --to H2 --to H3 --include-inactive` (without `--json` when `json` is false), run as a process the test may signal. */
function evacuate(json = true): FerryProcess {
  return spawnFerry(['evacuate', '--to', h2.tcpUri, '--to', h3.tcpUri, '--include-inactive'], { uri: h1.d.uri, netns: h1.ns, json, timeoutMs: EVACUATE_MS });
}

/** Starts the fleet on h1 and remembers it for the cleanup. */
async function startFleet(guests: FleetGuest[]): Promise<FleetGuest[]> {
  fleet = guests;
  await createFleet(h1, guests);
  return guests;
}

/** Where each host's ferryd log is now: what a test reads is what came after. */
function logMarks(): Map<ClusterHost, number> {
  return new Map([h1, h2, h3].map((h) => [h, h.d.stderr().length]));
}

function logSince(h: ClusterHost, marks: Map<ClusterHost, number>): string {
  return h.d.stderr().slice(marks.get(h) ?? 0);
}

/** A host's log lines about the evacuation and its migrations since `marks`: what a failure shows. */
function evacuationLog(h: ClusterHost, marks: Map<ClusterHost, number>): string {
  return logSince(h, marks)
    .split('\n')
    .filter((l) => /evacuation|migration job|migration of|harness|ready:/.test(l))
    .join('\n')
    .slice(-8000);
}

/**
 * Waits until a migration of the evacuation to `dest` is streaming (the
 * source's job has sent some of its memory); returns the guest's name.
 */
async function streamingTo(dest: ClusterHost, run: FerryProcess): Promise<string> {
  return waitFor(
    `a migration to ${dest.name} to be streaming`,
    async () => {
      if (run.exited()) throw new Error(`ferry evacuate ended first: ${run.stdout()}${run.stderr()}`);
      const st = await evacuationStatus(h1);
      return st.inFlight.find((f) => f.destination === dest.tcpUri && (f.dataProcessed ?? 0) > 4 * 1024 * 1024)?.name;
    },
    60_000,
    100,
  );
}

/**
 * Makes the next migration into h2 wait at prepare (a hold point,
 * src/migration/test-hold.ts) until `letGo`: the evacuation cannot end
 * meanwhile, so a fault lands midway however fast the other guests move.
 */
function holdOneIntoH2(): { letGo(): void } {
  writeFileSync(join(h2.d.runDir, 'test-hold'), 'dest-prepared\n');
  return { letGo: () => rmSync(join(h2.d.runDir, 'held-dest-prepared'), { force: true }) };
}

/** After {@link holdOneIntoH2}: a migration into h2 is held, and at least one other guest is done. */
async function midway(run: FerryProcess): Promise<EvacuationStatus> {
  const held = join(h2.d.runDir, 'held-dest-prepared');
  return waitFor(
    'the evacuation to be midway (a migration into h2 held at prepare, another guest done)',
    async () => {
      if (run.exited()) throw new Error(`ferry evacuate ended first: ${run.stdout()}${run.stderr()}`);
      if (!existsSync(held)) return undefined;
      // Only the first migration into h2 is held: the others go on.
      rmSync(join(h2.d.runDir, 'test-hold'), { force: true });
      const st = await evacuationStatus(h1);
      const c = statusCounts(st.record);
      return st.state === 'running' && (c.done ?? 0) >= 1 && (c.running ?? 0) >= 1 ? st : undefined;
    },
    120_000,
    100,
  );
}

/**
 * The end of an evacuation that a fault hit: the command exits 0, or 1 with
 * operation_failed when the fault left guests whose outcome is unknown
 * (`check`: never retried by the run itself), none given up (`failed`);
 * then, the fault being over, `ferry evacuate` run again must exit 0.
 * Returns the final status the last command printed, and every command's result.
 */
async function settle(run: FerryProcess, marks: Map<ClusterHost, number>): Promise<{ final: EvacuationStatus; results: CliResult[] }> {
  const first = await run.done;
  if (first.code === 0) return { final: first.json as EvacuationStatus, results: [first] };
  const st = await evacuationStatus(h1);
  const why = `ferry evacuate exited ${first.code}\nstdout: ${first.stdout}\nstderr: ${first.stderr.slice(-3000)}\nrecord:\n${describeRecord(st.record)}`;
  expect(first.code, why).toBe(1);
  expect(first.json?.error?.code, why).toBe('operation_failed');
  expect(st.state, why).toBe('ended');
  const counts = statusCounts(st.record);
  expect(counts.failed ?? 0, `guests given up: ${why}`).toBe(0);
  expect(counts.check ?? 0, `a failed evacuation leaves guests to check: ${why}`).toBeGreaterThan(0);
  const again = await evacuate().done;
  expectCliOk(again, `ferry evacuate run again after the fault\nrecord before:\n${describeRecord(st.record)}\nrecord after:\n${describeRecord(again.json?.record)}\n${h1.name}'s log:\n${evacuationLog(h1, marks)}`);
  // It carried on with the same record (the guests to check reconciled), rather than planning the rest afresh.
  expect(again.json?.continued, 'the second run continued the first run\'s record').toBe(true);
  return { final: again.json as EvacuationStatus, results: [first, again] };
}

/** The record's attempts of guests to `dest` that the fault ended (failed, unknown). */
function hitAttempts(status: EvacuationStatus, dest: ClusterHost): string[] {
  return (status.record?.guests ?? []).flatMap((e) => e.attempts.filter((a) => a.destination === dest.tcpUri && (a.result === 'failed' || a.result === 'unknown')).map((a) => `${e.guest.name}: ${a.result} (${a.error})`));
}

describe.skipIf(!netnsAvailable())('evacuation', () => {
  it('12 running guests and an inactive definition move off h1 onto h2 and h3 within every limit, their heartbeats continuous', async () => {
    const guests = await startFleet(fleetOf('ev', { running: 12, inactive: 1, firstMiB: 33, cmdline: 'ws=16 rate=2 hb=200' }));
    const marks = logMarks();
    const r = await evacuate().done;
    expectCliOk(r, 'ferry evacuate --to h2 --to h3 --include-inactive');
    const status = r.json as EvacuationStatus;
    expect(status.state, describeRecord(status.record)).toBe('ended');
    expect(status.record?.guests.map((e) => e.guest.name).sort()).toEqual(guests.map((g) => g.name).sort());

    const where = await expectEvacuated(h1, [h2, h3], guests, status);
    // Both destinations took guests: they started equal, and placement spreads.
    expect(new Set(where.values()).size, [...where].map(([n, h]) => `${n}: ${h.name}`).join(', ')).toBe(2);

    // What a user reads afterwards: every guest moved, with the host it went to.
    const report = await h1.ferry(['evacuate-status']);
    expectCliOk(report, 'evacuate-status');
    for (const g of guests) expect(report.stdout, report.stdout).toMatch(new RegExp(`^\\s*${g.name}\\s+${where.get(g.name)!.ns}\\s.*\\b${g.running ? 'migrated' : 'moved offline'}\\s*$`, 'm'));
    expect(report.stdout).toMatch(/\b13 of 13 moved, 0 failed, 0 to check\b/);

    // The limits: never passed, and reached.
    const seen = limitsSeen(logSince(h1, marks), [h2, h3].map((h) => ({ host: h.name, log: logSince(h, marks) })), LIMITS);
    expect(seen.problems).toEqual([]);
    expect(seen.starts.map((s) => s.name).sort(), 'each guest started once').toEqual(guests.map((g) => g.name).sort());
    expect(seen.most.inFlight, 'the evacuation had max-parallel migrations in flight at once').toBe(LIMITS.maxParallel);
    expect(seen.most.incoming, 'a destination had as many incoming migrations of the evacuation as it allows').toBe(LIMITS.maxIncoming);
    // ferryd's own slots: the source ran as many outgoing migrations as it allows, a destination as many incoming ones;
    // and since the evacuation keeps within both, no migration ever waited in a daemon's queue.
    expect(seen.most.sourceSlots, "h1's outgoing slots in use at once").toBe(LIMITS.maxOutgoing);
    expect(seen.most.destinationSlots, "a destination's incoming slots in use at once").toBe(LIMITS.maxIncoming);
    expect({ source: seen.most.sourceQueued, destinations: seen.most.destinationQueued }, 'migrations queued by a ferryd').toEqual({ source: 0, destinations: 0 });
    expect(status.maxInFlight).toBe(LIMITS.maxParallel);
    expect(evacuationEnds(logSince(h1, marks)).filter((e) => e.result !== 'migrated'), 'migrations that did not simply succeed').toEqual([]);
  }, 300_000);

  it("a destination's ferryd killed while migrations to it run, restarted a few seconds later: its guests are retried, every guest ends on one destination", async () => {
    const guests = await startFleet(fleetOf('eva', FAULT_FLEET));
    const marks = logMarks();
    const run = evacuate();
    const victim = await streamingTo(h2, run);
    await h2.d.kill9();
    // The source sees the migration into h2 end (its control connection closed with the daemon).
    await waitFor(`the source to see the migration of '${victim}' to ${h2.name} end`, () => evacuationEnds(logSince(h1, marks)).some((e) => e.name === victim), 60_000);
    await sleep(3000); // h2 stays down for a few seconds: the fault's duration
    await h2.d.restart();
    const { final } = await settle(run, marks);
    expect(hitAttempts(final, h2), `migrations into ${h2.name} that the kill ended\n${describeRecord(final.record)}`).not.toEqual([]);
    await expectEvacuated(h1, [h2, h3], guests, final);
    const seen = limitsSeen(logSince(h1, marks), [h2, h3].map((h) => ({ host: h.name, log: logSince(h, marks) })), LIMITS);
    expect(seen.problems).toEqual([]);
  }, 300_000);

  it("a destination's ferryd killed inside finish: the outcome is unknown, the guest waits paused on h1 for a check; ferry evacuate run again after the restart resumes and moves it", async () => {
    const guests = await startFleet(fleetOf('eve', FAULT_FLEET));
    const marks = logMarks();
    const hold = join(h2.d.runDir, 'test-hold');
    const held = join(h2.d.runDir, 'held-dest-finishing');
    writeFileSync(hold, 'dest-finishing\n');
    const run = evacuate();
    await waitFor(`a migration to ${h2.name} to be held inside finish`, () => {
      if (run.exited()) throw new Error(`ferry evacuate ended first: ${run.stdout()}${run.stderr()}`);
      return existsSync(held);
    }, 60_000, 50);
    rmSync(hold);
    const inFinish = (await evacuationStatus(h1)).inFlight.filter((f) => f.destination === h2.tcpUri).map((f) => f.name);
    await h2.d.kill9();
    rmSync(held, { force: true });
    // h2 stays down until the source has ended the migrations that were running to it (one whose finish was cut ends
    // after its attempt to settle the outcome, which cannot succeed while h2 is down).
    await waitFor(`the source to end the migrations of ${inFinish.join(', ')} to ${h2.name}`, async () => {
      const st = await evacuationStatus(h1);
      return !st.inFlight.some((f) => f.destination === h2.tcpUri && inFinish.includes(f.name));
    }, 90_000, 200);
    await h2.d.restart();
    const { final, results } = await settle(run, marks);
    // The outcome was unknown: the run did not retry that guest by itself, it left it to check (the first command failed).
    expect(results, 'the first ferry evacuate left a guest to check').toHaveLength(2);
    const unknown = (final.record?.guests ?? []).filter((e) => e.attempts.some((a) => a.destination === h2.tcpUri && a.result === 'unknown'));
    expect(unknown.map((e) => e.guest.name), describeRecord(final.record)).not.toEqual([]);
    await expectEvacuated(h1, [h2, h3], guests, final);
    const seen = limitsSeen(logSince(h1, marks), [h2, h3].map((h) => ({ host: h.name, log: logSince(h, marks) })), LIMITS);
    expect(seen.problems).toEqual([]);
  }, 300_000);

  it('the link to a destination cut for 20 s while migrations to it run: every guest ends on one destination', async () => {
    const guests = await startFleet(fleetOf('evb', FAULT_FLEET));
    const marks = logMarks();
    const run = evacuate();
    await streamingTo(h2, run);
    cluster!.setLink(h2, false);
    try {
      await sleep(20_000); // the fault's duration
    } finally {
      cluster!.setLink(h2, true);
    }
    const { final } = await settle(run, marks);
    expect(hitAttempts(final, h2), `migrations into ${h2.name} that the cut ended\n${describeRecord(final.record)}`).not.toEqual([]);
    await expectEvacuated(h1, [h2, h3], guests, final);
    const seen = limitsSeen(logSince(h1, marks), [h2, h3].map((h) => ({ host: h.name, log: logSince(h, marks) })), LIMITS);
    expect(seen.problems).toEqual([]);
  }, 300_000);

  it('the evacuating CLI killed midway: the evacuation runs on in ferryd, and ferry evacuate run again attaches and finishes it', async () => {
    const guests = await startFleet(fleetOf('evc', FAULT_FLEET));
    const marks = logMarks();
    const hold = holdOneIntoH2();
    const run = evacuate();
    await midway(run);
    run.kill('SIGKILL');
    expect((await run.done).signal).toBe('SIGKILL');
    // The evacuation does not depend on its client.
    const after = await evacuationStatus(h1);
    expect(after.state, describeRecord(after.record)).toBe('running');
    // Run again as a user would, without --json: it says it follows the running evacuation; then the held migration goes on
    // and the re-run prints the report.
    const rerun = evacuate(false);
    await waitFor('the re-run to say it follows the running evacuation', () => {
      if (rerun.exited()) throw new Error(`the re-run ended first: ${rerun.stdout()}${rerun.stderr()}`);
      return /^evacuate: following the evacuation already running/m.test(rerun.stderr());
    }, 30_000, 50);
    hold.letGo();
    const again = await rerun.done;
    expectCliOk(again, 'ferry evacuate run again while the evacuation runs');
    expect(again.stderr).toMatch(/^evacuate: following the evacuation already running: 6 guests to /m);
    for (const g of guests) expect(again.stdout, again.stdout).toMatch(new RegExp(`^\\s*${g.name}\\s+(?:${h2.ns}|${h3.ns})\\s.*\\bmigrated\\s*$`, 'm'));
    expect(again.stdout).toMatch(/\b6 of 6 moved, 0 failed, 0 to check\b/);
    const status = await h1.ferry(['evacuate-status'], { json: true });
    expectCliOk(status, 'evacuate-status');
    const final = status.json as EvacuationStatus;
    expect(final.state).toBe('ended');
    await expectEvacuated(h1, [h2, h3], guests, final);
    // Attaching started nothing twice: one migration per guest, and nobody stopped the run.
    const log = logSince(h1, marks);
    expect(evacuationStarts(log).map((s) => s.name).sort(), 'each guest started once').toEqual(guests.map((g) => g.name).sort());
    expect(log).not.toMatch(/evacuation: stop requested/);
    expect(limitsSeen(log, [h2, h3].map((h) => ({ host: h.name, log: logSince(h, marks) })), LIMITS).problems).toEqual([]);
  }, 300_000);

  it("the source's ferryd killed and restarted midway: the evacuation is interrupted, and ferry evacuate run again continues it from its record", async () => {
    const guests = await startFleet(fleetOf('evd', FAULT_FLEET));
    const marks = logMarks();
    const hold = holdOneIntoH2();
    const run = evacuate();
    const before = await midway(run);
    const doneBefore = (before.record?.guests ?? []).filter((e) => e.status === 'done').map((e) => e.guest.name);
    await h1.d.kill9();
    // The CLI loses its daemon and says so.
    const lost = await run.done;
    expect(lost.code, `${lost.stdout}${lost.stderr}`).toBe(1);
    expect(lost.json?.error?.code, lost.stdout).toBeTruthy();
    await h1.d.restart();
    // The migration held in h2's prepare goes on: its source is gone, so h2 drops it.
    hold.letGo();
    const interrupted = await h1.ferry(['evacuate-status'], { json: true });
    expectCliOk(interrupted, 'evacuate-status after the restart');
    expect(interrupted.json?.state, describeRecord(interrupted.json?.record)).toBe('interrupted');

    const again = await evacuate().done;
    expectCliOk(again, 'ferry evacuate run again after the restart');
    const final = again.json as EvacuationStatus;
    expect(final.continued, 'the run continued the record').toBe(true);
    expect(logSince(h1, marks)).toMatch(/evacuation continues: /);
    await expectEvacuated(h1, [h2, h3], guests, final);
    // What was done before the restart was not moved again.
    const restartedAt = logSince(h1, marks).lastIndexOf('evacuation continues: ');
    const startedAfter = evacuationStarts(logSince(h1, marks).slice(restartedAt)).map((s) => s.name);
    expect(startedAfter.filter((n) => doneBefore.includes(n)), `done before the restart: ${doneBefore.join(', ')}`).toEqual([]);
    expect(limitsSeen(logSince(h1, marks), [h2, h3].map((h) => ({ host: h.name, log: logSince(h, marks) })), LIMITS).problems).toEqual([]);
  }, 300_000);

  it("the source's ferryd killed while a migration waits in confirm (the destination already runs the guest): after the restart that guest is done, not moved again, and the re-run finishes", async () => {
    const guests = await startFleet(fleetOf('evf', FAULT_FLEET));
    const marks = logMarks();
    const hold = join(h1.d.runDir, 'test-hold');
    const held = join(h1.d.runDir, 'held-source-confirming');
    writeFileSync(hold, 'source-confirming\n');
    const run = evacuate();
    await waitFor('a migration to be held in confirm on h1', () => {
      if (run.exited()) throw new Error(`ferry evacuate ended first: ${run.stdout()}${run.stderr()}`);
      return existsSync(held);
    }, 60_000, 50);
    rmSync(hold);
    const inConfirm = evacuationStarts(logSince(h1, marks))
      .map((s) => s.name)
      .filter((n) => !evacuationEnds(logSince(h1, marks)).some((e) => e.name === n));
    await h1.d.kill9();
    rmSync(held, { force: true });
    const lost = await run.done;
    expect(lost.code, `${lost.stdout}${lost.stderr}`).toBe(1);
    await h1.d.restart();
    const interrupted = await h1.ferry(['evacuate-status'], { json: true });
    expectCliOk(interrupted, 'evacuate-status after the restart');
    expect(interrupted.json?.state, describeRecord(interrupted.json?.record)).toBe('interrupted');

    const again = await evacuate().done;
    expectCliOk(again, `ferry evacuate run again after the restart\n${h1.name}'s log:\n${evacuationLog(h1, marks)}`);
    const final = again.json as EvacuationStatus;
    expect(final.continued).toBe(true);
    await expectEvacuated(h1, [h2, h3], guests, final);
    // A guest whose migration had reached confirm was on its destination already: the re-run found it there and did not move it again.
    const restartedAt = logSince(h1, marks).lastIndexOf('evacuation continues: ');
    const startedAfter = evacuationStarts(logSince(h1, marks).slice(restartedAt)).map((s) => s.name);
    const confirmed = (final.record?.guests ?? []).filter((e) => inConfirm.includes(e.guest.name) && e.attempts.length === 1).map((e) => e.guest.name);
    expect(confirmed, `guests in flight when h1 was killed (${inConfirm.join(', ')}) that needed no second attempt\n${describeRecord(final.record)}\n${evacuationLog(h1, marks)}`).not.toEqual([]);
    expect(startedAfter.filter((n) => confirmed.includes(n))).toEqual([]);
  }, 300_000);

  it('Ctrl-C twice in ferry evacuate: the first starts nothing new, the second aborts the running migrations (their guests run on at h1); ferry evacuate run again finishes', async () => {
    const guests = await startFleet(fleetOf('evg', FAULT_FLEET));
    const marks = logMarks();
    const hold = holdOneIntoH2();
    const run = evacuate();
    await midway(run);
    run.kill('SIGINT');
    const stopping = await waitFor('the evacuation to be stopping with migrations in flight', async () => {
      const st = await evacuationStatus(h1);
      return st.state === 'stopping' && st.inFlight.length > 0 ? st : undefined;
    }, 30_000, 50);
    const aborted = stopping.inFlight.map((f) => f.name);
    run.kill('SIGINT');
    // The abort reaches the held migration once its prepare goes on.
    await waitFor('the evacuation to be aborting', async () => (await evacuationStatus(h1)).state === 'aborting', 30_000, 50);
    hold.letGo();
    const stopped = await run.done;
    expect(stopped.code, `${stopped.stdout}${stopped.stderr}`).toBe(1);
    expect(stopped.json?.error?.code, stopped.stdout).toBe('operation_failed');
    expect(stopped.json?.state, describeRecord(stopped.json?.record)).toBe('interrupted');
    // Nothing started after the first Ctrl-C; the aborted guests are pending again and run on at h1, in the same QEMU, intact.
    const log = logSince(h1, marks);
    const stopAt = log.indexOf('evacuation: stop requested');
    expect(stopAt, log).toBeGreaterThan(0);
    expect(evacuationStarts(log.slice(stopAt)), 'migrations started after the stop').toEqual([]);
    const rec = (stopped.json as EvacuationStatus).record!;
    const back = rec.guests.filter((e) => aborted.includes(e.guest.name) && e.status === 'pending').map((e) => e.guest.name);
    expect(back, `aborted (${aborted.join(', ')}) and pending again\n${describeRecord(rec)}`).not.toEqual([]);
    const h1List = await listingOf(h1);
    for (const name of back) {
      expect(h1List.running, `'${name}' runs on at h1`).toContain(name);
      await expectHeartbeatCarriesOn(heartbeatHost(h1), name);
    }

    const again = await evacuate().done;
    expectCliOk(again, `ferry evacuate run again after Ctrl-C\n${h1.name}'s log:\n${evacuationLog(h1, marks)}`);
    const final = again.json as EvacuationStatus;
    expect(final.continued).toBe(true);
    await expectEvacuated(h1, [h2, h3], guests, final);
  }, 300_000);

  it('a destination put in maintenance while the evacuation runs: the migration already running there finishes, the later ones are refused and retried on the other host', async () => {
    const guests = await startFleet(fleetOf('evh', FAULT_FLEET));
    const marks = logMarks();
    const run = evacuate();
    const first = await streamingTo(h2, run);
    expectCliOk(await h2.ferry(['maintenance', 'enable', '--reason', 'evacuation e2e']), 'maintenance enable on h2');
    const enabledAt = Date.now();
    const { final } = await settle(run, marks);
    const table = describeRecord(final.record);
    // The one that was streaming there when maintenance began went on (maintenance refuses new incoming migrations only).
    const e1 = final.record!.guests.find((e) => e.guest.name === first)!;
    expect(e1.destination, `'${first}' was streaming to ${h2.name}\n${table}`).toBe(h2.tcpUri);
    // Those started there afterwards were refused with the reason, and went to h3.
    const refused = final.record!.guests.filter((e) => e.attempts.some((a) => a.destination === h2.tcpUri && a.startedAtMs > enabledAt));
    expect(refused.map((e) => e.guest.name), `guests sent to ${h2.name} after its maintenance began\n${table}`).not.toEqual([]);
    for (const e of refused) {
      const a = e.attempts.find((x) => x.destination === h2.tcpUri && x.startedAtMs > enabledAt)!;
      expect({ result: a.result, destination: e.destination }, `${e.guest.name}\n${table}`).toEqual({ result: 'failed', destination: h3.tcpUri });
      expect(a.error, e.guest.name).toMatch(/maintenance/);
    }
    await expectEvacuated(h1, [h2, h3], guests, final);
  }, 300_000);
});
