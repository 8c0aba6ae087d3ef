/**
 * One cell of the fault matrix: a migration in some mode, something broken
 * at some moment, and an automated verdict on what a user cares about.
 *
 * The moment is hit exactly through ferryd's test hold points (see
 * src/migration/test-hold.ts): the cell asks the host that owns the phase
 * to hold there, waits for the hold, breaks the victim, lets the migration
 * go on, then waits for everything to settle (killed daemons are started
 * again, a cut link comes back) and judges:
 *
 * - the guest is active (running, or paused by design) on exactly one host,
 *   and no second QEMU of it exists anywhere; when the victim was the
 *   guest's own QEMU, it is reported shut off there and runs nowhere else;
 * - its memory verifier never reported CORRUPT and its heartbeat never
 *   restarted or skipped (across both hosts when it moved);
 * - its definition is where the outcome says (destination only after a
 *   success with --persistent --undefinesource, source only after a
 *   failure, and never lost);
 * - the command reported a failure with an error code whenever the guest
 *   did not end up on the destination;
 * - both daemons answer.
 *
 * The "peer left down" victims (`*-down`) are not restored while the
 * command runs: a daemon killed and left down, a link cut and left down.
 * The command must then end by itself within {@link PEER_DOWN_LIMIT_MS}
 * (the keepalive bound of {@link MATRIX_KEEPALIVE}, plus the bounded wait
 * for an unknown outcome), with no QEMU of the guest left on the
 * destination; only then is the peer restored and the rest judged.
 */
import { existsSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Cluster, ClusterHost } from '../support/cluster.js';
import { emptyDaemon, qemuPidsMentioning, sleep, statusOf, waitFor, type CliResult } from '../support/daemon.js';
import { serialLogFile, testGuestXml } from '../support/guest-xml.js';
import { checkMigrationContinuity, findCounterAnomalies, parseSerialLog } from '../support/serial.js';

export const MODES = ['managed', 'p2p', 'tunnelled', 'postcopy', 'storage'] as const;
export const VICTIMS = ['source-ferryd', 'dest-ferryd', 'source-qemu', 'dest-qemu', 'link', 'dest-disk-full', 'user-abort', 'source-ferryd-down', 'dest-ferryd-down', 'link-down'] as const;
export const MOMENTS = ['begin', 'prepare', 'early-perform', 'switch-over', 'finish', 'confirm'] as const;
export type Mode = (typeof MODES)[number];
export type Victim = (typeof VICTIMS)[number];
export type Moment = (typeof MOMENTS)[number];

/** The keepalive of the matrix's daemons and CLI: a vanished peer is noticed after 1 s x 3. */
export const MATRIX_KEEPALIVE = { daemonArgs: ['--keepalive-interval', '1', '--keepalive-count', '3'], cliArgs: ['-k', '1', '-K', '3'], boundMs: 3000 };

/**
 * How long the command may run with its peer left down: the keepalive
 * bound, the driver's bounded wait for an unknown outcome (30 s), and slack
 * for a loaded 2-core machine.
 */
export const PEER_DOWN_LIMIT_MS = MATRIX_KEEPALIVE.boundMs + 30_000 + 15_000;

/** Which host holds at each moment, and at which hold point. */
const HOLDS: Record<Moment, { host: 'source' | 'dest'; point: string }> = {
  begin: { host: 'source', point: 'source-begun' },
  prepare: { host: 'dest', point: 'dest-prepared' },
  'early-perform': { host: 'source', point: 'source-performing' },
  'switch-over': { host: 'source', point: 'source-switched' },
  finish: { host: 'dest', point: 'dest-finishing' },
  confirm: { host: 'source', point: 'source-confirming' },
};

/** A cell's result. */
export interface CellResult {
  mode: Mode;
  victim: Victim;
  moment: Moment;
  /** 'held': every check passed; 'broken': some did not; 'n/a': the victim does not exist at that moment. */
  verdict: 'held' | 'broken' | 'n/a';
  /** Where the guest ended: 'source', 'destination' or 'lost'. */
  outcome: string;
  /** What the migrate command reported (exit code and error code). */
  reported: string;
  /** The post-copy stream broke and was paused; `migrate --postcopy-resume` was run and succeeded. */
  recovered?: boolean;
  problems: string[];
  ms: number;
}

/** Victims that cannot exist at a moment: the destination QEMU before prepare, for example. */
export function notApplicable(victim: Victim, moment: Moment): string | undefined {
  if (victim === 'dest-qemu' && moment === 'begin') return 'the destination QEMU does not exist yet at begin';
  return undefined;
}

function holdFile(h: ClusterHost): string {
  return join(h.d.runDir, 'test-hold');
}

function shortName(mode: Mode, victim: Victim, moment: Moment): string {
  return `fm-${mode}-${victim}-${moment}`.replace(/[^a-z0-9-]/g, '');
}

async function stateOn(h: ClusterHost, name: string): Promise<string | null> {
  const r = await h.ferry(['domstate', '--reason', name], { timeoutMs: 20_000 }).catch(() => null);
  if (!r) return 'unanswered';
  if (r.code !== 0) return /not found|no domain/i.test(r.stderr) ? null : `error: ${r.stderr.trim()}`;
  return r.stdout.trim();
}

async function persistentOn(h: ClusterHost, name: string): Promise<boolean> {
  const r = await h.ferry(['dominfo', name], { json: true, timeoutMs: 20_000 }).catch(() => null);
  return !!r && r.code === 0 && r.json?.persistent === true;
}

/** Runs one cell on `cluster` (hosts[0] the source, hosts[1] the destination). */
export async function runCell(cluster: Cluster, mode: Mode, victim: Victim, moment: Moment, workDir: string): Promise<CellResult> {
  const t0 = Date.now();
  const [A, B] = cluster.hosts as [ClusterHost, ClusterHost];
  const name = shortName(mode, victim, moment);
  const problems: string[] = [];
  const base = { mode, victim, moment };
  const na = notApplicable(victim, moment);
  if (na) return { ...base, verdict: 'n/a', outcome: '-', reported: '-', problems: [na], ms: 0 };

  // The guest: persistent on A, writing memory; with a disk for the storage mode.
  const uuid = `f0000000-0000-4000-8000-${(Date.now() % 1e12).toString().padStart(12, '0')}`;
  let extraDevices: string | undefined;
  let destXml: string | undefined;
  const cmdline = mode === 'postcopy' ? 'ws=64 rate=60 hb=200' : 'ws=16 rate=5 hb=200';
  if (mode === 'storage') {
    const src = join(workDir, `${name}-a.raw`);
    execFileSync('dd', ['if=/dev/urandom', `of=${src}`, 'bs=1M', 'count=8', 'status=none']);
    execFileSync('truncate', ['-s', '16M', src]);
    const disk = (p: string) => `    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${p}'/><target dev='vda' bus='virtio'/></disk>`;
    extraDevices = disk(src);
    destXml = join(workDir, `${name}-b.xml`);
    // The copy lands on the destination's state filesystem, the one the disk-full victim fills.
    writeFileSync(destXml, testGuestXml({ name, uuid, cmdline, extraDevices: disk(join(B.d.stateDir, `${name}.raw`)) }));
  }
  const xml = join(workDir, `${name}.xml`);
  writeFileSync(xml, testGuestXml({ name, uuid, cmdline, ...(extraDevices ? { extraDevices } : {}) }));
  const defined = await A.ferry(['define', xml]);
  if (defined.code !== 0) throw new Error(`define failed: ${defined.stderr}`);
  const started = await A.ferry(['start', name]);
  if (started.code !== 0) throw new Error(`start failed: ${started.stderr}`);
  await waitFor('the guest to beat', () => (serialLogFile(A.d.stateDir, name).log.lastHeartbeat?.counter ?? 0) >= 3, 30_000, 100);

  const hold = HOLDS[moment];
  const holder = hold.host === 'source' ? A : B;
  const marker = join(holder.d.runDir, `held-${hold.point}`);
  writeFileSync(holdFile(holder), `${hold.point}\n`);

  const flags = ['--live', '--persistent', '--undefinesource'];
  if (mode !== 'managed') flags.push('--p2p');
  if (mode === 'tunnelled') flags.push('--tunnelled');
  // A slow post-copy phase (8 MiB/s), so that a fault can land while the guest runs on the destination without all its memory.
  if (mode === 'postcopy') flags.push('--postcopy', '--postcopy-after-precopy', '--bandwidth', '32', '--postcopy-bandwidth', '8');
  if (mode === 'storage') flags.push('--copy-storage-all', '--xml', destXml!);
  const migration = A.ferry([...MATRIX_KEEPALIVE.cliArgs, 'migrate', ...flags, name, B.tcpUri], { json: true, timeoutMs: 240_000 }).catch(
    (err: Error): CliResult => ({ code: -1, stdout: '', stderr: err.message }),
  );

  let restore: (() => void) | undefined;
  /** A peer left down until the command has ended. */
  let restoreAfterCommand: (() => Promise<void> | void) | undefined;
  const release = () => rmSync(marker, { force: true });
  const reached = await waitFor('the hold point', () => existsSync(marker), 60_000, 50).then(
    () => true,
    () => false,
  );
  rmSync(holdFile(holder), { force: true });
  if (!reached) {
    problems.push(`the migration never reached ${hold.point}`);
  } else {
    switch (victim) {
      case 'source-ferryd':
      case 'dest-ferryd': {
        const h = victim === 'source-ferryd' ? A : B;
        await h.d.kill9();
        release();
        await sleep(500);
        await h.d.restart();
        break;
      }
      case 'source-qemu':
      case 'dest-qemu': {
        const h = victim === 'source-qemu' ? A : B;
        const st = statusOf(h.d.runDir, name);
        if (st) {
          try {
            process.kill(st.pid, 'SIGKILL');
          } catch {
            // Already gone.
          }
        } else {
          problems.push(`no QEMU of the guest on the ${victim === 'source-qemu' ? 'source' : 'destination'} to kill`);
        }
        release();
        break;
      }
      case 'link':
        cluster.setLink(A, false);
        release();
        restore = () => cluster.setLink(A, true);
        break;
      case 'dest-disk-full':
        restore = cluster.fillState(B);
        release();
        break;
      case 'user-abort':
        await A.ferry(['domjobabort', name], { timeoutMs: 20_000 });
        release();
        break;
      case 'source-ferryd-down':
      case 'dest-ferryd-down': {
        const h = victim === 'source-ferryd-down' ? A : B;
        await h.d.kill9();
        release();
        restoreAfterCommand = () => h.d.restart();
        break;
      }
      case 'link-down':
        cluster.setLink(A, false);
        release();
        restoreAfterCommand = () => cluster.setLink(A, true);
        break;
    }
  }
  if (restoreAfterCommand) {
    const faultAt = Date.now();
    const ended = await Promise.race([migration.then(() => true), sleep(PEER_DOWN_LIMIT_MS).then(() => false)]);
    const said = ended ? await migration : undefined;
    if (!ended) problems.push(`with its peer left down, the command did not end within ${PEER_DOWN_LIMIT_MS} ms`);
    else if (said?.code !== 0 && !/outcome of migrating .* is unknown/.test(`${said?.stdout}${said?.stderr}`)) {
      // (A command that succeeded handed the guest over: the destination's QEMU is the guest itself.)
      // (When the whole stream had arrived and finish went unanswered, the destination's paused copy is what
      // makes the outcome unknown: it stays until its daemon comes back and removes it.)
      // Nothing may go on receiving on the destination: an incoming QEMU (never handed the guest) exits with its
      // daemon or is removed by it. A QEMU that was handed the guest (a migration that got that far) is the guest.
      // (An incoming QEMU that switched to post-copy holds the guest's device state: it is kept, recorded 'paused:post-copy'.)
      const incomingLeft = () => {
        const st = statusOf(B.d.runDir, name);
        return qemuPidsMentioning(B.d.runDir).some((p) => qemuPidsMentioning(uuid).includes(p)) && st?.extra?.incoming !== false && st?.state !== 'paused:post-copy';
      };
      const leftover = await waitFor('no incoming QEMU of the guest on the destination', () => !incomingLeft(), 15_000, 200).then(
        () => false,
        () => true,
      );
      if (leftover) problems.push(`a QEMU of the guest is still running on the destination ${Date.now() - faultAt} ms after the fault`);
    }
    await restoreAfterCommand();
  }
  // A broken link stays broken for a while, as a real one would; then it comes back.
  await Promise.race([migration, sleep(victim === 'link' ? 20_000 : 180_000)]);
  restore?.();
  const result = await migration;
  for (const h of [A, B]) if (!h.d.alive()) await h.d.restart();

  // A post-copy that broke after the switch waits, paused on both hosts, to be resumed: the user's next step.
  let recovered = false;
  if (/post-copy migration of '[^']*' paused:/.test(result.stdout + result.stderr)) {
    const resumed = await A.ferry([...MATRIX_KEEPALIVE.cliArgs, 'migrate', ...flags.filter((f) => f !== '--postcopy-after-precopy'), '--postcopy-resume', name, B.tcpUri], { json: true, timeoutMs: 180_000 }).catch(
      (err: Error): CliResult => ({ code: -1, stdout: '', stderr: err.message }),
    );
    recovered = resumed.code === 0;
    // (A killed guest QEMU takes its part of the guest with it: there is nothing to resume, and the judge below says what is left.)
    if (!recovered && victim !== 'source-qemu' && victim !== 'dest-qemu') problems.push(`the paused post-copy could not be resumed: ${(resumed.stderr || resumed.stdout).trim().slice(0, 300)}`);
  }

  // Settle: a restarted daemon may still be finishing the job; wait until both hosts stop changing.
  let last = '';
  let stable = 0;
  const settleDeadline = Date.now() + 60_000;
  while (Date.now() < settleDeadline && stable < 3) {
    const now = `${await stateOn(A, name)}|${await stateOn(B, name)}`;
    // Active on both hosts is a passing state at most (a post-copy source waits for its stream to end): keep waiting.
    const both = now.split('|').every((x) => x.startsWith('running') || x.startsWith('paused'));
    stable = now === last && !now.includes('migrating') && !both ? stable + 1 : 0;
    last = now;
    await sleep(700);
  }
  const [sa, sb] = last.split('|');
  const stA = sa === 'null' ? null : sa!;
  const stB = sb === 'null' ? null : sb!;
  const active = (s: string | null) => s !== null && (s.startsWith('running') || s.startsWith('paused'));
  // A source copy left 'paused (post-copy failed)' is stale by design and never runs again: it is not where the guest is.
  const activeSource = active(stA) && stA !== 'paused (post-copy failed)';
  const activeHosts = [activeSource ? 'source' : null, active(stB) ? 'destination' : null].filter((x): x is string => x !== null);

  // Judge.
  for (const [h, st] of [[A, stA], [B, stB]] as const) {
    if (st === 'unanswered' || st?.startsWith('error')) problems.push(`${h === A ? 'source' : 'destination'} daemon does not answer properly: ${st}`);
  }
  // An outcome nobody could learn (the command says so): by the rule, the source keeps its copy paused and
  // the user decides; the destination may run the guest. That is one running copy, not two.
  const unknownOutcome = /outcome of migrating .* is unknown/.test(result.stdout + result.stderr);
  const pausedHereRunningThere = unknownOutcome && (stA ?? '').startsWith('paused') && (stB ?? '').startsWith('running');
  const qemus = qemuPidsMentioning(uuid);
  if (qemus.length > (pausedHereRunningThere ? 2 : 1)) problems.push(`${qemus.length} QEMU processes of the guest exist`);
  const guestQemuKilled = victim === 'source-qemu' || victim === 'dest-qemu';
  let outcome: string;
  if (pausedHereRunningThere) {
    outcome = 'unknown';
  } else if (activeHosts.length > 1) {
    outcome = 'both';
    problems.push('the guest is active on both hosts');
  } else if (activeHosts.length === 0) {
    outcome = 'lost';
    if (!guestQemuKilled) problems.push(`the guest runs nowhere (source: ${stA ?? 'undefined'}, destination: ${stB ?? 'undefined'})`);
    // (After the switch to post-copy the source's stale copy says so itself: paused (post-copy failed).)
    else if (!((stA ?? '').startsWith('shut off') || (stB ?? '').startsWith('shut off') || stA === 'paused (post-copy failed)')) problems.push('the killed guest is not reported shut off anywhere');
  } else {
    outcome = activeHosts[0]!;
    const st = outcome === 'source' ? stA! : stB!;
    // Paused by design: a post-copy that failed after the switch, or an outcome nobody could learn (the command says so).
    if (st.startsWith('paused') && !/post-copy failed/.test(st) && !(outcome === 'source' && unknownOutcome)) problems.push(`the guest is left ${st} on the ${outcome}`);
  }

  // Memory and heartbeat (of the running copy, when the outcome is unknown).
  if (outcome === 'source' || outcome === 'destination' || outcome === 'unknown') {
    const host = outcome === 'source' ? A : B;
    const st = outcome === 'source' ? stA! : stB!;
    if (st.startsWith('running')) {
      const before = serialLogFile(host.d.stateDir, name).log.heartbeats.length;
      await waitFor('heartbeats after the fault', () => serialLogFile(host.d.stateDir, name).log.heartbeats.length >= before + 3, 15_000, 100).catch(() =>
        problems.push('the guest does not beat on the host it runs on'),
      );
    }
    const srcLog = serialLogFile(A.d.stateDir, name).text;
    if (outcome === 'destination' || outcome === 'unknown') {
      const c = checkMigrationContinuity(srcLog, serialLogFile(B.d.stateDir, name).text);
      problems.push(...c.problems);
    } else {
      const log = parseSerialLog(srcLog);
      if (log.corrupt) problems.push('the guest reported memory corruption');
      for (const a of findCounterAnomalies(log.heartbeats)) problems.push(`heartbeat ${a.counter} follows ${a.previous}`);
      if ((srcLog.match(/FERRY-GUEST boot/g) ?? []).length > 1) problems.push('the guest restarted');
    }
  }

  // Definitions.
  const defA = await persistentOn(A, name);
  const defB = await persistentOn(B, name);
  if (outcome === 'destination' && (!defB || defA)) problems.push(`after a success the definition should be on the destination only (source: ${defA}, destination: ${defB})`);
  if (outcome === 'source' && (!defA || defB)) problems.push(`after a failure the definition should be on the source only (source: ${defA}, destination: ${defB})`);
  if ((outcome === 'lost' || outcome === 'unknown') && !defA && !defB) problems.push('the definition is lost');

  // What the command said.
  const err = result.json?.error as { code?: string } | undefined;
  const reported = result.code === 0 ? 'success' : `exit ${result.code}${err?.code ? ` ${err.code}` : ''}`;
  // A guest QEMU killed after the hand-over loses the guest after a migration that did succeed.
  const lostAfterHandover = outcome === 'lost' && victim === 'dest-qemu' && moment === 'confirm';
  if ((result.code === 0 || recovered) && outcome !== 'destination' && !lostAfterHandover) problems.push(`the command reported success but the guest is ${outcome === 'lost' ? 'lost' : `on the ${outcome}`}`);
  if (result.code !== 0 && !err?.code) problems.push(`the command failed without an error code: ${(result.stderr || result.stdout).trim().slice(0, 200)}`);

  // Clean up for the next cell.
  for (const h of [A, B]) {
    rmSync(holdFile(h), { force: true });
    for (const { point } of Object.values(HOLDS)) rmSync(join(h.d.runDir, `held-${point}`), { force: true });
    await emptyDaemon(h.d.uri).catch(() => undefined);
  }
  rmSync(join(B.d.stateDir, `${name}.raw`), { force: true });
  return { ...base, verdict: problems.length === 0 ? 'held' : 'broken', outcome, reported: recovered ? `${reported}, then resumed` : reported, ...(recovered ? { recovered } : {}), problems, ms: Date.now() - t0 };
}

/** Reads a previous results file, if any. */
export function readResults(path: string): CellResult[] {
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as CellResult[]) : [];
}
