/**
 * A slice of the fault matrix (test/matrix/) in every test run: each
 * victim and each moment at least once, across the modes. The whole
 * matrix runs with `npx tsx test/matrix/run.ts` and writes
 * docs/fault-matrix.md.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCluster, type Cluster } from '../support/cluster.js';
import { makeTempDir, useDaemonCleanup } from '../support/daemon.js';
import { netnsAvailable } from '../support/netns.js';
import { MATRIX_KEEPALIVE, runCell, type Mode, type Moment, type Victim } from '../matrix/cell.js';

let cluster: Cluster;
let work: string;

useDaemonCleanup();

beforeAll(async () => {
  if (!netnsAvailable()) return;
  work = makeTempDir('ferry-fm-');
  cluster = await createCluster({ prefix: `fe${process.pid % 10000}`, subnet: 81, hosts: 2, rate: '1gbit', env: { FERRY_TEST_HOOKS: '1' }, extraArgs: MATRIX_KEEPALIVE.daemonArgs });
});

afterAll(async () => {
  await cluster?.destroy();
});

const CELLS: Array<[Mode, Victim, Moment]> = [
  ['p2p', 'user-abort', 'begin'],
  ['managed', 'source-ferryd', 'prepare'],
  ['p2p', 'source-qemu', 'early-perform'],
  ['p2p', 'source-ferryd', 'switch-over'],
  ['p2p', 'dest-qemu', 'switch-over'],
  ['managed', 'dest-ferryd', 'finish'],
  ['p2p', 'source-ferryd', 'confirm'],
  ['tunnelled', 'dest-ferryd', 'early-perform'],
  ['storage', 'dest-disk-full', 'early-perform'],
  ['postcopy', 'user-abort', 'early-perform'],
  // Post-copy after the switch: a cut link pauses the stream and the cell resumes it (recovered to D); a destination
  // ferryd killed before its finish resumed the guest takes the switched copy over when it restarts.
  ['postcopy', 'link', 'confirm'],
  ['postcopy', 'dest-ferryd', 'finish'],
  ['p2p', 'link', 'finish'],
  // Peer left down: nothing is restored until the command has ended by itself.
  ['p2p', 'dest-ferryd-down', 'early-perform'],
  ['managed', 'source-ferryd-down', 'early-perform'],
  ['storage', 'dest-ferryd-down', 'early-perform'],
  ['tunnelled', 'link-down', 'early-perform'],
  ['managed', 'dest-ferryd-down', 'finish'],
];

describe.runIf(netnsAvailable())('fault matrix (slice)', () => {
  it.each(CELLS)('%s, %s killed/broken at %s: the guest is on exactly one host, intact', async (mode, victim, moment) => {
    const r = await runCell(cluster, mode, victim, moment, work);
    expect(r.problems, `${mode}/${victim}/${moment} ended on ${r.outcome}, reported ${r.reported}`).toEqual([]);
    expect(r.verdict).toBe('held');
  }, 180_000);
});
