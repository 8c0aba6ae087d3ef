/**
 * Many migrations at once: eight guests from one host to another, guests
 * crossing in both directions, and the per-host limit that queues the
 * excess (visible in domjobinfo, abortable). Hosts are network namespaces
 * on one bridge, each link shaped to 1 Gbit/s.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCluster, type Cluster, type ClusterHost } from '../support/cluster.js';
import { makeTempDir, resetDaemons, useDaemonCleanup, waitFor, type CliResult } from '../support/daemon.js';
import { ApiClient } from '../../src/api/client.js';
import { serialLogFile, testGuestXml, waitForHeartbeat } from '../support/guest-xml.js';
import { netnsAvailable } from '../support/netns.js';
import { checkMigrationContinuity } from '../support/serial.js';

let cluster: Cluster;
let A: ClusterHost;
let B: ClusterHost;
let dir: string;

useDaemonCleanup(() => resetDaemons([A?.d, B?.d]));

beforeAll(async () => {
  dir = makeTempDir('ferry-conc-');
  cluster = await createCluster({ prefix: `fc${process.pid % 10000}`, subnet: 71, hosts: 2, rate: '1gbit', extraArgs: ['--max-outgoing-migrations', '2', '--max-incoming-migrations', '2'] });
  [A, B] = cluster.hosts as [ClusterHost, ClusterHost];
});

afterAll(async () => {
  await cluster?.destroy();
});

/** Small guests: 64 MiB + 4 KiB, rewriting 2 MiB/s. */
async function startGuests(h: ClusterHost, names: string[]): Promise<void> {
  for (const name of names) {
    const xml = join(dir, `${name}.xml`);
    writeFileSync(xml, testGuestXml({ name, memoryKiB: 65540, cmdline: 'ws=8 rate=2 hb=200' }));
    const r = await h.ferry(['create', xml]);
    expect(r.code, r.stderr).toBe(0);
  }
  for (const name of names) await waitForHeartbeat(h.d.uri, name, (log) => (log.lastHeartbeat?.counter ?? 0) >= 2, 60_000);
}

function migrate(from: ClusterHost, to: ClusterHost, name: string, extra: string[] = []): Promise<CliResult> {
  return from.ferry(['migrate', '--live', '--p2p', ...extra, name, to.tcpUri], { json: true, timeoutMs: 240_000 });
}

async function checkArrived(from: ClusterHost, to: ClusterHost, name: string): Promise<void> {
  await waitForHeartbeat(to.d.uri, name, (log) => log.heartbeats.length >= 2, 30_000);
  const c = checkMigrationContinuity(serialLogFile(from.d.stateDir, name).text, serialLogFile(to.d.stateDir, name).text);
  expect(c.problems, name).toEqual([]);
}

describe.runIf(netnsAvailable())('concurrent migrations', () => {
  it('eight guests migrate from A to B at once: two run, the others queue (visible), all arrive intact', async () => {
    const names = Array.from({ length: 8 }, (_, i) => `cc${i + 1}`);
    await startGuests(A, names);
    const runs = names.map((n) => migrate(A, B, n));
    // While the first ones run, the queue shows in domjobinfo (asked in-process: a CLI per question is too slow to catch it).
    const c = await ApiClient.connect(A.d.uri);
    let seen: { n: string; position: number };
    try {
      seen = await waitFor(
        'a migration queued in domjobinfo',
        async () => {
          for (const n of names) {
            const info = await c.call('domain.jobInfo', { domain: n }).catch(() => null);
            if ((info?.queue_position ?? 0) >= 1) return { n, position: info!.queue_position! };
          }
          return undefined;
        },
        60_000,
        20,
      );
    } finally {
      c.close();
    }
    expect(seen.position).toBeGreaterThanOrEqual(1);
    const results = await Promise.all(runs);
    for (const [i, r] of results.entries()) expect(r.json?.error, `${names[i]}: ${JSON.stringify(r.json)}`).toBeUndefined();
    for (const n of names) await checkArrived(A, B, n);
    // The daemon says how many had to wait: with two slots and eight at once, some did.
    expect((A.d.stderr().match(/queued at position/g) ?? []).length).toBeGreaterThanOrEqual(1);
    expect((await A.ferry(['list', '--name'])).stdout.trim()).toBe('');
    expect((await B.ferry(['list', '--name'])).stdout.trim().split('\n').sort()).toEqual([...names].sort());
  }, 300_000);

  it('migrations crossing A->B and B->A at the same time all complete', async () => {
    await startGuests(A, ['xa1', 'xa2']);
    await startGuests(B, ['xb1', 'xb2']);
    const results = await Promise.all([migrate(A, B, 'xa1'), migrate(B, A, 'xb1'), migrate(A, B, 'xa2'), migrate(B, A, 'xb2')]);
    for (const r of results) expect(r.json?.error, JSON.stringify(r.json)).toBeUndefined();
    await checkArrived(A, B, 'xa1');
    await checkArrived(A, B, 'xa2');
    await checkArrived(B, A, 'xb1');
    await checkArrived(B, A, 'xb2');
  }, 300_000);

  it('a queued migration can be aborted: it leaves the queue and the guest stays where it runs', async () => {
    await startGuests(A, ['qa1', 'qa2', 'qa3']);
    // Slow migrations (8 MiB/s), so that the third one waits long enough.
    const r1 = migrate(A, B, 'qa1', ['--bandwidth', '8']);
    const r2 = migrate(A, B, 'qa2', ['--bandwidth', '8']);
    // qa3 comes third: once qa1 and qa2 hold the two slots (copying, not queued).
    const copying = async (n: string) => {
      const info = (await A.ferry(['domjobinfo', n], { json: true })).json;
      return info?.type === 'Unbounded' && (info.queue_position ?? 0) === 0;
    };
    await waitFor('qa1 and qa2 to take the two slots', async () => (await copying('qa1')) && (await copying('qa2')), 30_000, 50);
    const r3 = migrate(A, B, 'qa3', ['--bandwidth', '8']);
    await waitFor('qa3 to queue', async () => ((await A.ferry(['domjobinfo', 'qa3'], { json: true })).json?.queue_position ?? 0) >= 1, 30_000, 50);
    const abort = await A.ferry(['domjobabort', 'qa3']);
    expect(abort.code, abort.stderr).toBe(0);
    const third = await r3;
    expect(third.json?.error?.code).toBe('operation_aborted');
    expect((await A.ferry(['domstate', 'qa3'])).stdout.trim()).toBe('running');
    for (const r of await Promise.all([r1, r2])) expect(r.json?.error, JSON.stringify(r.json)).toBeUndefined();
    // With the slot free again, qa3 migrates.
    const again = await migrate(A, B, 'qa3');
    expect(again.json?.error, JSON.stringify(again.json)).toBeUndefined();
    await checkArrived(A, B, 'qa3');
  }, 300_000);
});
