/**
 * The rollback of an outgoing job whose managing client went away. In
 * managed mode the client drives the phases, so without it nobody would
 * ever confirm the job: the source rolls it back as far as is safe.
 */
import type { OutcomeQuery, OutgoingJob } from './outgoing-job.js';
import type { ConfirmArgs } from './phase-messages.js';

/** What the rollback needs of the source side. */
export interface OwnerGoneDeps {
  log: (msg: string) => void;
  /** Asks the destination whether it runs the guest. */
  askOutcome: OutcomeQuery;
  /** Cancels the job's place in the queue or its stream (see job-control.ts). */
  stopStreaming: (job: OutgoingJob) => Promise<void>;
  /** The source's confirm phase (see outgoing.ts). */
  confirm: (args: ConfirmArgs) => Promise<void>;
}

/**
 * The client driving `job` went away: roll the job back where that
 * is safe. Queued or streaming, it is cancelled (and confirmed as failed
 * once perform has settled); after the stream, the destination is asked
 * whether it runs the guest, and with no answer the job ends with the
 * guest paused here (it may run there).
 */
export async function rollBackOwnerGone(job: OutgoingJob | undefined, deps: OwnerGoneDeps): Promise<void> {
  if (!job || job.phase === 'confirmed' || job.phase === 'cancelled') return;
  if (!job.ownerLost) deps.log(`the client managing migration job ${job.id} of '${job.domain.name}' went away in phase ${job.phase}`);
  job.ownerLost = true;
  if (job.phase === 'queued' || job.phase === 'performing') {
    job.abortReason ??= 'the client managing the migration went away';
    // begin's or perform's own failure path runs next; perform's calls ownerGone again when it has settled.
    await deps.stopStreaming(job);
    return;
  }
  if (job.phase === 'performed') {
    const outcome = job.destUri ? await deps.askOutcome(job.destUri, job.domain.uuid) : 'unreachable';
    if (outcome === 'unreachable') {
      await deps.confirm({
        jobId: job.id,
        cancelled: true,
        outcomeUnknown: `the client managing the migration went away after the stream completed, and ${job.destUri ?? 'the destination'} cannot be asked whether it runs the guest: check it there, then 'ferry resume' or 'ferry destroy' the guest here`,
      });
      return;
    }
    await deps.confirm({ jobId: job.id, cancelled: outcome !== 'finished' });
    return;
  }
  await deps.confirm({ jobId: job.id, cancelled: true });
}
