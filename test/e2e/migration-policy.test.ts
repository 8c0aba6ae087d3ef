/**
 * The convergence policy (issue 13, "Policy" and "Honest progress") between
 * two ferryd hosts in network namespaces, with the writing test guest (a
 * 64 MiB working set rewritten at 60 MiB/s, a heartbeat every 200 ms)
 * migrated at --bandwidth 16, which plain pre-copy cannot finish (under TCG
 * QEMU sees about half the guest's rate while it tracks writes: some
 * 30 MiB/s against 16):
 *  - with post-copy and throttling not allowed, `--policy auto` aborts,
 *    saying what it tried and what to allow; the guest runs on in the same
 *    QEMU on the source, no job is left;
 *  - the default policy (warn) prints one warning with the numbers and the
 *    advice; domjobinfo says "not converging" with no time remaining (also
 *    to virsh over ferryd's libvirt listener); domjobabort ends it;
 *  - the completion timeout per GiB (0.25 GiB counts as 1) aborts with
 *    action abort, and switches to post-copy with action postcopy;
 *  - at 48 MiB/s (still not converging: each pass leaves the working set)
 *    domjobinfo must not say "converging" with a time remaining;
 *  - `--policy auto --postcopy` escalates (warning, downtime steps,
 *    post-copy last) and the guest arrives with its heartbeat intact;
 *  - a converging migration (the stream sped up with migrate-setspeed)
 *    shows a time remaining and "converging".
 * One guest, booted once; the tests run in order and move it A -> B -> A
 * -> B in the last three. Figures are printed for the report.
 *
 * Needs `npm run build`, `make -C guest`, root (namespaces) and iproute2.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/api/client.js';
import type { JobStats } from '../../src/host/job-stats.js';
import { createCluster, type Cluster, type ClusterHost } from '../support/cluster.js';
import { CLI_JS, REPO_ROOT, emptyDaemon, makeTempDir, processAlive, qemuPidsMentioning, statusOf, useDaemonCleanup, waitFor, type CliResult } from '../support/daemon.js';
import { testGuestXml } from '../support/guest-xml.js';
import { expectContinuity, expectHeartbeatCarriesOn, waitHeartbeats, type HeartbeatHost } from '../support/heartbeat.js';
import { inNetns, netnsAvailable } from '../support/netns.js';
import { libvirtTcpUri, parseVirshFields, virsh } from '../support/virsh.js';

const WRITER_CMDLINE = 'ws=64 rate=60 hb=200';
/** MiB/s: well below what QEMU sees the writer dirty, so plain pre-copy never finishes. */
const BANDWIDTH = '16';
const LIBVIRT_PORT = 16509;
/** Bound of one migrate command in this file. */
const MIGRATE_MS = 90_000;

let cluster: Cluster;
let A: ClusterHost;
let B: ClusterHost;
let work: string;
const NAME = `pol-${randomUUID().slice(0, 8)}`;
const UUID = randomUUID();
/** Where the guest runs now (the completing tests move it). */
let here: ClusterHost;
/** Figures for the report, printed after the file. */
const figures: Record<string, unknown> = {};

useDaemonCleanup();

beforeAll(async () => {
  if (!netnsAvailable()) return;
  work = makeTempDir('ferry-policy-');
  cluster = await createCluster({ prefix: `mp${process.pid % 10000}`, subnet: 131, hosts: 2, extraArgs: ['--libvirt-listen-tcp', `0.0.0.0:${LIBVIRT_PORT}`] });
  [A, B] = cluster.hosts as [ClusterHost, ClusterHost];
  const xml = join(work, `${NAME}.xml`);
  // 262148 KiB (the default): an odd size, safe for a rewriting guest under TCG.
  writeFileSync(xml, testGuestXml({ name: NAME, uuid: UUID, cmdline: WRITER_CMDLINE }));
  const created = await A.ferry(['create', xml]);
  expect(created.code, out(created)).toBe(0);
  await waitHeartbeats(hb(A), NAME, 3, 60_000);
  here = A;
}, 120_000);

afterAll(async () => {
  console.log(`policy figures:\n${JSON.stringify(figures, null, 2)}`);
  for (const h of cluster?.hosts ?? []) await emptyDaemon(h.d.uri).catch(() => undefined);
  await cluster?.destroy();
});

const hb = (h: ClusterHost): HeartbeatHost => ({ label: h.name, d: h.d });
const other = (h: ClusterHost): ClusterHost => (h === A ? B : A);
const out = (r: CliResult): string => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

/** `migrate --live --p2p --bandwidth 16 [extra] NAME DEST` from where the guest runs to the other host. */
function migrateArgs(extra: string[], bandwidth = BANDWIDTH): string[] {
  return ['migrate', '--live', '--p2p', '--bandwidth', bandwidth, ...extra, NAME, other(here).tcpUri];
}

/** The `migrate: warning:` / `migrate: policy:` lines the CLI printed, in order. */
function policyLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /^migrate: (warning|policy): /.test(l));
}

/** A CLI command run as a child process whose stderr the test reads while it runs. */
interface RunningCli {
  stderr(): string;
  done: Promise<CliResult>;
}

/** Starts `ferry [--json] ...args` on host `h` (in its namespace, on its socket); killed after `timeoutMs`. */
function startCli(h: ClusterHost, args: string[], o: { json?: boolean; timeoutMs?: number } = {}): RunningCli {
  const env = { ...process.env };
  delete env.FERRY_DEFAULT_URI;
  delete env.FERRY_PKI_DIR;
  const cmd = inNetns(h.ns, [process.execPath, CLI_JS, '-c', h.d.uri, ...(o.json ? ['--json'] : []), ...args]);
  const child = spawn(cmd.file, cmd.args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? MIGRATE_MS);
  const done = new Promise<CliResult>((res) => {
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const r: CliResult = { code: code ?? (signal ? 128 : -1), stdout, stderr: signal ? `${stderr}[killed by ${signal}]` : stderr };
      if (o.json) {
        try {
          r.json = JSON.parse(stdout);
        } catch {
          // Left undefined: the assertion shows the output.
        }
      }
      res(r);
    });
  });
  return { stderr: () => stderr, done };
}

/** The running job of NAME on `h`, through the API (cheap enough to poll every 100 ms). */
async function jobInfo(h: ClusterHost): Promise<JobStats> {
  const c = await ApiClient.connect(h.d.uri);
  try {
    return (await c.callRaw('domain.jobInfo', { domain: NAME })) as JobStats;
  } finally {
    c.close();
  }
}

/** The figures of a job sample worth reporting. */
function brief(j: JobStats): Record<string, unknown> {
  return {
    iteration: j.memory_iteration,
    remaining_MiB: j.memory_remaining !== undefined ? +(j.memory_remaining / 1048576).toFixed(1) : undefined,
    bps_MiB: j.memory_bps !== undefined ? +(j.memory_bps / 1048576).toFixed(1) : undefined,
    dirty_pages_s: j.memory_dirty_rate,
    phase: j.phase,
    convergence: j.convergence,
    time_remaining: j.time_remaining,
  };
}

/** The QEMU of the guest on `h` now. */
function qemuOf(h: ClusterHost): { pid: number; pidStartTime: number } {
  const st = statusOf(h.d.runDir, NAME);
  expect(st, `status file of '${NAME}' on ${h.name}`).toBeDefined();
  return { pid: st!.pid, pidStartTime: st!.pidStartTime };
}

/**
 * After a migration that did not happen: the guest runs on `h` in the same
 * QEMU, no job is left, its heartbeat carries on (one boot, no gap, no
 * CORRUPT), and no other QEMU of it exists (the destination dropped its
 * incoming one).
 */
async function expectStillOn(h: ClusterHost, q: { pid: number; pidStartTime: number }): Promise<void> {
  const job = await h.ferry(['domjobinfo', NAME], { json: true });
  expect(job.code, out(job)).toBe(0);
  expect(job.json?.type, 'no job left on the source').toBe('None');
  const state = await h.ferry(['domstate', '--reason', NAME]);
  expect(state.stdout.trim(), out(state)).toMatch(/^running/);
  expect(statusOf(h.d.runDir, NAME)?.pid, 'the guest runs in the same QEMU').toBe(q.pid);
  expect(await processAlive(q.pid, q.pidStartTime), 'the source QEMU still runs').toBe(true);
  await expectHeartbeatCarriesOn(hb(h), NAME, h === A && !movedYet);
  await waitFor('the destination to drop its incoming QEMU', () => qemuPidsMentioning(UUID).length === 1, 15_000);
  const dest = await other(h).ferry(['list', '--all'], { json: true });
  expect(dest.json, `nothing of the guest on ${other(h).name}`).toEqual([]);
}
/** Whether the guest has been migrated yet (before that it booted on A). */
let movedYet = false;

describe.runIf(netnsAvailable())('the convergence policy of a live migration that cannot converge', () => {
  it('--policy auto with post-copy and throttling not allowed: warns, then aborts naming what it tried and what to allow; the guest runs on in the same QEMU on the source', async () => {
    const q = qemuOf(here);
    // A low cap, in one step: raising the limit cannot make it finish, so the policy soon runs out of steps.
    const r = await here.ferry(migrateArgs(['--policy', 'auto', '--max-downtime', '500', '--downtime-steps', '1']), { timeoutMs: MIGRATE_MS });
    figures.autoAbort = { stderr: r.stderr };
    expect(r.code, out(r)).toBe(1);
    const lines = policyLines(r.stderr);
    expect(lines.length, out(r)).toBeGreaterThanOrEqual(2);
    expect(lines[0]).toMatch(/^migrate: warning: the migration is not converging: the guest dirties [\d.]+ MiB\/s, the stream moves [\d.]+ MiB\/s, [\d.]+ MiB remain after \d+ passes/);
    expect(lines.filter((l) => l.startsWith('migrate: warning:')), 'one warning').toHaveLength(1);
    const last = lines[lines.length - 1]!;
    // What was tried (the downtime limit, raised or found too low to help) and what to allow next.
    expect(last).toMatch(/^migrate: policy: the migration did not converge .*the policy tried: .*downtime limit/);
    expect(last).toMatch(/the guest keeps running on the source/);
    expect(last).toMatch(/what could finish it: .*--postcopy.*--auto-converge/);
    // Every step between was a downtime step (nothing else was allowed).
    for (const l of lines.slice(1, -1)) expect(l).toMatch(/^migrate: policy: raising the downtime limit from \d+ to \d+ ms \(cap 500 ms\)/);
    // The command's error says the same.
    expect(r.stderr).toMatch(/^error: migration of '.*' was aborted: the migration did not converge .*tried: .*what could finish it: .*--postcopy/m);
    await expectStillOn(here, q);
  }, 150_000);

  it('the default policy (warn): one warning with the numbers and the advice; domjobinfo says not converging, with no time remaining; domjobabort leaves the guest on the source', async () => {
    const q = qemuOf(here);
    // A client of the API that reads the job as the warning event arrives (the event says the job has a warning).
    const watcher = await ApiClient.connect(here.d.uri);
    let atEvent: Promise<JobStats> | undefined;
    watcher.on('event', (name: string, data: { domain?: string; step?: string }) => {
      if (name === 'domain.migration-policy' && data.domain === NAME && data.step === 'warn') atEvent ??= watcher.call('domain.jobInfo', { domain: NAME }).catch((e: Error) => ({ type: 'None', operation: 'Outgoing migration', time_elapsed: 0, errmsg: e.message }) as JobStats);
    });
    await watcher.call('events.subscribe', {});
    const m = startCli(here, migrateArgs([]));
    let job: JobStats | undefined;
    try {
      await waitFor('the warning on the CLI\'s stderr', () => /^migrate: warning: /m.test(m.stderr()), 60_000);
      // The job says so too (the verdict is taken afresh at each poll: wait for a sample that shows it).
      job = await waitFor('domjobinfo to say not converging, with the warning', async () => {
        const r = await here.ferry(['domjobinfo', NAME], { json: true });
        return r.json?.convergence === 'not converging' && r.json?.warning !== undefined ? (r.json as JobStats) : undefined;
      }, 20_000, 200);
      figures.warnJob = brief(job);
      expect(job.type).toBe('Unbounded');
      expect(job.time_remaining, 'no time remaining while not converging').toBeUndefined();
      expect(job.warning).toMatch(/not converging.*what could finish it/);
      expect(job.phase).toMatch(/^iteration \d+$/);
      // A libvirt client sees the job, with no time remaining either.
      const v = await virsh(libvirtTcpUri(here.address, LIBVIRT_PORT), ['domjobinfo', NAME], { netns: here.ns, timeoutMs: 20_000 });
      expect(v.code, v.stdout + v.stderr).toBe(0);
      const fields = parseVirshFields(v.stdout);
      figures.virshDomjobinfo = fields;
      expect(fields['Job type']).toBe('Unbounded');
      expect(fields['Operation']).toBe('Outgoing migration');
      if (fields['Time remaining'] !== undefined) expect(fields['Time remaining'], 'virsh shows no time remaining').toMatch(/^0 ms$/);
    } finally {
      const abort = await here.ferry(['domjobabort', NAME]);
      expect(abort.code, out(abort)).toBe(0);
      watcher.close();
    }
    const r = await m.done;
    figures.warn = { stderr: r.stderr };
    expect(r.code, out(r)).toBe(1);
    const lines = policyLines(r.stderr);
    expect(lines, 'one warning and no policy step').toHaveLength(1);
    expect(lines[0]).toMatch(/^migrate: warning: the migration is not converging: the guest dirties ([\d.]+) MiB\/s, the stream moves ([\d.]+) MiB\/s, ([\d.]+) MiB remain after (\d+) passes \(downtime limit 300 ms\)/);
    // The advice: what could finish it, with the downtime it would take.
    expect(lines[0]).toMatch(/what could finish it: --postcopy .*, or --auto-converge, or a downtime of about \d+ ms .*, or --policy auto$/);
    // QEMU's dirty rate is distinct pages per pass: a pass of ~4 s over the 64 MiB working set reads as ~16 MiB/s, about the stream's.
    const [, dirty, moves, remain, passes] = /dirties ([\d.]+) MiB\/s, the stream moves ([\d.]+) MiB\/s, ([\d.]+) MiB remain after (\d+) passes/.exec(lines[0]!)!;
    figures.warnNumbers = { dirty, moves, remain, passes };
    expect(Number(dirty), 'the dirty rate it names').toBeGreaterThan(0);
    expect(Number(moves), 'the stream it names is the --bandwidth one').toBeLessThanOrEqual(Number(BANDWIDTH) * 1.25);
    expect(Number(remain), 'what remains: about the working set').toBeGreaterThan(16);
    expect(Number(passes)).toBeGreaterThanOrEqual(3);
    expect(r.stderr).toMatch(/^error: migration of '.*' was aborted/m);
    await expectStillOn(here, q);
    // The event and the job agree: a client that reads domjobinfo when the warning event arrives finds the warning there.
    expect(atEvent, 'the API client got the warning event').toBeDefined();
    const seen = await atEvent!;
    figures.jobAtWarningEvent = brief(seen);
    expect(seen.warning, 'domjobinfo read as the warning event arrived has the warning').toMatch(/^the migration is not converging/);
  }, 150_000);

  it('--completion-timeout-per-gib 4 --completion-action abort: aborts when it expires (0.25 GiB counts as 1 GiB); the guest stays on the source', async () => {
    const q = qemuOf(here);
    const r = await here.ferry(migrateArgs(['--completion-timeout-per-gib', '4', '--completion-action', 'abort']), { json: true, timeoutMs: MIGRATE_MS });
    figures.completionAbort = r.json?.error;
    expect(r.code, out(r)).toBe(1);
    expect(r.json?.error?.code, out(r)).toBe('operation_aborted');
    expect(r.json?.error?.message).toMatch(/the completion timeout \(4 s per GiB: 4 s\) expired with [\d.]+ MiB remaining: aborting; the guest keeps running on the source/);
    await expectStillOn(here, q);
  }, 150_000);

  it('honest progress: a migration that does not converge (48 MiB/s against the 64 MiB working set) never says converging, with a time remaining, from its third pass on', async () => {
    const q = qemuOf(here);
    const m = startCli(here, migrateArgs(['--policy', 'none'], '48'), { json: true });
    const samples: Array<Record<string, unknown>> = [];
    let result: CliResult | undefined;
    void m.done.then((r) => (result = r));
    try {
      const how = await waitFor('the migration to reach its tenth pass', async () => {
        if (result) return 'ended';
        const j = await jobInfo(here);
        if (j.type === 'Unbounded') samples.push({ t: j.time_elapsed, ...brief(j) });
        return (j.memory_iteration ?? 0) >= 10 ? 'running' : undefined;
      }, 60_000, 100);
      expect(how, `the migration ended on its own at 48 MiB/s: ${result ? out(result) : ''}`).toBe('running');
    } finally {
      await here.ferry(['domjobabort', NAME]);
      const r = await m.done;
      figures.flapping = { samples: samples.filter((s) => (s.iteration as number) >= 3).map((s) => `${s.t} ms pass ${s.iteration}: ${s.remaining_MiB} MiB left, ${s.bps_MiB} MiB/s, ${s.dirty_pages_s} pages/s -> ${s.convergence}${s.time_remaining !== undefined ? `, ${s.time_remaining} ms` : ''}`), exit: r.code };
    }
    await expectStillOn(here, q);
    // What a user polling domjobinfo saw: the verdict and the ETA of a migration that never finished.
    const claims = samples.filter((s) => (s.iteration as number) >= 3 && (s.convergence === 'converging' || s.time_remaining !== undefined));
    expect(claims, `of ${samples.length} samples, those from pass 3 on that said converging or gave a time remaining (the migration never finished)`).toEqual([]);
  }, 150_000);
});

describe.runIf(netnsAvailable())('the convergence policy moves what pre-copy cannot', () => {
  it('--completion-timeout-per-gib 4 --completion-action postcopy --postcopy: switches to post-copy when it expires and completes; the heartbeat carries on', async () => {
    const from = here;
    const to = other(here);
    const r = await from.ferry(migrateArgs(['--postcopy', '--completion-timeout-per-gib', '4', '--completion-action', 'postcopy']), { timeoutMs: MIGRATE_MS });
    figures.completionPostcopy = { stdout: r.stdout, stderr: r.stderr };
    expect(r.code, out(r)).toBe(0);
    const lines = policyLines(r.stderr);
    const switched = lines.filter((l) => /^migrate: policy: the completion timeout \(4 s per GiB: 4 s\) expired with [\d.]+ MiB remaining: switching to post-copy$/.test(l));
    expect(switched, out(r)).toHaveLength(1);
    // Nothing after the switch (a warning may come before it, if pass 3 came first).
    expect(lines[lines.length - 1]).toBe(switched[0]);
    expect(r.stdout).toMatch(/migrated to .* running \(migrated\)/);
    here = to;
    movedYet = true;
    await expectContinuity(NAME, hb(from), hb(to));
    expect((await from.ferry(['list', '--all'], { json: true })).json, 'the transient guest is gone from the source').toEqual([]);
    expect(qemuPidsMentioning(UUID), 'one QEMU of the guest').toHaveLength(1);
  }, 150_000);

  it('--policy auto --postcopy: warning first, then the policy steps, post-copy last (--json policyEvents); completes with the heartbeat intact', async () => {
    const from = here;
    const to = other(here);
    const r = await from.ferry(migrateArgs(['--postcopy', '--policy', 'auto']), { json: true, timeoutMs: MIGRATE_MS });
    expect(r.code, out(r)).toBe(0);
    const events = r.json?.policyEvents as Array<{ domain: string; uuid: string; step: string; message: string; timestamp: string }>;
    figures.autoPostcopy = { events: events?.map((e) => `${e.step}: ${e.message}`), downtime: r.json?.stats?.downtime, wallTimeMs: r.json?.wallTimeMs, MiB: (r.json?.stats?.data_processed ?? 0) / 1048576 };
    expect(r.json?.result).toMatchObject({ state: 'running', reason: 'migrated' });
    expect(Array.isArray(events), out(r)).toBe(true);
    const steps = events.map((e) => e.step);
    expect(steps[0], steps.join(', ')).toBe('warn');
    expect(steps[steps.length - 1], steps.join(', ')).toBe('start-postcopy');
    expect(steps.filter((s) => s === 'warn'), 'one warning').toHaveLength(1);
    expect(steps.filter((s) => s === 'start-postcopy'), 'one switch').toHaveLength(1);
    // Between them only downtime steps (AUTO_CONVERGE was not given), each limit above the one before and within the default cap.
    const middle = events.slice(1, -1);
    for (const e of middle) expect(e.step, e.message).toBe('set-downtime');
    const limits = middle.map((e) => Number(/ to (\d+) ms \(cap 2000 ms\)/.exec(e.message)?.[1]));
    for (const [i, ms] of limits.entries()) {
      expect(ms, middle[i]!.message).toBeGreaterThan(i === 0 ? 300 : limits[i - 1]!);
      expect(ms).toBeLessThanOrEqual(2000);
    }
    for (const e of events) {
      expect(e.domain).toBe(NAME);
      expect(e.uuid).toBe(UUID);
      expect(Date.parse(e.timestamp)).not.toBeNaN();
    }
    expect(events.map((e) => Date.parse(e.timestamp)), 'in the order they happened').toEqual(events.map((e) => Date.parse(e.timestamp)).sort((a, b) => a - b));
    expect(events[0]!.message).toMatch(/^the migration is not converging: the guest dirties/);
    expect(events[events.length - 1]!.message).toMatch(/^switching to post-copy: .*losing the source host or the link loses the guest/);
    here = to;
    await expectContinuity(NAME, hb(from), hb(to));
    expect(qemuPidsMentioning(UUID), 'one QEMU of the guest').toHaveLength(1);
  }, 150_000);

  it('honest progress: not converging shows no time remaining; sped up with migrate-setspeed it says converging, with a time remaining, and completes', async () => {
    const from = here;
    const to = other(here);
    const m = startCli(from, migrateArgs(['--policy', 'none']), { json: true });
    const samples: Array<Record<string, unknown>> = [];
    let result: CliResult | undefined;
    void m.done.then((r) => (result = r));
    try {
      const stalled = await waitFor('domjobinfo to say not converging', async () => {
        const j = await jobInfo(from);
        samples.push({ at: 'before', ...brief(j) });
        return j.convergence === 'not converging' ? j : undefined;
      }, 60_000, 200);
      expect(stalled.time_remaining, 'no time remaining while not converging').toBeUndefined();
      const speed = await from.ferry(['migrate-setspeed', NAME, '100']);
      expect(speed.code, out(speed)).toBe(0);
      const converging = await waitFor('domjobinfo to say converging', async () => {
        if (result) throw new Error(`the migration ended first: ${out(result)}`);
        const j = await jobInfo(from);
        samples.push({ at: 'after', ...brief(j) });
        return j.convergence === 'converging' ? j : undefined;
      }, 30_000, 50);
      expect(converging.time_remaining, JSON.stringify(brief(converging))).toEqual(expect.any(Number));
      expect(converging.time_remaining).toBeGreaterThan(0);
      expect(converging.phase).toMatch(/^iteration \d+$/);
      await waitFor('the migration to end', () => result, 30_000);
    } catch (err) {
      await from.ferry(['domjobabort', NAME]);
      await m.done;
      throw err;
    } finally {
      figures.honestProgress = samples;
    }
    const r = await m.done;
    expect(r.code, out(r)).toBe(0);
    expect(r.json?.policyEvents, 'policy none: no event').toEqual([]);
    here = to;
    await expectContinuity(NAME, hb(from), hb(to));
  }, 150_000);
});
