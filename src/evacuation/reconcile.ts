/**
 * Continuing an evacuation after an interruption: the record says what the
 * last run believed, the hosts say where each guest is now, and the hosts
 * win. Pure: the observation is gathered by the caller (a `list --all` on
 * the source and every destination, and the source's jobs).
 */
import { hostNameOf, openAttempt, type EvacuationRecord, type GuestEntry } from './record.js';

/** Where one guest was found. */
export interface GuestObservation {
  /** URIs of the hosts that have it (running, paused, or for an inactive guest defined). */
  hosts: readonly string[];
  /** Whether the source reports a migration job of it in flight; omitted when not asked. */
  migrating?: boolean;
}

/** What the hosts said, gathered after an interruption. */
export interface Observation {
  /** By guest UUID. A guest missing here was not looked for. */
  guests: Record<string, GuestObservation>;
  /** Hosts that did not answer: a guest may be on them unseen. */
  unreachable?: readonly string[];
}

/**
 * The record brought in line with `observed`, so that a re-run continues
 * where the last one stopped. For each guest:
 *
 * - found on exactly one host, not the source: `done` there (whatever the
 *   record said: it moved, by this evacuation or by hand);
 * - found on the source only, and no migration of it in flight: a `running`
 *   or `check` guest is `pending` again (its open attempt `interrupted`, not
 *   a failure: no host is excluded) and a `done` one too, unless its
 *   destination did not answer (then `check`, since it may be there too);
 * - found on the source only with a migration in flight, or with no word on
 *   jobs: a `running` guest needs a `check` (the executor follows the job or
 *   asks again); pending ones stay pending;
 * - found on two hosts or on none: `check`, with what was seen;
 * - not looked for: a `running` guest needs a `check` (the run that followed
 *   it is gone); other statuses stay.
 *
 * `failed` guests stay failed unless found on a destination: a re-run does
 * not retry what the retry policy gave up on.
 */
export function reconcile(record: EvacuationRecord, observed: Observation, nowMs: number): EvacuationRecord {
  const r: EvacuationRecord = { ...structuredClone(record), updatedAtMs: nowMs };
  const unreachable = new Set(observed.unreachable ?? []);
  const nameOf = (uri: string) => hostNameOf(r, uri);
  for (const e of r.guests) {
    const seen = Object.prototype.hasOwnProperty.call(observed.guests, e.guest.uuid) ? observed.guests[e.guest.uuid] : undefined;
    settle(e, seen, r.source.uri, unreachable, nameOf, nowMs);
  }
  return r;
}

function settle(e: GuestEntry, seen: GuestObservation | undefined, source: string, unreachable: ReadonlySet<string>, nameOf: (uri: string) => string, nowMs: number): void {
  const open = openAttempt(e);
  if (seen === undefined) {
    if (e.status === 'running') toCheck(e, `the run that migrated it to ${nameOf(e.destination ?? '?')} stopped, and it was not looked for since`);
    return;
  }
  const hosts = [...new Set(seen.hosts)];
  if (hosts.length > 1) {
    toCheck(e, `found on ${hosts.map(nameOf).join(' and ')}`);
    return;
  }
  if (hosts.length === 0) {
    const silent = [...unreachable].map(nameOf);
    toCheck(e, `found on no host${silent.length > 0 ? ` (${silent.join(', ')} did not answer)` : ''}`);
    return;
  }
  const at = hosts[0]!;
  if (at !== source) {
    if (e.status === 'done' && e.destination === at) return;
    if (open !== undefined) {
      open.endedAtMs = nowMs;
      open.result = 'migrated';
    }
    e.note = e.destination === at ? `found on ${nameOf(at)} after the interruption` : `found on ${nameOf(at)}${e.destination !== undefined ? `, not on the planned ${nameOf(e.destination)}` : ''}`;
    e.destination = at;
    e.status = 'done';
    return;
  }
  // On the source, and only there among the hosts that answered.
  if (e.status === 'pending' || e.status === 'retrying' || e.status === 'failed') return;
  if (e.destination !== undefined && unreachable.has(e.destination)) {
    toCheck(e, `seen on the source, but its destination ${nameOf(e.destination)} did not answer`);
    return;
  }
  if (seen.migrating === true) {
    toCheck(e, 'its migration is still in flight on the source');
    return;
  }
  if (seen.migrating === undefined && e.status !== 'done') {
    toCheck(e, 'on the source, but whether its migration is still in flight was not asked');
    return;
  }
  // Nothing moved it: start it again. An interrupted attempt is not a failure of its destination.
  if (open !== undefined) {
    open.endedAtMs = nowMs;
    open.result = 'interrupted';
  }
  e.note = e.status === 'done' ? `recorded as moved to ${nameOf(e.destination ?? '?')} but found on the source; will move again` : 'interrupted, still on the source; will start again';
  e.status = 'pending';
}

function toCheck(e: GuestEntry, why: string): void {
  e.status = 'check';
  e.note = why;
}
