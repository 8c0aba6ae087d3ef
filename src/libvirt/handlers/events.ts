/**
 * Domain events: registration procedures, and the translation of the host's
 * events into libvirt's event messages for every connection that asked.
 */
import type { HostEvent, LifecycleEvent } from '../../host/events.js';
import type { ProcedureHandlers, LibvirtConnection } from '../connection.js';
import { EVENT_IDS } from '../procedures.js';
import { jobStatsParams } from './jobs.js';
import { uuidBytes, uuidString } from './refs.js';
import { FerryError } from '../../errors/index.js';

/** `virDomainEventType` and, per type, its details in libvirt's order (index = number). */
const LIFECYCLE: Record<LifecycleEvent['kind'], { number: number; details: readonly string[] }> = {
  defined: { number: 0, details: ['added', 'updated', 'renamed', 'from snapshot'] },
  undefined: { number: 1, details: ['removed', 'renamed'] },
  started: { number: 2, details: ['booted', 'migrated', 'restored', 'from snapshot', 'wakeup'] },
  suspended: { number: 3, details: ['paused', 'migrated', 'ioerror', 'watchdog', 'restored', 'from snapshot', 'api error', 'postcopy', 'postcopy failed'] },
  resumed: { number: 4, details: ['unpaused', 'migrated', 'from snapshot', 'postcopy', 'postcopy failed'] },
  stopped: { number: 5, details: ['shutdown', 'destroyed', 'crashed', 'migrated', 'saved', 'failed', 'from snapshot'] },
  shutdown: { number: 6, details: ['finished', 'guest', 'host'] },
};

/** libvirt's (event, detail) numbers of a lifecycle event; an unknown detail is 0. */
export function lifecycleNumbers(e: Pick<LifecycleEvent, 'kind' | 'detail'>): { event: number; detail: number } {
  const t = LIFECYCLE[e.kind];
  const i = t.details.indexOf(e.detail.toLowerCase().replace(/[-_]/g, ' '));
  return { event: t.number, detail: i < 0 ? 0 : i };
}


/** Handlers of the event registration procedures. */
export function eventHandlers(): ProcedureHandlers {
  return {
    CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY: async (a, { conn }) => {
      // Events ferryd never raises (reboot, block job, ...) can be registered and simply never arrive, as for a domain without such devices.
      if (a.eventID < 0 || a.eventID > 64) throw new FerryError('invalid_arg', `unknown domain event id ${a.eventID}`);
      return { callbackID: conn.registerEvents(a.eventID, a.dom ? uuidString(a.dom.uuid) : null) };
    },
    CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY: async (a, { conn }) => {
      conn.deregisterEvents(a.callbackID);
      return {};
    },
  };
}

/** Sends `e` to every registration of `conn` that wants it. */
export function deliverEvent(conn: LibvirtConnection, e: HostEvent, idOf: (uuid: string) => number | null): void {
  // libvirt has no event of a host's maintenance mode or evacuation: only native API subscribers see them.
  if (e.name === 'host.maintenance' || e.name === 'host.evacuation' || e.name === 'domain.migration-started') return;
  const dom = { name: e.data.domain, uuid: uuidBytes(e.data.uuid), id: idOf(e.data.uuid) ?? -1 };
  switch (e.name) {
    case 'domain.lifecycle':
      for (const r of conn.registrationsFor(EVENT_IDS.lifecycle, e.data.uuid)) conn.sendEvent('DOMAIN_EVENT_CALLBACK_LIFECYCLE', { callbackID: r.callbackId, msg: { dom, ...lifecycleNumbers(e.data) } });
      break;
    case 'domain.migration-iteration':
      for (const r of conn.registrationsFor(EVENT_IDS.migrationIteration, e.data.uuid)) conn.sendEvent('DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION', { callbackID: r.callbackId, dom, iteration: e.data.iteration });
      break;
    case 'domain.job-completed':
      for (const r of conn.registrationsFor(EVENT_IDS.jobCompleted, e.data.uuid)) conn.sendEvent('DOMAIN_EVENT_CALLBACK_JOB_COMPLETED', { callbackID: r.callbackId, dom, params: jobStatsParams(e.data.stats) });
      break;
  }
}

