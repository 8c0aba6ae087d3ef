/**
 * Statistics and measurement procedures: `virsh domstats`
 * (CONNECT_GET_ALL_DOMAIN_STATS) and `virsh domdirtyrate-calc`
 * (DOMAIN_START_DIRTY_RATE_CALC). Both map onto the host's operations the
 * native API calls (src/host/domain-stats.ts, src/host/dirty-rate.ts); the
 * group table there says which groups and fields exist.
 */
import { FerryError } from '../../errors/index.js';
import { dirtyRateModeOfFlags } from '../../host/dirty-rate.js';
import { ALL_STATS_GROUPS, collectStats, STATS_GROUPS, SUPPORTED_STATS_BITS, type StatsGroup } from '../../host/domain-stats.js';
import type { Host } from '../../host/host.js';
import type { HostedDomain } from '../../host/hosted-domain.js';
import type { ProcedureHandlers } from '../connection.js';
import { filterDomains } from './domains.js';
import { checkFlags, lookupKey, refOf } from './refs.js';

/** `virConnectGetAllDomainStatsFlags`: the list filters of CONNECT_LIST_ALL_DOMAINS (active ... other). */
const STATS_LIST_FILTERS = 0xff;
/** NOWAIT: don't wait for a busy domain's job (ferryd's queries take none). */
const STATS_NOWAIT = 0x20000000;
/** BACKING: block statistics of backing chains (ferryd has no block group). */
const STATS_BACKING = 0x40000000;
/** ENFORCE_STATS: refuse groups the daemon does not have instead of leaving them out. */
const STATS_ENFORCE = 0x80000000;
const STATS_FLAGS_KNOWN = (STATS_LIST_FILTERS | STATS_NOWAIT | STATS_BACKING | STATS_ENFORCE) >>> 0;

/**
 * The groups `stats` (libvirt's `virDomainStatsTypes` bits) asks for: all
 * ferryd has when 0; bits of groups ferryd lacks are left out, or with
 * ENFORCE_STATS refused, as libvirt's QEMU driver does.
 *
 * @throws FerryError `argument_unsupported` for a group ferryd lacks under ENFORCE_STATS
 */
export function statsGroupsOfBits(stats: number, flags: number): StatsGroup[] {
  if (stats === 0) return [...ALL_STATS_GROUPS];
  const missing = (stats & ~SUPPORTED_STATS_BITS) >>> 0;
  if ((flags & STATS_ENFORCE) !== 0 && missing !== 0) {
    throw new FerryError('argument_unsupported', `Stats types bits 0x${missing.toString(16)} are not supported by this daemon (ferryd has state (0x1) and dirtyrate (0x200))`);
  }
  return ALL_STATS_GROUPS.filter((g) => (stats & STATS_GROUPS[g].bit) !== 0);
}

/** Handlers of the statistics procedures. */
export function statsHandlers(host: Host): ProcedureHandlers {
  return {
    CONNECT_GET_ALL_DOMAIN_STATS: async (a) => {
      checkFlags(a.flags, STATS_FLAGS_KNOWN, 'virConnectGetAllDomainStats');
      const groups = statsGroupsOfBits(a.stats, a.flags);
      // Named domains that are gone are skipped, as libvirt does; the list filters apply to named ones too.
      const candidates: HostedDomain[] = a.doms.length === 0 ? host.registry.all() : a.doms.flatMap((ref) => host.registry.getByUuid(lookupKey(ref)) ?? []);
      const wanted = new Set(filterDomains(candidates.map((d) => d.summary()), a.flags & STATS_LIST_FILTERS).map((s) => s.uuid));
      const records = await collectStats(candidates.filter((d) => wanted.has(d.uuid)), groups, { dirtyRates: host.dirtyRates });
      return { retStats: records.map((r) => ({ dom: refOf(r.domain.summary()), params: r.fields.map((f) => ({ field: f.field, value: f.value })) })) };
    },
    DOMAIN_START_DIRTY_RATE_CALC: async (a) => {
      const mode = dirtyRateModeOfFlags(a.flags);
      await host.dirtyRates.start(lookupKey(a.dom), a.seconds, mode);
      return {};
    },
  };
}
