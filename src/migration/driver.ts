/**
 * The order of the five phases, written once for both modes: in managed
 * mode the CLI runs it with two remote endpoints; in peer-to-peer mode the
 * source daemon runs it with its own source side and a remote destination.
 *
 * The rule that keeps one running copy: the source takes its guest back
 * (confirm cancelled) only when the destination has not resumed it and
 * never will. When finish's answer is lost, the driver asks the
 * destination to abort the job unless it already finished, and follows
 * that answer; when no answer comes within a bound, the source ends its
 * job with the guest paused (confirm with an unknown outcome) and the
 * user is told what to check.
 *
 * The driver watches the destination's control connection while the
 * source streams: a destination that is lost (closed, reset, or silent for
 * the keepalive bound) can never finish, so perform is cancelled at once
 * and the guest keeps running on the source.
 */
import { FerryError, toFerryError } from '../errors/index.js';
import { chooseDataUri, resolveNbdTarget } from '../flags/index.js';
import { postcopyPausedError } from './postcopy-errors.js';
import type { BeginResult, ConfirmArgs, FinishArgs, FinishResult, IncomingJobState, MigrationRequest, PerformArgs, PerformResult, PrepareArgs, PrepareResult } from './phase-messages.js';

/** The source side as the driver sees it. */
export interface SourceEndpoint {
  begin(domain: string, req: MigrationRequest & { destUri?: string }): Promise<BeginResult>;
  perform(args: PerformArgs): Promise<PerformResult>;
  confirm(args: ConfirmArgs): Promise<void>;
  /** Cancels job `jobId` if it is still streaming (its perform then fails); `why` is logged and reported. */
  cancel(jobId: string, why: string): Promise<void>;
}

/** The destination side as the driver sees it. */
export interface DestinationEndpoint {
  /** The host name to put into a `tcp:*:PORT` URI: how the source reaches the destination. */
  readonly addressForData: string;
  prepare(args: PrepareArgs): Promise<PrepareResult>;
  finish(args: FinishArgs): Promise<FinishResult>;
  /**
   * Aborts the incoming job unless it finished; returns its final state. May
   * reconnect. With `domainUuid`, a destination that no longer knows the job
   * (it restarted) answers from the domain's own state.
   */
  abortUnlessFinished(jobId: string, domainUuid?: string): Promise<IncomingJobState>;
  /** Whether the connection to the destination is known to be gone (a request now would not reach it). */
  connectionLost(): boolean;
  /**
   * Resolves (never rejects) when the control connection to the
   * destination is lost: closed, reset, or silent for the keepalive bound.
   */
  whenLost(): Promise<Error>;
}

/** How long the driver keeps asking a destination that did not answer finish before it gives up (ms). */
export const UNKNOWN_OUTCOME_WAIT_MS = 30_000;

/** The result of a migration the driver ran. */
export interface DriverOutcome {
  begin: BeginResult;
  prepare: PrepareResult;
  perform: PerformResult | null;
  finish: FinishResult;
  /** Set when the source could not clean up after success (the guest runs on the destination). */
  confirmWarning?: string;
  /** Milliseconds each phase took as the driver saw it, round trips included (where a migration's fixed cost goes). */
  phaseMs: PhaseTimings;
}

/** Milliseconds per phase of one migration. */
export type PhaseTimings = Partial<Record<'begin' | 'prepare' | 'perform' | 'finish' | 'confirm', number>>;

/** The line the source ferryd logs after a peer-to-peer migration: connecting to the destination, then each phase. */
export function phaseLogLine(domain: string, destUri: string, connectMs: number, phaseMs: PhaseTimings): string {
  const phases = Object.entries(phaseMs).map(([phase, ms]) => `${phase} ${ms.toFixed(0)} ms`);
  return `peer-to-peer migration of '${domain}' to ${destUri}: connect ${connectMs.toFixed(0)} ms, ${phases.join(', ')}`;
}

/** The times of {@link phaseLogLine} for `domain` in a piece of ferryd's log, ms (for benchmarks). */
export function phasesFromLog(log: string, domain: string): Record<string, number> | undefined {
  const line = log.split('\n').find((l) => l.includes(`peer-to-peer migration of '${domain}' to `));
  if (!line) return undefined;
  return Object.fromEntries([...line.matchAll(/(connect|begin|prepare|perform|finish|confirm) (\d+) ms/g)].map((m) => [m[1]!, Number(m[2])]));
}

/** Runs `step` and records its duration as `phase` in `into`. */
async function timed<T>(into: PhaseTimings, phase: keyof PhaseTimings, step: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await step();
  } finally {
    into[phase] = Math.round((performance.now() - t0) * 10) / 10;
  }
}

/** Runs begin, prepare, perform, finish and confirm; rolls back on failure. */
export async function runMigration(
  src: SourceEndpoint,
  dst: DestinationEndpoint,
  domain: string,
  req: MigrationRequest & { destUri?: string },
): Promise<DriverOutcome> {
  const phaseMs: PhaseTimings = {};
  const begin = await timed(phaseMs, 'begin', () => src.begin(domain, req));
  let prepare: PrepareResult;
  try {
    prepare = await timed(phaseMs, 'prepare', () => dst.prepare({ xml: begin.xml, cookie: begin.cookie, flags: req.flags, params: req.params }));
  } catch (err) {
    await src.confirm({ jobId: begin.jobId, cancelled: true }).catch(() => undefined);
    throw err;
  }
  const offline = prepare.migrateUri === '';
  let perform: PerformResult | null = null;
  // Why the destination's control connection was lost, once it has been.
  let lostWhy: Error | undefined;
  let performing = false;
  void dst.whenLost().then((why) => {
    lostWhy = why;
    // A destination lost mid-stream can never finish: stop streaming to it rather than wait for QEMU.
    if (performing) void src.cancel(begin.jobId, `lost the connection to the destination host: ${why.message}`).catch(() => undefined);
  });
  if (!offline) {
    performing = true;
    try {
      perform = await timed(phaseMs, 'perform', () => src.perform(performArgs(begin.jobId, req, prepare, dst.addressForData)));
    } catch (err) {
      performing = false;
      // The stream did not complete: the destination cannot have resumed; take the guest back.
      await dst.finish({ jobId: prepare.jobId, cancelled: true }).catch(() => undefined);
      await src.confirm({ jobId: begin.jobId, cancelled: true }).catch(() => undefined);
      if (lostWhy) throw destinationLost(begin.cookie.domain.name, lostWhy);
      throw err;
    }
    performing = false;
  }
  let finish: FinishResult;
  // If the link to the destination is already gone, finish cannot reach it, and without finish
  // the destination never resumes the guest: an unreachable destination then means "aborted".
  const finishDeliverable = !dst.connectionLost();
  try {
    if (!finishDeliverable) throw new FerryError('no_connect', 'the connection to the destination closed before finish');
    finish = await timed(phaseMs, 'finish', () =>
      dst.finish({
        jobId: prepare.jobId,
        cancelled: false,
        ...(perform ? { sourceStats: perform.stats } : {}),
        ...(perform?.sourceStoppedAt !== undefined ? { sourceStoppedAt: perform.sourceStoppedAt } : {}),
      }),
    );
  } catch (err) {
    const e = toFerryError(err);
    if (perform?.postcopy) return await afterPostcopyFinishFailed(src, dst, { begin, prepare, perform, phaseMs }, e, finishDeliverable ? UNKNOWN_OUTCOME_WAIT_MS : 5_000);
    const lost = e.code === 'no_connect' || e.code === 'rpc' || e.code === 'operation_timeout';
    // Even a finish that answered with an error may have resumed the guest first (a post-copy that broke
    // after the switch, a failure after `cont`): ask, and take the guest back only if the destination aborted.
    let outcome = await settleUnknown(dst, prepare.jobId, begin.cookie.domain.uuid, finishDeliverable ? UNKNOWN_OUTCOME_WAIT_MS : 5_000);
    if (outcome === 'unreachable' && !finishDeliverable) outcome = 'aborted';
    if (outcome === 'finished' && !lost) {
      // The guest runs on the destination although its finish failed: the source must not resume it.
      await src.confirm({ jobId: begin.jobId, cancelled: false }).catch(() => undefined);
      throw new FerryError(e.code, `${e.message} (the guest was handed over and runs on the destination; the source has given it up)`);
    } else if (outcome === 'finished') {
      // The answer was lost, but the guest runs on the destination: finish the source side as a success.
      finish = { domainName: prepare.domainName, state: 'running', reason: 'migrated', persistent: false };
    } else if (outcome === 'aborted') {
      await src.confirm({ jobId: begin.jobId, cancelled: true }).catch(() => undefined);
      if (!finishDeliverable) throw destinationLost(begin.cookie.domain.name, lostWhy ?? e);
      throw e;
    } else {
      const why = `the outcome of migrating '${begin.cookie.domain.name}' is unknown: the destination did not answer (${e.message}); the guest is left paused on the source so it cannot run twice. Check the destination with 'ferry list': if the guest runs there, 'ferry destroy' it on the source; if not, 'ferry resume' it on the source`;
      // The source's job ends here (its lock released, so resume and destroy work), the guest paused.
      await src.confirm({ jobId: begin.jobId, cancelled: true, outcomeUnknown: why }).catch(() => undefined);
      throw new FerryError('operation_failed', why);
    }
  }
  const out: DriverOutcome = { begin, prepare, perform, finish, phaseMs };
  try {
    await timed(phaseMs, 'confirm', () => src.confirm({ jobId: begin.jobId, cancelled: false, ...(finish.downtimeMs !== undefined ? { downtimeMs: finish.downtimeMs } : {}) }));
    // A post-copy's confirm returns once the whole stream has arrived: the guest's state is no longer 'post-copy'.
    if (perform?.postcopy && finish.reason === 'post-copy') out.finish = { ...finish, reason: 'migrated' };
  } catch (err) {
    // In post-copy, confirm waits for the rest of the stream: its failure (a stream that broke and was paused) is the migration's.
    if (perform?.postcopy) throw err;
    out.confirmWarning = `the guest runs on the destination, but the source could not clean up: ${toFerryError(err).message}`;
  }
  return out;
}

/**
 * What the source streams to, from the destination's prepare: the user's
 * `migrate_uri` or the prepared one, with a wildcard host replaced by
 * `destAddress` (how the source reaches the destination), and the same for
 * the disks' NBD target.
 */
export function performArgs(jobId: string, req: MigrationRequest, prepare: PrepareResult, destAddress: string): PerformArgs {
  const uri = chooseDataUri(req.params.migrate_uri, prepare.migrateUri, destAddress);
  const nbd = prepare.nbd ? resolveNbdTarget(prepare.nbd, uri, destAddress) : undefined;
  return { jobId, migrateUri: uri, ...(nbd ? { nbd } : {}) };
}

/**
 * finish failed or went unanswered after the switch to post-copy. The
 * source never runs the guest again, and a destination whose QEMU reached
 * post-copy keeps its copy (even one finish never resumed), so the only
 * way on is forward: the source's confirm follows the rest of the stream
 * (a stream that went silent is paused there), and a migration that cannot
 * go on waits, paused on both hosts, for `--postcopy-resume`.
 */
async function afterPostcopyFinishFailed(
  src: SourceEndpoint,
  dst: DestinationEndpoint,
  done: { begin: BeginResult; prepare: PrepareResult; perform: PerformResult; phaseMs: PhaseTimings },
  e: FerryError,
  waitMs: number,
): Promise<DriverOutcome> {
  const { begin, prepare, perform, phaseMs } = done;
  const name = begin.cookie.domain.name;
  const outcome = await settleUnknown(dst, prepare.jobId, begin.cookie.domain.uuid, waitMs);
  if (outcome === 'finished') {
    // The destination holds the guest: the source's side ends like any post-copy, or says why it cannot.
    await src.confirm({ jobId: begin.jobId, cancelled: false });
    return { begin, prepare, perform, finish: { domainName: prepare.domainName, state: 'running', reason: 'migrated', persistent: false }, phaseMs };
  }
  if (outcome === 'aborted') {
    await src.confirm({ jobId: begin.jobId, cancelled: true }).catch(() => undefined);
    throw new FerryError('operation_failed', `post-copy migration of '${name}' failed after the switch: the destination dropped its copy (${e.message}); the source keeps the guest's memory but, having switched, cannot run it`);
  }
  // Unreachable: the stream itself decides. If it completes, the destination QEMU holds the whole guest and its
  // daemon resumes it when it is back (it takes over a switched copy at start); if it stalls, it is paused.
  await src.confirm({ jobId: begin.jobId, cancelled: false });
  throw new FerryError('operation_failed', `post-copy migration of '${name}': the whole stream reached the destination, but its daemon did not answer (${e.message}); it resumes the guest there as soon as it runs again, and this host has stopped its copy`);
}

/** The error of a migration whose destination was lost while the source streamed. */
function destinationLost(domain: string, why: Error): FerryError {
  return new FerryError('operation_failed', `lost the connection to the destination host (${why.message}); the migration of '${domain}' was cancelled and the guest keeps running on the source`);
}

/**
 * Asks the destination, until `waitMs` has passed, to abort the job unless
 * it finished. Each attempt is cut at the deadline, so the whole wait is
 * bounded even when a call hangs.
 */
async function settleUnknown(dst: DestinationEndpoint, jobId: string, domainUuid: string, waitMs: number): Promise<IncomingJobState | 'unreachable'> {
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), Math.max(0, deadline - Date.now()))));
    try {
      const st = await Promise.race([dst.abortUnlessFinished(jobId, domainUuid), late]);
      if (st === 'late') break;
      if (st === 'finished' || st === 'aborted' || st === 'unknown') return st === 'unknown' ? 'aborted' : st;
    } catch {
      // Destination still unreachable: try again shortly.
    } finally {
      clearTimeout(timer);
    }
    await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(0, deadline - Date.now()))));
  }
  return 'unreachable';
}
