/**
 * Placement of one guest: which destinations can take it (and why not the
 * others), and which of them it goes to. Used by the plan (`plan.ts`) for
 * every guest and by the retry policy (`record.ts`) for a guest whose
 * migration failed. Pure: the memory the plan already sends to a host is
 * passed in, never remembered here.
 */
import { FerryError, showValue } from '../errors/index.js';
import { cpuMismatch } from './cpu-fit.js';
import type { EvacuationGuest, PlacementHost, PlacementOptions, Refusal, ResolvedPlacementOptions } from './types.js';

/** The defaults: keep 10% of each destination's memory free, no absolute floor, no UNSAFE, running guests only. */
export const DEFAULT_PLACEMENT_OPTIONS: ResolvedPlacementOptions = Object.freeze({
  headroomPercent: 10,
  headroomMiB: 0,
  unsafe: false,
  includeInactive: false,
});

/**
 * `options` with defaults filled in, checked first.
 *
 * @throws FerryError `invalid_arg` for a headroom outside 0..100 % or a negative one in MiB.
 */
export function resolvePlacementOptions(options: PlacementOptions = {}): ResolvedPlacementOptions {
  const r: ResolvedPlacementOptions = { ...DEFAULT_PLACEMENT_OPTIONS, ...stripUndefined(options) };
  if (!Number.isFinite(r.headroomPercent) || r.headroomPercent < 0 || r.headroomPercent >= 100) {
    throw new FerryError('invalid_arg', `headroom of ${showValue(r.headroomPercent)} % is not valid: give a percentage of each destination's memory from 0 to below 100`);
  }
  if (!Number.isSafeInteger(r.headroomMiB) || r.headroomMiB < 0) {
    throw new FerryError('invalid_arg', `headroom of ${showValue(r.headroomMiB)} MiB is not valid: give a whole number of MiB, 0 or more`);
  }
  return r;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A size in KiB as MiB for messages: whole when it is, else with one decimal. */
export function formatMiB(kib: number): string {
  const mib = kib / 1024;
  return `${Number.isInteger(mib) ? mib : mib.toFixed(1)} MiB`;
}

/** The memory kept free on `host`: the larger of the two headrooms, in KiB. */
export function headroomKiB(host: PlacementHost, options: ResolvedPlacementOptions): number {
  return Math.max(Math.ceil((host.memory.totalKiB * options.headroomPercent) / 100), options.headroomMiB * 1024);
}

/**
 * What placement may give out on `host` before the plan, in KiB: the smaller
 * of what the kernel has available and what its guests have not committed
 * (a guest's untouched memory is still its own: no overcommit), less the
 * headroom; never below 0.
 */
export function capacityKiB(host: PlacementHost, options: ResolvedPlacementOptions): number {
  const uncommitted = host.memory.totalKiB - host.memory.committedKiB;
  return Math.max(0, Math.min(host.memory.availableKiB, uncommitted) - headroomKiB(host, options));
}

/** What a plan already sends to one destination. */
export interface PlannedLoad {
  /** Memory of the running guests sent there. */
  kib: number;
  /** Guests sent there, running or not. */
  guests: number;
}

/** The planned load on `uri` (zero when nothing goes there). */
export function loadOn(loads: ReadonlyMap<string, PlannedLoad>, uri: string): PlannedLoad {
  return loads.get(uri) ?? { kib: 0, guests: 0 };
}

/** What is left on `host` for placement after the planned load, in KiB (may be negative only through inactive guests, which take none). */
export function freeAfterPlanKiB(host: PlacementHost, load: PlannedLoad, options: ResolvedPlacementOptions): number {
  return capacityKiB(host, options) - load.kib;
}

/** Memory a guest takes on its destination: an inactive definition takes none until it is started. */
export function memoryNeededKiB(guest: EvacuationGuest): number {
  return guest.state === 'running' ? guest.memoryKiB : 0;
}

/**
 * Why `host` cannot take `guest`, or undefined when it can. Checked in this
 * order, the first reason wins: the source itself, a host excluded for this
 * guest (its migration there failed), maintenance, CPU, CPU count (fewer
 * CPUs than the guest's vCPUs, unless its source had fewer still), memory.
 *
 * @param excluded hosts this guest may not go to, with the reason shown after the host's name
 */
export function refusalOf(
  guest: EvacuationGuest,
  host: PlacementHost,
  source: PlacementHost,
  load: PlannedLoad,
  options: ResolvedPlacementOptions,
  excluded: ReadonlyMap<string, string> = new Map(),
): Refusal | undefined {
  const refuse = (kind: Refusal['kind'], why: string): Refusal => ({ host: host.uri, kind, message: `${host.name}: ${why}` });
  if (host.uri === source.uri) return refuse('source', 'is the host being evacuated');
  const ex = excluded.get(host.uri);
  if (ex !== undefined) return refuse('excluded', ex);
  if (host.maintenance) return refuse('maintenance', 'in maintenance');
  const cpu = cpuMismatch(guest.cpu, source.cpu, host.cpu, options.unsafe);
  if (cpu !== undefined) return refuse('cpu', cpu);
  // Never fewer CPUs than the guest has now: as many as its vCPUs, or as its source has if that is fewer
  // (KVM and libvirt allow more vCPUs than CPUs, so a guest that ran that way may go on doing so).
  const cpusNeeded = Math.min(guest.vcpus, source.cpus);
  if (host.cpus < cpusNeeded) {
    return refuse('vcpus', `${host.cpus} CPUs, the guest has ${guest.vcpus} vCPUs${source.cpus < guest.vcpus ? ` and ran on ${source.cpus}` : ''}`);
  }
  const need = memoryNeededKiB(guest);
  const free = freeAfterPlanKiB(host, load, options);
  if (need > free) {
    const kept = headroomKiB(host, options);
    const notes = [...(kept > 0 ? [`${formatMiB(kept)} kept free`] : []), ...(load.kib > 0 ? [`${formatMiB(load.kib)} already planned here`] : [])];
    return refuse('memory', `${formatMiB(Math.max(0, free))} free${notes.length > 0 ? ` (${notes.join(', ')})` : ''}, needs ${formatMiB(need)}`);
  }
  return undefined;
}

/** The outcome of {@link chooseDestination}. */
export type Choice = { ok: true; destination: PlacementHost; why: string } | { ok: false; refusals: Refusal[] };

/**
 * The destination for `guest` among `destinations`: of the hosts that can
 * take it, the one with the most memory left after it; among equals the one
 * with the fewest guests (now plus planned); among those the first given.
 * Largest guests placed first onto the freest host keeps the hosts' free
 * memory within one guest's size of each other (the greedy LPT bound).
 */
export function chooseDestination(
  guest: EvacuationGuest,
  source: PlacementHost,
  destinations: readonly PlacementHost[],
  loads: ReadonlyMap<string, PlannedLoad>,
  options: ResolvedPlacementOptions,
  excluded: ReadonlyMap<string, string> = new Map(),
): Choice {
  const refusals: Refusal[] = [];
  const fits: Array<{ host: PlacementHost; left: number; guests: number }> = [];
  for (const host of destinations) {
    const load = loadOn(loads, host.uri);
    const r = refusalOf(guest, host, source, load, options, excluded);
    if (r !== undefined) refusals.push(r);
    else fits.push({ host, left: freeAfterPlanKiB(host, load, options) - memoryNeededKiB(guest), guests: host.guests + load.guests });
  }
  if (fits.length === 0) return { ok: false, refusals };
  // Stable sort: the order given breaks the last tie.
  const ranked = [...fits].sort((a, b) => b.left - a.left || a.guests - b.guests);
  const best = ranked[0]!;
  const next = ranked[1];
  let why: string;
  if (next === undefined) why = fits.length === destinations.length ? 'the only destination' : 'the only host that can take it';
  else if (best.left > next.left) why = `most memory left after it: ${formatMiB(best.left)} (next ${next.host.name}: ${formatMiB(next.left)})`;
  else if (best.guests < next.guests) why = `as much memory left as ${next.host.name} (${formatMiB(best.left)}), fewer guests (${best.guests} vs ${next.guests})`;
  else why = `same memory left and guests as ${next.host.name}; first given`;
  return { ok: true, destination: best.host, why };
}
