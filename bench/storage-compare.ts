/**
 * storage-compare: live migration with a full storage copy
 * (`--copy-storage-all`) of one disk image, three contenders on the same
 * two hosts, the same guest and the same image, alternated run by run:
 *
 * - raw QEMU, the floor: this program starts the QEMUs itself (the command
 *   line Ferry builds, via `buildQemuCommand`) and drives the steps Ferry
 *   and libvirt take over QMP: destination QEMU paused with `-incoming
 *   defer`, `nbd-server-start` on the destination host's address and
 *   `block-export-add` (nbd, writable) of its disk node; on the source
 *   `blockdev-add` of an NBD client node and `blockdev-mirror` (sync full)
 *   into it; BLOCK_JOB_READY; `migrate-incoming` / `migrate` to completed;
 *   `block-job-cancel` (soft: the source stays on its own image) until the
 *   job has concluded, `nbd-server-stop` on the destination, `quit` of the
 *   source. Timed from the destination QEMU's spawn to the source QEMU's
 *   exit (what the tools' commands also cover);
 * - Ferry: `ferry migrate --live --p2p --copy-storage-all --suspend --xml
 *   DEST.xml DOMAIN ferry+tcp://10.203.0.2:16609/system`;
 * - libvirt 9.0: `virsh migrate --live --p2p --copy-storage-all --suspend
 *   --xml DEST.xml DOMAIN qemu+tcp://10.203.0.2/system`.
 *
 * Hosts: the two network namespaces of bench/libvirt/hosts.sh (lvb-h1 and
 * lvb-h2, 10.203.0.1 and .2 on a veth pair), each running a libvirtd and a
 * ferryd (TCP 16609); the raw QEMUs run in the same namespaces. Both hosts
 * see one filesystem, so the destination image is another file (given by
 * `--xml`; Ferry refuses to copy a disk onto the very file it runs from).
 * Every run starts from a fresh copy of one master image filled with random
 * data (`--disk-mib`, 256 MiB by default: nothing for zero detection to
 * skip) and a pre-created sparse destination image of the same size, for
 * every contender alike: libvirt creates a missing destination image only
 * through a storage pool, and Ferry takes an existing image of the right
 * size as it is.
 *
 * The guest is the test guest on an IDE disk (`hda`), with its disk writer
 * on (`--disk-rate` sectors/s, 400 by default), so the mirrors also carry
 * writes made during the copy. Memory: 257 MiB for all three. Ferry and the
 * raw runs would take 256 MiB + 4 KiB (QEMU 7.2 under TCG can lose dirty
 * pages of a RAM block whose size is a multiple of 256 KiB, see
 * docs/migration.md), but libvirt rounds memory up to whole MiB, so all
 * three get 257 MiB; hence the guest does not rewrite its memory by default
 * (`--rate 0`: the 200 MiB working set is filled once at boot and copied,
 * but not dirtied), which keeps that QEMU issue out of a storage benchmark.
 *
 * Guest check per run, a failed check fails the run: every contender leaves
 * the guest paused on the destination (`--suspend`; raw: no `cont` until
 * the check), since the disk writer would change the destination image the
 * moment the guest runs there; `qemu-img compare` of the source image
 * (source QEMU gone) and the destination image must say identical; then
 * the guest is resumed there, and its heartbeat must go on at +1 with no
 * CORRUPT, its disk writer ahead of where the source left it.
 *
 * Figures per run: wall time of the whole command; time from its start to
 * all mirrors ready, and to the mirror's start, as close as each one can be
 * seen: raw, QEMU's BLOCK_JOB_READY event (and `blockdev-mirror` issued);
 * libvirt, the same QEMU events (JOB_STATUS_CHANGE created, BLOCK_JOB_READY)
 * with QEMU's timestamps, through `virsh qemu-monitor-event`; Ferry, whose
 * QEMU monitor only ferryd holds, the first `domain.jobInfo` answer (polled
 * every 50 ms over its unix socket) showing no disk data left or the memory
 * stream started, which follows ferryd's own 200 ms poll of the mirrors (so
 * Ferry's figure includes up to ~250 ms of noticing, which delays its
 * memory stream just as much), and for the start ferryd's log line
 * "copying N disk(s)". "Start" is the tool's process spawn (CLI start
 * included), for raw the destination QEMU's spawn. Disk bytes (QEMU's job
 * length: all the image plus what was rewritten meanwhile), the copy's
 * throughput (bytes at ready over mirror start to ready, MB = 10^6 bytes),
 * memory bytes, and total = disk + memory (libvirt's own "Data processed"
 * counts memory only; it is kept in the JSON).
 *
 * `--sync-writes` runs every contender with synchronous disk writes
 * (NON_SHARED_SYNCHRONOUS_WRITES): `--copy-storage-synchronous-writes` for
 * Ferry and virsh, `copy-mode: write-blocking` on the raw mirror. The
 * default mode against synchronous writes with a writer faster than a
 * shaped link is test/e2e/storage-sync.test.ts (figures in
 * docs/performance.md).
 *
 *   flock /tmp/ferry-bench.lock npx tsx bench/storage-compare.ts [--runs 3] [--disk-mib 256] [--disk-rate 400] [--rate 0] [--memory-mib 257] [--contenders raw,ferry,libvirt] [--sync-writes]
 *
 * Needs root, `npm run build` and `make -C guest`; starts and stops the
 * libvirt hosts itself (bench/libvirt/hosts.sh, which installs libvirt when
 * missing).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../src/api/client.js';
import { DomainDocument } from '../src/domain/index.js';
import type { JobStats } from '../src/host/job-stats.js';
import { QmpClient, type QmpEvent } from '../src/qemu/index.js';
import { inNetns } from '../test/support/netns.js';
import { checkMigrationContinuity, parseSerialLog } from '../test/support/serial.js';
import { heartbeatCount, testGuestXml, waitForSerialFile } from '../test/support/guest-xml.js';
import { startFerryd, type Ferryd } from './ferryd.js';
import {
  CLI,
  ROOT,
  argFlag,
  argInt,
  argValue,
  fmtSummary,
  killIf,
  machineInfo,
  markdownTable,
  onCleanup,
  requireBuild,
  rmTree,
  rotate,
  runMain,
  sleep,
  summarize,
  timedRun,
  useDistSnapshot,
  writeResults,
  type Summary,
} from './lib.js';
import { exited, launchRawQemu } from './raw-qemu.js';
import { ADDR, FERRY_URI, LV_URI, NS, parseJobInfo, serialToFile, toBytes } from './bench-hosts.js';

// ------------------------------------------------------------ settings

const RUNS = argInt('runs', 3);
const DISK_MIB = argInt('disk-mib', 256);
const MEMORY_MIB = argInt('memory-mib', 257);
const WS_MIB = Math.min(200, MEMORY_MIB - 40);
/** Memory rewrite rate, MiB/s (`argInt` takes no 0, hence by hand). */
const RATE = wholeNumber('rate', 0);
/** Disk writer, sectors/s (0: off). */
const DISK_RATE = wholeNumber('disk-rate', 400);
/** Synchronous disk writes (write-blocking mirrors) for every contender. */
const SYNC_WRITES = argFlag('sync-writes');
const SYNC_ARGS = SYNC_WRITES ? ['--copy-storage-synchronous-writes'] : [];
const HB_MS = 250;
const WARM_HEARTBEATS = 4;
/** Heartbeats the destination must show after the resume. */
const AFTER_HEARTBEATS = 3;
const MIGRATION_TIMEOUT_MS = 300_000;
const UNLIMITED_BANDWIDTH_BYTES = 2 ** 53 - 1;
const MB = 1e6;

const ALL = ['raw', 'ferry', 'ferry-tunnelled', 'libvirt'] as const;
type Contender = (typeof ALL)[number];
const CONTENDERS: Contender[] = (() => {
  const picked = (argValue('contenders') ?? ALL.join(',')).split(',').map((s) => s.trim());
  const bad = picked.filter((c) => !(ALL as readonly string[]).includes(c));
  if (bad.length > 0) {
    process.stderr.write(`--contenders expects a list of ${ALL.join(', ')}; not '${bad.join(',')}'\n`);
    process.exit(2);
  }
  return ALL.filter((c) => picked.includes(c));
})();
const LABEL: Record<Contender, string> = {
  raw: 'raw QEMU NBD mirror over QMP (floor)',
  ferry: 'Ferry `migrate --live --p2p --copy-storage-all`',
  'ferry-tunnelled': 'Ferry `migrate --live --p2p --tunnelled --copy-storage-all` (NBD and memory through the daemons)',
  libvirt: 'libvirt 9.0 `virsh migrate --live --p2p --copy-storage-all`',
};

/** The raw runs' listeners on host 2 (libvirt's migration ports are 49152-49215). */
const RAW_NBD_PORT = 49400;
const RAW_MIGRATION_PORT = 49401;
/** The disk: the test guest's disk writer drives the primary IDE master. */
const DISK_TARGET = 'hda';
/** Ferry's node and job names for that disk, which the raw runs borrow. */
const NODE = `fmt-${DISK_TARGET}`;
const MIRROR_JOB = `mirror-${DISK_TARGET}`;
const NBD_NODE = `migrate-${DISK_TARGET}`;
const EXPORT_NAME = `drive-${DISK_TARGET}`;

function wholeNumber(name: string, dflt: number): number {
  const v = argValue(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) {
    process.stderr.write(`--${name} expects a whole number, not '${v}'\n`);
    process.exit(2);
  }
  return n;
}

interface Run {
  contender: Contender;
  run: number;
  domain: string;
  ok: boolean;
  problems: string[];
  /** The whole command (raw: destination QEMU spawn to source QEMU exit), ms. */
  wallMs?: number;
  /** From the command's start to the mirror's start (raw: `blockdev-mirror` issued), ms. */
  mirrorStartMs?: number;
  /** From the command's start to all mirrors ready, ms (see the header for how each is seen). */
  readyMs?: number;
  /** Disk bytes the mirror had copied when it became ready (its length then). */
  diskBytesAtReady?: number;
  /** Disk bytes copied in all (the mirror's final length: the image plus what was rewritten meanwhile). */
  diskBytes?: number;
  /** diskBytesAtReady / (readyMs - mirrorStartMs), MB/s. */
  copyMBps?: number;
  memoryBytes?: number;
  totalBytes?: number;
  downtimeMs?: number;
  /** The tool's own job statistics (Ferry's `--json` stats, libvirt's `domjobinfo --completed` on the destination). */
  toolStats?: unknown;
  /** How the figures were obtained, where it differs from the header's description. */
  notes?: string[];
  /** `qemu-img compare` of the source and destination images. */
  compare?: string;
  heartbeat?: { sourceLast?: number; destinationFirst?: number; destinationLast?: number; diskWritesSource?: number; diskWritesDestination?: number };
}

// ------------------------------------------------------------ helpers

const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '');

function guestXml(name: string, uuid: string, diskPath: string, serialFile?: string): string {
  const disk = `    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${diskPath}'/><target dev='${DISK_TARGET}' bus='ide'/></disk>`;
  const cmdline = `ws=${WS_MIB} rate=${RATE} hb=${HB_MS}${DISK_RATE > 0 ? ` disk=${DISK_RATE}` : ''}`;
  let xml = testGuestXml({ name, uuid, memoryKiB: MEMORY_MIB * 1024, cmdline, extraDevices: disk });
  if (serialFile) {
    // The serial port writes a file (libvirt; raw QEMU and ferryd keep their own copy of a pty's output).
    xml = serialToFile(xml, serialFile);
  }
  return xml;
}

/** Waits for `n` heartbeats (with the disk writer running, if it is on). */
async function waitBeats(path: string, n: number): Promise<void> {
  await waitForSerialFile(path, (log) => heartbeatCount(n)(log) && (DISK_RATE === 0 || (log.lastHeartbeat?.diskWrites ?? 0) > 0));
}

/** Waits until the destination's log shows {@link AFTER_HEARTBEATS} heartbeats past the source's last, then checks the guest. */
async function checkGuest(r: Run, srcLog: string, dstLog: string): Promise<void> {
  const sourceLast = parseSerialLog(read(srcLog)).lastHeartbeat?.counter ?? 0;
  const end = Date.now() + 20_000;
  while (Date.now() < end && (parseSerialLog(read(dstLog)).lastHeartbeat?.counter ?? 0) < sourceLast + AFTER_HEARTBEATS) await sleep(100);
  const src = read(srcLog);
  const dst = read(dstLog);
  const c = checkMigrationContinuity(src, dst);
  const all = parseSerialLog(src + dst);
  r.heartbeat = {
    ...(c.sourceLast ? { sourceLast: c.sourceLast.counter } : {}),
    ...(c.destinationFirst ? { destinationFirst: c.destinationFirst.counter } : {}),
    ...(all.lastHeartbeat ? { destinationLast: all.lastHeartbeat.counter } : {}),
    ...(c.sourceLast?.diskWrites !== undefined ? { diskWritesSource: c.sourceLast.diskWrites } : {}),
    ...(c.destinationFirst?.diskWrites !== undefined ? { diskWritesDestination: c.destinationFirst.diskWrites } : {}),
  };
  r.problems.push(...c.problems);
  const after = (all.lastHeartbeat?.counter ?? 0) - (c.sourceLast?.counter ?? 0);
  if (c.ok && after < AFTER_HEARTBEATS) r.problems.push(`only ${after} heartbeats on the destination after the resume`);
  if (c.ok && DISK_RATE > 0 && !((c.destinationFirst?.diskWrites ?? 0) > (c.sourceLast?.diskWrites ?? Infinity))) {
    r.problems.push(`the disk writer did not go on after the migration (disk=${c.sourceLast?.diskWrites} -> ${c.destinationFirst?.diskWrites})`);
  }
}

/** `qemu-img compare`: 'identical', or what it said. */
function compareImages(a: string, b: string): string {
  try {
    const out = execFileSync('qemu-img', ['compare', '-U', '-f', 'raw', '-F', 'raw', a, b], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    return out === 'Images are identical.' ? 'identical' : out;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return `differ: ${`${e.stdout ?? ''}${e.stderr ?? ''}`.trim() || e.message}`;
  }
}

/** A QEMU event's own timestamp, ms since the epoch. */
const eventMs = (ev: { timestamp?: { seconds: number; microseconds: number } }) => (ev.timestamp ? ev.timestamp.seconds * 1000 + ev.timestamp.microseconds / 1000 : Date.now());

/** Waits for a QMP event matching `pred`; rejects on `failIf` events or after `timeoutMs`. */
function eventOn(qmp: QmpClient, pred: (ev: QmpEvent) => boolean, failIf: (ev: QmpEvent) => string | undefined, timeoutMs: number): { promise: Promise<QmpEvent>; cancel: () => void } {
  let cancel = () => {};
  const promise = new Promise<QmpEvent>((resolve, reject) => {
    const on = (ev: QmpEvent) => {
      const why = failIf(ev);
      if (why !== undefined) {
        done();
        reject(new Error(why));
      } else if (pred(ev)) {
        done();
        resolve(ev);
      }
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`no matching QMP event within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      qmp.off('event', on);
    };
    cancel = done;
    qmp.on('event', on);
  });
  promise.catch(() => undefined);
  return { promise, cancel };
}

interface MigrateInfo {
  status?: string;
  'error-desc'?: string;
  downtime?: number;
  'total-time'?: number;
  ram?: { transferred?: number };
}

/** Polls `query-migrate` (every 20 ms, and at once on a MIGRATION event) until it ends; rejects unless completed. */
async function untilMigrated(qmp: QmpClient, timeoutMs: number): Promise<MigrateInfo> {
  const end = Date.now() + timeoutMs;
  let wake: (() => void) | undefined;
  const on = (ev: QmpEvent) => {
    if (ev.event === 'MIGRATION') wake?.();
  };
  qmp.on('event', on);
  try {
    while (Date.now() < end) {
      const info = await qmp.execute<MigrateInfo>('query-migrate', undefined, { timeoutMs: 10_000 });
      if (info.status === 'completed') return info;
      if (info.status === 'failed' || info.status === 'cancelled') throw new Error(`migration ${info.status}: ${info['error-desc'] ?? ''}`);
      await new Promise<void>((res) => {
        const t = setTimeout(res, 20);
        wake = () => {
          clearTimeout(t);
          res();
        };
      });
    }
    throw new Error(`migration did not complete within ${timeoutMs} ms`);
  } finally {
    qmp.off('event', on);
  }
}


/** One line of `virsh qemu-monitor-event --timestamp`. */
interface LvEvent {
  ms: number;
  event: string;
  data: Record<string, unknown>;
}

/**
 * `virsh qemu-monitor-event --domain NAME --loop --timestamp` on host 1:
 * the source QEMU's events with QEMU's own timestamps.
 */
function watchQemuEvents(name: string): { stop: () => Promise<{ events: LvEvent[]; text: string }> } {
  const c = inNetns(NS[0], ['stdbuf', '-oL', 'virsh', '-q', '-c', LV_URI[0]!, 'qemu-monitor-event', '--domain', name, '--loop', '--timestamp']);
  const child = spawn(c.file, c.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (text += d));
  const unregister = onCleanup(`virsh event watcher of ${name}`, () => killIf(child.pid, 'virsh', 'SIGKILL'));
  return {
    async stop() {
      killIf(child.pid, 'virsh', 'SIGINT');
      await Promise.race([exited(child), sleep(2000)]);
      killIf(child.pid, 'virsh', 'SIGKILL');
      unregister();
      const events: LvEvent[] = [];
      for (const line of text.split('\n')) {
        // virsh 9.0: "2026-11-26 16:12:55.538+0000: event BLOCK_JOB_READY for domain 'x': {"device":...}" (QEMU's time, to the ms)
        const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d)(\d\d): event (\S+) for domain '[^']*':\s*(.*)$/.exec(line.trim());
        if (!m) continue;
        const ms = Date.parse(`${m[1]}T${m[2]}${m[3]}:${m[4]}`);
        if (!Number.isFinite(ms)) continue;
        let data: Record<string, unknown> = {};
        try {
          data = JSON.parse(m[6]!) as Record<string, unknown>;
        } catch {
          // No details (<null>).
        }
        events.push({ ms, event: m[5]!, data });
      }
      return { events, text };
    },
  };
}

// ------------------------------------------------------------ the benchmark

runMain(async () => {
  requireBuild(true);
  await useDistSnapshot();
  const work = mkdtempSync(join(tmpdir(), 'ferry-stocmp-'));
  onCleanup('temp dir', () => rmTree(work));
  mkdirSync(join(work, 'serial'), { recursive: true });
  mkdirSync(join(work, 'images'), { recursive: true });
  mkdirSync(join(work, 'raw'), { recursive: true });

  // The master image: random data all through, so no zero detection or hole skipping applies.
  const master = join(work, 'images', 'master.raw');
  execFileSync('dd', ['if=/dev/urandom', `of=${master}`, 'bs=1M', `count=${DISK_MIB}`, 'status=none', 'conv=fsync']);

  // Registered first: a start that fails half-way leaves something to stop too.
  onCleanup('libvirt hosts', () => execFileSync('bash', [join(ROOT, 'bench', 'libvirt', 'hosts.sh'), 'stop'], { stdio: 'ignore' }));
  execFileSync('bash', [join(ROOT, 'bench', 'libvirt', 'hosts.sh'), 'start'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const fd = [
    await startFerryd({ dir: join(work, 'ferry-a'), hostName: 'sto-a', netns: NS[0], listenTcp: `${ADDR[0]}:16609` }),
    await startFerryd({ dir: join(work, 'ferry-b'), hostName: 'sto-b', netns: NS[1], listenTcp: `${ADDR[1]}:16609` }),
  ] as const;

  const virsh = (host: 0 | 1, args: string[], timeoutMs = 60_000) => {
    const c = inNetns(NS[host], ['virsh', '-q', '-c', LV_URI[host]!, ...args]);
    return timedRun(c.file, c.args, { timeoutMs });
  };
  const ferry = (host: 0 | 1, f: Ferryd, args: string[], timeoutMs = 60_000) => {
    const c = inNetns(NS[host], [process.execPath, CLI, '-c', f.unixUri, ...args]);
    return timedRun(c.file, c.args, { timeoutMs, cwd: ROOT });
  };

  /** A fresh source image (copy of the master, flushed) and a sparse destination image of the same size. */
  const images = (name: string) => {
    const src = join(work, 'images', `${name}.src.raw`);
    const dst = join(work, 'images', `${name}.dst.raw`);
    execFileSync('cp', [master, src]);
    execFileSync('sync', [src]);
    execFileSync('truncate', ['-s', `${DISK_MIB}M`, dst]);
    return { src, dst, remove: () => [src, dst].forEach((p) => rmSync(p, { force: true })) };
  };

  const finish = (r: Run) => {
    if (r.diskBytesAtReady !== undefined && r.readyMs !== undefined && r.mirrorStartMs !== undefined && r.readyMs > r.mirrorStartMs) {
      r.copyMBps = r.diskBytesAtReady / MB / ((r.readyMs - r.mirrorStartMs) / 1000);
    }
    if (r.totalBytes === undefined && r.diskBytes !== undefined && r.memoryBytes !== undefined) r.totalBytes = r.diskBytes + r.memoryBytes;
    if (r.compare !== undefined && r.compare !== 'identical') r.problems.push(`qemu-img compare: ${r.compare}`);
    r.ok = r.problems.length === 0;
    return r;
  };

  // ---------------- raw QEMU
  const runRaw = async (run: number): Promise<Run> => {
    const name = `raw-${run}`;
    const r: Run = { contender: 'raw', run, domain: name, ok: false, problems: [] };
    const img = images(name);
    const uuid = randomUUID();
    const dir = join(work, 'raw');
    const files = {
      srcSerial: join(dir, `${name}-src.serial.log`),
      dstSerial: join(dir, `${name}-dst.serial.log`),
      srcQemu: join(dir, `${name}-src.qemu.log`),
      dstQemu: join(dir, `${name}-dst.qemu.log`),
    };
    const children: ChildProcess[] = [];
    const qmps: QmpClient[] = [];
    const unregister = onCleanup(`raw QEMUs of ${name}`, () => {
      for (const c of children) killIf(c.pid, 'qemu', 'SIGKILL');
    });
    const launch = async (host: 0 | 1, diskPath: string, serial: string, log: string, incoming: boolean) => {
      const def = DomainDocument.parse(guestXml(name, uuid, diskPath)).def;
      const q = await launchRawQemu({ def, ns: NS[host], dir, qmpPath: join(dir, `${name}-${host}.qmp`), serialLog: serial, qemuLog: log, incoming });
      children.push(q.child);
      qmps.push(q.qmp);
      return q;
    };
    try {
      const src = await launch(0, img.src, files.srcSerial, files.srcQemu, false);
      await src.qmp.execute('cont');
      await waitBeats(files.srcSerial, WARM_HEARTBEATS);

      const t0 = Date.now();
      // Destination (what the tools' prepare does): paused, -incoming defer, NBD server exporting the disk, listening.
      const dst = await launch(1, img.dst, files.dstSerial, files.dstQemu, true);
      await dst.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
      await dst.qmp.execute('nbd-server-start', { addr: { type: 'inet', data: { host: ADDR[1], port: String(RAW_NBD_PORT) } } });
      await dst.qmp.execute('block-export-add', { type: 'nbd', id: `export-${DISK_TARGET}`, 'node-name': NODE, name: EXPORT_NAME, writable: true });
      await dst.qmp.execute('migrate-incoming', { uri: `tcp:${ADDR[1]}:${RAW_MIGRATION_PORT}` });

      // Source: tune, connect to the export, mirror into it.
      await src.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
      await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': UNLIMITED_BANDWIDTH_BYTES });
      await src.qmp.execute('blockdev-add', { driver: 'nbd', 'node-name': NBD_NODE, server: { type: 'inet', host: ADDR[1], port: String(RAW_NBD_PORT) }, export: EXPORT_NAME });
      const isMine = (ev: QmpEvent) => ev.data?.device === MIRROR_JOB || ev.data?.id === MIRROR_JOB;
      const ready = eventOn(
        src.qmp,
        (ev) => ev.event === 'BLOCK_JOB_READY' && isMine(ev),
        (ev) => (isMine(ev) && ['BLOCK_JOB_ERROR', 'BLOCK_JOB_COMPLETED', 'BLOCK_JOB_CANCELLED'].includes(ev.event) ? `the mirror ended before it was ready: ${ev.event} ${JSON.stringify(ev.data)}` : undefined),
        MIGRATION_TIMEOUT_MS,
      );
      r.mirrorStartMs = Date.now() - t0;
      await src.qmp.execute('blockdev-mirror', { 'job-id': MIRROR_JOB, device: NODE, target: NBD_NODE, sync: 'full', 'auto-dismiss': false, ...(SYNC_WRITES ? { 'copy-mode': 'write-blocking' } : {}) });
      const readyEv = await ready.promise;
      r.readyMs = eventMs(readyEv) - t0;
      r.diskBytesAtReady = Number(readyEv.data.len);

      // Memory, then the switch-over: the source stops itself at the end of the stream.
      await src.qmp.execute('migrate', { uri: `tcp:${ADDR[1]}:${RAW_MIGRATION_PORT}` });
      const info = await untilMigrated(src.qmp, MIGRATION_TIMEOUT_MS);
      // The source is paused: copy the last writes and detach, the source staying on its own image.
      await src.qmp.execute('block-job-cancel', { device: MIRROR_JOB });
      const jobEnd = Date.now() + 120_000;
      for (;;) {
        const jobs = await src.qmp.execute<Array<{ device: string; status?: string; len: number; offset: number; error?: string }>>('query-block-jobs');
        const job = jobs.find((j) => j.device === MIRROR_JOB);
        if (!job) throw new Error('the mirror job vanished');
        if (job.status === 'concluded') {
          if (job.error || job.offset < job.len) throw new Error(`the mirror concluded incomplete: ${job.error ?? `${job.offset}/${job.len}`}`);
          r.diskBytes = job.len;
          break;
        }
        if (Date.now() > jobEnd) throw new Error('the mirror did not conclude within 120 s of the switch-over');
        await sleep(10);
      }
      await src.qmp.execute('job-dismiss', { id: MIRROR_JOB });
      await src.qmp.execute('blockdev-del', { 'node-name': NBD_NODE });
      // Destination: stream received, NBD server stopped; left paused (as --suspend).
      await untilMigrated(dst.qmp, 30_000);
      await dst.qmp.execute('nbd-server-stop');
      // Source: quit (the tools' confirm).
      let final = info;
      for (let i = 0; i < 10 && !final['total-time']; i++) {
        await sleep(20);
        final = await src.qmp.execute<MigrateInfo>('query-migrate');
      }
      await src.qmp.execute('quit').catch(() => undefined);
      await exited(src.child);
      r.wallMs = Date.now() - t0;
      if (final.ram?.transferred !== undefined) r.memoryBytes = final.ram.transferred;
      if (final.downtime !== undefined) r.downtimeMs = final.downtime;
      r.notes = ['downtime: QEMU\'s own figure'];

      r.compare = compareImages(img.src, img.dst);
      await dst.qmp.execute('cont');
      await checkGuest(r, files.srcSerial, files.dstSerial);
    } catch (err) {
      r.problems.push(`raw run failed: ${(err as Error).message}`);
    } finally {
      for (const q of qmps) q.close();
      for (const c of children) killIf(c.pid, 'qemu', 'SIGKILL');
      await Promise.all(children.map(exited));
      unregister();
      img.remove();
    }
    return finish(r);
  };

  // ---------------- Ferry
  const runFerry = async (run: number, tunnelled = false): Promise<Run> => {
    const name = `${tunnelled ? 'ft' : 'fe'}-${run}`;
    const r: Run = { contender: tunnelled ? 'ferry-tunnelled' : 'ferry', run, domain: name, ok: false, problems: [] };
    const img = images(name);
    const uuid = randomUUID();
    const xmlA = join(work, `${name}.a.xml`);
    const xmlB = join(work, `${name}.b.xml`);
    writeFileSync(xmlA, guestXml(name, uuid, img.src));
    writeFileSync(xmlB, guestXml(name, uuid, img.dst));
    const srcLog = join(fd[0].stateDir, 'logs', `${name}.serial.log`);
    const dstLog = join(fd[1].stateDir, 'logs', `${name}.serial.log`);
    let api: ApiClient | undefined;
    try {
      const c = await ferry(0, fd[0], ['create', xmlA]);
      if (c.code !== 0) throw new Error(`ferry create: ${c.stderr.trim()}`);
      await waitBeats(srcLog, WARM_HEARTBEATS);
      // Ferry's job statistics, polled over its unix socket while the command runs.
      api = await ApiClient.connect(fd[0].unixUri);
      await api.call('connect.hello', {});
      const client = api;
      let polling = true;
      let readySeen: { at: number; stats: JobStats } | undefined;
      const poller = (async () => {
        while (polling) {
          const s = await client.call('domain.jobInfo', { domain: name, completed: false }).catch(() => undefined);
          const at = Date.now();
          if (s && !readySeen && (((s.disk_total ?? 0) > 0 && s.disk_remaining === 0) || s.memory_total !== undefined || s.memory_processed !== undefined)) readySeen = { at, stats: s };
          await sleep(50);
        }
      })();
      const logLen = read(fd[0].logPath).length;
      const t0 = Date.now();
      const m = await ferry(0, fd[0], ['--json', 'migrate', '--live', '--p2p', ...(tunnelled ? ['--tunnelled'] : []), '--copy-storage-all', ...SYNC_ARGS, '--suspend', '--xml', xmlB, name, FERRY_URI[1]!], MIGRATION_TIMEOUT_MS);
      polling = false;
      await poller;
      r.wallMs = m.ms;
      const out = JSON.parse(m.stdout || m.stderr || '{}') as { stats?: JobStats; error?: { message?: string } };
      if (m.code !== 0) throw new Error(`ferry migrate: ${out.error?.message ?? m.stderr.trim()}`);
      const s = out.stats ?? ({} as JobStats);
      r.toolStats = s;
      r.diskBytes = s.disk_total;
      r.memoryBytes = s.memory_processed;
      r.downtimeMs = s.downtime;
      // The mirror's start: ferryd's log line, with its timestamp.
      const line = read(fd[0].logPath)
        .slice(logLen)
        .split('\n')
        .find((l) => l.includes(`disk(s) of '${name}'`));
      const stamp = line ? Date.parse(line.split(' ')[0]!) : Number.NaN;
      if (Number.isFinite(stamp)) r.mirrorStartMs = stamp - t0;
      else r.problems.push("no 'copying N disk(s)' line in ferryd's log");
      if (readySeen) {
        r.readyMs = readySeen.at - t0;
        r.diskBytesAtReady = readySeen.stats.disk_total;
      }
      r.notes = ['ready: first domain.jobInfo poll (50 ms) showing the disks caught up or the memory stream started; mirror start: ferryd log line', 'downtime: Ferry\'s (source stop to destination finish)'];

      r.compare = compareImages(img.src, img.dst);
      const res = await ferry(1, fd[1], ['resume', name]);
      if (res.code !== 0) throw new Error(`ferry resume on the destination: ${res.stderr.trim()}`);
      await checkGuest(r, srcLog, dstLog);
    } catch (err) {
      r.problems.push((err as Error).message);
    } finally {
      api?.close();
      await ferry(1, fd[1], ['destroy', name]).catch(() => null);
      await ferry(0, fd[0], ['destroy', name]).catch(() => null);
      img.remove();
    }
    return finish(r);
  };

  // ---------------- libvirt
  const runLibvirt = async (run: number): Promise<Run> => {
    const name = `lv-${run}`;
    const r: Run = { contender: 'libvirt', run, domain: name, ok: false, problems: [] };
    const img = images(name);
    const uuid = randomUUID();
    const srcLog = join(work, 'serial', `${name}.a.log`);
    const dstLog = join(work, 'serial', `${name}.b.log`);
    const xmlA = join(work, `${name}.a.xml`);
    const xmlB = join(work, `${name}.b.xml`);
    writeFileSync(xmlA, guestXml(name, uuid, img.src, srcLog));
    writeFileSync(xmlB, guestXml(name, uuid, img.dst, dstLog));
    let watcher: ReturnType<typeof watchQemuEvents> | undefined;
    try {
      const c = await virsh(0, ['create', xmlA]);
      if (c.code !== 0) throw new Error(`virsh create: ${c.stderr.trim()}`);
      await waitBeats(srcLog, WARM_HEARTBEATS);
      watcher = watchQemuEvents(name);
      // Let it register its callback (it prints nothing until an event comes).
      await sleep(1000);
      const t0 = Date.now();
      const m = await virsh(0, ['migrate', '--live', '--p2p', '--copy-storage-all', ...SYNC_ARGS, '--suspend', '--xml', xmlB, name, LV_URI[1]!], MIGRATION_TIMEOUT_MS);
      r.wallMs = m.ms;
      const ev = await watcher.stop();
      watcher = undefined;
      if (m.code !== 0) throw new Error(`virsh migrate: ${m.stderr.trim()}`);
      const info = parseJobInfo((await virsh(1, ['domjobinfo', '--completed', name])).stdout);
      r.toolStats = info;
      r.memoryBytes = toBytes(info['Memory processed']);
      const fileBytes = toBytes(info['File processed']);
      if (info['Total downtime']) r.downtimeMs = Number(info['Total downtime'].split(' ')[0]);
      // QEMU's events of the source: the mirror job's creation, its readiness, its end.
      const created = ev.events.find((e) => e.event === 'JOB_STATUS_CHANGE' && e.data.status === 'created');
      const readyEv = ev.events.find((e) => e.event === 'BLOCK_JOB_READY');
      const ended = ev.events.find((e) => e.event === 'BLOCK_JOB_COMPLETED' || e.event === 'BLOCK_JOB_CANCELLED');
      if (created) r.mirrorStartMs = created.ms - t0;
      if (readyEv) {
        r.readyMs = readyEv.ms - t0;
        r.diskBytesAtReady = Number(readyEv.data.len);
      }
      r.diskBytes = ended && typeof ended.data.len === 'number' ? ended.data.len : fileBytes;
      r.notes = [
        `mirror start / ready: QEMU's JOB_STATUS_CHANGE created / BLOCK_JOB_READY via virsh qemu-monitor-event (${ev.events.length} events${created ? '' : '; no created event'}${readyEv ? '' : '; no READY event'})`,
        `disk bytes: ${ended ? `QEMU's ${ended.event} len` : "domjobinfo's File processed"} (domjobinfo File processed: ${info['File processed'] ?? '-'})`,
        `total: disk + memory (domjobinfo Data processed: ${info['Data processed'] ?? '-'})`,
        'downtime: libvirt\'s domjobinfo',
      ];
      if (!readyEv) r.notes.push(`watcher output: ${ev.text.slice(0, 600)}`);

      r.compare = compareImages(img.src, img.dst);
      const res = await virsh(1, ['resume', name]);
      if (res.code !== 0) throw new Error(`virsh resume on the destination: ${res.stderr.trim()}`);
      await checkGuest(r, srcLog, dstLog);
    } catch (err) {
      r.problems.push((err as Error).message);
    } finally {
      if (watcher) await watcher.stop().catch(() => undefined);
      await virsh(1, ['destroy', name]).catch(() => null);
      await virsh(0, ['destroy', name]).catch(() => null);
      img.remove();
    }
    return finish(r);
  };

  // ---------------- the runs, alternated
  const results: Run[] = [];
  const tStart = Date.now();
  const loadStart = os.loadavg();
  for (let run = 1; run <= RUNS; run++) {
    for (const c of rotate(CONTENDERS, run - 1)) {
      const r = c === 'raw' ? await runRaw(run) : c === 'ferry' ? await runFerry(run) : c === 'ferry-tunnelled' ? await runFerry(run, true) : await runLibvirt(run);
      results.push(r);
      process.stderr.write(
        `run ${run} ${c.padEnd(7)}: ${r.ok ? 'OK    ' : 'FAILED'} wall ${r.wallMs?.toFixed(0) ?? '-'} ms, mirror start ${r.mirrorStartMs?.toFixed(0) ?? '-'} ms, ready ${r.readyMs?.toFixed(0) ?? '-'} ms, ` +
          `disk ${r.diskBytes !== undefined ? (r.diskBytes / MB).toFixed(1) : '-'} MB at ${r.copyMBps?.toFixed(0) ?? '-'} MB/s, total ${r.totalBytes !== undefined ? (r.totalBytes / MB).toFixed(1) : '-'} MB, ` +
          `compare ${r.compare ?? '-'}, HB ${r.heartbeat?.sourceLast ?? '-'} -> ${r.heartbeat?.destinationFirst ?? '-'}${r.ok ? '' : `: ${r.problems.join('; ')}`}\n`,
      );
    }
  }
  const elapsedS = (Date.now() - tStart) / 1000;
  const loadEnd = os.loadavg();

  // ---------------- tables
  const okOf = (c: Contender) => results.filter((r) => r.contender === c && r.ok);
  const sum = (c: Contender, f: (r: Run) => number | undefined): Summary => summarize(okOf(c).map(f).filter((x): x is number => x !== undefined));
  const figures = {
    wall: (r: Run) => r.wallMs,
    ready: (r: Run) => r.readyMs,
    mirrorStart: (r: Run) => r.mirrorStartMs,
    copyMs: (r: Run) => (r.readyMs !== undefined && r.mirrorStartMs !== undefined ? r.readyMs - r.mirrorStartMs : undefined),
    copyMBps: (r: Run) => r.copyMBps,
    diskMB: (r: Run) => (r.diskBytes !== undefined ? r.diskBytes / MB : undefined),
    memoryMB: (r: Run) => (r.memoryBytes !== undefined ? r.memoryBytes / MB : undefined),
    totalMB: (r: Run) => (r.totalBytes !== undefined ? r.totalBytes / MB : undefined),
    downtime: (r: Run) => r.downtimeMs,
  };
  const rows = CONTENDERS.map((c) => {
    const all = results.filter((r) => r.contender === c);
    return [
      LABEL[c],
      `${okOf(c).length}/${all.length}`,
      fmtSummary(sum(c, figures.wall)),
      fmtSummary(sum(c, figures.mirrorStart)),
      fmtSummary(sum(c, figures.ready)),
      fmtSummary(sum(c, figures.copyMs)),
      fmtSummary(sum(c, figures.diskMB), 1),
      fmtSummary(sum(c, figures.copyMBps)),
      fmtSummary(sum(c, figures.memoryMB), 1),
      fmtSummary(sum(c, figures.totalMB), 1),
      fmtSummary(sum(c, figures.downtime)),
    ];
  });
  const table = markdownTable(
    ['contender', 'OK runs (compare identical, heartbeat +1)', 'wall ms (whole command)', 'start → mirror started, ms', 'start → mirrors ready, ms', 'disk copy to ready, ms', 'disk MB copied', 'disk copy MB/s (to ready)', 'memory MB', 'total MB', 'downtime ms (as each reports it)'],
    rows,
  );
  const ratio = (f: (r: Run) => number | undefined, a: Contender, b: Contender) => {
    const x = sum(a, f);
    const y = sum(b, f);
    return CONTENDERS.includes(a) && CONTENDERS.includes(b) && x.n && y.n ? (x.median / y.median).toFixed(2) : '-';
  };
  const ratioRows = (
    [
      ['wall time (whole command)', figures.wall],
      ['start → mirrors ready', figures.ready],
      ['disk copy time (mirror start → ready)', figures.copyMs],
      ['disk copy throughput', figures.copyMBps],
    ] as const
  ).map(([label, f]) => [label, ratio(f, 'ferry', 'raw'), ratio(f, 'ferry', 'libvirt'), ratio(f, 'libvirt', 'raw'), ratio(f, 'ferry-tunnelled', 'ferry')]);
  const ratioTable = markdownTable(['figure (medians of OK runs)', 'Ferry / raw', 'Ferry / libvirt', 'libvirt / raw', 'Ferry tunnelled / Ferry direct'], ratioRows);
  const runRows = results.map((r) => [
    r.contender,
    String(r.run),
    r.ok ? 'OK' : `FAILED: ${r.problems.join('; ')}`,
    r.wallMs?.toFixed(0) ?? '-',
    r.mirrorStartMs?.toFixed(0) ?? '-',
    r.readyMs?.toFixed(0) ?? '-',
    r.diskBytesAtReady !== undefined ? (r.diskBytesAtReady / MB).toFixed(1) : '-',
    r.diskBytes !== undefined ? (r.diskBytes / MB).toFixed(1) : '-',
    r.copyMBps?.toFixed(0) ?? '-',
    r.memoryBytes !== undefined ? (r.memoryBytes / MB).toFixed(1) : '-',
    r.totalBytes !== undefined ? (r.totalBytes / MB).toFixed(1) : '-',
    r.downtimeMs?.toFixed(0) ?? '-',
    r.compare ?? '-',
    `${r.heartbeat?.sourceLast ?? '-'} → ${r.heartbeat?.destinationFirst ?? '-'} … ${r.heartbeat?.destinationLast ?? '-'} (disk ${r.heartbeat?.diskWritesSource ?? '-'} → ${r.heartbeat?.diskWritesDestination ?? '-'})`,
  ]);
  const runsTable = markdownTable(
    ['contender', 'run', 'guest check', 'wall ms', 'mirror start ms', 'ready ms', 'disk MB at ready', 'disk MB copied', 'copy MB/s', 'memory MB', 'total MB', 'downtime ms', 'qemu-img compare', 'HB src last → dst first … last (disk sectors)'],
    runRows,
  );
  const load = (l: number[]) => l.map((x) => x.toFixed(1)).join(', ');
  const header =
    `## Storage copy: raw QEMU NBD mirror, Ferry and libvirt 9.0 (${RUNS} runs each, alternated; ${DISK_MIB} MiB raw image of random data, ` +
    `guest ${MEMORY_MIB} MiB, ws=${WS_MIB} MiB, rate=${RATE}, disk writer ${DISK_RATE} sectors/s${SYNC_WRITES ? ', synchronous writes (write-blocking mirrors)' : ''}; two network namespaces (veth); medians (min-max) of OK runs; MB = 10^6 bytes)`;
  process.stdout.write(
    `${header}\n\n${table}\n\n### Ratios\n\n${ratioTable}\n\n### Every run\n\n${runsTable}\n\n` +
      `(${results.length} migrations in ${elapsedS.toFixed(0)} s; load average ${load(loadStart)} at the start, ${load(loadEnd)} at the end, on ${os.cpus().length} CPUs)\n`,
  );
  const file = writeResults(SYNC_WRITES ? 'storage-compare-sync' : 'storage-compare', {
    benchmark: 'storage-compare',
    date: new Date().toISOString(),
    machine: machineInfo(),
    settings: { runs: RUNS, contenders: CONTENDERS, syncWrites: SYNC_WRITES, diskMiB: DISK_MIB, memoryMiB: MEMORY_MIB, wsMiB: WS_MIB, rate: RATE, diskRate: DISK_RATE, hbMs: HB_MS },
    summaries: CONTENDERS.map((c) => ({ contender: c, ok: okOf(c).length, ...Object.fromEntries(Object.entries(figures).map(([k, f]) => [k, sum(c, f)])) })),
    ratios: Object.fromEntries(ratioRows.map(([label, fr, fl, lr]) => [label, { ferryToRaw: fr, ferryToLibvirt: fl, libvirtToRaw: lr }])),
    results,
    elapsedS,
    loadavg: { start: loadStart, end: loadEnd },
    tables: { summary: table, ratios: ratioTable, runs: runsTable },
  });
  process.stdout.write(`\nresults: ${file}\n`);
});
