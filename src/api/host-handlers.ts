/**
 * API methods of the host itself: its facts (for placement and the
 * `nodeinfo` family of commands), maintenance mode, and evacuation. The
 * facts include the migration slots' load, which is why these handlers take
 * the migrations as well as the host.
 */
import { readHostFacts, type SlotLoad } from '../host/host-facts.js';
import type { Host } from '../host/host.js';
import type { MaintenanceStatus } from '../host/maintenance.js';
import { FerryError } from '../errors/index.js';
import type { Evacuations, EvacuationRequest } from '../migration/evacuations.js';
import type { Migrations } from '../migration/host-migrations.js';
import type { HostMaintenance, HostStateApiMethod } from './protocol.js';
import type { Handler } from './server.js';

/** The load of both directions' migration slots. */
export function migrationLoad(m: Migrations): { outgoing: SlotLoad; incoming: SlotLoad } {
  return { outgoing: m.outgoing.slots.load, incoming: m.incoming.slots.load };
}

/** Handlers of the host methods. */
export function hostStateHandlers(host: Host, migrations: Migrations, evacuations: Evacuations): Record<HostStateApiMethod, Handler> {
  const answer = (status: MaintenanceStatus): HostMaintenance => {
    const load = migrations.incoming.slots.load;
    return { hostName: host.config.identity.hostName, ...status, incomingUnderWay: load.running + load.queued };
  };
  return {
    'host.facts': async () => readHostFacts(host, migrationLoad(migrations)),
    'host.maintenance.status': async () => answer(host.maintenance.status),
    'host.maintenance.enable': async (p) => answer(await host.maintenance.enable(p.reason)),
    'host.maintenance.disable': async () => answer(await host.maintenance.disable()),
    // The request's fields are checked by Evacuations (checkRequest) and the planner.
    'host.evacuate.plan': async (p) => evacuations.plan(p as unknown as EvacuationRequest),
    'host.evacuate.start': async (p) => evacuations.start(p as unknown as EvacuationRequest),
    'host.evacuate.status': async () => evacuations.status(),
    'host.evacuate.stop': async (p) => {
      if (p.abort !== undefined && typeof p.abort !== 'boolean') throw new FerryError('invalid_arg', "parameter 'abort' must be true or false");
      return evacuations.stop(p.abort === true);
    },
  };
}
