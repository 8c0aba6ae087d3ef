/**
 * Host facts and maintenance mode (issue 15, items 1 and 2) end to end, on
 * two namespaced ferryd hosts with real QEMU guests:
 *
 * - `ferry hostfacts --json` follows a started guest: committed memory up
 *   by its size, running and defined guests up by one; both hosts (one
 *   machine) report the same CPU and the same QEMU guest-CPU fingerprint;
 * - `ferry nodeinfo`, `nodememstats` and `freecell` print virsh's layouts,
 *   and stock virsh against ferryd's libvirt listener prints the same
 *   (NODE_GET_INFO, NODE_GET_MEMORY_STATS, NODE_GET_FREE_MEMORY,
 *   NODE_GET_CELLS_FREE_MEMORY, the capabilities' topology);
 * - B in maintenance: a migration A -> B (peer-to-peer and managed) is
 *   refused with operation_invalid naming B, since when, why and
 *   `ferry maintenance disable`, and nothing changes (the guest runs on in
 *   A's same QEMU, B has no domain, QEMU or serial log of it); start and
 *   create on B are refused; B's own guest keeps running;
 * - B's ferryd restarted: still in maintenance (same since and reason), its
 *   guest re-attached and running, migrations to it still refused; an
 *   outgoing migration from B (evacuation) is allowed;
 * - disable: the migration A -> B goes through, heartbeat continuous.
 *
 * Needs `npm run build` and `make -C guest`; at most two QEMUs at a time.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostFacts, HostMaintenance } from '../../src/api/protocol.js';
import { domainNames, expectCliError, expectCliOk } from '../support/cli-result.js';
import { createCluster, type Cluster, type ClusterHost } from '../support/cluster.js';
import { makeTempDir, processAlive, qemuPidsMentioning, resetDaemons, statusOf, useDaemonCleanup } from '../support/daemon.js';
import { writeGuestXml } from '../support/guest-xml.js';
import { expectContinuity, expectHeartbeatCarriesOn, waitHeartbeats, type HeartbeatHost } from '../support/heartbeat.js';
import { netnsAvailable } from '../support/netns.js';
import { libvirtTcpUri, virshOk } from '../support/virsh.js';

let cluster: Cluster | undefined;
let A: ClusterHost;
let B: ClusterHost;
let dir: string;

// Between tests: both daemons up and empty, and out of maintenance (a failed test may leave it on).
useDaemonCleanup(async () => {
  await resetDaemons([A?.d, B?.d]);
  for (const h of [A, B]) if (h) expectCliOk(await h.ferry(['maintenance', 'disable']), `maintenance disable on ${h.name}`);
});

beforeAll(async () => {
  if (!netnsAvailable()) return;
  dir = makeTempDir('ferry-hostfacts-');
  // Each host also serves libvirt's protocol on its own loopback, for stock virsh run inside its namespace.
  cluster = await createCluster({ prefix: `fhf${process.pid % 10000}`, subnet: 191, hosts: 2, extraArgs: ['--libvirt-listen-tcp', '127.0.0.1:0'] });
  [A, B] = cluster.hosts as [ClusterHost, ClusterHost];
});

afterAll(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

const hb = (h: ClusterHost): HeartbeatHost => ({ label: h.name, d: h.d });
const MEM_KIB = 262148;

async function facts(h: ClusterHost): Promise<HostFacts> {
  const r = await h.ferry(['hostfacts'], { json: true });
  expectCliOk(r, `hostfacts on ${h.name}`);
  return r.json as HostFacts;
}

async function maintenance(h: ClusterHost, args: string[]): Promise<HostMaintenance> {
  const r = await h.ferry(['maintenance', ...args], { json: true });
  expectCliOk(r, `maintenance ${args.join(' ')} on ${h.name}`);
  return r.json as HostMaintenance;
}

/** virsh inside host `h`'s namespace, on its libvirt listener. */
function virshOn(h: ClusterHost, args: string[]) {
  return virshOk(libvirtTcpUri('127.0.0.1', h.d.libvirtTcpPort!), args, { netns: h.ns });
}

function meminfoKiB(key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB$`, 'm').exec(readFileSync('/proc/meminfo', 'utf8'));
  return Number(m![1]);
}

/** A guest defined and started on `h`, up and printing heartbeats. */
async function startGuest(h: ClusterHost, name: string): Promise<string> {
  const uuid = randomUUID();
  expectCliOk(await h.ferry(['define', writeGuestXml(dir, { name, uuid, memoryKiB: MEM_KIB })]), `define ${name} on ${h.name}`);
  expectCliOk(await h.ferry(['start', name]), `start ${name} on ${h.name}`);
  await waitHeartbeats(hb(h), name);
  return uuid;
}

describe.skipIf(!netnsAvailable())('host facts and maintenance mode', () => {
  it('hostfacts follows a started guest; nodeinfo, nodememstats and freecell print what virsh prints', async () => {
    const before = await facts(A);
    expect(before.hostName).toBe(`${A.ns}`);
    expect(before.cpu.count).toBe(readFileSync('/proc/cpuinfo', 'utf8').split('\n').filter((l) => l.startsWith('processor')).length);
    expect(before.memory.totalKiB).toBe(meminfoKiB('MemTotal'));
    expect(before.cpu.qemu?.accel).toBe('tcg');
    expect(before.cpu.qemu?.features).toEqual(expect.arrayContaining(['sse2', 'sse4.2']));
    expect(before.maintenance.enabled).toBe(false);
    expect(before.migrations.outgoing).toMatchObject({ running: 0, queued: 0 });
    // One machine, one QEMU: B's guest CPU is A's, fingerprint and all.
    expect((await facts(B)).cpu.qemu?.fingerprint).toBe(before.cpu.qemu?.fingerprint);

    const name = 'facts-guest';
    await startGuest(A, name);
    const after = await facts(A);
    expect(after.memory.committedKiB - before.memory.committedKiB).toBe(MEM_KIB);
    expect(after.guests.running - before.guests.running).toBe(1);
    expect(after.guests.defined - before.guests.defined).toBe(1);

    // nodeinfo: virsh's layout, and the same lines as stock virsh's (the frequency may move between reads).
    const ni = await A.ferry(['nodeinfo']);
    expectCliOk(ni, 'nodeinfo');
    expect(ni.stdout).toMatch(/^CPU model: {11}x86_64\nCPU\(s\): {14}\d+\n(CPU frequency: {7}\d+ MHz\n)?CPU socket\(s\): {7}\d+\nCore\(s\) per socket: {2}\d+\nThread\(s\) per core: {2}\d+\nNUMA cell\(s\): {8}\d+\nMemory size: {9}\d+ KiB\n$/);
    const noFreq = (t: string) => t.split('\n').filter((l) => !l.startsWith('CPU frequency') && l.trim() !== '');
    expect(noFreq((await virshOn(A, ['nodeinfo'])).stdout)).toEqual(noFreq(ni.stdout));

    // nodememstats: `%-7s: %20llu KiB`; total is stable, the rest moves.
    const ms = await A.ferry(['nodememstats']);
    expectCliOk(ms, 'nodememstats');
    const layout = /^total {2}: +(\d+) KiB\nfree {3}: +\d+ KiB\nbuffers: +\d+ KiB\ncached : +\d+ KiB\n$/;
    expect(ms.stdout).toMatch(layout);
    expect(ms.stdout.split('\n')[0]).toHaveLength('total  : '.length + 20 + ' KiB'.length);
    const vms = (await virshOn(A, ['nodememstats'])).stdout.replace(/\n+$/, '\n');
    expect(vms).toMatch(layout);
    expect(layout.exec(vms)![1]).toBe(layout.exec(ms.stdout)![1]);
    expect(Number(layout.exec(ms.stdout)![1])).toBe(meminfoKiB('MemTotal'));
    expect((await A.ferry(['nodememstats', '--cell', '0'])).stdout).toMatch(/^total {2}: +\d+ KiB\nfree {3}: +\d+ KiB\nbuffers: +0 KiB\ncached : +0 KiB\n$/);

    // freecell: `Total: N KiB`, `0: N KiB`; virsh the same through NODE_GET_FREE_MEMORY and NODE_GET_CELLS_FREE_MEMORY.
    expect((await A.ferry(['freecell'])).stdout).toMatch(/^Total: \d+ KiB\n$/);
    expect((await A.ferry(['freecell', '--cellno', '0'])).stdout).toMatch(/^0: \d+ KiB\n$/);
    expect((await A.ferry(['freecell', '--all'])).stdout).toMatch(/^ {4}0: +\d+ KiB\n-{20}\nTotal: +\d+ KiB\n$/);
    expect((await virshOn(A, ['freecell'])).stdout).toMatch(/^Total: \d+ KiB\n/);
    expect((await virshOn(A, ['freecell', '--cellno', '0'])).stdout).toMatch(/^0: \d+ KiB\n/);
    expect((await virshOn(A, ['freecell', '--all'])).stdout).toMatch(/^ {4}0: +\d+ KiB\n-{20}\nTotal: +\d+ KiB\n/);
    const free = (await A.ferry(['freecell'], { json: true })).json as { totalKiB: number };
    expect(free.totalKiB).toBeGreaterThan(0);
    expect(free.totalKiB).toBeLessThanOrEqual(meminfoKiB('MemTotal'));
    expect(expectCliError(await A.ferry(['freecell', '--cellno', '7'], { json: true }), 'invalid_arg', 8, 'freecell --cellno 7')).toContain('out of range');

    expectCliOk(await A.ferry(['destroy', name]), 'destroy');
    expect((await facts(A)).memory.committedKiB).toBe(before.memory.committedKiB);
    expectCliOk(await A.ferry(['undefine', name]), 'undefine');
  });

  it('a host in maintenance refuses incoming migrations and starts, keeps its guests, survives a restart, and lets guests leave', async () => {
    const g1 = 'maint-a';
    const g2 = 'maint-b';
    await startGuest(A, g1);
    await startGuest(B, g2);
    const q1 = statusOf(A.d.runDir, g1)!;
    const q2 = statusOf(B.d.runDir, g2)!;

    const on = await maintenance(B, ['enable', '--reason', 'kernel update']);
    expect(on).toMatchObject({ hostName: B.ns, enabled: true, reason: 'kernel update' });
    expect((await B.ferry(['maintenance', 'status'])).stdout).toMatch(/Since:\s+\S+\nReason:\s+kernel update/);
    expect((await facts(B)).maintenance).toEqual({ enabled: true, since: on.since, reason: 'kernel update' });

    /** Every refused way in, and that nothing changed on either host. */
    const expectRefusedHere = async (when: string) => {
      for (const flags of [['--live', '--p2p', '--persistent', '--undefinesource'], ['--live']]) {
        const r = await A.ferry(['migrate', ...flags, g1, B.tcpUri], { json: true, timeoutMs: 90_000 });
        const msg = expectCliError(r, 'operation_invalid', 55, `${when}: migrate ${flags.join(' ')} to B in maintenance`);
        for (const part of [`'${g1}'`, `'${B.ns}'`, `in maintenance since ${on.since}`, 'kernel update', 'ferry maintenance disable']) expect(msg).toContain(part);
        expect((await A.ferry(['domstate', '--reason', g1])).stdout.trim()).toBe('running (booted)');
        expect(statusOf(A.d.runDir, g1)?.pid).toBe(q1.pid);
        expect(await processAlive(q1.pid, q1.pidStartTime)).toBe(true);
        expect(await domainNames(B)).toEqual([g2]);
        expect(statusOf(B.d.runDir, g1)).toBeUndefined();
        expect(existsSync(join(B.d.stateDir, 'logs', `${g1}.serial.log`)), `B's serial log of ${g1}`).toBe(false);
      }
      await expectHeartbeatCarriesOn(hb(A), g1);
      expect(qemuPidsMentioning(g1)).toEqual([q1.pid]);
      // B's own guest runs on, in the same QEMU.
      expect((await B.ferry(['domstate', g2])).stdout.trim()).toBe('running');
      expect(statusOf(B.d.runDir, g2)?.pid).toBe(q2.pid);
      await expectHeartbeatCarriesOn(hb(B), g2);
    };
    await expectRefusedHere('in maintenance');

    // define is allowed, start and create are not; no QEMU is started.
    const g3 = 'maint-new';
    const xml3 = writeGuestXml(dir, { name: g3, uuid: randomUUID(), memoryKiB: MEM_KIB });
    expectCliOk(await B.ferry(['define', xml3]), 'define on B in maintenance');
    const startMsg = expectCliError(await B.ferry(['start', g3], { json: true }), 'operation_invalid', 55, 'start on B in maintenance');
    expect(startMsg).toContain(`cannot start domain '${g3}' on host '${B.ns}'`);
    expect(startMsg).toContain('ferry maintenance disable');
    expectCliOk(await B.ferry(['undefine', g3]), 'undefine on B in maintenance');
    const createMsg = expectCliError(await B.ferry(['create', xml3], { json: true }), 'operation_invalid', 55, 'create on B in maintenance');
    expect(createMsg).toContain(`cannot create domain '${g3}'`);
    expect(qemuPidsMentioning(g3)).toEqual([]);
    expect(await domainNames(B)).toEqual([g2]);

    // A restarted ferryd is still in maintenance, with its guest re-attached.
    await B.d.restart();
    expect(await maintenance(B, ['status'])).toMatchObject({ enabled: true, since: on.since, reason: 'kernel update' });
    expect(B.d.stderr()).toContain(`host ${B.ns} is in maintenance since ${on.since} (kernel update)`);
    await expectRefusedHere('after a restart');

    // Leaving is allowed: B's guest migrates off to A (what an evacuation does).
    expectCliOk(await B.ferry(['migrate', '--live', '--p2p', '--persistent', '--undefinesource', g2, A.tcpUri], { json: true, timeoutMs: 90_000 }), 'migrate B -> A from a host in maintenance');
    await expectContinuity(g2, hb(B), hb(A));
    expect(await domainNames(B)).toEqual([]);

    // Out of maintenance: the migration A -> B goes through.
    expect(await maintenance(B, ['disable'])).toMatchObject({ enabled: false, since: null, reason: null });
    expect((await B.ferry(['maintenance', 'status'])).stdout).toBe(`Host '${B.ns}' is not in maintenance\n`);
    expectCliOk(await A.ferry(['migrate', '--live', '--p2p', '--persistent', '--undefinesource', g1, B.tcpUri], { json: true, timeoutMs: 90_000 }), 'migrate A -> B after maintenance');
    await expectContinuity(g1, hb(A), hb(B));
    expect(await domainNames(B)).toEqual([g1]);
    expect(await domainNames(A)).toEqual([g2]);
    expect((await facts(B)).guests).toMatchObject({ running: 1, defined: 1 });
  });

  it('evacuate --dry-run plans the running guests onto the destinations from their facts, names a destination in maintenance as the reason a guest stays, and changes nothing; without --dry-run the guest moves', async () => {
    await startGuest(B, 'maint-a');
    const q = statusOf(B.d.runDir, 'maint-a')!;
    const plan = await B.ferry(['evacuate', '--to', A.tcpUri, '--dry-run'], { json: true });
    expectCliOk(plan, 'evacuate --dry-run from B to A');
    expect(plan.json.placements.map((p: { guest: { name: string }; destination: string }) => [p.guest.name, p.destination]), JSON.stringify(plan.json).slice(0, 3000)).toEqual([['maint-a', A.tcpUri]]);
    expect(plan.json.unplaced).toEqual([]);
    const text = await B.ferry(['evacuate', '--to', A.tcpUri, '--dry-run']);
    expectCliOk(text, 'evacuate --dry-run (text)');
    expect(text.stdout, text.stdout).toMatch(new RegExp(`maint-a\\s+256\\.0 MiB\\s+1\\s+${A.ns}\\s`));

    await maintenance(A, ['enable', '--reason', 'plan check']);
    try {
      const refused = await B.ferry(['evacuate', '--to', A.tcpUri, '--dry-run'], { json: true });
      expectCliOk(refused, 'evacuate --dry-run with the only destination in maintenance');
      expect(refused.json.placements).toEqual([]);
      expect(refused.json.unplaced[0].guest.name).toBe('maint-a');
      expect(refused.json.unplaced[0].refusals.map((r: { kind: string }) => r.kind)).toEqual(['maintenance']);
    } finally {
      await maintenance(A, ['disable']);
    }
    // The plans changed nothing.
    expect(statusOf(B.d.runDir, 'maint-a')?.pid).toBe(q.pid);
    expect(await domainNames(B)).toEqual(['maint-a']);
    await expectHeartbeatCarriesOn(hb(B), 'maint-a');

    // Without --dry-run the guest moves, and the report says where.
    const ev = await B.ferry(['evacuate', '--to', A.tcpUri], { json: true, timeoutMs: 120_000 });
    expectCliOk(ev, 'evacuate B -> A');
    expect(ev.json.state).toBe('ended');
    expect(ev.json.record.guests.map((g: { guest: { name: string }; status: string; destination: string }) => [g.guest.name, g.status, g.destination])).toEqual([['maint-a', 'done', A.tcpUri]]);
    await expectContinuity('maint-a', hb(B), hb(A));
    expect(await domainNames(B)).toEqual([]);
    expect(await domainNames(A)).toContain('maint-a');
    const status = await B.ferry(['evacuate-status']);
    expectCliOk(status, 'evacuate-status after the evacuation');
    expect(status.stdout).toMatch(/state: ended/);
    expect(status.stdout).toMatch(/1 of 1 moved, 0 failed, 0 to check/);
  });

  it('a bad reason is refused with invalid_arg and changes nothing', async () => {
    const msg = expectCliError(await B.ferry(['maintenance', 'enable', '--reason', 'x'.repeat(2000)], { json: true }), 'invalid_arg', 8, 'a reason of 2000 characters');
    expect(msg).toContain('longer than 1024');
    expect((await maintenance(B, ['status'])).enabled).toBe(false);
  });
});
