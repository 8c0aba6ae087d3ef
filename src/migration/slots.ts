/**
 * A host's migration slots: at most `limit` outgoing (or incoming)
 * migrations run at once; the others wait in order of arrival, visible
 * (their position) and abortable while they wait.
 *
 * Why limit at all: a migration stream keeps about one core busy on each
 * side (QEMU's migration thread, and with TUNNELLED the relaying daemon),
 * so running more migrations than there are cores only makes every one of
 * them slower, and a slower migration of a busy guest may never converge.
 * Queued guests keep running where they are meanwhile.
 */
import { availableParallelism } from 'node:os';
import { FerryError } from '../errors/index.js';

/** A waiting or granted claim on a slot. */
export interface SlotTicket {
  /** Resolves once the slot is granted; rejects with `operation_aborted` if cancelled while waiting. */
  readonly granted: Promise<void>;
  /** Gives the slot back (or leaves the queue). Idempotent. */
  release(): void;
  /** Leaves the queue with an error (`operation_aborted`); does nothing once granted. */
  cancel(why: string): void;
  /** 0 when running, else the place in the queue (1 = next). */
  position(): number;
}

export class MigrationSlots {
  private running = 0;
  private readonly queue: Array<{ grant: () => void; fail: (e: Error) => void }> = [];

  constructor(
    readonly kind: 'outgoing' | 'incoming',
    readonly limit: number,
    /** Told of every change of the load (ferryd logs it: the numbers in flight are checked from the log). */
    private readonly onChange: (line: string) => void = () => undefined,
  ) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new FerryError('invalid_arg', `the ${kind} migration limit must be a positive integer`);
  }

  /** How many run and how many wait. */
  get load(): { running: number; queued: number; limit: number } {
    return { running: this.running, queued: this.queue.length, limit: this.limit };
  }

  private changed(): void {
    this.onChange(`migration slots: ${this.kind} ${this.running} running of ${this.limit}, ${this.queue.length} queued`);
  }

  claim(): SlotTicket {
    let state: 'waiting' | 'granted' | 'done' = 'waiting';
    let entry: { grant: () => void; fail: (e: Error) => void } | undefined;
    const granted = new Promise<void>((resolve, reject) => {
      entry = {
        grant: () => {
          state = 'granted';
          this.running++;
          this.changed();
          resolve();
        },
        fail: (e) => {
          state = 'done';
          reject(e);
        },
      };
    });
    // A rejection nobody awaits yet must not count as unhandled.
    granted.catch(() => undefined);
    if (this.running < this.limit) entry!.grant();
    else {
      this.queue.push(entry!);
      this.changed();
    }
    const leaveQueue = () => {
      const i = this.queue.indexOf(entry!);
      if (i >= 0) this.queue.splice(i, 1);
      this.changed();
    };
    return {
      granted,
      release: () => {
        if (state === 'granted') {
          state = 'done';
          this.running--;
          const next = this.queue.shift();
          if (next) next.grant();
          else this.changed();
        } else if (state === 'waiting') {
          leaveQueue();
          entry!.fail(new FerryError('operation_aborted', 'the migration left the queue'));
        }
      },
      cancel: (why) => {
        if (state !== 'waiting') return;
        leaveQueue();
        entry!.fail(new FerryError('operation_aborted', why));
      },
      position: () => (state === 'waiting' ? this.queue.indexOf(entry!) + 1 : 0),
    };
  }
}

/** The default limit of concurrent migrations each way: the number of cores, at least 2. */
export function defaultMigrationLimit(): number {
  return Math.max(2, availableParallelism());
}
