/**
 * The QMP sequences of a migration, written once: tuning both ends,
 * starting the outgoing and incoming streams, following progress to an
 * end state, and cancelling.
 */
import { FerryError } from '../errors/index.js';
import type { QmpClient, QmpEvent } from '../qemu/index.js';
import type { QemuMigrateInfo } from '../host/job-stats.js';

/** QEMU's "no limit" for max-bandwidth: libvirt also sets a huge value rather than 0. */
export const UNLIMITED_BANDWIDTH_BYTES = 2 ** 53 - 1;
/** MiB in bytes. */
export const MIB = 1024 * 1024;

/** Tuning applied to the QEMU on one side before the stream starts. */
export interface MigrationTuning {
  /** Bytes per second; undefined means unlimited (QEMU 7.2 would otherwise cap at 128 MiB/s). */
  maxBandwidthBytes?: number;
  /** Maximum downtime, ms; undefined keeps QEMU's default (300 ms). */
  downtimeLimitMs?: number;
}

/** Sets the capabilities and parameters both ends need. */
export async function prepareQemuForMigration(qmp: QmpClient, tuning: MigrationTuning): Promise<void> {
  await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  const params: Record<string, unknown> = { 'max-bandwidth': tuning.maxBandwidthBytes ?? UNLIMITED_BANDWIDTH_BYTES };
  if (tuning.downtimeLimitMs !== undefined) params['downtime-limit'] = tuning.downtimeLimitMs;
  await qmp.execute('migrate-set-parameters', params);
}

/** Terminal states of a migration as QEMU reports them. */
export type MigrationEnd = { status: 'completed'; info: QemuMigrateInfo } | { status: 'failed' | 'cancelled'; info: QemuMigrateInfo; error: string };

/**
 * Waits until the migration on `qmp` ends, calling `onProgress` with
 * `query-migrate` answers every `pollMs`. Also ends (as failed) if the QMP
 * connection closes, i.e. QEMU died.
 */
export function followMigration(qmp: QmpClient, opts: { pollMs: number; onProgress?: (info: QemuMigrateInfo) => void; signal?: AbortSignal }): Promise<MigrationEnd> {
  return new Promise((resolve) => {
    let done = false;
    let polling = false;
    const finish = (end: MigrationEnd) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      qmp.off('event', onEvent);
      qmp.off('close', onClose);
      resolve(end);
    };
    const poll = async () => {
      if (done || polling) return;
      polling = true;
      try {
        const info = await qmp.execute<QemuMigrateInfo>('query-migrate', undefined, { timeoutMs: 10_000 });
        if (done) return;
        opts.onProgress?.(info);
        if (info.status === 'completed') finish({ status: 'completed', info });
        else if (info.status === 'failed' || info.status === 'cancelled') {
          finish({ status: info.status, info, error: info['error-desc'] ?? `migration ${info.status}` });
        }
      } catch (err) {
        if (qmp.closed) finish({ status: 'failed', info: {}, error: `QEMU exited during migration (${(err as Error).message})` });
      } finally {
        polling = false;
      }
    };
    const onEvent = (ev: QmpEvent) => {
      if (ev.event !== 'MIGRATION') return;
      const st = (ev.data as { status?: string } | undefined)?.status;
      if (st === 'completed' || st === 'failed' || st === 'cancelled') void poll();
    };
    const onClose = () => finish({ status: 'failed', info: {}, error: 'QEMU exited during migration' });
    qmp.on('event', onEvent);
    qmp.on('close', onClose);
    const timer = setInterval(() => void poll(), opts.pollMs);
    void poll();
  });
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

/** Whether QEMU's vCPUs run now. */
export async function qemuRunning(qmp: QmpClient): Promise<{ running: boolean; status: string }> {
  return qmp.execute<{ running: boolean; status: string }>('query-status', undefined, { timeoutMs: 10_000 });
}
