/**
 * followMigration's post-copy stall watch, on a fake QMP: a stream that
 * sends nothing for the bound is paused once (`migrate-pause`), and the
 * follow ends as `postcopy-paused` (not failed) when QEMU says so; a stream
 * that keeps moving is never paused.
 */
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { QmpClient } from '../../src/qemu/index.js';
import { followMigration } from '../../src/migration/qemu-migration.js';

/** A QMP stand-in whose `query-migrate` answers come from `answer`, recording every command. */
function fakeQmp(answer: () => Record<string, unknown>): { qmp: QmpClient; commands: string[] } {
  const commands: string[] = [];
  const emitter = new EventEmitter();
  const qmp = Object.assign(emitter, {
    closed: false,
    execute: async (cmd: string) => {
      commands.push(cmd);
      return cmd === 'query-migrate' ? answer() : {};
    },
  }) as unknown as QmpClient;
  return { qmp, commands };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('followMigration: the post-copy stall watch', () => {
  it('pauses a post-copy stream that sent nothing for the bound, once, and ends as postcopy-paused', async () => {
    vi.useFakeTimers();
    let status = 'postcopy-active';
    const { qmp, commands } = fakeQmp(() => ({ status, ram: { transferred: 1000 } }));
    const stalls: number[] = [];
    const end = followMigration(qmp, { pollMs: 250, pauseWhenStalledMs: 3000, onStall: (ms) => stalls.push(ms) });
    await vi.advanceTimersByTimeAsync(2500);
    expect(commands).not.toContain('migrate-pause');
    await vi.advanceTimersByTimeAsync(1000);
    expect(commands.filter((c) => c === 'migrate-pause')).toHaveLength(1);
    expect(stalls[0]).toBeGreaterThanOrEqual(3000);
    await vi.advanceTimersByTimeAsync(2000);
    expect(commands.filter((c) => c === 'migrate-pause')).toHaveLength(1);
    status = 'postcopy-paused';
    await vi.advanceTimersByTimeAsync(300);
    await expect(end).resolves.toMatchObject({ status: 'postcopy-paused' });
  });

  it('never pauses a stream whose byte count moves, nor one that is not in post-copy', async () => {
    vi.useFakeTimers();
    let sent = 0;
    let status = 'postcopy-active';
    const { qmp, commands } = fakeQmp(() => ({ status, ram: { transferred: (sent += 4096) } }));
    const end = followMigration(qmp, { pollMs: 250, pauseWhenStalledMs: 1000 });
    await vi.advanceTimersByTimeAsync(5000);
    status = 'active';
    sent = 0;
    await vi.advanceTimersByTimeAsync(5000);
    expect(commands).not.toContain('migrate-pause');
    status = 'completed';
    await vi.advanceTimersByTimeAsync(300);
    await expect(end).resolves.toMatchObject({ status: 'completed' });
  });
});
