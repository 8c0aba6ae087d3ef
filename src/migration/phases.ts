/**
 * The five phases' messages: what begin, prepare, perform, finish and
 * confirm take and give. Both the managed driver (in the CLI) and the
 * peer-to-peer driver (in the source daemon) speak exactly these.
 */
import type { JobStats } from '../host/job-stats.js';

/** Version of the cookie format; bump on incompatible change. */
export const COOKIE_VERSION = 1;

/** A host as cookies name it. */
export interface CookieHost {
  hostName: string;
  hostUuid: string;
}

/** What begin hands to the destination, through the driver. */
export interface MigrationCookie {
  version: typeof COOKIE_VERSION;
  /** The source host, so the destination can refuse a migration to itself. */
  source: CookieHost;
  /** Source job id, for logs and outcome queries. */
  jobId: string;
  domain: { name: string; uuid: string };
  /** The definition to make persistent on the destination (PERSIST_DEST), already chosen by precedence. */
  persistentXml?: string;
  /** Whether the guest ran (rather than was paused) on the source when the job began. */
  wasRunning: boolean;
}

/** A migration request as the driver receives it. */
export interface MigrationRequest {
  flags: number;
  params: Record<string, unknown>;
}

/** begin's answer. */
export interface BeginResult {
  jobId: string;
  /** The domain XML the destination starts from. */
  xml: string;
  cookie: MigrationCookie;
}

/** prepare's arguments. */
export interface PrepareArgs extends MigrationRequest {
  xml: string;
  cookie: MigrationCookie;
}

/** prepare's answer. */
export interface PrepareResult {
  /** Destination job id, for finish. */
  jobId: string;
  /** Where the destination QEMU listens, e.g. `tcp:10.0.0.2:49152`; `tcp:*:PORT` when it listens on every address. */
  migrateUri: string;
  destination: CookieHost;
  /** The domain's name on the destination (after `destination_name`). */
  domainName: string;
}

/** perform's arguments. */
export interface PerformArgs {
  jobId: string;
  migrateUri: string;
}

/** perform's answer. */
export interface PerformResult {
  stats: JobStats;
  /** When the source's vCPUs stopped for the switch-over (epoch ms), to measure downtime. */
  sourceStoppedAt?: number;
}

/** finish's arguments. */
export interface FinishArgs {
  jobId: string;
  /** True when perform failed: the destination only cleans up. */
  cancelled: boolean;
  /** Source statistics, so the destination's completed job shows the same downtime. */
  sourceStats?: JobStats;
  /** From perform: when the source stopped (epoch ms). */
  sourceStoppedAt?: number;
}

/** finish's answer. */
export interface FinishResult {
  /** Guest-visible downtime in ms: from the source's stop to the destination's resume (libvirt measures it the same way). */
  downtimeMs?: number;
  domainName: string;
  state: string;
  reason: string;
  persistent: boolean;
}

/** confirm's arguments. */
export interface ConfirmArgs {
  jobId: string;
  /** True when the migration failed: the source takes its guest back. */
  cancelled: boolean;
  /** Downtime measured by finish, recorded in the source's completed job. */
  downtimeMs?: number;
}

/** What a destination says about one of its incoming jobs (for an unknown outcome). */
export type IncomingJobState = 'prepared' | 'finishing' | 'finished' | 'aborted' | 'unknown';
