/**
 * Guest CPU models (issue 14, item 5) end to end, on real QEMU under TCG
 * between two namespaced ferryd hosts:
 *
 * - what QEMU 7.2 under TCG really reports: `Cascadelake-Server` has
 *   unavailable features, `qemu64` none, `max` lacks AVX-512;
 * - a guest with `<cpu mode='custom'><model>qemu64</model><feature
 *   policy='require' name='sse4.2'/></cpu>` starts (QEMU runs with `-cpu
 *   qemu64,+sse4.2`), dumps its `<cpu>` back unchanged and migrates to B
 *   with its heartbeat carrying on at the source's last count + 1;
 * - a host-passthrough guest runs as `-cpu max` under TCG, ferryd's log
 *   says so, and it migrates between these two hosts (one machine);
 * - a guest asking for a model TCG lacks features for (`match='exact'`), or
 *   for a required feature TCG lacks, is defined but refused at start with
 *   libvirt's "guest CPU doesn't match specification: missing features:
 *   ..." (operation_failed, 9), no QEMU started; an unknown model is
 *   config_unsupported (67);
 * - a migration whose destination XML (`--xml`) requires a feature B's QEMU
 *   lacks is refused in prepare with the same error, changing nothing: the
 *   guest runs on A in the same QEMU with its heartbeat going on, B has no
 *   domain, no QEMU and no serial log of it.
 *
 * Needs `npm run build` and `make -C guest`; at most two QEMUs at a time.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeCpuCapabilities } from '../../src/qemu/cpu-check.js';
import { resolveQemuBinary } from '../../src/qemu/binary.js';
import { domainNames, expectCliError, expectCliOk } from '../support/cli-result.js';
import { createCluster, type Cluster, type ClusterHost } from '../support/cluster.js';
import { makeTempDir, processAlive, qemuPidsMentioning, resetDaemons, statusOf, useDaemonCleanup } from '../support/daemon.js';
import { testGuestXml } from '../support/guest-xml.js';
import { expectContinuity, expectHeartbeatCarriesOn, waitHeartbeats, type HeartbeatHost } from '../support/heartbeat.js';
import { netnsAvailable } from '../support/netns.js';

let cluster: Cluster | undefined;
let A: ClusterHost;
let B: ClusterHost;
let dir: string;

useDaemonCleanup(() => resetDaemons([A?.d, B?.d]));

beforeAll(async () => {
  if (!netnsAvailable()) return;
  dir = makeTempDir('ferry-cpu-model-');
  cluster = await createCluster({ prefix: `fcpu${process.pid % 10000}`, subnet: 151, hosts: 2 });
  [A, B] = cluster.hosts as [ClusterHost, ClusterHost];
});

afterAll(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

const hb = (h: ClusterHost): HeartbeatHost => ({ label: h.name, d: h.d });

/** The test guest's XML with `cpu` right after `<features>`. */
function guestXml(name: string, uuid: string, cpu: string): string {
  return testGuestXml({ name, uuid, cmdline: 'ws=8 rate=5 hb=200' }).replace('  <features><acpi/></features>\n', `  <features><acpi/></features>\n  ${cpu}\n`);
}

function writeXml(file: string, xml: string): string {
  const path = join(dir, file);
  writeFileSync(path, xml);
  return path;
}

/** QEMU's argv of a running guest, from /proc. */
function qemuArgv(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
}

describe.skipIf(!netnsAvailable())('CPU models under TCG', () => {
  it("QEMU 7.2 under TCG: Cascadelake-Server lacks features, qemu64 lacks none, max has sse4.2 but not avx512f", async () => {
    const caps = await probeCpuCapabilities(resolveQemuBinary(undefined), 'tcg');
    expect(caps.models.get('Cascadelake-Server')).toEqual(expect.arrayContaining(['avx512f', 'pcid', 'x2apic']));
    expect(caps.models.get('qemu64')).toEqual([]);
    expect(caps.features.get('sse4.2')).toBe(true);
    expect(caps.features.get('avx512f')).toBe(false);
  });

  it('a qemu64 guest requiring sse4.2 starts with -cpu qemu64,+sse4.2, keeps its <cpu> and migrates with its heartbeat carrying on', async () => {
    const name = 'cpu-ok';
    const cpu = "<cpu mode='custom' match='exact' check='partial'><model fallback='forbid'>qemu64</model><feature policy='require' name='sse4.2'/></cpu>";
    expectCliOk(await A.ferry(['define', writeXml(`${name}.xml`, guestXml(name, randomUUID(), cpu))]), 'define');
    expectCliOk(await A.ferry(['start', name]), 'start');
    await waitHeartbeats(hb(A), name);
    const st = statusOf(A.d.runDir, name)!;
    const argv = qemuArgv(st.pid);
    expect(argv[argv.indexOf('-cpu') + 1]).toBe('qemu64,+sse4.2');
    const dump = await A.ferry(['dumpxml', name]);
    expect(dump.stdout).toContain(cpu);

    const r = await A.ferry(['migrate', '--live', '--p2p', '--persistent', '--undefinesource', name, B.tcpUri], { json: true, timeoutMs: 90_000 });
    expectCliOk(r, 'migrate A -> B');
    await expectContinuity(name, hb(A), hb(B));
    expect(await domainNames(A)).not.toContain(name);
    expect((await B.ferry(['dumpxml', name])).stdout).toContain(cpu);
    const stB = statusOf(B.d.runDir, name)!;
    const argvB = qemuArgv(stB.pid);
    expect(argvB[argvB.indexOf('-cpu') + 1]).toBe('qemu64,+sse4.2');
    expectCliOk(await B.ferry(['destroy', name]), 'destroy on B');
    expectCliOk(await B.ferry(['undefine', name]), 'undefine on B');
  });

  it("host-passthrough under TCG runs as -cpu max, ferryd says so, and migrates between these hosts (same machine, same QEMU)", async () => {
    const name = 'cpu-passthrough';
    const cpu = "<cpu mode='host-passthrough' migratable='on'/>";
    expectCliOk(await A.ferry(['define', writeXml(`${name}.xml`, guestXml(name, randomUUID(), cpu))]), 'define');
    expectCliOk(await A.ferry(['start', name]), 'start');
    await waitHeartbeats(hb(A), name);
    const argv = qemuArgv(statusOf(A.d.runDir, name)!.pid);
    expect(argv[argv.indexOf('-cpu') + 1]).toBe('max');
    expect(A.d.stderr()).toContain(`domain '${name}': <cpu mode='host-passthrough'> runs as QEMU's 'max' CPU`);
    expectCliOk(await A.ferry(['migrate', '--live', '--p2p', '--persistent', '--undefinesource', name, B.tcpUri], { json: true, timeoutMs: 90_000 }), 'migrate A -> B');
    await expectContinuity(name, hb(A), hb(B));
    expect((await B.ferry(['dumpxml', name])).stdout).toContain(cpu);
    expectCliOk(await B.ferry(['destroy', name]), 'destroy on B');
    expectCliOk(await B.ferry(['undefine', name]), 'undefine on B');
  });

  it('a model TCG lacks features for, or a required feature TCG lacks, is refused at start: no QEMU', async () => {
    const cases = [
      { name: 'cpu-cascade', cpu: "<cpu mode='custom' match='exact'><model>Cascadelake-Server</model></cpu>", missing: ['avx512f', 'pcid', 'x2apic'] },
      { name: 'cpu-avx512', cpu: "<cpu mode='custom'><model>qemu64</model><feature policy='require' name='avx512f'/></cpu>", missing: ['avx512f'] },
    ];
    for (const c of cases) {
      expectCliOk(await A.ferry(['define', writeXml(`${c.name}.xml`, guestXml(c.name, randomUUID(), c.cpu))]), `define ${c.name}`);
      const msg = expectCliError(await A.ferry(['start', c.name], { json: true }), 'operation_failed', 9, `start ${c.name}`);
      expect(msg).toContain("guest CPU doesn't match specification: missing features: ");
      for (const f of c.missing) expect(msg).toContain(f);
      expect(msg).toContain(c.name);
      expect(statusOf(A.d.runDir, c.name), `a QEMU status file of ${c.name}`).toBeUndefined();
      expect(qemuPidsMentioning(c.name)).toEqual([]);
      const state = await A.ferry(['domstate', c.name]);
      expect(state.stdout.trim()).toBe('shut off');
      expectCliOk(await A.ferry(['undefine', c.name]), `undefine ${c.name}`);
    }
    const unknown = 'cpu-unknown';
    expectCliOk(await A.ferry(['define', writeXml(`${unknown}.xml`, guestXml(unknown, randomUUID(), "<cpu><model fallback='forbid'>Pentium9000</model></cpu>"))]), 'define unknown');
    expect(expectCliError(await A.ferry(['start', unknown], { json: true }), 'config_unsupported', 67, 'start unknown')).toContain("CPU model 'Pentium9000' is not supported by hypervisor");
    expectCliOk(await A.ferry(['undefine', unknown]), 'undefine unknown');
  });

  it("a migration whose destination XML requires a feature B's QEMU lacks is refused in prepare: nothing changes on either host", async () => {
    const name = 'cpu-refused';
    const uuid = randomUUID();
    const cpuA = "<cpu mode='custom'><model>qemu64</model><feature policy='require' name='sse4.2'/></cpu>";
    const cpuB = "<cpu mode='custom'><model>qemu64</model><feature policy='require' name='sse4.2'/><feature policy='require' name='avx512f'/></cpu>";
    expectCliOk(await A.ferry(['define', writeXml(`${name}.xml`, guestXml(name, uuid, cpuA))]), 'define');
    expectCliOk(await A.ferry(['start', name]), 'start');
    await waitHeartbeats(hb(A), name);
    const q = statusOf(A.d.runDir, name)!;
    const destXml = writeXml(`${name}-dest.xml`, guestXml(name, uuid, cpuB));

    for (const flags of [['--live', '--p2p', '--persistent', '--undefinesource'], ['--live']]) {
      const r = await A.ferry(['migrate', ...flags, '--xml', destXml, name, B.tcpUri], { json: true, timeoutMs: 90_000 });
      const msg = expectCliError(r, 'operation_failed', 9, `migrate ${flags.join(' ')}`);
      expect(msg).toContain("guest CPU doesn't match specification: missing features: avx512f");
      expect(msg).toContain(B.name);
      // A: the same QEMU, running, the definition kept, the heartbeat going on with no restart.
      expect((await A.ferry(['domstate', '--reason', name])).stdout.trim()).toBe('running (booted)');
      expect(await processAlive(q.pid, q.pidStartTime)).toBe(true);
      expect(statusOf(A.d.runDir, name)?.pid).toBe(q.pid);
      await expectHeartbeatCarriesOn(hb(A), name);
      // B: no domain, no QEMU, no serial log.
      expect(await domainNames(B)).toEqual([]);
      expect(statusOf(B.d.runDir, name)).toBeUndefined();
      expect(existsSync(join(B.d.stateDir, 'logs', `${name}.serial.log`)), "B's serial log of the guest").toBe(false);
    }
    expect(qemuPidsMentioning(name)).toEqual([q.pid]);
    expectCliOk(await A.ferry(['destroy', name]), 'destroy');
    expectCliOk(await A.ferry(['undefine', name]), 'undefine');
  });
});
