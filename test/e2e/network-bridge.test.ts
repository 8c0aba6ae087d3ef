/**
 * Guests with real networks (issue 14, item 4) end to end, on real QEMU
 * under TCG between namespaced ferryd hosts. A and B each have a Linux
 * bridge `brguest` (made here); C has none.
 *
 * - A guest with `<interface type='bridge'>` (virtio, fixed MAC) starts on
 *   A with a tap `vnet0` enslaved to brguest, named in the live XML's
 *   `<target dev>` only; it migrates live to B, where B's QEMU announces the
 *   guest's MAC (RARP, ethertype 0x8035, captured on B's bridge with a raw
 *   socket) for the rounds asked with --announce-rounds; afterwards the tap
 *   is gone from A and B's tap (a name of its own: another link holds vnet0
 *   there) is on B's bridge, and the heartbeat carried
 *   on at A's last count + 1 with no CORRUPT.
 * - A migration to C, which lacks the bridge, is refused in prepare with
 *   libvirt's error (system_error 38, "Cannot get interface MTU on
 *   'brguest': No such device"), p2p and managed: the guest runs on in the
 *   same QEMU on A with its tap, C has no domain, QEMU, tap or log. A
 *   prepare that fails on B after B made its tap leaves no tap on B.
 * - `type='ethernet'` interfaces get their taps (a wished name when free, a
 *   vnetN when the wish is taken by another link, which is left alone), on
 *   no bridge, and the taps go on destroy.
 * - A QEMU that crashes leaves no tap; nor does one that dies while its
 *   ferryd is down, once ferryd is back.
 *
 * Needs `npm run build` and `make -C guest`; at most two QEMUs at a time.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addBridge, captureFrames, deleteLink, linkInfo, setMtu, tapsIn, type FrameCapture } from '../support/bridges.js';
import { domainNames, expectCliError, expectCliOk } from '../support/cli-result.js';
import { createCluster, type Cluster, type ClusterHost } from '../support/cluster.js';
import { makeTempDir, processAlive, qemuPidsMentioning, resetDaemons, statusOf, useDaemonCleanup, waitFor } from '../support/daemon.js';
import { testGuestXml } from '../support/guest-xml.js';
import { expectContinuity, expectHeartbeatCarriesOn, waitHeartbeats, type HeartbeatHost } from '../support/heartbeat.js';
import { netnsAvailable } from '../support/netns.js';

const BRIDGE = 'brguest';
/** QEMU's RARP self-announce. */
const RARP = '8035';

let cluster: Cluster | undefined;
let A: ClusterHost;
let B: ClusterHost;
let C: ClusterHost;
let dir: string;

useDaemonCleanup(() => resetDaemons([A?.d, B?.d, C?.d]));

beforeAll(async () => {
  if (!netnsAvailable()) return;
  dir = makeTempDir('ferry-network-');
  cluster = await createCluster({ prefix: `fnet${process.pid % 10000}`, subnet: 161, hosts: 3 });
  [A, B, C] = cluster.hosts as [ClusterHost, ClusterHost, ClusterHost];
  addBridge(A.ns, BRIDGE);
  addBridge(B.ns, BRIDGE);
  // Not the tap's default: a tap must take its bridge's MTU rather than lower it.
  setMtu(A.ns, BRIDGE, 1400);
});

afterAll(async () => {
  // Namespaces take their bridges and any tap left with them.
  await cluster?.destroy();
  cluster = undefined;
});

const hb = (h: ClusterHost): HeartbeatHost => ({ label: h.name, d: h.d });

function guestXml(name: string, nics: string): string {
  return testGuestXml({ name, uuid: randomUUID(), cmdline: 'ws=8 rate=5 hb=200', extraDevices: nics });
}

function writeXml(file: string, xml: string): string {
  const path = join(dir, file);
  writeFileSync(path, xml);
  return path;
}

function bridgedNic(mac: string): string {
  return `    <interface type='bridge'>\n      <mac address='${mac}'/>\n      <source bridge='${BRIDGE}'/>\n      <model type='virtio'/>\n    </interface>`;
}

/** The QEMU command line of pid, NUL-separated arguments joined by spaces. */
function cmdline(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
}

describe.skipIf(!netnsAvailable())('bridged and ethernet interfaces', () => {
  it("a bridged virtio guest starts on A's bridge, migrates live to B, is announced on B's bridge and leaves no tap on A", async () => {
    const name = 'net-bridged';
    const mac = '52:54:00:4e:00:01';
    expectCliOk(await A.ferry(['define', writeXml(`${name}.xml`, guestXml(name, bridgedNic(mac)))]), 'define');
    expectCliOk(await A.ferry(['start', name]), 'start');
    await waitHeartbeats(hb(A), name);

    // A: one tap, vnet0, a port of brguest, up, with the guest's MAC under 0xfe; QEMU opens it by name.
    expect(tapsIn(A.ns)).toEqual(['vnet0']);
    const tapA = linkInfo(A.ns, 'vnet0')!;
    expect(tapA.master).toBe(BRIDGE);
    expect(tapA.flags).toContain('UP');
    expect(tapA.address).toBe('fe:54:00:4e:00:01');
    expect(tapA.mtu).toBe(1400);
    expect(linkInfo(A.ns, BRIDGE)!.mtu, "A's bridge keeps its MTU").toBe(1400);
    const q = statusOf(A.d.runDir, name)!;
    expect(cmdline(q.pid)).toContain('{"type":"tap","id":"hostnet0","ifname":"vnet0","script":"no","downscript":"no"}');
    // The live XML names the tap; the definition does not.
    expect((await A.ferry(['dumpxml', name])).stdout).toContain(`<source bridge='${BRIDGE}'/>\n      <target dev='vnet0'/>`);
    expect((await A.ferry(['dumpxml', '--inactive', name])).stdout).not.toContain('<target dev=');

    // On B another link holds the name vnet0: the name in the migrated live XML is not reused, B picks its own.
    addBridge(B.ns, 'vnet0');
    const capture: FrameCapture = await captureFrames(B.ns, BRIDGE, RARP);
    try {
      const rounds = 7;
      const r = await A.ferry(
        ['migrate', '--live', '--p2p', '--persistent', '--undefinesource', '--announce-rounds', String(rounds), '--announce-step', '20', name, B.tcpUri],
        { json: true, timeoutMs: 90_000 },
      );
      expectCliOk(r, 'migrate A -> B');
      const mine = (): typeof capture.frames => capture.frames.filter((f) => f.src === mac);
      await capture.waitUntil(`${rounds} RARP announcements of ${mac} on B's ${BRIDGE}`, () => mine().length >= rounds);
      for (const f of mine()) {
        expect(f).toMatchObject({ dst: 'ff:ff:ff:ff:ff:ff', type: RARP, sha: mac });
      }
      const gaps = mine().slice(1).map((f, i) => Math.round((f.t - mine()[i]!.t) * 1000));
      console.log(`announce: ${mine().length} RARP frames of ${mac} on B's ${BRIDGE}, gaps ${gaps.join(', ')} ms (asked ${rounds} rounds, step 20 ms)`);
    } finally {
      capture.stop();
    }

    // A: the tap is gone with A's QEMU. B: its own vnet0 on B's bridge, named in B's live XML.
    await waitFor("A's tap to go", () => tapsIn(A.ns).length === 0, 20_000);
    expect(tapsIn(B.ns)).toEqual(['vnet1']);
    expect(linkInfo(B.ns, 'vnet1')!.master).toBe(BRIDGE);
    expect((await B.ferry(['dumpxml', name])).stdout).toContain("<target dev='vnet1'/>");
    expect(await domainNames(A)).toEqual([]);
    await expectContinuity(name, hb(A), hb(B));
    await expectHeartbeatCarriesOn(hb(B), name, false);

    expectCliOk(await B.ferry(['destroy', name]), 'destroy on B');
    await waitFor("B's tap to go after destroy", () => tapsIn(B.ns).length === 0, 20_000);
    expect(linkInfo(B.ns, 'vnet0'), 'the other link is left alone').toBeDefined();
    deleteLink(B.ns, 'vnet0');
    expectCliOk(await B.ferry(['undefine', name]), 'undefine on B');
  });

  it("a migration to a host without the bridge is refused in prepare with libvirt's error, changing nothing on either host; a prepare failing later removes its tap", async () => {
    const name = 'net-refused';
    expectCliOk(await A.ferry(['define', writeXml(`${name}.xml`, guestXml(name, bridgedNic('52:54:00:4e:00:02')))]), 'define');
    expectCliOk(await A.ferry(['start', name]), 'start');
    await waitHeartbeats(hb(A), name);
    const q = statusOf(A.d.runDir, name)!;

    for (const flags of [['--live', '--p2p', '--persistent', '--undefinesource'], ['--live']]) {
      const r = await A.ferry(['migrate', ...flags, name, C.tcpUri], { json: true, timeoutMs: 90_000 });
      const msg = expectCliError(r, 'system_error', 38, `migrate ${flags.join(' ')} to C`);
      expect(msg).toContain(`Cannot get interface MTU on '${BRIDGE}': No such device`);
      // A: the same QEMU, running, its tap still on the bridge, the heartbeat going on with no restart.
      expect((await A.ferry(['domstate', '--reason', name])).stdout.trim()).toBe('running (booted)');
      expect(await processAlive(q.pid, q.pidStartTime)).toBe(true);
      expect(statusOf(A.d.runDir, name)?.pid).toBe(q.pid);
      expect(tapsIn(A.ns)).toEqual(['vnet0']);
      expect(linkInfo(A.ns, 'vnet0')!.master).toBe(BRIDGE);
      await expectHeartbeatCarriesOn(hb(A), name);
      // C: no domain, no QEMU, no tap, no serial log.
      expect(await domainNames(C)).toEqual([]);
      expect(statusOf(C.d.runDir, name)).toBeUndefined();
      expect(tapsIn(C.ns)).toEqual([]);
      expect(existsSync(join(C.d.stateDir, 'logs', `${name}.serial.log`)), "C's serial log of the guest").toBe(false);
    }
    expect(qemuPidsMentioning(name)).toEqual([q.pid]);

    // A prepare that fails after B made its tap (B refuses a unix migrate URI that names a regular file,
    // once its QEMU runs): B's QEMU goes and its tap with it; A carries on.
    const notASocket = writeXml('not-a-socket', '');
    const r = await A.ferry(['migrate', '--live', '--p2p', '--migrateuri', `unix://${notASocket}`, name, B.tcpUri], { json: true, timeoutMs: 90_000 });
    expect(r.code, `migrate with a regular file as socket\n${r.stdout}\n${r.stderr}`).toBe(1);
    expect(B.d.stderr(), 'B made a tap for the guest before its prepare failed').toContain(`domain '${name}': created tap vnet0`);
    await waitFor("B's tap of the failed prepare to go", () => tapsIn(B.ns).length === 0, 20_000);
    expect(await domainNames(B)).toEqual([]);
    expect(statusOf(A.d.runDir, name)?.pid).toBe(q.pid);
    expect(tapsIn(A.ns)).toEqual(['vnet0']);
    await expectHeartbeatCarriesOn(hb(A), name);

    expectCliOk(await A.ferry(['destroy', name]), 'destroy');
    await waitFor("A's tap to go after destroy", () => tapsIn(A.ns).length === 0, 20_000);
    expectCliOk(await A.ferry(['undefine', name]), 'undefine');
  });

  it('ethernet interfaces get their taps (the wished name when free, vnetN when not) on no bridge, and lose them on destroy', async () => {
    const name = 'net-ethernet';
    // Another link holds the second wish: Ferry must neither take it over nor remove it.
    deleteLink(A.ns, 'tapbusy');
    addBridge(A.ns, 'tapbusy');
    const nics =
      "    <interface type='ethernet'><mac address='52:54:00:4e:00:03'/><target dev='tapeth0'/><model type='e1000'/></interface>\n" +
      "    <interface type='ethernet'><mac address='52:54:00:4e:00:04'/><target dev='tapbusy'/><model type='virtio'/></interface>";
    expectCliOk(await A.ferry(['define', writeXml(`${name}.xml`, guestXml(name, nics))]), 'define');
    expectCliOk(await A.ferry(['start', name]), 'start');
    await waitHeartbeats(hb(A), name);
    expect(tapsIn(A.ns).sort()).toEqual(['tapeth0', 'vnet0']);
    for (const tap of ['tapeth0', 'vnet0']) {
      const info = linkInfo(A.ns, tap)!;
      expect(info.master, `${tap} is on no bridge`).toBeUndefined();
      expect(info.flags).toContain('UP');
    }
    const live = (await A.ferry(['dumpxml', name])).stdout;
    expect(live).toContain("<target dev='tapeth0'/>");
    expect(live).toContain("<target dev='vnet0'/>");
    expect(live).not.toContain("<target dev='tapbusy'/>");
    // The definition keeps the wish.
    expect((await A.ferry(['dumpxml', '--inactive', name])).stdout).toContain("<target dev='tapbusy'/>");

    expectCliOk(await A.ferry(['destroy', name]), 'destroy');
    await waitFor('the taps to go after destroy', () => tapsIn(A.ns).length === 0, 20_000);
    expect(linkInfo(A.ns, 'tapbusy'), 'the other link is left alone').toBeDefined();
    deleteLink(A.ns, 'tapbusy');
    expectCliOk(await A.ferry(['undefine', name]), 'undefine');
  });

  it('a crashed QEMU leaves no tap, nor one that died while ferryd was down once ferryd is back', async () => {
    const name = 'net-orphan';
    expectCliOk(await A.ferry(['define', writeXml(`${name}.xml`, guestXml(name, bridgedNic('52:54:00:4e:00:05')))]), 'define');
    expectCliOk(await A.ferry(['start', name]), 'start');
    await waitHeartbeats(hb(A), name);
    const crashed = statusOf(A.d.runDir, name)!;
    expect(tapsIn(A.ns)).toEqual(['vnet0']);
    process.kill(crashed.pid, 'SIGKILL');
    await waitFor('the crash to be seen', async () => (await A.ferry(['domstate', '--reason', name])).stdout.trim() === 'shut off (crashed)', 20_000);
    await waitFor("the crashed QEMU's tap to go", () => tapsIn(A.ns).length === 0, 20_000);

    expectCliOk(await A.ferry(['start', name]), 'start again');
    await waitHeartbeats(hb(A), name);
    const q = statusOf(A.d.runDir, name)!;
    expect(tapsIn(A.ns)).toEqual(['vnet0']);
    await A.d.kill9();
    process.kill(q.pid, 'SIGKILL');
    await waitFor('the QEMU to be gone', async () => !(await processAlive(q.pid, q.pidStartTime)), 20_000);
    expect(tapsIn(A.ns), 'a persistent tap outlives its QEMU').toEqual(['vnet0']);
    await A.d.restart();
    await waitFor('the orphaned tap to go', () => tapsIn(A.ns).length === 0, 20_000);
    expect((await A.ferry(['domstate', name])).stdout.trim()).toBe('shut off');
    expectCliOk(await A.ferry(['undefine', name]), 'undefine');
  });
});

