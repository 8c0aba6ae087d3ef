/**
 * The source's migration journal: one small file per outgoing job in
 * `STATE_DIR/jobs/`, rewritten atomically at each phase change and removed
 * when the job ends. A ferryd that was killed mid-migration reads it at
 * start and settles every job it finds (see recovery.ts), so a restart
 * never leaves a guest paused for nothing or running on two hosts.
 */
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeFileDurable, writeFileAtomic } from '../util/atomic-file.js';

/** Where an outgoing job stood when it was last written down. */
export type JournalPhase = 'begun' | 'performing' | 'performed' | 'confirming';

/** One journal entry. */
export interface JournalEntry {
  version: 1;
  jobId: string;
  domainUuid: string;
  domainName: string;
  flags: number;
  /** The destination daemon's URI, when known (peer-to-peer, or given by the managing client). */
  destUri?: string;
  /** Whether the guest ran when the job began (it runs again if the job is rolled back). */
  wasRunning: boolean;
  phase: JournalPhase;
  /** The migration switched to post-copy: the source must never run the guest again. */
  postcopy?: boolean;
  updatedAt: string;
}

/** The journal directory of one host. */
export class MigrationJournal {
  private readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'jobs');
  }

  async write(entry: Omit<JournalEntry, 'version' | 'updatedAt'>): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const full: JournalEntry = { version: 1, ...entry, updatedAt: new Date().toISOString() };
    await writeFileAtomic(join(this.dir, `${entry.jobId}.json`), `${JSON.stringify(full, null, 2)}\n`);
  }

  async remove(jobId: string): Promise<void> {
    await removeFileDurable(join(this.dir, `${jobId}.json`)).catch(() => undefined);
  }

  /** Every readable entry (an unreadable one is reported through `bad` and skipped). */
  async list(bad: (file: string, why: string) => void): Promise<JournalEntry[]> {
    let files: string[];
    try {
      files = await readdir(this.dir);
    } catch {
      return [];
    }
    const out: JournalEntry[] = [];
    for (const f of files.filter((x) => x.endsWith('.json'))) {
      try {
        const e = JSON.parse(await readFile(join(this.dir, f), 'utf8')) as JournalEntry;
        if (e.version !== 1 || typeof e.jobId !== 'string' || typeof e.domainUuid !== 'string') throw new Error('not a journal entry');
        out.push(e);
      } catch (err) {
        bad(f, (err as Error).message);
      }
    }
    return out;
  }
}
