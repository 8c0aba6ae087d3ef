/**
 * Which migrations of an evacuation to start now, under the hosts' limits
 * and a total one. Pure: the executor asks after every change (a migration
 * started or ended, a reconcile) and starts what it is told, in that order.
 */
import { FerryError, showValue } from '../errors/index.js';
import { openAttempt, type EvacuationRecord, type GuestEntry } from './record.js';

/** A host's limits, as `ferryd --max-outgoing-migrations/--max-incoming-migrations` set them. */
export interface HostLimits {
  maxOutgoing: number;
  maxIncoming: number;
}

/** What the scheduler decides from. */
export interface SchedulerState {
  record: EvacuationRecord;
  /** Migrations of this evacuation in flight at once, at most (`--max-parallel`). */
  maxParallel: number;
  /** Per host URI; by default the limits in the record's host facts. */
  limits?: Record<string, HostLimits>;
  /** Migrations on each host that are not this evacuation's (another client's), by URI; default none. */
  otherLoad?: Record<string, { outgoing: number; incoming: number }>;
  /** Ctrl-C was pressed: start nothing more. */
  stopping?: boolean;
}

/** One migration to start. */
export interface MigrationStart {
  name: string;
  uuid: string;
  source: string;
  destination: string;
  /** An inactive definition: an OFFLINE migration, which takes the source's outgoing slot but no incoming one (as ferryd counts them). */
  offline: boolean;
  /** 1 for the first try. */
  attempt: number;
}

/** Whether a guest's migration occupies slots now: running, or in question with its attempt still open (it may still be streaming). */
export function inFlight(e: GuestEntry): boolean {
  return e.status === 'running' || (e.status === 'check' && openAttempt(e) !== undefined);
}

/** The slots one entry takes: always the source's outgoing one; the destination's incoming one unless offline. */
function slotsOf(e: GuestEntry, source: string, destination: string): Array<[string, 'outgoing' | 'incoming']> {
  return e.guest.state === 'inactive' ? [[source, 'outgoing']] : [[source, 'outgoing'], [destination, 'incoming']];
}

/**
 * The guests to start now, in the plan's order (largest first), such that
 * once they are started no host runs more outgoing or incoming migrations
 * than its limit (this evacuation's plus `otherLoad`) and the evacuation no
 * more than `maxParallel`. A guest whose destination is full does not hold
 * up the guests behind it bound elsewhere. Nothing while `stopping`.
 *
 * @throws FerryError `invalid_arg` for a `maxParallel` or a limit that is not a positive whole number
 */
export function nextMigrations(state: SchedulerState): MigrationStart[] {
  const { record } = state;
  positive(state.maxParallel, 'the number of migrations at once (--max-parallel)');
  if (state.stopping) return [];
  const limits = new Map<string, HostLimits>();
  for (const h of [record.source, ...record.destinations]) limits.set(h.uri, state.limits?.[h.uri] ?? { maxOutgoing: h.migrations.maxOutgoing, maxIncoming: h.migrations.maxIncoming });
  for (const [uri, l] of limits) {
    positive(l.maxOutgoing, `the outgoing migration limit of ${uri}`);
    positive(l.maxIncoming, `the incoming migration limit of ${uri}`);
  }
  const used = new Map<string, number>();
  const key = (uri: string, way: 'outgoing' | 'incoming') => `${way} ${uri}`;
  const add = (uri: string, way: 'outgoing' | 'incoming') => used.set(key(uri, way), (used.get(key(uri, way)) ?? 0) + 1);
  for (const [uri, load] of Object.entries(state.otherLoad ?? {})) {
    used.set(key(uri, 'outgoing'), (used.get(key(uri, 'outgoing')) ?? 0) + load.outgoing);
    used.set(key(uri, 'incoming'), (used.get(key(uri, 'incoming')) ?? 0) + load.incoming);
  }
  let running = 0;
  for (const e of record.guests) {
    if (!inFlight(e)) continue;
    running++;
    const dest = openAttempt(e)?.destination ?? e.destination;
    for (const [uri, way] of slotsOf(e, record.source.uri, dest ?? '')) add(uri, way);
  }
  const room = (uri: string, way: 'outgoing' | 'incoming') => {
    const l = limits.get(uri);
    const max = l === undefined ? 1 : way === 'outgoing' ? l.maxOutgoing : l.maxIncoming;
    return (used.get(key(uri, way)) ?? 0) < max;
  };
  const starts: MigrationStart[] = [];
  for (const e of record.guests) {
    if (running >= state.maxParallel) break;
    if ((e.status !== 'pending' && e.status !== 'retrying') || e.destination === undefined) continue;
    const slots = slotsOf(e, record.source.uri, e.destination);
    if (!slots.every(([uri, way]) => room(uri, way))) continue;
    for (const [uri, way] of slots) add(uri, way);
    running++;
    starts.push({ name: e.guest.name, uuid: e.guest.uuid, source: record.source.uri, destination: e.destination, offline: e.guest.state === 'inactive', attempt: e.attempts.length + 1 });
  }
  return starts;
}

function positive(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 1) throw new FerryError('invalid_arg', `${what} must be a positive whole number, not ${showValue(n)}`);
}
