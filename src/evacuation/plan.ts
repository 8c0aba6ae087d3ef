/**
 * The evacuation plan: a destination for every guest on the evacuated host,
 * or the reason each destination refused it. Pure and deterministic: the
 * same hosts and guests give the same plan, whatever order the guests came
 * in (their order here is by size, then name).
 */
import { FerryError, showValue } from '../errors/index.js';
import { capacityKiB, chooseDestination, loadOn, memoryNeededKiB, resolvePlacementOptions, type PlannedLoad } from './placement.js';
import type { EvacuationGuest, EvacuationPlan, HostOutlook, Placement, PlacementHost, PlacementOptions, Unplaced } from './types.js';

/**
 * The order guests are placed and migrated in: running guests largest
 * first (memory, then vCPUs), then inactive ones; names break ties. Largest
 * first is what keeps the hosts balanced (see `chooseDestination`), and it
 * starts the longest migrations early.
 */
export function placementOrder(a: EvacuationGuest, b: EvacuationGuest): number {
  if (a.state !== b.state) return a.state === 'running' ? -1 : 1;
  return b.memoryKiB - a.memoryKiB || b.vcpus - a.vcpus || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/**
 * Checks the input before planning.
 *
 * @throws FerryError `invalid_arg` when no destination is given, a
 *   destination or guest appears twice, a guest is not on `source`, or a
 *   guest's memory or vCPU count is not a positive whole number.
 */
function checkInput(source: PlacementHost, guests: readonly EvacuationGuest[], destinations: readonly PlacementHost[]): void {
  if (destinations.length === 0) throw new FerryError('invalid_arg', `cannot evacuate ${source.name}: no destination given; name at least one host to move its guests to`);
  const uris = new Set<string>();
  for (const d of destinations) {
    if (uris.has(d.uri)) throw new FerryError('invalid_arg', `destination ${showValue(d.uri)} is given twice`);
    uris.add(d.uri);
  }
  const names = new Set<string>();
  const uuids = new Set<string>();
  for (const g of guests) {
    if (names.has(g.name) || uuids.has(g.uuid)) throw new FerryError('invalid_arg', `guest ${showValue(g.name)} (${g.uuid}) is listed twice`);
    names.add(g.name);
    uuids.add(g.uuid);
    if (g.source !== source.uri) throw new FerryError('invalid_arg', `guest ${showValue(g.name)} is on ${showValue(g.source)}, not on the evacuated host ${showValue(source.uri)}`);
    if (!Number.isSafeInteger(g.memoryKiB) || g.memoryKiB <= 0) throw new FerryError('invalid_arg', `guest ${showValue(g.name)} has memory ${showValue(g.memoryKiB)} KiB: expected a positive whole number`);
    if (!Number.isSafeInteger(g.vcpus) || g.vcpus <= 0) throw new FerryError('invalid_arg', `guest ${showValue(g.name)} has ${showValue(g.vcpus)} vCPUs: expected a positive whole number`);
  }
}

/**
 * Plans the evacuation of `source`: for each guest (largest first) the
 * destination that can take it and has the most memory left after it (see
 * `chooseDestination` for the rule), counting what the plan already sent
 * there. A guest no destination can take is listed in `unplaced` with each
 * host's reason; the others are still planned.
 *
 * @param destinations in the order the user gave them (the last tie-break)
 * @throws FerryError `invalid_arg` for inconsistent input or options
 */
export function planEvacuation(
  source: PlacementHost,
  guests: readonly EvacuationGuest[],
  destinations: readonly PlacementHost[],
  options: PlacementOptions = {},
): EvacuationPlan {
  const opts = resolvePlacementOptions(options);
  checkInput(source, guests, destinations);
  const loads = new Map<string, PlannedLoad>();
  const placements: Placement[] = [];
  const unplaced: Unplaced[] = [];
  const skipped: EvacuationPlan['skipped'] = [];
  for (const guest of [...guests].sort(placementOrder)) {
    if (guest.state === 'inactive' && !opts.includeInactive) {
      skipped.push({ guest, reason: 'inactive; include inactive definitions to move it offline' });
      continue;
    }
    const choice = chooseDestination(guest, source, destinations, loads, opts);
    if (!choice.ok) {
      unplaced.push({ guest, refusals: choice.refusals });
      continue;
    }
    const uri = choice.destination.uri;
    const load = loadOn(loads, uri);
    loads.set(uri, { kib: load.kib + memoryNeededKiB(guest), guests: load.guests + 1 });
    placements.push({ guest, destination: uri, why: choice.why });
  }
  const hosts: HostOutlook[] = destinations.map((d) => {
    const load = loadOn(loads, d.uri);
    const free = capacityKiB(d, opts);
    return { uri: d.uri, name: d.name, maintenance: d.maintenance, freeBeforeKiB: free, freeAfterKiB: free - load.kib, guestsBefore: d.guests, guestsAfter: d.guests + load.guests, incoming: load.guests };
  });
  return { source: source.uri, placements, unplaced, skipped, hosts, options: opts };
}
