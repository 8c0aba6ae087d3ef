import { describe, expect, it } from 'vitest';
import { MigrationSlots } from '../../src/migration/slots.js';

describe('MigrationSlots', () => {
  it('grants up to the limit, queues the rest in order, and hands a freed slot to the next', async () => {
    const s = new MigrationSlots('outgoing', 2);
    const t = [s.claim(), s.claim(), s.claim(), s.claim()];
    await Promise.all([t[0]!.granted, t[1]!.granted]);
    expect(t.map((x) => x.position())).toEqual([0, 0, 1, 2]);
    expect(s.load).toEqual({ running: 2, queued: 2, limit: 2 });
    t[1]!.release();
    await t[2]!.granted;
    expect(t.map((x) => x.position())).toEqual([0, 0, 0, 1]);
    t[1]!.release(); // twice: no effect
    expect(s.load.running).toBe(2);
  });

  it('lets a queued claim be cancelled with operation_aborted, without taking a slot', async () => {
    const s = new MigrationSlots('incoming', 1);
    const a = s.claim();
    const b = s.claim();
    const c = s.claim();
    b.cancel('aborted by the user');
    await expect(b.granted).rejects.toMatchObject({ code: 'operation_aborted', message: 'aborted by the user' });
    expect(c.position()).toBe(1);
    a.release();
    await c.granted;
    expect(s.load).toEqual({ running: 1, queued: 0, limit: 1 });
  });

  it('refuses a limit below 1', () => {
    expect(() => new MigrationSlots('outgoing', 0)).toThrow(/positive integer/);
  });
});
