/**
 * From what the hosts report to what placement reads: `host.facts` (as
 * assembleHostFacts builds it from /proc text and QEMU's CPU) and domain XML
 * (as DomainDocument reads it), then a plan made from them.
 */
import { describe, expect, it } from 'vitest';
import { DomainDocument } from '../../src/domain/index.js';
import { cpuNeedOf, evacuationGuestFromDomain, placementHostFromFacts } from '../../src/evacuation/from-facts.js';
import { planEvacuation } from '../../src/evacuation/plan.js';
import { assembleHostFacts, type FactsInputs } from '../../src/host/host-facts.js';
import type { CpuCapabilities } from '../../src/qemu/index.js';

const CPUINFO = ['processor\t: 0', 'model name\t: AMD EPYC', 'vendor_id\t: AuthenticAMD', 'physical id\t: 0', 'siblings\t: 2', 'cpu cores\t: 2', '', 'processor\t: 1', 'physical id\t: 0', 'siblings\t: 2', 'cpu cores\t: 2', ''].join('\n');

function caps(features: string[]): CpuCapabilities {
  return { accel: 'tcg', models: new Map(), features: new Map(features.map((f) => [f, true])) };
}

function facts(name: string, o: { totalKiB: number; availableKiB: number; committedKiB?: number; features?: string[] | Error; maintenance?: boolean; incoming?: [number, number, number] }) {
  const inputs: FactsInputs = {
    identity: { hostName: name, hostUuid: '11111111-2222-3333-4444-555555555555' },
    machine: { arch: 'x86_64', cpuinfo: CPUINFO, meminfo: `MemTotal: ${o.totalKiB} kB\nMemFree: ${o.availableKiB} kB\nMemAvailable: ${o.availableKiB} kB\n`, nodes: new Map() },
    domains: o.committedKiB ? [{ hasQemu: true, incoming: false, persistent: true, memoryKiB: o.committedKiB }] : [],
    qemuCpu: o.features instanceof Error ? o.features : caps(o.features ?? ['fpu', 'sse2', 'avx2']),
    maintenance: o.maintenance ? { enabled: true, since: '2026-12-04T19:00:00Z', reason: 'kernel update' } : { enabled: false, since: null, reason: null },
    migrations: { outgoing: { running: 0, queued: 0, limit: 2 }, incoming: { running: o.incoming?.[0] ?? 0, queued: o.incoming?.[1] ?? 0, limit: o.incoming?.[2] ?? 2 } },
    now: new Date('2026-12-04T20:00:00Z'),
  };
  return assembleHostFacts(inputs);
}

function domain(name: string, memoryMiB: number, cpu = ''): DomainDocument {
  const uuid = `0f8fad5b-d9cb-469f-a165-${Buffer.from(name).toString('hex').slice(-12).padStart(12, '0')}`;
  return DomainDocument.parse(
    [
      "<domain type='kvm'>",
      `  <name>${name}</name>`,
      `  <uuid>${uuid}</uuid>`,
      `  <memory unit='MiB'>${memoryMiB}</memory>`,
      "  <vcpu>2</vcpu>",
      "  <os><type arch='x86_64' machine='pc'>hvm</type></os>",
      `  ${cpu}`,
      '</domain>',
    ].join('\n'),
  );
}

describe('placementHostFromFacts', () => {
  it('takes every field placement reads from host.facts', () => {
    const f = facts('b', { totalKiB: 8 * 1048576, availableKiB: 6 * 1048576, committedKiB: 1048576, maintenance: true, incoming: [1, 2, 3] });
    expect(placementHostFromFacts('ferry+tls://b/system', f)).toEqual({
      uri: 'ferry+tls://b/system',
      name: 'b',
      cpus: 2,
      cpu: { model: 'AMD EPYC', fingerprint: f.cpu.qemu!.fingerprint, features: ['avx2', 'fpu', 'sse2'] },
      memory: { totalKiB: 8 * 1048576, availableKiB: 6 * 1048576, committedKiB: 1048576 },
      guests: 1,
      maintenance: true,
      migrations: { maxOutgoing: 2, maxIncoming: 3, outgoing: 0, incoming: 3 },
    });
  });

  it('gives a host whose QEMU could not be asked an empty fingerprint', () => {
    const f = facts('c', { totalKiB: 1048576, availableKiB: 1048576, features: new Error('no QEMU binary') });
    expect(placementHostFromFacts('ferry+tls://c/system', f).cpu).toEqual({ model: 'AMD EPYC', fingerprint: '', features: [] });
  });
});

describe('evacuationGuestFromDomain', () => {
  it("reads the CPU need from <cpu> with libvirt's meaning", () => {
    expect(cpuNeedOf(domain('g', 64).def)).toEqual({ mode: 'default' });
    expect(cpuNeedOf(domain('g', 64, "<cpu mode='host-passthrough' check='none'/>").def)).toEqual({ mode: 'default' });
    expect(cpuNeedOf(domain('g', 64, "<cpu mode='maximum'/>").def)).toEqual({ mode: 'host-passthrough' });
    expect(cpuNeedOf(domain('g', 64, "<cpu mode='custom'><model>Skylake-Client</model><feature name='avx2'/><feature policy='disable' name='hle'/><feature policy='optional' name='pcid'/></cpu>").def)).toEqual({
      mode: 'custom',
      model: 'Skylake-Client',
      requiredFeatures: ['avx2'],
    });
  });

  it('plans from facts and XML end to end', () => {
    const src = placementHostFromFacts('ferry+tls://a/system', facts('a', { totalKiB: 4194304, availableKiB: 1048576, committedKiB: 2097152 }));
    const b = placementHostFromFacts('ferry+tls://b/system', facts('b', { totalKiB: 4194304, availableKiB: 4194304, features: ['fpu', 'sse2'] }));
    const c = placementHostFromFacts('ferry+tls://c/system', facts('c', { totalKiB: 4194304, availableKiB: 4194304, committedKiB: 3145728 }));
    const guests = [
      evacuationGuestFromDomain(domain('pt', 700, "<cpu mode='host-passthrough'/>").def, 'running', src.uri),
      evacuationGuestFromDomain(domain('avx', 300, "<cpu mode='custom'><model>qemu64</model><feature name='avx2'/></cpu>").def, 'running', src.uri),
      evacuationGuestFromDomain(domain('plain', 1000).def, 'running', src.uri),
    ];
    const plan = planEvacuation(src, guests, [b, c]);
    // Largest first: plain (any CPU) to b, the freer; pt needs the source's CPU, which only c
    // has, but c has 1 GiB uncommitted less 10 % of 4 GiB kept free: 614.4 MiB; avx needs
    // avx2, which b lacks, and fits in c.
    expect(plan.placements.map((p) => [p.guest.name, p.destination])).toEqual([
      ['plain', b.uri],
      ['avx', c.uri],
    ]);
    expect(plan.unplaced.map((u) => u.refusals.map((r) => r.message))).toEqual([
      ["b: CPU AMD EPYC offers other features than the source's (missing: avx2) and the guest is host-passthrough (unsafe would allow it)", 'c: 614.4 MiB free (409.6 MiB kept free), needs 700 MiB'],
    ]);
  });
});
