/**
 * Post-copy recovery (libvirt's POSTCOPY_RESUME, issue 14 item 1), on real
 * QEMU between two network-namespace hosts. A memory-writing guest is
 * migrated with `--postcopy --postcopy-after-precopy` and a slow post-copy
 * phase (`--postcopy-bandwidth 4`), so that it runs on the destination
 * while most of its rewritten pages are still on the source. Then the
 * stream breaks:
 *
 * - the link between the hosts is cut (p2p): the source notices that its
 *   stream sends nothing for the keepalive bound (1 s x 3 here) and pauses
 *   it; the command fails saying how to resume; the source's copy cannot be
 *   resumed by hand; the link comes back and `migrate --postcopy-resume`
 *   finishes the migration;
 * - `domjobabort --postcopy` pauses it on purpose (managed mode); plain
 *   `domjobabort` is refused; the source's ferryd is killed and restarted
 *   while it is paused; the resume still works.
 *
 * Each time the guest must end on the destination only, its heartbeat
 * continuing from the source's last count + 1 with no CORRUPT.
 */
import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCluster, tidyCluster, type Cluster, type ClusterHost } from '../support/cluster.js';
import { makeTempDir, qemuPidsMentioning, useDaemonCleanup, waitFor, type CliResult } from '../support/daemon.js';
import { serialLogFile, testGuestXml } from '../support/guest-xml.js';
import { netnsAvailable } from '../support/netns.js';
import { checkMigrationContinuity } from '../support/serial.js';
import { ApiClient } from '../../src/api/client.js';
import type { LifecycleEvent } from '../../src/api/protocol.js';

/** Daemons and CLI notice a silent peer after 1 s x 3; a post-copy stream silent that long is paused. */
const KEEPALIVE = ['--keepalive-interval', '1', '--keepalive-count', '3'];
const CLI_KEEPALIVE = ['-k', '1', '-K', '3'];
const POSTCOPY = ['--live', '--postcopy', '--postcopy-after-precopy', '--bandwidth', '32', '--postcopy-bandwidth', '4'];

let cluster: Cluster;
let work: string;

useDaemonCleanup();

beforeAll(async () => {
  if (!netnsAvailable()) return;
  work = makeTempDir('ferry-pc-resume-');
  cluster = await createCluster({ prefix: `pr${process.pid % 10000}`, subnet: 87, hosts: 2, rate: '1gbit', extraArgs: KEEPALIVE });
});

afterAll(async () => {
  await cluster?.destroy();
});

interface Guest {
  name: string;
  uuid: string;
}

async function startWritingGuest(A: ClusterHost): Promise<Guest> {
  const name = `pcr-${randomUUID().slice(0, 8)}`;
  const uuid = randomUUID();
  const xml = join(work, `${name}.xml`);
  writeFileSync(xml, testGuestXml({ name, uuid, cmdline: 'ws=64 rate=60 hb=200' }));
  expect((await A.ferry(['define', xml])).code).toBe(0);
  expect((await A.ferry(['start', name])).code).toBe(0);
  await waitFor('the guest to beat', () => (serialLogFile(A.d.stateDir, name).log.lastHeartbeat?.counter ?? 0) >= 3, 30_000);
  return { name, uuid };
}

async function stateOf(h: ClusterHost, name: string): Promise<string> {
  return (await h.ferry(['domstate', '--reason', name])).stdout.trim();
}

/** Waits until the guest runs on B in its post-copy phase (the source holds the rest of its memory). */
async function untilPostcopyOnB(B: ClusterHost, g: Guest, migration: Promise<CliResult>): Promise<void> {
  let ended: CliResult | undefined;
  void migration.then((r) => (ended = r));
  await waitFor('the guest to run on the destination in post-copy', async () => {
    if (ended) throw new Error(`the migration ended before its post-copy phase: ${ended.stderr}`);
    return (await stateOf(B, g.name)) === 'running (post-copy)' ? true : undefined;
  }, 90_000, 100);
}

/** The migration failed, paused, with a coded error that says how to resume it. */
function expectPausedFailure(r: CliResult): void {
  expect(r.code, r.stderr).not.toBe(0);
  expect(r.json?.error?.code).toBe('operation_failed');
  expect(r.json?.error?.message).toMatch(/post-copy migration of '[^']*' paused:/);
  expect(r.json?.error?.message).toMatch(/--postcopy-resume/);
}

/** The guest ends on B only, running, its memory intact and its heartbeat continuous across both hosts. */
async function endsOnDestination(A: ClusterHost, B: ClusterHost, g: Guest): Promise<void> {
  expect(await stateOf(B, g.name)).toBe('running (migrated)');
  expect(await stateOf(A, g.name)).toMatch(/^shut off/);
  const before = serialLogFile(B.d.stateDir, g.name).log.heartbeats.length;
  await waitFor('heartbeats on the destination', () => serialLogFile(B.d.stateDir, g.name).log.heartbeats.length >= before + 3, 30_000);
  const c = checkMigrationContinuity(serialLogFile(A.d.stateDir, g.name).text, serialLogFile(B.d.stateDir, g.name).text);
  expect(c.problems).toEqual([]);
  await waitFor('one QEMU of the guest', () => qemuPidsMentioning(g.uuid).length === 1, 15_000);
}


describe.runIf(netnsAvailable())('a post-copy migration whose stream breaks is paused and resumed (POSTCOPY_RESUME)', () => {
  it('p2p, link cut after the switch: paused within the bound, the source copy stays stopped, and --postcopy-resume finishes it once the link is back', async () => {
    const [A, B] = cluster.hosts as [ClusterHost, ClusterHost];
    const g = await startWritingGuest(A);
    try {
      const migration = A.ferry([...CLI_KEEPALIVE, 'migrate', ...POSTCOPY, '--p2p', g.name, B.tcpUri], { json: true, timeoutMs: 180_000 });
      await untilPostcopyOnB(B, g, migration);
      const cutAt = Date.now();
      cluster.setLink(A, false);
      const failed = await migration;
      const pausedAfterMs = Date.now() - cutAt;
      expectPausedFailure(failed);
      console.log(`link cut: the command ended ${pausedAfterMs} ms after the cut`);

      // The source reports the paused migration, and refuses to run its stale copy.
      expect(await stateOf(A, g.name)).toBe('paused (post-copy failed)');
      const job = await A.ferry(['domjobinfo', g.name], { json: true });
      expect(job.json?.type).toBe('Unbounded');
      expect(job.json?.phase).toBe('postcopy-paused');
      const resume = await A.ferry(['resume', g.name], { json: true });
      expect(resume.code).not.toBe(0);
      expect(resume.json?.error?.code).toBe('operation_invalid');

      cluster.setLink(A, true);
      const backAt = Date.now();
      // A plain migration of the paused guest is refused: only a resume may move it on.
      const again = await A.ferry(['migrate', '--live', '--p2p', g.name, B.tcpUri], { json: true });
      expect(again.json?.error?.code).toBe('operation_invalid');
      expect(again.json?.error?.message).toMatch(/--postcopy-resume/);
      const resumeAt = Date.now();
      const beatsBefore = serialLogFile(B.d.stateDir, g.name).log.heartbeats.length;
      const resuming = A.ferry([...CLI_KEEPALIVE, 'migrate', ...POSTCOPY.filter((x) => x !== '--postcopy-after-precopy'), '--postcopy-resume', '--p2p', g.name, B.tcpUri], { json: true, timeoutMs: 180_000 });
      let resumeEnded: CliResult | undefined;
      void resuming.then((r) => (resumeEnded = r));
      const qlog = (h: ClusterHost) => execFileSync('sh', ['-c', `tail -c 3000 ${h.d.stateDir}/log/*.qemu.log 2>&1 || true`], { encoding: 'utf8' });
      const logs = () => `\nA: ${A.d.stderr().slice(-3000)}\nB: ${B.d.stderr().slice(-3000)}\nQEMU A: ${qlog(A)}\nQEMU B: ${qlog(B)}`;
      // Reconnected: the source's stream is back in its post-copy phase (or already done).
      await waitFor('the stream to be reconnected', async () => {
        if (resumeEnded && resumeEnded.code !== 0) throw new Error(`the resume failed: ${resumeEnded.stdout}${resumeEnded.stderr}${logs()}`);
        const st = await stateOf(A, g.name);
        return st === 'paused (post-copy)' || st.startsWith('shut off') ? true : undefined;
      }, 60_000, 50);
      const reconnectedMs = Date.now() - resumeAt;
      const resumed = await resuming;
      expect(resumed.code, `${resumed.stderr}${resumed.stdout}${logs()}`).toBe(0);
      await waitFor('a heartbeat on the destination after the resume', () => serialLogFile(B.d.stateDir, g.name).log.heartbeats.length > beatsBefore, 30_000, 50);
      console.log(`link back: resume command started ${resumeAt - backAt} ms later; stream reconnected ${reconnectedMs} ms after it; the command ended ${Date.now() - resumeAt} ms after it (the rest of the post-copy stream at 4 MiB/s included)`);
      await endsOnDestination(A, B, g);
    } finally {
      cluster.setLink(A, true);
      await tidyCluster(cluster, g.uuid);
    }
  }, 300_000);

  it('managed: domjobabort --postcopy pauses on purpose (plain domjobabort is refused), the source ferryd restarts while paused, and the resume finishes it', async () => {
    const [A, B] = cluster.hosts as [ClusterHost, ClusterHost];
    const g = await startWritingGuest(A);
    try {
      const migration = A.ferry([...CLI_KEEPALIVE, 'migrate', ...POSTCOPY, g.name, B.tcpUri], { json: true, timeoutMs: 180_000 });
      await untilPostcopyOnB(B, g, migration);
      // The pause is announced on both hosts as libvirt's lifecycle events (SUSPENDED/RESUMED, detail postcopy failed).
      const subA = await ApiClient.connect(A.d.uri);
      const subB = await ApiClient.connect(B.d.uri);
      const events: string[] = [];
      for (const [host, sub] of [['A', subA], ['B', subB]] as const) {
        sub.on('event', (n: string, e: LifecycleEvent) => void (n === 'domain.lifecycle' && e.domain === g.name && events.push(`${host} ${e.kind} ${e.detail}`)));
        await sub.call('events.subscribe', {});
      }
      const plain = await A.ferry(['domjobabort', g.name], { json: true });
      expect(plain.json?.error?.code).toBe('operation_invalid');
      expect(plain.json?.error?.message).toMatch(/post-copy/);
      const pause = await A.ferry(['domjobabort', '--postcopy', g.name], { json: true });
      expect(pause.code, pause.stderr).toBe(0);
      expectPausedFailure(await migration);
      // The link is up: the destination sees its stream end and pauses too.
      await waitFor('the destination to report the paused post-copy', async () => ((await stateOf(B, g.name)) === 'running (post-copy failed)' ? true : undefined), 30_000, 200);
      const destJob = await B.ferry(['domjobinfo', g.name], { json: true });
      expect(destJob.json?.phase).toBe('postcopy-paused');
      await waitFor('the lifecycle events', () => events.includes('A suspended postcopy failed') && events.includes('B resumed postcopy failed'), 10_000, 50);
      subA.close();
      subB.close();

      await A.d.kill9();
      await A.d.restart();
      expect(await stateOf(A, g.name)).toBe('paused (post-copy failed)');

      const resumed = await A.ferry([...CLI_KEEPALIVE, 'migrate', ...POSTCOPY.filter((x) => x !== '--postcopy-after-precopy'), '--postcopy-resume', g.name, B.tcpUri], { json: true, timeoutMs: 180_000 });
      expect(resumed.code, `${resumed.stderr}${resumed.stdout}`).toBe(0);
      await endsOnDestination(A, B, g);
    } finally {
      await tidyCluster(cluster, g.uuid);
    }
  }, 300_000);

  it('a resume with nothing to resume is refused before either host changes', async () => {
    const [A, B] = cluster.hosts as [ClusterHost, ClusterHost];
    const g = await startWritingGuest(A);
    try {
      const r = await A.ferry(['migrate', '--live', '--postcopy', '--postcopy-resume', '--p2p', g.name, B.tcpUri], { json: true });
      expect(r.json?.error?.code).toBe('operation_invalid');
      expect(r.json?.error?.message).toMatch(/no paused post-copy migration/);
      expect(await stateOf(A, g.name)).toBe('running (booted)');
      expect((await B.ferry(['list', '--all', '--name'])).stdout).not.toContain(g.name);
      const noPostcopy = await A.ferry(['migrate', '--live', '--postcopy-resume', g.name, B.tcpUri], { json: true });
      expect(noPostcopy.json?.error?.code).toBe('argument_unsupported');
    } finally {
      await tidyCluster(cluster, g.uuid);
    }
  }, 120_000);
});
