/**
 * The native protocol's messages and methods: what a client may call, with
 * the shape of its parameters and result. Client and server both read this
 * file, so a method's contract is written once.
 */
import { FerryError, plainText, type ErrorPayload } from '../errors/index.js';
import type { DomainState } from '../domain/lifecycle-state.js';
import type { DomainInfo, DomainSummary, ListFilter } from '../host/views.js';
import type { LifecycleEvent } from '../host/events.js';
import type { JobStats } from '../host/job-stats.js';
import type { DirtyRateMode, DirtyRateStarted } from '../host/dirty-rate.js';
import type {
  BeginResult,
  ConfirmArgs,
  FinishArgs,
  FinishResult,
  IncomingJobState,
  MigrationRequest,
  PerformArgs,
  PerformResult,
  PrepareArgs,
  PrepareResult,
} from '../migration/phase-messages.js';
import type { MigrationForecast } from '../migration/forecast-inputs.js';
import type { HostFacts } from '../host/host-facts.js';
import type { MaintenanceStatus } from '../host/maintenance.js';
import type { EvacuationPlan } from '../evacuation/index.js';
import type { EvacuationRequest, EvacuationStatus } from '../migration/evacuations.js';

export type { DomainInfo, DomainSummary, ListFilter, LifecycleEvent, DirtyRateMode, DirtyRateStarted, HostFacts, MaintenanceStatus, EvacuationPlan, EvacuationRequest, EvacuationStatus };

/** Protocol version, sent in `connect.hello`; bump on incompatible change (2: keepalive pings). */
export const PROTOCOL_VERSION = 2;

/** A client's request. */
export interface CallMessage {
  type: 'call';
  id: number;
  method: string;
  params?: Record<string, unknown>;
}

/** The server's answer to one call. */
export type ReplyMessage =
  | { type: 'reply'; id: number; result: unknown }
  | { type: 'reply'; id: number; error: ErrorPayload };

/** An unsolicited event, sent to connections that subscribed. */
export interface EventMessage {
  type: 'event';
  event: string;
  data: unknown;
}

/**
 * Keepalive (see keepalive.ts): either end may ping after a silent
 * interval; the other answers with a pong at once.
 */
export interface PingMessage {
  type: 'ping';
}

/** The answer to a {@link PingMessage}. */
export interface PongMessage {
  type: 'pong';
}

/** A domain lookup: by name, UUID or numeric id, as virsh accepts them. */
export interface DomainRef {
  domain: string;
}

/** The host's identity, returned by `connect.hello`. */
export interface HostIdentity {
  hostName: string;
  hostUuid: string;
  protocolVersion: number;
  version: string;
}

/**
 * Refuses a daemon whose `connect.hello` names another protocol version
 * than this program speaks: its messages may have another shape or meaning
 * (a version 1 daemon, for one, closes a connection that pings it). Called
 * by every client that drives a migration: the CLI (managed mode) for both
 * daemons, and a source daemon for its destination (peer-to-peer).
 *
 * @param who the daemon's role for the message, e.g. `the destination daemon`
 * @throws FerryError `rpc`, naming both versions
 */
export function requireProtocolVersion(hello: Pick<HostIdentity, 'hostName' | 'protocolVersion' | 'version'>, who: string): void {
  if (hello.protocolVersion === PROTOCOL_VERSION) return;
  const release = typeof hello.version === 'string' ? ` (Ferry ${plainText(hello.version)})` : '';
  throw new FerryError(
    'rpc',
    `${who} on '${plainText(String(hello.hostName))}'${release} speaks native protocol version ${String(hello.protocolVersion)}, but this program speaks version ${PROTOCOL_VERSION}; run the same Ferry release on both ends`,
  );
}

/** One domain's statistics (`domstats`), with libvirt's field names, e.g. `dirtyrate.megabytes_per_second`. */
export interface DomainStatsResult {
  domain: string;
  uuid: string;
  stats: Record<string, number | string>;
}

/**
 * Parameters of `domain.stats`: the domains (names, ids or UUIDs; all the
 * host's, active or not, when omitted) and the groups wanted (all that
 * ferryd has when none is set; see src/host/domain-stats.ts).
 */
export interface DomainStatsParams {
  domains?: string[];
  state?: boolean;
  dirtyrate?: boolean;
}

/** Method table of a host's domains: parameter and result types of each call. */
export interface HostApiMethods {
  'connect.hello': { params: Record<string, never>; result: HostIdentity };
  'domain.list': { params: ListFilter; result: DomainSummary[] };
  'domain.define': { params: { xml: string }; result: DomainSummary };
  'domain.undefine': { params: DomainRef; result: DomainSummary };
  'domain.create': { params: { xml: string; paused?: boolean; autodestroy?: boolean }; result: DomainSummary };
  'domain.start': { params: DomainRef & { paused?: boolean }; result: DomainSummary };
  'domain.destroy': { params: DomainRef & { graceful?: boolean }; result: DomainSummary };
  'domain.shutdown': { params: DomainRef; result: DomainSummary };
  'domain.suspend': { params: DomainRef; result: DomainSummary };
  'domain.resume': { params: DomainRef; result: DomainSummary };
  'domain.info': { params: DomainRef; result: DomainInfo };
  'domain.state': { params: DomainRef; result: { state: DomainState; reason: string } };
  'domain.xml': { params: DomainRef & { inactive?: boolean }; result: { xml: string } };
  'domain.autostart': { params: DomainRef & { enable: boolean }; result: DomainSummary };
  'domain.consoleLog': { params: DomainRef & { maxBytes?: number }; result: { text: string; path: string } };
  'domain.qemuMonitorCommand': { params: DomainRef & { command: string; hmp?: boolean }; result: { return: unknown } };
  /** `domdirtyrate-calc`: starts measuring a running domain's memory dirty rate over `seconds` (1-60); the result comes in `domain.stats`. */
  'domain.dirtyRateCalc': { params: DomainRef & { seconds: number; mode?: DirtyRateMode }; result: DirtyRateStarted };
  /** `domstats`: statistics by group, libvirt's field names. */
  'domain.stats': { params: DomainStatsParams; result: DomainStatsResult[] };
  'events.subscribe': { params: Record<string, never>; result: { subscribed: true } };
}

/** What `domain.migrate` (peer-to-peer) answers: the guest as the destination reports it. */
export interface PeerToPeerResult {
  /** The guest's name on the destination (after `destination_name`). */
  domain: string;
  state: string;
  reason: string;
  persistent: boolean;
  /** The source's statistics with the downtime finish measured; null for OFFLINE. */
  stats: JobStats | null;
  /** Set when the source could not clean up after success (the guest runs on the destination). */
  warning: string | null;
}

/**
 * Method table of migration: the five phases (see src/migration/phase-messages.ts),
 * called by a managing client or a peer daemon, the destination's tunnel and
 * outcome calls, peer-to-peer `domain.migrate`, and the job controls.
 */
export interface MigrationApiMethods {
  /** Source: check the request, lock the guest, queue for a slot; answers the XML and cookie for prepare. */
  'migration.begin': { params: DomainRef & MigrationRequest & { destUri?: string }; result: BeginResult };
  /** Destination: start QEMU waiting for the stream. */
  'migration.prepare': { params: PrepareArgs; result: PrepareResult };
  /** Source: stream to the prepared URI and follow it to its end. */
  'migration.perform': { params: PerformArgs; result: PerformResult };
  /** Destination: wait for the stream, persist if asked, resume unless PAUSED; or clean up when cancelled. */
  'migration.finish': { params: FinishArgs; result: FinishResult };
  /** Source: stop the guest after success, or take it back after a failure. */
  'migration.confirm': { params: ConfirmArgs; result: { confirmed: true } };
  /** Source: cancel a job that is still streaming (its perform then fails). */
  'migration.cancel': { params: { jobId: string; reason?: string }; result: { cancelled: true } };
  /** Destination: after the answer the connection carries job `jobId`'s stream only (TUNNELLED). */
  'migration.tunnelAttach': { params: { jobId: string; channel?: 'migration' | 'nbd' }; result: { attached: true } };
  /** Destination: abort an incoming job unless it finished; with only `domainUuid`, answer from the domain's state. */
  'migration.abortIncoming': { params: { jobId: string; domainUuid?: string }; result: { state: IncomingJobState } };
  /** Destination: listen once for a measurement of the path from a source (see bandwidth-probe.ts). */
  'migration.probeBandwidth': { params: Record<string, never>; result: { port: number } };
  /** Source: forecast a migration of a running guest (`migrate --dry-run`); migrates nothing. */
  'domain.migrateForecast': { params: DomainRef & MigrationRequest & { destUri?: string }; result: MigrationForecast };
  /** Source: run all five phases against `destUri` (PEER2PEER). */
  'domain.migrate': { params: DomainRef & MigrationRequest & { destUri: string }; result: PeerToPeerResult };
  /** `domjobinfo`: the running job's statistics, or with `completed` the last finished job's. */
  'domain.jobInfo': { params: DomainRef & { completed?: boolean }; result: JobStats };
  /** `domjobabort`; with `postcopy`, pause a migration in its post-copy phase instead. */
  'domain.jobAbort': { params: DomainRef & { postcopy?: boolean }; result: { aborted: true } };
  /** `migrate-postcopy`. */
  'domain.migrateStartPostcopy': { params: DomainRef; result: { ok: true } };
  /** `migrate-setmaxdowntime`, in ms. */
  'domain.migrateSetMaxDowntime': { params: DomainRef & { downtime: number }; result: { ok: true } };
  /** `migrate-getmaxdowntime`, in ms. */
  'domain.migrateGetMaxDowntime': { params: DomainRef; result: { downtime: number } };
  /** `migrate-setspeed`, in MiB/s (0: no limit). */
  'domain.migrateSetSpeed': { params: DomainRef & { bandwidth: number }; result: { ok: true } };
  /** `migrate-getspeed`, in MiB/s. */
  'domain.migrateGetSpeed': { params: DomainRef; result: { bandwidth: number } };
}

/** The answer of the `host.maintenance.*` calls: the state, the host's name, and the incoming migrations admitted before maintenance began and still under way (they are not stopped). */
export interface HostMaintenance extends MaintenanceStatus {
  hostName: string;
  incomingUnderWay: number;
}

/**
 * Method table of the host itself (src/api/host-handlers.ts): the facts a
 * placement decision needs, maintenance mode (docs/hosts.md), and
 * evacuation (docs/evacuation.md).
 */
export interface HostStateApiMethods {
  /** `hostfacts`, `nodeinfo`, `nodememstats`, `freecell`: CPU, memory, guests, maintenance, migration load. */
  'host.facts': { params: Record<string, never>; result: HostFacts };
  /** `maintenance status`. */
  'host.maintenance.status': { params: Record<string, never>; result: HostMaintenance };
  /** `maintenance enable [--reason TEXT]`: no new starts or incoming migrations from the answer on; persisted first. */
  'host.maintenance.enable': { params: { reason?: string }; result: HostMaintenance };
  /** `maintenance disable`. */
  'host.maintenance.disable': { params: Record<string, never>; result: HostMaintenance };
  /** `evacuate --dry-run`: the plan for emptying this host onto `to`, from what every host reports; changes nothing. */
  'host.evacuate.plan': { params: EvacuationRequest; result: EvacuationPlan };
  /** `evacuate`: starts emptying this host (run by this daemon), continues an unfinished evacuation, or answers the running one's status. */
  'host.evacuate.start': { params: EvacuationRequest; result: EvacuationStatus };
  /** `evacuate-status`: the running or last evacuation, with the running migrations' figures. */
  'host.evacuate.status': { params: Record<string, never>; result: EvacuationStatus };
  /** `evacuate-stop [--abort]`: no new migrations start; with `abort` the running ones are aborted (their guests stay here). */
  'host.evacuate.stop': { params: { abort?: boolean }; result: EvacuationStatus };
}

/** Method table of the HTTP listener (src/http/): what `ferry dashboard` asks. */
export interface DashboardApiMethods {
  /** `dashboard`: where the HTTP listener is and the token that lets a page act (a client of this API may do everything anyway). */
  'host.dashboard': { params: Record<string, never>; result: { url: string; token: string } };
}

/** Method table: parameter and result types of every call. */
export interface ApiMethods extends HostApiMethods, MigrationApiMethods, HostStateApiMethods, DashboardApiMethods {}

/** A method name. */
export type ApiMethod = keyof ApiMethods;
/** A method of the host's domains (src/api/handlers.ts). */
export type HostApiMethod = keyof HostApiMethods;
/** A method of migration (src/api/migration-handlers.ts). */
export type MigrationApiMethod = keyof MigrationApiMethods;
/** A method of the HTTP listener (src/http/server.ts). */
export type DashboardApiMethod = keyof DashboardApiMethods;
/** A method of the host itself (src/api/host-handlers.ts). */
export type HostStateApiMethod = keyof HostStateApiMethods;
