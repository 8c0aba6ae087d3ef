/**
 * downtime-trace: what "downtime" means for libvirt 9.0 and for Ferry, measured
 * on one clock.
 *
 * The same test guest is migrated peer-to-peer between the two hosts of
 * bench/libvirt/hosts.sh (network namespaces lvb-h1/lvb-h2, each with a
 * libvirtd and a ferryd), alternately by each tool, idle and with a memory
 * writer. Each run records:
 *
 * - the downtime the tool reports (`virsh domjobinfo --completed` on the
 *   destination; `stats.downtime` of `ferry --json migrate`);
 * - QEMU's own `downtime` from `query-migrate` on the source once the job
 *   completed (QEMU 7.2: from the vm stop at switch-over to the end of sending,
 *   on the source only);
 * - QMP event timestamps (QEMU stamps events with the host's wall clock; both
 *   hosts are one machine) of STOP and MIGRATION completed on the source,
 *   MIGRATION completed and RESUME on the destination. They come from a second
 *   QMP monitor added by a wrapper set as the guest's `<emulator>`, so both
 *   tools are traced the same way and neither needs to change. For libvirt,
 *   `virsh qemu-monitor-event` on both hosts is recorded as a cross-check of
 *   the same events. The source's `query-migrate` is also sampled every 50 ms
 *   on that monitor, to see what QEMU had left to send when it switched over;
 * - for Ferry, the daemons' own steps: the source ferryd's lifecycle event for
 *   the STOP (`suspended migrated`, where it takes `sourceStoppedAt`), the
 *   time perform saw the job completed (its journal entry `performed`), the
 *   destination's `started migrated` (finish got past its wait, about to
 *   `cont`) and `resumed migrated` (after `cont` answered, where finish
 *   computes the downtime).
 *
 *   flock /tmp/ferry-bench.lock npx tsx bench/downtime-trace.ts [--runs 3] [--rates 100,0] [--memory-mib 257]
 *     [--tools libvirt,ferry] [--ferry-maxdowntime MS] [--results-name downtime-trace]
 *
 * Needs root, libvirt (bench/libvirt/hosts.sh installs it) and the built dist/.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, watch, writeFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inNetns } from '../test/support/netns.js';
import { checkMigrationContinuity, parseSerialLog } from '../test/support/serial.js';
import { heartbeatCount, testGuestXml, waitForSerialFile } from '../test/support/guest-xml.js';
import { startFerryd, type Ferryd } from './ferryd.js';
import { CLI, ROOT, argInt, argValue, fmtSummary, machineInfo, markdownTable, onCleanup, requireBuild, rotate, rmTree, runMain, sleep, summarize, timedRun, useDistSnapshot, writeResults } from './lib.js';
import { ADDR, LV_URI, NS, parseJobInfo, serialToFile, virsh } from './bench-hosts.js';

const RUNS = argInt('runs', 3);
const RATES = (argValue('rates') ?? '100,0').split(',').map(Number);
const MEMORY_MIB = argInt('memory-mib', 257);
const WS_MIB = Math.min(200, MEMORY_MIB - 40);
const HB_MS = 250;
const TOOLS = (argValue('tools') ?? 'libvirt,ferry').split(',').filter((t): t is Tool => t === 'libvirt' || t === 'ferry');
/** Optional: `ferry migrate-setmaxdowntime` before each Ferry migration (QEMU's downtime-limit, default 300 ms). */
const FERRY_MAX_DOWNTIME = argValue('ferry-maxdowntime') !== undefined ? argInt('ferry-maxdowntime', 300) : undefined;
const FERRY_URI = ADDR.map((a) => `ferry+tcp://${a}:16609/system`);
/** Wrapper and extra QMP sockets; short, since a unix socket path has at most 107 bytes. */
const TAP_DIR = '/tmp/ferry-dtt';
const WRAPPER = join(TAP_DIR, 'qemu-tap');
const QEMU = '/usr/bin/qemu-system-x86_64';

type Tool = 'libvirt' | 'ferry';

// ------------------------------------------------------------ a second QMP monitor

interface TapEvent {
  event: string;
  /** QEMU's timestamp, epoch ms (with µs fraction). */
  ts: number;
  data?: Record<string, unknown>;
}

/** A QMP client on the extra monitor the wrapper adds: collects events with QEMU's timestamps. */
class QmpTap {
  readonly events: TapEvent[] = [];
  connectedAt?: number;
  closed = false;
  private sock?: Socket;
  private buf = '';
  private nextId = 1;
  private readonly pending = new Map<string, (r: Record<string, unknown>) => void>();
  private ready?: () => void;

  constructor(readonly path: string) {}

  /** Waits for the socket to appear, connects and negotiates; resolves when events flow. */
  async open(timeoutMs: number, stop?: () => boolean): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (stop?.()) throw new Error(`gave up waiting for ${this.path}`);
      if (existsSync(this.path)) {
        try {
          await this.connect();
          return;
        } catch {
          // Not listening yet: try again.
        }
      }
      if (Date.now() > end) throw new Error(`no QMP socket ${this.path} within ${timeoutMs} ms`);
      await sleep(5);
    }
  }

  private connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const s = createConnection(this.path);
      let greeted = false;
      s.setEncoding('utf8');
      s.on('error', (err) => {
        if (!greeted) reject(err);
      });
      s.on('close', () => {
        this.closed = true;
        for (const cb of this.pending.values()) cb({ error: { desc: 'closed' } });
        this.pending.clear();
        if (!greeted) reject(new Error('closed before greeting'));
      });
      s.on('data', (d: string) => {
        this.buf += d;
        let nl: number;
        while ((nl = this.buf.indexOf('\n')) >= 0) {
          const line = this.buf.slice(0, nl).trim();
          this.buf = this.buf.slice(nl + 1);
          if (!line) continue;
          let m: Record<string, unknown>;
          try {
            m = JSON.parse(line) as Record<string, unknown>;
          } catch {
            continue;
          }
          if ('QMP' in m) {
            greeted = true;
            this.sock = s;
            this.ready = () => {
              this.connectedAt = Date.now();
              resolve();
            };
            s.write(`${JSON.stringify({ execute: 'qmp_capabilities', id: 'caps' })}\n`);
          } else if (m.id === 'caps') {
            this.ready?.();
          } else if (typeof m.event === 'string') {
            const t = m.timestamp as { seconds: number; microseconds: number };
            this.events.push({ event: m.event, ts: t.seconds * 1000 + t.microseconds / 1000, ...(m.data ? { data: m.data as Record<string, unknown> } : {}) });
          } else if (typeof m.id === 'string' && this.pending.has(m.id)) {
            const cb = this.pending.get(m.id)!;
            this.pending.delete(m.id);
            cb(m);
          }
        }
      });
    });
  }

  execute(command: string): Promise<Record<string, unknown>> {
    if (!this.sock || this.closed) return Promise.resolve({ error: { desc: 'not connected' } });
    const id = `q${this.nextId++}`;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.sock!.write(`${JSON.stringify({ execute: command, id })}\n`);
    });
  }

  first(event: string, pred?: (e: TapEvent) => boolean): TapEvent | undefined {
    return this.events.find((e) => e.event === event && (!pred || pred(e)));
  }

  close(): void {
    this.sock?.destroy();
  }
}

const migrationStatus = (s: string) => (e: TapEvent) => (e.data as { status?: string } | undefined)?.status === s;

/**
 * On the source: once QEMU says completed, asks `query-migrate` until the
 * final figures are in (QEMU 7.2 sets the state before computing them) or
 * the source QEMU goes away.
 */
interface Sample {
  /** Our clock when the answer came, epoch ms. */
  t: number;
  status?: string;
  transferred?: number;
  remaining?: number;
  mbps?: number;
  expectedDowntime?: number;
  dirtySyncCount?: number;
  dirtyPagesRate?: number;
}

/**
 * Samples `query-migrate` on the source every `everyMs` while the migration
 * runs: what QEMU had left to send and expected when it switched over.
 */
async function sampleSource(tap: QmpTap, everyMs: number, until: () => boolean): Promise<Sample[]> {
  const out: Sample[] = [];
  while (!until() && !tap.closed) {
    const r = await tap.execute('query-migrate');
    const info = r.return as Record<string, unknown> | undefined;
    if (info && info.status) {
      const ram = (info.ram ?? {}) as Record<string, number>;
      out.push({
        t: Date.now(),
        status: info.status as string,
        transferred: ram.transferred,
        remaining: ram.remaining,
        mbps: ram.mbps,
        expectedDowntime: info['expected-downtime'] as number | undefined,
        dirtySyncCount: ram['dirty-sync-count'],
        dirtyPagesRate: ram['dirty-pages-rate'],
      });
      if (info.status === 'completed' || info.status === 'failed' || info.status === 'cancelled') break;
    }
    await sleep(everyMs);
  }
  return out;
}

async function sourceQemuFigures(tap: QmpTap, deadline: number): Promise<Record<string, unknown> | undefined> {
  while (Date.now() < deadline && !tap.closed) {
    if (tap.first('MIGRATION', migrationStatus('completed'))) {
      for (let i = 0; i < 100 && !tap.closed; i++) {
        const r = await tap.execute('query-migrate');
        const info = r.return as Record<string, unknown> | undefined;
        if (info && info.status === 'completed' && typeof info['total-time'] === 'number' && (info['total-time'] as number) > 0) return info;
        await sleep(10);
      }
      return undefined;
    }
    await sleep(5);
  }
  return undefined;
}

function writeWrapper(): void {
  mkdirSync(TAP_DIR, { recursive: true });
  // Adds a QMP monitor named after the guest (-name guest=NAME[,...]) and its role
  // (dst when started with -incoming). Capability probes (no -name) run QEMU unchanged.
  writeFileSync(
    WRAPPER,
    `#!/bin/sh
# bench/downtime-trace.ts: QEMU with one more QMP monitor, for tracing events.
name=; role=src; prev=
for a in "$@"; do
  if [ "$prev" = "-name" ]; then name=$(printf '%s' "$a" | sed -e 's/^guest=//' -e 's/,.*//'); fi
  if [ "$a" = "-incoming" ]; then role=dst; fi
  prev=$a
done
if [ -n "$name" ]; then
  exec ${QEMU} "$@" -qmp "unix:${TAP_DIR}/$name.$role.qmp,server=on,wait=off"
fi
exec ${QEMU} "$@"
`,
  );
  chmodSync(WRAPPER, 0o755);
}

// ------------------------------------------------------------ daemon-side events

interface DaemonEvent {
  /** Daemon's timestamp, epoch ms. */
  ts: number;
  domain: string;
  text: string;
  /** 'ferry-a' | 'ferry-b' | 'virsh-qemu-1' | 'virsh-qemu-2' */
  from: string;
  /** virsh qemu-monitor-event: QEMU's own timestamp, epoch ms. */
  qemuTs?: number;
  event?: string;
}

/** A long-running event printer (`ferry event --loop` or `virsh qemu-monitor-event --loop`). */
class EventWatch {
  readonly events: DaemonEvent[] = [];
  stderr = '';
  private child?: ChildProcess;

  constructor(
    private readonly from: string,
    private readonly file: string,
    private readonly args: string[],
    private readonly parse: (line: string) => Omit<DaemonEvent, 'from'> | null,
  ) {}

  /** Starts the printer; waits for `readyPattern` on its stderr, or `timeoutMs` when it prints nothing when ready (virsh). */
  async start(readyPattern: RegExp | undefined, timeoutMs = 20_000): Promise<void> {
    const child = spawn(this.file, this.args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
    this.child = child;
    onCleanup(`event watch ${this.from}`, () => this.stop());
    let out = '';
    let err = '';
    let ready = false;
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      let nl: number;
      while ((nl = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        const e = this.parse(line);
        if (e) this.events.push({ ...e, from: this.from });
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      this.stderr += d;
      if (readyPattern?.test(err)) ready = true;
    });
    const end = Date.now() + timeoutMs;
    while (!ready && Date.now() < end && child.exitCode === null) await sleep(20);
    if (child.exitCode !== null) throw new Error(`${this.from} event watch exited: ${err}`);
    if (!ready && readyPattern) process.stderr.write(`${this.from}: no ready line (${err.trim()}); going on\n`);
  }

  stop(): void {
    if (this.child && this.child.exitCode === null) this.child.kill('SIGTERM');
  }

  of(domain: string): DaemonEvent[] {
    return this.events.filter((e) => e.domain === domain);
  }
}

/** `2026-11-26T10:00:00.123Z: event 'lifecycle' for domain 'NAME': suspended migrated` */
function parseFerryEvent(line: string): Omit<DaemonEvent, 'from'> | null {
  const m = /^(\S+): event '([^']+)' for domain '([^']+)': (.*)$/.exec(line.trim());
  if (!m) return null;
  const ts = Date.parse(m[1]!);
  if (!Number.isFinite(ts)) return null;
  return { ts, domain: m[3]!, event: m[2]!, text: m[4]! };
}

/** `event STOP at 1764151200.123456 for domain 'NAME': <null>` */
function parseVirshQemuEvent(line: string): Omit<DaemonEvent, 'from'> | null {
  const m = /event (\S+) at (\d+)\.(\d+) for domain '([^']+)': (.*)$/.exec(line.trim());
  if (!m) return null;
  const qemuTs = Number(m[2]) * 1000 + Number(m[3]!.padEnd(6, '0').slice(0, 6)) / 1000;
  return { ts: Date.now(), qemuTs, domain: m[4]!, event: m[1]!, text: m[5]! };
}

/** Watches STATE_DIR/jobs of the source ferryd: the first time each job is seen in each phase. */
class JournalWatch {
  readonly seen: { jobId: string; domain: string; phase: string; updatedAt: number; seenAt: number }[] = [];
  private w?: ReturnType<typeof watch>;

  constructor(private readonly dir: string) {}

  start(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.w = watch(this.dir, () => this.scan());
    onCleanup('journal watch', () => this.w?.close());
  }

  private scan(): void {
    const seenAt = Date.now();
    let files: string[];
    try {
      files = readdirSync(this.dir).filter((f) => f.endsWith('.json'));
    } catch {
      return;
    }
    for (const f of files) {
      try {
        const e = JSON.parse(readFileSync(join(this.dir, f), 'utf8')) as { jobId: string; domainName: string; phase: string; updatedAt: string };
        if (!this.seen.some((s) => s.jobId === e.jobId && s.phase === e.phase)) {
          this.seen.push({ jobId: e.jobId, domain: e.domainName, phase: e.phase, updatedAt: Date.parse(e.updatedAt), seenAt });
        }
      } catch {
        // Half-written or gone.
      }
    }
  }

  of(domain: string, phase: string) {
    return this.seen.find((s) => s.domain === domain && s.phase === phase);
  }
}

// ------------------------------------------------------------ runs

interface Run {
  tool: Tool;
  rate: number;
  run: number;
  name: string;
  ok: boolean;
  problems: string[];
  wallMs?: number;
  /** What the tool reports (destination's completed job for libvirt). */
  reportedMs?: number;
  /** QEMU's own figure (source query-migrate). */
  qemuDowntimeMs?: number;
  qemuTotalMs?: number;
  /** QMP timestamps, epoch ms. */
  t: {
    srcStop?: number;
    srcCompleted?: number;
    dstCompleted?: number;
    dstResume?: number;
    /** Ferry: daemon-side steps. */
    srcDaemonStop?: number;
    performSawCompleted?: number;
    dstFinishResuming?: number;
    dstDaemonResumed?: number;
    srcConfirming?: number;
    /** libvirt: the same QMP events as virsh qemu-monitor-event printed them (QEMU's timestamps). */
    virshSrcStop?: number;
    virshDstResume?: number;
  };
  /** Source `query-migrate` samples while migrating (see sampleSource). */
  samples?: Sample[];
  /** Last sample before the switch-over: what QEMU still had to send and expected. */
  atSwitch?: Sample;
  /** Source's final query-migrate, and both sides' migration parameters and capabilities after the job. */
  qemuFinal?: Record<string, unknown>;
  srcParams?: Record<string, unknown>;
  srcCaps?: unknown;
  dstCaps?: unknown;
  /** Every QMP event of both taps. */
  tapEvents?: { src: TapEvent[]; dst: TapEvent[] };
  /** The real pause: destination RESUME - source STOP (QMP timestamps). */
  gapMs?: number;
  dstTapBeforeStop?: boolean;
}

const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '');

/** Waits for `n` heartbeats in the serial log at `path` (see waitForSerialFile). */
const waitBeats = async (path: string, n: number): Promise<void> => void (await waitForSerialFile(path, heartbeatCount(n)));

function guestXml(name: string, uuid: string, rate: number, serialFile?: string): string {
  let xml = testGuestXml({ name, uuid, memoryKiB: MEMORY_MIB * 1024, cmdline: `ws=${WS_MIB} rate=${rate} hb=${HB_MS}` });
  xml = xml.replace('  <devices>\n', `  <devices>\n    <emulator>${WRAPPER}</emulator>\n`);
  if (serialFile) {
    xml = serialToFile(xml, serialFile);
  }
  return xml;
}

function ferry(host: 0 | 1, f: Ferryd, args: string[], timeoutMs = 180_000) {
  const c = inNetns(NS[host], [process.execPath, CLI, '-c', f.unixUri, ...args]);
  return timedRun(c.file, c.args, { timeoutMs, cwd: ROOT });
}

/** Fills the QMP timeline of a run from its two taps. */
function fillQemuTimeline(r: Run, src: QmpTap, dst: QmpTap): void {
  r.t.srcStop = src.first('STOP')?.ts;
  r.t.srcCompleted = src.first('MIGRATION', migrationStatus('completed'))?.ts;
  r.t.dstCompleted = dst.first('MIGRATION', migrationStatus('completed'))?.ts;
  r.t.dstResume = dst.first('RESUME')?.ts;
  if (r.t.srcStop !== undefined && r.t.dstResume !== undefined) r.gapMs = r.t.dstResume - r.t.srcStop;
  r.dstTapBeforeStop = dst.connectedAt !== undefined && r.t.srcStop !== undefined && dst.connectedAt < r.t.srcStop;
  if (!r.dstTapBeforeStop) r.problems.push('the destination tap connected after the source stopped: its events may be missing');
}

runMain(async () => {
  requireBuild(true);
  await useDistSnapshot();
  rmSync(TAP_DIR, { recursive: true, force: true });
  writeWrapper();
  execFileSync('bash', [join(ROOT, 'bench', 'libvirt', 'hosts.sh'), 'start'], { stdio: 'inherit' });
  onCleanup('libvirt hosts', () => execFileSync('bash', [join(ROOT, 'bench', 'libvirt', 'hosts.sh'), 'stop'], { stdio: 'ignore' }));
  const work = mkdtempSync(join(tmpdir(), 'ferry-dtt-'));
  // Registered before the ferryds' clean-up, so it runs after they stopped.
  onCleanup('work dir', () => {
    rmTree(work);
    rmTree(TAP_DIR);
  });
  mkdirSync(join(work, 'serial'), { recursive: true });
  const fd = [
    await startFerryd({ dir: join(work, 'ferry-a'), hostName: 'dtt-a', netns: NS[0], listenTcp: `${ADDR[0]}:16609` }),
    await startFerryd({ dir: join(work, 'ferry-b'), hostName: 'dtt-b', netns: NS[1], listenTcp: `${ADDR[1]}:16609` }),
  ] as const;
  onCleanup('ferryds', () => fd.forEach((f) => f.stop()));

  // Long-running watchers, filtered by domain name per run.
  const fev = [0, 1].map((h) => {
    const c = inNetns(NS[h], [process.execPath, CLI, '-c', fd[h]!.unixUri, 'event', '--loop']);
    return new EventWatch(`ferry-${'ab'[h]}`, c.file, c.args, parseFerryEvent);
  });
  for (const w of fev) await w.start(/waiting for events/);
  const vev = [0, 1].map((h) => {
    // stdbuf: virsh's stdout is a pipe here, which stdio would otherwise buffer until exit.
    // Without --timestamp virsh prints QEMU's own stamp ("at SECONDS.MICROS"); with it, a date to the ms.
    const c = inNetns(NS[h], ['stdbuf', '-oL', 'virsh', '-q', '-c', LV_URI[h]!, 'qemu-monitor-event', '--loop']);
    return new EventWatch(`virsh-qemu-${h + 1}`, c.file, c.args, parseVirshQemuEvent);
  });
  for (const w of vev) await w.start(undefined, 1500);
  const journal = new JournalWatch(join(fd[0].stateDir, 'jobs'));
  journal.start();

  const results: Run[] = [];

  /** Runs one migration with taps on both QEMUs; `migrate` does the tool's part (and records what the tool reports). */
  const traced = async (r: Run, migrate: () => Promise<void>) => {
    const src = new QmpTap(join(TAP_DIR, `${r.name}.src.qmp`));
    const dst = new QmpTap(join(TAP_DIR, `${r.name}.dst.qmp`));
    try {
      await src.open(10_000);
      let migrating = true;
      const dstOpen = dst.open(120_000, () => !migrating).catch((err: Error) => r.problems.push(`destination tap: ${err.message}`));
      const figures = sourceQemuFigures(src, Date.now() + 180_000).then(async (info) => {
        // Parameters as the tool set them, while the source QEMU still exists.
        const [p, c] = await Promise.all([src.execute('query-migrate-parameters'), src.execute('query-migrate-capabilities')]);
        r.srcParams = p.return as Record<string, unknown> | undefined;
        r.srcCaps = (c.return as { capability: string; state: boolean }[] | undefined)?.filter((x) => x.state).map((x) => x.capability);
        return info;
      });
      const sampling = sampleSource(src, 50, () => !migrating);
      try {
        await migrate();
      } finally {
        migrating = false;
      }
      await dstOpen;
      const dc = await dst.execute('query-migrate-capabilities');
      r.dstCaps = (dc.return as { capability: string; state: boolean }[] | undefined)?.filter((x) => x.state).map((x) => x.capability);
      await sleep(300);
      const info = await Promise.race([figures, sleep(2000).then(() => undefined)]);
      if (info) {
        r.qemuDowntimeMs = info.downtime as number;
        r.qemuTotalMs = info['total-time'] as number;
        r.qemuFinal = info;
      }
      r.samples = await Promise.race([sampling, sleep(1000).then(() => [] as Sample[])]);
      fillQemuTimeline(r, src, dst);
      const before = r.samples.filter((x) => x.status === 'active' && (r.t.srcStop === undefined || x.t < r.t.srcStop));
      r.atSwitch = before[before.length - 1];
      r.tapEvents = { src: src.events, dst: dst.events };
    } finally {
      src.close();
      dst.close();
    }
  };

  const runLibvirt = async (rate: number, run: number): Promise<Run> => {
    const name = `dtl${rate}r${run}`;
    const r: Run = { tool: 'libvirt', rate, run, name, ok: false, problems: [], t: {} };
    const srcLog = join(work, 'serial', `${name}.a.log`);
    const dstLog = join(work, 'serial', `${name}.b.log`);
    const xmlA = join(work, `${name}.a.xml`);
    const xmlB = join(work, `${name}.b.xml`);
    const uuid = randomUUID();
    writeFileSync(xmlA, guestXml(name, uuid, rate, srcLog));
    writeFileSync(xmlB, guestXml(name, uuid, rate, dstLog));
    try {
      const c = await virsh(0, ['create', xmlA]);
      if (c.code !== 0) throw new Error(`virsh create: ${c.stderr.trim()}`);
      await waitBeats(srcLog, 4);
      await traced(r, async () => {
        const m = await virsh(0, ['migrate', '--live', '--p2p', '--xml', xmlB, name, LV_URI[1]!]);
        r.wallMs = m.ms;
        if (m.code !== 0) throw new Error(`virsh migrate: ${m.stderr.trim()}`);
      });
      const info = parseJobInfo((await virsh(1, ['domjobinfo', '--completed', name])).stdout);
      if (info['Total downtime']) r.reportedMs = Number(info['Total downtime'].split(' ')[0]);
      r.t.virshSrcStop = vev[0]!.of(name).find((e) => e.event === 'STOP')?.qemuTs;
      r.t.virshDstResume = vev[1]!.of(name).find((e) => e.event === 'RESUME')?.qemuTs;
      await sleep(1500);
      const cont = checkMigrationContinuity(read(srcLog), read(dstLog));
      if (!cont.ok) r.problems.push(...cont.problems.map((p) => `guest check: ${p}`));
    } catch (err) {
      r.problems.push((err as Error).message);
    } finally {
      await virsh(1, ['destroy', name]).catch(() => null);
      await virsh(0, ['destroy', name]).catch(() => null);
    }
    r.ok = r.gapMs !== undefined && r.reportedMs !== undefined;
    return r;
  };

  const runFerry = async (rate: number, run: number): Promise<Run> => {
    const name = `dtf${rate}r${run}`;
    const r: Run = { tool: 'ferry', rate, run, name, ok: false, problems: [], t: {} };
    const xml = join(work, `${name}.xml`);
    writeFileSync(xml, guestXml(name, randomUUID(), rate));
    const srcLog = join(fd[0].stateDir, 'logs', `${name}.serial.log`);
    const dstLog = join(fd[1].stateDir, 'logs', `${name}.serial.log`);
    try {
      const c = await ferry(0, fd[0], ['create', xml]);
      if (c.code !== 0) throw new Error(`ferry create: ${c.stderr.trim()}`);
      await waitBeats(srcLog, 4);
      if (FERRY_MAX_DOWNTIME !== undefined) {
        const s = await ferry(0, fd[0], ['migrate-setmaxdowntime', name, String(FERRY_MAX_DOWNTIME)]);
        if (s.code !== 0) throw new Error(`ferry migrate-setmaxdowntime: ${s.stderr.trim()}`);
      }
      await traced(r, async () => {
        const m = await ferry(0, fd[0], ['--json', 'migrate', '--live', '--p2p', name, FERRY_URI[1]!]);
        r.wallMs = m.ms;
        const out = JSON.parse(m.stdout || m.stderr || '{}') as { stats?: Record<string, number>; error?: { message?: string } };
        if (m.code !== 0) throw new Error(`ferry migrate: ${out.error?.message ?? m.stderr.trim()}`);
        r.reportedMs = out.stats?.downtime;
      });
      await sleep(300);
      const a = fev[0]!.of(name);
      const b = fev[1]!.of(name);
      r.t.srcDaemonStop = a.find((e) => e.text === 'suspended migrated')?.ts;
      r.t.dstFinishResuming = b.find((e) => e.text === 'started migrated')?.ts;
      r.t.dstDaemonResumed = b.find((e) => e.text === 'resumed migrated')?.ts;
      r.t.performSawCompleted = journal.of(name, 'performed')?.updatedAt;
      r.t.srcConfirming = journal.of(name, 'confirming')?.updatedAt;
      await sleep(1200);
      const cont = checkMigrationContinuity(read(srcLog), read(dstLog));
      if (!cont.ok) r.problems.push(...cont.problems.map((p) => `guest check: ${p}`));
    } catch (err) {
      r.problems.push((err as Error).message);
    } finally {
      await ferry(1, fd[1], ['destroy', name]).catch(() => null);
      await ferry(0, fd[0], ['destroy', name]).catch(() => null);
    }
    r.ok = r.gapMs !== undefined && r.reportedMs !== undefined;
    return r;
  };

  const d = (a?: number, b?: number) => (a !== undefined && b !== undefined ? b - a : undefined);
  /** How long QEMU's first (bulk) pass took: MIGRATION active to MIGRATION_PASS 2 on the source. */
  const pass1Ms = (r: Run) => {
    const ev = r.tapEvents?.src ?? [];
    return d(ev.find((e) => e.event === 'MIGRATION' && migrationStatus('active')(e))?.ts, ev.find((e) => e.event === 'MIGRATION_PASS' && (e.data as { pass?: number }).pass === 2)?.ts);
  };
  /** MIGRATION_PASS events (dirty-bitmap syncs) up to and including the one at the STOP. */
  const syncsBeforeStop = (r: Run) => (r.t.srcStop === undefined ? undefined : (r.tapEvents?.src ?? []).filter((e) => e.event === 'MIGRATION_PASS' && e.ts <= r.t.srcStop! + 1).length);
  const f = (x?: number) => (x === undefined ? '-' : x.toFixed(0));
  const rowOf = (r: Run): string[] => [
    r.rate === 0 ? 'idle' : `${r.rate} MiB/s`,
    r.tool,
    String(r.run),
    f(r.reportedMs),
    f(r.qemuDowntimeMs),
    f(r.gapMs),
    r.atSwitch?.remaining !== undefined ? (r.atSwitch.remaining / 1048576).toFixed(1) : '-',
    r.atSwitch?.mbps !== undefined ? r.atSwitch.mbps.toFixed(0) : '-',
    f(pass1Ms(r)),
    String(syncsBeforeStop(r) ?? '-'),
    f(d(r.t.srcStop, r.t.srcCompleted)),
    f(d(r.t.srcCompleted, r.t.dstCompleted)),
    r.tool === 'ferry' ? f(d(r.t.dstCompleted, r.t.dstFinishResuming)) : '-',
    r.tool === 'ferry' ? f(d(r.t.dstFinishResuming, r.t.dstResume)) : '-',
    f(d(r.t.dstCompleted, r.t.dstResume)),
    r.tool === 'ferry' ? f(d(r.t.srcCompleted, r.t.performSawCompleted)) : '-',
    r.tool === 'ferry' ? f(d(r.t.srcDaemonStop, r.t.dstDaemonResumed)) : '-',
    r.problems.length ? r.problems.join('; ').slice(0, 120) : 'ok',
  ];

  for (const rate of RATES) {
    for (let run = 1; run <= RUNS; run++) {
      for (const tool of rotate<Tool>(TOOLS, run)) {
        const r = tool === 'libvirt' ? await runLibvirt(rate, run) : await runFerry(rate, run);
        results.push(r);
        process.stderr.write(`${rowOf(r).join(' | ')}\n`);
      }
    }
  }
  for (const w of [...fev, ...vev]) w.stop();

  const header = [
    'workload',
    'tool',
    'run',
    'reported downtime ms',
    "QEMU's downtime ms (src query-migrate)",
    'real pause ms (src STOP → dst RESUME, QMP)',
    'MiB left at last sample before STOP',
    'QEMU mbps then',
    'pass 1 ms (active → 2nd dirty sync)',
    'dirty syncs up to STOP',
    'src STOP → src completed',
    'src completed → dst completed',
    'dst completed → finish at cont (Ferry)',
    'finish at cont → dst RESUME (Ferry)',
    'dst completed → dst RESUME',
    'src completed → perform saw it (Ferry)',
    'Ferry check: dst "resumed migrated" − src "suspended migrated" (daemon clocks)',
    'notes',
  ];
  const table = markdownTable(header, results.map(rowOf));
  const summaryRows: string[][] = [];
  const summary: Record<string, unknown>[] = [];
  for (const rate of RATES) {
    for (const tool of TOOLS) {
      const rs = results.filter((r) => r.tool === tool && r.rate === rate && r.ok);
      const s = (g: (r: Run) => number | undefined) => summarize(rs.map(g).filter((x): x is number => x !== undefined));
      const row = {
        reported: s((r) => r.reportedMs),
        qemu: s((r) => r.qemuDowntimeMs),
        gap: s((r) => r.gapMs),
        stopToSrcCompleted: s((r) => d(r.t.srcStop, r.t.srcCompleted)),
        srcToDstCompleted: s((r) => d(r.t.srcCompleted, r.t.dstCompleted)),
        dstCompletedToResume: s((r) => d(r.t.dstCompleted, r.t.dstResume)),
      };
      summary.push({ rate, tool, n: rs.length, ...row });
      summaryRows.push([
        rate === 0 ? 'idle' : `${rate} MiB/s`,
        tool,
        String(rs.length),
        fmtSummary(row.reported),
        fmtSummary(row.qemu),
        fmtSummary(row.gap),
        fmtSummary(row.stopToSrcCompleted),
        fmtSummary(row.srcToDstCompleted),
        fmtSummary(row.dstCompletedToResume),
      ]);
    }
  }
  const summaryTable = markdownTable(
    ['workload', 'tool', 'runs', 'reported downtime ms', "QEMU's downtime ms", 'real pause ms (STOP → RESUME)', 'src STOP → src completed', 'src completed → dst completed', 'dst completed → dst RESUME'],
    summaryRows,
  );
  const limit = FERRY_MAX_DOWNTIME !== undefined ? `, Ferry with downtime-limit ${FERRY_MAX_DOWNTIME} ms` : '';
  process.stdout.write(`## Downtime trace (guest ${MEMORY_MIB} MiB, ws=${WS_MIB} MiB, p2p, ${RUNS} runs each, alternated${limit}; ms)\n\n${table}\n\nMedians (min-max):\n\n${summaryTable}\n`);
  const file = writeResults(argValue('results-name') ?? 'downtime-trace', { machine: machineInfo(), tools: TOOLS, ferryMaxDowntimeMs: FERRY_MAX_DOWNTIME ?? null, runs: RUNS, memoryMiB: MEMORY_MIB, rates: RATES, results, summary, virshEvents: vev.map((w) => ({ events: w.events, stderr: w.stderr })), ferryEvents: fev.map((w) => w.events), journal: journal.seen });
  process.stdout.write(`\nresults: ${file}\n`);
});
