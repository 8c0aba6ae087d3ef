import { describe, expect, it } from 'vitest';
import { assembleHostFacts, featureFingerprint, type FactsInputs } from '../../src/host/host-facts.js';
import type { CpuCapabilities } from '../../src/qemu/index.js';

const CPUINFO = ['processor\t: 0', 'model name\t: AMD EPYC', 'vendor_id\t: AuthenticAMD', 'cpu MHz\t\t: 2695.9', 'physical id\t: 0', 'siblings\t: 2', 'cpu cores\t: 2', '', 'processor\t: 1', 'physical id\t: 0', 'siblings\t: 2', 'cpu cores\t: 2', ''].join('\n');
const MEMINFO = 'MemTotal: 1000000 kB\nMemFree: 600000 kB\nMemAvailable: 700000 kB\nBuffers: 1000 kB\nCached: 90000 kB\n';
const CAPS: CpuCapabilities = { accel: 'tcg', models: new Map(), features: new Map([['sse2', true], ['avx', false], ['fpu', true]]) };

function inputs(over: Partial<FactsInputs> = {}): FactsInputs {
  return {
    identity: { hostName: 'hostA', hostUuid: '11111111-2222-3333-4444-555555555555' },
    machine: { arch: 'x86_64', cpuinfo: CPUINFO, meminfo: MEMINFO, nodes: new Map() },
    domains: [],
    qemuCpu: CAPS,
    maintenance: { enabled: false, since: null, reason: null },
    migrations: { outgoing: { running: 0, queued: 0, limit: 2 }, incoming: { running: 1, queued: 2, limit: 2 } },
    now: new Date('2026-12-04T20:00:00Z'),
    ...over,
  };
}

describe('assembleHostFacts', () => {
  it('reports the machine, the QEMU guest CPU and the migration load', () => {
    const f = assembleHostFacts(inputs());
    expect(f.cpu).toEqual({
      arch: 'x86_64',
      count: 2,
      model: 'AMD EPYC',
      vendor: 'AuthenticAMD',
      mhz: 2696,
      sockets: 1,
      coresPerSocket: 2,
      threadsPerCore: 1,
      numaCells: 1,
      qemu: { accel: 'tcg', fingerprint: featureFingerprint(['fpu', 'sse2']), features: ['fpu', 'sse2'] },
    });
    expect(f.memory).toEqual({ totalKiB: 1000000, freeKiB: 600000, availableKiB: 700000, buffersKiB: 1000, cachedKiB: 90000, committedKiB: 0, cells: [{ id: 0, totalKiB: 1000000, freeKiB: 600000 }] });
    expect(f.migrations.incoming).toEqual({ running: 1, queued: 2, limit: 2 });
    expect(f.collectedAt).toBe('2026-12-04T20:00:00.000Z');
    expect(f.hostName).toBe('hostA');
  });

  it('commits the memory of every guest with a QEMU (incoming ones too) and counts guests by kind', () => {
    const f = assembleHostFacts(
      inputs({
        domains: [
          { hasQemu: true, incoming: false, persistent: true, memoryKiB: 262148 },
          { hasQemu: true, incoming: true, persistent: false, memoryKiB: 131076 },
          { hasQemu: false, incoming: false, persistent: true, memoryKiB: 0 },
        ],
      }),
    );
    expect(f.memory.committedKiB).toBe(262148 + 131076);
    expect(f.guests).toEqual({ running: 2, incoming: 1, defined: 2, total: 3 });
  });

  it('lists NUMA cells from the node files, in order', () => {
    const nodes = new Map([
      [1, 'Node 1 MemTotal: 500000 kB\nNode 1 MemFree: 100000 kB\n'],
      [0, 'Node 0 MemTotal: 500000 kB\nNode 0 MemFree: 500000 kB\n'],
    ]);
    const f = assembleHostFacts(inputs({ machine: { arch: 'x86_64', cpuinfo: CPUINFO, meminfo: MEMINFO, nodes } }));
    expect(f.memory.cells.map((c) => [c.id, c.freeKiB])).toEqual([
      [0, 500000],
      [1, 100000],
    ]);
    expect(f.cpu.numaCells).toBe(2);
  });

  it('says why when QEMU could not be asked, instead of failing', () => {
    const f = assembleHostFacts(inputs({ qemuCpu: new Error('qemu-system-x86_64: not found') }));
    expect(f.cpu.qemu).toBeNull();
    expect(f.cpu.qemuError).toBe('qemu-system-x86_64: not found');
  });

  it('carries the maintenance state', () => {
    const maintenance = { enabled: true, since: '2026-12-04T19:00:00.000Z', reason: 'kernel update' };
    expect(assembleHostFacts(inputs({ maintenance })).maintenance).toEqual(maintenance);
  });
});

describe('featureFingerprint', () => {
  it('is short, stable, independent of order and duplicates, and differs for another list', () => {
    const a = featureFingerprint(['sse2', 'fpu', 'avx']);
    expect(a).toMatch(/^sha256:[0-9a-f]{16}$/);
    expect(featureFingerprint(['avx', 'fpu', 'sse2', 'fpu'])).toBe(a);
    expect(featureFingerprint(['avx', 'fpu'])).not.toBe(a);
  });
});
