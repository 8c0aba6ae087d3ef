/**
 * The method table of the native API: each method's untrusted parameters
 * are checked here and passed to the host. Adding a method means adding it
 * to `protocol.ts` and here.
 */
import { FerryError } from '../errors/index.js';
import type { Host } from '../host/host.js';
import type { ListFilter } from '../host/views.js';
import { ALL_STATS_GROUPS, collectStats, fieldsObject, type StatsGroup } from '../host/domain-stats.js';
import type { HostedDomain } from '../host/hosted-domain.js';
import { FERRY_VERSION } from '../version.js';
import { PROTOCOL_VERSION, type DomainStatsResult, type HostApiMethod, type HostIdentity } from './protocol.js';
import type { Caller, Handler } from './server.js';

function optBool(params: Record<string, unknown>, key: string): boolean {
  const v = params[key];
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw new FerryError('invalid_arg', `parameter '${key}' must be true or false`);
  return v;
}

function listFilter(params: Record<string, unknown>): ListFilter {
  const f: ListFilter = {};
  for (const key of ['all', 'inactive', 'persistent', 'transient', 'autostart', 'noAutostart'] as const) f[key] = optBool(params, key);
  if (params.state !== undefined) {
    const allowed = ['running', 'paused', 'shutoff', 'other'];
    if (!Array.isArray(params.state) || !params.state.every((s) => allowed.includes(s as string))) {
      throw new FerryError('invalid_arg', `parameter 'state' must be a list of ${allowed.join(', ')}`);
    }
    f.state = params.state as ListFilter['state'];
  }
  return f;
}

/** The groups `domain.stats` asks for: those set, or all when none is. */
function statsGroups(params: Record<string, unknown>): StatsGroup[] {
  const asked = ALL_STATS_GROUPS.filter((g) => optBool(params, g));
  return asked.length ? asked : [...ALL_STATS_GROUPS];
}

/** The domains `domain.stats` names (each must exist), or all of the host's. */
function statsDomains(host: Host, params: Record<string, unknown>): HostedDomain[] {
  const refs = params.domains;
  if (refs === undefined) return host.registry.all();
  if (!Array.isArray(refs) || refs.length > 16384) throw new FerryError('invalid_arg', "parameter 'domains' must be a list of domain names, ids or UUIDs");
  return refs.map((r) => host.registry.lookup(r));
}

/** Builds the handler table for `host`. */
export function buildHandlers(host: Host, extra: Record<string, Handler> = {}): Map<string, Handler> {
  const l = host.lifecycle;
  const table: Record<HostApiMethod, Handler> = {
    'connect.hello': async (): Promise<HostIdentity> => ({
      hostName: host.config.identity.hostName,
      hostUuid: host.config.identity.hostUuid,
      protocolVersion: PROTOCOL_VERSION,
      version: FERRY_VERSION,
    }),
    'domain.list': async (p) => l.list(listFilter(p)),
    'domain.define': async (p) => l.define(p.xml),
    'domain.undefine': async (p) => l.undefine(p.domain),
    'domain.create': async (p) => l.create(p.xml, optBool(p, 'paused')),
    'domain.start': async (p) => l.start(p.domain, optBool(p, 'paused')),
    'domain.destroy': async (p) => l.destroy(p.domain, optBool(p, 'graceful')),
    'domain.shutdown': async (p) => l.shutdown(p.domain),
    'domain.suspend': async (p) => l.suspend(p.domain),
    'domain.resume': async (p) => l.resume(p.domain),
    'domain.info': async (p) => l.info(p.domain),
    'domain.state': async (p) => l.state(p.domain),
    'domain.xml': async (p) => l.xml(p.domain, optBool(p, 'inactive')),
    'domain.autostart': async (p) => l.setAutostart(p.domain, p.enable),
    'domain.consoleLog': async (p) => l.consoleLog(p.domain, p.maxBytes),
    'domain.qemuMonitorCommand': async (p) => l.monitorCommand(p.domain, p.command, optBool(p, 'hmp')),
    'domain.dirtyRateCalc': async (p) => host.dirtyRates.start(p.domain, p.seconds, p.mode),
    'domain.stats': async (p): Promise<DomainStatsResult[]> => {
      const records = await collectStats(statsDomains(host, p), statsGroups(p), { dirtyRates: host.dirtyRates });
      return records.map((r) => ({ domain: r.domain.name, uuid: r.domain.uuid, stats: fieldsObject(r.fields) }));
    },
    'events.subscribe': async (_p, conn: Caller) => {
      conn.subscribed = true;
      return { subscribed: true };
    },
  };
  return new Map([...Object.entries(table), ...Object.entries(extra)]);
}
