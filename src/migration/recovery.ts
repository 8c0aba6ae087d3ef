/**
 * Restart recovery on the source: a ferryd killed mid-migration reads its
 * journal (journal.ts) at start and settles every outgoing job it finds,
 * so that a restart never leaves a guest paused for nothing or running on
 * two hosts.
 */
import { toFerryError } from '../errors/index.js';
import type { Host } from '../host/host.js';
import type { HostedDomain } from '../host/hosted-domain.js';
import type { AsyncJob } from '../host/job-lock.js';
import { MigrationJournal, type JournalEntry } from './journal.js';
import type { OutcomeQuery } from './outgoing-job.js';
import { DEFAULT_POSTCOPY_STALL_MS, stopSource } from './outgoing.js';
import { cancelMigration, followMigration } from './qemu-migration.js';
import { dropLeftoverMirrors } from './storage-copy.js';

/** After a restart, how often and how many times a destination that does not answer is asked how a job ended. */
const RECOVERY_ASK_INTERVAL_MS = 10_000;
const RECOVERY_ASKS = 6;

/** The restart recovery of one host's outgoing jobs. */
export class MigrationRecovery {
  private readonly journal: MigrationJournal;

  constructor(
    private readonly host: Host,
    private readonly log: (msg: string) => void,
    /** Asks a destination how a job whose answer was lost ended (see {@link OutcomeQuery}). */
    private readonly askOutcome: OutcomeQuery,
  ) {
    this.journal = new MigrationJournal(host.config.stateDir);
  }

  /**
   * After a restart: settles every job the journal lists. The rule is the
   * driver's: the source takes its guest back unless the destination may
   * run it. A source QEMU that never completed sending cannot have handed
   * the guest over, so it is taken back at once; one that completed asks
   * the destination; one in post-copy never runs here again. When the
   * destination cannot be asked, the guest stays paused and the question is
   * asked again every 10 s, six times; then the job ends with the guest
   * paused and a message saying what to check (an unknown outcome).
   * Returns once every listed domain's job lock is held; the settling goes
   * on in the background.
   */
  async recover(): Promise<void> {
    const entries = await this.journal.list((f, why) => this.log(`ignoring unreadable migration journal file ${f}: ${why}`));
    for (const e of entries) {
      const d = this.host.registry.getByUuid(e.domainUuid);
      let lock: AsyncJob | undefined;
      try {
        // Held from before ferryd serves its sockets: no resume may run a guest the destination may already run.
        if (d && e.phase !== 'begun') lock = await d.jobs.beginAsync({ kind: 'migration-out', allowed: new Set(['destroy']), reason: 'an interrupted migration is being settled after a restart' });
      } catch (err) {
        this.log(`migration job ${e.jobId} of '${e.domainName}' cannot be settled after the restart: ${toFerryError(err).message}`);
        continue;
      }
      void this.recoverOne(e, d)
        .catch((err) => this.log(`migration job ${e.jobId} of '${e.domainName}' could not be settled after the restart: ${toFerryError(err).message}`))
        .finally(() => {
          if (d && lock) d.jobs.endAsync(lock);
        });
    }
  }

  /** Settles one journal entry; the caller holds the domain's job lock. */
  private async recoverOne(e: JournalEntry, d: HostedDomain | undefined): Promise<void> {
    const ask = this.askOutcome;
    const rt = d?.runtime;
    const done = async (what: string) => {
      this.log(`migration job ${e.jobId} of '${e.domainName}', interrupted by a restart in phase ${e.phase}: ${what}`);
      await this.journal.remove(e.jobId);
    };
    if (!d) return done('the domain is gone; nothing to do');
    if (e.phase === 'begun') return done('it had not started; nothing changed');
    let unanswered = 0;
    for (;;) {
      const rtNow = d.runtime;
      if (!rtNow || rtNow !== rt) {
        // The source QEMU is gone: only the definition may be left to settle.
        if (e.phase === 'confirming' || (e.destUri && (await ask(e.destUri, e.domainUuid)) === 'finished')) {
          await stopSource(this.host, d, null, e.flags);
          return await done('the guest runs on the destination; source cleaned up');
        }
        return await done('the source QEMU is gone and the destination does not run the guest');
      }
      const qmp = rtNow.qemu.qmp;
      const info = await qmp.execute<{ status?: string }>('query-migrate').catch(() => ({ status: 'unknown' }));
      const status = info.status ?? 'none';
      if (e.postcopy && status === 'completed') {
        // The post-copy stream finished while this daemon was down: the destination has the whole guest.
        await stopSource(this.host, d, rtNow, e.flags);
        return await done('the post-copy stream completed; source cleaned up');
      }
      if (status === 'postcopy-active' || status === 'postcopy-paused' || status === 'postcopy-recover' || e.postcopy) {
        if (status === 'postcopy-active') {
          // A stream that went silent while this daemon was down is paused, so that it can be resumed.
          const end = await followMigration(qmp, { pollMs: 500, pauseWhenStalledMs: DEFAULT_POSTCOPY_STALL_MS });
          if (end.status === 'completed') {
            await stopSource(this.host, d, rtNow, e.flags);
            return await done('the post-copy stream completed; source cleaned up');
          }
        }
        await this.host.migrationStates.markPostcopyFailed(d, rtNow, 'source');
        const paused = (await qmp.execute<{ status?: string }>('query-migrate').catch(() => ({ status: 'unknown' }))).status === 'postcopy-paused';
        return await done(
          paused
            ? "the post-copy stream broke and waits, paused, to be resumed: the guest runs on the destination, this host keeps the pages it lacks; resume it with 'ferry migrate --postcopy --postcopy-resume'"
            : 'the post-copy stream broke; the guest is paused here and runs, degraded, on the destination',
        );
      }
      if (['setup', 'active', 'pre-switchover', 'device', 'wait-unplug', 'cancelling'].includes(status)) {
        await cancelMigration(qmp).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      const answer = status === 'completed' || e.phase === 'confirming' ? (e.destUri ? await ask(e.destUri, e.domainUuid) : 'unreachable') : 'aborted';
      if (answer === 'finished') {
        await stopSource(this.host, d, rtNow, e.flags);
        return await done('the guest runs on the destination; source cleaned up');
      }
      if (answer === 'aborted') {
        await this.resumeAfterRecovery(d, rtNow, e.wasRunning);
        return await done('the destination does not run the guest; it runs here again');
      }
      if (++unanswered >= RECOVERY_ASKS) {
        const why = `cannot learn from ${e.destUri ?? 'the destination (its URI is unknown)'} whether it runs the guest after ${unanswered} tries; the guest stays paused here so it cannot run twice: check the destination with 'ferry list', then 'ferry destroy' it here if it runs there, else 'ferry resume' it here`;
        d.completedJob = { type: 'Failed', operation: 'Outgoing migration', time_elapsed: 0, errmsg: why };
        return await done(why);
      }
      this.log(`migration job ${e.jobId} of '${e.domainName}': cannot learn from ${e.destUri ?? 'the destination (its URI is unknown)'} whether it runs the guest; it stays paused here, asking again in ${RECOVERY_ASK_INTERVAL_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, RECOVERY_ASK_INTERVAL_MS));
    }
  }

  private async resumeAfterRecovery(d: HostedDomain, rt: NonNullable<HostedDomain['runtime']>, wasRunning: boolean): Promise<void> {
    // Disk-copy connections a killed ferryd left behind lead to a destination that gave up.
    await dropLeftoverMirrors(rt.qemu.qmp);
    const q = await rt.qemu.qmp.execute<{ running: boolean }>('query-status');
    if (wasRunning && !q.running) await this.host.migrationStates.takeBack(d, rt, false);
  }
}
