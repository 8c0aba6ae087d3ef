/**
 * libvirt-compare: Ferry against libvirt 9.0 (Debian's libvirtd and virsh)
 * on the same two hosts, the same guest and the same link, alternating the
 * contenders run by run.
 *
 * Hosts: the two network namespaces of bench/libvirt/hosts.sh (a veth pair,
 * 10.203.0.1 and 10.203.0.2), each running a libvirtd (own mount namespace,
 * own host UUID, listening on TCP) and a ferryd (listening on TCP 16609).
 * Each run boots the memory-writing test guest on host 1 through the
 * contender's own tool, migrates it with the matching options and checks
 * that its heartbeat went on at +1 with no CORRUPT on host 2: a fast wrong
 * answer counts as a failure. Memory is a whole number of MiB (libvirt
 * rounds up to MiB), 257 MiB by default.
 *
 * Figures per run: wall time of the whole CLI command (`virsh migrate` /
 * `ferry migrate`), downtime and bytes as each tool reports them, and the
 * CPU time of both daemons (libvirtd or ferryd) during the command; ferryd's
 * peak RSS over the whole bench.
 *
 *   npx tsx bench/libvirt-compare.ts [--runs 3] [--rates 0,100] [--modes p2p,managed,tunnelled,compressed,parallel,auto-converge,postcopy] [--memory-mib 257]
 *
 * Needs root; installs libvirt when missing (bench/libvirt/hosts.sh).
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inNetns } from '../test/support/netns.js';
import { checkMigrationContinuity, parseSerialLog } from '../test/support/serial.js';
import { testGuestXml } from '../test/support/guest-xml.js';
import { startFerryd, type Ferryd } from './ferryd.js';
import { CLI, ROOT, argInt, argValue, fmtSummary, machineInfo, markdownTable, procCpuMs, requireBuild, rotate, runMain, sleep, summarize, timedRun, vmRssKiB, writeResults, onCleanup } from './lib.js';

const RUNS = argInt('runs', 3);
const RATES = (argValue('rates') ?? '0,100').split(',').map(Number);
const MEMORY_MIB = argInt('memory-mib', 257);
const WS_MIB = Math.min(200, MEMORY_MIB - 40);
const HB_MS = 250;

const MODES: Record<string, { args: string[]; label: string }> = {
  p2p: { args: ['--live', '--p2p'], label: 'peer-to-peer' },
  managed: { args: ['--live'], label: 'managed (client drives both daemons)' },
  tunnelled: { args: ['--live', '--p2p', '--tunnelled'], label: 'tunnelled' },
  compressed: { args: ['--live', '--p2p', '--compressed'], label: 'compressed (xbzrle)' },
  parallel: { args: ['--live', '--p2p', '--parallel'], label: 'parallel (multifd, 2 channels)' },
  'auto-converge': { args: ['--live', '--p2p', '--auto-converge'], label: 'auto-converge' },
  postcopy: { args: ['--live', '--p2p', '--postcopy', '--postcopy-after-precopy'], label: 'post-copy after the first pass' },
};
const PICKED = (argValue('modes') ?? 'p2p,managed,tunnelled,compressed,parallel').split(',').filter((m) => m in MODES);

const NS = ['lvb-h1', 'lvb-h2'] as const;
const ADDR = ['10.203.0.1', '10.203.0.2'] as const;
const LV_URI = ADDR.map((a) => `qemu+tcp://${a}/system`);
const FERRY_URI = ADDR.map((a) => `ferry+tcp://${a}:16609/system`);

type Tool = 'libvirt' | 'ferry';
interface Run {
  tool: Tool;
  mode: string;
  rate: number;
  run: number;
  ok: boolean;
  problems: string[];
  wallMs?: number;
  downtimeMs?: number;
  dataBytes?: number;
  daemonCpuMs?: number;
}

/** The pids of the running libvirtd processes (both hosts'). */
function libvirtdPids(): number[] {
  return execFileSync('ps', ['-eo', 'pid=,comm='], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter(([, comm]) => comm === 'libvirtd')
    .map(([pid]) => Number(pid));
}

function virsh(host: 0 | 1, args: string[], timeoutMs = 180_000) {
  const c = inNetns(NS[host], ['virsh', '-q', '-c', LV_URI[host]!, ...args]);
  return timedRun(c.file, c.args, { timeoutMs });
}

function ferry(host: 0 | 1, f: Ferryd, args: string[], timeoutMs = 180_000) {
  const c = inNetns(NS[host], [process.execPath, CLI, '-c', f.unixUri, ...args]);
  return timedRun(c.file, c.args, { timeoutMs, cwd: ROOT });
}

async function waitBeats(read: () => string, n: number, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (parseSerialLog(read()).heartbeats.length >= n) return;
    await sleep(100);
  }
  throw new Error(`no ${n} heartbeats within ${timeoutMs} ms`);
}

const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '');

function guestXml(name: string, uuid: string, rate: number, serialFile?: string): string {
  let xml = testGuestXml({ name, uuid, memoryKiB: MEMORY_MIB * 1024, cmdline: `ws=${WS_MIB} rate=${rate} hb=${HB_MS}` });
  if (serialFile) {
    // libvirt: the serial port writes a file (ferryd keeps its own copy of a pty's output).
    xml = xml
      .replace(/ *<serial type='pty'><target port='0'\/><\/serial>\n/, `    <serial type='file'><source path='${serialFile}'/><target port='0'/></serial>\n`)
      .replace(/ *<console type='pty'><target type='serial' port='0'\/><\/console>\n/, '');
  }
  return xml;
}

function parseJobInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([^:]+):\s+(.*)$/.exec(line.trim());
    if (m) out[m[1]!.trim()] = m[2]!.trim();
  }
  return out;
}

function toBytes(v: string | undefined): number | undefined {
  const m = v ? /^([\d.]+)\s*(B|KiB|MiB|GiB)$/.exec(v) : null;
  if (!m) return undefined;
  return Number(m[1]) * { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }[m[2] as 'B']!;
}

runMain(async () => {
  requireBuild(true);
  execFileSync('bash', [join(ROOT, 'bench', 'libvirt', 'hosts.sh'), 'start'], { stdio: 'inherit' });
  onCleanup('libvirt hosts', () => execFileSync('bash', [join(ROOT, 'bench', 'libvirt', 'hosts.sh'), 'stop'], { stdio: 'ignore' }));
  const work = mkdtempSync(join(tmpdir(), 'ferry-lvcmp-'));
  mkdirSync(join(work, 'serial'), { recursive: true });
  const fd = [
    await startFerryd({ dir: join(work, 'ferry-a'), hostName: 'cmp-a', netns: NS[0], listenTcp: `${ADDR[0]}:16609` }),
    await startFerryd({ dir: join(work, 'ferry-b'), hostName: 'cmp-b', netns: NS[1], listenTcp: `${ADDR[1]}:16609` }),
  ] as const;
  onCleanup('ferryds', () => fd.forEach((f) => f.stop()));
  const lvPids = libvirtdPids();
  let peakRss = 0;
  const results: Run[] = [];

  const runLibvirt = async (mode: string, rate: number, run: number): Promise<Run> => {
    const r: Run = { tool: 'libvirt', mode, rate, run, ok: false, problems: [] };
    const name = `lv-${mode}-${rate}-${run}`;
    const src = join(work, 'serial', `${name}.a.log`);
    const dst = join(work, 'serial', `${name}.b.log`);
    const xmlA = join(work, `${name}.a.xml`);
    const xmlB = join(work, `${name}.b.xml`);
    const uuid = randomUUID();
    writeFileSync(xmlA, guestXml(name, uuid, rate, src));
    writeFileSync(xmlB, guestXml(name, uuid, rate, dst));
    try {
      const c = await virsh(0, ['create', xmlA]);
      if (c.code !== 0) throw new Error(`virsh create: ${c.stderr.trim()}`);
      await waitBeats(() => read(src), 4);
      const cpu0 = lvPids.reduce((s, p) => s + procCpuMs(p), 0);
      const m = await virsh(0, ['migrate', ...MODES[mode]!.args, '--xml', xmlB, name, LV_URI[1]!]);
      r.daemonCpuMs = lvPids.reduce((s, p) => s + procCpuMs(p), 0) - cpu0;
      r.wallMs = m.ms;
      if (m.code !== 0) throw new Error(`virsh migrate: ${m.stderr.trim()}`);
      const info = parseJobInfo((await virsh(1, ['domjobinfo', '--completed', name])).stdout);
      if (info['Total downtime']) r.downtimeMs = Number(info['Total downtime'].split(' ')[0]);
      r.dataBytes = toBytes(info['Data processed']);
      await sleep(1500);
      r.problems.push(...checkMigrationContinuity(read(src), read(dst)).problems);
    } catch (err) {
      r.problems.push((err as Error).message);
    } finally {
      await virsh(1, ['destroy', name]).catch(() => null);
      await virsh(0, ['destroy', name]).catch(() => null);
    }
    r.ok = r.problems.length === 0;
    return r;
  };

  const runFerry = async (mode: string, rate: number, run: number): Promise<Run> => {
    const r: Run = { tool: 'ferry', mode, rate, run, ok: false, problems: [] };
    const name = `fe-${mode}-${rate}-${run}`;
    const xml = join(work, `${name}.xml`);
    writeFileSync(xml, guestXml(name, randomUUID(), rate));
    const src = join(fd[0].stateDir, 'logs', `${name}.serial.log`);
    const dst = join(fd[1].stateDir, 'logs', `${name}.serial.log`);
    try {
      const c = await ferry(0, fd[0], ['create', xml]);
      if (c.code !== 0) throw new Error(`ferry create: ${c.stderr.trim()}`);
      await waitBeats(() => read(src), 4);
      const cpu0 = procCpuMs(fd[0].pid) + procCpuMs(fd[1].pid);
      const m = await ferry(0, fd[0], ['--json', 'migrate', ...MODES[mode]!.args, name, FERRY_URI[1]!]);
      r.daemonCpuMs = procCpuMs(fd[0].pid) + procCpuMs(fd[1].pid) - cpu0;
      r.wallMs = m.ms;
      peakRss = Math.max(peakRss, vmRssKiB(fd[0].pid), vmRssKiB(fd[1].pid));
      const out = JSON.parse(m.stdout || m.stderr || '{}') as { stats?: Record<string, number>; error?: { message?: string } };
      if (m.code !== 0) throw new Error(`ferry migrate: ${out.error?.message ?? m.stderr.trim()}`);
      r.downtimeMs = out.stats?.downtime;
      r.dataBytes = out.stats?.data_processed;
      await sleep(1500);
      r.problems.push(...checkMigrationContinuity(read(src), read(dst)).problems);
    } catch (err) {
      r.problems.push((err as Error).message);
    } finally {
      await ferry(1, fd[1], ['destroy', name]).catch(() => null);
      await ferry(0, fd[0], ['destroy', name]).catch(() => null);
    }
    r.ok = r.problems.length === 0;
    return r;
  };

  for (const rate of RATES) {
    for (let run = 1; run <= RUNS; run++) {
      for (const mode of PICKED) {
        for (const tool of rotate<Tool>(['libvirt', 'ferry'], run + PICKED.indexOf(mode))) {
          const r = tool === 'libvirt' ? await runLibvirt(mode, rate, run) : await runFerry(mode, rate, run);
          results.push(r);
          process.stderr.write(`rate ${rate} run ${run} ${mode.padEnd(13)} ${tool.padEnd(7)}: ${r.ok ? 'OK' : 'FAILED'} wall ${r.wallMs?.toFixed(0) ?? '-'} ms, downtime ${r.downtimeMs ?? '-'} ms, daemons CPU ${r.daemonCpuMs?.toFixed(0) ?? '-'} ms${r.ok ? '' : `: ${r.problems.join('; ')}`}\n`);
        }
      }
    }
  }

  const rows: string[][] = [];
  const summary: Record<string, unknown>[] = [];
  for (const rate of RATES) {
    for (const mode of PICKED) {
      const pick = (t: Tool) => results.filter((r) => r.tool === t && r.mode === mode && r.rate === rate && r.ok);
      const lv = pick('libvirt');
      const fe = pick('ferry');
      const all = (t: Tool) => results.filter((r) => r.tool === t && r.mode === mode && r.rate === rate).length;
      const w = (rs: Run[]) => summarize(rs.map((r) => r.wallMs!));
      const d = (rs: Run[]) => summarize(rs.filter((r) => r.downtimeMs !== undefined).map((r) => r.downtimeMs!));
      const cpu = (rs: Run[]) => summarize(rs.map((r) => r.daemonCpuMs ?? 0));
      const ratio = lv.length && fe.length ? (w(fe).median / w(lv).median).toFixed(2) : '-';
      rows.push([
        rate === 0 ? 'idle' : `${rate} MiB/s`,
        MODES[mode]!.label,
        `${lv.length}/${all('libvirt')} · ${fe.length}/${all('ferry')}`,
        lv.length ? fmtSummary(w(lv)) : '-',
        fe.length ? fmtSummary(w(fe)) : '-',
        ratio,
        lv.length ? fmtSummary(d(lv)) : '-',
        fe.length ? fmtSummary(d(fe)) : '-',
        lv.length ? fmtSummary(cpu(lv)) : '-',
        fe.length ? fmtSummary(cpu(fe)) : '-',
      ]);
      summary.push({ rate, mode, libvirt: lv.length ? { wall: w(lv), downtime: d(lv), cpu: cpu(lv) } : null, ferry: fe.length ? { wall: w(fe), downtime: d(fe), cpu: cpu(fe) } : null, ratio });
    }
  }
  const table = markdownTable(
    ['workload', 'mode', 'guest checks OK (libvirt · Ferry)', 'libvirt wall ms', 'Ferry wall ms', 'Ferry / libvirt', 'libvirt downtime ms', 'Ferry downtime ms', 'libvirtd CPU ms (both)', 'ferryd CPU ms (both)'],
    rows,
  );
  const header = `## Ferry against libvirt 9.0 (${RUNS} runs each, alternated; guest ${MEMORY_MIB} MiB, ws=${WS_MIB} MiB; two network namespaces; medians (min-max) of OK runs; ferryd peak RSS ${(peakRss / 1024).toFixed(1)} MiB)`;
  process.stdout.write(`${header}\n\n${table}\n`);
  const file = writeResults('libvirt-compare', { machine: machineInfo(), runs: RUNS, memoryMiB: MEMORY_MIB, rates: RATES, modes: PICKED, ferrydPeakRssKiB: peakRss, results, summary });
  process.stdout.write(`\nresults: ${file}\n`);
});
