import { describe, it, expect, vi } from 'vitest';
import { DEFAULT_LOCK_WAIT_MS, DomainJobLock, type ModifyKind } from '../../src/host/job-lock.js';
import { FerryError } from '../../src/errors/index.js';
import { rejection } from '../support/refusal.js';

/** Lets every job that could run now run: pending promise callbacks, then one turn of the event loop. */
const settle = () => new Promise((r) => setImmediate(r));

/** A job that can be finished from outside. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

describe('DomainJobLock modify jobs', () => {
  it('waits 30 s by default, like libvirt', () => {
    expect(DEFAULT_LOCK_WAIT_MS).toBe(30_000);
  });

  it('runs jobs one at a time, in the order they were queued, and returns their results', async () => {
    const lock = new DomainJobLock(() => 'vm1');
    const log: string[] = [];
    let running = 0;
    let maxRunning = 0;
    const gates = { a: gate(), b: gate(), c: gate() };
    const job = (name: keyof typeof gates) => async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      log.push(`start ${name}`);
      await gates[name].promise;
      log.push(`end ${name}`);
      running--;
      return name;
    };
    const runs = [lock.run('start', job('a')), lock.run('suspend', job('b')), lock.run('resume', job('c'))];
    // The later jobs may finish as soon as they start: only the lock keeps them behind a.
    gates.c.open();
    gates.b.open();
    await settle();
    expect(log).toEqual(['start a']);
    gates.a.open();
    const results = await Promise.all(runs);
    expect(results).toEqual(['a', 'b', 'c']);
    expect(maxRunning).toBe(1);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
  });

  it('reports the running modify kind while a job holds the lock, and none after', async () => {
    const lock = new DomainJobLock(() => 'vm1');
    expect(lock.currentModify).toBeNull();
    let seen: ModifyKind | null = null;
    await lock.run('shutdown', async () => {
      seen = lock.currentModify;
    });
    expect(seen).toBe('shutdown');
    expect(lock.currentModify).toBeNull();
  });

  it('releases the lock when a job throws, passing the error on', async () => {
    const lock = new DomainJobLock(() => 'vm1');
    const err = await rejection(
      lock.run('define', async () => {
        throw new FerryError('xml_error', 'bad xml');
      }),
    );
    expect(err.code).toBe('xml_error');
    expect(await lock.run('start', async () => 'next')).toBe('next');
    expect(lock.currentModify).toBeNull();
  });

  it('times out a waiter with operation_timeout naming the domain and the holder, and the queue still works', async () => {
    const lock = new DomainJobLock(() => 'web-01');
    const held = gate();
    const order: string[] = [];
    const holder = lock.run('start', async () => {
      order.push('holder');
      await held.promise;
      return 'held';
    });
    const waiter = lock.run('destroy', async () => {
      order.push('waiter ran');
      return 'never';
    }, 40);
    const err = await rejection(waiter);
    expect(err.code).toBe('operation_timeout');
    expect(err.message).toContain("'web-01'");
    expect(err.message).toContain('start');
    expect(err.message).toContain('destroy');

    // A job queued after the one that gave up runs once the holder ends.
    const after = lock.run('suspend', async () => {
      order.push('after');
      return 'after';
    }, 2000);
    await settle();
    expect(order).toEqual(['holder']);
    held.open();
    expect(await holder).toBe('held');
    expect(await after).toBe('after');
    expect(order).toEqual(['holder', 'after']);
    // And the lock is free again.
    expect(await lock.run('resume', async () => 'free', 100)).toBe('free');
  });

  it('a waiter that gets the lock in time does not time out later', async () => {
    vi.useFakeTimers();
    try {
      const lock = new DomainJobLock(() => 'vm1');
      const firstDone = gate();
      const secondDone = gate();
      const first = lock.run('start', () => firstDone.promise);
      const second = lock.run('suspend', async () => {
        await secondDone.promise;
        return 'done';
      }, 40);
      firstDone.open();
      await first;
      // The waiter holds the lock now; its 40 ms wait limit passes while it runs.
      await vi.advanceTimersByTimeAsync(100);
      secondDone.open();
      expect(await second).toBe('done');
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('DomainJobLock async jobs', () => {
  const migration = {
    kind: 'migration-out' as const,
    allowed: new Set<ModifyKind>(['suspend', 'resume', 'destroy']),
    reason: 'the definition is change-protected during migration',
  };

  it('refuses modify kinds the async job does not allow with operation_invalid, at once', async () => {
    const lock = new DomainJobLock(() => 'db');
    const job = await lock.beginAsync(migration);
    expect(lock.currentAsync).toBe(job);
    expect(job.kind).toBe('migration-out');
    expect(typeof job.startedAt).toBe('number');
    let ran = false;
    for (const kind of ['define', 'undefine', 'start', 'shutdown', 'autostart'] as const) {
      const err = await rejection(
        lock.run(kind, async () => {
          ran = true;
        }),
      );
      expect(err.code, kind).toBe('operation_invalid');
      expect(err.message).toContain(kind);
      expect(err.message).toContain("'db'");
      expect(err.message).toContain('change-protected');
    }
    expect(ran).toBe(false);
  });

  it('refuses a forbidden kind at once even while another job holds the lock (no waiting in the queue)', async () => {
    const lock = new DomainJobLock(() => 'db');
    await lock.beginAsync(migration);
    const held = gate();
    const holder = lock.run('suspend', () => held.promise);
    let settled = false;
    const refused = lock.run('define', async () => undefined, 5000).finally(() => (settled = true));
    refused.catch(() => undefined);
    await settle();
    expect(settled).toBe(true);
    expect((await rejection(refused)).code).toBe('operation_invalid');
    held.open();
    await holder;
  });

  it('allows the listed modify kinds while it runs', async () => {
    const lock = new DomainJobLock(() => 'db');
    await lock.beginAsync(migration);
    expect(await lock.run('suspend', async () => 's')).toBe('s');
    expect(await lock.run('resume', async () => 'r')).toBe('r');
    expect(await lock.run('destroy', async () => 'd')).toBe('d');
  });

  it('starts only after the modify job that holds the domain and those queued before it (an offline migration never reads a definition being written)', async () => {
    const lock = new DomainJobLock(() => 'db');
    const held = gate();
    const seen: string[] = [];
    const define = lock.run('define', async () => {
      await held.promise;
      seen.push(`define ends; async job: ${lock.currentAsync?.kind ?? 'none'}`);
    });
    const queued = lock.run('start', async () => {
      seen.push(`start runs; async job: ${lock.currentAsync?.kind ?? 'none'}`);
    });
    const begun = Promise.resolve(lock.beginAsync(migration)).then((job) => {
      seen.push('migration begins');
      return job;
    });
    expect(lock.currentAsync).toBeNull();
    held.open();
    const job = await begun;
    await define;
    await queued;
    expect(seen).toEqual(['define ends; async job: none', 'start runs; async job: none', 'migration begins']);
    expect(lock.currentAsync).toBe(job);
    // From now on the async job's rules apply.
    expect((await rejection(lock.run('define', async () => undefined))).code).toBe('operation_invalid');
  });

  it('gives up waiting for a modify job with operation_timeout naming the domain and the job that holds it', async () => {
    const lock = new DomainJobLock(() => 'db');
    const held = gate();
    const holder = lock.run('define', () => held.promise);
    const err = await rejection(Promise.resolve(lock.beginAsync(migration, 40)));
    expect(err.code).toBe('operation_timeout');
    expect(err.message).toContain("'db'");
    expect(err.message).toContain('define');
    expect(err.message).toContain('migration-out');
    expect(lock.currentAsync).toBeNull();
    held.open();
    await holder;
    // The queue still works, and the domain is free for an async job again.
    expect((await lock.beginAsync(migration, 100)).kind).toBe('migration-out');
  });

  it('refuses a second async job', async () => {
    const lock = new DomainJobLock(() => 'db');
    await lock.beginAsync(migration);
    const err = await rejection(Promise.resolve(lock.beginAsync({ kind: 'migration-in', allowed: new Set(), reason: 'x' })));
    expect(err.code).toBe('operation_invalid');
    expect(err.message).toContain('migration-out');
  });

  it('refuses a second async job that was waiting in the queue when the first began', async () => {
    const lock = new DomainJobLock(() => 'db');
    const held = gate();
    const holder = lock.run('resume', () => held.promise);
    const first = Promise.resolve(lock.beginAsync(migration));
    const second = Promise.resolve(lock.beginAsync({ kind: 'migration-in', allowed: new Set(), reason: 'x' }));
    second.catch(() => undefined);
    held.open();
    await holder;
    expect((await first).kind).toBe('migration-out');
    const err = await rejection(second);
    expect(err.code).toBe('operation_invalid');
    expect(err.message).toContain('migration-out');
  });

  it('endAsync lifts the restrictions; ending a stale job is a no-op', async () => {
    const lock = new DomainJobLock(() => 'db');
    const first = await lock.beginAsync(migration);
    lock.endAsync(first);
    expect(lock.currentAsync).toBeNull();
    expect(await lock.run('define', async () => 'defined')).toBe('defined');

    const second = await lock.beginAsync(migration);
    lock.endAsync(first); // not the current job
    expect(lock.currentAsync).toBe(second);
    expect((await rejection(lock.run('undefine', async () => undefined))).code).toBe('operation_invalid');
    lock.endAsync(second);
    expect(lock.currentAsync).toBeNull();
  });

  it('names the domain as it is called now (after a rename)', async () => {
    let name = 'old';
    const lock = new DomainJobLock(() => name);
    await lock.beginAsync(migration);
    name = 'new';
    const err = await rejection(lock.run('define', async () => undefined));
    expect(err.message).toContain("'new'");
  });
});
