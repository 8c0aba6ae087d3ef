/**
 * cli-start: how long the `ferry` CLI takes to start, against the floor of
 * any Node program (`node -e 0`), on this machine: `ferry --version`,
 * `ferry list` and `ferry list --all` against a ferryd of our own (unix
 * socket, no QEMU needed) holding 100 defined guests. Interleaved (each
 * round runs every contender once, in a rotating order), 20 rounds;
 * medians and the difference to `node -e 0`. Light: no root, no libvirtd
 * (bench/list-compare.ts compares with virsh against libvirtd).
 *
 * With `--baseline DIR`, the same commands of another build
 * (DIR/dist/cli/main.js, e.g. a checkout of an older commit) join the
 * same rounds, so that before and after are measured together.
 *
 *   npx tsx bench/cli-start.ts [--runs 20] [--guests 100] [--baseline DIR]
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../src/api/client.js';
import { testGuestXml } from '../test/support/guest-xml.js';
import { startFerryd } from './ferryd.js';
import { CLI, ROOT, argInt, argValue, buildInfo, fmtSummary, machineInfo, markdownTable, median, onCleanup, requireBuild, rmTree, rotate, runMain, summarize, timedRun, useDistSnapshot, writeResults } from './lib.js';

const RUNS = argInt('runs', 20);
const GUESTS = argInt('guests', 100);
const BASELINE = argValue('baseline');

runMain(async () => {
  requireBuild(false);
  await useDistSnapshot();
  const machine = machineInfo();
  const work = mkdtempSync(join(tmpdir(), 'ferry-clistart-'));
  onCleanup('temp dir', () => rmTree(work));
  const f = await startFerryd({ dir: join(work, 'ferry'), hostName: 'cli-start' });
  onCleanup('ferryd', () => f.stop());
  const c = await ApiClient.connect(f.unixUri);
  for (let i = 0; i < GUESTS; i++) await c.call('domain.define', { xml: testGuestXml({ name: `list-${i}`, uuid: randomUUID() }) });
  c.close();
  const node = 'node -e 0 (Node start floor)';
  const ferry = (cli: string, tag: string): Record<string, string[]> => ({
    [`ferry --version${tag}`]: [cli, '--version'],
    [`ferry list (unix socket)${tag}`]: [cli, '-c', f.unixUri, 'list'],
    [`ferry list --all (unix socket, ${GUESTS} guests)${tag}`]: [cli, '-c', f.unixUri, 'list', '--all'],
  });
  const contenders: Record<string, string[]> = {
    [node]: ['-e', '0'],
    ...ferry(CLI, ''),
    ...(BASELINE ? ferry(join(BASELINE, 'dist', 'cli', 'main.js'), ' [baseline]') : {}),
  };
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  for (let run = 0; run < RUNS; run++) {
    for (const k of rotate(Object.keys(contenders), run)) {
      const r = await timedRun(process.execPath, contenders[k]!, { cwd: ROOT, timeoutMs: 60_000 });
      if (r.code !== 0) throw new Error(`${k}: ${r.stderr}`);
      if (k.includes('--all') && r.stdout.split('\n').filter((l) => /list-\d+/.test(l)).length !== GUESTS) throw new Error(`${k} did not list ${GUESTS} guests`);
      times[k]!.push(r.ms);
    }
  }
  const floor = median(times[node]!);
  const rows = Object.entries(times).map(([k, xs]) => [k, fmtSummary(summarize(xs), 1), k === node ? '' : `+${(median(xs) - floor).toFixed(1)}`]);
  process.stdout.write(
    `## CLI start (${RUNS} interleaved rounds; medians (min-max), ms)\n\n${markdownTable(['command', 'wall ms', 'vs node -e 0'], rows)}\n\n` +
      `load average ${(machine.loadavg as number[]).map((x) => x.toFixed(2)).join(' ')} at the start, ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} at the end\n`,
  );
  writeResults('cli-start', { machine, build: buildInfo(), baseline: BASELINE ?? null, loadavgAtEnd: os.loadavg(), runs: RUNS, guests: GUESTS, times });
});
