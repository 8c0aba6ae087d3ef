/**
 * evacuation-scale: issue 15's scale run. Four hosts, 40 small memory-writing
 * test guests all started on host 1, then
 *
 * - step 1, the evacuation: `ferry -c HOST1 evacuate --to HOST2 --to HOST3
 *   --to HOST4 [--max-parallel N] --json`;
 * - step 2, the rebalance: Ferry has no rebalance command, so host 2 is
 *   evacuated in turn onto hosts 1, 3 and 4 (`ferry -c HOST2 evacuate --to
 *   HOST1 --to HOST3 --to HOST4`): the same planning decides where host
 *   2's guests go, and host 2 ends empty. (On these hosts, which share one
 *   kernel's MemAvailable, the plan sees the three destinations as equally
 *   free and spreads the guests over them rather than refilling host 1:
 *   docs/performance.md, "Evacuation at scale");
 *
 * and the same moves with libvirt 9.0, which has no evacuation: a loop of
 * `virsh migrate --live --p2p --persistent --undefinesource`, N at once
 * (N = Ferry's parallelism), each guest sent to the host Ferry's plan chose
 * for it, in the plan's order (largest first), between four libvirtds.
 *
 * Per step it reports the evacuation's total time (the CLI's wall time, and
 * the daemon's: the status's `endedAtMs - startedAtMs` when it has them,
 * else the record's `updatedAtMs - createdAtMs`), the sum of the single
 * migrations' times (every attempt's `endedAtMs - startedAtMs` in the
 * record), the most migrations in flight (the status's `maxInFlight`, the
 * source ferryd's `evacuation: start ... in flight N` lines, its and the
 * destinations' `migration slots:` lines, the status polled every 200 ms, and
 * the overlap of the attempts' intervals), and afterwards, over all guests:
 * each runs on exactly one host and is defined only there, its heartbeat
 * went on across every hop (+1 at each, no gap from boot), it still beats,
 * and no serial log on any host says CORRUPT.
 *
 * Hosts: bench/libvirt/hosts.sh with FERRY_LIBVIRT_HOSTS=4 (network
 * namespaces lvb-h1..lvb-h4, 10.203.0.1-4 on one bridge); for Ferry only the
 * namespaces (`net`) and a ferryd in each, for libvirt a libvirtd in each.
 * The two tools never run at the same time.
 *
 * Guests: the test guest (guest/), one vCPU, 24 to 56 MiB + 4 KiB (odd sizes:
 * QEMU 7.2 under TCG loses dirty pages at multiples of 256 KiB, see
 * /work/shared/PLATFORM.md), a 4 MiB working set rewritten at 1 MiB/s, a
 * heartbeat every 500 ms: 40 such guests use about 0.4 of a core and 2 GiB
 * here. libvirt rounds memory up to whole MiB, so its guests are 25 to 57
 * MiB, the sizes at which TCG can lose pages (see docs/performance.md,
 * "Memory sizes under TCG"); a CORRUPT there is reported, not hidden.
 *
 *   npx tsx bench/evacuation-scale.ts [--guests 40] [--tools ferry,libvirt]
 *       [--max-parallel N] [--outgoing-limit N] [--incoming-limit N]
 *       [--lv-guests N] [--ws 4] [--rate 1] [--hb 500] [--step-cap-s 480]
 *       [--runs 1] [--out evacuation-scale]
 *
 * `--max-parallel`: passed to `ferry evacuate` (default: none, so the
 * source's outgoing limit applies, the number of cores and at least 2) and
 * the libvirt loop's N (default: that limit, read from host 1's facts).
 * `--outgoing-limit`/`--incoming-limit`: every ferryd's
 * `--max-outgoing-migrations`/`--max-incoming-migrations` (default: ferryd's).
 * `--lv-guests`: fewer guests for libvirt (default: as many). `--runs`: the
 * whole thing again with fresh hosts and guests, Ferry then libvirt in each
 * run; the report adds medians over the runs. Needs root, `npm run build`
 * and `make -C guest`; not part of the test suite nor of bench/run-all.sh.
 * Prints markdown, writes bench/results/NAME.json and NAME.md, and copies
 * each ferryd's log there (NAME-runR-ferryd-hN.log).
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../src/api/client.js';
import type { EvacuationRecord, GuestEntry } from '../src/evacuation/record.js';
import { inNetns } from '../test/support/netns.js';
import { checkMigrationContinuity, findCounterAnomalies, parseSerialLog } from '../test/support/serial.js';
import { heartbeats, testGuestXml, waitForSerialFile } from '../test/support/guest-xml.js';
import { parseJobInfo, serialToFile } from './bench-hosts.js';
import { startFerryd, type Ferryd } from './ferryd.js';
import {
  CLI,
  RESULTS_DIR,
  ROOT,
  argInt,
  argValue,
  fmtSummary,
  machineInfo,
  markdownTable,
  onCleanup,
  requireBuild,
  rmTree,
  runMain,
  sleep,
  summarize,
  timedRun,
  useDistSnapshot,
  writeResults,
  type Summary,
  type TimedRun,
} from './lib.js';

// ------------------------------------------------------------ settings

const GUESTS = argInt('guests', 40);
const LV_GUESTS = Math.min(argInt('lv-guests', GUESTS), GUESTS);
const TOOLS = (argValue('tools') ?? 'ferry,libvirt').split(',');
const MAX_PARALLEL = argValue('max-parallel') !== undefined ? argInt('max-parallel', 2) : undefined;
const OUTGOING_LIMIT = argValue('outgoing-limit') !== undefined ? argInt('outgoing-limit', 2) : undefined;
const INCOMING_LIMIT = argValue('incoming-limit') !== undefined ? argInt('incoming-limit', 2) : undefined;
const WS_MIB = argInt('ws', 4);
const RATE_MIBS = argInt('rate', 1);
const HB_MS = argInt('hb', 500);
/** A step still running after this long is stopped (`evacuate-stop --abort`, or the loop's migrations aborted). */
const STEP_CAP_MS = argInt('step-cap-s', 480) * 1000;
const OUT = argValue('out') ?? 'evacuation-scale';
const RUNS = argInt('runs', 1);

/** The four hosts of bench/libvirt/hosts.sh run with FERRY_LIBVIRT_HOSTS=4 (its names and addresses). */
const HOSTS = 4;
const HOSTS_SH = join(ROOT, 'bench', 'libvirt', 'hosts.sh');
const HOSTS_ENV = { ...process.env, FERRY_LIBVIRT_HOSTS: String(HOSTS) };
const NS = Array.from({ length: HOSTS }, (_, i) => `lvb-h${i + 1}`);
const ADDR = Array.from({ length: HOSTS }, (_, i) => `10.203.0.${i + 1}`);
const FERRY_TCP = ADDR.map((a) => `ferry+tcp://${a}:16609/system`);
const LV_URI = ADDR.map((a) => `qemu+tcp://${a}/system`);
/** Host number (1-based, as printed) of a URI holding one of the addresses; 0 when none. */
const hostOfUri = (uri: string | undefined): number => (uri ? ADDR.findIndex((a) => uri.includes(`//${a}`)) + 1 : 0);

/** Step 1 evacuates host 1 onto 2, 3, 4; step 2 (the rebalance) host 2 onto 1, 3, 4. Indexes are 0-based. */
const STEPS = [
  { step: 1, source: 0, destinations: [1, 2, 3] },
  { step: 2, source: 1, destinations: [0, 2, 3] },
] as const;

// ------------------------------------------------------------ guests

interface GuestSpec {
  name: string;
  uuid: string;
  memoryKiB: number;
}

/** 24, 32, 40, 48, 56 MiB, each + 4 KiB, in turn. */
function guestSpecs(n: number): GuestSpec[] {
  return Array.from({ length: n }, (_, i) => ({
    name: `evs-${String(i + 1).padStart(2, '0')}`,
    uuid: randomUUID(),
    memoryKiB: (24 + 8 * (i % 5)) * 1024 + 4,
  }));
}

const CMDLINE = `ws=${WS_MIB} rate=${RATE_MIBS} hb=${HB_MS}`;
const guestXml = (g: GuestSpec): string => testGuestXml({ name: g.name, uuid: g.uuid, memoryKiB: g.memoryKiB, cmdline: CMDLINE });

// ------------------------------------------------------------ results

/** One migration as a tool reports it. */
interface Move {
  name: string;
  /** 1-based host number it was sent to. */
  to: number;
  startedAtMs: number;
  endedAtMs: number;
  result: string;
  downtimeMs?: number;
  error?: string;
}

/** The most migrations in flight at once, each way it can be seen. */
interface InFlight {
  /** `status.maxInFlight` (Ferry). */
  status?: number;
  /** The highest N of the source ferryd's `evacuation: start ... in flight N` lines. */
  sourceLog?: number;
  /** The highest `migration slots: outgoing R running` on the source, and queued. */
  slotsOutgoing?: number;
  slotsOutgoingQueued?: number;
  /** Per destination host number: the highest `migration slots: incoming R running`. */
  slotsIncoming?: Record<string, number>;
  /** The most `inFlight` entries seen polling the status every 200 ms (Ferry), or counted by the loop (libvirt). */
  polled?: number;
  /** The most attempts whose [start, end] intervals overlap. */
  overlap: number;
}

interface StepResult {
  tool: 'ferry' | 'libvirt';
  run: number;
  step: number;
  /** 1-based host numbers. */
  source: number;
  destinations: number[];
  /** The parallelism asked for (Ferry: `--max-parallel`, or the source's outgoing limit when not given). */
  maxParallel: number;
  guests: number;
  command: string;
  exitCode: number | null;
  /** Ferry: the CLI from spawn to exit; libvirt: the loop from its first start to its last end. */
  wallMs: number;
  /**
   * Ferry, the daemon's own: the status's `endedAtMs - startedAtMs` when it has them, else the
   * record's `updatedAtMs - createdAtMs` (the record is made once planned, and last changed by the
   * last migration's end).
   */
  totalMs?: number;
  /** Ferry: the first attempt's start to the last one's end. */
  spanMs?: number;
  state?: string;
  moved: number;
  failed: number;
  check: number;
  attempts: number;
  sumSinglesMs: number;
  singles: Summary;
  downtime: Summary;
  inFlight: InFlight;
  /** Guests running on each host (1-based) before and after. */
  before: number[];
  after: number[];
  moves: Move[];
  /** The guests not moved, with why. */
  notMoved: Array<{ name: string; status: string; note: string }>;
  /** Ferry: each guest's destination in the record, in the plan's order (what the libvirt loop follows). */
  plan?: Array<{ name: string; to: number }>;
  /** Ferry: every ferryd's `evacuation:` and `migration slots:` lines during the step, prefixed with the host. */
  logLines?: string[];
  /** Ferry: the evacuation record as the status gave it at the end (the hosts' facts, each guest's note and attempts). */
  record?: EvacuationRecord;
  stderrTail?: string;
}

interface GuestCheck {
  name: string;
  /** 1-based host numbers where it runs, and where it is defined (persistent). */
  runningOn: number[];
  definedOn: number[];
  /** The hosts it went through, 1-based, from boot. */
  path: number[];
  lastCounter: number;
  problems: string[];
}

interface InvariantResult {
  guests: number;
  ok: number;
  corruptLogs: string[];
  failures: GuestCheck[];
  perHost: number[];
  /** Every guest: the hosts it went through and its last heartbeat counter at the end. */
  paths: Array<{ name: string; path: number[]; lastCounter: number }>;
}

// ------------------------------------------------------------ helpers

const readText = (p: string): string => (existsSync(p) ? readFileSync(p, 'utf8') : '');
const sizeOf = (p: string): number => (existsSync(p) ? statSync(p).size : 0);

/** The most intervals open at once. */
function maxOverlap(moves: readonly { startedAtMs: number; endedAtMs: number }[]): number {
  const edges = moves.flatMap((m) => [
    [m.startedAtMs, 1],
    [m.endedAtMs, -1],
  ]) as Array<[number, number]>;
  // An end at the same instant as a start closes first.
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let open = 0;
  let most = 0;
  for (const [, d] of edges) {
    open += d;
    most = Math.max(most, open);
  }
  return most;
}

function maxOf(text: string, re: RegExp, group = 1): number | undefined {
  let most: number | undefined;
  for (const m of text.matchAll(re)) most = Math.max(most ?? 0, Number(m[group]));
  return most;
}

/**
 * The heartbeat across a guest's hops: each log (complete, but the last)
 * continued at +1 in the next, no counter anomaly from boot (1) to now, one
 * boot only, no CORRUPT.
 */
function chainProblems(segments: readonly { host: number; text: string }[]): string[] {
  const problems: string[] = [];
  for (let i = 0; i + 1 < segments.length; i++) {
    const c = checkMigrationContinuity(segments[i]!.text, segments[i + 1]!.text);
    for (const p of c.problems) problems.push(`host ${segments[i]!.host} -> host ${segments[i + 1]!.host}: ${p}`);
  }
  const all = parseSerialLog(segments.map((s) => s.text).join(''));
  for (const a of findCounterAnomalies(all.heartbeats, 1)) problems.push(`heartbeat ${a.counter} follows ${a.previous} over the whole run`);
  const boots = all.events.filter((e) => e.kind === 'boot').length;
  if (boots !== 1) problems.push(`${boots} boots in its serial logs`);
  if (all.corrupt) problems.push('CORRUPT in its serial logs');
  return [...new Set(problems)];
}

function runIn(host: number, argv: string[], timeoutMs: number): Promise<TimedRun> {
  const c = inNetns(NS[host], argv);
  return timedRun(c.file, c.args, { timeoutMs, cwd: ROOT });
}

const ferryCli = (host: number, f: Ferryd, args: string[], timeoutMs = 120_000) => runIn(host, [process.execPath, CLI, '-c', f.unixUri, ...args], timeoutMs);
const virsh = (host: number, args: string[], timeoutMs = 300_000) => runIn(host, ['virsh', '-q', '-c', LV_URI[host]!, ...args], timeoutMs);

function log(line: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
}

/**
 * The status `ferry evacuate --json` and `evacuate-status --json` print (the fields this program
 * reads; src/migration/evacuations.ts). The spec this was written against also had
 * `startedAtMs`/`endedAtMs`; they are used when present.
 */
interface EvacuationStatus {
  state: string;
  record: EvacuationRecord | null;
  inFlight?: Array<{ name: string; destination: string }>;
  maxInFlight?: number;
  maxParallel?: number | null;
  startedAtMs?: number;
  endedAtMs?: number;
}

function parseJson<T>(text: string): T | undefined {
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}

// ------------------------------------------------------------ Ferry

interface FerryRun {
  run: number;
  steps: StepResult[];
  invariant: InvariantResult;
  /** Per step: guest name -> the 1-based host its plan sent it to, in plan order (for the libvirt loop). */
  plans: Array<Array<{ name: string; to: number }>>;
  startGuestsMs: number;
  limits: { outgoing: number; incoming: number };
}

async function runFerry(work: string, guests: readonly GuestSpec[], run: number): Promise<FerryRun> {
  execFileSync('bash', [HOSTS_SH, 'net'], { stdio: 'inherit', env: HOSTS_ENV });
  const netDown = onCleanup('namespaces', () => execFileSync('bash', [HOSTS_SH, 'stop'], { stdio: 'ignore' }));
  const extraArgs = [
    ...(OUTGOING_LIMIT !== undefined ? ['--max-outgoing-migrations', String(OUTGOING_LIMIT)] : []),
    ...(INCOMING_LIMIT !== undefined ? ['--max-incoming-migrations', String(INCOMING_LIMIT)] : []),
  ];
  const fd: Ferryd[] = [];
  const stopAll = onCleanup('ferryds', () => fd.forEach((f) => f.stop()));
  for (let i = 0; i < HOSTS; i++) {
    fd.push(await startFerryd({ dir: join(work, `ferry-h${i + 1}`), hostName: `evs-h${i + 1}`, netns: NS[i], listenTcp: `${ADDR[i]}:16609`, extraArgs }));
  }
  const clients = await Promise.all(fd.map((f) => ApiClient.connect(f.unixUri)));
  const serial = (host: number, name: string) => join(fd[host]!.stateDir, 'logs', `${name}.serial.log`);
  try {
    const facts = await clients[0]!.call('host.facts', {});
    const limits = { outgoing: facts.migrations.outgoing.limit, incoming: facts.migrations.incoming.limit };
    const parallel = MAX_PARALLEL ?? limits.outgoing;
    log(`ferry: 4 ferryds up (outgoing limit ${limits.outgoing}, incoming ${limits.incoming}); starting ${guests.length} guests on host 1`);
    const t0 = Date.now();
    for (const g of guests) {
      await clients[0]!.call('domain.define', { xml: guestXml(g) });
      await clients[0]!.call('domain.start', { domain: g.name }, { timeoutMs: 120_000 });
    }
    await Promise.all(guests.map((g) => waitForSerialFile(serial(0, g.name), heartbeats(3), 180_000)));
    const startGuestsMs = Date.now() - t0;
    log(`ferry: ${guests.length} guests beating on host 1 after ${(startGuestsMs / 1000).toFixed(1)} s`);

    const running = async (): Promise<Map<string, number[]>> => {
      const where = new Map<string, number[]>();
      for (const [i, c] of clients.entries()) {
        for (const d of await c.call('domain.list', { all: true })) {
          if (d.id !== null) where.set(d.name, [...(where.get(d.name) ?? []), i + 1]);
        }
      }
      return where;
    };
    const perHost = (where: Map<string, number[]>) => Array.from({ length: HOSTS }, (_, i) => [...where.values()].filter((hs) => hs.includes(i + 1)).length);

    const steps: StepResult[] = [];
    const plans: FerryRun['plans'] = [];
    /** Each guest's serial logs, saved once complete (its QEMU on that host gone): [host, text] in hop order. */
    const saved = new Map<string, Array<{ host: number; text: string }>>(guests.map((g) => [g.name, []]));
    for (const s of STEPS) {
      const before = perHost(await running());
      const onSource = [...(await running()).entries()].filter(([, hs]) => hs.includes(s.source + 1)).map(([n]) => n);
      const r = await ferryStep(run, s.step, s.source, s.destinations, fd, clients, parallel, before, onSource.length);
      r.after = perHost(await running());
      steps.push(r);
      plans.push(r.plan ?? []);
      // The source's logs of the guests that left it are complete now: keep them (a guest that comes
      // back gets a fresh log there).
      const where = await running();
      for (const n of onSource) {
        if (!(where.get(n) ?? []).includes(s.source + 1)) saved.get(n)!.push({ host: s.source + 1, text: readText(serial(s.source, n)) });
      }
      log(
        `ferry step ${s.step}: ${r.moved}/${r.guests} moved in ${(r.wallMs / 1000).toFixed(1)} s (daemon ${r.totalMs !== undefined ? (r.totalMs / 1000).toFixed(1) : '-'} s), ` +
          `singles sum ${(r.sumSinglesMs / 1000).toFixed(1)} s, max in flight ${r.inFlight.status ?? '-'} (log ${r.inFlight.sourceLog ?? '-'}, overlap ${r.inFlight.overlap}); hosts ${r.after.join('/')}`,
      );
    }

    // The invariant, after a few more heartbeats everywhere.
    await sleep(3 * HB_MS + 500);
    const invariant = await ferryInvariant(guests, clients, fd, saved, serial);
    return { run, steps, invariant, plans, startGuestsMs, limits };
  } finally {
    clients.forEach((c) => c.close());
    fd.forEach((f) => f.stop());
    // The daemons' logs next to the results (git-ignored: *.log), for whoever reads a finding.
    mkdirSync(RESULTS_DIR, { recursive: true });
    fd.forEach((f, i) => existsSync(f.logPath) && copyFileSync(f.logPath, join(RESULTS_DIR, `${OUT}-run${run}-ferryd-h${i + 1}.log`)));
    stopAll();
    execFileSync('bash', [HOSTS_SH, 'stop'], { stdio: 'ignore' });
    netDown();
  }
}

async function ferryStep(
  run: number,
  step: number,
  source: number,
  destinations: readonly number[],
  fd: readonly Ferryd[],
  clients: readonly ApiClient[],
  parallel: number,
  before: number[],
  onSource: number,
): Promise<StepResult> {
  const offsets = fd.map((f) => sizeOf(f.logPath));
  const args = ['--json', 'evacuate', ...destinations.flatMap((d) => ['--to', FERRY_TCP[d]!]), ...(MAX_PARALLEL !== undefined ? ['--max-parallel', String(MAX_PARALLEL)] : [])];
  const command = `ferry -c HOST${source + 1} ${args.join(' ').replace(/ferry\+tcp:\/\/10\.203\.0\.(\d)[^ ]*/g, 'HOST$1')}`;
  log(`ferry step ${step}: ${command} (${onSource} guests on host ${source + 1})`);

  // Poll the status alongside, for an in-flight figure of its own.
  let polled = 0;
  let polling = true;
  const poller = (async () => {
    while (polling) {
      try {
        const st = (await clients[source]!.callRaw('host.evacuate.status', {}, { timeoutMs: 5000 })) as EvacuationStatus;
        polled = Math.max(polled, st.inFlight?.length ?? 0);
      } catch {
        // Not there yet, or busy: the next poll.
      }
      await sleep(200);
    }
  })();
  const cli = await ferryCli(source, fd[source]!, args, STEP_CAP_MS);
  polling = false;
  await poller;
  if (cli.signal) {
    // Capped: stop the evacuation in the daemon too (killing the CLI does not), and let it settle.
    log(`ferry step ${step}: still running after ${STEP_CAP_MS / 1000} s: evacuate-stop --abort`);
    await ferryCli(source, fd[source]!, ['evacuate-stop', '--abort']);
    for (let i = 0; i < 120; i++) {
      const st = parseJson<EvacuationStatus>((await ferryCli(source, fd[source]!, ['--json', 'evacuate-status'])).stdout);
      if (st && st.state !== 'running' && st.state !== 'stopping' && st.state !== 'aborting') break;
      await sleep(1000);
    }
  }
  // `evacuate --json` prints the final status, also when not every guest moved (then with an
  // `error`); a capped run printed nothing, so ask as a user would.
  const statusRun = await ferryCli(source, fd[source]!, ['--json', 'evacuate-status']);
  const printed = parseJson<EvacuationStatus>(cli.stdout);
  const status = printed?.record ? printed : parseJson<EvacuationStatus>(statusRun.stdout);
  const entries: GuestEntry[] = status?.record?.guests ?? [];
  const moves: Move[] = entries.flatMap((e) =>
    e.attempts.map((a) => ({
      name: e.guest.name,
      to: hostOfUri(a.destination),
      startedAtMs: a.startedAtMs,
      endedAtMs: a.endedAtMs ?? Number.NaN,
      result: a.result ?? 'open',
      ...(a.downtimeMs !== undefined ? { downtimeMs: a.downtimeMs } : {}),
      ...(a.error !== undefined ? { error: a.error } : {}),
    })),
  );
  const ended = moves.filter((m) => Number.isFinite(m.endedAtMs));
  const singles = ended.map((m) => m.endedAtMs - m.startedAtMs);

  const logs = fd.map((f, i) => (existsSync(f.logPath) ? readFileSync(f.logPath).subarray(offsets[i]).toString('utf8') : ''));
  const slotsIncoming: Record<string, number> = {};
  for (const d of destinations) {
    const m = maxOf(logs[d]!, /migration slots: incoming (\d+) running/g);
    if (m !== undefined) slotsIncoming[String(d + 1)] = m;
  }
  const inFlight: InFlight = {
    ...(status?.maxInFlight !== undefined ? { status: status.maxInFlight } : {}),
    ...optional('sourceLog', maxOf(logs[source]!, /evacuation: start .* in flight (\d+)/g)),
    ...optional('slotsOutgoing', maxOf(logs[source]!, /migration slots: outgoing (\d+) running/g)),
    ...optional('slotsOutgoingQueued', maxOf(logs[source]!, /migration slots: outgoing \d+ running of \d+, (\d+) queued/g)),
    slotsIncoming,
    polled,
    overlap: maxOverlap(ended),
  };
  const count = (st: string) => entries.filter((e) => e.status === st).length;
  return {
    tool: 'ferry',
    run,
    step,
    source: source + 1,
    destinations: destinations.map((d) => d + 1),
    maxParallel: status?.maxParallel ?? parallel,
    guests: entries.length || onSource,
    command,
    exitCode: cli.code,
    wallMs: cli.ms,
    ...(status?.startedAtMs !== undefined && status.endedAtMs !== undefined
      ? { totalMs: status.endedAtMs - status.startedAtMs }
      : status?.record
        ? { totalMs: status.record.updatedAtMs - status.record.createdAtMs }
        : {}),
    ...(ended.length > 0 ? { spanMs: Math.max(...ended.map((m) => m.endedAtMs)) - Math.min(...ended.map((m) => m.startedAtMs)) } : {}),
    ...(status ? { state: status.state } : {}),
    moved: count('done'),
    failed: count('failed'),
    check: count('check'),
    attempts: moves.length,
    sumSinglesMs: singles.reduce((a, b) => a + b, 0),
    singles: summarize(singles),
    downtime: summarize(ended.filter((m) => m.result === 'migrated' && m.downtimeMs !== undefined).map((m) => m.downtimeMs!)),
    inFlight,
    before,
    after: [],
    moves,
    notMoved: entries.filter((e) => e.status !== 'done').map((e) => ({ name: e.guest.name, status: e.status, note: e.note })),
    plan: entries.filter((e) => e.destination !== undefined).map((e) => ({ name: e.guest.name, to: hostOfUri(e.destination) })),
    logLines: logs.flatMap((text, i) => text.split('\n').filter((l) => /evacuation:|migration slots:/.test(l)).map((l) => `h${i + 1} ${l}`)),
    ...(status?.record ? { record: status.record } : {}),
    ...(cli.code !== 0 ? { stderrTail: `${cli.stderr}${cli.stdout}`.slice(-2000) } : {}),
  };
}

function optional<K extends string>(key: K, v: number | undefined): Partial<Record<K, number>> {
  return v === undefined ? {} : ({ [key]: v } as Record<K, number>);
}

async function ferryInvariant(
  guests: readonly GuestSpec[],
  clients: readonly ApiClient[],
  fd: readonly Ferryd[],
  saved: Map<string, Array<{ host: number; text: string }>>,
  serial: (host: number, name: string) => string,
): Promise<InvariantResult> {
  const runningOn = new Map<string, number[]>();
  const definedOn = new Map<string, number[]>();
  for (const [i, c] of clients.entries()) {
    for (const d of await c.call('domain.list', { all: true })) {
      if (d.id !== null) runningOn.set(d.name, [...(runningOn.get(d.name) ?? []), i + 1]);
      if (d.persistent) definedOn.set(d.name, [...(definedOn.get(d.name) ?? []), i + 1]);
    }
  }
  const checks: GuestCheck[] = [];
  const first = new Map<string, number>();
  for (const g of guests) {
    const on = runningOn.get(g.name) ?? [];
    const segs = [...saved.get(g.name)!];
    if (on.length === 1) segs.push({ host: on[0]!, text: readText(serial(on[0]! - 1, g.name)) });
    first.set(g.name, parseSerialLog(segs.at(-1)?.text ?? '').lastHeartbeat?.counter ?? 0);
    checks.push({ name: g.name, runningOn: on, definedOn: definedOn.get(g.name) ?? [], path: segs.map((s) => s.host), lastCounter: 0, problems: chainProblems(segs) });
  }
  // Still beating: every guest's counter went up over a few more heartbeats.
  await sleep(3 * HB_MS + 500);
  for (const c of checks) {
    if (c.runningOn.length === 1) c.lastCounter = parseSerialLog(readText(serial(c.runningOn[0]! - 1, c.name))).lastHeartbeat?.counter ?? 0;
    if (c.runningOn.length !== 1) c.problems.unshift(`runs on ${c.runningOn.length} hosts (${c.runningOn.join(', ') || 'none'})`);
    if (c.definedOn.length !== 1 || c.definedOn[0] !== c.runningOn[0]) c.problems.unshift(`defined on host(s) ${c.definedOn.join(', ') || 'none'}`);
    if (c.runningOn.length === 1 && c.lastCounter <= first.get(c.name)!) c.problems.push(`heartbeat stopped at ${c.lastCounter}`);
  }
  const corruptLogs: string[] = [];
  for (const [i, f] of fd.entries()) {
    const dir = join(f.stateDir, 'logs');
    if (!existsSync(dir)) continue;
    for (const file of readdirSync(dir).filter((n) => n.endsWith('.serial.log'))) {
      if (/CORRUPT/.test(readText(join(dir, file)))) corruptLogs.push(`host ${i + 1}: ${file}`);
    }
  }
  return invariantOf(checks, corruptLogs);
}

function invariantOf(checks: GuestCheck[], corruptLogs: string[]): InvariantResult {
  const failures = checks.filter((c) => c.problems.length > 0);
  return {
    guests: checks.length,
    ok: checks.length - failures.length,
    corruptLogs,
    failures,
    perHost: Array.from({ length: HOSTS }, (_, i) => checks.filter((c) => c.runningOn.length === 1 && c.runningOn[0] === i + 1).length),
    paths: checks.map((c) => ({ name: c.name, path: c.path, lastCounter: c.lastCounter })),
  };
}

// ------------------------------------------------------------ libvirt

interface LibvirtRun {
  run: number;
  steps: StepResult[];
  invariant: InvariantResult;
  startGuestsMs: number;
  /** Where each step's destinations came from. */
  planFrom: 'ferry' | 'greedy';
}

/**
 * Largest first onto the destination with the least memory so far (ties: fewer guests, then the
 * first given): the rule of Ferry's planner for hosts of equal size, for when Ferry did not run.
 */
function greedyPlan(guests: readonly GuestSpec[], destinations: readonly number[], load: Map<number, { kib: number; n: number }>): Array<{ name: string; to: number }> {
  const order = [...guests].sort((a, b) => b.memoryKiB - a.memoryKiB || a.name.localeCompare(b.name));
  return order.map((g) => {
    const best = [...destinations].sort((a, b) => load.get(a)!.kib - load.get(b)!.kib || load.get(a)!.n - load.get(b)!.n || destinations.indexOf(a) - destinations.indexOf(b))[0]!;
    load.get(best)!.kib += g.memoryKiB;
    load.get(best)!.n++;
    return { name: g.name, to: best + 1 };
  });
}

async function runLibvirt(work: string, guests: readonly GuestSpec[], parallel: number, ferryPlans: FerryRun['plans'] | undefined, run: number): Promise<LibvirtRun> {
  execFileSync('bash', [HOSTS_SH, 'start'], { stdio: 'inherit', env: HOSTS_ENV });
  const down = onCleanup('libvirt hosts', () => execFileSync('bash', [HOSTS_SH, 'stop'], { stdio: 'ignore' }));
  const dir = join(work, 'lv');
  mkdirSync(dir, { recursive: true });
  /** The serial file of hop `k` (0: boot on host 1): libvirt keeps no copy, so each QEMU writes its own. */
  const hopFile = (name: string, k: number) => join(dir, `${name}.hop${k}.log`);
  const xmlFor = (g: GuestSpec, k: number): string => {
    const path = join(dir, `${g.name}.hop${k}.xml`);
    // libvirt rounds memory up to whole MiB and refuses a --xml whose size differs from the rounded one.
    writeFileSync(path, serialToFile(guestXml({ ...g, memoryKiB: Math.ceil(g.memoryKiB / 1024) * 1024 }), hopFile(g.name, k)));
    return path;
  };
  try {
    log(`libvirt: starting ${guests.length} guests on host 1`);
    const t0 = Date.now();
    for (const g of guests) {
      const d = await virsh(0, ['define', xmlFor(g, 0)]);
      if (d.code !== 0) throw new Error(`virsh define ${g.name}: ${d.stderr.trim()}`);
      const s = await virsh(0, ['start', g.name]);
      if (s.code !== 0) throw new Error(`virsh start ${g.name} (guest ${guests.indexOf(g) + 1} of ${guests.length}): ${s.stderr.trim()}`);
    }
    await Promise.all(guests.map((g) => waitForSerialFile(hopFile(g.name, 0), heartbeats(3), 180_000)));
    const startGuestsMs = Date.now() - t0;
    log(`libvirt: ${guests.length} guests beating on host 1 after ${(startGuestsMs / 1000).toFixed(1)} s`);

    const byName = new Map(guests.map((g) => [g.name, g]));
    /** Where each guest runs (0-based host) and how many hops it made, as the loop moved it. */
    const at = new Map(guests.map((g) => [g.name, { host: 0, hops: 0, path: [1] }]));
    const planFrom: LibvirtRun['planFrom'] = ferryPlans ? 'ferry' : 'greedy';
    const steps: StepResult[] = [];
    for (const [si, s] of STEPS.entries()) {
      const here = guests.filter((g) => at.get(g.name)!.host === s.source);
      let plan: Array<{ name: string; to: number }>;
      if (ferryPlans?.[si]) {
        // Ferry's order and destinations, for the guests libvirt has (--lv-guests may be fewer).
        plan = ferryPlans[si]!.filter((p) => byName.has(p.name) && at.get(p.name)!.host === s.source && p.to > 0);
        // A guest Ferry's plan did not place goes by the greedy rule after the others.
        const missing = here.filter((g) => !plan.some((p) => p.name === g.name));
        if (missing.length > 0) plan = [...plan, ...greedyPlan(missing, s.destinations, loadOf(guests, at, s.destinations))];
      } else {
        plan = greedyPlan(here, s.destinations, loadOf(guests, at, s.destinations));
      }
      const before = Array.from({ length: HOSTS }, (_, i) => [...at.values()].filter((a) => a.host === i).length);
      const r = await libvirtStep(run, s.step, s.source, s.destinations, plan, parallel, byName, at, xmlFor);
      r.before = before;
      r.after = Array.from({ length: HOSTS }, (_, i) => [...at.values()].filter((a) => a.host === i).length);
      steps.push(r);
      log(
        `libvirt step ${s.step}: ${r.moved}/${r.guests} moved in ${(r.wallMs / 1000).toFixed(1)} s, singles sum ${(r.sumSinglesMs / 1000).toFixed(1)} s, ` +
          `max in flight ${r.inFlight.polled} (overlap ${r.inFlight.overlap}); hosts ${r.after.join('/')}`,
      );
    }
    await sleep(3 * HB_MS + 500);
    const invariant = await libvirtInvariant(guests, at, hopFile);
    return { run, steps, invariant, startGuestsMs, planFrom };
  } finally {
    execFileSync('bash', [HOSTS_SH, 'stop'], { stdio: 'ignore' });
    down();
  }
}

function loadOf(guests: readonly GuestSpec[], at: Map<string, { host: number }>, destinations: readonly number[]): Map<number, { kib: number; n: number }> {
  return new Map(
    destinations.map((d) => {
      const there = guests.filter((g) => at.get(g.name)!.host === d);
      return [d, { kib: there.reduce((a, g) => a + g.memoryKiB, 0), n: there.length }];
    }),
  );
}

async function libvirtStep(
  run: number,
  step: number,
  source: number,
  destinations: readonly number[],
  plan: ReadonlyArray<{ name: string; to: number }>,
  parallel: number,
  byName: Map<string, GuestSpec>,
  at: Map<string, { host: number; hops: number; path: number[] }>,
  xmlFor: (g: GuestSpec, k: number) => string,
): Promise<StepResult> {
  const flags = ['--live', '--p2p', '--persistent', '--undefinesource'];
  const command = `virsh -c HOST${source + 1} migrate ${flags.join(' ')} --xml FILE NAME qemu+tcp://HOSTn/system, ${parallel} at once`;
  log(`libvirt step ${step}: ${plan.length} guests from host ${source + 1}: ${command}`);
  const moves: Move[] = [];
  let next = 0;
  let inFlight = 0;
  let most = 0;
  const deadline = Date.now() + STEP_CAP_MS;
  const t0 = Date.now();
  const worker = async () => {
    while (next < plan.length && Date.now() < deadline) {
      const p = plan[next++]!;
      const g = byName.get(p.name)!;
      const a = at.get(p.name)!;
      const xml = xmlFor(g, a.hops + 1);
      inFlight++;
      most = Math.max(most, inFlight);
      const startedAtMs = Date.now();
      const m = await virsh(source, ['migrate', ...flags, '--xml', xml, g.name, LV_URI[p.to - 1]!], Math.max(1000, deadline - Date.now()));
      const endedAtMs = Date.now();
      inFlight--;
      const ok = m.code === 0;
      moves.push({ name: g.name, to: p.to, startedAtMs, endedAtMs, result: ok ? 'migrated' : 'failed', ...(ok ? {} : { error: (m.stderr.trim() || `killed (${m.signal})`).split('\n')[0]! }) });
      if (ok) {
        a.host = p.to - 1;
        a.hops++;
        a.path.push(p.to);
      }
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  const wallMs = Date.now() - t0;
  // Downtime as libvirt reports it: the destination's completed job (after the loop, not timed).
  for (const m of moves.filter((x) => x.result === 'migrated')) {
    const info = parseJobInfo((await virsh(m.to - 1, ['domjobinfo', '--completed', m.name], 30_000)).stdout);
    const d = info['Total downtime'];
    if (d) m.downtimeMs = Number(d.split(' ')[0]);
  }
  const singles = moves.map((m) => m.endedAtMs - m.startedAtMs);
  const moved = moves.filter((m) => m.result === 'migrated').length;
  return {
    tool: 'libvirt',
    run,
    step,
    source: source + 1,
    destinations: destinations.map((d) => d + 1),
    maxParallel: parallel,
    guests: plan.length,
    command,
    exitCode: moved === plan.length ? 0 : 1,
    wallMs: moves.length ? Math.max(...moves.map((m) => m.endedAtMs)) - Math.min(...moves.map((m) => m.startedAtMs)) : wallMs,
    moved,
    failed: plan.length - moved,
    check: 0,
    attempts: moves.length,
    sumSinglesMs: singles.reduce((a, b) => a + b, 0),
    singles: summarize(singles),
    downtime: summarize(moves.filter((m) => m.downtimeMs !== undefined).map((m) => m.downtimeMs!)),
    inFlight: { polled: most, overlap: maxOverlap(moves) },
    before: [],
    after: [],
    moves,
    notMoved: moves.filter((m) => m.result !== 'migrated').map((m) => ({ name: m.name, status: 'failed', note: m.error ?? '' })),
  };
}

async function libvirtInvariant(guests: readonly GuestSpec[], at: Map<string, { host: number; hops: number; path: number[] }>, hopFile: (name: string, k: number) => string): Promise<InvariantResult> {
  const runningOn = new Map<string, number[]>();
  const definedOn = new Map<string, number[]>();
  for (let i = 0; i < HOSTS; i++) {
    const run = await virsh(i, ['list', '--name']);
    const defs = await virsh(i, ['list', '--all', '--persistent', '--name']);
    for (const n of run.stdout.split('\n').map((x) => x.trim()).filter(Boolean)) runningOn.set(n, [...(runningOn.get(n) ?? []), i + 1]);
    for (const n of defs.stdout.split('\n').map((x) => x.trim()).filter(Boolean)) definedOn.set(n, [...(definedOn.get(n) ?? []), i + 1]);
  }
  const checks: GuestCheck[] = guests.map((g) => {
    const a = at.get(g.name)!;
    const segs = a.path.map((host, k) => ({ host, text: readText(hopFile(g.name, k)) }));
    return { name: g.name, runningOn: runningOn.get(g.name) ?? [], definedOn: definedOn.get(g.name) ?? [], path: a.path, lastCounter: 0, problems: chainProblems(segs) };
  });
  const first = new Map(guests.map((g) => [g.name, parseSerialLog(readText(hopFile(g.name, at.get(g.name)!.hops))).lastHeartbeat?.counter ?? 0]));
  await sleep(3 * HB_MS + 500);
  for (const c of checks) {
    const a = at.get(c.name)!;
    c.lastCounter = parseSerialLog(readText(hopFile(c.name, a.hops))).lastHeartbeat?.counter ?? 0;
    if (c.runningOn.length !== 1 || c.runningOn[0] !== a.host + 1) c.problems.unshift(`runs on host(s) ${c.runningOn.join(', ') || 'none'}, the loop put it on ${a.host + 1}`);
    if (c.definedOn.length !== 1 || c.definedOn[0] !== c.runningOn[0]) c.problems.unshift(`defined on host(s) ${c.definedOn.join(', ') || 'none'}`);
    if (c.lastCounter <= first.get(c.name)!) c.problems.push(`heartbeat stopped at ${c.lastCounter}`);
  }
  const corruptLogs = guests.flatMap((g) =>
    Array.from({ length: at.get(g.name)!.hops + 1 }, (_, k) => hopFile(g.name, k))
      .filter((p) => /CORRUPT/.test(readText(p)))
      .map((p) => p.split('/').pop()!),
  );
  return invariantOf(checks, corruptLogs);
}

// ------------------------------------------------------------ report

const s1 = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? '-' : (ms / 1000).toFixed(1));

function inFlightText(f: InFlight): string {
  const parts = [
    f.status !== undefined ? `status ${f.status}` : undefined,
    f.sourceLog !== undefined ? `evacuation log ${f.sourceLog}` : undefined,
    f.slotsOutgoing !== undefined ? `source slots ${f.slotsOutgoing}${f.slotsOutgoingQueued ? ` (+${f.slotsOutgoingQueued} queued)` : ''}` : undefined,
    f.slotsIncoming && Object.keys(f.slotsIncoming).length ? `incoming slots ${Object.entries(f.slotsIncoming).map(([h, n]) => `h${h} ${n}`).join(', ')}` : undefined,
    f.polled !== undefined ? `${f.status !== undefined ? 'polled' : 'counted'} ${f.polled}` : undefined,
    `overlap ${f.overlap}`,
  ];
  return parts.filter(Boolean).join('; ');
}

function stepTable(steps: readonly StepResult[]): string {
  return markdownTable(
    ['tool', 'run', 'step', 'guests', 'N', 'moved', 'failed / check', 'attempts', 'total s: wall ¹', 'total s: daemon ²', 'sum of singles s', 'sum / total', 'single s median (min-max)', 'downtime ms median (min-max)', 'most in flight', 'guests per host before → after'],
    steps.map((r) => [
      r.tool,
      String(r.run),
      `${r.step}: host ${r.source} → ${r.destinations.join(',')}`,
      String(r.guests),
      String(r.maxParallel),
      String(r.moved),
      `${r.failed} / ${r.check}`,
      String(r.attempts),
      s1(r.wallMs),
      s1(r.totalMs),
      s1(r.sumSinglesMs),
      (r.sumSinglesMs / (r.totalMs ?? r.wallMs)).toFixed(2),
      fmtSummary({ ...r.singles, median: r.singles.median / 1000, min: r.singles.min / 1000, max: r.singles.max / 1000 }, 2),
      fmtSummary(r.downtime),
      inFlightText(r.inFlight),
      `${r.before.join('/')} → ${r.after.join('/')}`,
    ]),
  );
}

/** Per tool and step, medians (min-max) over the runs. */
function summaryTable(steps: readonly StepResult[]): string {
  const keys = [...new Set(steps.map((r) => `${r.tool} ${r.step}`))];
  const sec = (xs: number[]) => fmtSummary(summarize(xs.map((x) => x / 1000)), 1);
  return markdownTable(
    ['tool', 'step', 'runs', 'moved', 'total s: wall ¹', 'total s: daemon ²', 'sum of singles s', 'single s (median of each run)', 'downtime ms (median of each run)', 'most in flight (status / log / overlap)'],
    keys.map((k) => {
      const rs = steps.filter((r) => `${r.tool} ${r.step}` === k);
      const r0 = rs[0]!;
      const most = (f: (x: InFlight) => number | undefined) => [...new Set(rs.map((r) => f(r.inFlight)).filter((x) => x !== undefined))].join(',') || '-';
      return [
        r0.tool,
        `${r0.step}: host ${r0.source} → ${r0.destinations.join(',')}`,
        String(rs.length),
        rs.map((r) => `${r.moved}/${r.guests}`).join(', '),
        sec(rs.map((r) => r.wallMs)),
        sec(rs.filter((r) => r.totalMs !== undefined).map((r) => r.totalMs!)),
        sec(rs.map((r) => r.sumSinglesMs)),
        fmtSummary(summarize(rs.map((r) => r.singles.median / 1000)), 2),
        fmtSummary(summarize(rs.map((r) => r.downtime.median))),
        `${most((f) => f.status ?? f.polled)} / ${most((f) => f.sourceLog)} / ${most((f) => f.overlap)}`,
      ];
    }),
  );
}

function invariantText(tool: string, inv: InvariantResult): string {
  const lines = [
    `${tool}: ${inv.ok} of ${inv.guests} guests hold the invariant (run on exactly one host and defined only there, heartbeat +1 across every hop from boot, still beating, no CORRUPT); ` +
      `guests per host at the end ${inv.perHost.join('/')}; serial logs with CORRUPT: ${inv.corruptLogs.length ? inv.corruptLogs.join(', ') : 'none'}`,
  ];
  for (const f of inv.failures) lines.push(`  - ${f.name} (path ${f.path.join(' → ')}): ${f.problems.join('; ')}`);
  return lines.join('\n');
}

// ------------------------------------------------------------ main

runMain(async () => {
  requireBuild(true);
  await useDistSnapshot();
  const machine = machineInfo();
  const work = mkdtempSync(join(tmpdir(), 'ferry-evscale-'));
  onCleanup('temp dir', () => rmTree(work));
  const t0 = Date.now();
  const ferryRuns: FerryRun[] = [];
  const libvirtRuns: LibvirtRun[] = [];
  const errors: string[] = [];
  let sizesKiB: number[] = [];
  // Ferry first in every run: the libvirt loop follows the plan Ferry made in the same run.
  for (let run = 1; run <= RUNS; run++) {
    const guests = guestSpecs(GUESTS);
    sizesKiB = guests.map((g) => g.memoryKiB);
    const dir = join(work, `run${run}`);
    let ferry: FerryRun | undefined;
    let parallel = MAX_PARALLEL;
    if (TOOLS.includes('ferry')) {
      try {
        ferry = await runFerry(dir, guests, run);
        ferryRuns.push(ferry);
        parallel ??= ferry.steps[0]?.maxParallel;
      } catch (err) {
        errors.push(`ferry run ${run}: ${(err as Error).message}`);
        log(`ferry failed: ${(err as Error).stack ?? String(err)}`);
      }
    }
    if (TOOLS.includes('libvirt')) {
      try {
        libvirtRuns.push(await runLibvirt(dir, guests.slice(0, LV_GUESTS), parallel ?? Math.max(2, os.cpus().length), ferry?.plans, run));
      } catch (err) {
        errors.push(`libvirt run ${run}: ${(err as Error).message}`);
        log(`libvirt failed: ${(err as Error).stack ?? String(err)}`);
      }
    }
  }
  const steps = [...ferryRuns.flatMap((r) => r.steps), ...libvirtRuns.flatMap((r) => r.steps)];
  const limits = ferryRuns[0]?.limits;
  const report = [
    `## Evacuation at scale: ${GUESTS} guests${LV_GUESTS !== GUESTS ? ` (libvirt ${LV_GUESTS})` : ''}, 4 hosts, ${RUNS} run${RUNS === 1 ? '' : 's'} (bench/evacuation-scale.ts)`,
    '',
    `Guests: 24-56 MiB + 4 KiB (libvirt: rounded up to whole MiB), \`${CMDLINE}\`. Ferry: ferryd limits outgoing ${limits?.outgoing ?? '-'}, incoming ${limits?.incoming ?? '-'}; ` +
      `guests started in ${ferryRuns.map((r) => s1(r.startGuestsMs)).join(', ') || '-'} s. libvirt: guests started in ${libvirtRuns.map((r) => s1(r.startGuestsMs)).join(', ') || '-'} s, ` +
      `destinations ${libvirtRuns[0]?.planFrom === 'greedy' ? 'largest first onto the emptiest host' : "as Ferry's plan of the same run chose, in its order"}. ` +
      `Load average ${(machine.loadavg as number[]).map((x) => x.toFixed(2)).join(' ')} at the start, ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} at the end; ${((Date.now() - t0) / 60000).toFixed(1)} min.`,
    '',
    ...(RUNS > 1 ? ['Medians (min-max) over the runs:', '', summaryTable(steps), '', 'Each run:', ''] : []),
    stepTable(steps),
    '',
    "¹ Ferry: `ferry evacuate` from spawn to exit (planning included); libvirt: the loop's first `virsh migrate` start to its last one's end. " +
      "² ferryd's own: the record's `updatedAtMs - createdAtMs` (made once planned, last changed by the last migration's end). Sum of singles: every attempt's `endedAtMs - startedAtMs` (Ferry: the record's; libvirt: each `virsh migrate` from spawn to exit). " +
      "Most in flight: status = `status.maxInFlight`; evacuation log = the source ferryd's `evacuation: start ... in flight N` lines; slots = the `migration slots:` lines of the source (outgoing) and each destination (incoming); " +
      "polled = the status polled every 200 ms; counted = the loop's own count; overlap = the most attempts whose intervals overlap.",
    '',
    ...ferryRuns.map((r) => invariantText(`Ferry, run ${r.run}`, r.invariant)),
    ...libvirtRuns.map((r) => invariantText(`libvirt, run ${r.run}`, r.invariant)),
    ...steps.filter((r) => r.notMoved.length > 0).map((r) => `${r.tool} run ${r.run} step ${r.step}, not moved: ${r.notMoved.map((n) => `${n.name} (${n.status}: ${n.note})`).join('; ')}`),
    ...errors.map((e) => `error: ${e}`),
    '',
  ].join('\n');
  process.stdout.write(report);
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(join(RESULTS_DIR, `${OUT}.md`), report);
  const file = writeResults(OUT, {
    machine,
    loadavgAtEnd: os.loadavg(),
    minutes: (Date.now() - t0) / 60000,
    settings: { runs: RUNS, guests: GUESTS, lvGuests: LV_GUESTS, cmdline: CMDLINE, sizesKiB, maxParallel: MAX_PARALLEL ?? null, outgoingLimit: OUTGOING_LIMIT ?? null, incomingLimit: INCOMING_LIMIT ?? null, stepCapMs: STEP_CAP_MS },
    ferry: ferryRuns,
    libvirt: libvirtRuns,
    errors,
    report,
  });
  process.stdout.write(`\nresults: ${file}\n`);
  if (errors.length > 0) throw new Error(errors.join('\n'));
});
