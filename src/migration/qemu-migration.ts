/**
 * The QMP sequences of a migration, written once: tuning both ends,
 * starting the outgoing and incoming streams, following progress to an
 * end state, and cancelling.
 */
import { FerryError } from '../errors/index.js';
import type { QmpClient, QmpEvent } from '../qemu/index.js';
import type { QemuMigrateInfo } from '../host/job-stats.js';
import type { QemuMigrationSetup } from './tuning.js';

/**
 * Applies one side's capabilities and parameters (see tuning.ts) before the
 * stream starts. `zero-copy-send` is switched on last, after the
 * parameters: QEMU checks it against the compression and TLS parameters
 * already in place, which may still be a previous migration's.
 */
export async function prepareQemuForMigration(qmp: QmpClient, setup: QemuMigrationSetup): Promise<void> {
  const zeroCopy = setup.capabilities['zero-copy-send'] === true;
  const capabilities = Object.entries(setup.capabilities).map(([capability, state]) => ({ capability, state: capability === 'zero-copy-send' ? false : state }));
  await qmp.execute('migrate-set-capabilities', { capabilities });
  if (Object.keys(setup.parameters).length) await qmp.execute('migrate-set-parameters', setup.parameters);
  if (zeroCopy) await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'zero-copy-send', state: true }] });
}

/**
 * How following a migration ended: a terminal state, or `postcopy-active`
 * when the caller asked to stop there (the guest must then run on the
 * destination while the rest of its memory follows).
 */
export type MigrationEnd =
  | { status: 'completed' | 'postcopy-active'; info: QemuMigrateInfo }
  | { status: 'failed' | 'cancelled' | 'postcopy-paused'; info: QemuMigrateInfo; error: string };

/** Options of {@link followMigration}. */
export interface FollowOptions {
  pollMs: number;
  onProgress?: (info: QemuMigrateInfo) => void;
  /** End at `postcopy-active` instead of following the post-copy phase to its end. */
  stopAtPostcopy?: boolean;
  /**
   * Source side, post-copy phase: when QEMU has sent nothing for this long
   * (a link that went silent, where TCP would wait many minutes before it
   * reports an error), pause the migration (`migrate-pause`) so both sides
   * wait in `postcopy-paused`, ready to be resumed. `onStall` is told.
   */
  pauseWhenStalledMs?: number;
  onStall?: (stalledMs: number) => void;
}

/**
 * Waits until the migration on `qmp` ends, calling `onProgress` with
 * `query-migrate` answers every `pollMs` and at the start of each pass
 * over memory. Also ends (as failed) if the QMP connection closes, i.e.
 * QEMU died.
 */
export function followMigration(qmp: QmpClient, opts: FollowOptions): Promise<MigrationEnd> {
  return new Promise((resolve) => {
    let done = false;
    let polling = false;
    // The post-copy stall watch: the last byte count seen and since when it has not moved.
    let lastSent: number | undefined;
    let sentSince = Date.now();
    let pauseAsked = false;
    const watchStall = (info: QemuMigrateInfo) => {
      if (opts.pauseWhenStalledMs === undefined || info.status !== 'postcopy-active') {
        lastSent = undefined;
        return;
      }
      const sent = info.ram?.transferred;
      if (sent === undefined) return;
      if (sent !== lastSent) {
        lastSent = sent;
        sentSince = Date.now();
        pauseAsked = false;
        return;
      }
      const stalled = Date.now() - sentSince;
      if (stalled >= opts.pauseWhenStalledMs && !pauseAsked) {
        pauseAsked = true;
        opts.onStall?.(stalled);
        void pausePostcopy(qmp).catch(() => undefined);
      }
    };
    const finish = (end: MigrationEnd) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      qmp.off('event', onEvent);
      qmp.off('close', onClose);
      resolve(end);
    };
    let again = false;
    const poll = async () => {
      if (done) return;
      if (polling) {
        // An event arrived while a query was in flight whose answer may predate it: ask once more after it.
        again = true;
        return;
      }
      polling = true;
      try {
        const info = await qmp.execute<QemuMigrateInfo>('query-migrate', undefined, { timeoutMs: 10_000 });
        if (done) return;
        opts.onProgress?.(info);
        watchStall(info);
        if (info.status === 'completed') finish({ status: 'completed', info });
        else if (info.status === 'postcopy-active' && opts.stopAtPostcopy) finish({ status: 'postcopy-active', info });
        else if (info.status === 'failed' || info.status === 'cancelled') {
          finish({ status: info.status, info, error: info['error-desc'] ?? `migration ${info.status}` });
        } else if (info.status === 'postcopy-paused') {
          // QEMU keeps both halves of the guest and waits to be resumed (POSTCOPY_RESUME).
          finish({ status: 'postcopy-paused', info, error: 'the migration stream broke after the switch to post-copy (QEMU status postcopy-paused)' });
        }
      } catch (err) {
        if (qmp.closed) finish({ status: 'failed', info: {}, error: `QEMU exited during migration (${(err as Error).message})` });
      } finally {
        polling = false;
        if (again && !done) {
          again = false;
          void poll();
        }
      }
    };
    const onEvent = (ev: QmpEvent) => {
      // A new pass: sample at once, so the pass's starting size is seen right after QEMU's bitmap sync.
      if (ev.event === 'MIGRATION_PASS') return void poll();
      if (ev.event !== 'MIGRATION') return;
      const st = (ev.data as { status?: string } | undefined)?.status;
      if (st === 'completed' || st === 'failed' || st === 'cancelled' || st === 'postcopy-active' || st === 'postcopy-paused') void poll();
    };
    const onClose = () => finish({ status: 'failed', info: {}, error: 'QEMU exited during migration' });
    qmp.on('event', onEvent);
    qmp.on('close', onClose);
    const timer = setInterval(() => void poll(), opts.pollMs);
    void poll();
  });
}

/**
 * Pauses a migration in its post-copy phase (`migrate-pause`, on either
 * side): QEMU shuts its end of the stream down and waits in
 * `postcopy-paused` with every page it holds.
 */
export async function pausePostcopy(qmp: QmpClient): Promise<void> {
  await qmp.execute('migrate-pause', undefined, { timeoutMs: 10_000 });
}

/**
 * Waits until QEMU's migration status is one of `wanted` (polling every
 * 100 ms); returns it, or the last status seen once `timeoutMs` has passed.
 */
export async function waitForMigrationStatus(qmp: QmpClient, wanted: readonly string[], timeoutMs: number): Promise<string> {
  const until = Date.now() + timeoutMs;
  let status = 'none';
  for (;;) {
    status = (await qmp.execute<QemuMigrateInfo>('query-migrate', undefined, { timeoutMs: 10_000 })).status ?? 'none';
    if (wanted.includes(status) || Date.now() >= until) return status;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Cancels an outgoing migration; tolerates one that already ended. */
export async function cancelMigration(qmp: QmpClient): Promise<void> {
  if (qmp.closed) return;
  try {
    await qmp.execute('migrate_cancel', undefined, { timeoutMs: 10_000 });
  } catch (err) {
    if (!qmp.closed) throw new FerryError('operation_failed', `cannot cancel the migration: ${(err as Error).message}`);
  }
}
