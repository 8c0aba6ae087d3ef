/**
 * Evacuating this host (docs/evacuation.md): ferryd on the source plans
 * from what every host reports, then runs the plan (`EvacuationRun`) with
 * peer-to-peer migrations of its own, as `migrate --p2p` would, keeping the
 * record in STATE_DIR/evacuation.json after every change.
 *
 * The run lives in the daemon, not in the client that asked for it: a
 * client that goes away (Ctrl-C aside, which stops it on purpose) leaves it
 * running, and any client may follow it (`host.evacuate.status`, the
 * `host.evacuation` event). A daemon that stops mid-run leaves the record
 * unsettled; the next `host.evacuate.start` reconciles it with where the
 * hosts say each guest is, and runs on.
 *
 * How a migration that threw is counted: the hosts are asked where the
 * guest is. Only on the destination: it moved. Only on the source, and the
 * destination answered, or the source runs it (it took it back, which the
 * driver does only when the destination never resumed it): it failed and
 * may be retried elsewhere. Anything else is unknown, and never retried.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DomainDocument } from '../domain/index.js';
import { FerryError, showValue, toFerryError } from '../errors/index.js';
import {
  EvacuationRun,
  createRecord,
  evacuationGuestFromDomain,
  hostNameOf,
  isSettled,
  nextMigrations,
  parseRecord,
  placementHostFromFacts,
  planEvacuation,
  progressOf,
  reconcile,
  type EvacuationGuest,
  type EvacuationPlan,
  type EvacuationRecord,
  type GuestObservation,
  type MigrationOutcome,
  type MigrationStart,
  type Observation,
  type PlacementHost,
  type PlacementOptions,
} from '../evacuation/index.js';
import { flagsFromNames } from '../flags/index.js';
import { readHostFacts, type HostFacts } from '../host/host-facts.js';
import type { Host } from '../host/host.js';
import type { DomainSummary } from '../host/views.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { DEFAULT_POLICY, resolvePolicy } from './convergence.js';
import type { Migrations } from './host-migrations.js';

/** Another host as an evacuation asks it: what it has, and which guests it holds. */
export interface EvacuationPeer {
  facts(): Promise<HostFacts>;
  domains(): Promise<DomainSummary[]>;
  close(): void;
}

/** Opens a connection to another host's daemon (mutual TLS in production); injected by ferryd. */
export type EvacuationPeerConnector = (uri: string) => Promise<EvacuationPeer>;

/** What `host.evacuate.plan` and `host.evacuate.start` take. */
export interface EvacuationRequest extends PlacementOptions {
  /** Destination URIs, as this daemon reaches them (like a peer-to-peer migration's). */
  to: string[];
  /** Migrations in flight at once (default: this host's outgoing limit). */
  maxParallel?: number;
  /** Failed migrations of one guest before it is given up (default 3). */
  maxFailures?: number;
  /** Discard an unfinished evacuation's record and plan afresh. */
  fresh?: boolean;
  /** The convergence policy of every migration (docs/convergence.md); the host's when absent. Not kept in the record: a run that continues uses its own request's. */
  policy?: unknown;
}

/**
 * Where an evacuation is: `none` (never run here), `running`, `stopping`
 * (no new starts; the running migrations end by themselves), `aborting`,
 * `ended` (every guest settled), `interrupted` (stopped before the end, by
 * the user or a daemon restart: `host.evacuate.start` continues it).
 */
export type EvacuationState = 'none' | 'running' | 'stopping' | 'aborting' | 'ended' | 'interrupted';

/** A migration of the evacuation in flight, with the source's job figures. */
export interface EvacuationInFlight {
  name: string;
  destination: string;
  attempt: number;
  dataTotal?: number;
  dataRemaining?: number;
  dataProcessed?: number;
}

/** What `host.evacuate.*` answer. */
export interface EvacuationStatus {
  state: EvacuationState;
  record: EvacuationRecord | null;
  inFlight: EvacuationInFlight[];
  /** The most migrations the current (or last) run had in flight at once. */
  maxInFlight: number;
  /** The current run's limit of migrations at once. */
  maxParallel: number | null;
  /** Set when `start` continued an unfinished record rather than planning afresh. */
  continued?: boolean;
  /** Set in `start`'s answer when the evacuation was already running (the caller follows it). */
  attached?: boolean;
  /** When the current (or last) run of this daemon started and ended (ms since the epoch); absent before any run. */
  startedAtMs?: number;
  endedAtMs?: number;
}

const RECORD_FILE = 'evacuation.json';
const LIVE = flagsFromNames(['LIVE', 'PEER2PEER']);
const OFFLINE = flagsFromNames(['OFFLINE', 'PEER2PEER']);
const PERSISTENT = flagsFromNames(['PERSIST_DEST', 'UNDEFINE_SOURCE']);
const UNSAFE = flagsFromNames(['UNSAFE']);

/** The evacuations of one host (one at a time). */
export class Evacuations {
  private run: EvacuationRun | undefined;
  private last: EvacuationRecord | null = null;
  private lastMaxInFlight = 0;
  private maxParallel: number | null = null;
  private continued = false;
  private policy: unknown;
  private runStartedAtMs: number | undefined;
  private starting = false;
  private runEndedAtMs: number | undefined;

  constructor(
    private readonly host: Host,
    private readonly migrations: Migrations,
    private readonly connect: EvacuationPeerConnector,
    private readonly log: (msg: string) => void,
  ) {}

  private get file(): string {
    return join(this.host.config.stateDir, RECORD_FILE);
  }

  /** The key of this host in plans and records. */
  private get self(): string {
    return `ferry://${this.host.config.identity.hostName}/system`;
  }

  /** Reads the last record at start; an unfinished one waits for `start` to continue it. */
  async load(): Promise<void> {
    if (!existsSync(this.file)) return;
    try {
      this.last = parseRecord(JSON.parse(await readFile(this.file, 'utf8')));
    } catch (err) {
      this.log(`evacuation record ${this.file} cannot be read, ignored: ${toFerryError(err).message}`);
      return;
    }
    if (!isSettled(this.last)) {
      const p = progressOf(this.last);
      this.log(`an evacuation of this host stopped before its end (${p.done} of ${p.total} moved); 'ferry evacuate' with the same destinations continues it`);
    }
  }

  /** The plan for `req`, changing nothing. */
  async plan(req: EvacuationRequest): Promise<EvacuationPlan> {
    return (await this.freshPlan(checkRequest(req))).plan;
  }

  /**
   * Starts an evacuation, continues an unfinished one (its destinations
   * must be the ones given, unless `fresh`), or, when one runs with the same
   * destinations, answers its status so that the caller follows it.
   */
  async start(raw: EvacuationRequest): Promise<EvacuationStatus> {
    const req = checkRequest(raw);
    if (this.run !== undefined && this.run.state !== 'ended') {
      if (!sameSet(this.run.record.destinations.map((d) => d.uri), req.to)) {
        throw new FerryError('operation_invalid', `an evacuation of this host to ${this.run.record.destinations.map((d) => d.uri).join(', ')} is running; stop it first ('ferry evacuate-stop') or follow it with the same --to`);
      }
      return { ...this.status(), attached: true };
    }
    // Planning asks every destination: a second start meanwhile would plan the same guests again.
    if (this.starting) throw new FerryError('resource_busy', 'an evacuation of this host is being planned; follow it with evacuate-status, or try again in a moment');
    this.starting = true;
    try {
      return await this.begin(req);
    } finally {
      this.starting = false;
    }
  }

  /** Plans or continues, stores the record, and starts the run (one at a time: see `start`). */
  private async begin(req: EvacuationRequest): Promise<EvacuationStatus> {
    const maxParallel = req.maxParallel ?? this.migrations.outgoing.slots.limit;
    let record: EvacuationRecord;
    this.continued = false;
    // An unfinished record, or one that ended with guests to check (what the user runs again for), is continued.
    if (this.last !== null && (!isSettled(this.last) || this.last.guests.some((e) => e.status === 'check')) && !req.fresh) {
      const dests = this.last.destinations.map((d) => d.uri);
      if (!sameSet(dests, req.to)) {
        throw new FerryError('operation_invalid', `an unfinished evacuation of this host to ${dests.join(', ')} exists; continue it with the same --to, or plan afresh with --fresh`);
      }
      record = reconcile(this.last, await this.observe(this.last), Date.now());
      this.continued = true;
    } else {
      const { plan, source, destinations } = await this.freshPlan(req);
      record = createRecord(plan, source, destinations, Date.now(), req.maxFailures !== undefined ? { maxFailures: req.maxFailures } : {});
    }
    // The scheduler's and the policy's own checks, before anything is stored or started.
    nextMigrations({ record, maxParallel, stopping: true });
    resolvePolicy(req.policy, DEFAULT_POLICY);
    this.policy = req.policy;
    await this.save(record);
    this.last = record;
    this.maxParallel = maxParallel;
    const run: EvacuationRun = new EvacuationRun(record, { maxParallel: this.maxParallel }, {
      migrate: (s): Promise<MigrationOutcome> => this.migrateOne(run, s),
      abort: (s) => this.migrations.jobControl.abort(s.uuid),
      save: (r) => this.save(r),
      now: () => Date.now(),
      log: this.log,
      changed: () => this.announce(),
    });
    this.run = run;
    this.runStartedAtMs = Date.now();
    this.runEndedAtMs = undefined;
    const p = progressOf(record);
    this.log(`evacuation ${this.continued ? 'continues' : 'starts'}: ${p.total} guest${p.total === 1 ? '' : 's'} (${p.done} done, ${p.failed} failed, ${p.check} to check), to ${record.destinations.map((d) => d.name).join(', ')}, at most ${this.maxParallel} at once`);
    void run.run().then(
      (final) => {
        this.last = final;
        this.lastMaxInFlight = run.maxInFlight;
        this.runEndedAtMs = Date.now();
        const q = progressOf(final);
        this.log(`evacuation ${isSettled(final) ? 'ended' : 'stopped'}: ${q.done} of ${q.total} moved, ${q.failed} failed, ${q.check} to check, ${q.pending + q.retrying} not started`);
        this.announce();
      },
      (err) => this.log(`evacuation failed: ${toFerryError(err).message}`),
    );
    return this.status();
  }

  /** The current or last evacuation, with the running migrations' figures. */
  status(): EvacuationStatus {
    const run = this.run;
    const record = run?.record ?? this.last;
    const active = run !== undefined && run.state !== 'ended';
    const state: EvacuationState = active ? run.state : record === null ? 'none' : isSettled(record) ? 'ended' : 'interrupted';
    const inFlight = (active ? run.inFlight : []).map((s) => ({ name: s.name, destination: s.destination, attempt: s.attempt, ...this.jobFigures(s.uuid) }));
    return {
      state,
      record,
      inFlight,
      maxInFlight: run?.maxInFlight ?? this.lastMaxInFlight,
      maxParallel: this.maxParallel,
      ...(this.continued ? { continued: true } : {}),
      ...(this.runStartedAtMs !== undefined ? { startedAtMs: this.runStartedAtMs } : {}),
      ...(this.runEndedAtMs !== undefined ? { endedAtMs: this.runEndedAtMs } : {}),
    };
  }

  /** Stops the running evacuation: no new starts; with `abort` the running migrations are aborted too. */
  stop(abort: boolean): EvacuationStatus {
    const run = this.run;
    if (run === undefined || run.state === 'ended') throw new FerryError('operation_invalid', 'no evacuation of this host is running');
    this.log(`evacuation: stop requested${abort ? ', aborting the running migrations' : '; the running migrations finish'}`);
    run.stop(abort);
    return this.status();
  }

  private jobFigures(uuid: string): Partial<EvacuationInFlight> {
    try {
      const s = this.migrations.jobControl.jobInfo(uuid, false);
      return {
        ...(s.data_total !== undefined ? { dataTotal: s.data_total } : {}),
        ...(s.data_remaining !== undefined ? { dataRemaining: s.data_remaining } : {}),
        ...(s.data_processed !== undefined ? { dataProcessed: s.data_processed } : {}),
      };
    } catch {
      return {};
    }
  }

  private announce(): void {
    const st = this.status();
    const p = st.record ? progressOf(st.record) : { total: 0, done: 0, failed: 0, check: 0, running: 0 };
    this.host.events.evacuation({ host: this.host.config.identity.hostName, state: st.state, total: p.total, done: p.done, failed: p.failed, check: p.check, running: p.running });
  }

  private async save(record: EvacuationRecord): Promise<void> {
    await writeFileAtomic(this.file, `${JSON.stringify(record)}\n`);
  }

  /** The plan from what every host reports now. */
  private async freshPlan(req: EvacuationRequest): Promise<{ plan: EvacuationPlan; source: PlacementHost; destinations: PlacementHost[] }> {
    const load = { outgoing: this.migrations.outgoing.slots.load, incoming: this.migrations.incoming.slots.load };
    const source = placementHostFromFacts(this.self, await readHostFacts(this.host, load));
    const destinations: PlacementHost[] = [];
    for (const uri of req.to) destinations.push(placementHostFromFacts(uri, await this.askPeer(uri, (p) => p.facts())));
    const guests: EvacuationGuest[] = [];
    for (const d of this.host.registry.all()) {
      if (d.active) guests.push(evacuationGuestFromDomain(d.currentDoc.def, 'running', this.self));
      else if (d.persistentDoc !== null) guests.push(evacuationGuestFromDomain(d.persistentDoc.def, 'inactive', this.self));
    }
    const options: PlacementOptions = {
      ...(req.includeInactive !== undefined ? { includeInactive: req.includeInactive } : {}),
      ...(req.unsafe !== undefined ? { unsafe: req.unsafe } : {}),
      ...(req.headroomPercent !== undefined ? { headroomPercent: req.headroomPercent } : {}),
      ...(req.headroomMiB !== undefined ? { headroomMiB: req.headroomMiB } : {}),
    };
    return { plan: planEvacuation(source, guests, destinations, options), source, destinations };
  }

  private async askPeer<T>(uri: string, ask: (p: EvacuationPeer) => Promise<T>): Promise<T> {
    let peer: EvacuationPeer;
    try {
      peer = await this.connect(uri);
    } catch (err) {
      const e = toFerryError(err);
      throw new FerryError(e.code, `cannot reach destination ${uri}: ${e.message}`, { cause: err });
    }
    try {
      return await ask(peer);
    } finally {
      peer.close();
    }
  }

  /** One migration of the evacuation, and how it ended. */
  private async migrateOne(run: EvacuationRun, s: MigrationStart): Promise<MigrationOutcome> {
    const d = this.host.registry.getByUuid(s.uuid);
    if (d === undefined) return { result: 'unknown', error: 'the guest is no longer defined on the source' };
    const flags = (s.offline ? OFFLINE : LIVE) | (d.persistent ? PERSISTENT : 0) | (run.record.options.unsafe ? UNSAFE : 0);
    await this.resumeIfLeftByUnknownOutcome(run, s);
    try {
      const out = await this.migrations.migratePeerToPeer(s.uuid, s.destination, { flags, params: {}, ...(this.policy !== undefined ? { policy: this.policy } : {}) });
      return { result: 'migrated', ...(out.finish.downtimeMs !== undefined ? { downtimeMs: out.finish.downtimeMs } : {}) };
    } catch (err) {
      const error = toFerryError(err).message;
      const entry = run.record.guests.find((g) => g.guest.uuid === s.uuid);
      if (entry === undefined) return { result: 'unknown', error };
      const seen = (await this.observe(run.record, [s.destination])).guests[s.uuid];
      const where = seen?.hosts ?? [];
      if (where.length === 1 && where[0] === s.destination) return { result: 'migrated', at: s.destination };
      if (where.length === 1 && where[0] === this.self) {
        const destAnswered = seen?.unreachable !== true;
        const here = this.host.registry.getByUuid(s.uuid);
        const runsHere = s.offline || (here?.active === true && here.status.state === 'running');
        if (destAnswered || runsHere) return { result: 'failed', error };
      }
      const at = where.length === 0 ? 'no host' : where.map((u) => hostNameOf(run.record, u)).join(' and ');
      return { result: 'unknown', error: `${error}; afterwards found on ${at}` };
    }
  }

  /**
   * A guest whose earlier migration ended with an unknown outcome was left
   * paused here (`paused (migrating)`) so that it could not run twice. The
   * scheduler starts it again only after `reconcile` found it here and on
   * no destination, every destination answering: then it is this copy or
   * none, and it is resumed first (QEMU migrates no guest it paused for an
   * earlier migration), as the unknown outcome's message tells a user to.
   */
  private async resumeIfLeftByUnknownOutcome(run: EvacuationRun, s: MigrationStart): Promise<void> {
    const d = this.host.registry.getByUuid(s.uuid);
    const entry = run.record.guests.find((g) => g.guest.uuid === s.uuid);
    if (s.offline || d === undefined || !d.active || d.status.state !== 'paused' || d.status.reason !== 'migrating') return;
    if (entry === undefined || !entry.attempts.some((a) => a.result === 'unknown') || this.migrating(s.uuid)) return;
    this.log(`evacuation: resuming '${d.name}': an earlier migration of it ended with an unknown outcome, and no destination has it`);
    await this.host.lifecycle.resume(s.uuid);
  }

  /**
   * Where each guest of `record` is: on this host, and on each destination
   * (all of the record's, or `only` those). A running guest counts where it
   * is active; an inactive one where it is defined.
   */
  private async observe(record: EvacuationRecord, only?: readonly string[]): Promise<Observation & { guests: Record<string, GuestObservation & { unreachable?: boolean }> }> {
    const found = new Map<string, string[]>();
    const add = (uuid: string, uri: string) => found.set(uuid, [...(found.get(uuid) ?? []), uri]);
    const wanted = new Map(record.guests.map((e) => [e.guest.uuid, e.guest.state]));
    for (const e of record.guests) {
      const d = this.host.registry.getByUuid(e.guest.uuid);
      if (d !== undefined && (e.guest.state === 'running' ? d.active : true)) add(e.guest.uuid, this.self);
    }
    const unreachable: string[] = [];
    for (const dest of record.destinations.filter((h) => only === undefined || only.includes(h.uri))) {
      try {
        const list = await this.askPeer(dest.uri, (p) => p.domains());
        for (const s of list) {
          const state = wanted.get(s.uuid);
          if (state !== undefined && (state === 'running' ? s.id !== null : true)) add(s.uuid, dest.uri);
        }
      } catch (err) {
        this.log(`evacuation: cannot ask ${dest.name} where its guests are: ${toFerryError(err).message}`);
        unreachable.push(dest.uri);
      }
    }
    const guests: Record<string, GuestObservation & { unreachable?: boolean }> = {};
    for (const e of record.guests) {
      const entryDest = e.attempts.at(-1)?.destination ?? e.destination;
      guests[e.guest.uuid] = {
        hosts: found.get(e.guest.uuid) ?? [],
        migrating: this.migrating(e.guest.uuid),
        ...(entryDest !== undefined && unreachable.includes(entryDest) ? { unreachable: true } : {}),
      };
    }
    return { guests, unreachable };
  }

  /** Whether this host runs a migration job of the guest now. */
  private migrating(uuid: string): boolean {
    try {
      return this.migrations.jobControl.jobInfo(uuid, false).type !== 'None';
    } catch {
      return false;
    }
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');
}

/** The request's untrusted fields checked. */
function checkRequest(raw: EvacuationRequest): EvacuationRequest {
  const r = raw as unknown as Record<string, unknown>;
  if (!Array.isArray(r.to) || r.to.length === 0 || !r.to.every((u) => typeof u === 'string' && u !== '')) {
    throw new FerryError('invalid_arg', 'evacuate needs at least one destination URI (--to URI)');
  }
  if (new Set(r.to).size !== r.to.length) throw new FerryError('invalid_arg', 'a destination is given twice');
  for (const key of ['includeInactive', 'unsafe', 'fresh'] as const) {
    if (r[key] !== undefined && typeof r[key] !== 'boolean') throw new FerryError('invalid_arg', `parameter '${key}' must be true or false`);
  }
  // Only the types here: the ranges are the planner's, the record's and the scheduler's own checks.
  for (const key of ['maxParallel', 'maxFailures', 'headroomPercent', 'headroomMiB'] as const) {
    if (r[key] !== undefined && typeof r[key] !== 'number') throw new FerryError('invalid_arg', `parameter '${key}' must be a number, not ${showValue(r[key])}`);
  }
  return raw;
}
