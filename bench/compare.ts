/**
 * compare: the same live migration done three ways, on the same two hosts,
 * the same guest and the same link, alternating the contenders run by run:
 *
 * - raw QEMU (the floor): bench/raw-qemu.ts drives both QEMUs straight over
 *   QMP, no daemon, with the QEMU features of the mode (xbzrle, multifd,
 *   post-copy, ...); its wall time is everything a tool has to do, from
 *   starting the destination QEMU to the source QEMU's exit;
 * - Ferry: `ferry migrate` with the mode's flags, between two ferryds;
 * - libvirt 9.0 (Debian's libvirtd and virsh): `virsh migrate` with the
 *   same flags, between two libvirtds (bench/libvirt/hosts.sh);
 * - ferry-virsh (not run by default): the same `virsh create` and `virsh
 *   migrate` as libvirt's, against the two ferryds, which serve libvirt's
 *   protocol on `--libvirt-listen-tcp` (qemu+tcp://HOST:16510/system):
 *   ferryd driven by stock virsh, held to libvirtd driven by the same virsh
 *   (issue 12). Its downtime and setup time are what ferryd reports to
 *   `virsh domjobinfo --completed` on the destination, as for libvirt.
 *
 * Hosts: the two network namespaces of bench/libvirt/hosts.sh (a veth pair,
 * 10.203.0.1 and 10.203.0.2); each runs a libvirtd and a ferryd, and the raw
 * QEMUs run there too. Every run boots the memory-writing test guest on host
 * 1, waits for its heartbeat, migrates it and checks on host 2 that the
 * heartbeat went on at the source's last + 1 with no CORRUPT (a fast wrong
 * answer counts as a failure).
 *
 * Sizes: libvirt rounds guest memory up to whole MiB, so the three-way
 * comparison uses whole-MiB sizes (257 and 1025 MiB). QEMU 7.2 under TCG
 * loses rewritten pages when the RAM size is a multiple of 256 KiB (every
 * whole-MiB size is), so with a writer those runs may fail the guest check
 * for every contender: that is QEMU, and the table says so. The safe,
 * unaligned sizes (256 MiB + 4 KiB, 1 GiB + 4 KiB) run raw QEMU and Ferry
 * only (libvirt cannot express them).
 *
 * Workloads: idle, a writer at 100 MiB/s, and a writer at `--heavy-rate`
 * (400 MiB/s) on a link shaped to `--heavy-link` (1 Gbit/s, tc tbf both
 * ways), which plain pre-copy cannot finish: there each run is aborted at
 * `--cap-s` (30) seconds and counted as "did not finish", while
 * auto-converge and post-copy should finish. (On the unshaped veth even the
 * fastest writer this guest has converges: under TCG the first write to a
 * page after each dirty-bitmap sync takes QEMU's slow path, which holds the
 * guest's dirtying below what the stream moves. By default the heavy writer
 * runs on the smaller sizes only: at 1 GiB a pass alone takes 8 s at
 * 1 Gbit/s.)
 *
 * Figures per run: wall time of the whole command, downtime and setup time
 * as each tool reports it (raw: source STOP to destination `cont`, and
 * QEMU's own figure), bytes and time of the stream on the wire (the veth's
 * transmit counter, one clock for all), throughput on the wire, CPU time of
 * both daemons during the command, ferryd's peak RSS; per row the ratios of
 * Ferry's medians to raw QEMU's (same mode, else plain) and to libvirt's.
 *
 *   npx tsx bench/compare.ts [--runs 3] [--sizes 257M,1025M,256M+4K,1G+4K,4G+4K,8G+4K] [--rates 0,100,400]
 *                            [--modes p2p,managed,...] [--heavy-rate 400] [--heavy-link 1gbit] [--cap-s 30]
 *                            [--tools raw,ferry,libvirt,ferry-virsh] [--verbose-virsh]
 *                            [--out NAME]
 *
 * `--verbose-virsh`: both virsh contenders run `virsh migrate --verbose`
 * (virsh then polls the job's progress every 500 ms while it waits).
 *
 * Needs root; installs libvirt when missing (bench/libvirt/hosts.sh). Run
 * everything with bench/run-all.sh.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DomainDocument } from '../src/domain/index.js';
import { phasesFromLog } from '../src/migration/driver.js';
import { helperCpuInLog } from '../src/migration/tunnel.js';
import { heartbeatCount, testGuestXml, waitForSerialFile } from '../test/support/guest-xml.js';
import { startFerryd } from './ferryd.js';
import {
  CLI,
  ROOT,
  argFlag,
  argInt,
  argValue,
  machineInfo,
  onCleanup,
  procCpuMs,
  RssSampler,
  requireBuild,
  rmTree,
  rotate,
  runMain,
  sleep,
  timedRun,
  useDistSnapshot,
  vmRssKiB,
  writeResults,
} from './lib.js';
import { MODES, contendersOf, fixedCostTable, fmtSize, parseSize, renderReport, summaryTable, wsMiB, type Cell, type FerrydRssCell, type RecipeKey, type Run, type SavedCompare, type Tool } from './compare-report.js';
import { rawCleanup, rawMigrate, type RawRecipe } from './raw-qemu.js';
import { ADDR, FERRYD_LIBVIRT_PORT, FERRYD_LV_URI, FERRY_URI, LV_URI, NS, ferryIn, libvirtdPids, settledGuestProblems, parseJobInfo, serialToFile, toBytes, virsh } from './bench-hosts.js';
import { WireMonitor } from './wire.js';

// ------------------------------------------------------------ settings

const RUNS = argInt('runs', 3);
const HEAVY_RATE = argInt('heavy-rate', 400);
/**
 * Cap of one migration: `--cap-s` when given, else 30 s, raised for big
 * guests to 15 s per GiB (4 GiB: 60 s, 8 GiB: 120 s): a pass over 3 GB of
 * live data alone takes several seconds under TCG, and the heavy writer's
 * "did not finish" should mean the writer, not the size.
 */
const CAP_GIVEN_S = argValue('cap-s') !== undefined ? argInt('cap-s', 30) : undefined;
const capMsFor = (memoryKiB: number) => (CAP_GIVEN_S ?? Math.max(30, Math.ceil((15 * memoryKiB) / 1024 / 1024))) * 1000;
const CAP_MS = capMsFor(0);
/** tbf rate of the link for the heavy writer (unshaped veth otherwise). */
const HEAVY_LINK = argValue('heavy-link') ?? '1gbit';
const HB_MS = 250;
const SETTLE_MS = 1500;
const MB = 1e6;


/** What runs by default: per size and workload, which modes (the heavy writer only where it can finish, plus plain p2p to show it cannot). */
const ALL_MODES = Object.keys(MODES);
const NO_SLOW_COMPRESSION = ALL_MODES.filter((m) => !['mt', 'zlib', 'zstd'].includes(m));
const HEAVY_MODES = ['p2p', 'auto-converge', 'postcopy'];
const SAFE_MODES = ['p2p', 'tunnelled', 'auto-converge', 'postcopy'];


const SIZES = (argValue('sizes') ?? '257M,1025M,256M+4K,1G+4K').split(',').map(parseSize);
const RATES = (argValue('rates') ?? `0,100,${HEAVY_RATE}`).split(',').map(Number);
const PICKED_MODES = argValue('modes')?.split(',');
const TOOLS = (argValue('tools') ?? 'raw,ferry,libvirt').split(',') as Tool[];
const VIRSH_VERBOSE = argFlag('verbose-virsh') ? ['--verbose'] : [];


function plan(): Cell[] {
  const cells: Cell[] = [];
  for (const memoryKiB of SIZES) {
    const aligned = memoryKiB % 1024 === 0;
    const big = memoryKiB > 512 * 1024;
    for (const rate of RATES) {
      // Idle runs at an unaligned size tell nothing the aligned ones do not.
      if (!aligned && rate === 0 && !argValue('rates')) continue;
      if (big && rate >= HEAVY_RATE && !argValue('rates')) continue;
      let modes = rate >= HEAVY_RATE ? HEAVY_MODES : !aligned ? SAFE_MODES : big ? NO_SLOW_COMPRESSION : ALL_MODES;
      if (PICKED_MODES) modes = PICKED_MODES.filter((m) => m in MODES);
      const tools = TOOLS.filter((t) => t !== 'libvirt' || aligned);
      if (modes.length > 0) cells.push({ memoryKiB, rate, modes, tools });
    }
  }
  return cells;
}

const RAW_PORT = 49400;


// ------------------------------------------------------------ helpers

const ferry = ferryIn;

const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '');

/** Waits for `n` heartbeats in the serial log at `path` (see waitForSerialFile). */
const waitBeats = async (path: string, n: number): Promise<void> => void (await waitForSerialFile(path, heartbeatCount(n), 90_000));


function guestXml(name: string, uuid: string, memoryKiB: number, rate: number, serialFile?: string): string {
  const xml = testGuestXml({ name, uuid, memoryKiB, cmdline: `ws=${wsMiB(memoryKiB)} rate=${rate} hb=${HB_MS}` });
  return serialFile ? serialToFile(xml, serialFile) : xml;
}

const msOf = (v: string | undefined) => (v ? Number(v.split(' ')[0]) : undefined);


// ------------------------------------------------------------ the benchmark

runMain(async () => {
  requireBuild(true);
  await useDistSnapshot();
  // The tree under test is the one snapshotted now (commit, changed files, load at the start).
  const machine = machineInfo();
  const work = mkdtempSync(join(tmpdir(), 'ferry-compare-'));
  onCleanup('temp dir', () => rmTree(work));
  mkdirSync(join(work, 'serial'), { recursive: true });
  mkdirSync(join(work, 'raw'), { recursive: true });

  // One PKI for every TLS contender: ferryd's names in pki/, QEMU's names in qemu-tls/ (raw QEMU and libvirt).
  const pki = join(work, 'pki');
  const made = await timedRun(process.execPath, [CLI, 'tls-setup', pki, '--host', ADDR[0], '--host', ADDR[1]], { timeoutMs: 60_000 });
  if (made.code !== 0) throw new Error(`ferry tls-setup: ${made.stderr}`);
  const qemuTls = join(work, 'qemu-tls');
  mkdirSync(qemuTls);
  for (const [q, f] of [['ca-cert.pem', 'cacert.pem'], ['server-cert.pem', 'servercert.pem'], ['server-key.pem', 'serverkey.pem'], ['client-cert.pem', 'clientcert.pem'], ['client-key.pem', 'clientkey.pem']] as const) {
    cpSync(join(pki, f), join(qemuTls, q));
  }
  const RECIPES: Record<RecipeKey, RawRecipe> = {
    plain: {},
    tls: { tlsDir: qemuTls },
    xbzrle: { caps: ['xbzrle'] },
    mt: { caps: ['compress'] },
    zlib: { caps: ['multifd'], params: { 'multifd-channels': 2, 'multifd-compression': 'zlib' } },
    zstd: { caps: ['multifd'], params: { 'multifd-channels': 2, 'multifd-compression': 'zstd' } },
    parallel: { caps: ['multifd'], params: { 'multifd-channels': 2 } },
    'auto-converge': { caps: ['auto-converge'] },
    postcopy: { caps: ['postcopy-ram'], postcopyAfterFirstPass: true },
  };

  const cells = plan();
  const useLibvirt = cells.some((c) => c.tools.includes('libvirt'));
  const hosts = join(ROOT, 'bench', 'libvirt', 'hosts.sh');
  execFileSync('bash', [hosts, useLibvirt ? 'start' : 'net'], { stdio: 'inherit', env: { ...process.env, FERRY_LIBVIRT_MIGRATE_TLS_DIR: qemuTls } });
  onCleanup('libvirt hosts', () => execFileSync('bash', [hosts, 'stop'], { stdio: 'ignore' }));
  const fd = [
    await startFerryd({ dir: join(work, 'ferry-a'), hostName: 'cmp-a', netns: NS[0], listenTcp: `${ADDR[0]}:16609`, libvirtTcp: `${ADDR[0]}:${FERRYD_LIBVIRT_PORT}`, tlsDir: pki }),
    await startFerryd({ dir: join(work, 'ferry-b'), hostName: 'cmp-b', netns: NS[1], listenTcp: `${ADDR[1]}:16609`, libvirtTcp: `${ADDR[1]}:${FERRYD_LIBVIRT_PORT}`, tlsDir: pki }),
  ] as const;
  onCleanup('ferryds', () => fd.forEach((f) => f.stop()));
  const lvPids = useLibvirt ? libvirtdPids() : [];
  const wire = new WireMonitor(fd[0].pid, 'lvb1');
  const recordWire = (r: Run) => {
    const w = wire.stop();
    if (w) {
      r.wireMs = w.ms;
      r.wireBytes = w.bytes;
    }
  };
  let peakRss = 0;
  /** Per cell and mode (size × rate × mode): both ferryds' RSS before its first Ferry run and the peak during its Ferry runs. */
  const rssCells = new Map<string, FerrydRssCell>();
  const results: Run[] = [];
  const t0 = Date.now();

  /** Runs `cmd`, and after `CAP_MS` runs `abort` (plain pre-copy under a writer it cannot outrun). */
  const capped = async <T>(capMs: number, cmd: Promise<T>, abort: () => Promise<unknown>): Promise<{ out: T; aborted: boolean }> => {
    let aborted = false;
    const timer = setTimeout(() => {
      aborted = true;
      void abort();
    }, capMs);
    try {
      return { out: await cmd, aborted };
    } finally {
      clearTimeout(timer);
    }
  };

  const runRaw = async (r: Run): Promise<void> => {
    const name = `raw-${r.mode}-${r.memoryKiB}-${r.rate}-${r.run}`;
    const def = DomainDocument.parse(guestXml(name, randomUUID(), r.memoryKiB, r.rate)).def;
    try {
      const out = await rawMigrate({
        name,
        def,
        dir: join(work, 'raw'),
        src: { ns: NS[0], address: ADDR[0] },
        dst: { ns: NS[1], address: ADDR[1] },
        port: RAW_PORT,
        recipe: RECIPES[MODES[r.mode]!.raw],
        capMs: capMsFor(r.memoryKiB),
        warm: (log) => waitBeats(log, 4),
        onStreamStart: () => wire.start(),
        onStreamEnd: () => recordWire(r),
      });
      r.wallMs = out.wallMs;
      if (!out.finished) {
        r.unfinished = true;
        r.problems.push(`did not finish within ${capMsFor(r.memoryKiB) / 1000} s (cancelled)`);
        return;
      }
      r.downtimeMs = out.downtimeMs;
      r.qemuDowntimeMs = out.qemuDowntimeMs;
      r.setupMs = out.setupMs;
      r.qemuTotalMs = out.totalMs;
      r.dataBytes = out.bytes;
      if (out.steps) r.steps = out.steps;
      r.problems.push(...(await settledGuestProblems(() => read(out.srcSerial), () => read(out.dstSerial), SETTLE_MS)));
    } finally {
      await rawCleanup(name);
    }
  };

  /**
   * `virsh create` and `virsh migrate` against libvirtd (libvirt) or against
   * ferryd's libvirt listener (ferry-virsh). libvirt keeps no copy of the
   * serial port, so its guest writes a file, another one on each host
   * (`--xml` gives the destination its own); ferryd keeps a log of its own.
   */
  const runVirsh = async (r: Run, onFerryd: boolean): Promise<void> => {
    const name = `${onFerryd ? 'fv' : 'lv'}-${r.mode}-${r.memoryKiB}-${r.rate}-${r.run}`;
    const uri = onFerryd ? FERRYD_LV_URI : LV_URI;
    const vsh = (host: 0 | 1, args: string[]) => virsh(host, args, 300_000, uri[host]!);
    const pids = onFerryd ? [fd[0].pid, fd[1].pid] : lvPids;
    const src = onFerryd ? join(fd[0].stateDir, 'logs', `${name}.serial.log`) : join(work, 'serial', `${name}.a.log`);
    const dst = onFerryd ? join(fd[1].stateDir, 'logs', `${name}.serial.log`) : join(work, 'serial', `${name}.b.log`);
    const xmlA = join(work, `${name}.a.xml`);
    const xmlB = join(work, `${name}.b.xml`);
    const uuid = randomUUID();
    writeFileSync(xmlA, guestXml(name, uuid, r.memoryKiB, r.rate, onFerryd ? undefined : src));
    if (!onFerryd) writeFileSync(xmlB, guestXml(name, uuid, r.memoryKiB, r.rate, dst));
    try {
      const c = await vsh(0, ['create', xmlA]);
      if (c.code !== 0) throw new Error(`virsh create: ${c.stderr.trim()}`);
      await waitBeats(src, 4);
      const cpu0 = pids.reduce((s, p) => s + procCpuMs(p), 0);
      wire.start();
      const flags = [...MODES[r.mode]!.virsh!, ...VIRSH_VERBOSE, ...(onFerryd ? [] : ['--xml', xmlB])];
      const { out: m, aborted } = await capped(capMsFor(r.memoryKiB), vsh(0, ['migrate', ...flags, name, uri[1]!]), () => vsh(0, ['domjobabort', name]));
      recordWire(r);
      r.daemonCpuMs = pids.reduce((s, p) => s + procCpuMs(p), 0) - cpu0;
      r.wallMs = m.ms;
      if (onFerryd) peakRss = Math.max(peakRss, vmRssKiB(fd[0].pid), vmRssKiB(fd[1].pid));
      if (aborted) {
        r.unfinished = true;
        r.problems.push(`did not finish within ${capMsFor(r.memoryKiB) / 1000} s (aborted)`);
        return;
      }
      if (m.code !== 0) throw new Error(`virsh migrate: ${m.stderr.trim()}`);
      const info = parseJobInfo((await vsh(1, ['domjobinfo', '--completed', name])).stdout);
      r.downtimeMs = msOf(info['Total downtime']);
      r.setupMs = msOf(info['Setup time']);
      r.dataBytes = toBytes(info['Data processed']);
      r.problems.push(...(await settledGuestProblems(() => read(src), () => read(dst), SETTLE_MS)));
    } finally {
      await vsh(1, ['destroy', name]).catch(() => null);
      await vsh(0, ['destroy', name]).catch(() => null);
    }
  };

  const runFerry = async (r: Run): Promise<void> => {
    const name = `fe-${r.mode}-${r.memoryKiB}-${r.rate}-${r.run}`;
    const xml = join(work, `${name}.xml`);
    writeFileSync(xml, guestXml(name, randomUUID(), r.memoryKiB, r.rate));
    const src = join(fd[0].stateDir, 'logs', `${name}.serial.log`);
    const dst = join(fd[1].stateDir, 'logs', `${name}.serial.log`);
    try {
      const c = await ferry(0, fd[0], ['create', xml]);
      if (c.code !== 0) throw new Error(`ferry create: ${c.stderr.trim()}`);
      await waitBeats(src, 4);
      const key = `${r.memoryKiB}/${r.rate}/${r.mode}`;
      let rss = rssCells.get(key);
      if (!rss) {
        rss = { memoryKiB: r.memoryKiB, rate: r.rate, mode: r.mode, beforeKiB: [vmRssKiB(fd[0].pid), vmRssKiB(fd[1].pid)], peakKiB: [0, 0], growthKiB: [0, 0] };
        rssCells.set(key, rss);
      }
      const sampler = new RssSampler([fd[0].pid, fd[1].pid], 50).start();
      const cpu0 = procCpuMs(fd[0].pid) + procCpuMs(fd[1].pid);
      wire.start();
      const logAt = [read(fd[0].logPath).length, read(fd[1].logPath).length] as const;
      const { out: m, aborted } = await capped(capMsFor(r.memoryKiB), ferry(0, fd[0], ['--json', 'migrate', ...MODES[r.mode]!.ferry, name, FERRY_URI[1]!]), () => ferry(0, fd[0], ['domjobabort', name]));
      recordWire(r);
      r.daemonCpuMs = procCpuMs(fd[0].pid) + procCpuMs(fd[1].pid) - cpu0;
      r.wallMs = m.ms;
      const [a, b] = sampler.stop();
      rss.peakKiB = [Math.max(rss.peakKiB[0], a!.peakKiB), Math.max(rss.peakKiB[1], b!.peakKiB)];
      rss.growthKiB = [Math.max(rss.growthKiB![0], a!.peakKiB - a!.firstKiB), Math.max(rss.growthKiB![1], b!.peakKiB - b!.firstKiB)];
      peakRss = Math.max(peakRss, a!.peakKiB, b!.peakKiB);
      if (aborted) {
        r.unfinished = true;
        r.problems.push(`did not finish within ${capMsFor(r.memoryKiB) / 1000} s (aborted)`);
        return;
      }
      let out: { stats?: Record<string, number>; error?: { message?: string } } = {};
      try {
        out = JSON.parse(m.stdout || m.stderr || '{}') as typeof out;
      } catch {
        // Reported below with the raw output.
      }
      if (m.code !== 0) throw new Error(`ferry migrate: ${out.error?.message ?? m.stderr.trim()}`);
      r.downtimeMs = out.stats?.downtime;
      r.setupMs = out.stats?.setup_time;
      r.dataBytes = out.stats?.data_processed;
      const steps = phasesFromLog(read(fd[0].logPath).slice(logAt[0]), name);
      if (steps) r.steps = { ...steps, cli: m.ms - Object.values(steps).reduce((a, b) => a + b, 0) };
      r.problems.push(...(await settledGuestProblems(() => read(src), () => read(dst), SETTLE_MS)));
      // A tunnel's relay helpers are processes of their own: their CPU (exit lines in ferryd's log, written by now) is the daemons'.
      for (const i of [0, 1] as const) {
        const h = helperCpuInLog(read(fd[i].logPath).slice(logAt[i]));
        if (h && r.daemonCpuMs !== undefined) r.daemonCpuMs += h.user + h.sys;
      }
    } finally {
      await Promise.all([ferry(1, fd[1], ['destroy', name]).catch(() => null), ferry(0, fd[0], ['destroy', name]).catch(() => null)]);
    }
  };

  const total = cells.reduce((n, c) => n + c.modes.reduce((k, m) => k + contendersOf(c, m).length, 0) * RUNS, 0);
  let done = 0;
  for (const cell of cells) {
    const shaped = cell.rate >= HEAVY_RATE;
    if (shaped) shapeLink(HEAVY_LINK);
    for (let run = 1; run <= RUNS; run++) {
      for (const [i, mode] of cell.modes.entries()) {
        for (const tool of rotate(contendersOf(cell, mode), run + i)) {
          const r: Run = { tool, mode, memoryKiB: cell.memoryKiB, rate: cell.rate, run, ok: false, problems: [] };
          try {
            if (tool === 'raw') await runRaw(r);
            else if (tool === 'libvirt') await runVirsh(r, false);
            else if (tool === 'ferry-virsh') await runVirsh(r, true);
            else await runFerry(r);
          } catch (err) {
            r.problems.push((err as Error).message.split('\n')[0]!);
            wire.stop();
          }
          r.ok = r.problems.length === 0;
          results.push(r);
          done++;
          process.stderr.write(
            `[${done}/${total} ${((Date.now() - t0) / 60000).toFixed(1)} min] ${fmtSize(r.memoryKiB)} rate ${r.rate} run ${run} ${mode.padEnd(13)} ${tool.padEnd(7)}: ` +
              `${r.ok ? 'OK' : r.unfinished ? 'UNFINISHED' : 'FAILED'} wall ${r.wallMs?.toFixed(0) ?? '-'} ms, downtime ${r.downtimeMs?.toFixed(0) ?? '-'} ms, ` +
              `wire ${r.wireBytes ? (r.wireBytes / MB).toFixed(0) : '-'} MB in ${r.wireMs?.toFixed(0) ?? '-'} ms, daemons CPU ${r.daemonCpuMs?.toFixed(0) ?? '-'} ms` +
              `${r.ok || r.unfinished ? '' : `: ${r.problems.join('; ')}`}\n`,
          );
        }
      }
    }
    if (shaped) shapeLink(undefined);
  }

  const saved: SavedCompare = { runs: RUNS, heavyRate: HEAVY_RATE, heavyLink: HEAVY_LINK, cells, results, ferrydPeakRssKiB: peakRss, ferrydRss: [...rssCells.values()] };
  const fixed = fixedCostTable(saved);
  const report = `${summaryTable([saved])}\n\n${fixed ? `Fixed cost of a peer-to-peer migration over raw QEMU (medians of the runs that passed):\n\n${fixed}\n\n` : ''}${renderReport(saved)}`;
  process.stdout.write(report);
  const file = writeResults(argValue('out') ?? 'compare', { machine, loadavgAtEnd: os.loadavg(), minutes: (Date.now() - t0) / 60000, capMs: CAP_MS, capMsBySize: Object.fromEntries(SIZES.map((k) => [k, capMsFor(k)])), ...saved, report });
  process.stdout.write(`\nresults: ${file}\n`);
});

/** Shapes both ends of the veth link with tc tbf at `rate`, or removes the shaping. */
function shapeLink(rate: string | undefined): void {
  for (const [i, ns] of NS.entries()) {
    const dev = `lvb${i + 1}`;
    if (rate) execFileSync('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', rate, 'burst', '256kb', 'latency', '50ms']);
    else execFileSync('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'del', 'dev', dev, 'root'], { stdio: 'ignore' });
  }
}
