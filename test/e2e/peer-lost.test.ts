/**
 * Peers that vanish and stay gone, as a user would meet them: a migration
 * slowed down (`--bandwidth 4` while the guest rewrites 40 MiB/s) so that
 * it is caught mid-stream, then the destination's ferryd killed with
 * SIGKILL and not restarted, or the link cut and left down, or (managed)
 * the source's ferryd killed. Each time the command must end with a coded
 * error within the keepalive bound (ferryd and the CLI run with 1 s x 3
 * here), the guest must keep running on the source with its memory intact,
 * and no QEMU may be left receiving on the destination.
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCluster, tidyCluster, type Cluster, type ClusterHost } from '../support/cluster.js';
import { makeTempDir, qemuPidsMentioning, useDaemonCleanup, waitFor, type CliResult } from '../support/daemon.js';
import { ApiClient } from '../../src/api/client.js';
import { existsSync, rmSync } from 'node:fs';
import { serialLogFile, testGuestXml } from '../support/guest-xml.js';
import { findCounterAnomalies } from '../support/serial.js';
import { netnsAvailable } from '../support/netns.js';

/** The keepalive every daemon and CLI of this file runs with: a vanished peer is noticed after 3 s. */
const KEEPALIVE = ['--keepalive-interval', '1', '--keepalive-count', '3'];
/** One outgoing migration at a time, so that a second one waits in the queue. */
const LIMITS = ['--max-outgoing-migrations', '1'];
const CLI_KEEPALIVE = ['-k', '1', '-K', '3'];
const BOUND_MS = 3000;
/** What the command may take beyond the keepalive bound: QEMU's cancel, the rollback, the CLI's own start-up on a loaded machine. */
const SLACK_MS = 20_000;

let cluster: Cluster;
let work: string;

useDaemonCleanup();

beforeAll(async () => {
  if (!netnsAvailable()) return;
  work = makeTempDir('ferry-peer-lost-');
  cluster = await createCluster({ prefix: `pl${process.pid % 10000}`, subnet: 83, hosts: 2, rate: '1gbit', extraArgs: [...KEEPALIVE, ...LIMITS], env: { FERRY_TEST_HOOKS: '1' } });
});

afterAll(async () => {
  await cluster?.destroy();
});

interface Started {
  name: string;
  uuid: string;
  migration: Promise<CliResult>;
}

/** Defines and starts a writing guest on A, starts `ferry migrate FLAGS` to B, and waits until the stream is under way. */
async function migrateSlowly(A: ClusterHost, B: ClusterHost, flags: string[], extra: { disk?: boolean; bandwidth?: string; notStreaming?: boolean } = {}): Promise<Started> {
  const name = `pl-${randomUUID().slice(0, 8)}`;
  const uuid = randomUUID();
  let devices: string | undefined;
  if (extra.disk) {
    const img = join(work, `${name}.raw`);
    writeFileSync(img, Buffer.alloc(64 * 1024 * 1024, 0x5a));
    devices = `    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${img}'/><target dev='vda' bus='virtio'/></disk>`;
    flags = [...flags, '--copy-storage-all', '--xml', writeXml(`${name}-dest`, { name, uuid, cmdline: 'ws=64 rate=40 hb=200', extraDevices: devices.replace(img, join(B.d.stateDir, `${name}.raw`)) })];
  }
  const xml = writeXml(name, { name, uuid, cmdline: 'ws=64 rate=40 hb=200', ...(devices ? { extraDevices: devices } : {}) });
  expect((await A.ferry(['define', xml])).code).toBe(0);
  expect((await A.ferry(['start', name])).code).toBe(0);
  await waitFor('the guest to beat', () => (serialLogFile(A.d.stateDir, name).log.lastHeartbeat?.counter ?? 0) >= 3, 30_000);
  const migration = A.ferry([...CLI_KEEPALIVE, 'migrate', '--live', '--persistent', '--undefinesource', '--bandwidth', extra.bandwidth ?? '4', ...flags, name, B.tcpUri], { json: true, timeoutMs: 120_000 });
  if (extra.notStreaming) return { name, uuid, migration };
  // Mid-stream: the source's job has sent memory (or disk) but is far from done at 4 MiB/s.
  await waitFor(
    'the migration to be streaming',
    async () => {
      const r = await A.ferry(['domjobinfo', name], { json: true });
      const sent = (r.json?.memory_processed ?? 0) + (r.json?.disk_processed ?? 0);
      return r.code === 0 && r.json?.type === 'Unbounded' && sent > 2 * 1024 * 1024;
    },
    60_000,
    200,
  );
  return { name, uuid, migration };
}

function writeXml(file: string, o: Parameters<typeof testGuestXml>[0]): string {
  const path = join(work, `${file}.xml`);
  writeFileSync(path, testGuestXml(o));
  return path;
}

/** Waits for the command, no longer than the keepalive bound plus slack after the fault. */
async function endsWithinBound(migration: Promise<CliResult>, faultAt: number): Promise<{ result: CliResult; afterFaultMs: number }> {
  const limit = BOUND_MS + SLACK_MS;
  const result = await Promise.race([migration, new Promise<null>((r) => setTimeout(() => r(null), limit + 5000))]);
  if (!result) throw new Error(`the migrate command did not end within ${limit} ms of the fault`);
  return { result, afterFaultMs: Date.now() - faultAt };
}

/** The guest runs on A, beating on with intact memory, with no job left; no other QEMU of it exists anywhere. */
async function stillRunsOnSource(A: ClusterHost, s: Started): Promise<void> {
  const st = await waitFor('the guest to run on the source', async () => {
    const r = await A.ferry(['domstate', '--reason', s.name]);
    return r.stdout.startsWith('running') ? r.stdout.trim() : undefined;
  }, 15_000);
  expect(st).toMatch(/^running/);
  const before = serialLogFile(A.d.stateDir, s.name).log.lastHeartbeat?.counter ?? 0;
  await waitFor('heartbeats after the fault', () => (serialLogFile(A.d.stateDir, s.name).log.lastHeartbeat?.counter ?? 0) >= before + 3, 20_000);
  const log = serialLogFile(A.d.stateDir, s.name).log;
  expect(log.corrupt, 'memory check').toBeFalsy();
  expect(findCounterAnomalies(log.heartbeats)).toEqual([]);
  const job = await A.ferry(['domjobinfo', s.name], { json: true });
  expect(job.json?.type).toBe('None');
  // The destination's incoming QEMU is gone too (it may take a moment to exit after its stream broke).
  await waitFor('one QEMU of the guest', () => qemuPidsMentioning(s.uuid).length === 1, 15_000);
}


describe.runIf(netnsAvailable())('a peer that vanishes and stays gone', () => {
  it.each([
    ['peer-to-peer', ['--p2p']],
    ['managed', []],
    ['tunnelled', ['--p2p', '--tunnelled']],
  ] as const)('%s: the destination ferryd killed mid-stream and left down ends the command with a clear error; the guest keeps running on the source', async (_mode, flags) => {
    const [A, B] = cluster.hosts as [ClusterHost, ClusterHost];
    const s = await migrateSlowly(A, B, [...flags]);
    try {
      await B.d.kill9();
      const { result } = await endsWithinBound(s.migration, Date.now());
      expect(result.code).not.toBe(0);
      expect(result.json?.error?.code).toBe('operation_failed');
      expect(result.json?.error?.message).toMatch(/lost the connection to the destination host/);
      expect(result.json?.error?.message).toMatch(/keeps running on the source/);
      await stillRunsOnSource(A, s);
      // Restarted later, the destination has nothing of the guest.
      await B.d.restart();
      expect((await B.ferry(['domstate', s.name])).code).not.toBe(0);
    } finally {
      await tidyCluster(cluster, s.uuid);
    }
  }, 180_000);

  it('storage copy: the destination ferryd killed while the disk is copied; no QEMU is left waiting there', async () => {
    const [A, B] = cluster.hosts as [ClusterHost, ClusterHost];
    const s = await migrateSlowly(A, B, ['--p2p'], { disk: true });
    try {
      await B.d.kill9();
      const { result } = await endsWithinBound(s.migration, Date.now());
      expect(result.code).not.toBe(0);
      expect(result.json?.error?.message).toMatch(/lost the connection to the destination host/);
      await stillRunsOnSource(A, s);
    } finally {
      await tidyCluster(cluster, s.uuid);
    }
  }, 180_000);

  it.each([
    ['peer-to-peer', ['--p2p']],
    ['managed', []],
  ] as const)('%s: the link cut mid-stream and left down ends the command within the keepalive bound; the destination drops its incoming QEMU', async (_mode, flags) => {
    const [A, B] = cluster.hosts as [ClusterHost, ClusterHost];
    const s = await migrateSlowly(A, B, [...flags]);
    try {
      cluster.setLink(A, false);
      const { result } = await endsWithinBound(s.migration, Date.now());
      expect(result.code).not.toBe(0);
      expect(result.json?.error?.code).toBeTruthy();
      // The destination (still up, reached on its own socket) noticed the silent peer and removed its copy.
      await waitFor('the destination to drop its incoming copy', async () => (await B.ferry(['domstate', s.name])).code !== 0, BOUND_MS + SLACK_MS);
      await stillRunsOnSource(A, s);
    } finally {
      cluster.setLink(A, true);
      await tidyCluster(cluster, s.uuid);
    }
  }, 180_000);

  it('managed: the source ferryd killed mid-stream and left down; the destination does not keep an incoming QEMU', async () => {
    const [A, B] = cluster.hosts as [ClusterHost, ClusterHost];
    const s = await migrateSlowly(A, B, []);
    try {
      await A.d.kill9();
      const { result } = await endsWithinBound(s.migration, Date.now());
      expect(result.code).not.toBe(0);
      expect(result.json?.error?.code).toBeTruthy();
      await waitFor('the destination to drop its incoming copy', async () => (await B.ferry(['domstate', s.name])).code !== 0, BOUND_MS + SLACK_MS);
      // The source's QEMU outlives its daemon and keeps the guest; a restarted ferryd finds it running.
      await A.d.restart();
      await stillRunsOnSource(A, s);
    } finally {
      await tidyCluster(cluster, s.uuid);
    }
  }, 180_000);
});

describe.runIf(netnsAvailable())('jobs whose other end is gone end, and give the domain back', () => {
  it('managed: the destination ferryd killed inside finish leaves an unknown outcome: the command says what to check, the source job ends with the guest paused, and resume works', async () => {
    const [A, B] = cluster.hosts as [ClusterHost, ClusterHost];
    writeFileSync(join(B.d.runDir, 'test-hold'), 'dest-finishing\n');
    const marker = join(B.d.runDir, 'held-dest-finishing');
    const s = await migrateSlowly(A, B, [], { bandwidth: '1000', notStreaming: true });
    try {
      await waitFor('finish to hold on the destination', () => existsSync(marker), 60_000, 50);
      rmSync(join(B.d.runDir, 'test-hold'), { force: true });
      await B.d.kill9();
      const r = await s.migration;
      expect(r.code).toBe(1);
      expect(r.json?.error?.code).toBe('operation_failed');
      expect(r.json?.error?.message).toMatch(/outcome of migrating .* is unknown/);
      expect(r.json?.error?.message).toMatch(/ferry list/);
      // The source's job is over: no job holds the domain, the guest waits paused, and the user may resume it.
      expect((await A.ferry(['domjobinfo', s.name], { json: true })).json?.type).toBe('None');
      expect((await A.ferry(['domjobinfo', '--completed', s.name], { json: true })).json?.errmsg).toMatch(/unknown/);
      expect((await A.ferry(['domstate', s.name])).stdout.trim()).toBe('paused');
      const resumed = await A.ferry(['resume', s.name], { json: true });
      expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0);
      rmSync(marker, { force: true });
      await B.d.restart();
      await stillRunsOnSource(A, s);
    } finally {
      rmSync(join(B.d.runDir, 'test-hold'), { force: true });
      rmSync(marker, { force: true });
      await tidyCluster(cluster, s.uuid);
    }
  }, 180_000);

  it('managed: a client that goes away while its migration waits in the queue takes the job out of the queue', async () => {
    const [A, B] = cluster.hosts as [ClusterHost, ClusterHost];
    // The one outgoing slot is taken by a slow migration.
    const first = await migrateSlowly(A, B, ['--p2p']);
    const second = `pl-q-${randomUUID().slice(0, 8)}`;
    const xml = writeXml(second, { name: second, cmdline: 'ws=8 rate=5 hb=200' });
    expect((await A.ferry(['define', xml])).code).toBe(0);
    expect((await A.ferry(['start', second])).code).toBe(0);
    const client = await ApiClient.connect(A.d.uri);
    try {
      // A managing client begins the second migration: it waits for the slot.
      const begin = client.call('migration.begin', { domain: second, flags: 1, params: {}, destUri: B.tcpUri }, { timeoutMs: 0 }).catch(() => undefined);
      await waitFor('the second job to be queued', async () => (await A.ferry(['domjobinfo', second], { json: true })).json?.queue_position === 1, 20_000);
      client.close();
      await begin;
      // The job leaves the queue with its client: no job is left on the domain, which any command may change again.
      await waitFor('the queued job to go', async () => (await A.ferry(['domjobinfo', second], { json: true })).json?.type === 'None', 10_000);
      expect((await A.ferry(['suspend', second])).code).toBe(0);
      expect((await A.ferry(['domstate', second])).stdout.trim()).toBe('paused');
    } finally {
      client.close();
      await A.ferry(['domjobabort', first.name]);
      await first.migration;
      await tidyCluster(cluster, first.uuid);
    }
  }, 180_000);
});

describe.runIf(netnsAvailable())('keepalive options', () => {
  it('ferry -k/-K take virsh’s keepalive options: 0 turns keepalive off, a bad value is an invalid_arg naming the option', async () => {
    const [A] = cluster.hosts as [ClusterHost];
    expect((await A.ferry(['-k', '0', 'list', '--all'])).code).toBe(0);
    expect((await A.ferry(['-k', '2', '-K', '4', 'list', '--all'])).code).toBe(0);
    const bad = await A.ferry(['-k', 'soon', 'list'], { json: true });
    expect(bad.code).toBe(1);
    expect(bad.json?.error?.code).toBe('invalid_arg');
    expect(bad.json?.error?.message).toMatch(/--keepalive-interval expects whole seconds/);
    const none = await A.ferry(['-K', '0', 'list'], { json: true });
    expect(none.json?.error?.message).toMatch(/--keepalive-count expects a whole number from 1/);
  });
});
