/**
 * daemon-basics: what one idle ferryd costs and how fast the CLI answers.
 *
 * - ferryd VmRSS idle with 0 domains, after defining 100 (not started)
 *   domains, and after the `list` runs;
 * - `ferry list --all` wall time (the whole CLI process) with 0 and 100
 *   domains, next to baselines measured in the same phase: `node -e ''`
 *   (the floor of any Node CLI) and `ferry --version` (CLI start without
 *   connecting). Contenders alternate run by run.
 *
 * Every process runs under /usr/bin/time (when installed) so that its CPU
 * time is recorded next to its wall time: on a shared machine CPU time is
 * the steadier figure. ferryd's own CPU time per `list` call comes from
 * /proc/PID/stat over each phase.
 *
 * Run: npx tsx bench/daemon-basics.ts [--runs 20] [--domains 100]
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testGuestXml } from '../test/support/guest-xml.js';
import { startFerryd } from './ferryd.js';
import {
  CLI,
  ROOT,
  argInt,
  fmtSummary,
  machineInfo,
  markdownTable,
  median,
  onCleanup,
  requireBuild,
  useDistSnapshot,
  rmTree,
  rotate,
  runMain,
  sleep,
  summarize,
  timedRun,
  vmRssKiB,
  procCpuMs,
  CPU_TIMES,
  writeResults,
  type Summary,
} from './lib.js';

const RUNS = argInt('runs', 20);
const DOMAINS = argInt('domains', 100);

interface Contender {
  key: 'node' | 'version' | 'list';
  label: string;
  args: (uri: string) => string[];
  check: (out: string, domains: number) => string | null;
}

const CONTENDERS: Contender[] = [
  { key: 'node', label: "`node -e ''` (floor of any Node CLI)", args: () => ['-e', ''], check: () => null },
  {
    key: 'version',
    label: '`ferry --version` (CLI start, no connection)',
    args: () => [CLI, '--version'],
    check: (out) => (/^\d+\.\d+\.\d+/.test(out.trim()) ? null : `unexpected output ${JSON.stringify(out)}`),
  },
  {
    key: 'list',
    label: '`ferry list --all`',
    args: (uri) => [CLI, '-c', uri, 'list', '--all'],
    check: (out, domains) => {
      // Header, rule, one row per domain (a trailing blank line is allowed).
      const rows = out.split('\n').filter((l) => /shut off/.test(l)).length;
      return rows === domains ? null : `expected ${domains} rows, got ${rows}`;
    },
  },
];

/** Median of a few VmRSS samples (Node's RSS moves with GC). */
async function sampleRss(pid: number, samples = 10, gapMs = 200): Promise<{ kib: number; min: number; max: number; samples: number[] }> {
  const xs: number[] = [];
  for (let i = 0; i < samples; i++) {
    xs.push(vmRssKiB(pid));
    if (i < samples - 1) await sleep(gapMs);
  }
  return { kib: median(xs), min: Math.min(...xs), max: Math.max(...xs), samples: xs };
}

interface PhaseResult {
  wall: Summary;
  cpu: Summary;
  wallRuns: number[];
  cpuRuns: number[];
}

/** Runs every contender RUNS times, alternating (the first contender rotates each round). */
async function latencyPhase(uri: string, domains: number, ferrydPid: number): Promise<{ byKey: Record<Contender['key'], PhaseResult>; ferrydCpuPerListMs: number }> {
  const wall: Record<string, number[]> = { node: [], version: [], list: [] };
  const cpu: Record<string, number[]> = { node: [], version: [], list: [] };
  const once = async (c: Contender): Promise<{ ms: number; cpuMs?: number }> => {
    const r = await timedRun(process.execPath, c.args(uri), { timeoutMs: 30_000, cpu: true });
    if (r.code !== 0) throw new Error(`${c.label} exited with ${r.code ?? r.signal}: ${r.stderr.trim()}`);
    const problem = c.check(r.stdout, domains);
    if (problem) throw new Error(`${c.label}: ${problem}`);
    return r;
  };
  // Warm-up (file cache, first connection), not counted.
  for (const c of CONTENDERS) await once(c);
  // Only `list` talks to ferryd: its CPU time over the phase, per list call.
  const cpu0 = procCpuMs(ferrydPid);
  for (let i = 0; i < RUNS; i++) {
    for (const c of rotate(CONTENDERS, i)) {
      const r = await once(c);
      wall[c.key]!.push(r.ms);
      if (r.cpuMs !== undefined) cpu[c.key]!.push(r.cpuMs);
    }
  }
  const ferrydCpuPerListMs = (procCpuMs(ferrydPid) - cpu0) / RUNS;
  const byKey = {} as Record<Contender['key'], PhaseResult>;
  for (const c of CONTENDERS) byKey[c.key] = { wall: summarize(wall[c.key]!), cpu: summarize(cpu[c.key]!), wallRuns: wall[c.key]!, cpuRuns: cpu[c.key]! };
  return { byKey, ferrydCpuPerListMs };
}

/** Imports modules one after the other in a fresh Node process and prints each one's CPU and wall time. */
const IMPORT_SCRIPT = `
const out = [];
for (const m of JSON.parse(process.argv[1])) {
  const c = process.cpuUsage();
  const t = performance.now();
  await import(m.spec);
  const d = process.cpuUsage(c);
  out.push({ label: m.label, cpuMs: (d.user + d.system) / 1000, wallMs: performance.now() - t });
}
console.log(JSON.stringify(out));
`;

/**
 * Where `ferry --version`'s start-up goes: in fresh processes, the import of
 * commander, then @xmldom/xmldom. (Ferry's own CLI modules are one bundle
 * since issue 17, dist/cli/ferry.js, loaded by dist/cli/main.js: see
 * bench/cli-start.ts for what the CLI costs over `node -e 0`.)
 */
async function importCosts(runs: number): Promise<Record<string, { cpu: Summary; wall: Summary }>> {
  const mods = [
    { label: 'commander', spec: 'commander' },
    { label: '@xmldom/xmldom', spec: '@xmldom/xmldom' },
  ];
  const acc: Record<string, { cpu: number[]; wall: number[] }> = {};
  for (let i = 0; i < runs; i++) {
    // Bare specifiers resolve from the working directory: the checkout, like the CLI's own.
    const r = await timedRun(process.execPath, ['--input-type=module', '-e', IMPORT_SCRIPT, JSON.stringify(mods)], { cwd: ROOT, timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`import cost probe failed: ${r.stderr.trim()}`);
    const per: Record<string, { cpu: number; wall: number }> = {};
    for (const x of JSON.parse(r.stdout) as Array<{ label: string; cpuMs: number; wallMs: number }>) {
      const e = (per[x.label] ??= { cpu: 0, wall: 0 });
      e.cpu += x.cpuMs;
      e.wall += x.wallMs;
    }
    for (const [label, v] of Object.entries(per)) {
      const a = (acc[label] ??= { cpu: [], wall: [] });
      a.cpu.push(v.cpu);
      a.wall.push(v.wall);
    }
  }
  const out: Record<string, { cpu: Summary; wall: Summary }> = {};
  for (const [label, a] of Object.entries(acc)) out[label] = { cpu: summarize(a.cpu), wall: summarize(a.wall) };
  return out;
}

/** The test guest (test/support/guest-xml.ts), small and idle: only its definition is measured. */
function domainXml(i: number): string {
  return testGuestXml({ name: `bench-dom-${String(i).padStart(3, '0')}`, memoryKiB: 16388, cmdline: 'ws=1 rate=0 hb=500' });
}

async function main(): Promise<void> {
  requireBuild(false);
  await useDistSnapshot();
  const work = mkdtempSync(join(tmpdir(), 'ferry-bench-basics-'));
  onCleanup('temp dir', () => rmTree(work));
  const d = await startFerryd({ dir: join(work, 'host'), hostName: 'bench-basics' });
  process.stderr.write(`ferryd pid ${d.pid} ready after ${d.readyMs.toFixed(0)} ms\n`);

  await sleep(2000); // let start-up garbage settle
  const rssIdle = await sampleRss(d.pid);
  process.stderr.write(`idle VmRSS ${rssIdle.kib} KiB; timing list with 0 domains (${RUNS} runs each)...\n`);
  const lat0 = await latencyPhase(d.unixUri, 0, d.pid);

  process.stderr.write(`defining ${DOMAINS} domains with \`ferry define\`...\n`);
  const defineMs: number[] = [];
  for (let i = 0; i < DOMAINS; i++) {
    const file = join(work, `dom-${i}.xml`);
    writeFileSync(file, domainXml(i));
    const r = await timedRun(process.execPath, [CLI, '-c', d.unixUri, 'define', file], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`define #${i} failed: ${r.stderr.trim()}`);
    defineMs.push(r.ms);
  }
  await sleep(2000);
  const rss100 = await sampleRss(d.pid);
  process.stderr.write(`VmRSS with ${DOMAINS} domains ${rss100.kib} KiB; timing list with ${DOMAINS} domains...\n`);
  const lat100 = await latencyPhase(d.unixUri, DOMAINS, d.pid);
  await sleep(1000);
  const rssAfter = await sampleRss(d.pid);
  d.stop();
  process.stderr.write('measuring the import cost of the CLI modules...\n');
  const imports = await importCosts(10);

  const mib = (k: number) => (k / 1024).toFixed(1);
  const rssCell = (r: { kib: number; min: number; max: number }) => `${mib(r.kib)} (${mib(r.min)}-${mib(r.max)})`;
  const l0 = lat0.byKey;
  const l1 = lat100.byKey;
  const diff = (a: Summary, b: Summary) => (a.median - b.median).toFixed(1);
  const rows: string[][] = [
    ['ferryd VmRSS, MiB (10 samples over 2 s)', rssCell(rssIdle), '', rssCell(rss100), ''],
    ...CONTENDERS.map((c) => [c.label, fmtSummary(l0[c.key].wall, 1), fmtSummary(l0[c.key].cpu, 0), fmtSummary(l1[c.key].wall, 1), fmtSummary(l1[c.key].cpu, 0)]),
    ["`list` minus `node -e ''` (medians)", diff(l0.list.wall, l0.node.wall), diff(l0.list.cpu, l0.node.cpu), diff(l1.list.wall, l1.node.wall), diff(l1.list.cpu, l1.node.cpu)],
    ['`list` minus `--version` (medians): connect + call + print', diff(l0.list.wall, l0.version.wall), diff(l0.list.cpu, l0.version.cpu), diff(l1.list.wall, l1.version.wall), diff(l1.list.cpu, l1.version.cpu)],
    ['ferryd CPU per `list` call (its /proc CPU time over the phase / runs)', '', lat0.ferrydCpuPerListMs.toFixed(1), '', lat100.ferrydCpuPerListMs.toFixed(1)],
  ];
  const table = markdownTable(['measurement', '0 domains: wall ms', '0 domains: CPU ms', `${DOMAINS} domains: wall ms`, `${DOMAINS} domains: CPU ms`], rows);
  const extra = markdownTable(
    ['other figures', 'value'],
    [
      ['ferryd spawn to `ready:` log line, ms (1 sample)', d.readyMs.toFixed(0)],
      [`\`ferry define\` wall time, ms (${DOMAINS} runs, 0 to ${DOMAINS - 1} domains defined before)`, fmtSummary(summarize(defineMs), 1)],
      [`ferryd VmRSS after the ${2 * 3 * (RUNS + 1)} CLI runs, MiB`, rssCell(rssAfter)],
      ['load average (1, 5, 15 min) at the end', os.loadavg().map((x) => x.toFixed(2)).join(', ')],
    ],
  );
  const importTable = markdownTable(
    ['CLI start: import in a fresh process (10 runs)', 'CPU ms', 'wall ms'],
    [
      ["Node itself (`node -e ''` CPU, 0-domain phase above)", fmtSummary(l0.node.cpu, 0), '-'],
      ...Object.entries(imports).map(([label, v]) => [label, fmtSummary(v.cpu, 1), fmtSummary(v.wall, 1)]),
      ['`ferry --version` whole process (0-domain phase above)', fmtSummary(l0.version.cpu, 0), fmtSummary(l0.version.wall, 1)],
    ],
  );
  const header = `## daemon-basics (${RUNS} runs each, alternated; wall time of the whole process and its user+system CPU time${CPU_TIMES ? '' : ' (no /usr/bin/time: CPU not measured)'}, median (min-max))`;
  process.stdout.write(`${header}\n\n${table}\n\n${extra}\n\n${importTable}\n`);
  const path = writeResults('daemon-basics', {
    benchmark: 'daemon-basics',
    date: new Date().toISOString(),
    machine: machineInfo(),
    runs: RUNS,
    domains: DOMAINS,
    ferrydReadyMs: d.readyMs,
    rssKiB: { idle: rssIdle, withDomains: rss100, afterListRuns: rssAfter },
    latencyMs: { zeroDomains: lat0, withDomains: lat100 },
    defineMs: { summary: summarize(defineMs), runs: defineMs },
    importCosts: imports,
    table,
    extraTable: extra,
    importTable,
  });
  process.stderr.write(`\nwritten ${path}\n`);
}

runMain(main);
