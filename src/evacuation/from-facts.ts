/**
 * What placement reads, taken from what the hosts report: a host's
 * `host.facts` answer (src/host/host-facts.ts) as a {@link PlacementHost},
 * and a domain definition as an {@link EvacuationGuest}. Pure; the caller
 * makes the calls.
 */
import type { DomainDef } from '../domain/types.js';
import type { HostFacts } from '../host/host-facts.js';
import type { EvacuationGuest, GuestCpuNeed, PlacementHost } from './types.js';

/**
 * `facts`, as answered by the host reached at `uri`, as placement sees it.
 * A host whose QEMU could not be asked about its CPU (`cpu.qemu` null) gets
 * an empty fingerprint and no features: it takes only guests without a
 * `<cpu>`. Migrations in use count the queued ones too, since they take a
 * slot as soon as one frees.
 */
export function placementHostFromFacts(uri: string, facts: HostFacts): PlacementHost {
  const { outgoing, incoming } = facts.migrations;
  return {
    uri,
    name: facts.hostName,
    cpus: facts.cpu.count,
    cpu: { model: facts.cpu.model, fingerprint: facts.cpu.qemu?.fingerprint ?? '', features: facts.cpu.qemu?.features ?? [] },
    memory: { totalKiB: facts.memory.totalKiB, availableKiB: facts.memory.availableKiB, committedKiB: facts.memory.committedKiB },
    guests: facts.guests.running,
    maintenance: facts.maintenance.enabled,
    migrations: { maxOutgoing: outgoing.limit, maxIncoming: incoming.limit, outgoing: outgoing.running + outgoing.queued, incoming: incoming.running + incoming.queued },
  };
}

/**
 * What a `<cpu>` asks of a destination:
 * - none, or `check='none'` (libvirt checks nothing then): `default`;
 * - `host-passthrough` and `maximum`: the host's own CPU, `host-passthrough`;
 * - `host-model` and `custom`: the `require`d features. The features a named
 *   model implies are not known without asking the destination's QEMU, so
 *   they are left to prepare's own check (a refusal there is retried on
 *   another host).
 */
export function cpuNeedOf(def: Pick<DomainDef, 'cpu'>): GuestCpuNeed {
  const cpu = def.cpu;
  if (cpu === undefined || cpu.check === 'none') return { mode: 'default' };
  if (cpu.mode === 'host-passthrough' || cpu.mode === 'maximum') return { mode: 'host-passthrough' };
  const requiredFeatures = cpu.features.filter((f) => f.policy === 'require').map((f) => f.name);
  return { mode: cpu.mode, ...(cpu.model !== undefined ? { model: cpu.model } : {}), requiredFeatures };
}

/**
 * A domain on the evacuated host (at `sourceUri`) as a guest to place: its
 * live definition when it runs (what the migration sends), its persistent
 * one when it is inactive.
 */
export function evacuationGuestFromDomain(def: Pick<DomainDef, 'name' | 'uuid' | 'memoryKiB' | 'vcpus' | 'cpu'>, state: 'running' | 'inactive', sourceUri: string): EvacuationGuest {
  return { name: def.name, uuid: def.uuid, memoryKiB: def.memoryKiB, vcpus: def.vcpus, state, cpu: cpuNeedOf(def), source: sourceUri };
}
