/**
 * The five phases' messages: what begin, prepare, perform, finish and
 * confirm take and give. Both the managed driver (in the CLI) and the
 * peer-to-peer driver (in the source daemon) speak exactly these.
 */
import { FerryError, plainText, showValue } from '../errors/index.js';
import type { JobStats } from '../host/job-stats.js';

/**
 * Version of the cookie format; bump on incompatible change. A destination
 * refuses a cookie of any other version ({@link requireKnownCookie}).
 */
export const COOKIE_VERSION = 1;

/**
 * Refuses a migration cookie whose format version this host does not know
 * (a source running another Ferry release): the destination would
 * otherwise read fields that mean something else, or miss ones it needs.
 *
 * @throws FerryError `operation_unsupported`, naming both versions
 */
export function requireKnownCookie(cookie: { version?: unknown; source?: { hostName?: unknown } }): void {
  if (cookie.version === COOKIE_VERSION) return;
  const theirs = cookie.version === undefined ? 'no version' : `version ${showValue(cookie.version)}`;
  const source = typeof cookie.source?.hostName === 'string' ? `host ${plainText(cookie.source.hostName)}` : 'the source host';
  throw new FerryError(
    'operation_unsupported',
    `cannot take this migration: ${source} sent a migration cookie of ${theirs}, but this host reads only version ${COOKIE_VERSION}; run the same Ferry release on both hosts`,
  );
}

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
  /** NON_SHARED_DISK / NON_SHARED_INC: the disks the source will copy, as the destination must prepare them. */
  storage?: StorageCookie;
  /** A host-passthrough guest: the source host's CPU features (sorted), for the destination to compare with its own. */
  hostCpu?: string[];
}

/** The disks of a storage copy, described by the source for the destination. */
export interface StorageCookie {
  /** 'full' copies whole images (NON_SHARED_DISK), 'top' only the top layer (NON_SHARED_INC). */
  sync: 'full' | 'top';
  disks: StorageDiskInfo[];
}

/** One disk a storage copy moves. */
export interface StorageDiskInfo {
  /** `<target dev>`, e.g. vda. */
  target: string;
  /** Format of the top image (raw or qcow2). */
  format: string;
  /** Virtual size of the disk in bytes. */
  capacity: number;
  /** The image below the top one, which an incremental copy expects to find on the destination. */
  backing?: { path: string; format: string; capacity: number };
  /**
   * Identity of the source's top image file: a destination sharing the
   * source's kernel (hosts as network namespaces of one machine) refuses to
   * copy a disk onto the very file the source runs from.
   */
  file?: { bootId: string; dev: number; ino: number };
}

/** Where the destination's NBD server takes the disk copies. */
export interface NbdTarget {
  /** 'tunnel': through the daemons' connection (TUNNELLED); the source daemon relays it. */
  transport: 'tcp' | 'unix' | 'tunnel';
  /** tcp: the address; '*' when the server listens on every address. */
  host?: string;
  port?: number;
  /** unix: the socket path. */
  path?: string;
  /** Export name of each disk, by target. */
  exports: Record<string, string>;
  /** The server expects TLS (the TLS flag). */
  tls: boolean;
}

/** A migration request as the driver receives it. */
export interface MigrationRequest {
  flags: number;
  params: Record<string, unknown>;
  /** What the source does when the migration does not converge (see convergence.ts); the host's default when absent. */
  policy?: unknown;
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
  /** Storage copy: the NBD server the destination started. */
  nbd?: NbdTarget;
}

/** perform's arguments. */
export interface PerformArgs {
  jobId: string;
  migrateUri: string;
  /** Storage copy: where to mirror the disks (a tcp target with a concrete host, or a unix socket). */
  nbd?: NbdTarget;
}

/** perform's answer. */
export interface PerformResult {
  stats: JobStats;
  /** When the source's vCPUs stopped for the switch-over (epoch ms), to measure downtime. */
  sourceStoppedAt?: number;
  /**
   * The stream is in its post-copy phase: the rest of the memory follows
   * after finish, and confirm waits for it, so a failure in confirm is the
   * migration's own failure, not only a clean-up problem.
   */
  postcopy?: boolean;
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
  /**
   * Set (with `cancelled`) when nobody can tell whether the destination
   * resumed the guest: the source ends its job but leaves the guest paused,
   * and records this sentence as the job's error.
   */
  outcomeUnknown?: string;
  /** Downtime measured by finish, recorded in the source's completed job. */
  downtimeMs?: number;
}

/** What a destination says about one of its incoming jobs (for an unknown outcome). */
export type IncomingJobState = 'prepared' | 'finishing' | 'finished' | 'aborted' | 'unknown';
