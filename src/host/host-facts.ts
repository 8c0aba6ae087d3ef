/**
 * Host facts: what a placement decision needs to know about one host
 * (`ferry hostfacts`, `nodeinfo`, `nodememstats`, `freecell`, the native
 * `host.facts` call and libvirt's NODE_GET_* procedures). The machine is
 * read from /proc and /sys (parsed in proc-facts.ts), the CPU as QEMU can
 * emulate it from QEMU itself (cpu-check.ts), the rest from the host's
 * own records. {@link assembleHostFacts} is pure; {@link readMachine}
 * does the reading.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { arch as osArch } from 'node:os';
import { join } from 'node:path';
import { FerryError } from '../errors/index.js';
import { hostCpuFeatures, probeCpuCapabilities, resolveQemuBinary, type CpuCapabilities } from '../qemu/index.js';
import type { Host } from './host.js';
import type { MaintenanceStatus } from './maintenance.js';
import { numaNodeIds, parseCpuinfo, parseMeminfo, parseNodeMeminfo, type NumaCell } from './proc-facts.js';

/** How many migrations run and wait one way, and the limit (see src/migration/slots.ts). */
export interface SlotLoad {
  running: number;
  queued: number;
  limit: number;
}

/** The CPU features QEMU offers a guest on this host (the `max` model under TCG, `host` under KVM). */
export interface QemuCpuFacts {
  accel: 'kvm' | 'tcg';
  /** `sha256:` and the first 16 hex digits of the hash of the sorted feature list: equal fingerprints, same CPU for host-passthrough. */
  fingerprint: string;
  features: string[];
}

/** Everything `host.facts` answers. Sizes in KiB. */
export interface HostFacts {
  hostName: string;
  hostUuid: string;
  /** ISO 8601 time the facts were read. */
  collectedAt: string;
  cpu: {
    /** The architecture, as virsh's `CPU model` shows it (x86_64). */
    arch: string;
    /** Logical CPUs. */
    count: number;
    /** /proc/cpuinfo's model name, e.g. `AMD EPYC`. */
    model: string;
    vendor: string;
    mhz: number;
    sockets: number;
    coresPerSocket: number;
    threadsPerCore: number;
    numaCells: number;
    /** What QEMU can give a guest here; null when QEMU could not be asked (then `qemuError` says why). */
    qemu: QemuCpuFacts | null;
    qemuError?: string;
  };
  memory: {
    totalKiB: number;
    freeKiB: number;
    availableKiB: number;
    buffersKiB: number;
    cachedKiB: number;
    /** The memory of every guest that has a QEMU here (running, paused, or receiving a migration). */
    committedKiB: number;
    /** Per NUMA cell (one cell from /proc/meminfo when the kernel has no NUMA nodes). */
    cells: NumaCell[];
  };
  guests: {
    /** Active guests (running or paused), those receiving a migration included. */
    running: number;
    /** Guests receiving an incoming migration (counted in `running` too). */
    incoming: number;
    /** Persistent definitions, active or not. */
    defined: number;
    /** Every domain the host knows, transient ones included. */
    total: number;
  };
  maintenance: MaintenanceStatus;
  migrations: { outgoing: SlotLoad; incoming: SlotLoad };
}

/** The machine's files, as read. */
export interface MachineText {
  arch: string;
  cpuinfo: string;
  meminfo: string;
  /** NUMA node id to the text of its meminfo; empty when the kernel shows no nodes. */
  nodes: Map<number, string>;
}

/** One domain as the facts count it. */
export interface DomainFact {
  /** A QEMU runs for it (running, paused, or receiving a migration). */
  hasQemu: boolean;
  incoming: boolean;
  persistent: boolean;
  /** The memory its QEMU was given, KiB (the live definition's). */
  memoryKiB: number;
}

/** What {@link assembleHostFacts} is made of. */
export interface FactsInputs {
  identity: { hostName: string; hostUuid: string };
  machine: MachineText;
  domains: DomainFact[];
  qemuCpu: CpuCapabilities | Error;
  maintenance: MaintenanceStatus;
  migrations: { outgoing: SlotLoad; incoming: SlotLoad };
  now: Date;
}

/** A short, stable name for a feature list: equal lists give equal fingerprints, whatever their order. */
export function featureFingerprint(features: readonly string[]): string {
  const sorted = [...new Set(features)].sort();
  return `sha256:${createHash('sha256').update(sorted.join(',')).digest('hex').slice(0, 16)}`;
}

/**
 * Puts the facts together. Pure.
 *
 * @throws Error when /proc/meminfo's text is not a meminfo file
 */
export function assembleHostFacts(i: FactsInputs): HostFacts {
  const cpu = parseCpuinfo(i.machine.cpuinfo);
  const mem = parseMeminfo(i.machine.meminfo);
  const cells: NumaCell[] = [];
  for (const [id, text] of [...i.machine.nodes].sort(([a], [b]) => a - b)) cells.push(parseNodeMeminfo(id, text));
  if (cells.length === 0) cells.push({ id: 0, totalKiB: mem.totalKiB, freeKiB: mem.freeKiB });
  const withQemu = i.domains.filter((d) => d.hasQemu);
  const qemu =
    i.qemuCpu instanceof Error
      ? null
      : (() => {
          const features = hostCpuFeatures(i.qemuCpu);
          return { accel: i.qemuCpu.accel, fingerprint: featureFingerprint(features), features };
        })();
  return {
    hostName: i.identity.hostName,
    hostUuid: i.identity.hostUuid,
    collectedAt: i.now.toISOString(),
    cpu: {
      arch: i.machine.arch,
      count: cpu.cpus,
      model: cpu.modelName,
      vendor: cpu.vendor,
      mhz: cpu.mhz,
      sockets: cpu.sockets,
      coresPerSocket: cpu.coresPerSocket,
      threadsPerCore: cpu.threadsPerCore,
      numaCells: cells.length,
      qemu,
      ...(i.qemuCpu instanceof Error ? { qemuError: i.qemuCpu.message } : {}),
    },
    memory: {
      totalKiB: mem.totalKiB,
      freeKiB: mem.freeKiB,
      availableKiB: mem.availableKiB,
      buffersKiB: mem.buffersKiB,
      cachedKiB: mem.cachedKiB,
      committedKiB: withQemu.reduce((sum, d) => sum + d.memoryKiB, 0),
      cells,
    },
    guests: {
      running: withQemu.length,
      incoming: withQemu.filter((d) => d.incoming).length,
      defined: i.domains.filter((d) => d.persistent).length,
      total: i.domains.length,
    },
    maintenance: i.maintenance,
    migrations: { outgoing: { ...i.migrations.outgoing }, incoming: { ...i.migrations.incoming } },
  };
}

/** Where the machine's files are (tests point elsewhere). */
export interface MachinePaths {
  cpuinfo: string;
  meminfo: string;
  nodeDir: string;
}

/** Linux's own paths. */
export const LINUX_PATHS: MachinePaths = { cpuinfo: '/proc/cpuinfo', meminfo: '/proc/meminfo', nodeDir: '/sys/devices/system/node' };

/** Reads the machine's files; NUMA nodes that cannot be listed or read are left out. */
export async function readMachine(paths: MachinePaths = LINUX_PATHS): Promise<MachineText> {
  const [cpuinfo, meminfo] = await Promise.all([readFile(paths.cpuinfo, 'utf8'), readFile(paths.meminfo, 'utf8')]);
  const nodes = new Map<number, string>();
  const ids = numaNodeIds(await readdir(paths.nodeDir).catch(() => []));
  for (const id of ids) {
    const text = await readFile(join(paths.nodeDir, `node${id}`, 'meminfo'), 'utf8').catch(() => undefined);
    if (text !== undefined) nodes.set(id, text);
  }
  return { arch: osArch() === 'x64' ? 'x86_64' : osArch(), cpuinfo, meminfo, nodes };
}

/** The domains of `host` as the facts count them. */
export function domainFacts(host: Pick<Host, 'registry'>): DomainFact[] {
  return host.registry.all().map((d) => ({
    hasQemu: d.runtime !== null,
    incoming: d.runtime?.incoming === true,
    persistent: d.persistent,
    memoryKiB: d.runtime?.liveDoc.def.memoryKiB ?? 0,
  }));
}

/**
 * Reads the facts of `host` now. `migrations` is the load of its
 * migration slots (the migration layer, above this one, supplies it).
 *
 * @throws FerryError `system_error` when /proc cannot be read
 */
export async function readHostFacts(host: Host, migrations: { outgoing: SlotLoad; incoming: SlotLoad }, paths: MachinePaths = LINUX_PATHS): Promise<HostFacts> {
  const [machine, qemuCpu] = await Promise.all([
    readMachine(paths),
    probeCpuCapabilities(resolveQemuBinary(undefined), host.config.accel).catch((err: Error) => err),
  ]).catch((err: Error) => {
    throw new FerryError('system_error', `cannot read this machine's CPU and memory: ${err.message}`, { cause: err });
  });
  try {
    return assembleHostFacts({
      identity: host.config.identity,
      machine,
      domains: domainFacts(host),
      qemuCpu,
      maintenance: host.maintenance.status,
      migrations,
      now: new Date(),
    });
  } catch (err) {
    throw new FerryError('system_error', `cannot read this machine's memory: ${(err as Error).message}`, { cause: err });
  }
}
