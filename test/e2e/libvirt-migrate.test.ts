/**
 * Live migration driven by libvirt's own clients: Debian's stock `virsh`
 * (libvirt-clients 9.0) and a python3-libvirt program
 * (test/support/libvirt_migrate.py), talking libvirt's wire protocol to
 * ferryd's `--libvirt-listen-tcp` listeners on two hosts (two network
 * namespaces joined by a veth link when the machine allows it, else two
 * daemons on loopback).
 *
 * One memory-writing guest goes back and forth between the hosts, a
 * migration per test, each from wherever it runs to the other host; a
 * second guest, with a qcow2 disk, is for the storage copy. What each test
 * checks is what libvirt's users look at: the command's exit status and
 * output, `virsh list --all` and `virsh dominfo` on both hosts (the guest
 * runs on the destination only; its definition is where libvirt puts it),
 * `virsh domjobinfo --completed`, and the guest's heartbeat, which carries
 * on at the destination from the source's last count + 1 with no CORRUPT.
 *
 * Set-up (define, start) goes through ferryd's native CLI: what is under
 * test is the migration. Needs `npm run build`, `make -C guest`, virsh and
 * /usr/bin/python3 with python3-libvirt (scripts/setup.sh installs them).
 * At most two QEMUs at a time.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ferryOk, makeTempDir, REPO_ROOT, startDaemon, statusOf, useDaemonCleanup, waitFor, type FerrydHandle } from '../support/daemon.js';
import { testGuestXml } from '../support/guest-xml.js';
import { expectContinuity, expectHeartbeatCarriesOn, serialText, waitHeartbeats } from '../support/heartbeat.js';
import { createHostPair, inNetns, netnsAvailable, type HostPair } from '../support/netns.js';
import { parseSerialLog } from '../support/serial.js';
import { libvirtClientEnv, libvirtTcpUri, parseVirshFields, virsh, virshList, type VirshResult } from '../support/virsh.js';

// ------------------------------------------------------------------ hosts

/** One host as the tests see it. */
interface TestHost {
  label: 'A' | 'B';
  d: FerrydHandle;
  /** Network namespace (undefined in the loopback fallback). */
  ns: string | undefined;
  /** `qemu+tcp://ADDR:PORT/system`: ferryd's libvirt listener, as the other host and the clients reach it. */
  uri: string;
}

/** FERRY_E2E_NO_NETNS=1 forces the loopback fallback. */
const USE_NETNS = !process.env.FERRY_E2E_NO_NETNS && netnsAvailable();
let pair: HostPair | undefined;
let A: TestHost;
let B: TestHost;
let dir: string;

async function startHost(label: 'A' | 'B', ns: string | undefined, addr: string, port: number): Promise<TestHost> {
  const d = await startDaemon({ hostName: `lvm-host-${label.toLowerCase()}`, libvirtTcp: `${addr}:${port}`, ...(ns ? { netns: ns } : {}) });
  expect(d.libvirtTcpPort, `host ${label}'s ready line names its libvirt-tcp listener`).toBeGreaterThan(0);
  return { label, d, ns, uri: libvirtTcpUri(addr, d.libvirtTcpPort!) };
}

/** The memory-writing guest that goes back and forth: 64 MiB rewritten at 30 MiB/s, a heartbeat every 200 ms. */
const G = 'lvm-guest';
const G_UUID = randomUUID();
const G_XML = (): string => testGuestXml({ name: G, uuid: G_UUID, memoryKiB: 262148, cmdline: 'ws=64 rate=30 hb=200' });

// No reset between tests: they share the hosts and the guest on purpose.
useDaemonCleanup();

beforeAll(async () => {
  dir = makeTempDir('ferry-lvm-');
  if (USE_NETNS) {
    // Unique per process: another run of this file must not delete our namespaces.
    pair = createHostPair(`flvm${process.pid}`, 67);
    A = await startHost('A', pair.a.ns, pair.a.address, 16509);
    B = await startHost('B', pair.b.ns, pair.b.address, 16509);
  } else {
    A = await startHost('A', undefined, '127.0.0.1', 0);
    B = await startHost('B', undefined, '127.0.0.1', 0);
  }
  writeFileSync(join(dir, `${G}.xml`), G_XML());
  await locate(); // Defines and starts the guest on A.
});

afterAll(() => {
  pair?.destroy();
});

// ------------------------------------------------------------------ helpers

/** `ferry --json ...` against a host's daemon (its unix socket): set-up, and finding the guest. */
async function native(h: TestHost, args: string[]): Promise<any> {
  return (await ferryOk(args, { uri: h.d.uri, json: true })).json;
}

/** `virsh -c <host's libvirt URI> ...`, run on that host (inside its namespace). */
function vsh(h: TestHost, args: string[], timeoutMs = 30_000): Promise<VirshResult> {
  return virsh(h.uri, args, { timeoutMs, ...(h.ns ? { netns: h.ns } : {}) });
}

async function vshOk(h: TestHost, args: string[]): Promise<VirshResult> {
  const r = await vsh(h, args);
  expect(r.code, `host ${h.label}: virsh ${args.join(' ')}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(0);
  return r;
}

/** `virsh migrate FLAGS... NAME <to's URI>`, run on `from` against `from`'s daemon. */
function virshMigrate(from: TestHost, to: TestHost, flags: string[], name = G): Promise<VirshResult> {
  return vsh(from, ['migrate', ...flags, name, to.uri], 120_000);
}

function output(r: { code: number; stdout: string; stderr: string }): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

/** `virsh list --all` on a host: the state of `name` there (`running`, `shut off`, ...), undefined if not listed. */
async function listed(h: TestHost, name: string): Promise<string | undefined> {
  return (await virshList(h.uri, ['--all'], h.ns ? { netns: h.ns } : {})).find((r) => r.name === name)?.state;
}

/** How a host's daemon has `name` (native API): undefined when it does not. */
async function held(h: TestHost, name: string): Promise<{ active: boolean; persistent: boolean } | undefined> {
  const rows = (await native(h, ['list', '--all'])) as Array<{ name: string; id: number | null; persistent: boolean }>;
  const row = rows.find((x) => x.name === name);
  return row && { active: row.id !== null, persistent: row.persistent };
}

/**
 * Where the guest runs (the source) and the other host (the destination),
 * with what each holds before the migration. A guest that an earlier,
 * failed test left running nowhere is started again on A, so that one
 * failure does not fail the tests after it.
 */
async function locate(): Promise<{ from: TestHost; to: TestHost; sourcePersistent: boolean; destDefined: boolean }> {
  let [a, b] = [await held(A, G), await held(B, G)];
  if (!a?.active && !b?.active) {
    if (!a?.persistent) await native(A, ['define', join(dir, `${G}.xml`)]);
    await native(A, ['start', G]);
    await waitHeartbeats(A, G);
    a = await held(A, G);
  }
  if (a?.active && b?.active) throw new Error(`'${G}' runs on both hosts`);
  const [from, to, src, dst] = a?.active ? [A, B, a, b] : [B, A, b!, a];
  return { from, to, sourcePersistent: src.persistent, destDefined: dst?.persistent ?? false };
}

/**
 * After a successful `virsh migrate`: exit 0; `virsh list --all` shows the
 * guest running on `to`, and on `from` shut off if the source keeps its
 * definition (persistent, no --undefinesource) or not at all; `virsh
 * dominfo` on `to` says whether it is persistent (--persistent, or a
 * definition `to` had already); the heartbeat carries on at `to`.
 */
async function expectMigrated(
  r: { code: number; stdout: string; stderr: string },
  name: string,
  where: { from: TestHost; to: TestHost; sourcePersistent: boolean; destDefined: boolean },
  flags: { persistent?: boolean; undefineSource?: boolean } = {},
): Promise<void> {
  const { from, to } = where;
  expect(r.code, `migrate ${from.label} -> ${to.label}\n${output(r)}`).toBe(0);
  expect(await listed(to, name), `virsh list --all on ${to.label}`).toBe('running');
  const sourceKeeps = where.sourcePersistent && !flags.undefineSource;
  expect(await listed(from, name), `virsh list --all on ${from.label}`).toBe(sourceKeeps ? 'shut off' : undefined);
  const info = parseVirshFields((await vshOk(to, ['dominfo', name])).stdout);
  expect(info.State, `virsh dominfo on ${to.label}`).toBe('running');
  expect(info.Persistent, `virsh dominfo on ${to.label}`).toBe(flags.persistent || where.destDefined ? 'yes' : 'no');
  await expectContinuity(name, from, to);
}

/** virsh's --verbose progress: `Migration: [100 %]` once the migration completed (virsh writes it on stderr). */
function expectProgressDone(r: VirshResult): void {
  expect(`${r.stdout}${r.stderr}`, `virsh --verbose progress\n${output(r)}`).toMatch(/Migration: \[100 %\]/);
}

/** Runs test/support/libvirt_migrate.py with Debian's /usr/bin/python3 on `from`; its JSON on stdout. */
function pythonMigrate(from: TestHost, to: TestHost, name: string, bandwidth: number, api: 'p2p-params' | 'managed-v3' = 'p2p-params'): Promise<{ code: number; stdout: string; stderr: string; json: any }> {
  const script = join(REPO_ROOT, 'test', 'support', 'libvirt_migrate.py');
  const cmd = inNetns(from.ns, ['/usr/bin/python3', script, from.uri, to.uri, name, String(bandwidth), api]);
  const env = libvirtClientEnv();
  for (const k of Object.keys(env)) if (k.startsWith('PYTHON')) delete env[k];
  return new Promise((res, rej) => {
    execFile(cmd.file, cmd.args, { cwd: REPO_ROOT, env, timeout: 120_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: unknown; killed?: boolean }) | null;
      if (e && typeof e.code !== 'number') return rej(new Error(`libvirt_migrate.py: ${e.killed ? 'timed out' : e.message}\nstdout: ${stdout}\nstderr: ${stderr}`));
      let json: any;
      try {
        json = JSON.parse(stdout);
      } catch {
        // Left undefined: the test shows stdout.
      }
      res({ code: e ? (e.code as unknown as number) : 0, stdout, stderr, json });
    });
  });
}

// ------------------------------------------------------------------ tests

// The tests run in this order; each migrates the guest from wherever it runs (A, B, A, ...).
describe('virsh migrate, the guest going back and forth between two ferryd hosts', () => {
  it('managed: virsh -c qemu+tcp://A/system migrate --live --verbose GUEST qemu+tcp://B/system; domjobinfo --completed', async () => {
    const where = await locate();
    const r = await virshMigrate(where.from, where.to, ['--live', '--verbose']);
    await expectMigrated(r, G, where);
    expectProgressDone(r);
    // libvirt keeps the statistics of the completed job on the destination: an incoming migration.
    const done = parseVirshFields((await vshOk(where.to, ['domjobinfo', '--completed', G])).stdout);
    expect(done['Job type'], JSON.stringify(done)).toBe('Completed');
    expect(done.Operation, JSON.stringify(done)).toBe('Incoming migration');
    expect(done['Data processed'], JSON.stringify(done)).toMatch(/^\d+(\.\d+)? (B|KiB|MiB|GiB)$/);
    expect(parseFloat(done['Data processed']!)).toBeGreaterThan(0);
  });

  // The "done when": virsh -c qemu+tcp://HOST_A:PORT/system migrate --live --p2p --verbose GUEST qemu+tcp://HOST_B:PORT/system
  it('peer to peer: virsh migrate --live --p2p --verbose', async () => {
    const where = await locate();
    const r = await virshMigrate(where.from, where.to, ['--live', '--p2p', '--verbose']);
    await expectMigrated(r, G, where);
    expectProgressDone(r);
  });

  it('--persistent --undefinesource: the destination has the guest persistent, the source no definition', async () => {
    const where = await locate();
    if (!where.sourcePersistent) {
      // Defining a running transient domain makes it persistent (libvirt's semantics); --undefinesource then has something to remove.
      await native(where.from, ['define', join(dir, `${G}.xml`)]);
      where.sourcePersistent = true;
    }
    const r = await virshMigrate(where.from, where.to, ['--live', '--persistent', '--undefinesource', '--verbose']);
    await expectMigrated(r, G, where, { persistent: true, undefineSource: true });
    expect(await held(where.from, G), `${where.from.label} still holds '${G}'`).toBeUndefined();
    const dominfo = await vsh(where.from, ['dominfo', G]);
    expect(dominfo.code, `virsh dominfo on ${where.from.label}\n${output(dominfo)}`).toBe(1);
    expect(dominfo.stderr).toMatch(/^error: /m);
    const inactive = await vshOk(where.to, ['dumpxml', '--inactive', G]);
    expect(inactive.stdout).toContain(`<uuid>${G_UUID}</uuid>`);
  });

  it('tunnelled: virsh migrate --live --p2p --tunnelled --verbose', async () => {
    const where = await locate();
    const logFrom = where.to.d.stderr().length;
    const r = await virshMigrate(where.from, where.to, ['--live', '--p2p', '--tunnelled', '--verbose']);
    await expectMigrated(r, G, where);
    expectProgressDone(r);
    // The stream came through the daemons' connection: the destination's QEMU listened on no address of its own.
    const log = where.to.d.stderr().slice(logFrom);
    expect(log).toContain(`incoming tunnelled migration of '${G}'`);
    expect(log).not.toMatch(new RegExp(`incoming migration of '${G}' .*listening on`));
  });

  it('zero-copy: virsh migrate --live --p2p --parallel --zerocopy --verbose (flag bit 20 passed through)', async () => {
    const where = await locate();
    const r = await virshMigrate(where.from, where.to, ['--live', '--p2p', '--parallel', '--zerocopy', '--verbose']);
    await expectMigrated(r, G, where);
    expectProgressDone(r);
  });

  it('python3-libvirt: migrateToURI3(dest, {bandwidth: 100}, LIVE | PEER2PEER), then the completed job statistics on the destination', async () => {
    const where = await locate();
    const r = await pythonMigrate(where.from, where.to, G, 100);
    expect(r.json, `libvirt_migrate.py\n${output(r)}`).toBeDefined();
    expect(r.json.error, `libvirt_migrate.py\n${output(r)}`).toBeUndefined();
    await expectMigrated(r, G, where);
    const k = r.json.constants as Record<string, number>;
    expect([r.json.state, r.json.reason], 'state and reason on the destination').toEqual([k.VIR_DOMAIN_RUNNING, k.VIR_DOMAIN_RUNNING_MIGRATED]);
    expect(r.json.uuid).toBe(G_UUID);
    const s = r.json.completed as Record<string, number>;
    expect(s.type, JSON.stringify(s)).toBe(k.VIR_DOMAIN_JOB_COMPLETED);
    expect(s.operation, JSON.stringify(s)).toBe(k.VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN);
    for (const key of ['memory_total', 'memory_processed', 'data_total', 'data_processed']) {
      expect(s[key], `completed job stats ${key}: ${JSON.stringify(s)}`).toBeGreaterThan(0);
    }
  });

  it('python3-libvirt, the older API: dom.migrate(dconn, LIVE, None, None, 50) drives the v3 procedures without typed parameters', async () => {
    const where = await locate();
    const r = await pythonMigrate(where.from, where.to, G, 50, 'managed-v3');
    expect(r.json, `libvirt_migrate.py\n${output(r)}`).toBeDefined();
    expect(r.json.error, `libvirt_migrate.py\n${output(r)}`).toBeUndefined();
    await expectMigrated(r, G, where);
    expect(r.json.state).toBe((r.json.constants as Record<string, number>).VIR_DOMAIN_RUNNING);
  });

  // postcopy-needs-live (src/flags/rules.ts): libvirt refuses it too, with VIR_ERR_ARGUMENT_UNSUPPORTED.
  it('a refused combination (--postcopy without --live): virsh exits 1 with "error: argument unsupported: ...", the guest stays where it runs', async () => {
    const where = await locate();
    const { from, to } = where;
    const q = statusOf(from.d.runDir, G);
    expect(q, `status file of '${G}' on ${from.label}`).toBeDefined();
    const toBefore = await listed(to, G);
    const r = await virshMigrate(from, to, ['--p2p', '--postcopy']);
    expect(r.code, output(r)).toBe(1);
    expect(r.stderr, output(r)).toMatch(/^error: argument unsupported: .*--postcopy.*--live/m);
    expect(await listed(from, G), `virsh list --all on ${from.label}`).toBe('running');
    expect(await listed(to, G), `virsh list --all on ${to.label}`).toBe(toBefore);
    expect(statusOf(from.d.runDir, G)?.pid, `'${G}' runs in the same QEMU on ${from.label}`).toBe(q!.pid);
    const jobs = parseVirshFields((await vshOk(from, ['domjobinfo', G])).stdout);
    expect(jobs['Job type'], 'a job runs on the source').toBe('None');
    await expectHeartbeatCarriesOn(from, G, parseSerialLog(serialText(from, G)).boot !== undefined);
  });
});

describe('virsh domjobabort during virsh migrate', () => {
  it('the migration ends with "operation aborted", the guest keeps running on the source in the same QEMU, nothing runs on the destination', async () => {
    const { from, to } = await locate();
    const q = statusOf(from.d.runDir, G);
    // 1 MiB/s keeps the stream going long enough to abort it.
    const running = virshMigrate(from, to, ['--live', '--verbose', '--bandwidth', '1']);
    await waitFor('a migration job on the source', async () => parseVirshFields((await vsh(from, ['domjobinfo', G])).stdout)['Job type'] === 'Unbounded', 30_000, 100);
    await vshOk(from, ['domjobabort', G]);
    const r = await running;
    expect(r.code, output(r)).toBe(1);
    expect(r.stderr, output(r)).toMatch(/^error: operation aborted: /m);
    expect(await listed(from, G), `virsh list --all on ${from.label}`).toBe('running');
    expect(await listed(to, G), `virsh list --all on ${to.label}`).not.toBe('running');
    expect(statusOf(from.d.runDir, G)?.pid, `'${G}' runs in the same QEMU on ${from.label}`).toBe(q!.pid);
    const completed = parseVirshFields((await vshOk(from, ['domjobinfo', '--completed', G])).stdout);
    expect(completed['Job type']).toBe('Cancelled');
    await expectHeartbeatCarriesOn(from, G, parseSerialLog(serialText(from, G)).boot !== undefined);
  });
});

describe('virsh domjobabort --postcopy, then virsh migrate --postcopy-resume', () => {
  it('pauses a post-copy on purpose (both hosts report post-copy failed) and resumes it to the destination, the heartbeat continuous', async () => {
    const where = await locate();
    const { from, to } = where;
    // A slow post-copy phase (4 MiB/s) keeps the guest on the destination without all its memory long enough to pause it.
    const running = virshMigrate(from, to, ['--live', '--p2p', '--postcopy', '--postcopy-after-precopy', '--bandwidth', '32', '--postcopy-bandwidth', '4']);
    await waitFor('the guest to run on the destination in post-copy', async () => ((await vsh(to, ['domstate', '--reason', G])).stdout.trim() === 'running (post-copy)' ? true : undefined), 90_000, 100);
    await vshOk(from, ['domjobabort', '--postcopy', G]);
    const r = await running;
    expect(r.code, output(r)).toBe(1);
    expect(r.stderr, output(r)).toMatch(/^error: operation failed: post-copy migration of .* paused/m);
    expect((await vshOk(from, ['domstate', '--reason', G])).stdout.trim()).toBe('paused (post-copy failed)');
    await waitFor('the destination to report the paused post-copy', async () => ((await vsh(to, ['domstate', '--reason', G])).stdout.trim() === 'running (post-copy failed)' ? true : undefined), 30_000, 200);
    const resumed = await virshMigrate(from, to, ['--live', '--p2p', '--postcopy', '--postcopy-resume', '--verbose']);
    await expectMigrated(resumed, G, where);
  });
});

describe('virsh migrate --offline', () => {
  it('moves a shut-off definition managed (--persistent), and back peer to peer with --undefinesource', async () => {
    const name = 'lvm-offline';
    const file = join(dir, `${name}.xml`);
    writeFileSync(file, testGuestXml({ name, uuid: randomUUID() }));
    await native(A, ['define', file]);
    const there = await virshMigrate(A, B, ['--offline', '--persistent'], name);
    expect(there.code, output(there)).toBe(0);
    expect(await listed(B, name)).toBe('shut off');
    expect(parseVirshFields((await vshOk(B, ['dominfo', name])).stdout).Persistent).toBe('yes');
    // Without --undefinesource the source keeps its definition, as in libvirt.
    expect(await listed(A, name)).toBe('shut off');
    await native(A, ['undefine', name]);
    const back = await virshMigrate(B, A, ['--p2p', '--offline', '--persistent', '--undefinesource'], name);
    expect(back.code, output(back)).toBe(0);
    expect(await listed(A, name)).toBe('shut off');
    expect(await listed(B, name)).toBeUndefined();
    await native(A, ['undefine', name]);
  });
});

describe('virsh migrate --copy-storage-all', () => {
  it('a guest with a qcow2 disk, with --copy-storage-synchronous-writes: B creates the image named by --xml and receives its contents; the guest carries on', async () => {
    const name = 'lvm-disk';
    const uuid = randomUUID();
    const cmdline = 'ws=16 rate=2 hb=200';
    const imgA = join(dir, 'disk-a.qcow2');
    const imgB = join(dir, 'disk-b.qcow2');
    const seed = join(dir, 'disk-seed.raw');
    execFileSync('dd', ['if=/dev/urandom', `of=${seed}`, 'bs=1M', 'count=8', 'status=none']);
    execFileSync('truncate', ['-s', '32M', seed]);
    execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', seed, imgA]);
    const disk = (path: string): string => `    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${path}'/><target dev='vda' bus='virtio'/></disk>`;
    // The hosts share this machine's filesystem: the destination's image gets its own path through --xml, as on separate machines.
    const destXml = join(dir, 'lvm-disk-b.xml');
    writeFileSync(destXml, testGuestXml({ name, uuid, cmdline, extraDevices: disk(imgB) }));
    const srcXml = join(dir, 'lvm-disk-a.xml');
    writeFileSync(srcXml, testGuestXml({ name, uuid, cmdline, extraDevices: disk(imgA) }));
    await native(A, ['create', srcXml]);
    await waitHeartbeats(A, name);
    const where = { from: A, to: B, sourcePersistent: false, destDefined: false };
    // Like ferry migrate (and unlike libvirt without a storage pool), the destination creates the missing image itself.
    expect(existsSync(imgB)).toBe(false);

    const logFrom = A.d.stderr().length;
    const r = await virshMigrate(A, B, ['--live', '--copy-storage-all', '--copy-storage-synchronous-writes', '--verbose', '--xml', destXml], name);
    await expectMigrated(r, name, where);
    expectProgressDone(r);
    const info = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', imgB], { encoding: 'utf8' })) as { format: string; 'virtual-size': number };
    expect(info.format).toBe('qcow2');
    expect(info['virtual-size']).toBe(32 * 1024 * 1024);
    // The guest writes nothing to its disk: B's image holds what A's did.
    expect(execFileSync('qemu-img', ['compare', '-U', imgA, imgB], { encoding: 'utf8' }).trim()).toBe('Images are identical.');
    // Bit 18 came through libvirt's protocol: the mirror ran in write-blocking mode.
    expect(A.d.stderr().slice(logFrom)).toMatch(new RegExp(`copying 1 disk\\(s\\) of '${name}' \\(full, synchronous writes\\)`));
    const domblk = await vshOk(B, ['domblklist', name]);
    expect(domblk.stdout).toContain(imgB);
    await native(B, ['destroy', name]);
  });
});
