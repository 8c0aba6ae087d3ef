import { describe, expect, it } from 'vitest';
import { capacityKiB, resolvePlacementOptions } from '../../src/evacuation/placement.js';
import { planEvacuation } from '../../src/evacuation/plan.js';
import type { EvacuationGuest, EvacuationPlan, PlacementHost } from '../../src/evacuation/types.js';
import { renderPlan } from '../../src/cli/evacuation-render.js';
import { Rng } from '../fuzz/rng.js';

const MiB = 1024; // KiB
const GiB = 1024 * MiB;

const BASE_FEATURES = ['sse2', 'sse4-1', 'avx', 'avx2', 'aes'];
const SOURCE_URI = 'ferry+tls://a/system';

function host(name: string, o: Partial<PlacementHost> & { freeGiB?: number } = {}): PlacementHost {
  const { freeGiB, ...rest } = o;
  const total = (freeGiB ?? 16) * GiB;
  return {
    uri: `ferry+tls://${name}/system`,
    name,
    cpus: 8,
    cpu: { model: 'Skylake-Server', fingerprint: 'fp-skylake', features: BASE_FEATURES },
    memory: { totalKiB: total, availableKiB: total, committedKiB: 0 },
    guests: 0,
    maintenance: false,
    migrations: { maxOutgoing: 2, maxIncoming: 2, outgoing: 0, incoming: 0 },
    ...rest,
  };
}

function uuidOf(name: string): string {
  const hex = Buffer.from(name).toString('hex').slice(-12).padStart(12, '0');
  return `00000000-0000-4000-8000-${hex}`;
}

function guest(name: string, memoryMiB: number, o: Partial<EvacuationGuest> = {}): EvacuationGuest {
  return { name, uuid: uuidOf(name), memoryKiB: memoryMiB * MiB, vcpus: 1, state: 'running', cpu: { mode: 'default' }, source: SOURCE_URI, ...o };
}

const source = host('a');
/** No headroom: the numbers in these tests are the hosts' own. */
const bare = { headroomPercent: 0 };

function destinationsOf(plan: EvacuationPlan): Record<string, string> {
  return Object.fromEntries(plan.placements.map((p) => [p.guest.name, p.destination.replace(/^ferry\+tls:\/\/|\/system$/g, '')]));
}

function refusalsOf(plan: EvacuationPlan, name: string): string[] {
  return plan.unplaced.find((u) => u.guest.name === name)?.refusals.map((r) => r.message) ?? [];
}

/** The fuzz tests' seeded PRNG as a function, so that "random" cases repeat. */
const rng = (seed: number): (() => number) => {
  const r = new Rng(seed);
  return () => r.next();
};

describe('planEvacuation: memory', () => {
  it('places a guest that fills a host exactly, and refuses one that needs a KiB more', () => {
    const b = host('b', { freeGiB: 4 });
    expect(destinationsOf(planEvacuation(source, [guest('fits', 4096)], [b], bare))).toEqual({ fits: 'b' });
    const over = guest('over', 4096, { memoryKiB: 4 * GiB + 1 });
    const plan = planEvacuation(source, [over], [b], bare);
    expect(plan.placements).toEqual([]);
    expect(plan.unplaced.map((u) => u.refusals[0]?.kind)).toEqual(['memory']);
  });

  it("says each host's reason the way an operator reads it", () => {
    const b = host('b', { freeGiB: 4, memory: { totalKiB: 4 * GiB, availableKiB: 512 * MiB, committedKiB: 0 } });
    const c = host('c', { maintenance: true });
    const plan = planEvacuation(source, [guest('web1', 1024)], [b, c], bare);
    expect(refusalsOf(plan, 'web1')).toEqual(['b: 512 MiB free, needs 1024 MiB', 'c: in maintenance']);
  });

  it('counts memory committed to guests even when the kernel reports it available (no overcommit)', () => {
    // 7 GiB available, but 6 of the 8 GiB are promised to guests that have not touched them yet.
    const b = host('b', { memory: { totalKiB: 8 * GiB, availableKiB: 7 * GiB, committedKiB: 6 * GiB } });
    expect(capacityKiB(b, resolvePlacementOptions(bare))).toBe(2 * GiB);
    expect(refusalsOf(planEvacuation(source, [guest('db', 3072)], [b], bare), 'db')).toEqual(['b: 2048 MiB free, needs 3072 MiB']);
    // And the other way round: less available than uncommitted (host processes, page cache pinned).
    const c = host('c', { memory: { totalKiB: 8 * GiB, availableKiB: 1 * GiB, committedKiB: 0 } });
    expect(capacityKiB(c, resolvePlacementOptions(bare))).toBe(1 * GiB);
  });

  it('keeps the larger of the two headrooms free and says so', () => {
    const b = host('b', { freeGiB: 10 });
    expect(capacityKiB(b, resolvePlacementOptions({}))).toBe(9 * GiB); // default: 10 %
    expect(capacityKiB(b, resolvePlacementOptions({ headroomPercent: 10, headroomMiB: 2048 }))).toBe(8 * GiB);
    expect(capacityKiB(b, resolvePlacementOptions({ headroomPercent: 50, headroomMiB: 2048 }))).toBe(5 * GiB);
    const plan = planEvacuation(source, [guest('big', 9 * 1024)], [b], { headroomMiB: 2048 });
    expect(refusalsOf(plan, 'big')).toEqual(['b: 8192 MiB free (2048 MiB kept free), needs 9216 MiB']);
  });

  it('counts what the plan already sent to a host', () => {
    const b = host('b', { freeGiB: 3 });
    const plan = planEvacuation(source, [guest('one', 2048), guest('two', 2048)], [b], bare);
    expect(destinationsOf(plan)).toEqual({ one: 'b' });
    expect(refusalsOf(plan, 'two')).toEqual(['b: 1024 MiB free (2048 MiB already planned here), needs 2048 MiB']);
    expect(plan.hosts).toEqual([{ uri: b.uri, name: 'b', maintenance: false, freeBeforeKiB: 3 * GiB, freeAfterKiB: 1 * GiB, guestsBefore: 0, guestsAfter: 1, incoming: 1 }]);
  });

  it('plans the guests that fit even when others fit nowhere, and places a smaller one in the gap a larger one left', () => {
    const b = host('b', { freeGiB: 5 });
    const plan = planEvacuation(source, [guest('huge', 8192), guest('mid', 3072), guest('small', 2048)], [b], bare);
    expect(destinationsOf(plan)).toEqual({ mid: 'b', small: 'b' });
    expect(plan.unplaced.map((u) => u.guest.name)).toEqual(['huge']);
  });
});

describe('planEvacuation: hosts that cannot take a guest', () => {
  it('never places on a host in maintenance, nor on the evacuated host itself', () => {
    const b = host('b', { maintenance: true, freeGiB: 64 });
    const c = host('c', { freeGiB: 4 });
    expect(destinationsOf(planEvacuation(source, [guest('g1', 1024), guest('g2', 1024)], [b, c], bare))).toEqual({ g1: 'c', g2: 'c' });
    const plan = planEvacuation(source, [guest('g1', 1024)], [source, b], bare);
    expect(refusalsOf(plan, 'g1')).toEqual(['a: is the host being evacuated', 'b: in maintenance']);
  });

  it('sends a host-passthrough guest only to a host with the same CPU fingerprint, unless unsafe', () => {
    const same = host('b', { freeGiB: 4 });
    const other = host('c', { freeGiB: 64, cpu: { model: 'EPYC-Rome', fingerprint: 'fp-rome', features: ['sse2', 'sse4-1', 'avx', 'avx2', 'sha-ni'] } });
    const pt = guest('pt', 2048, { cpu: { mode: 'host-passthrough' } });
    // c has far more memory, but the guest would see its CPU change under it there.
    expect(destinationsOf(planEvacuation(source, [pt], [other, same], bare))).toEqual({ pt: 'b' });
    const onlyOther = planEvacuation(source, [pt], [other], bare);
    expect(refusalsOf(onlyOther, 'pt')).toEqual([
      "c: CPU EPYC-Rome differs from the source's Skylake-Server (missing: aes; extra: sha-ni) and the guest is host-passthrough (unsafe would allow it)",
    ]);
    expect(destinationsOf(planEvacuation(source, [pt], [other], { ...bare, unsafe: true }))).toEqual({ pt: 'c' });
  });

  it('sends a custom or host-model guest only where every required feature is, whatever the spelling', () => {
    const old = host('b', { freeGiB: 64 });
    const modern = host('c', { freeGiB: 4, cpu: { model: 'Icelake-Server', fingerprint: 'fp-icelake', features: [...BASE_FEATURES, 'avx512f', 'avx512-vnni'] } });
    const custom = guest('ml', 2048, { cpu: { mode: 'custom', model: 'Icelake-Server', requiredFeatures: ['avx512f', 'avx512_vnni'] } });
    const hostModel = guest('hm', 1024, { cpu: { mode: 'host-model', requiredFeatures: ['avx2', 'aes'] } });
    const plan = planEvacuation(source, [custom, hostModel], [old, modern], bare);
    expect(destinationsOf(plan)).toEqual({ ml: 'c', hm: 'b' });
    const refused = planEvacuation(source, [custom], [old], bare);
    expect(refusalsOf(refused, 'ml')).toEqual(["b: CPU Skylake-Server lacks avx512-vnni,avx512f, required by the guest's custom CPU of model Icelake-Server"]);
  });

  it('sends only guests without a <cpu> to a host whose CPU is not known', () => {
    const unknown = host('b', { cpu: { model: 'unknown', fingerprint: '', features: [] } });
    const plan = planEvacuation(source, [guest('plain', 512), guest('pt', 512, { cpu: { mode: 'host-passthrough' } })], [unknown], bare);
    expect(destinationsOf(plan)).toEqual({ plain: 'b' });
    expect(refusalsOf(plan, 'pt')).toEqual(["b: CPU not known (its QEMU could not be asked), and the guest's CPU is host-passthrough"]);
    const unknownSource = host('a', { cpu: { model: 'unknown', fingerprint: '', features: [] } });
    expect(refusalsOf(planEvacuation(unknownSource, [guest('pt', 512, { cpu: { mode: 'host-passthrough' } })], [host('c')], bare), 'pt')).toEqual([
      "c: the source's CPU is not known, so it cannot be compared (unsafe would allow it)",
    ]);
  });

  it('refuses a host with fewer CPUs than the guest has vCPUs, unless its source had fewer still', () => {
    const wide = guest('wide', 1024, { vcpus: 6 });
    expect(refusalsOf(planEvacuation(source, [wide], [host('b', { cpus: 4 })], bare), 'wide')).toEqual(['b: 4 CPUs, the guest has 6 vCPUs']);
    // 16 vCPUs on an 8-CPU source: another 8-CPU host is no worse; a 4-CPU one is.
    const wider = guest('wider', 1024, { vcpus: 16 });
    const plan = planEvacuation(source, [wider], [host('b', { cpus: 4 }), host('c', { cpus: 8 })], bare);
    expect(destinationsOf(plan)).toEqual({ wider: 'c' });
    expect(refusalsOf(planEvacuation(source, [wider], [host('b', { cpus: 4 })], bare), 'wider')).toEqual(['b: 4 CPUs, the guest has 16 vCPUs and ran on 8']);
  });

  it('gives the first reason per host: maintenance before CPU before memory', () => {
    const b = host('b', { maintenance: true, freeGiB: 1, cpu: { model: 'Old', fingerprint: 'x', features: [] } });
    const c = host('c', { freeGiB: 1, cpu: { model: 'Old', fingerprint: 'x', features: [] } });
    const plan = planEvacuation(source, [guest('g', 4096, { cpu: { mode: 'host-passthrough' } })], [b, c], bare);
    expect(plan.unplaced[0]?.refusals.map((r) => r.kind)).toEqual(['maintenance', 'cpu']);
  });
});

describe('planEvacuation: inactive definitions', () => {
  it('skips them unless asked, then moves them after the running guests, needing no memory but a host that could run them', () => {
    const full = host('b', { memory: { totalKiB: 4 * GiB, availableKiB: 0, committedKiB: 4 * GiB } });
    const off = guest('archive', 8192, { state: 'inactive' });
    const running = guest('web', 512);
    const skipped = planEvacuation(source, [off], [full], bare);
    expect(skipped.skipped.map((s) => [s.guest.name, s.reason])).toEqual([['archive', 'inactive; include inactive definitions to move it offline']]);
    const c = host('c', { freeGiB: 1 });
    const plan = planEvacuation(source, [off, running], [full, c], { ...bare, includeInactive: true });
    expect(plan.placements.map((p) => p.guest.name)).toEqual(['web', 'archive']);
    expect(plan.hosts.map((h) => h.freeAfterKiB)).toEqual([0, 512 * MiB]);
    const inMaintenance = planEvacuation(source, [off], [host('d', { maintenance: true })], { includeInactive: true });
    expect(refusalsOf(inMaintenance, 'archive')).toEqual(['d: in maintenance']);
  });
});

describe('planEvacuation: spreading', () => {
  const ODD_SIZES = [257, 300, 511, 640, 700, 768, 900, 1000, 1100, 1300, 1500, 1999];

  it('spreads 12 guests of odd sizes over 2 equal hosts to within one guest of each other, largest first', () => {
    const guests = ODD_SIZES.map((m, i) => guest(`g${String(i + 1).padStart(2, '0')}`, m));
    const plan = planEvacuation(source, guests, [host('b'), host('c')], bare);
    expect(plan.unplaced).toEqual([]);
    expect(plan.placements.map((p) => p.guest.memoryKiB / MiB)).toEqual([...ODD_SIZES].reverse());
    const [b, c] = plan.hosts;
    expect(b!.guestsAfter + c!.guestsAfter).toBe(12);
    expect(Math.abs(b!.freeAfterKiB - c!.freeAfterKiB)).toBeLessThanOrEqual(1999 * MiB);
    // Worked by hand: each guest to the host with less placed so far (b on a tie):
    // b 1999 1100 900 700 511 257 = 5467, c 1500 1300 1000 768 640 300 = 5508.
    expect([16 * 1024 - b!.freeAfterKiB / MiB, 16 * 1024 - c!.freeAfterKiB / MiB]).toEqual([5467, 5508]);
    expect([b!.incoming, c!.incoming]).toEqual([6, 6]);
  });

  it('stays within the largest guest for any sizes over 2 to 4 hosts (200 seeded cases)', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const rand = rng(seed);
      const n = 5 + Math.floor(rand() * 30);
      const guests = Array.from({ length: n }, (_, i) => guest(`s${seed}g${i}`, 64 + Math.floor(rand() * 4000)));
      const hosts = Array.from({ length: 2 + Math.floor(rand() * 3) }, (_, i) => host(`h${i}`, { freeGiB: 256 }));
      const plan = planEvacuation(source, guests, hosts, bare);
      expect(plan.unplaced).toEqual([]);
      const free = plan.hosts.map((h) => h.freeAfterKiB);
      const largest = Math.max(...guests.map((g) => g.memoryKiB));
      expect(Math.max(...free) - Math.min(...free), `seed ${seed}`).toBeLessThanOrEqual(largest);
    }
  });

  it('fills the emptier host first when the hosts start unequal', () => {
    const b = host('b', { freeGiB: 8 });
    const c = host('c', { freeGiB: 2 });
    const plan = planEvacuation(source, [1024, 1024, 1024, 1024, 1024, 1024, 1024].map((m, i) => guest(`e${i}`, m)), [b, c], bare);
    // b takes guests until it has no more free than c, then they alternate: 8-6=2 GiB, then one each way.
    expect(plan.hosts.map((h) => h.incoming)).toEqual([6, 1]);
    expect(plan.hosts.map((h) => h.freeAfterKiB / GiB)).toEqual([2, 1]);
  });

  it('breaks a tie in memory by the fewest guests, then by the order given, and says why', () => {
    const busy = host('b', { guests: 3 });
    const idle = host('c', { guests: 0 });
    const equalSizes = Array.from({ length: 6 }, (_, i) => guest(`q${i}`, 1024));
    const plan = planEvacuation(source, equalSizes, [busy, idle], bare);
    expect(plan.placements[0]).toMatchObject({ destination: idle.uri, why: 'as much memory left as b (15360 MiB), fewer guests (0 vs 3)' });
    expect(plan.placements[1]).toMatchObject({ destination: busy.uri, why: 'most memory left after it: 15360 MiB (next c: 14336 MiB)' });
    // Alternating from then on, ties going to the host with fewer guests: 3 each, so 6 and 3.
    expect(plan.hosts.map((h) => h.guestsAfter)).toEqual([6, 3]);
    const twins = planEvacuation(source, [guest('t', 1024)], [host('x'), host('y')], bare);
    expect(twins.placements[0]).toMatchObject({ destination: 'ferry+tls://x/system', why: 'same memory left and guests as y; first given' });
  });

  it('gives the same plan whatever order the guests come in', () => {
    const guests = ODD_SIZES.map((m, i) => guest(`g${i}`, m, { vcpus: 1 + (i % 3) }));
    const hosts = [host('b', { freeGiB: 6 }), host('c', { freeGiB: 5, guests: 2 }), host('d', { freeGiB: 3 })];
    const first = planEvacuation(source, guests, hosts, bare);
    const rand = rng(7);
    for (let round = 0; round < 20; round++) {
      const shuffled = [...guests].sort(() => rand() - 0.5);
      expect(planEvacuation(source, shuffled, hosts, bare)).toEqual(first);
    }
  });
});

describe('planEvacuation: invariants over random fleets (300 seeded cases)', () => {
  it('never overfills a host, never uses one in maintenance or with the wrong CPU, and accounts for every guest once', () => {
    const cpus = [
      { model: 'Skylake-Server', fingerprint: 'fp-skylake', features: BASE_FEATURES },
      { model: 'Icelake-Server', fingerprint: 'fp-icelake', features: [...BASE_FEATURES, 'avx512f'] },
      { model: 'EPYC-Rome', fingerprint: 'fp-rome', features: ['sse2', 'sse4-1', 'avx', 'avx2', 'sha-ni'] },
    ];
    const seen = { placed: 0, unplaced: 0, passthroughPlaced: 0, memoryRefusals: 0, cpuRefusals: 0 };
    for (let seed = 1; seed <= 300; seed++) {
      const rand = rng(seed);
      const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
      const hosts = Array.from({ length: 1 + Math.floor(rand() * 4) }, (_, i) => {
        const total = (2 + Math.floor(rand() * 30)) * GiB;
        const committed = Math.floor(rand() * total * 0.8);
        return host(`h${i}`, { cpus: pick([2, 4, 8]), cpu: pick(cpus), maintenance: rand() < 0.15, guests: Math.floor(rand() * 5), memory: { totalKiB: total, availableKiB: Math.floor(rand() * total), committedKiB: committed } });
      });
      const guests = Array.from({ length: Math.floor(rand() * 25) }, (_, i) =>
        guest(`r${i}`, 64 + Math.floor(rand() * 6000), {
          vcpus: pick([1, 2, 4, 8]),
          state: rand() < 0.2 ? 'inactive' : 'running',
          cpu: pick([{ mode: 'default' }, { mode: 'host-passthrough' }, { mode: 'custom', model: 'Icelake-Server', requiredFeatures: ['avx512f'] }, { mode: 'host-model', requiredFeatures: ['avx2'] }] as const),
        }),
      );
      const options = { headroomPercent: pick([0, 5, 10]), headroomMiB: pick([0, 256]), includeInactive: rand() < 0.5 };
      const plan = planEvacuation(source, guests, hosts, options);
      const resolved = resolvePlacementOptions(options);
      const where = `seed ${seed}`;
      // Every guest once, in exactly one list.
      const listed = [...plan.placements.map((p) => p.guest.name), ...plan.unplaced.map((u) => u.guest.name), ...plan.skipped.map((x) => x.guest.name)];
      expect(listed.sort(), where).toEqual(guests.map((g) => g.name).sort());
      for (const h of hosts) {
        const mine = plan.placements.filter((p) => p.destination === h.uri).map((p) => p.guest);
        const used = mine.filter((g) => g.state === 'running').reduce((a, g) => a + g.memoryKiB, 0);
        expect(used, where).toBeLessThanOrEqual(capacityKiB(h, resolved));
        if (h.maintenance) expect(mine, where).toEqual([]);
        for (const g of mine) {
          expect(h.cpus, where).toBeGreaterThanOrEqual(Math.min(g.vcpus, source.cpus));
          if (g.cpu.mode === 'host-passthrough') expect(h.cpu.fingerprint, where).toBe(source.cpu.fingerprint);
          if (g.cpu.mode === 'custom' || g.cpu.mode === 'host-model') for (const f of g.cpu.requiredFeatures) expect(h.cpu.features, where).toContain(f);
        }
      }
      // A guest left out has one reason per host, and none of them is "it fits".
      for (const u of plan.unplaced) expect(u.refusals.map((r) => r.host), where).toEqual(hosts.map((h) => h.uri));
      if (!options.includeInactive) expect(plan.placements.every((p) => p.guest.state === 'running'), where).toBe(true);
      seen.placed += plan.placements.length;
      seen.unplaced += plan.unplaced.length;
      seen.passthroughPlaced += plan.placements.filter((p) => p.guest.cpu.mode === 'host-passthrough').length;
      const kinds = plan.unplaced.flatMap((u) => u.refusals.map((r) => r.kind));
      seen.memoryRefusals += kinds.filter((k) => k === 'memory').length;
      seen.cpuRefusals += kinds.filter((k) => k === 'cpu').length;
    }
    // The fleets were tight enough to refuse and roomy enough to place: the checks above bit.
    for (const [what, n] of Object.entries(seen)) expect(n, what).toBeGreaterThan(100);
  });
});

describe('planEvacuation: input checked first', () => {
  it('refuses inconsistent input with invalid_arg and a sentence', () => {
    const b = host('b');
    expect(() => planEvacuation(source, [guest('g', 1)], [])).toThrow(expect.objectContaining({ code: 'invalid_arg', message: expect.stringMatching(/no destination given/) }));
    expect(() => planEvacuation(source, [guest('g', 1)], [b, host('b')])).toThrow(expect.objectContaining({ code: 'invalid_arg', message: expect.stringMatching(/given twice/) }));
    expect(() => planEvacuation(source, [guest('g', 1), guest('g', 2)], [b])).toThrow(expect.objectContaining({ code: 'invalid_arg', message: expect.stringMatching(/listed twice/) }));
    expect(() => planEvacuation(source, [guest('g', 1, { source: 'ferry+tls://z/system' })], [b])).toThrow(expect.objectContaining({ code: 'invalid_arg', message: expect.stringMatching(/not on the evacuated host/) }));
    expect(() => planEvacuation(source, [guest('g', 0)], [b])).toThrow(expect.objectContaining({ code: 'invalid_arg' }));
    expect(() => planEvacuation(source, [], [b], { headroomPercent: 100 })).toThrow(expect.objectContaining({ code: 'invalid_arg', message: expect.stringMatching(/headroom of 100 %/) }));
    expect(() => planEvacuation(source, [], [b], { headroomMiB: -1 })).toThrow(expect.objectContaining({ code: 'invalid_arg' }));
  });
});

describe('renderPlan', () => {
  it('prints the plan table, the hosts before and after, and a summary', () => {
    const b = host('b', { freeGiB: 4, memory: { totalKiB: 4 * GiB, availableKiB: 1536 * MiB, committedKiB: 0 } });
    const c = host('c', { maintenance: true });
    const d = host('d', { freeGiB: 6, guests: 1 });
    const plan = planEvacuation(source, [guest('web1', 1024), guest('db', 3072), guest('big', 8192), guest('old', 512, { state: 'inactive' })], [b, c, d], bare);
    expect(renderPlan(plan)).toBe(
      [
        ' Guest   Memory     vCPUs   Destination   Why',
        '-'.repeat(110),
        ' db      3072 MiB   1       d             the only host that can take it',
        ' web1    1024 MiB   1       d             most memory left after it: 2048 MiB (next b: 512 MiB)',
        " big     8192 MiB   1       -             no destination, stays (each host's reason below)",
        ' old     512 MiB    1       -             skipped: inactive; include inactive definitions to move it offline',
        '',
        'big (8192 MiB) fits nowhere:',
        '  b: 1536 MiB free, needs 8192 MiB',
        '  c: in maintenance',
        '  d: 6144 MiB free, needs 8192 MiB',
        '',
        ' Host                 Free now    Free after   Guests now   Guests after',
        '-'.repeat(74),
        ' b                    1536 MiB    1536 MiB     0            0',
        ' c (in maintenance)   16384 MiB   16384 MiB    0            0',
        ' d                    6144 MiB    2048 MiB     1            3',
        '',
        "2 to move, 1 with no destination, 1 skipped; 0 % of each host's memory kept free",
        '',
      ].join('\n'),
    );
  });
});
