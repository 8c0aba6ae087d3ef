/**
 * migration: live migration of the test guest between two hosts (network
 * namespaces joined by a veth link; loopback ports where namespaces are not
 * available), three contenders alternated run by run:
 *
 * - raw QEMU: this program starts a source and a destination QEMU itself
 *   (the command line Ferry builds, via `buildQemuCommand`), tunes both,
 *   `migrate-incoming` / `migrate` / `query-migrate` until completed /
 *   `cont`. Timed from `migrate` to the destination's `cont` returning, and
 *   also as the whole sequence Ferry performs (destination QEMU start to
 *   source QEMU exit);
 * - Ferry p2p: `ferry migrate --live --p2p --json` (CLI wall time);
 * - Ferry managed: the same without `--p2p` (the CLI drives both daemons).
 *
 * Each run boots a fresh guest on the source, migrates it, waits for a few
 * heartbeats on the destination, checks the heartbeat continuity and the
 * memory check, and destroys the guest on the destination.
 *
 * Diagnostic, alternated with the others: in the first `--phase-runs` rounds
 * (default: all) a managed migration is also driven from this process with
 * Ferry's own driver (`runMigration` from src/migration, over the daemons'
 * unix sockets), timing each of the five phases, to show where Ferry's time
 * goes next to the raw sequence's steps, without the CLI process.
 *
 * With namespaces, the stream itself is timed on the wire (the source veth's
 * transmit counter), the same clock for every contender; "wall minus the
 * stream" is the time a contender spends not moving memory. The raw runs
 * also run Ferry's `followMigration` as a shadow on the source's QMP, to
 * see when it notices the end next to an event-driven follower.
 *
 * Data-path contenders (`--contenders LIST` or the `--datapath` preset),
 * all p2p so that they differ from "Ferry p2p" only in how memory travels:
 * - tunnelled: `--p2p --tunnelled` to `ferry+tcp://` (the stream relayed
 *   by both ferryds over a daemon-to-daemon connection of its own);
 * - tunnelled-tls: the same to `ferry+tls://B:16614/system` (both ferryds
 *   `--listen-tls ADDR:16614 --tls-dir DIR`, the PKI from `ferry
 *   tls-setup DIR --host A --host B`): the tunnel is mutual TLS;
 * - compressed: `--p2p --compressed` (xbzrle); parallel: `--p2p
 *   --parallel` (multifd, 2 channels); parallel-zerocopy: `--p2p --parallel
 *   --zerocopy` (the same, the source QEMU sending with MSG_ZEROCOPY).
 *   `--contenders parallel,parallel-zerocopy` compares the source QEMU's
 *   CPU per byte of the two (the CPU table's "source QEMU CPU ms per 100 MB").
 *   Over a veth pair the kernel may still copy (completions marked
 *   "copied"): the figure is what this machine does, not a NIC's.
 * For every contender the wire monitor also samples the CPU time of both
 * ferryds, both QEMUs and the machine while the stream is on the wire, and
 * the data-path table gives each one's throughput on the wire against p2p
 * direct (else raw) of the same round.
 *
 * Run (as root, for the namespaces):
 *   npx tsx bench/migration.ts [--runs 3] [--rates 0,100] [--phase-runs N] [--loopback] [--subnet 237]
 *                              [--contenders raw,p2p,managed,tunnelled,tunnelled-tls,compressed,parallel,parallel-zerocopy] [--datapath]
 * (`--rates 0,100,200` adds a heavier writer; `--phase-runs 0` drops the
 * diagnostic, which by default runs only with the default contenders
 * raw,p2p,managed; `--datapath` = `--contenders
 * raw,p2p,tunnelled,tunnelled-tls,compressed,parallel`; `--subnet N` picks
 * 10.200.N.0/24 for the two hosts.)
 */
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../src/api/client.js';
import { remoteDestination, remoteSource } from '../src/api/migration-endpoints.js';
import { DomainDocument } from '../src/domain/index.js';
import { flagsFromNames } from '../src/flags/index.js';
import { runMigration, type DestinationEndpoint, type SourceEndpoint } from '../src/migration/driver.js';
import { followMigration } from '../src/migration/qemu-migration.js';
import { QmpClient, type QmpEvent } from '../src/qemu/index.js';
import { createHostPair, inNetns, netnsAvailable } from '../test/support/netns.js';
import { heartbeatCount, testGuestXml, waitForSerialFile } from '../test/support/guest-xml.js';
import { checkMigrationContinuity, parseSerialLog } from '../test/support/serial.js';
import { qemuPidsOf, startFerryd, type Ferryd } from './ferryd.js';
import { WireMonitor, ioDelta, now, procIo, type CpuProbe, type ProbePids, type ProcIo } from './wire.js';
import {
  CLI,
  GUEST,
  RESULTS_DIR,
  argFlag,
  argInt,
  argValue,
  fmtSummary,
  killIf,
  machineInfo,
  pidIs,
  procCpuMs,
  markdownTable,
  onCleanup,
  requireBuild,
  useDistSnapshot,
  rmTree,
  rotate,
  runMain,
  sleep,
  summarize,
  timedRun,
  writeResults,
  type Summary,
} from './lib.js';
import { exited, launchRawQemu, type MigrateInfo } from './raw-qemu.js';

// ------------------------------------------------------------ settings

const RUNS = argInt('runs', 3);
/** Every contender `--contenders` accepts, in table order. */
const ALL_CONTENDERS = ['raw', 'p2p', 'managed', 'tunnelled', 'tunnelled-tls', 'compressed', 'parallel', 'parallel-zerocopy'] as const;
type Contender = (typeof ALL_CONTENDERS)[number];
/** The default set (fast: ~3 min with the in-process diagnostic). */
const DEFAULT_CONTENDERS: Contender[] = ['raw', 'p2p', 'managed'];
/** `--datapath`: how memory travels (p2p only, so the modes differ only in the data path). */
const DATAPATH_CONTENDERS: Contender[] = ['raw', 'p2p', 'tunnelled', 'tunnelled-tls', 'compressed', 'parallel'];
const DATAPATH = argFlag('datapath');
const CONTENDERS: Contender[] = (() => {
  const arg = argValue('contenders');
  if (arg === undefined) return DATAPATH ? DATAPATH_CONTENDERS : DEFAULT_CONTENDERS;
  const picked = arg.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = picked.filter((c) => !(ALL_CONTENDERS as readonly string[]).includes(c));
  if (bad.length > 0 || picked.length === 0) {
    process.stderr.write(`--contenders expects a list of ${ALL_CONTENDERS.join(', ')}; not '${bad.join(',') || arg}'\n`);
    process.exit(2);
  }
  return ALL_CONTENDERS.filter((c) => picked.includes(c));
})();
/** The in-process diagnostic runs by default only with the default set (it needs managed mode to compare with). */
const PHASE_RUNS = Math.min(RUNS, Number(argValue('phase-runs') ?? (argValue('contenders') === undefined && !DATAPATH ? RUNS : 0)));
if (!Number.isSafeInteger(PHASE_RUNS) || PHASE_RUNS < 0) {
  process.stderr.write(`--phase-runs expects a whole number, not '${argValue('phase-runs')}'\n`);
  process.exit(2);
}
const RATES = (argValue('rates') ?? '0,100').split(',').map((s) => {
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 0) {
    process.stderr.write(`--rates expects MiB/s values like 0,100,200, not '${s}'\n`);
    process.exit(2);
  }
  return n;
});
const MEMORY_KIB = 262148; // 256 MiB + 4 KiB: QEMU 7.2 under TCG loses dirty pages with multiples of 256 KiB
const WS_MIB = 200;
const HB_MS = 250;
/** Heartbeats the source prints before the migration starts (the rewrite rate is steady by then). */
const WARM_HEARTBEATS = 4;
/** Time the destination runs after the migration before the logs are checked. */
const SETTLE_MS = 1500;
const MIGRATION_TIMEOUT_MS = 120_000;
const UNLIMITED_BANDWIDTH_BYTES = 2 ** 53 - 1;
const MB = 1e6;

type ContenderKey = Contender | 'phases';
type FerryMode = Exclude<Contender, 'raw'>;
/** What `ferry migrate --live` gets besides the domain, per Ferry contender; `tls`: to the destination's `ferry+tls://` endpoint. */
const FERRY_MODES: Record<FerryMode, { args: string[]; tls?: boolean }> = {
  p2p: { args: ['--p2p'] },
  managed: { args: [] },
  tunnelled: { args: ['--p2p', '--tunnelled'] },
  'tunnelled-tls': { args: ['--p2p', '--tunnelled'], tls: true },
  compressed: { args: ['--p2p', '--compressed'] },
  parallel: { args: ['--p2p', '--parallel'] },
  'parallel-zerocopy': { args: ['--p2p', '--parallel', '--zerocopy'] },
};
const LABEL: Record<ContenderKey, string> = {
  raw: 'raw QEMU (`migrate` to dest `cont`)',
  p2p: 'Ferry p2p (`ferry migrate --live --p2p`)',
  managed: 'Ferry managed (`ferry migrate --live`)',
  tunnelled: 'Ferry p2p tunnelled (`--p2p --tunnelled`, ferry+tcp)',
  'tunnelled-tls': 'Ferry p2p tunnelled over mutual TLS (`--p2p --tunnelled`, ferry+tls)',
  compressed: 'Ferry p2p compressed (`--p2p --compressed`: xbzrle)',
  parallel: 'Ferry p2p parallel (`--p2p --parallel`: multifd, 2 channels)',
  'parallel-zerocopy': 'Ferry p2p parallel zero-copy (`--p2p --parallel --zerocopy`: multifd, 2 channels, MSG_ZEROCOPY)',
  phases: 'Ferry managed, driven in-process with phase timings (diagnostic)',
};
/** TLS port of both ferryds (with namespaces; loopback picks free ports). */
const TLS_PORT = 16614;
type PhaseName = 'connect' | 'begin' | 'prepare' | 'perform' | 'finish' | 'confirm';

interface Host {
  name: 'a' | 'b';
  ns: string | undefined;
  address: string;
  ferryd: Ferryd;
  tcpPort: number;
}

interface RunResult {
  contender: ContenderKey;
  rateMiBps: number;
  run: number;
  domain: string;
  ok: boolean;
  /** Why the run failed (migration error or guest check). */
  problems: string[];
  /** Contender's wall time, ms: raw `migrate` -> dest `cont`; Ferry: the CLI process. */
  wallMs?: number;
  /** raw only: destination QEMU spawn -> source QEMU exit (what Ferry's job also covers). */
  fullSequenceMs?: number;
  /** raw only: phases of the full sequence, ms. */
  rawPhases?: { destStartMs: number; destTuneListenMs: number; sourceTuneMs: number; migrateToCompletedMs: number; destCompletedToContMs: number; sourceQuitMs: number; stopToSourceCompletedMs?: number };
  /** raw only: how much later Ferry's `followMigration`, run on the same QMP connection, saw the source's end than this program's follower, ms. */
  ferryFollowerLagMs?: number;
  /** raw only: see {@link MigrationEnd}. */
  qemuRaces?: { sourceEventDuringPoll: boolean; sourceStatsRaced: boolean; destEventDuringPoll?: boolean };
  /** raw only: max-bandwidth as QEMU reports it after tuning (bytes/s). */
  maxBandwidth?: number;
  /** phases only: duration of each phase as the driver saw it, ms. */
  phaseMs?: Partial<Record<PhaseName, number>>;
  /** phases only: source stop to perform's answer reaching the driver, and that to finish's answer, ms. */
  downtimeSplit?: { stopToPerformReturnedMs: number; performReturnedToFinishReturnedMs: number };
  /** Ferry CLI only: what `ferry --json migrate` printed (result and stats). */
  cliJson?: unknown;
  /** Ferry only: the CLI's own `wallTimeMs` (after connecting, to the answer). */
  cliReportedMs?: number;
  /** Ferry only: `ferry --version` in the same namespace in the same round (CLI start floor). */
  cliStartFloorMs?: number;
  /** Ferry only: user + system CPU time of that `ferry --version`, and of the `ferry migrate` process, ms. */
  cliStartFloorCpuMs?: number;
  cliCpuMs?: number;
  /** Source stop (switch-over) to destination `cont` returning, ms (libvirt's definition; Ferry's `downtime`). */
  downtimeMs?: number;
  /** QEMU's own downtime figure (raw only: Ferry replaces it with its own measurement). */
  qemuDowntimeMs?: number;
  setupMs?: number;
  /** The stream on the wire (source veth transmit counter), ms and bytes; netns only. */
  wireMs?: number;
  wireBytes?: number;
  /**
   * CPU time each process used while the stream was on the wire (from the
   * wire monitor's first to its last burst sample, /proc/PID/stat), ms;
   * netns only.
   */
  streamCpuMs?: Partial<Record<CpuProbe, number>>;
  /** Busy share of all the machine's CPUs over the same window (/proc/stat: everything, other users' work included), %. */
  machineBusyPct?: number;
  /** Ferry only: CPU time of each ferryd over the whole `ferry migrate` call, ms. */
  ferrydCpuMs?: { a: number; b: number };
  /** Ferry only: read/write syscalls and bytes of each ferryd over the whole `ferry migrate` call (/proc/PID/io). */
  ferrydIo?: { a?: ProcIo; b?: ProcIo };
  /** Ferry only: xbzrle figures of the source (`--compressed`). */
  compression?: { bytes?: number; pages?: number; cacheMisses?: number; overflow?: number };
  /** QEMU total-time (raw), or for Ferry setup + bytes / average throughput. */
  streamMs?: number;
  bytes?: number;
  /** QEMU's average throughput at completion (ram.mbps), bytes/s. */
  throughputBps?: number;
  iterations?: number;
  heartbeat?: { sourceLast?: number; destinationFirst?: number; destinationLast?: number };
}

// ------------------------------------------------------------ helpers

/** The test guest (test/support/guest-xml.ts) with this benchmark's memory, working set, rate and sampled verification. */
function domainXml(name: string, uuid: string, rate: number): string {
  return testGuestXml({ name, uuid, memoryKiB: MEMORY_KIB, cmdline: `ws=${WS_MIB} rate=${rate} hb=${HB_MS} verify=sample` });
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Waits until the log at `path` shows `count` heartbeats (see waitForSerialFile). */
const waitHeartbeats = async (path: string, count: number): Promise<void> => void (await waitForSerialFile(path, heartbeatCount(count)));

function freePort(host: string): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen({ host, port: 0 }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}



/** How a migration's end was seen. */
interface MigrationEnd {
  info: MigrateInfo;
  /**
   * A MIGRATION completed/failed/cancelled event arrived while a
   * `query-migrate` was in flight (and that query's answer did not yet say
   * so). A poller that drops such an event (polls only when none is in
   * flight) sees the end only at its next periodic poll.
   */
  eventDuringPoll: boolean;
  /** QEMU 7.2 says `completed` before it has computed total-time/downtime/mbps: the first `completed` answer had total-time 0. */
  statsRaced: boolean;
}

/**
 * Waits until `query-migrate` on `qmp` says completed (or failed/cancelled):
 * a MIGRATION end event triggers a query at once (queued behind one in
 * flight, never dropped), plus a 100 ms periodic poll.
 */
function untilMigrationEnds(qmp: QmpClient, timeoutMs: number): Promise<MigrationEnd> {
  return new Promise((resolveEnd, reject) => {
    let done = false;
    let polling = false;
    let again = false;
    let eventDuringPoll = false;
    const finish = (err: Error | null, end?: MigrationEnd) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      clearTimeout(deadline);
      qmp.off('event', onEvent);
      if (err) reject(err);
      else resolveEnd(end!);
    };
    const completed = (info: MigrateInfo) => finish(null, { info, eventDuringPoll, statsRaced: !info['total-time'] });
    const poll = async (): Promise<void> => {
      if (done) return;
      if (polling) {
        again = true;
        return;
      }
      polling = true;
      try {
        const info = await qmp.execute<MigrateInfo>('query-migrate', undefined, { timeoutMs: 10_000 });
        if (info.status === 'completed') {
          again = false;
          completed(info);
        } else if (info.status === 'failed' || info.status === 'cancelled') finish(new Error(`migration ${info.status}: ${info['error-desc'] ?? ''}`));
        else if (again) eventDuringPoll = true;
      } catch (err) {
        finish(err as Error);
      } finally {
        polling = false;
      }
      if (again && !done) {
        again = false;
        await poll();
      }
    };
    const onEvent = (ev: QmpEvent) => {
      if (ev.event !== 'MIGRATION') return;
      const st = (ev.data as { status?: string } | undefined)?.status;
      if (st === 'completed' || st === 'failed' || st === 'cancelled') void poll();
    };
    qmp.on('event', onEvent);
    const timer = setInterval(() => {
      // A periodic tick never queues behind a query in flight.
      if (!polling) void poll();
    }, 100);
    const deadline = setTimeout(() => finish(new Error(`migration did not end within ${timeoutMs} ms`)), timeoutMs);
    void poll();
  });
}

// ------------------------------------------------------------ the benchmark

async function main(): Promise<void> {
  requireBuild(true);
  await useDistSnapshot();
  const work = mkdtempSync(join(tmpdir(), 'ferry-bench-mig-'));
  onCleanup('temp dir', () => rmTree(work));
  const failedLogsDir = join(RESULTS_DIR, 'migration-failed-logs');

  // Hosts: two namespaces on a veth link, or loopback ports.
  const useNetns = !argFlag('loopback') && netnsAvailable();
  let addrA = '127.0.0.1';
  let addrB = '127.0.0.1';
  let nsA: string | undefined;
  let nsB: string | undefined;
  const vethPrefix = `fbm${process.pid % 100000}`;
  if (useNetns) {
    const subnet = argInt('subnet', 237);
    const pair = createHostPair(vethPrefix, subnet);
    onCleanup('network namespaces', () => pair.destroy());
    nsA = pair.a.ns;
    nsB = pair.b.ns;
    addrA = pair.a.address;
    addrB = pair.b.address;
  } else {
    process.stderr.write('(network namespaces unavailable or --loopback: both hosts on 127.0.0.1)\n');
  }
  const portA = useNetns ? 16609 : await freePort('127.0.0.1');
  const portB = useNetns ? 16609 : await freePort('127.0.0.1');
  // Mutual TLS for the contenders that need it: one test PKI (`ferry tls-setup`) whose server
  // certificate names both addresses; each ferryd serves --listen-tls and uses the client
  // certificate of the same --tls-dir for its peer connections.
  const needTls = CONTENDERS.some((c) => c !== 'raw' && FERRY_MODES[c].tls);
  const tlsDir = join(work, 'pki');
  const tlsPortA = needTls ? (useNetns ? TLS_PORT : await freePort('127.0.0.1')) : 0;
  const tlsPortB = needTls ? (useNetns ? TLS_PORT : await freePort('127.0.0.1')) : 0;
  if (needTls) {
    const hosts = [...new Set([addrA, addrB])].flatMap((h) => ['--host', h]);
    const pki = await timedRun(process.execPath, [CLI, 'tls-setup', tlsDir, ...hosts], { timeoutMs: 60_000 });
    if (pki.code !== 0) throw new Error(`ferry tls-setup failed: ${pki.stderr.trim() || pki.stdout.trim()}`);
  }
  const tlsOpts = (addr: string, port: number) => (needTls ? { tlsDir, listenTls: `${addr}:${port}` } : {});
  const [fa, fb] = await Promise.all([
    startFerryd({ dir: join(work, 'host-a'), hostName: 'bench-a', ...(nsA ? { netns: nsA } : {}), listenTcp: `${addrA}:${portA}`, ...tlsOpts(addrA, tlsPortA) }),
    startFerryd({ dir: join(work, 'host-b'), hostName: 'bench-b', ...(nsB ? { netns: nsB } : {}), listenTcp: `${addrB}:${portB}`, ...tlsOpts(addrB, tlsPortB) }),
  ]);
  // Kept for a post-mortem (runs at clean-up, before the temp dir goes, after the daemons stopped).
  onCleanup('keep ferryd logs', () => {
    mkdirSync(RESULTS_DIR, { recursive: true });
    cpSync(fa.logPath, join(RESULTS_DIR, 'migration-ferryd-a.log'));
    cpSync(fb.logPath, join(RESULTS_DIR, 'migration-ferryd-b.log'));
  });
  const A: Host = { name: 'a', ns: nsA, address: addrA, ferryd: fa, tcpPort: portA };
  const B: Host = { name: 'b', ns: nsB, address: addrB, ferryd: fb, tcpPort: portB };
  const destUri = `ferry+tcp://${B.address}:${B.tcpPort}/system`;
  const destTlsUri = `ferry+tls://${B.address}:${tlsPortB}/system`;
  // The veth end in host a's namespace (named as createHostPair names it), seen through ferryd a's /proc entry.
  let wire: WireMonitor | undefined = useNetns ? new WireMonitor(fa.pid, `${vethPrefix.slice(0, 10)}a`) : undefined;
  if (wire && !wire.usable()) {
    process.stderr.write('(cannot read the veth counters: no on-wire stream times)\n');
    wire = undefined;
  }
  process.stderr.write(`hosts: a ${A.address} (${A.ns ?? 'no netns'}), b ${B.address} (${B.ns ?? 'no netns'}); ferryd ready in ${fa.readyMs.toFixed(0)} / ${fb.readyMs.toFixed(0)} ms\n`);

  const rawDir = join(work, 'raw');
  mkdirSync(rawDir, { recursive: true });
  const xmlDir = join(work, 'xml');
  mkdirSync(xmlDir, { recursive: true });

  /** Runs the CLI inside a host's namespace. */
  const cliIn = (h: Host, args: string[], timeoutMs = MIGRATION_TIMEOUT_MS, cpu = false) => {
    const { file, args: argv } = inNetns(h.ns, [process.execPath, CLI, ...args]);
    return timedRun(file, argv, { timeoutMs, cpu });
  };

  const keepLogs = (r: RunResult, files: Record<string, string>) => {
    const dir = join(failedLogsDir, r.domain);
    mkdirSync(dir, { recursive: true });
    for (const [name, path] of Object.entries(files)) if (existsSync(path)) cpSync(path, join(dir, name));
    writeFileSync(join(dir, 'result.json'), JSON.stringify(r, null, 2));
  };

  const checkGuest = (r: RunResult, srcLog: string, dstLog: string) => {
    const c = checkMigrationContinuity(srcLog, dstLog);
    const dst = parseSerialLog(srcLog + dstLog);
    r.heartbeat = {
      ...(c.sourceLast ? { sourceLast: c.sourceLast.counter } : {}),
      ...(c.destinationFirst ? { destinationFirst: c.destinationFirst.counter } : {}),
      ...(dst.lastHeartbeat ? { destinationLast: dst.lastHeartbeat.counter } : {}),
    };
    if (!c.ok) r.problems.push(...c.problems);
    // A few heartbeats must follow on the destination (the guest really runs there).
    const after = (dst.lastHeartbeat?.counter ?? 0) - (c.sourceLast?.counter ?? 0);
    if (c.ok && after < 3) r.problems.push(`only ${after} heartbeats on the destination ${SETTLE_MS} ms after the migration`);
  };

  /** The QEMU of domain `name` among a ferryd's status files (its `-name guest=NAME`), once it exists. */
  const ferryQemu = (h: Host, name: string): (() => number | undefined) => {
    let pid: number | undefined;
    return () => {
      if (pid === undefined) pid = qemuPidsOf(h.ferryd.runDir).find((p) => pidIs(p, `guest=${name}\0`));
      return pid;
    };
  };
  const probes = (qemuSrc: () => number | undefined, qemuDst: () => number | undefined): ProbePids => ({ ferrydA: () => fa.pid, ferrydB: () => fb.pid, qemuSrc, qemuDst });
  const recordWire = (r: RunResult, w: ReturnType<WireMonitor['stop']>) => {
    if (!w) return;
    r.wireMs = w.ms;
    r.wireBytes = w.bytes;
    r.streamCpuMs = w.cpuMs;
    if (w.machineBusyPct !== undefined) r.machineBusyPct = w.machineBusyPct;
  };

  // ---------------- raw QEMU
  const rawRun = async (rate: number, run: number): Promise<RunResult> => {
    const name = `raw-r${rate}-${run}`;
    const r: RunResult = { contender: 'raw', rateMiBps: rate, run, domain: name, ok: false, problems: [] };
    const def = DomainDocument.parse(domainXml(name, randomUUID(), rate)).def;
    const files = {
      srcSerial: join(rawDir, `${name}-src.serial.log`),
      dstSerial: join(rawDir, `${name}-dst.serial.log`),
      srcQemu: join(rawDir, `${name}-src.qemu.log`),
      dstQemu: join(rawDir, `${name}-dst.qemu.log`),
    };
    const children: ChildProcess[] = [];
    const qmps: QmpClient[] = [];
    const unregister = onCleanup(`raw QEMUs of ${name}`, () => {
      for (const c of children) if (c.pid) killIf(c.pid, 'qemu', 'SIGKILL');
    });
    const launch = async (h: Host, side: 'src' | 'dst'): Promise<{ child: ChildProcess; qmp: QmpClient }> => {
      const q = await launchRawQemu({
        def,
        ns: h.ns,
        dir: rawDir,
        qmpPath: join(rawDir, `${name}-${side}.qmp`),
        serialLog: side === 'src' ? files.srcSerial : files.dstSerial,
        qemuLog: side === 'src' ? files.srcQemu : files.dstQemu,
        incoming: side === 'dst',
      });
      children.push(q.child);
      qmps.push(q.qmp);
      return q;
    };
    try {
      const src = await launch(A, 'src');
      await src.qmp.execute('cont');
      await waitHeartbeats(files.srcSerial, WARM_HEARTBEATS);

      // What Ferry's prepare does: destination QEMU paused with -incoming defer, tuned, listening.
      const tDest0 = now();
      const dst = await launch(B, 'dst');
      const tDestUp = now();
      const tune = async (q: QmpClient) => {
        await q.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
        await q.execute('migrate-set-parameters', { 'max-bandwidth': UNLIMITED_BANDWIDTH_BYTES });
      };
      await tune(dst.qmp);
      const port = useNetns ? 49300 : await freePort('127.0.0.1');
      await dst.qmp.execute('migrate-incoming', { uri: `tcp:${useNetns ? '0.0.0.0' : '127.0.0.1'}:${port}` });
      const tListen = now();
      await tune(src.qmp);
      const tSrcTuned = now();
      const params = await src.qmp.execute<{ 'max-bandwidth'?: number }>('query-migrate-parameters');
      if (params['max-bandwidth'] !== undefined) r.maxBandwidth = params['max-bandwidth'];
      if (params['max-bandwidth'] !== UNLIMITED_BANDWIDTH_BYTES) throw new Error(`max-bandwidth is ${params['max-bandwidth']}, not unlimited`);

      let tStop: number | undefined;
      src.qmp.on('event', (ev) => {
        if (ev.event === 'STOP' && tStop === undefined) tStop = now();
      });
      wire?.start(probes(() => src.child.pid, () => dst.child.pid));
      const t0 = now();
      await src.qmp.execute('migrate', { uri: `tcp:${B.address}:${port}` });
      // Shadow, not on the timed path: Ferry's own follower (as perform runs it, 250 ms polls plus
      // events) on the same QMP connection, to see when it notices the end next to ours.
      let tShadow: number | undefined;
      const shadow = followMigration(src.qmp, { pollMs: 250 }).then(() => {
        tShadow = now();
      });
      const srcEnd = await untilMigrationEnds(src.qmp, MIGRATION_TIMEOUT_MS);
      const tSrcDone = now();
      r.qemuRaces = { sourceEventDuringPoll: srcEnd.eventDuringPoll, sourceStatsRaced: srcEnd.statsRaced };
      const dstEnd = await untilMigrationEnds(dst.qmp, 30_000);
      r.qemuRaces.destEventDuringPoll = dstEnd.eventDuringPoll;
      await dst.qmp.execute('cont');
      const t1 = now();
      recordWire(r, wire?.stop());
      // Not timed: QEMU 7.2 may answer `completed` before it has computed total-time,
      // downtime and mbps; ask the (stopped) source again for the final figures.
      let info = srcEnd.info;
      for (let i = 0; i < 20 && !info['total-time']; i++) {
        await sleep(50);
        info = await src.qmp.execute<MigrateInfo>('query-migrate');
      }
      await Promise.race([shadow, sleep(2000)]);
      if (tShadow !== undefined) r.ferryFollowerLagMs = tShadow - tSrcDone;
      // What Ferry's confirm does: stop the source QEMU.
      const tQuit0 = now();
      await src.qmp.execute('quit').catch(() => undefined);
      await exited(src.child);
      const tQuit = now();

      r.wallMs = t1 - t0;
      r.fullSequenceMs = tQuit - tDest0 - (tQuit0 - t1);
      r.rawPhases = {
        destStartMs: tDestUp - tDest0,
        destTuneListenMs: tListen - tDestUp,
        sourceTuneMs: tSrcTuned - tListen,
        migrateToCompletedMs: tSrcDone - t0,
        destCompletedToContMs: t1 - tSrcDone,
        sourceQuitMs: tQuit - tQuit0,
        ...(tStop !== undefined ? { stopToSourceCompletedMs: tSrcDone - tStop } : {}),
      };
      if (tStop !== undefined) r.downtimeMs = t1 - tStop;
      if (info.downtime !== undefined) r.qemuDowntimeMs = info.downtime;
      if (info['setup-time'] !== undefined) r.setupMs = info['setup-time'];
      if (info['total-time'] !== undefined) r.streamMs = info['total-time'];
      if (info.ram?.transferred !== undefined) r.bytes = info.ram.transferred;
      if (info.ram?.mbps !== undefined) r.throughputBps = (info.ram.mbps * 1e6) / 8;
      if (info.ram?.['dirty-sync-count'] !== undefined) r.iterations = info.ram['dirty-sync-count'];

      await sleep(SETTLE_MS);
      checkGuest(r, readText(files.srcSerial), readText(files.dstSerial));
    } catch (err) {
      r.problems.push(`migration failed: ${(err as Error).message}`);
    } finally {
      for (const q of qmps) q.close();
      for (const c of children) if (c.pid) killIf(c.pid, 'qemu', 'SIGKILL');
      await Promise.all(children.map(exited));
      unregister();
    }
    r.ok = r.problems.length === 0;
    if (!r.ok) keepLogs(r, files);
    return r;
  };

  // ---------------- Ferry: p2p or managed, and the data-path variants of p2p
  const ferryRun = async (mode: FerryMode, rate: number, run: number): Promise<RunResult> => {
    const name = `${mode}-r${rate}-${run}`;
    const r: RunResult = { contender: mode, rateMiBps: rate, run, domain: name, ok: false, problems: [] };
    const xmlPath = join(xmlDir, `${name}.xml`);
    writeFileSync(xmlPath, domainXml(name, randomUUID(), rate));
    const files = {
      srcSerial: join(A.ferryd.stateDir, 'logs', `${name}.serial.log`),
      dstSerial: join(B.ferryd.stateDir, 'logs', `${name}.serial.log`),
      srcQemu: join(A.ferryd.stateDir, 'logs', `${name}.qemu.log`),
      dstQemu: join(B.ferryd.stateDir, 'logs', `${name}.qemu.log`),
      srcFerryd: A.ferryd.logPath,
      dstFerryd: B.ferryd.logPath,
    };
    try {
      const created = await cliIn(A, ['-c', A.ferryd.unixUri, 'create', xmlPath], 60_000);
      if (created.code !== 0) throw new Error(`ferry create: ${created.stderr.trim()}`);
      await waitHeartbeats(files.srcSerial, WARM_HEARTBEATS);

      // CLI start floor in the same namespace, same moment: `ferry --version` (for the CLI table
      // of the default set; the data-path modes share the CLI process with p2p).
      if (mode === 'p2p' || mode === 'managed') {
        const floor = await cliIn(A, ['--version'], 30_000, true);
        if (floor.code === 0) {
          r.cliStartFloorMs = floor.ms;
          if (floor.cpuMs !== undefined) r.cliStartFloorCpuMs = floor.cpuMs;
        }
      }

      const m = FERRY_MODES[mode];
      const args = ['-c', A.ferryd.unixUri, '--json', 'migrate', '--live', ...m.args, name, m.tls ? destTlsUri : destUri];
      const cpuA0 = procCpuMs(fa.pid);
      const cpuB0 = procCpuMs(fb.pid);
      const ioA0 = procIo(fa.pid);
      const ioB0 = procIo(fb.pid);
      wire?.start(probes(ferryQemu(A, name), ferryQemu(B, name)));
      const res = await cliIn(A, args, MIGRATION_TIMEOUT_MS, true);
      recordWire(r, wire?.stop());
      r.ferrydCpuMs = { a: procCpuMs(fa.pid) - cpuA0, b: procCpuMs(fb.pid) - cpuB0 };
      const ioA = ioDelta(ioA0, procIo(fa.pid));
      const ioB = ioDelta(ioB0, procIo(fb.pid));
      r.ferrydIo = { ...(ioA ? { a: ioA } : {}), ...(ioB ? { b: ioB } : {}) };
      r.wallMs = res.ms;
      if (res.cpuMs !== undefined) r.cliCpuMs = res.cpuMs;
      let out: { result?: unknown; stats?: Record<string, number> | null; wallTimeMs?: number; error?: { message?: string } } = {};
      try {
        out = JSON.parse(res.stdout || res.stderr) as typeof out;
      } catch {
        // Not JSON: reported below.
      }
      r.cliJson = out;
      if (res.code !== 0) throw new Error(`ferry migrate exited ${res.code ?? res.signal}: ${out.error?.message ?? (res.stderr.trim() || res.stdout.trim())}`);
      if (out.wallTimeMs !== undefined) r.cliReportedMs = out.wallTimeMs;
      const s = out.stats ?? {};
      if (s.downtime !== undefined) r.downtimeMs = s.downtime;
      if (s.setup_time !== undefined) r.setupMs = s.setup_time;
      if (s.data_processed !== undefined) r.bytes = s.data_processed;
      if (s.memory_bps !== undefined) r.throughputBps = s.memory_bps;
      if (s.memory_iteration !== undefined) r.iterations = s.memory_iteration;
      if (s.compression_bytes !== undefined || s.compression_pages !== undefined) {
        r.compression = { bytes: s.compression_bytes, pages: s.compression_pages, cacheMisses: s.compression_cache_misses, overflow: s.compression_overflow };
      }
      if (r.bytes !== undefined && r.throughputBps) r.streamMs = (r.setupMs ?? 0) + (r.bytes / r.throughputBps) * 1000;
      // The source QEMU must be gone once the CLI returns (confirm stops it).
      const leftover = qemuPidsOf(A.ferryd.runDir).filter((p) => existsSync(`/proc/${p}`));
      if (leftover.length > 0) r.problems.push(`source QEMU still running after the migration (pids ${leftover.join(', ')})`);

      await sleep(SETTLE_MS);
      checkGuest(r, readText(files.srcSerial), readText(files.dstSerial));
    } catch (err) {
      r.problems.push(`migration failed: ${(err as Error).message}`);
    } finally {
      // Fresh state for the next run: the guest goes away on both hosts (both at once: a CLI start each).
      await Promise.all([B, A].map((h) => cliIn(h, ['-c', h.ferryd.unixUri, 'destroy', name], 30_000).catch(() => null)));
    }
    r.ok = r.problems.length === 0;
    if (!r.ok) keepLogs(r, files);
    return r;
  };

  // ---------------- diagnostic: managed mode driven here, each phase timed
  const phasesRun = async (rate: number, run: number): Promise<RunResult> => {
    const name = `phases-r${rate}-${run}`;
    const r: RunResult = { contender: 'phases', rateMiBps: rate, run, domain: name, ok: false, problems: [], phaseMs: {} };
    const xmlPath = join(xmlDir, `${name}.xml`);
    writeFileSync(xmlPath, domainXml(name, randomUUID(), rate));
    const files = {
      srcSerial: join(A.ferryd.stateDir, 'logs', `${name}.serial.log`),
      dstSerial: join(B.ferryd.stateDir, 'logs', `${name}.serial.log`),
      srcFerryd: A.ferryd.logPath,
      dstFerryd: B.ferryd.logPath,
    };
    const clients: ApiClient[] = [];
    try {
      const created = await cliIn(A, ['-c', A.ferryd.unixUri, 'create', xmlPath], 60_000);
      if (created.code !== 0) throw new Error(`ferry create: ${created.stderr.trim()}`);
      await waitHeartbeats(files.srcSerial, WARM_HEARTBEATS);
      const phaseMs = r.phaseMs!;
      const timed = async <T>(phase: PhaseName, f: () => Promise<T>): Promise<T> => {
        const t = now();
        try {
          return await f();
        } finally {
          phaseMs[phase] = now() - t;
        }
      };
      const tStart = now();
      // As the CLI does: one connection per daemon, hello on both (the daemons' unix sockets here).
      const [ca, cb] = await timed('connect', async () => {
        const pair = await Promise.all([ApiClient.connect(A.ferryd.unixUri), ApiClient.connect(B.ferryd.unixUri)]);
        clients.push(...pair);
        await Promise.all(pair.map((c) => c.call('connect.hello', {})));
        return pair;
      });
      const src0 = remoteSource(ca);
      const dst0 = remoteDestination(cb);
      let performReturnedAt = 0;
      let stoppedAt: number | undefined;
      const src: SourceEndpoint = {
        begin: (d, req) => timed('begin', () => src0.begin(d, req)),
        perform: (a) =>
          timed('perform', async () => {
            const res = await src0.perform(a);
            performReturnedAt = Date.now();
            stoppedAt = res.sourceStoppedAt;
            return res;
          }),
        confirm: (a) => timed('confirm', () => src0.confirm(a)),
        cancel: (jobId, why) => src0.cancel(jobId, why),
      };
      const dst: DestinationEndpoint = {
        addressForData: B.address,
        prepare: (a) => timed('prepare', () => dst0.prepare(a)),
        finish: (a) => timed('finish', () => dst0.finish(a)),
        abortUnlessFinished: (jobId, uuid) => dst0.abortUnlessFinished(jobId, uuid),
        connectionLost: () => dst0.connectionLost(),
        whenLost: () => dst0.whenLost(),
      };
      // Over unix sockets the destination's data address would be 127.0.0.1: name it explicitly (the port is still the prepared one).
      wire?.start(probes(ferryQemu(A, name), ferryQemu(B, name)));
      const out = await runMigration(src, dst, name, { flags: flagsFromNames(['LIVE']), params: { migrate_uri: `tcp://${B.address}` }, destUri });
      const finishReturnedAt = Date.now();
      r.wallMs = now() - tStart;
      recordWire(r, wire?.stop());
      const s = out.perform?.stats;
      if (out.finish.downtimeMs !== undefined) r.downtimeMs = out.finish.downtimeMs;
      if (s?.setup_time !== undefined) r.setupMs = s.setup_time;
      if (s?.data_processed !== undefined) r.bytes = s.data_processed;
      if (s?.memory_bps !== undefined) r.throughputBps = s.memory_bps;
      if (s?.memory_iteration !== undefined) r.iterations = s.memory_iteration;
      if (r.bytes !== undefined && r.throughputBps) r.streamMs = (r.setupMs ?? 0) + (r.bytes / r.throughputBps) * 1000;
      if (stoppedAt !== undefined) {
        // finish's answer arrived before confirm ran; confirm's duration is not part of the downtime.
        const finishDone = finishReturnedAt - (phaseMs.confirm ?? 0);
        r.downtimeSplit = { stopToPerformReturnedMs: performReturnedAt - stoppedAt, performReturnedToFinishReturnedMs: finishDone - performReturnedAt };
      }
      await sleep(SETTLE_MS);
      checkGuest(r, readText(files.srcSerial), readText(files.dstSerial));
    } catch (err) {
      r.problems.push(`migration failed: ${(err as Error).message}`);
    } finally {
      for (const c of clients) c.close();
      for (const h of [B, A]) await cliIn(h, ['-c', h.ferryd.unixUri, 'destroy', name], 30_000).catch(() => null);
    }
    r.ok = r.problems.length === 0;
    if (!r.ok) keepLogs(r, files);
    return r;
  };

  // ---------------- the runs, alternated
  const results: RunResult[] = [];
  const t0 = Date.now();
  const loadStart = os.loadavg();
  for (const rate of RATES) {
    for (let run = 1; run <= RUNS; run++) {
      const round: ContenderKey[] = run <= PHASE_RUNS ? [...CONTENDERS, 'phases'] : CONTENDERS;
      for (const c of rotate(round, run - 1 + RATES.indexOf(rate))) {
        const r = c === 'raw' ? await rawRun(rate, run) : c === 'phases' ? await phasesRun(rate, run) : await ferryRun(c, rate, run);
        results.push(r);
        process.stderr.write(
          `rate ${rate} run ${run} ${c.padEnd(13)}: ${r.ok ? 'OK    ' : 'FAILED'} wall ${r.wallMs?.toFixed(0) ?? '-'} ms` +
            `${r.fullSequenceMs !== undefined ? ` (full ${r.fullSequenceMs.toFixed(0)} ms)` : ''}, downtime ${r.downtimeMs?.toFixed(0) ?? '-'} ms, ` +
            `${r.bytes !== undefined ? (r.bytes / MB).toFixed(0) : '-'} MB, wire ${r.wireMs?.toFixed(0) ?? '-'} ms ` +
            `${r.wireBytes !== undefined && r.wireMs ? (r.wireBytes / MB / (r.wireMs / 1000)).toFixed(0) : '-'} MB/s, ferryd a CPU ${r.streamCpuMs?.ferrydA?.toFixed(0) ?? '-'} ms, HB ${r.heartbeat?.sourceLast ?? '-'} -> ${r.heartbeat?.destinationFirst ?? '-'}` +
            `${r.ok ? '' : `: ${r.problems.join('; ')}`}\n`,
        );
      }
    }
  }
  const elapsedS = (Date.now() - t0) / 1000;
  const loadEnd = os.loadavg();
  const load = (l: number[]) => l.map((x) => x.toFixed(1)).join(', ');

  // ---------------- tables
  // On the wire where it could be seen; else QEMU's figures (raw: total-time; Ferry: setup + bytes / average rate).
  const streamOf = (r: RunResult) => (wire ? r.wireMs : r.streamMs);
  const streamWhat = wire ? 'the stream on the wire' : "QEMU's migration time";
  const summaryRows: string[][] = [];
  const summaries: Record<string, unknown>[] = [];
  const ok = (rs: RunResult[]) => rs.filter((r) => r.ok);
  const sum = (rs: RunResult[], f: (r: RunResult) => number | undefined): Summary => summarize(ok(rs).map(f).filter((x): x is number => x !== undefined));
  for (const rate of RATES) {
    const workload = rate === 0 ? 'idle (rate=0)' : `writing ${rate} MiB/s`;
    const raw = results.filter((r) => r.rateMiBps === rate && r.contender === 'raw');
    const rawWall = sum(raw, (r) => r.wallMs);
    const rawFull = sum(raw, (r) => r.fullSequenceMs);
    const row = (label: string, rs: RunResult[], wall: Summary, ratio: string, wallOf: (r: RunResult) => number | undefined, extra: { qemuDowntime?: boolean } = {}) => {
      const downtime = fmtSummary(sum(rs, (r) => r.downtimeMs));
      const overhead = sum(rs, (r) => {
        const w = wallOf(r);
        const stream = streamOf(r);
        return w !== undefined && stream ? w - stream : undefined;
      });
      const qd = extra.qemuDowntime ? ` [QEMU ${fmtSummary(sum(rs, (r) => r.qemuDowntimeMs))}]` : '';
      summaryRows.push([
        workload,
        label,
        `${ok(rs).length}/${rs.length}${rs.length - ok(rs).length > 0 ? ' (FAILED runs below)' : ''}`,
        fmtSummary(wall),
        fmtSummary(overhead),
        `${downtime}${qd}`,
        fmtSummary(sum(rs, (r) => r.setupMs)),
        fmtSummary(sum(rs, (r) => (r.bytes !== undefined ? r.bytes / MB : undefined))),
        fmtSummary(sum(rs, (r) => (r.throughputBps !== undefined ? r.throughputBps / MB : undefined))),
        ratio,
      ]);
    };
    if (CONTENDERS.includes('raw')) {
      row(LABEL.raw, raw, rawWall, '1.00', (r) => r.wallMs, { qemuDowntime: true });
      row('raw QEMU, whole sequence (dest QEMU start to source QEMU exit)', raw, rawFull, rawWall.n ? (rawFull.median / rawWall.median).toFixed(2) : '-', (r) => r.fullSequenceMs);
    }
    for (const c of CONTENDERS.filter((x): x is FerryMode => x !== 'raw')) {
      const rs = results.filter((r) => r.rateMiBps === rate && r.contender === c);
      const wall = sum(rs, (r) => r.wallMs);
      const ratio = rawWall.n && wall.n ? `${(wall.median / rawWall.median).toFixed(2)} (vs whole: ${(wall.median / rawFull.median).toFixed(2)})` : '-';
      row(LABEL[c], rs, wall, ratio, (r) => r.wallMs);
      summaries.push({ rate, contender: c, wallMs: wall, ratioToRaw: wall.median / rawWall.median, ratioToRawWhole: wall.median / rawFull.median });
    }
    const ph = results.filter((r) => r.rateMiBps === rate && r.contender === 'phases');
    if (ph.length > 0) {
      const wall = sum(ph, (r) => r.wallMs);
      row('Ferry managed driver in-process, no CLI process (diagnostic)', ph, wall, rawWall.n && wall.n ? `${(wall.median / rawWall.median).toFixed(2)} (vs whole: ${(wall.median / rawFull.median).toFixed(2)})` : '-', (r) => r.wallMs);
      summaries.push({ rate, contender: 'phases', wallMs: wall, ratioToRaw: wall.median / rawWall.median, ratioToRawWhole: wall.median / rawFull.median });
    }
    if (CONTENDERS.includes('raw')) summaries.push({ rate, contender: 'raw', wallMs: rawWall, fullSequenceMs: rawFull });
  }

  // The data path: how fast memory moved, each contender against p2p direct (else raw) of the same round.
  const wireMBps = (r: RunResult) => (r.wireBytes !== undefined && r.wireMs ? r.wireBytes / MB / (r.wireMs / 1000) : undefined);
  const tputOf = (r: RunResult) => (wire ? wireMBps(r) : r.throughputBps !== undefined ? r.throughputBps / MB : undefined);
  const tputWhat = wire ? 'on the wire' : "QEMU's average";
  const reference: Contender | undefined = CONTENDERS.includes('p2p') ? 'p2p' : CONTENDERS.includes('raw') ? 'raw' : undefined;
  const sameRound = (r: RunResult, c: Contender) => results.find((x) => x.ok && x.contender === c && x.rateMiBps === r.rateMiBps && x.run === r.run);
  const ratioTo = (rs: RunResult[], c: Contender | undefined) =>
    c === undefined
      ? summarize([])
      : sum(rs, (r) => {
          const d = sameRound(r, c);
          const a = tputOf(r);
          const b = d ? tputOf(d) : undefined;
          return a !== undefined && b ? a / b : undefined;
        });
  const pctOf = (r: RunResult, k: CpuProbe) => (r.streamCpuMs?.[k] !== undefined && r.wireMs ? (100 * r.streamCpuMs[k]!) / r.wireMs : undefined);
  const SHORT: Record<Contender, string> = {
    raw: 'raw QEMU',
    p2p: 'p2p direct',
    managed: 'managed direct',
    tunnelled: 'p2p tunnelled (ferry+tcp)',
    'tunnelled-tls': 'p2p tunnelled (ferry+tls, mutual TLS)',
    compressed: 'p2p --compressed (xbzrle)',
    parallel: 'p2p --parallel (multifd, 2 channels)',
    'parallel-zerocopy': 'p2p --parallel --zerocopy (multifd, 2 channels, zero-copy send)',
  };
  /** Median KiB per read and per write syscall of a ferryd over the migrate call (only meaningful when it relays the stream). */
  const ioCell = (rs: RunResult[], h: 'a' | 'b') => {
    const rd = sum(rs, (r) => (r.ferrydIo?.[h]?.syscr ? r.ferrydIo[h]!.rchar / r.ferrydIo[h]!.syscr / 1024 : undefined));
    const wr = sum(rs, (r) => (r.ferrydIo?.[h]?.syscw ? r.ferrydIo[h]!.wchar / r.ferrydIo[h]!.syscw / 1024 : undefined));
    const n = sum(rs, (r) => (r.ferrydIo?.[h] ? r.ferrydIo[h]!.syscr + r.ferrydIo[h]!.syscw : undefined));
    return rd.n ? `${rd.median.toFixed(1)} / ${wr.median.toFixed(1)} (${n.median.toFixed(0)} calls)` : '-';
  };
  /** CPU of the whole chain (both ferryds, both QEMUs) per 100 MB on the wire: what moving the memory costs, whoever does it. */
  const chainCpuPer100MB = (r: RunResult) => {
    const c = r.streamCpuMs;
    if (!c || !r.wireBytes || c.qemuSrc === undefined || c.qemuDst === undefined) return undefined;
    return ((c.ferrydA ?? 0) + (c.ferrydB ?? 0) + c.qemuSrc + c.qemuDst) / (r.wireBytes / MB / 100);
  };
  const dataRows: string[][] = [];
  const cpuRows: string[][] = [];
  for (const rate of RATES) {
    const w = rate === 0 ? 'idle' : `${rate} MiB/s`;
    for (const c of CONTENDERS) {
      const rs = results.filter((r) => r.rateMiBps === rate && r.contender === c);
      const toRef = ratioTo(rs, reference);
      const toRaw = ratioTo(rs, CONTENDERS.includes('raw') ? 'raw' : undefined);
      dataRows.push([
        w,
        SHORT[c],
        `${ok(rs).length}/${rs.length}`,
        fmtSummary(sum(rs, (r) => r.wallMs)),
        fmtSummary(sum(rs, (r) => r.wireMs)),
        fmtSummary(sum(rs, (r) => (r.bytes !== undefined ? r.bytes / MB : undefined))),
        fmtSummary(sum(rs, (r) => (r.wireBytes !== undefined ? r.wireBytes / MB : undefined))),
        fmtSummary(sum(rs, wireMBps)),
        fmtSummary(sum(rs, (r) => (r.throughputBps !== undefined ? r.throughputBps / MB : undefined))),
        c === reference ? '1' : fmtSummary(toRef, 2),
        c === 'raw' ? '1' : fmtSummary(toRaw, 2),
        fmtSummary(sum(rs, (r) => r.downtimeMs)),
      ]);
      cpuRows.push([
        w,
        SHORT[c],
        fmtSummary(sum(rs, (r) => pctOf(r, 'ferrydA'))),
        fmtSummary(sum(rs, (r) => pctOf(r, 'ferrydB'))),
        fmtSummary(sum(rs, (r) => pctOf(r, 'qemuSrc'))),
        fmtSummary(sum(rs, (r) => pctOf(r, 'qemuDst'))),
        fmtSummary(sum(rs, (r) => r.machineBusyPct)),
        fmtSummary(sum(rs, (r) => (r.streamCpuMs?.ferrydA !== undefined && r.wireBytes ? r.streamCpuMs.ferrydA / (r.wireBytes / MB / 100) : undefined))),
        fmtSummary(sum(rs, chainCpuPer100MB)),
        fmtSummary(sum(rs, (r) => (r.streamCpuMs?.qemuSrc !== undefined && r.wireBytes ? r.streamCpuMs.qemuSrc / (r.wireBytes / MB / 100) : undefined))),
        fmtSummary(sum(rs, (r) => r.ferrydCpuMs?.a)),
        fmtSummary(sum(rs, (r) => r.ferrydCpuMs?.b)),
        ioCell(rs, 'a'),
        ioCell(rs, 'b'),
      ]);
      summaries.push({ rate, contender: c, table: 'datapath', throughputMBps: sum(rs, tputOf), ratioToReference: toRef, reference, ratioToRaw: toRaw });
    }
  }
  const dataTable = markdownTable(
    [
      'workload',
      'contender',
      'OK runs',
      'wall ms',
      'stream on the wire, ms',
      'MB moved (QEMU `ram.transferred`)',
      'MB on the wire (veth tx)',
      'throughput on the wire, MB/s',
      "QEMU's average, MB/s",
      `throughput ${tputWhat} / ${reference === 'p2p' ? 'p2p direct' : 'raw'} of the same round`,
      `… / raw QEMU of the same round`,
      'downtime ms',
    ],
    dataRows,
  );
  const cpuTable = markdownTable(
    [
      'workload',
      'contender',
      'ferryd a (source) CPU, % of one core',
      'ferryd b (dest) CPU, %',
      'source QEMU CPU, %',
      'dest QEMU CPU, %',
      'whole machine busy, % of all CPUs',
      'ferryd a CPU ms per 100 MB on the wire',
      'both ferryds + both QEMUs: CPU ms per 100 MB on the wire',
      'source QEMU CPU ms per 100 MB on the wire',
      'ferryd a CPU over the whole `ferry migrate`, ms',
      'ferryd b, ms',
      'ferryd a: KiB per read / write syscall over the call (syscalls)',
      'ferryd b: same',
    ],
    cpuRows,
  );
  const summaryTable = markdownTable(
    ['workload', 'contender', 'OK runs', 'wall ms', `wall − ${streamWhat}, ms (time not spent moving memory)`, 'downtime ms (source stop to dest cont)', 'setup ms', 'MB moved', 'throughput MB/s', 'wall / raw (median)'],
    summaryRows,
  );

  // Where Ferry's time goes, from medians of OK runs.
  const med = (rs: RunResult[], f: (r: RunResult) => number | undefined) => sum(rs, f).median;
  const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');
  const phaseRows: string[][] = [];
  const cliRows: string[][] = [];
  for (const rate of RATES) {
    const w = rate === 0 ? 'idle' : `${rate} MiB/s`;
    const raw = results.filter((r) => r.rateMiBps === rate && r.contender === 'raw');
    const ph = results.filter((r) => r.rateMiBps === rate && r.contender === 'phases');
    const rp = (k: keyof NonNullable<RunResult['rawPhases']>) => med(raw, (r) => r.rawPhases?.[k]);
    const fp = (k: PhaseName) => med(ph, (r) => r.phaseMs?.[k]);
    const rawPerform = med(raw, (r) => (r.rawPhases ? r.rawPhases.sourceTuneMs + r.rawPhases.migrateToCompletedMs : undefined));
    const rawPrepare = med(raw, (r) => (r.rawPhases ? r.rawPhases.destStartMs + r.rawPhases.destTuneListenMs : undefined));
    const rows: Array<[string, number, number]> = [
      ['connect + hello to both daemons', Number.NaN, fp('connect')],
      ['begin (source: checks, job, XML, cookie)', Number.NaN, fp('begin')],
      ['prepare (dest: QEMU start paused `-incoming defer`, tune, `migrate-incoming`)', rawPrepare, fp('prepare')],
      ['perform (source: tune, `migrate`, follow to completed)', rawPerform, fp('perform')],
      [
        `… perform minus ${streamWhat} (tune, QEMU set-up, noticing the end)`,
        med(raw, (r) => (r.rawPhases && streamOf(r) ? r.rawPhases.sourceTuneMs + r.rawPhases.migrateToCompletedMs - streamOf(r)! : undefined)),
        med(ph, (r) => (r.phaseMs?.perform !== undefined && streamOf(r) ? r.phaseMs.perform - streamOf(r)! : undefined)),
      ],
      ['finish (dest: stream completed, `cont`)', rp('destCompletedToContMs'), fp('finish')],
      ['confirm (source: QEMU `quit`, exit)', rp('sourceQuitMs'), fp('confirm')],
      ['whole sequence', med(raw, (r) => r.fullSequenceMs), med(ph, (r) => r.wallMs)],
      ['downtime, part 1: source stop to completion seen (raw) / perform\'s answer at the driver (Ferry)', rp('stopToSourceCompletedMs'), med(ph, (r) => r.downtimeSplit?.stopToPerformReturnedMs)],
      ['downtime, part 2: then to dest `cont` done (raw) / finish\'s answer (Ferry)', rp('destCompletedToContMs'), med(ph, (r) => r.downtimeSplit?.performReturnedToFinishReturnedMs)],
      ['downtime (source stop to dest `cont`)', med(raw, (r) => r.downtimeMs), med(ph, (r) => r.downtimeMs)],
    ];
    for (const [label, a, b] of rows) phaseRows.push([w, label, f0(a), f0(b), Number.isFinite(a) && Number.isFinite(b) ? f0(b - a) : '-']);
    for (const c of (['p2p', 'managed'] as const).filter((x) => CONTENDERS.includes(x))) {
      const rs = results.filter((r) => r.rateMiBps === rate && r.contender === c);
      const wall = med(rs, (r) => r.wallMs);
      const reported = med(rs, (r) => r.cliReportedMs);
      cliRows.push([
        w,
        c,
        f0(wall),
        f0(reported),
        f0(med(rs, (r) => (r.wallMs !== undefined && r.cliReportedMs !== undefined ? r.wallMs - r.cliReportedMs : undefined))),
        f0(med(rs, (r) => r.cliStartFloorMs)),
        f0(med(rs, (r) => r.cliCpuMs)),
        f0(med(rs, (r) => r.cliStartFloorCpuMs)),
      ]);
    }
  }
  const raceRows = RATES.map((rate) => {
    const raw = results.filter((r) => r.rateMiBps === rate && r.contender === 'raw' && r.qemuRaces);
    const n = raw.length;
    const count = (f: (r: RunResult) => boolean | undefined) => `${raw.filter((r) => f(r) === true).length}/${n}`;
    return [
      rate === 0 ? 'idle' : `${rate} MiB/s`,
      count((r) => r.qemuRaces?.sourceEventDuringPoll),
      count((r) => r.qemuRaces?.destEventDuringPoll),
      count((r) => r.qemuRaces?.sourceStatsRaced),
      fmtSummary(summarize(raw.map((r) => r.ferryFollowerLagMs).filter((x): x is number => x !== undefined))),
      raw.map((r) => (r.ferryFollowerLagMs !== undefined ? r.ferryFollowerLagMs.toFixed(0) : '-')).join(', '),
    ];
  });
  const raceTable = markdownTable(
    [
      'workload',
      'raw, source: MIGRATION completed event arrived while a `query-migrate` was in flight (its answer: not completed yet)',
      'same on the destination',
      'raw, source: first `completed` answer had total-time 0 (final figures not computed yet)',
      "Ferry's `followMigration` on the same source QMP: later than this program's follower, ms, median (min-max)",
      '… each run',
    ],
    raceRows,
  );
  const breakdownTable = markdownTable(
    ['workload', 'step', 'raw QEMU, ms', `Ferry managed in-process, ms (${PHASE_RUNS} run${PHASE_RUNS === 1 ? '' : 's'})`, 'Ferry − raw'],
    phaseRows,
  );
  const cliTable = markdownTable(
    ['workload', 'mode', 'CLI process wall, ms', 'CLI-reported `wallTimeMs`, ms', 'wall − reported (node start, CLI load, connect, exit), ms', '`ferry --version` in ns A, same round, ms', '`ferry migrate` CPU, ms', '`ferry --version` CPU, ms'],
    cliRows,
  );

  const runRows = results.map((r) => [
    r.rateMiBps === 0 ? 'idle' : `${r.rateMiBps} MiB/s`,
    r.contender,
    String(r.run),
    r.ok ? 'OK' : `FAILED: ${r.problems.join('; ')}`,
    r.wallMs?.toFixed(0) ?? '-',
    r.fullSequenceMs?.toFixed(0) ?? r.cliReportedMs?.toFixed(0) ?? '-',
    r.downtimeMs?.toFixed(0) ?? '-',
    r.setupMs?.toFixed(0) ?? '-',
    r.bytes !== undefined ? (r.bytes / MB).toFixed(0) : '-',
    r.throughputBps !== undefined ? (r.throughputBps / MB).toFixed(0) : '-',
    r.iterations !== undefined ? String(r.iterations) : '-',
    r.wireMs !== undefined ? r.wireMs.toFixed(0) : '-',
    wireMBps(r)?.toFixed(0) ?? '-',
    `${pctOf(r, 'ferrydA')?.toFixed(0) ?? '-'} / ${pctOf(r, 'ferrydB')?.toFixed(0) ?? '-'} / ${r.machineBusyPct?.toFixed(0) ?? '-'}`,
    `${r.heartbeat?.sourceLast ?? '-'} → ${r.heartbeat?.destinationFirst ?? '-'} … ${r.heartbeat?.destinationLast ?? '-'}`,
  ]);
  const runsTable = markdownTable(
    ['workload', 'contender', 'run', 'guest check', 'wall ms', 'raw whole / Ferry CLI-reported ms', 'downtime ms', 'setup ms', 'MB', 'MB/s', 'dirty syncs', 'stream on the wire, ms', 'wire MB/s', 'CPU on the wire, %: ferryd a / ferryd b / machine', 'HB src last → dst first … last'],
    runRows,
  );

  const where = useNetns ? `two network namespaces (${A.address} ↔ ${B.address}, veth)` : 'loopback (127.0.0.1, two ports)';
  const header = `## migration (${RUNS} runs per contender and workload, alternated; contenders ${CONTENDERS.join(', ')}; guest 262148 KiB, ws=${WS_MIB} MiB, hb=${HB_MS} ms; ${where}; unlimited bandwidth; medians (min-max) over OK runs)`;
  const hasCli = CONTENDERS.includes('p2p') || CONTENDERS.includes('managed');
  process.stdout.write(
    `${header}\n\n${summaryTable}\n\n` +
      `### The data path (medians; ratios: median of the per-round ratios)\n\n${dataTable}\n\n` +
      `### CPU while the stream is on the wire (medians; % of the stream's duration on the wire)\n\n${cpuTable}\n\n` +
      `${PHASE_RUNS > 0 ? `### Where the time goes: phases (medians)\n\n${breakdownTable}\n\n` : ''}` +
      `${hasCli ? `### Where the time goes: the CLI process (medians)\n\n${cliTable}\n\n` : ''}` +
      `${CONTENDERS.includes('raw') ? `### Noticing the end of a migration (raw runs, source QEMU)\n\n${raceTable}\n\n` : ''}` +
      `### Every run\n\n${runsTable}\n\n(${results.length} migrations in ${elapsedS.toFixed(0)} s; load average ${load(loadStart)} at the start, ${load(loadEnd)} at the end, on ${os.cpus().length} CPUs)\n`,
  );
  // The default set keeps its file; other sets write their own, so that one does not overwrite the other.
  const resultsName = DATAPATH && argValue('contenders') === undefined ? 'migration-datapath' : argValue('contenders') !== undefined ? 'migration-custom' : 'migration';
  const path = writeResults(resultsName, {
    benchmark: 'migration',
    date: new Date().toISOString(),
    machine: machineInfo(),
    settings: { runs: RUNS, rates: RATES, contenders: CONTENDERS, phaseRuns: PHASE_RUNS, memoryKiB: MEMORY_KIB, wsMiB: WS_MIB, hbMs: HB_MS, warmHeartbeats: WARM_HEARTBEATS, settleMs: SETTLE_MS, network: where },
    summaries,
    results,
    elapsedS,
    loadavg: { start: loadStart, end: loadEnd },
    tables: { summary: summaryTable, datapath: dataTable, cpu: cpuTable, phases: breakdownTable, cli: cliTable, races: raceTable, runs: runsTable },
  });
  process.stderr.write(`\nwritten ${path}${results.some((r) => !r.ok) ? `; logs of failed runs in ${failedLogsDir}` : ''}\n`);
}

runMain(main);
