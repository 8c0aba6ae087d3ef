/**
 * Runs the fault matrix (every mode x victim x moment, or a selection) on
 * a fresh two-host cluster and writes the results: test/matrix/results.json
 * and the table in docs/fault-matrix.md.
 *
 *   npx tsx test/matrix/run.ts                       # everything (about 40 min on 2 cores)
 *   npx tsx test/matrix/run.ts --mode p2p --victim link
 *   npx tsx test/matrix/run.ts --resume               # skip cells already in results.json
 *   npx tsx test/matrix/run.ts --rerun-broken         # run again only the cells that did not hold
 *
 * Needs root (network namespaces, tmpfs) and a built tree (npm run build).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createCluster } from '../support/cluster.js';
import { cleanupAll, makeTempDir, REPO_ROOT } from '../support/daemon.js';
import { MATRIX_KEEPALIVE, MODES, MOMENTS, VICTIMS, readResults, runCell, type CellResult, type Mode, type Moment, type Victim } from './cell.js';
import { renderMatrixDoc } from './doc.js';

const { values } = parseArgs({
  options: {
    mode: { type: 'string', multiple: true },
    victim: { type: 'string', multiple: true },
    moment: { type: 'string', multiple: true },
    resume: { type: 'boolean', default: false },
    'rerun-broken': { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
    out: { type: 'string', default: join(REPO_ROOT, 'test', 'matrix', 'results.json') },
  },
});
const pick = <T extends string>(all: readonly T[], chosen: string[] | undefined): T[] => (chosen ? all.filter((x) => chosen.includes(x)) : [...all]);
const modes = pick<Mode>(MODES, values.mode);
const victims = pick<Victim>(VICTIMS, values.victim);
const moments = pick<Moment>(MOMENTS, values.moment);

const results = values.resume || values['rerun-broken'] ? readResults(values.out!) : [];
const key = (r: { mode: string; victim: string; moment: string }) => `${r.mode}/${r.victim}/${r.moment}`;
// --resume skips every cell already run; --rerun-broken runs again those that did not hold.
const done = new Set(results.filter((r) => values.resume || r.verdict !== 'broken').map(key));

const cluster = await createCluster({ prefix: `fm${process.pid % 10000}`, subnet: 90, hosts: 2, rate: '1gbit', env: { FERRY_TEST_HOOKS: '1' }, extraArgs: MATRIX_KEEPALIVE.daemonArgs });
const work = makeTempDir('ferry-matrix-');
const save = () => {
  writeFileSync(values.out!, `${JSON.stringify(results, null, 1)}\n`);
  writeFileSync(join(REPO_ROOT, 'docs', 'fault-matrix.md'), renderMatrixDoc(results));
};
try {
  for (const mode of modes) {
    for (const victim of victims) {
      for (const moment of moments) {
        const k = key({ mode, victim, moment });
        if (done.has(k)) continue;
        let r: CellResult;
        try {
          r = await runCell(cluster, mode, victim, moment, work);
        } catch (err) {
          r = { mode, victim, moment, verdict: 'broken', outcome: '?', reported: '?', problems: [`the cell itself failed: ${(err as Error).message.split('\n')[0]}`], ms: 0 };
        }
        const i = results.findIndex((x) => key(x) === k);
        if (i >= 0) results[i] = r;
        else results.push(r);
        process.stdout.write(`${k}: ${r.verdict} (${r.outcome}, ${r.reported}, ${(r.ms / 1000).toFixed(1)} s)${r.problems.length ? ` - ${r.problems.join('; ')}` : ''}\n`);
        save();
        if (values.verbose && r.verdict === 'broken') {
          for (const h of cluster.hosts) process.stdout.write(`--- ${h.name} log tail ---\n${h.d.stderr().split('\n').slice(-25).join('\n')}\n`);
        }
      }
    }
  }
} finally {
  await cluster.destroy();
  await cleanupAll();
}
const held = results.filter((r) => r.verdict === 'held').length;
const na = results.filter((r) => r.verdict === 'n/a').length;
process.stdout.write(`${results.length} cells: ${held} held, ${results.length - held - na} broken, ${na} not applicable\n`);
// Daemon handles of restarted hosts may keep timers alive: the run is over, so it ends here rather than linger.
process.exit(0);
