/**
 * An outgoing (source) migration job as this host keeps it: its phase, its
 * domain and lock, what it streams, and how it ended. The phases
 * (outgoing.ts), the job controls (job-control.ts) and the rollback after
 * the managing client went away (owner-gone.ts) share it.
 */
import type { MigrationParams } from '../flags/index.js';
import type { HostedDomain } from '../host/hosted-domain.js';
import type { AsyncJob } from '../host/job-lock.js';
import type { JobStats } from '../host/job-stats.js';
import type { StorageCookie } from './phase-messages.js';
import type { MigrationEnd } from './qemu-migration.js';
import type { DiskMirrors } from './storage-copy.js';
import type { SlotTicket } from './slots.js';
import type { ConvergenceWatch, MigrationPolicy } from './convergence.js';

/** Where a source job stands. */
export type OutgoingPhase = 'queued' | 'begun' | 'performing' | 'performed' | 'perform-failed' | 'confirmed' | 'cancelled';

/** One outgoing migration job. */
export interface OutgoingJob {
  id: string;
  domain: HostedDomain;
  flags: number;
  params: MigrationParams;
  asyncJob: AsyncJob;
  phase: OutgoingPhase;
  startedAt: number;
  wasRunning: boolean;
  stats: JobStats | null;
  abortRequested: boolean;
  /** Why the job was cancelled, when something other than `domjobabort` cancelled it (a lost destination, say). */
  abortReason?: string;
  /** The client that drives this job (managed mode) went away; the job is rolled back once it is safe. */
  ownerLost?: boolean;
  /** Stops listening for the owner's departure once the job has ended. */
  dropOwner?: () => void;
  /** Set once the migration switched to post-copy: the source never resumes after that. */
  postcopy?: boolean;
  /** POSTCOPY_RESUME: this job resumes a post-copy migration that broke after the switch. */
  resume?: boolean;
  /** `migrate-postcopy` was called. */
  postcopyRequested?: boolean;
  /** Post-copy: the rest of the stream, followed in the background after perform returned. */
  completion?: Promise<MigrationEnd>;
  /** Storage copy: the disks going, as told to the destination. */
  storage?: StorageCookie;
  /** Storage copy: the running mirrors. */
  mirrors?: DiskMirrors;
  /** The destination daemon's URI, when known: a restarted ferryd asks it how the job ended. */
  destUri?: string;
  /** This job's outgoing migration slot (see slots.ts). */
  ticket: SlotTicket;
  /** The job's journal writes, in order (a later write or the removal never overtakes an earlier one). */
  journalChain?: Promise<void>;
  /** Why the job failed, for `domjobinfo --completed`. */
  errmsg?: string;
  /** What the job does when it does not converge. */
  policy: MigrationPolicy;
  /** The downtime limit in force, ms (QEMU's; the policy and migrate-setmaxdowntime change it). */
  downtimeLimitMs?: number;
  /** The policy's warning that the migration does not converge, once given. */
  warning?: string;
  /** The running migration's convergence watch: its steps are `domjobinfo`'s policy_steps. */
  convergence?: ConvergenceWatch;
}

/** A host's outgoing jobs by id; an ended job stays a while so that late queries get an answer. */
export type OutgoingJobs = Map<string, OutgoingJob>;

/** How a destination answers "did you finish?" for a job a restarted source finds in its journal. */
export type OutcomeQuery = (destUri: string, domainUuid: string) => Promise<'finished' | 'aborted' | 'unreachable'>;
