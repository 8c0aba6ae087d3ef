/**
 * Domain statistics by group, with libvirt's group names, bits
 * (`virDomainStatsTypes`) and field names (`virsh domstats`): the one table
 * the native API, the CLI and the libvirt protocol's
 * CONNECT_GET_ALL_DOMAIN_STATS read. ferryd has the `state` and `dirtyrate`
 * groups; a group it does not have yields no fields, as in libvirt.
 */
import { DOMAIN_STATES, reasonNumber } from '../domain/lifecycle-state.js';
import { DIRTY_RATE_STATUSES, type DirtyRates } from './dirty-rate.js';
import type { HostedDomain } from './hosted-domain.js';

/** A field's value with libvirt's typed-parameter type (the wire type of CONNECT_GET_ALL_DOMAIN_STATS). */
export type StatValue =
  | { type: 'int'; value: number }
  | { type: 'llong'; value: number }
  | { type: 'string'; value: string };

/** One field of a domain's statistics, e.g. `dirtyrate.calc_status` = int 2. */
export interface StatField {
  field: string;
  value: StatValue;
}

/** A group's collector: the fields of one domain, in libvirt's order. */
type Collector = (d: HostedDomain, deps: StatsDeps) => Promise<StatField[]>;

/** What the collectors read. */
export interface StatsDeps {
  dirtyRates: DirtyRates;
}

const int = (field: string, value: number): StatField => ({ field, value: { type: 'int', value } });
const llong = (field: string, value: number): StatField => ({ field, value: { type: 'llong', value } });
const str = (field: string, value: string): StatField => ({ field, value: { type: 'string', value } });

/**
 * The groups ferryd collects, by libvirt's name:
 * - `state` (bit 1): `state.state` and `state.reason`, libvirt's numbers
 *   (`virDomainState` and its reason enum), for every domain.
 * - `dirtyrate` (bit 512): the last memory dirty-rate calculation of a
 *   running domain (see dirty-rate.ts): `dirtyrate.calc_status` (0
 *   unstarted, 1 measuring, 2 measured), `dirtyrate.calc_start_time` (s,
 *   QEMU's clock), `dirtyrate.calc_period` (s), `dirtyrate.megabytes_per_second`
 *   (MiB/s, only once measured) and `dirtyrate.calc_mode`
 *   (`page-sampling`, `dirty-bitmap` or `dirty-ring`). Nothing for an
 *   inactive domain.
 */
export const STATS_GROUPS = {
  state: {
    bit: 1,
    collect: (async (d) => {
      const s = d.status;
      return [int('state.state', DOMAIN_STATES[s.state].number), int('state.reason', reasonNumber(s))];
    }) as Collector,
  },
  dirtyrate: {
    bit: 512,
    collect: (async (d, deps) => {
      const info = await deps.dirtyRates.query(d);
      if (!info) return [];
      return [
        int('dirtyrate.calc_status', DIRTY_RATE_STATUSES[info.status]),
        llong('dirtyrate.calc_start_time', info.startTime),
        int('dirtyrate.calc_period', info.calcTime),
        ...(info.megabytesPerSecond === null ? [] : [llong('dirtyrate.megabytes_per_second', info.megabytesPerSecond)]),
        str('dirtyrate.calc_mode', info.mode),
      ];
    }) as Collector,
  },
} as const;

/** A statistics group ferryd has. */
export type StatsGroup = keyof typeof STATS_GROUPS;

/** Every group, in libvirt's bit order (the order of the fields). */
export const ALL_STATS_GROUPS: readonly StatsGroup[] = (Object.keys(STATS_GROUPS) as StatsGroup[]).sort((a, b) => STATS_GROUPS[a].bit - STATS_GROUPS[b].bit);

/** libvirt's `virDomainStatsTypes` bits of every group libvirt 9.0 defines (state ... vm), ferryd's or not. */
export const LIBVIRT_STATS_BITS = 0x7ff;

/** The bits of the groups ferryd has. */
export const SUPPORTED_STATS_BITS = ALL_STATS_GROUPS.reduce((m, g) => m | STATS_GROUPS[g].bit, 0);

/** One domain's statistics. */
export interface DomainStatsRecord {
  domain: HostedDomain;
  fields: StatField[];
}

/**
 * The statistics of `groups` for each domain in `domains`, in that order;
 * every domain gets a record, possibly without fields.
 */
export async function collectStats(domains: readonly HostedDomain[], groups: readonly StatsGroup[], deps: StatsDeps): Promise<DomainStatsRecord[]> {
  const ordered = ALL_STATS_GROUPS.filter((g) => groups.includes(g));
  const out: DomainStatsRecord[] = [];
  for (const d of domains) {
    const fields: StatField[] = [];
    for (const g of ordered) fields.push(...(await STATS_GROUPS[g].collect(d, deps)));
    out.push({ domain: d, fields });
  }
  return out;
}

/** The fields as a plain object, `field: value` (the native API's and `--json`'s shape). */
export function fieldsObject(fields: readonly StatField[]): Record<string, number | string> {
  return Object.fromEntries(fields.map((f) => [f.field, f.value.value]));
}
