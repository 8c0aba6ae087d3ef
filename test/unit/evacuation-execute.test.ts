/**
 * EvacuationRun (src/evacuation/execute.ts) with fake migrations: what it
 * starts and when, what it saves, how it ends, and how it stops. The
 * migrations are promises the test settles itself, so the order of events
 * is the test's, not a timer's.
 */
import { describe, expect, it } from 'vitest';
import { EvacuationRun, type ExecutorOps } from '../../src/evacuation/execute.js';
import { planEvacuation } from '../../src/evacuation/plan.js';
import { createRecord, isSettled, type EvacuationRecord, type MigrationOutcome } from '../../src/evacuation/record.js';
import type { MigrationStart } from '../../src/evacuation/scheduler.js';
import type { EvacuationGuest, PlacementHost } from '../../src/evacuation/types.js';

const GiB = 1024 * 1024; // KiB
const uri = (name: string) => `ferry+tls://${name}/system`;

function host(name: string, maxIncoming = 2): PlacementHost {
  return {
    uri: uri(name),
    name,
    cpus: 8,
    cpu: { model: 'm', fingerprint: 'fp', features: [] },
    memory: { totalKiB: 16 * GiB, availableKiB: 16 * GiB, committedKiB: 0 },
    guests: 0,
    maintenance: false,
    migrations: { maxOutgoing: 3, maxIncoming, outgoing: 0, incoming: 0 },
  };
}

function guests(n: number): EvacuationGuest[] {
  return Array.from({ length: n }, (_, i) => ({
    name: `g${String(i).padStart(2, '0')}`,
    uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    memoryKiB: (1 + (i % 3)) * 256 * 1024,
    vcpus: 1,
    state: 'running' as const,
    cpu: { mode: 'default' as const },
    source: uri('a'),
  }));
}

function record(n: number): EvacuationRecord {
  const src = host('a');
  const dests = [host('b'), host('c')];
  return createRecord(planEvacuation(src, guests(n), dests, { headroomPercent: 0 }), src, dests, 0);
}

/** Fake world: each migration waits until the test ends it. */
function fakeOps(o: { saveFails?: boolean } = {}) {
  let clock = 0;
  const pending = new Map<string, { start: MigrationStart; end: (out: MigrationOutcome | Error) => void }>();
  const saved: EvacuationRecord[] = [];
  const aborted: string[] = [];
  const log: string[] = [];
  let changes = 0;
  let waiters: Array<() => void> = [];
  const ops: ExecutorOps = {
    migrate: (start) =>
      new Promise<MigrationOutcome>((resolve, reject) => {
        pending.set(start.name, { start, end: (out) => (out instanceof Error ? reject(out) : resolve(out)) });
        for (const w of waiters) w();
        waiters = [];
      }),
    abort: async (start) => {
      aborted.push(start.name);
    },
    save: async (r) => {
      if (o.saveFails) throw new Error('disk full');
      saved.push(r);
    },
    now: () => ++clock,
    log: (m) => log.push(m),
    changed: () => changes++,
  };
  /** Resolves once the run has started migrations (microtasks flushed). */
  const settle = () => new Promise<void>((r) => setImmediate(r));
  return {
    ops,
    pending,
    saved,
    aborted,
    log,
    changes: () => changes,
    settle,
    /** Ends the running migration of `name`. */
    async end(name: string, out: MigrationOutcome | Error) {
      const p = pending.get(name);
      if (p === undefined) throw new Error(`${name} is not running (running: ${[...pending.keys()].join(', ')})`);
      pending.delete(name);
      p.end(out);
      await settle();
    },
  };
}

describe('EvacuationRun', () => {
  it('runs every guest to its end within --max-parallel and the hosts\' limits, saving every change in order', async () => {
    const f = fakeOps();
    const run = new EvacuationRun(record(7), { maxParallel: 3 }, f.ops);
    const done = run.run();
    await f.settle();
    expect(f.pending.size).toBe(3);
    while (f.pending.size > 0) {
      const [name] = f.pending.keys();
      await f.end(name!, { result: 'migrated', downtimeMs: 20 });
      expect(f.pending.size).toBeLessThanOrEqual(3);
      // No destination takes more than its 2 incoming slots.
      for (const d of ['b', 'c']) expect([...f.pending.values()].filter((p) => p.start.destination === uri(d)).length).toBeLessThanOrEqual(2);
    }
    const final = await done;
    expect(run.state).toBe('ended');
    expect(isSettled(final)).toBe(true);
    expect(final.guests.every((e) => e.status === 'done')).toBe(true);
    expect(run.maxInFlight).toBe(3);
    // Each start and each end was saved, in order; the last save is the final record.
    expect(f.saved.length).toBe(14);
    expect(f.saved.at(-1)).toEqual(final);
    expect(f.saved.map((r) => r.updatedAtMs)).toEqual([...f.saved.map((r) => r.updatedAtMs)].sort((a, b) => a - b));
    expect(f.log.filter((l) => l.startsWith('evacuation: start')).length).toBe(7);
    expect(f.log[0]).toMatch(/^evacuation: start 'g\d\d' to [bc] \(attempt 1\); in flight 1 \(max 3\); outgoing from a 1 of 3; incoming to [bc] 1 of 2$/);
  });

  it('retries a guest whose migration failed on another host, and counts a rejected migration as unknown, never retried', async () => {
    const f = fakeOps();
    const run = new EvacuationRun(record(2), { maxParallel: 2 }, f.ops);
    const done = run.run();
    await f.settle();
    const [first, second] = [...f.pending.values()].map((p) => p.start);
    await f.end(first!.name, { result: 'failed', error: 'prepare refused' });
    const retry = f.pending.get(first!.name)!.start;
    expect(retry.attempt).toBe(2);
    expect(retry.destination).not.toBe(first!.destination);
    await f.end(first!.name, { result: 'migrated' });
    await f.end(second!.name, new Error('connection reset'));
    const final = await done;
    expect(final.guests.find((e) => e.guest.name === first!.name)?.status).toBe('done');
    const lost = final.guests.find((e) => e.guest.name === second!.name)!;
    expect(lost.status).toBe('check');
    expect(lost.attempts).toHaveLength(1);
    expect(f.log.some((l) => l.includes(`'${second!.name}' ended: unknown: connection reset`))).toBe(true);
  });

  it('stopped: starts nothing new and lets the running migrations end; the rest stays pending', async () => {
    const f = fakeOps();
    const run = new EvacuationRun(record(6), { maxParallel: 2 }, f.ops);
    const done = run.run();
    await f.settle();
    const running = [...f.pending.keys()];
    run.stop(false);
    expect(run.state).toBe('stopping');
    for (const name of running) await f.end(name, { result: 'migrated' });
    expect(f.pending.size).toBe(0);
    const final = await done;
    expect(run.state).toBe('ended');
    expect(final.guests.filter((e) => e.status === 'done').map((e) => e.guest.name).sort()).toEqual(running.sort());
    expect(final.guests.filter((e) => e.status === 'pending')).toHaveLength(4);
    expect(f.aborted).toEqual([]);
  });

  it('aborted: aborts what runs, and a migration that then fails is not held against its destination', async () => {
    const f = fakeOps();
    const run = new EvacuationRun(record(4), { maxParallel: 2 }, f.ops);
    const done = run.run();
    await f.settle();
    const running = [...f.pending.keys()];
    run.stop(false);
    run.stop(true);
    expect(run.state).toBe('aborting');
    expect(f.aborted.sort()).toEqual([...running].sort());
    for (const name of running) await f.end(name, { result: 'failed', error: 'operation aborted' });
    const final = await done;
    for (const name of running) {
      const e = final.guests.find((g) => g.guest.name === name)!;
      expect(e.status).toBe('pending');
      expect(e.excluded).toEqual([]);
      expect(e.attempts.at(-1)?.result).toBe('interrupted');
    }
    expect(final.guests.every((e) => e.status === 'pending')).toBe(true);
  });

  it('starts nothing more once the record cannot be stored, and says so once', async () => {
    const f = fakeOps({ saveFails: true });
    const run = new EvacuationRun(record(5), { maxParallel: 2 }, f.ops);
    const done = run.run();
    await f.settle();
    const first = [...f.pending.keys()];
    for (const name of first) await f.end(name, { result: 'migrated' });
    await done;
    expect(f.pending.size).toBe(0);
    expect(first).toHaveLength(2);
    expect(f.log.filter((l) => l.includes('cannot store the record')).length).toBe(1);
  });
});
