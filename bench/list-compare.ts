/**
 * list-compare: `ferry list --all` against `virsh list --all`, each daemon
 * holding 100 defined (inactive) test guests, on host 1 of
 * bench/libvirt/hosts.sh; and the same `virsh list --all` against ferryd,
 * which serves libvirt's protocol on `--libvirt-listen-tcp` (issue 12).
 * Alternated, 20 runs each; with the start-up floor of each CLI
 * (`--version`) and Node's own (`node -e 0`) measured in the same rounds,
 * and each median's difference to `node -e 0`. Every list run must show
 * all the guests.
 *
 *   npx tsx bench/list-compare.ts [--runs 20] [--guests 100]
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../src/api/client.js';
import { inNetns } from '../test/support/netns.js';
import { testGuestXml } from '../test/support/guest-xml.js';
import { ADDR, FERRYD_LIBVIRT_PORT, FERRYD_LV_URI } from './bench-hosts.js';
import { startFerryd } from './ferryd.js';
import { CLI, ROOT, argInt, buildInfo, fmtSummary, machineInfo, markdownTable, median, onCleanup, requireBuild, rmTree, rotate, runMain, summarize, timedRun, useDistSnapshot, vmRssKiB, writeResults } from './lib.js';

const RUNS = argInt('runs', 20);
const GUESTS = argInt('guests', 100);
const NS = 'lvb-h1';
const LV = 'qemu+tcp://10.203.0.1/system';
const NODE = 'node -e 0 (Node start floor)';
const VIRSH_LIST = 'virsh list --all (qemu+tcp)';
const FERRY_LIST = 'ferry list --all (unix socket)';

runMain(async () => {
  requireBuild(true);
  await useDistSnapshot();
  const machine = machineInfo();
  execFileSync('bash', [join(ROOT, 'bench', 'libvirt', 'hosts.sh'), 'start'], { stdio: 'inherit' });
  onCleanup('libvirt hosts', () => execFileSync('bash', [join(ROOT, 'bench', 'libvirt', 'hosts.sh'), 'stop'], { stdio: 'ignore' }));
  const work = mkdtempSync(join(tmpdir(), 'ferry-listcmp-'));
  onCleanup('temp dir', () => rmTree(work));
  const f = await startFerryd({ dir: join(work, 'ferry'), hostName: 'list-a', netns: NS, listenTcp: '10.203.0.1:16609', libvirtTcp: `${ADDR[0]}:${FERRYD_LIBVIRT_PORT}` });
  onCleanup('ferryd', () => f.stop());
  const rssIdle = vmRssKiB(f.pid);
  const c = await ApiClient.connect(f.unixUri);
  for (let i = 0; i < GUESTS; i++) {
    const xml = testGuestXml({ name: `list-${i}`, uuid: randomUUID() });
    await c.call('domain.define', { xml });
    const file = join(work, `lv-${i}.xml`);
    writeFileSync(file, xml.replace(`<name>list-${i}</name>`, `<name>lv-list-${i}</name>`));
    const r = await timedRun(...cmd(['virsh', '-q', '-c', LV, 'define', file]));
    if (r.code !== 0) throw new Error(`virsh define: ${r.stderr}`);
  }
  c.close();
  const rss100 = vmRssKiB(f.pid);
  const contenders: Record<string, string[]> = {
    [VIRSH_LIST]: ['virsh', '-q', '-c', LV, 'list', '--all'],
    'virsh list --all against ferryd (qemu+tcp)': ['virsh', '-q', '-c', FERRYD_LV_URI[0]!, 'list', '--all'],
    [FERRY_LIST]: [process.execPath, CLI, '-c', f.unixUri, 'list', '--all'],
    'ferry list --all (ferry+tcp)': [process.execPath, CLI, '-c', 'ferry+tcp://10.203.0.1:16609/system', 'list', '--all'],
    'virsh --version (CLI start floor)': ['virsh', '--version'],
    'ferry --version (CLI start floor)': [process.execPath, CLI, '--version'],
    [NODE]: [process.execPath, '-e', '0'],
  };
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
  for (let run = 0; run < RUNS; run++) {
    for (const k of rotate(Object.keys(contenders), run)) {
      const r = await timedRun(...cmd(contenders[k]!));
      if (r.code !== 0) throw new Error(`${k}: ${r.stderr}`);
      if (k.includes('list') && r.stdout.split('\n').filter((l) => /list-\d+/.test(l)).length !== GUESTS) throw new Error(`${k} did not list ${GUESTS} guests`);
      times[k]!.push(r.ms);
    }
  }
  const floor = median(times[NODE]!);
  const rows = Object.entries(times).map(([k, xs]) => [k, fmtSummary(summarize(xs)), k === NODE ? '' : `${median(xs) - floor >= 0 ? '+' : ''}${(median(xs) - floor).toFixed(1)}`]);
  const ratio = median(times[FERRY_LIST]!) / median(times[VIRSH_LIST]!);
  process.stdout.write(
    `## list with ${GUESTS} defined guests (${RUNS} alternated runs; medians (min-max), ms)\n\n${markdownTable(['command', 'wall ms', 'vs node -e 0'], rows)}\n\n` +
      `ferry list --all / virsh list --all (medians): ${ratio.toFixed(2)}; node -e 0 / virsh list --all: ${(floor / median(times[VIRSH_LIST]!)).toFixed(2)}\n` +
      `ferryd VmRSS: ${(rssIdle / 1024).toFixed(1)} MiB idle, ${(rss100 / 1024).toFixed(1)} MiB with ${GUESTS} guests defined; load average ${(machine.loadavg as number[]).map((x) => x.toFixed(2)).join(' ')} at the start, ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} at the end\n`,
  );
  writeResults('list-compare', { machine, build: buildInfo(), loadavgAtEnd: os.loadavg(), runs: RUNS, guests: GUESTS, times, ferryOverVirshList: ratio, rssIdleKiB: rssIdle, rss100KiB: rss100 });
});

function cmd(argv: string[]): [string, string[], { cwd: string; timeoutMs: number }] {
  const c = inNetns(NS, argv);
  return [c.file, c.args, { cwd: ROOT, timeoutMs: 60_000 }];
}
