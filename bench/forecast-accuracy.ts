/**
 * forecast-accuracy: how well `ferry migrate --dry-run` predicts the
 * migration that follows (issue 13, item 3). For each cell of a grid of
 * guest rewrite rates × bandwidth caps, on two ferryds in two network
 * namespaces joined by an unshaped veth:
 *
 * 1. boot the memory-writing test guest on host A (`ws=WS rate=R hb=250`,
 *    256 MiB + 4 KiB of RAM: the size QEMU 7.2 under TCG migrates safely),
 *    wait for its heartbeat;
 * 2. `ferry --json migrate --live --p2p [--bandwidth N] --dry-run`: the
 *    forecast and the inputs it was computed from (the daemon's model);
 * 3. `ferry --json migrate --live --p2p [--bandwidth N]` for real, capped at
 *    `--cap-s` (30) seconds or 3× the forecast, whichever is larger; a run
 *    still going then is read (`domjobinfo`), aborted (`domjobabort`) and
 *    counted as "did not finish";
 * 4. the actual figures: QEMU's dirty-sync count (memory_iteration), the
 *    job's elapsed time, data processed and downtime from the migration's
 *    own statistics and `domjobinfo --completed` on the destination, the
 *    command's wall time, and the guest's rewrite rate during the
 *    migration (from its heartbeats); on success the heartbeat must go on
 *    at the source's last + 1 with no CORRUPT.
 *
 * The cap is QEMU's max-bandwidth (`--bandwidth`); "unlimited" gives none,
 * so the forecast measures the path (bandwidth-probe.ts) and QEMU runs
 * unthrottled. Besides the daemon's forecast, each run is forecast again
 * in this process from the same inputs with src/migration/forecast.ts as
 * it is in the checkout (the "model now" columns): with `--recompute
 * FILE` nothing runs and a saved result is re-tabled with the current
 * model, which is how its constants were calibrated.
 *
 *   npx tsx bench/forecast-accuracy.ts [--rates 0,10,30,60,120] [--bandwidths 8,32,128,0]
 *        [--ws 64] [--mem-kib 262148] [--cap-s 30] [--subnet 219] [--out NAME]
 *   npx tsx bench/forecast-accuracy.ts --recompute bench/results/forecast-accuracy.json
 *
 * (`--bandwidths` 0 = unlimited.) Needs root (network namespaces), the
 * build (`npm run build`) and the guest (`make -C guest`).
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STREAM_CEILING_BYTES_PER_S, forecastMigration, type Forecast, type ForecastInput } from '../src/migration/forecast.js';
import { createHostPair, inNetns } from '../test/support/netns.js';
import { checkMigrationContinuity, parseSerialLog, rewriteRateMiBps } from '../test/support/serial.js';
import { counterAbove, heartbeatCount, testGuestXml, waitForSerialFile } from '../test/support/guest-xml.js';
import { startFerryd, type Ferryd } from './ferryd.js';
import { CLI, ROOT, argInt, argValue, machineInfo, markdownTable, median, onCleanup, requireBuild, rmTree, runMain, sleep, timedRun, useDistSnapshot, writeResults } from './lib.js';

const MIB = 1048576;
const HB_MS = 250;

/** One cell's record. */
interface AccuracyRun {
  rate: number;
  /** MiB/s; 0: unlimited. */
  bandwidth: number;
  ws: number;
  memoryKiB: number;
  /** The daemon's forecast (`--dry-run --json`), and its inputs and their sources. */
  forecast?: Forecast;
  inputs?: ForecastInput;
  sources?: Record<string, string>;
  dryRunMs?: number;
  capMs?: number;
  /** What happened. */
  finished?: boolean;
  /** The command's wall time, ms. */
  wallMs?: number;
  /** The source's statistics at the end (finished) or just before the abort. */
  stats?: Record<string, number | string>;
  /** `domjobinfo --completed` on the destination. */
  destStats?: Record<string, number | string>;
  /** The guest's rewrite rate before and during the migration (heartbeats), MiB/s. */
  guestRateBefore?: number;
  guestRateDuring?: number;
  problems: string[];
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const pct = (pred: number | undefined, act: number | undefined): number | undefined => (pred !== undefined && act !== undefined && act > 0 ? ((pred - act) / act) * 100 : undefined);
const fmtPct = (p: number | undefined): string => (p === undefined ? '-' : `${p >= 0 ? '+' : ''}${p.toFixed(0)} %`);
const fmtN = (v: number | undefined, digits = 0): string => (v === undefined ? '-' : v.toFixed(digits));
const bwName = (b: number): string => (b === 0 ? 'unlimited' : `${b}`);

/** The actual figures of a run (what the table compares with). */
function actualOf(r: AccuracyRun): { converges: boolean | undefined; iterations?: number; totalMs?: number; dataMiB?: number; downtimeMs?: number } {
  if (r.finished === undefined) return { converges: undefined };
  const s = r.stats ?? {};
  const d = r.destStats ?? {};
  return {
    converges: r.finished,
    iterations: num(s.memory_iteration),
    totalMs: num(s.time_elapsed) ?? r.wallMs,
    dataMiB: num(s.data_processed) !== undefined ? num(s.data_processed)! / MIB : undefined,
    downtimeMs: r.finished ? (num(d.downtime) ?? num(s.downtime)) : undefined,
  };
}

/** The table: predicted against actual, per run; `model` picks the forecast (the daemon's, or the checkout's from the same inputs). */
function accuracyTable(runs: readonly AccuracyRun[], model: 'daemon' | 'now'): { table: string; verdictsRight: number; verdicts: number; totalErrors: number[] } {
  const rows: string[][] = [];
  let verdictsRight = 0;
  let verdicts = 0;
  const totalErrors: number[] = [];
  for (const r of runs) {
    // As forecast-inputs.ts does now: the bandwidth clamped to QEMU's stream ceiling.
    const f = model === 'daemon' ? r.forecast : r.inputs ? forecastMigration({ ...r.inputs, bandwidthBytesPerS: Math.min(r.inputs.bandwidthBytesPerS, STREAM_CEILING_BYTES_PER_S) }) : undefined;
    const a = actualOf(r);
    if (!f || a.converges === undefined) {
      rows.push([String(r.rate), bwName(r.bandwidth), f ? (f.converges ? 'yes' : 'no') : '-', '-', '', '', '', '', '', '', '', '', '-', r.problems.join('; ') || 'no result']);
      continue;
    }
    verdicts++;
    const right = f.converges === a.converges;
    if (right) verdictsRight++;
    const err = f.converges && a.converges ? pct(f.total_ms, a.totalMs) : undefined;
    if (err !== undefined) totalErrors.push(err);
    const inputs = r.inputs!;
    rows.push([
      String(r.rate),
      bwName(r.bandwidth),
      `${(inputs.dirtyBytesPerS / MIB).toFixed(0)} / ${(inputs.bandwidthBytesPerS / MIB).toFixed(0)}`,
      `${f.converges ? 'yes' : 'no'} / ${a.converges ? 'yes' : 'no'}${right ? '' : ' ✗'}`,
      `${(f as Partial<Forecast>).memory_iteration ?? f.iterations} / ${fmtN(a.iterations)}`,
      `${f.total_ms} / ${fmtN(a.totalMs)}`,
      fmtPct(err),
      `${(f.data_bytes / MIB).toFixed(0)} / ${fmtN(a.dataMiB)}`,
      fmtPct(f.converges && a.converges ? pct(f.data_bytes / MIB, a.dataMiB) : undefined),
      `${f.converges ? f.downtime_ms : '-'} / ${fmtN(a.downtimeMs)}`,
      fmtN(r.guestRateBefore),
      fmtN(r.guestRateDuring),
      fmtN(r.wallMs),
      r.problems.filter((p) => !p.startsWith('did not finish')).join('; '),
    ]);
  }
  const table = markdownTable(
    ['rate (MiB/s)', 'cap (MiB/s)', 'measured dirty / bandwidth (MiB/s)', 'converges pred / act', 'memory_iteration pred / act', 'total ms pred / act', 'total err', 'data MiB pred / act', 'data err', 'downtime ms pred / act', 'guest rate before', 'guest rate during', 'wall ms', 'problems'],
    rows,
  );
  return { table, verdictsRight, verdicts, totalErrors };
}

/** The summary lines under a table. */
function accuracySummary(t: ReturnType<typeof accuracyTable>): string {
  const abs = t.totalErrors.map(Math.abs);
  const within = abs.filter((e) => e <= 25).length;
  return [
    `verdict right in ${t.verdictsRight} of ${t.verdicts} runs`,
    `total-time error on runs predicted and found converging: ${abs.length} runs, median |error| ${abs.length ? median(abs).toFixed(0) : '-'} %, max ${abs.length ? Math.max(...abs).toFixed(0) : '-'} %, ${within} of ${abs.length} within 25 %`,
  ].join('\n');
}

function report(runs: readonly AccuracyRun[], header: string): string {
  const daemon = accuracyTable(runs, 'daemon');
  const now = accuracyTable(runs, 'now');
  return [
    header,
    '',
    "### The daemon's forecast (`migrate --dry-run --json`)",
    '',
    daemon.table,
    '',
    accuracySummary(daemon),
    '',
    '### The same inputs through src/migration/forecast.ts as in the checkout now',
    '',
    now.table,
    '',
    accuracySummary(now),
    '',
  ].join('\n');
}

// ------------------------------------------------------------ the benchmark

async function main(): Promise<void> {
  const saved = argValue('recompute');
  if (saved) {
    const data = JSON.parse(readFileSync(saved, 'utf8')) as { runs: AccuracyRun[]; header?: string };
    process.stdout.write(report(data.runs, data.header ?? `(re-tabled from ${saved})`));
    return;
  }
  const RATES = (argValue('rates') ?? '0,10,30,60,120').split(',').map(Number);
  const BANDWIDTHS = (argValue('bandwidths') ?? '8,32,128,0').split(',').map(Number);
  const WS = argInt('ws', 64);
  const MEM_KIB = argInt('mem-kib', 262148);
  const CAP_MS = argInt('cap-s', 30) * 1000;
  requireBuild(true);
  await useDistSnapshot();
  const machine = machineInfo();
  const work = mkdtempSync(join(tmpdir(), 'ferry-forecast-'));
  onCleanup('temp dir', () => rmTree(work));
  const pair = createHostPair(`ffa${process.pid % 100000}`, argInt('subnet', 219));
  onCleanup('network namespaces', () => pair.destroy());
  const hosts = [pair.a, pair.b] as const;
  const uri = hosts.map((h) => `ferry+tcp://${h.address}:16609/system`);
  const fd = [
    await startFerryd({ dir: join(work, 'a'), hostName: 'fc-a', netns: hosts[0].ns, listenTcp: `${hosts[0].address}:16609` }),
    await startFerryd({ dir: join(work, 'b'), hostName: 'fc-b', netns: hosts[1].ns, listenTcp: `${hosts[1].address}:16609` }),
  ] as const;
  onCleanup('ferryds', () => fd.forEach((f) => f.stop()));
  const ferry = (host: 0 | 1, args: string[], timeoutMs = 300_000) => {
    const c = inNetns(hosts[host].ns, [process.execPath, CLI, '-c', fd[host].unixUri, '--json', ...args]);
    return timedRun(c.file, c.args, { timeoutMs, cwd: ROOT });
  };
  const json = <T>(text: string): T | undefined => {
    try {
      return JSON.parse(text) as T;
    } catch {
      return undefined;
    }
  };
  const serial = (f: Ferryd, name: string) => join(f.stateDir, 'logs', `${name}.serial.log`);
  const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '');

  const header = `Guest ${MEM_KIB} KiB, ws=${WS} MiB, hb=${HB_MS} ms; unshaped veth between two namespaces; cap ${CAP_MS / 1000} s or 3× the forecast. Load at start: ${os.loadavg().map((l) => l.toFixed(2)).join(', ')}; commit ${String((machine.build as { commit: string }).commit)}.`;
  process.stderr.write(`${header}\n`);
  const runs: AccuracyRun[] = [];
  const t0 = Date.now();
  const total = RATES.length * BANDWIDTHS.length;

  const runCell = async (r: AccuracyRun): Promise<void> => {
    const name = `fa-${r.rate}-${bwName(r.bandwidth)}`;
    const xml = join(work, `${name}.xml`);
    writeFileSync(xml, testGuestXml({ name, uuid: randomUUID(), memoryKiB: r.memoryKiB, cmdline: `ws=${r.ws} rate=${r.rate} hb=${HB_MS}` }));
    const src = serial(fd[0], name);
    const dst = serial(fd[1], name);
    const bw = r.bandwidth > 0 ? ['--bandwidth', String(r.bandwidth)] : [];
    try {
      const c = await ferry(0, ['create', xml]);
      if (c.code !== 0) throw new Error(`ferry create: ${c.stderr.trim()}`);
      // Four heartbeats: the working set is filled (`ready` comes first) and the writer has run a second.
      const before = await waitForSerialFile(src, heartbeatCount(4), 90_000);
      const dry = await ferry(0, ['migrate', '--live', '--p2p', ...bw, '--dry-run', name, uri[1]!], 60_000);
      r.dryRunMs = dry.ms;
      const fj = json<Forecast & { inputs: ForecastInput; sources: Record<string, string>; error?: { message?: string } }>(dry.stdout || dry.stderr);
      if (dry.code !== 0 || !fj || fj.error) throw new Error(`migrate --dry-run: ${fj?.error?.message ?? dry.stderr.trim()}`);
      const { inputs, sources, ...forecast } = fj;
      r.forecast = forecast as Forecast;
      r.inputs = inputs;
      r.sources = sources;
      r.capMs = Math.max(CAP_MS, 3 * r.forecast.total_ms);

      const startLog = parseSerialLog(read(src));
      const hbStart = startLog.lastHeartbeat;
      const hbFirst = before.heartbeats[0];
      if (hbFirst && hbStart) r.guestRateBefore = rewriteRateMiBps(hbFirst, hbStart, HB_MS);
      let aborted = false;
      const timer = setTimeout(() => {
        aborted = true;
        void (async () => {
          const s = await ferry(0, ['domjobinfo', name], 10_000);
          const j = json<Record<string, number | string>>(s.stdout);
          if (j) r.stats = j;
          await ferry(0, ['domjobabort', name], 30_000);
        })();
      }, r.capMs);
      const m = await ferry(0, ['migrate', '--live', '--p2p', ...bw, name, uri[1]!], r.capMs + 120_000).finally(() => clearTimeout(timer));
      r.wallMs = m.ms;
      // The guest's rewrite rate while the source ran it during the migration.
      const srcLog = parseSerialLog(read(src));
      if (hbStart && srcLog.lastHeartbeat && srcLog.lastHeartbeat.counter > hbStart.counter) r.guestRateDuring = rewriteRateMiBps(hbStart, srcLog.lastHeartbeat, HB_MS);
      if (aborted) {
        r.finished = false;
        r.problems.push(`did not finish within ${(r.capMs / 1000).toFixed(0)} s (aborted)`);
        if (m.code === 0) r.problems.push('the migration finished after all (during the abort)');
        return;
      }
      const out = json<{ stats?: Record<string, number | string>; error?: { message?: string } }>(m.stdout || m.stderr);
      if (m.code !== 0) throw new Error(`ferry migrate: ${out?.error?.message ?? m.stderr.trim()}`);
      r.finished = true;
      r.stats = out?.stats ?? {};
      const di = await ferry(1, ['domjobinfo', '--completed', name], 10_000);
      r.destStats = json<Record<string, number | string>>(di.stdout) ?? {};
      // Heartbeat continuity: three beats on the destination after the source's last, each +1, no CORRUPT.
      const lastSrc = parseSerialLog(read(src)).lastHeartbeat?.counter ?? 0;
      await waitForSerialFile(dst, counterAbove(lastSrc + 2), 15_000).catch((err: Error) => r.problems.push(err.message.split('\n')[0]!));
      const cont = checkMigrationContinuity(read(src), read(dst));
      r.problems.push(...cont.problems);
    } finally {
      await Promise.all([ferry(1, ['destroy', name]).catch(() => null), ferry(0, ['destroy', name]).catch(() => null)]);
    }
  };

  for (const rate of RATES) {
    for (const bandwidth of BANDWIDTHS) {
      const r: AccuracyRun = { rate, bandwidth, ws: WS, memoryKiB: MEM_KIB, problems: [] };
      try {
        await runCell(r);
      } catch (err) {
        r.problems.push((err as Error).message.split('\n')[0]!);
      }
      runs.push(r);
      const f = r.forecast;
      const a = actualOf(r);
      process.stderr.write(
        `[${runs.length}/${total} ${((Date.now() - t0) / 60000).toFixed(1)} min, load ${os.loadavg()[0]!.toFixed(2)}] rate ${rate} cap ${bwName(bandwidth)}: ` +
          `predicted ${f ? `${f.converges ? 'converges' : 'does not converge'}, ${f.iterations} it, ${f.total_ms} ms, ${(f.data_bytes / MIB).toFixed(0)} MiB, ${f.downtime_ms} ms down` : '-'}; ` +
          `actual ${a.converges === undefined ? '-' : `${a.converges ? 'finished' : 'did not finish'}, ${fmtN(a.iterations)} it, ${fmtN(a.totalMs)} ms, ${fmtN(a.dataMiB)} MiB, ${fmtN(a.downtimeMs)} ms down`}` +
          `; guest ${fmtN(r.guestRateBefore)} -> ${fmtN(r.guestRateDuring)} MiB/s${r.problems.length ? `; ${r.problems.join('; ')}` : ''}\n`,
      );
    }
  }
  const text = report(runs, `${header} Load at end: ${os.loadavg().map((l) => l.toFixed(2)).join(', ')}; ${((Date.now() - t0) / 60000).toFixed(1)} min.`);
  process.stdout.write(text);
  const file = writeResults(argValue('out') ?? 'forecast-accuracy', { machine, loadavgAtEnd: os.loadavg(), minutes: (Date.now() - t0) / 60000, header, runs, report: text });
  process.stdout.write(`\nresults: ${file}\n`);
}

runMain(main);
