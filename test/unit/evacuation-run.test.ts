import { describe, expect, it } from 'vitest';
import { planEvacuation } from '../../src/evacuation/plan.js';
import { reconcile, type Observation } from '../../src/evacuation/reconcile.js';
import {
  createRecord,
  isSettled,
  markEnded,
  markStarted,
  parseRecord,
  plannedLoads,
  progressOf,
  type EvacuationRecord,
  type GuestEntry,
  type MigrationOutcome,
} from '../../src/evacuation/record.js';
import { renderEvacuationLine, renderGuestChanges, renderReport } from '../../src/cli/evacuation-render.js';
import { inFlight, nextMigrations, type MigrationStart, type SchedulerState } from '../../src/evacuation/scheduler.js';
import type { EvacuationGuest, PlacementHost, PlacementOptions } from '../../src/evacuation/types.js';
import { Rng } from '../fuzz/rng.js';

const MiB = 1024; // KiB
const GiB = 1024 * MiB;
const uri = (name: string) => `ferry+tls://${name}/system`;

function host(name: string, o: { freeGiB?: number; maxOutgoing?: number; maxIncoming?: number; guests?: number } = {}): PlacementHost {
  const total = (o.freeGiB ?? 16) * GiB;
  return {
    uri: uri(name),
    name,
    cpus: 8,
    cpu: { model: 'Skylake-Server', fingerprint: 'fp-skylake', features: ['sse2', 'avx2'] },
    memory: { totalKiB: total, availableKiB: total, committedKiB: 0 },
    guests: o.guests ?? 0,
    maintenance: false,
    migrations: { maxOutgoing: o.maxOutgoing ?? 2, maxIncoming: o.maxIncoming ?? 2, outgoing: 0, incoming: 0 },
  };
}

function guest(name: string, memoryMiB: number, o: Partial<EvacuationGuest> = {}): EvacuationGuest {
  const hex = Buffer.from(name).toString('hex').slice(-12).padStart(12, '0');
  return { name, uuid: `00000000-0000-4000-8000-${hex}`, memoryKiB: memoryMiB * MiB, vcpus: 1, state: 'running', cpu: { mode: 'default' }, source: uri('a'), ...o };
}

/** A record for `guests` leaving `source` for `destinations`, with no headroom unless asked. */
function recordFor(source: PlacementHost, guests: EvacuationGuest[], destinations: PlacementHost[], options: PlacementOptions = {}, maxFailures?: number): EvacuationRecord {
  const plan = planEvacuation(source, guests, destinations, { headroomPercent: 0, ...options });
  return createRecord(plan, source, destinations, 0, maxFailures !== undefined ? { maxFailures } : {});
}

function entry(r: EvacuationRecord, name: string): GuestEntry {
  const e = r.guests.find((g) => g.guest.name === name);
  if (e === undefined) throw new Error(`no ${name}`);
  return e;
}

const short = (u: string | undefined) => u?.replace(/^ferry\+tls:\/\/|\/system$/g, '');

/** The fuzz tests' seeded PRNG as a function, so that "random" runs repeat. */
const rng = (seed: number): (() => number) => {
  const r = new Rng(seed);
  return () => r.next();
};

/** What the simulated executor saw: the most in flight at once, overall and per host and direction. */
interface Peaks {
  total: number;
  ways: Map<string, number>;
}

/**
 * Drives an evacuation as an executor would, against a fake clock: asks the
 * scheduler, starts what it says, lets the earliest migration end (after a
 * random 1-60 s, with a random outcome), and writes the record out as JSON
 * and reads it back after every step. Counts what is in flight from the
 * starts it made, not from the record, and checks every limit each time.
 */
function simulate(
  start: EvacuationRecord,
  seed: number,
  o: { maxParallel: number; failRate?: number; unknownRate?: number; otherLoad?: SchedulerState['otherLoad']; limits?: SchedulerState['limits'] },
): { record: EvacuationRecord; peaks: Peaks; starts: MigrationStart[] } {
  const rand = rng(seed);
  let r = start;
  let now = r.updatedAtMs;
  const running = new Map<string, { s: MigrationStart; endsAt: number }>();
  const peaks: Peaks = { total: 0, ways: new Map() };
  const all: MigrationStart[] = [];
  const limitOf = (u: string, way: 'out' | 'in') => {
    const h = [r.source, ...r.destinations].find((x) => x.uri === u)!;
    const l = o.limits?.[u] ?? { maxOutgoing: h.migrations.maxOutgoing, maxIncoming: h.migrations.maxIncoming };
    const other = o.otherLoad?.[u] ?? { outgoing: 0, incoming: 0 };
    return way === 'out' ? l.maxOutgoing - other.outgoing : l.maxIncoming - other.incoming;
  };
  for (let step = 0; step < 10_000; step++) {
    const starts = nextMigrations({ record: r, maxParallel: o.maxParallel, ...(o.otherLoad ? { otherLoad: o.otherLoad } : {}), ...(o.limits ? { limits: o.limits } : {}) });
    for (const s of starts) {
      expect(running.has(s.name), `${s.name} started twice`).toBe(false);
      r = markStarted(r, s.name, now);
      running.set(s.name, { s, endsAt: now + 1000 + Math.floor(rand() * 59_000) });
      all.push(s);
    }
    const ways = new Map<string, number>();
    for (const { s } of running.values()) {
      ways.set(`out ${s.source}`, (ways.get(`out ${s.source}`) ?? 0) + 1);
      if (!s.offline) ways.set(`in ${s.destination}`, (ways.get(`in ${s.destination}`) ?? 0) + 1);
    }
    expect(running.size).toBeLessThanOrEqual(o.maxParallel);
    for (const [k, n] of ways) {
      const [way, u] = k.split(' ') as ['out' | 'in', string];
      expect(n, `${k} at ${now} ms (seed ${seed})`).toBeLessThanOrEqual(limitOf(u, way));
      peaks.ways.set(k, Math.max(peaks.ways.get(k) ?? 0, n));
    }
    peaks.total = Math.max(peaks.total, running.size);
    if (running.size === 0) break;
    const [name, next] = [...running].sort((x, y) => x[1].endsAt - y[1].endsAt || (x[0] < y[0] ? -1 : 1))[0]!;
    running.delete(name);
    now = next.endsAt;
    const x = rand();
    const outcome: MigrationOutcome =
      x < (o.failRate ?? 0)
        ? { result: 'failed', error: `simulated failure on ${short(next.s.destination)}` }
        : x < (o.failRate ?? 0) + (o.unknownRate ?? 0)
          ? { result: 'unknown', error: 'connection to the source lost after the switch-over' }
          : { result: 'migrated', downtimeMs: 20 + Math.floor(rand() * 200) };
    r = markEnded(r, name, outcome, now);
    r = parseRecord(JSON.parse(JSON.stringify(r)));
  }
  expect(running.size).toBe(0);
  return { record: r, peaks, starts: all };
}

describe('nextMigrations: limits', () => {
  const a = host('a', { maxOutgoing: 4 });

  it('starts no more than the source sends, the destination takes and --max-parallel allows, running ones counted', () => {
    const r = recordFor(a, ['g1', 'g2', 'g3', 'g4', 'g5', 'g6'].map((n) => guest(n, 1024)), [host('b', { maxIncoming: 2 }), host('c', { maxIncoming: 2 })]);
    expect(nextMigrations({ record: r, maxParallel: 10 }).map((s) => s.name)).toEqual(['g1', 'g2', 'g3', 'g4']);
    expect(nextMigrations({ record: r, maxParallel: 3 })).toHaveLength(3);
    const two = markStarted(markStarted(r, 'g1', 0), 'g2', 0);
    expect(nextMigrations({ record: two, maxParallel: 3 }).map((s) => s.name)).toEqual(['g3']);
    expect(nextMigrations({ record: two, maxParallel: 10, limits: { [uri('a')]: { maxOutgoing: 2, maxIncoming: 2 } } })).toEqual([]);
    expect(nextMigrations({ record: r, maxParallel: 10, otherLoad: { [uri('a')]: { outgoing: 3, incoming: 0 } } })).toHaveLength(1);
    expect(nextMigrations({ record: r, maxParallel: 10, stopping: true })).toEqual([]);
  });

  it('lets a guest bound for a free host pass guests waiting for a full one', () => {
    // b is far freer, so the first three go there; the fourth goes to c.
    const r = recordFor(a, ['g1', 'g2', 'g3', 'g4'].map((n) => guest(n, 2048)), [host('b', { freeGiB: 10, maxIncoming: 1 }), host('c', { freeGiB: 4, maxIncoming: 1 })]);
    expect(r.guests.map((e) => short(e.destination))).toEqual(['b', 'b', 'b', 'c']);
    expect(nextMigrations({ record: r, maxParallel: 10 }).map((s) => `${s.name}->${short(s.destination)}`)).toEqual(['g1->b', 'g4->c']);
  });

  it("counts an offline move against the source's outgoing slots only, as ferryd does", () => {
    const r = recordFor(a, [guest('live', 1024), guest('def', 1024, { state: 'inactive' })], [host('b', { maxIncoming: 1 })], { includeInactive: true });
    expect(nextMigrations({ record: r, maxParallel: 10 }).map((s) => [s.name, s.offline])).toEqual([
      ['live', false],
      ['def', true],
    ]);
  });

  it('refuses a limit that is not a positive whole number', () => {
    const r = recordFor(a, [guest('g', 1024)], [host('b')]);
    expect(() => nextMigrations({ record: r, maxParallel: 0 })).toThrow(expect.objectContaining({ code: 'invalid_arg', message: expect.stringMatching(/--max-parallel/) }));
    expect(() => nextMigrations({ record: r, maxParallel: 2, limits: { [uri('b')]: { maxOutgoing: 1, maxIncoming: 0.5 } } })).toThrow(expect.objectContaining({ code: 'invalid_arg' }));
  });
});

describe('an evacuation run with a fake clock', () => {
  const sizes = [257, 300, 333, 511, 640, 700, 768, 900, 1000, 1100, 1300, 1500, 1999, 2047];
  const guests = sizes.map((m, i) => guest(`vm${String(i + 1).padStart(2, '0')}`, m));
  const hosts = () => [host('b', { maxIncoming: 2 }), host('c', { maxIncoming: 1 }), host('d', { maxIncoming: 2 })];
  const source = host('a', { maxOutgoing: 3 });

  it('moves every guest exactly once with every limit held, the limits reached (100 seeds)', () => {
    const peakTotals = new Set<number>();
    for (let seed = 1; seed <= 100; seed++) {
      const { record, peaks, starts } = simulate(recordFor(source, guests, hosts()), seed, { maxParallel: 4 });
      expect(record.guests.map((e) => e.status)).toEqual(sizes.map(() => 'done'));
      expect(starts).toHaveLength(sizes.length);
      expect(isSettled(record)).toBe(true);
      peakTotals.add(peaks.total);
      // The source's 3 outgoing slots bind before --max-parallel 4 does.
      expect(peaks.ways.get(`out ${uri('a')}`)).toBe(3);
      expect(peaks.ways.get(`in ${uri('c')}`)).toBe(1);
    }
    expect([...peakTotals]).toEqual([3]);
  });

  it('holds the limits when other clients use slots too, and with --max-parallel below every host limit', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const busy = simulate(recordFor(source, guests, hosts()), seed, { maxParallel: 4, otherLoad: { [uri('b')]: { outgoing: 0, incoming: 1 }, [uri('a')]: { outgoing: 1, incoming: 0 } } });
      expect(busy.peaks.ways.get(`in ${uri('b')}`) ?? 0).toBeLessThanOrEqual(1);
      expect(busy.peaks.ways.get(`out ${uri('a')}`)).toBe(2);
      const narrow = simulate(recordFor(host('a', { maxOutgoing: 8 }), guests, hosts()), seed, { maxParallel: 2 });
      expect(narrow.peaks.total).toBe(2);
    }
  });

  it('with failures and lost outcomes: holds the limits, never retries on a host that failed the guest, never retries an unknown outcome (200 seeds)', () => {
    let retriedAndMoved = 0;
    let gaveUp = 0;
    let checks = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const { record, starts } = simulate(recordFor(source, guests, hosts()), seed, { maxParallel: 4, failRate: 0.3, unknownRate: 0.05 });
      expect(isSettled(record)).toBe(true);
      for (const e of record.guests) {
        const failedAt = e.attempts.filter((x) => x.result === 'failed').map((x) => x.destination);
        expect(new Set(failedAt).size, `${e.guest.name} failed twice on one host (seed ${seed})`).toBe(failedAt.length);
        expect(e.excluded.map((x) => x.host).sort()).toEqual([...failedAt].sort());
        expect(failedAt.length).toBeLessThanOrEqual(3);
        const mine = starts.filter((s) => s.name === e.guest.name);
        expect(mine.map((s) => s.attempt)).toEqual(mine.map((_, i) => i + 1));
        if (e.status === 'done') {
          expect(failedAt).not.toContain(e.destination);
          if (failedAt.length > 0) retriedAndMoved++;
        } else if (e.status === 'check') {
          expect(e.attempts.at(-1)?.result).toBe('unknown');
          checks++;
        } else {
          expect(e.status).toBe('failed');
          gaveUp++;
        }
      }
    }
    // The cases the assertions above are about did occur.
    expect(retriedAndMoved).toBeGreaterThan(100);
    expect(gaveUp).toBeGreaterThan(10);
    expect(checks).toBeGreaterThan(10);
  });
});

describe('retry policy', () => {
  const a = host('a', { maxOutgoing: 4 });
  const three = () => [host('b', { freeGiB: 8 }), host('c', { freeGiB: 6 }), host('d', { freeGiB: 4 })];

  it('re-plans a guest left on the source onto the next best host, excluding each host that failed it, and gives up after 3 failures', () => {
    let r = recordFor(a, [guest('g', 1024)], three());
    expect(short(entry(r, 'g').destination)).toBe('b');
    r = markEnded(markStarted(r, 'g', 0), 'g', { result: 'failed', error: 'prepare failed: no space on device' }, 5000);
    expect(entry(r, 'g')).toMatchObject({ status: 'retrying', destination: uri('c'), excluded: [{ host: uri('b'), reason: 'its migration there failed: prepare failed: no space on device' }] });
    expect(entry(r, 'g').note).toBe('retry after failing on b (prepare failed: no space on device); most memory left after it: 5120 MiB (next d: 3072 MiB)');
    expect(nextMigrations({ record: r, maxParallel: 1 })).toEqual([{ name: 'g', uuid: entry(r, 'g').guest.uuid, source: uri('a'), destination: uri('c'), offline: false, attempt: 2 }]);
    r = markEnded(markStarted(r, 'g', 6000), 'g', { result: 'failed', error: 'link down' }, 7000);
    expect(short(entry(r, 'g').destination)).toBe('d');
    r = markEnded(markStarted(r, 'g', 8000), 'g', { result: 'failed', error: 'link down' }, 9000);
    expect(entry(r, 'g')).toMatchObject({ status: 'failed', note: 'gave up after 3 failed migrations; last on d: link down' });
    expect(nextMigrations({ record: r, maxParallel: 1 })).toEqual([]);
    expect(plannedLoads(r).size).toBe(0);
  });

  it('fails a guest when every other host has failed it or cannot take it, saying why for each', () => {
    let r = recordFor(a, [guest('g', 1024)], [host('b', { freeGiB: 8 }), host('c', { freeGiB: 6 })], {}, 5);
    r = markEnded(markStarted(r, 'g', 0), 'g', { result: 'failed', error: 'e1' }, 1);
    r = markEnded(markStarted(r, 'g', 2), 'g', { result: 'failed', error: 'e2' }, 3);
    expect(entry(r, 'g')).toMatchObject({
      status: 'failed',
      note: 'failed on c (e2) and no other host can take it: b: its migration there failed: e1',
    });
  });

  it("counts the memory other guests of the plan take when it re-plans", () => {
    let r = recordFor(a, [guest('x', 3072), guest('y', 3072)], [host('b', { freeGiB: 4 }), host('c', { freeGiB: 4 })]);
    expect(r.guests.map((e) => short(e.destination))).toEqual(['b', 'c']);
    r = markEnded(markStarted(r, 'x', 0), 'x', { result: 'failed', error: 'boom' }, 1);
    expect(entry(r, 'x').note).toBe('failed on b (boom) and no other host can take it: c: 1024 MiB free (3072 MiB already planned here), needs 3072 MiB');
  });

  it('records a lost outcome as needing a check, and never starts that guest again by itself', () => {
    let r = recordFor(a, [guest('g', 1024), guest('h', 512)], three());
    r = markEnded(markStarted(r, 'g', 0), 'g', { result: 'unknown', error: 'lost the source during finish' }, 1);
    expect(entry(r, 'g')).toMatchObject({ status: 'check', note: "the migration's outcome is unknown (lost the source during finish)" });
    expect(nextMigrations({ record: r, maxParallel: 4 }).map((s) => s.name)).toEqual(['h']);
    expect(inFlight(entry(r, 'g'))).toBe(false);
  });

  it('refuses transitions out of order and never changes the record it is given', () => {
    const r = recordFor(a, [guest('g', 1024)], three());
    const before = JSON.stringify(r);
    expect(() => markEnded(r, 'g', { result: 'migrated' }, 1)).toThrow(expect.objectContaining({ code: 'operation_invalid' }));
    const started = markStarted(r, 'g', 1);
    expect(() => markStarted(started, 'g', 2)).toThrow(expect.objectContaining({ code: 'operation_invalid', message: expect.stringMatching(/it is running/) }));
    expect(() => markStarted(r, 'nope', 2)).toThrow(expect.objectContaining({ code: 'no_domain' }));
    const elsewhere = markEnded(started, 'g', { result: 'migrated', downtimeMs: 40, at: uri('c') }, 3);
    expect(entry(elsewhere, 'g')).toMatchObject({ status: 'done', destination: uri('c'), note: 'found on c, not on the planned b' });
    expect(JSON.stringify(r)).toBe(before);
    expect(entry(started, 'g').status).toBe('running');
  });
});

describe('the record', () => {
  it('of a host with nothing to move is settled at once and says so', () => {
    const r = recordFor(host('a'), [], [host('b')]);
    expect(isSettled(r)).toBe(true);
    expect(nextMigrations({ record: r, maxParallel: 4 })).toEqual([]);
    expect(renderReport(r)).toBe(' Guest   Destination   Time   Downtime   Result\n' + '-'.repeat(49) + '\n\n0 of 0 moved, 0 failed, 0 to check\n');
  });

  it('survives JSON, and a record of another version is refused', () => {
    const r = recordFor(host('a'), [guest('g', 1024), guest('huge', 64 * 1024)], [host('b')]);
    expect(parseRecord(JSON.parse(JSON.stringify(r)))).toEqual(r);
    expect(entry(r, 'huge')).toMatchObject({ status: 'failed', note: 'no destination can take it: b: 16384 MiB free, needs 65536 MiB' });
    expect(() => parseRecord({ ...r, version: 2 })).toThrow(expect.objectContaining({ code: 'operation_invalid', message: expect.stringMatching(/version 2 is not/) }));
    expect(() => parseRecord({ hello: 1 })).toThrow(expect.objectContaining({ code: 'operation_invalid' }));
    const damaged = JSON.parse(JSON.stringify(r));
    damaged.guests[1].status = 'teleported';
    expect(() => parseRecord(damaged)).toThrow(expect.objectContaining({ code: 'operation_invalid', message: expect.stringMatching(/entry 2 is damaged/) }));
  });
});

describe('reconcile after an interruption', () => {
  const a = host('a', { maxOutgoing: 4 });
  const dests = () => [host('b', { maxIncoming: 2 }), host('c', { maxIncoming: 2 })];
  const names = ['g1', 'g2', 'g3', 'g4', 'g5', 'g6'];

  /** The record as the killed run left it on disk: g1 done, g2 failed on its host and re-planned, g3 and g4 migrating. */
  function interrupted(): EvacuationRecord {
    let r = recordFor(a, names.map((n, i) => guest(n, 2048 - i)), dests());
    for (const s of nextMigrations({ record: r, maxParallel: 4 })) r = markStarted(r, s.name, 0);
    expect(r.guests.filter(inFlight).map((e) => e.guest.name)).toEqual(['g1', 'g2', 'g3', 'g4']);
    r = markEnded(r, 'g1', { result: 'migrated', downtimeMs: 30 }, 10_000);
    r = markEnded(r, 'g2', { result: 'failed', error: 'prepare refused' }, 11_000);
    return parseRecord(JSON.parse(JSON.stringify(r)));
  }

  const on = (r: EvacuationRecord, name: string, where: 'source' | 'dest', migrating?: boolean) => {
    const e = entry(r, name);
    return [e.guest.uuid, { hosts: [where === 'source' ? uri('a') : e.destination!], ...(migrating !== undefined ? { migrating } : {}) }] as const;
  };

  it('takes guests found on a destination as done, starts interrupted ones again, and leaves the rest as they were', () => {
    const r = interrupted();
    const g5 = entry(r, 'g5');
    const observed: Observation = {
      guests: Object.fromEntries([
        on(r, 'g1', 'dest'),
        on(r, 'g2', 'source'),
        on(r, 'g3', 'dest'), // its migration finished while nobody watched
        on(r, 'g4', 'source', false), // its migration ended without moving it
        [g5.guest.uuid, { hosts: [uri('b') === g5.destination ? uri('c') : uri('b')] }], // moved by hand, elsewhere
      ]),
    };
    const after = reconcile(r, observed, 20_000);
    expect(after.guests.map((e) => [e.guest.name, e.status])).toEqual([
      ['g1', 'done'],
      ['g2', 'retrying'],
      ['g3', 'done'],
      ['g4', 'pending'],
      ['g5', 'done'],
      ['g6', 'pending'],
    ]);
    expect(entry(after, 'g1')).toEqual(entry(r, 'g1'));
    expect(entry(after, 'g3').attempts).toEqual([{ destination: entry(r, 'g3').destination, startedAtMs: 0, endedAtMs: 20_000, result: 'migrated' }]);
    expect(entry(after, 'g3').note).toBe(`found on ${short(entry(r, 'g3').destination)} after the interruption`);
    // An interrupted migration is not its destination's failure: nothing excluded, the same destination.
    expect(entry(after, 'g4')).toMatchObject({ destination: entry(r, 'g4').destination, excluded: [], note: 'interrupted, still on the source; will start again' });
    expect(entry(after, 'g4').attempts.map((x) => x.result)).toEqual(['interrupted']);
    expect(entry(after, 'g5').note).toMatch(/^found on [bc], not on the planned [bc]$/);

    // The re-run continues where the first stopped: nothing done is started again, and it finishes.
    const { record, starts } = simulate(after, 3, { maxParallel: 4 });
    expect(starts.map((s) => s.name).sort()).toEqual(['g2', 'g4', 'g6']);
    expect(record.guests.every((e) => e.status === 'done')).toBe(true);
    expect(entry(record, 'g4').attempts.map((x) => x.result)).toEqual(['interrupted', 'migrated']);
    expect(renderReport(record)).toMatch(/ g4 +[bc] +[\d.]+ s +\d+ ms +migrated\n/);
  });

  it('asks for a check, and holds its slots, where it cannot tell: still migrating, not asked, seen twice or nowhere, destination silent', () => {
    const r = interrupted();
    const g3 = entry(r, 'g3');
    const g4 = entry(r, 'g4');
    const stillMigrating = reconcile(r, { guests: Object.fromEntries([on(r, 'g3', 'source', true), on(r, 'g4', 'source')]) }, 20_000);
    expect(entry(stillMigrating, 'g3')).toMatchObject({ status: 'check', note: 'its migration is still in flight on the source' });
    expect(entry(stillMigrating, 'g4')).toMatchObject({ status: 'check', note: 'on the source, but whether its migration is still in flight was not asked' });
    // Both may still be streaming: the scheduler keeps their slots. The plan sent g1 g4 g5 to b
    // and g2 g3 g6 to c; g2 failed on c and was re-planned to b. With g4 on its way to b and g3
    // to c, g2 takes b's second incoming slot, g5 waits for b, and g6 takes c's second.
    expect(stillMigrating.guests.filter(inFlight).map((e) => e.guest.name)).toEqual(['g3', 'g4']);
    expect(stillMigrating.guests.map((e) => short(e.destination)).join(' ')).toBe('b b c b b c');
    expect(nextMigrations({ record: stillMigrating, maxParallel: 4 }).map((s) => s.name)).toEqual(['g2', 'g6']);

    const notLooked = reconcile(r, { guests: {} }, 20_000);
    expect(entry(notLooked, 'g3').status).toBe('check');
    expect(entry(notLooked, 'g6').status).toBe('pending');

    const twice = reconcile(r, { guests: { [g3.guest.uuid]: { hosts: [uri('a'), g3.destination!] }, [g4.guest.uuid]: { hosts: [] } } }, 20_000);
    expect(entry(twice, 'g3').note).toBe(`found on a and ${short(g3.destination)}`);
    expect(entry(twice, 'g4').note).toBe('found on no host');

    const silent = reconcile(r, { guests: Object.fromEntries([on(r, 'g3', 'source', false)]), unreachable: [g3.destination!] }, 20_000);
    expect(entry(silent, 'g3').note).toBe(`seen on the source, but its destination ${short(g3.destination)} did not answer`);

    // Once the hosts say where they are, a later reconcile settles them.
    const settled = reconcile(stillMigrating, { guests: Object.fromEntries([on(r, 'g3', 'dest'), on(r, 'g4', 'source', false)]) }, 30_000);
    expect([entry(settled, 'g3').status, entry(settled, 'g4').status]).toEqual(['done', 'pending']);
  });

  it('moves again a guest recorded as done but found back on the source, and keeps failed guests failed', () => {
    let r = recordFor(a, [guest('back', 1024), guest('lost', 1024)], dests(), {}, 1);
    r = markEnded(markStarted(r, 'back', 0), 'back', { result: 'migrated' }, 1);
    r = markEnded(markStarted(r, 'lost', 0), 'lost', { result: 'failed', error: 'x' }, 1);
    const after = reconcile(r, { guests: Object.fromEntries([on(r, 'back', 'source', false), on(r, 'lost', 'source', false)]) }, 5);
    expect(entry(after, 'back')).toMatchObject({ status: 'pending', note: `recorded as moved to ${short(entry(r, 'back').destination)} but found on the source; will move again` });
    expect(entry(after, 'lost').status).toBe('failed');
  });
});

describe('renderReport', () => {
  it('prints guest, destination, time, downtime and result, then the totals', () => {
    const a = host('a', { maxOutgoing: 4 });
    let r = recordFor(a, [guest('web', 2048), guest('db', 1024), guest('cache', 900), guest('mail', 800), guest('huge', 64 * 1024), guest('arch', 512, { state: 'inactive' })], [
      host('b', { freeGiB: 8 }),
      host('c', { freeGiB: 8 }),
    ]);
    r = markEnded(markStarted(r, 'web', 1_000), 'web', { result: 'migrated', downtimeMs: 42 }, 13_500);
    r = markEnded(markStarted(r, 'db', 1_000), 'db', { result: 'failed', error: 'link cut' }, 4_000);
    r = markEnded(markStarted(r, 'db', 4_000), 'db', { result: 'migrated', downtimeMs: 7 }, 9_250);
    r = markEnded(markStarted(r, 'cache', 1_000), 'cache', { result: 'unknown', error: 'source lost' }, 2_000);
    expect(progressOf(r)).toEqual({ total: 5, pending: 1, running: 0, retrying: 0, done: 2, failed: 1, check: 1 });
    expect(renderReport(r)).toBe(
      [
        ' Guest   Destination   Time     Downtime   Result',
        '-'.repeat(78),
        ' web     b             12.5 s   42 ms      migrated',
        ' db      b             5.3 s    7 ms       migrated (attempt 2; failed on c)',
        ' cache   c             -        -          to check',
        ' mail    c             -        -          not started',
        ' huge    -             -        -          failed, stays on the source',
        '',
        "cache: check where it runs: the migration's outcome is unknown (source lost)",
        'huge: no destination can take it: b: 8192 MiB free, needs 65536 MiB; c: 8192 MiB free, needs 65536 MiB',
        '',
        '2 of 5 moved, 1 failed, 1 to check, 1 not finished (run again to continue)',
        'skipped arch: inactive; include inactive definitions to move it offline',
        '',
      ].join('\n'),
    );
  });
});

describe('the progress the command prints while it follows', () => {
  it('a line per guest that moved on, and a progress line with the totals and each migration in flight', () => {
    const a = host('a', { maxOutgoing: 4 });
    const r0 = recordFor(a, [guest('web', 2048), guest('db', 1024), guest('mail', 800)], [host('b', { freeGiB: 8 }), host('c', { freeGiB: 8 })]);
    const r1 = markStarted(markStarted(r0, 'web', 1_000), 'db', 1_000);
    expect(renderGuestChanges(null, r1)).toBe('web: migrating to b\ndb: migrating to c\n');
    expect(renderGuestChanges(r1, r1)).toBe('');
    let r2 = markEnded(r1, 'web', { result: 'migrated', downtimeMs: 31 }, 6_200);
    r2 = markEnded(r2, 'db', { result: 'failed', error: 'prepare refused' }, 2_000);
    expect(renderGuestChanges(r1, r2)).toBe('web: migrated to b in 5.2 s, downtime 31 ms\ndb: failed on c (prepare refused); will try b\n');
    const r3 = markStarted(r2, 'db', 2_100);
    expect(renderGuestChanges(r2, r3)).toBe('db: migrating to b (attempt 2)\n');
    const line = renderEvacuationLine({ state: 'stopping', record: r3, inFlight: [{ name: 'db', destination: uri('b'), dataTotal: 1000, dataRemaining: 250 }, { name: 'x', destination: uri('c') }] });
    expect(line).toBe('[1/3 moved, stopping] db→b 75 % x→c …');
  });
});
