/**
 * The record of one evacuation: the plan, the hosts as they were when it was
 * made, and each guest's status, attempts, times, downtime and error. It is
 * plain JSON so that the evacuating client can write it after every change
 * and a re-run can continue from it (`reconcile.ts`). Every status change is
 * made here, by the functions below, and each returns a new record.
 *
 * Changing the shape of {@link EvacuationRecord} needs a bump of
 * {@link EVACUATION_RECORD_VERSION}: a record of another version is refused.
 */
import { FerryError, showValue } from '../errors/index.js';
import { chooseDestination, memoryNeededKiB, type PlannedLoad } from './placement.js';
import type { EvacuationGuest, EvacuationPlan, PlacementHost, ResolvedPlacementOptions } from './types.js';

/** The record format's version; bump it with any change to the shape. */
export const EVACUATION_RECORD_VERSION = 1;

/**
 * Where a guest's evacuation stands:
 * - `pending`: planned, not started;
 * - `running`: its migration was started and has not ended;
 * - `retrying`: a migration failed and left it on the source; re-planned to another destination, waiting to start;
 * - `done`: it runs (or, inactive, is defined) on a destination;
 * - `failed`: given up (no destination can take it, or too many failures); it stays on the source;
 * - `check`: where it is cannot be told (an outcome lost, an interrupted run, a host that did not answer);
 *   never retried automatically, since a second migration of a guest that may already run elsewhere
 *   could break the exactly-one rule. `reconcile` settles it once the hosts are observed.
 */
export type GuestStatus = 'pending' | 'running' | 'retrying' | 'done' | 'failed' | 'check';

const STATUSES: ReadonlySet<string> = new Set<GuestStatus>(['pending', 'running', 'retrying', 'done', 'failed', 'check']);

/** One migration of one guest. */
export interface Attempt {
  destination: string;
  startedAtMs: number;
  endedAtMs?: number;
  /** `interrupted`: the run that started it ended before it did, and the guest was found still on the source. */
  result?: 'migrated' | 'failed' | 'unknown' | 'interrupted';
  downtimeMs?: number;
  error?: string;
}

/** One guest's line in the record. */
export interface GuestEntry {
  guest: EvacuationGuest;
  status: GuestStatus;
  /** Where it goes (or went); absent when no destination could take it. */
  destination?: string;
  /** Why that destination, or why it failed or needs a check. */
  note: string;
  attempts: Attempt[];
  /** Hosts this guest may no longer be sent to, with the reason (a failed migration there). */
  excluded: Array<{ host: string; reason: string }>;
}

/** How failures are retried. */
export interface RetryPolicy {
  /** Failed migrations (each left the guest on the source) before the guest is given up (default 3). */
  maxFailures: number;
}

/** The default retry policy. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({ maxFailures: 3 });

/** The whole evacuation, JSON-serialisable. */
export interface EvacuationRecord {
  version: typeof EVACUATION_RECORD_VERSION;
  /** The evacuated host as it was when planned. */
  source: PlacementHost;
  /** The destinations as they were when planned: what re-planning after a failure counts from. */
  destinations: PlacementHost[];
  options: ResolvedPlacementOptions;
  retry: RetryPolicy;
  createdAtMs: number;
  updatedAtMs: number;
  /** In the plan's order, then the guests no destination could take. */
  guests: GuestEntry[];
  /** Guests deliberately left on the source. */
  skipped: Array<{ name: string; reason: string }>;
}

/**
 * A new record for `plan`, every placed guest `pending`, every unplaced one
 * `failed` with each host's reason.
 *
 * @param source the evacuated host and `destinations` the hosts the plan was made from
 * @throws FerryError `invalid_arg` when they are not the plan's hosts, or the policy is not valid
 */
export function createRecord(plan: EvacuationPlan, source: PlacementHost, destinations: readonly PlacementHost[], nowMs: number, retry: Partial<RetryPolicy> = {}): EvacuationRecord {
  if (source.uri !== plan.source) throw new FerryError('invalid_arg', `the plan evacuates ${showValue(plan.source)}, not ${showValue(source.uri)}`);
  const given = destinations.map((d) => d.uri).join(' ');
  if (given !== plan.hosts.map((h) => h.uri).join(' ')) throw new FerryError('invalid_arg', `the destinations given (${given}) are not the plan's`);
  const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...(retry.maxFailures !== undefined ? { maxFailures: retry.maxFailures } : {}) };
  if (!Number.isSafeInteger(policy.maxFailures) || policy.maxFailures < 1) {
    throw new FerryError('invalid_arg', `a guest's allowed failures must be a positive whole number, not ${showValue(policy.maxFailures)}`);
  }
  const guests: GuestEntry[] = [
    ...plan.placements.map((p): GuestEntry => ({ guest: p.guest, status: 'pending', destination: p.destination, note: p.why, attempts: [], excluded: [] })),
    ...plan.unplaced.map((u): GuestEntry => ({
      guest: u.guest,
      status: 'failed',
      note: `no destination can take it: ${u.refusals.map((r) => r.message).join('; ')}`,
      attempts: [],
      excluded: [],
    })),
  ];
  return {
    version: EVACUATION_RECORD_VERSION,
    source,
    destinations: [...destinations],
    options: plan.options,
    retry: policy,
    createdAtMs: nowMs,
    updatedAtMs: nowMs,
    guests,
    skipped: plan.skipped.map((s) => ({ name: s.guest.name, reason: s.reason })),
  };
}

/**
 * A record read back from JSON, its version checked.
 *
 * @throws FerryError `operation_invalid` for another version, something that is not a record, or a damaged guest entry
 */
export function parseRecord(value: unknown): EvacuationRecord {
  const v = value as Partial<EvacuationRecord> | null;
  if (v === null || typeof v !== 'object' || !Array.isArray(v.guests) || typeof v.source !== 'object' || !Array.isArray(v.destinations)) {
    throw new FerryError('operation_invalid', 'this is not an evacuation record');
  }
  if (v.version !== EVACUATION_RECORD_VERSION) {
    throw new FerryError('operation_invalid', `evacuation record version ${showValue(v.version)} is not the version this Ferry reads (${EVACUATION_RECORD_VERSION}); finish it with the Ferry that wrote it, or plan afresh`);
  }
  v.guests.forEach((e: Partial<GuestEntry> | null, i) => {
    const ok =
      e !== null &&
      typeof e === 'object' &&
      typeof e.guest?.name === 'string' &&
      typeof e.guest.uuid === 'string' &&
      typeof e.status === 'string' &&
      STATUSES.has(e.status) &&
      Array.isArray(e.attempts) &&
      Array.isArray(e.excluded);
    if (!ok) throw new FerryError('operation_invalid', `evacuation record entry ${i + 1} is damaged (a guest with a name, UUID, known status, attempts and exclusions is expected); plan afresh`);
  });
  return v as EvacuationRecord;
}

/** A deep copy to change: records are never changed in place. */
function copy(record: EvacuationRecord, nowMs: number): EvacuationRecord {
  return { ...structuredClone(record), updatedAtMs: nowMs };
}

function entryOf(record: EvacuationRecord, name: string): GuestEntry {
  const e = record.guests.find((g) => g.guest.name === name);
  if (e === undefined) throw new FerryError('no_domain', `guest ${showValue(name)} is not part of this evacuation`);
  return e;
}

/** The attempt still open (started, not ended), if any. */
export function openAttempt(e: GuestEntry): Attempt | undefined {
  const last = e.attempts.at(-1);
  return last !== undefined && last.endedAtMs === undefined ? last : undefined;
}

/** Failed migrations of a guest so far (each left it on the source). */
export function failuresOf(e: GuestEntry): number {
  return e.attempts.filter((a) => a.result === 'failed').length;
}

/**
 * Marks `name`'s migration as started towards its destination.
 *
 * @throws FerryError `operation_invalid` unless it is `pending` or `retrying`
 */
export function markStarted(record: EvacuationRecord, name: string, nowMs: number): EvacuationRecord {
  const r = copy(record, nowMs);
  const e = entryOf(r, name);
  if ((e.status !== 'pending' && e.status !== 'retrying') || e.destination === undefined) {
    throw new FerryError('operation_invalid', `cannot start the migration of ${showValue(name)}: it is ${e.status}, only a pending or retrying guest starts`);
  }
  e.status = 'running';
  e.attempts.push({ destination: e.destination, startedAtMs: nowMs });
  return r;
}

/** How one migration ended, as the executor saw it. */
export type MigrationOutcome =
  /** The guest runs on the destination (`at`, when it is not the planned one). */
  | { result: 'migrated'; downtimeMs?: number; at?: string }
  /** The migration failed and the guest is still on the source, and only there. */
  | { result: 'failed'; error: string }
  /** The outcome is not known (a lost connection after the switch-over, say). */
  | { result: 'unknown'; error: string }
  /** Stopped on purpose (the user aborted the evacuation's migrations); the guest is on the source, and its destination is not to blame. */
  | { result: 'interrupted'; error: string };

/**
 * Records how `name`'s running migration ended, and applies the retry policy:
 *
 * - migrated: `done`;
 * - failed with the guest on the source: the destination is excluded for
 *   this guest and it is re-planned onto another (`retrying`), counting the
 *   memory every other guest of the plan takes there; after
 *   `retry.maxFailures` failures, or when no other host can take it, `failed`;
 * - unknown: `check`, never retried automatically;
 * - interrupted (aborted by the user): `pending` again, no host excluded.
 *
 * @throws FerryError `operation_invalid` unless it is `running`
 */
export function markEnded(record: EvacuationRecord, name: string, outcome: MigrationOutcome, nowMs: number): EvacuationRecord {
  const r = copy(record, nowMs);
  const e = entryOf(r, name);
  const attempt = openAttempt(e);
  if (e.status !== 'running' || attempt === undefined) {
    throw new FerryError('operation_invalid', `cannot end the migration of ${showValue(name)}: it is ${e.status}, not running`);
  }
  attempt.endedAtMs = nowMs;
  switch (outcome.result) {
    case 'migrated':
      attempt.result = 'migrated';
      if (outcome.downtimeMs !== undefined) attempt.downtimeMs = outcome.downtimeMs;
      if (outcome.at !== undefined && outcome.at !== e.destination) {
        e.note = `found on ${hostNameOf(r, outcome.at)}, not on the planned ${e.destination !== undefined ? hostNameOf(r, e.destination) : 'destination'}`;
        e.destination = outcome.at;
      }
      e.status = 'done';
      return r;
    case 'unknown':
      attempt.result = 'unknown';
      attempt.error = outcome.error;
      e.status = 'check';
      e.note = `the migration's outcome is unknown (${outcome.error})`;
      return r;
    case 'interrupted':
      attempt.result = 'interrupted';
      attempt.error = outcome.error;
      e.status = 'pending';
      e.note = `stopped before it moved (${outcome.error}); still on the source`;
      return r;
    case 'failed':
      attempt.result = 'failed';
      attempt.error = outcome.error;
      retryElsewhere(r, e, attempt.destination, outcome.error);
      return r;
  }
}

/** A host's name for messages, its URI when the record does not know it. */
export function hostNameOf(record: EvacuationRecord, uri: string): string {
  return uri === record.source.uri ? record.source.name : record.destinations.find((d) => d.uri === uri)?.name ?? uri;
}

/** The retry policy for a guest left on the source by a failed migration to `failedAt` (changes `e` in `r`). */
function retryElsewhere(r: EvacuationRecord, e: GuestEntry, failedAt: string, error: string): void {
  const hostName = hostNameOf(r, failedAt);
  if (!e.excluded.some((x) => x.host === failedAt)) e.excluded.push({ host: failedAt, reason: `its migration there failed: ${error}` });
  const failures = failuresOf(e);
  if (failures >= r.retry.maxFailures) {
    e.status = 'failed';
    e.note = `gave up after ${failures} failed migration${failures === 1 ? '' : 's'}; last on ${hostName}: ${error}`;
    return;
  }
  const choice = chooseDestination(e.guest, r.source, r.destinations, plannedLoads(r, e), r.options, new Map(e.excluded.map((x) => [x.host, x.reason])));
  if (!choice.ok) {
    e.status = 'failed';
    // The host that just failed it is named first; the others say their own reasons.
    const others = choice.refusals.filter((x) => x.kind !== 'source' && x.host !== failedAt);
    e.note = `failed on ${hostName} (${error})${others.length > 0 ? ` and no other host can take it: ${others.map((x) => x.message).join('; ')}` : ', the only destination'}`;
    return;
  }
  e.status = 'retrying';
  e.destination = choice.destination.uri;
  e.note = `retry after failing on ${hostName} (${error}); ${choice.why}`;
}

/** Statuses whose guest counts against its destination's memory: it is there, or on its way. */
const HOLDS_DESTINATION: ReadonlySet<GuestStatus> = new Set(['pending', 'running', 'retrying', 'done', 'check']);

/**
 * What the record sends to each destination, other than `except`: the
 * hosts' facts predate the plan, so every guest that is there or on its way
 * counts once, and a guest that failed somewhere no longer counts there.
 */
export function plannedLoads(record: EvacuationRecord, except?: GuestEntry): Map<string, PlannedLoad> {
  const loads = new Map<string, PlannedLoad>();
  for (const e of record.guests) {
    if (e === except || e.destination === undefined || !HOLDS_DESTINATION.has(e.status)) continue;
    const l = loads.get(e.destination) ?? { kib: 0, guests: 0 };
    loads.set(e.destination, { kib: l.kib + memoryNeededKiB(e.guest), guests: l.guests + 1 });
  }
  return loads;
}

/** How many guests of the evacuation are in each status: the total progress line and the report's last line. */
export function progressOf(record: EvacuationRecord): Record<GuestStatus, number> & { total: number } {
  const counts = { total: record.guests.length, pending: 0, running: 0, retrying: 0, done: 0, failed: 0, check: 0 };
  for (const e of record.guests) counts[e.status]++;
  return counts;
}

/** True when nothing is left to start or to wait for: every guest is done, failed or needs a check that no run settles by itself. */
export function isSettled(record: EvacuationRecord): boolean {
  return record.guests.every((e) => e.status === 'done' || e.status === 'failed' || (e.status === 'check' && openAttempt(e) === undefined));
}
