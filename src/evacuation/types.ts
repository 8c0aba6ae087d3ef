/**
 * What evacuation planning works on: a host as placement sees it, a guest to
 * place, the options, and the plan that comes out. Pure data, JSON-safe, so
 * that a plan can be printed with `--json`, sent over the API and kept in the
 * evacuation record (`record.ts`).
 *
 * `PlacementHost` is Ferry's own minimal view; the future `host.facts` API
 * result is mapped onto it (not written yet, see docs/evacuation.md). Memory is
 * in KiB throughout, as libvirt's `nodememstats` and domain XML count it.
 */

/** A host's CPU, as far as placement compares it. */
export interface PlacementCpu {
  /** The host CPU's model name (for messages only; rules never compare it). */
  model: string;
  /**
   * A digest of {@link features}: two hosts with the same fingerprint give a
   * host-passthrough guest the same CPU. Compared as an opaque string;
   * empty when the host's QEMU could not be asked (then only guests without
   * a `<cpu>` may go there).
   */
  fingerprint: string;
  /**
   * The CPU features this host's QEMU can give a guest (what host-passthrough
   * passes through: `hostCpuFeatures` in src/qemu/cpu-check.ts). A custom or
   * host-model guest's required features must all be in it.
   */
  features: readonly string[];
}

/** A destination (or the source) as placement sees it. */
export interface PlacementHost {
  /** The URI a migration is sent to (`ferry+tls://b/system`); the host's key in a plan. */
  uri: string;
  /** The host's name, for messages and tables. */
  name: string;
  /** Logical CPUs on the host. */
  cpus: number;
  cpu: PlacementCpu;
  memory: {
    totalKiB: number;
    /** What the kernel says could be given out now (MemAvailable). */
    availableKiB: number;
    /** The memory of every guest defined to run here, touched or not (sum of their `<memory>`). */
    committedKiB: number;
  };
  /** Guests on the host now (running or paused). */
  guests: number;
  /** In maintenance: accepts no incoming migrations and no new starts. */
  maintenance: boolean;
  /** The host's migration slots (docs/migration.md, "How many at once") and how many are in use. */
  migrations: {
    maxOutgoing: number;
    maxIncoming: number;
    outgoing: number;
    incoming: number;
  };
}

/**
 * What a guest's CPU asks of a destination:
 * - `default`: no `<cpu>` (or `check='none'`): QEMU's default model, runs anywhere;
 * - `host-passthrough` (and `maximum`): the guest sees the host's own CPU, so
 *   it may only move to a host whose CPU fingerprint is the source's;
 * - `host-model` and `custom`: a named model whose features (as expanded on
 *   the source, plus `require`d ones) the destination must provide.
 */
export type GuestCpuNeed =
  | { mode: 'default' }
  | { mode: 'host-passthrough' }
  | { mode: 'host-model' | 'custom'; model?: string; requiredFeatures: readonly string[] };

/** A guest to move off the source. */
export interface EvacuationGuest {
  name: string;
  uuid: string;
  /** `<memory>` in KiB: what the destination must have free for it. */
  memoryKiB: number;
  vcpus: number;
  /** `running` (running or paused) moves live; `inactive` is a persistent definition moved OFFLINE. */
  state: 'running' | 'inactive';
  cpu: GuestCpuNeed;
  /** URI of the host it is on now; must be the evacuated host's. */
  source: string;
}

/** How placement decides; every field has a default (see {@link resolvePlacementOptions}). */
export interface PlacementOptions {
  /** Part of a destination's total memory kept free, in percent (default 10). */
  headroomPercent?: number;
  /** Memory kept free on a destination, in MiB (default 0). The larger of the two headrooms applies. */
  headroomMiB?: number;
  /** Place host-passthrough guests on hosts with another CPU fingerprint (the migration then needs UNSAFE too). */
  unsafe?: boolean;
  /** Move persistent inactive definitions too (OFFLINE); otherwise they are listed as skipped. */
  includeInactive?: boolean;
}

/** {@link PlacementOptions} with every default filled in. */
export type ResolvedPlacementOptions = Required<PlacementOptions>;

/** Why a guest cannot go to a given host; `message` starts with the host's name. */
export interface Refusal {
  host: string;
  kind: 'source' | 'maintenance' | 'memory' | 'cpu' | 'vcpus' | 'excluded';
  message: string;
}

/** A guest with the destination chosen for it. */
export interface Placement {
  guest: EvacuationGuest;
  /** The destination's URI. */
  destination: string;
  /** Why this host, in a few words for the plan table. */
  why: string;
}

/** A guest no destination can take, with each host's reason. */
export interface Unplaced {
  guest: EvacuationGuest;
  refusals: Refusal[];
}

/** A destination's memory and guest count before and after the plan. */
export interface HostOutlook {
  uri: string;
  name: string;
  /** In maintenance: the plan sends nothing there. */
  maintenance: boolean;
  /** Memory placement may still give out before the plan (after headroom and committed memory). */
  freeBeforeKiB: number;
  /** The same after every placed guest. */
  freeAfterKiB: number;
  guestsBefore: number;
  guestsAfter: number;
  /** Guests the plan sends here. */
  incoming: number;
}

/** The result of {@link planEvacuation}: deterministic for a given input. */
export interface EvacuationPlan {
  /** The evacuated host's URI. */
  source: string;
  /** In the order migrations should start: running guests largest first, then inactive ones. */
  placements: Placement[];
  unplaced: Unplaced[];
  /** Guests deliberately left where they are (inactive without `includeInactive`). */
  skipped: Array<{ guest: EvacuationGuest; reason: string }>;
  /** One per destination, in the order given. */
  hosts: HostOutlook[];
  options: ResolvedPlacementOptions;
}
