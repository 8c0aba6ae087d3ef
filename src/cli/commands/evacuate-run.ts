/** What `evacuate`, `evacuate-status` and `evacuate-stop` do (registered in evacuate.ts, loaded when one of them runs). */
import { FerryError, showValue } from '../../errors/index.js';
import { progressOf, type EvacuationRecord } from '../../evacuation/index.js';
import type { ApiClient } from '../../api/client.js';
import type { EvacuationRequest, EvacuationStatus } from '../../api/protocol.js';
import { renderEvacuationLine, renderGuestChanges, renderPlan, renderReport } from '../evacuation-render.js';
import type { CliContext } from '../context.js';
import { ReportedFailure, printResult } from '../output.js';
import { policyFromOptions } from '../policy-options.js';
import type { EvacuateOptions } from './evacuate.js';

/** How often the progress line asks for the running migrations' figures (ms); changes of the record arrive as events at once. */
const PROGRESS_POLL_MS = 1000;

/** A number option; its range is the planner's to check. */
function parseNumber(value: string, option: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new FerryError('invalid_arg', `${option} needs a number, not ${showValue(value)}`);
  return n;
}

/** States in which the daemon still runs the evacuation. */
const ACTIVE: ReadonlySet<string> = new Set(['running', 'stopping', 'aborting']);

/** `evacuate`. */
export async function evacuate(ctx: CliContext, opts: EvacuateOptions): Promise<void> {
  const to = opts.to ?? [];
  if (to.length === 0) throw new FerryError('invalid_arg', 'evacuate needs at least one destination: --to URI');
  const req: EvacuationRequest = {
    to,
    ...(opts.includeInactive ? { includeInactive: true } : {}),
    ...(opts.unsafe ? { unsafe: true } : {}),
    ...(opts.headroomPercent !== undefined ? { headroomPercent: parseNumber(opts.headroomPercent, '--headroom-percent') } : {}),
    ...(opts.headroomMib !== undefined ? { headroomMiB: parseNumber(opts.headroomMib, '--headroom-mib') } : {}),
    ...(opts.maxParallel !== undefined ? { maxParallel: opts.maxParallel } : {}),
    ...(opts.maxFailures !== undefined ? { maxFailures: opts.maxFailures } : {}),
    ...(opts.fresh ? { fresh: true } : {}),
  };
  const policy = policyFromOptions(opts);
  if (policy) req.policy = policy;
  const source = await ctx.client();
  if (opts.dryRun) {
    const plan = await source.call('host.evacuate.plan', req);
    printResult(ctx.output, plan, () => renderPlan(plan));
    return;
  }
  await source.call('events.subscribe', {});
  const first = await source.call('host.evacuate.start', req);
  if (!ctx.output.json) {
    const p = first.record ? progressOf(first.record) : undefined;
    const how = first.attached ? 'following the evacuation already running' : first.continued ? `continuing an unfinished evacuation (${p?.done ?? 0} of ${p?.total ?? 0} already moved)` : 'evacuating';
    process.stderr.write(`evacuate: ${how}: ${p?.total ?? 0} guests to ${first.record?.destinations.map((d) => d.name).join(', ') ?? '-'}, at most ${first.maxParallel ?? '?'} at once (Ctrl-C stops starting new migrations)\n`);
  }
  const final = await follow(source, first, ctx.output.json);
  reportEnd(ctx, final);
}

/** `evacuate-status`. */
export async function evacuateStatus(ctx: CliContext): Promise<void> {
  const client = await ctx.client();
  const st = await client.call('host.evacuate.status', {});
  printResult(ctx.output, st, () => (st.record === null ? 'no evacuation of this host\n' : `state: ${st.state}\n${renderInFlight(st)}${renderReport(st.record)}`));
}

/** `evacuate-stop`. */
export async function evacuateStop(ctx: CliContext, opts: { abort?: boolean }): Promise<void> {
  const client = await ctx.client();
  const st = await client.call('host.evacuate.stop', { abort: opts.abort === true });
  printResult(ctx.output, st, () => `evacuation ${st.state}: ${st.inFlight.length} migration${st.inFlight.length === 1 ? '' : 's'} still running\n`);
}

function renderInFlight(st: EvacuationStatus): string {
  return st.inFlight.length === 0 ? '' : `in flight: ${renderEvacuationLine(st)}\n`;
}

/**
 * Follows the evacuation until the daemon no longer runs it: each change of
 * the record (an event) prints the guests whose status changed; on a
 * terminal a progress line is redrawn every second. Ctrl-C stops the
 * evacuation (twice: aborts). A lost connection ends the wait with an
 * error that says the evacuation goes on in the daemon.
 */
async function follow(client: ApiClient, first: EvacuationStatus, json: boolean): Promise<EvacuationStatus> {
  const tty = !json && process.stderr.isTTY === true;
  let last = first;
  let shown = '';
  let interrupts = 0;
  const clearLine = () => {
    if (tty && shown !== '') process.stderr.write(`\r${' '.repeat(shown.length)}\r`);
    shown = '';
  };
  const show = (st: EvacuationStatus, before: EvacuationRecord | null) => {
    if (json) return;
    const changes = st.record ? renderGuestChanges(before, st.record) : '';
    if (changes !== '') {
      clearLine();
      process.stderr.write(changes);
    }
    if (tty) {
      const line = renderEvacuationLine(st);
      process.stderr.write(`\r${line.padEnd(shown.length)}`);
      shown = line;
    }
  };
  show(first, null);
  const onSigint = () => {
    interrupts++;
    const abort = interrupts > 1;
    clearLine();
    process.stderr.write(abort ? 'evacuate: aborting the running migrations; their guests stay on the source\n' : 'evacuate: stopping: no new migrations start, the running ones finish (Ctrl-C again aborts them)\n');
    client.call('host.evacuate.stop', { abort }).catch((err: Error) => process.stderr.write(`evacuate: could not stop: ${err.message}\n`));
  };
  process.on('SIGINT', onSigint);
  try {
    return await new Promise<EvacuationStatus>((resolve, reject) => {
      let asking = false;
      let again = false;
      const refresh = () => {
        if (asking) {
          again = true;
          return;
        }
        asking = true;
        client.call('host.evacuate.status', {}).then(
          (st) => {
            asking = false;
            const before = last.record;
            last = st;
            show(st, before);
            if (!ACTIVE.has(st.state)) return finish(st);
            if (again) {
              again = false;
              refresh();
            }
          },
          (err: unknown) => finish(undefined, err),
        );
      };
      const timer = setInterval(refresh, PROGRESS_POLL_MS);
      const onEvent = (name: string) => {
        if (name === 'host.evacuation') refresh();
      };
      const onClose = (err: unknown) => finish(undefined, err ?? new Error('closed'));
      const finish = (st?: EvacuationStatus, err?: unknown) => {
        clearInterval(timer);
        client.off('event', onEvent);
        client.off('close', onClose);
        clearLine();
        if (st) resolve(st);
        else reject(new FerryError('no_connect', `lost the connection to the source daemon (${err instanceof Error ? err.message : String(err)}); the evacuation goes on there: 'ferry evacuate-status' shows it, 'ferry evacuate' with the same --to follows it again`));
      };
      client.on('event', onEvent);
      client.on('close', onClose);
      if (!ACTIVE.has(first.state)) finish(first);
      else refresh();
    });
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** The report, and the exit status: 0 only when every guest moved. */
function reportEnd(ctx: CliContext, st: EvacuationStatus): void {
  const record = st.record;
  if (record === null) throw new FerryError('internal_error', 'the daemon answered no evacuation');
  const n = progressOf(record);
  const notMoved = n.total - n.done;
  const error =
    notMoved === 0
      ? undefined
      : new FerryError('operation_failed', `${notMoved} of ${n.total} guest${n.total === 1 ? '' : 's'} not moved (${n.failed} failed, ${n.check} to check, ${n.pending + n.retrying + n.running} not finished${st.state === 'interrupted' ? ': the evacuation was stopped; run the same command again to continue' : ''})`);
  printResult(ctx.output, { ...st, ...(error ? { error: error.toPayload() } : {}) }, () => renderReport(record));
  if (error) throw ctx.output.json ? new ReportedFailure(error.code, error.message) : error;
}
