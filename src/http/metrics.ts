/**
 * `GET /metrics`: the daemon's figures in Prometheus's text format, made by
 * prom-client. Names follow Prometheus's rules (base units, `_total` for
 * counters, `_bytes`, `_seconds`, `_ratio`) and, where the idea is the same,
 * the names operators know: libvirt exporters' `libvirt_domain_info_*` and
 * KubeVirt's `kubevirt_vmi_migration_*` (with `ferry_` in front). The table
 * of every name is docs/dashboard.md.
 *
 * Gauges are read when scraped (the registry's domains and their running
 * jobs); counters of migrations follow the host's events, so they count
 * from the daemon's start, as Prometheus counters do.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { DOMAIN_STATES } from '../domain/lifecycle-state.js';
import type { Host } from '../host/host.js';
import { cpuSecondsOf } from '../qemu/proc-stat.js';
import type { JobStats } from '../host/job-stats.js';
import type { Migrations } from '../migration/host-migrations.js';

/** What the metrics read besides the host and its migrations. */
export interface MetricsSources {
  /** Open connections per protocol (`native`, `libvirt`, `http`). */
  connections(): Record<string, number>;
}

/** The job figures exported per running migration: metric suffix, help, and how to read it from the job's statistics. */
const JOB_FIGURES: ReadonlyArray<{ name: string; help: string; read: (s: JobStats) => number | undefined }> = [
  { name: 'data_total_bytes', help: 'Bytes the migration has to move in all (memory and disks), as QEMU counts them', read: (s) => s.data_total },
  { name: 'data_processed_bytes', help: 'Bytes the migration has moved so far', read: (s) => s.data_processed },
  { name: 'data_remaining_bytes', help: 'Bytes the migration still has to move', read: (s) => s.data_remaining },
  { name: 'memory_transfer_rate_bytes', help: 'Memory transfer rate, bytes per second', read: (s) => s.memory_bps },
  { name: 'dirty_memory_rate_bytes', help: 'Rate at which the guest dirties memory, bytes per second', read: (s) => (s.memory_dirty_rate !== undefined ? s.memory_dirty_rate * (s.memory_page_size ?? 4096) : undefined) },
  { name: 'iteration', help: 'Pass over memory the migration is in (1 = the first)', read: (s) => s.memory_iteration },
  { name: 'remaining_seconds', help: 'Time the migration needs still, from the convergence forecast', read: (s) => (s.time_remaining !== undefined ? s.time_remaining / 1000 : undefined) },
  { name: 'expected_downtime_seconds', help: 'Downtime the switch-over would have now, as QEMU expects it', read: (s) => (s.downtime !== undefined ? s.downtime / 1000 : undefined) },
  { name: 'auto_converge_throttle_ratio', help: 'Share of the guest CPU time taken away by auto-converge (0 to 1)', read: (s) => (s.auto_converge_throttle !== undefined ? s.auto_converge_throttle / 100 : undefined) },
  { name: 'postcopy_requests', help: 'Pages the destination asked for during post-copy, so far in this job', read: (s) => s.memory_postcopy_requests },
  { name: 'disk_total_bytes', help: 'Bytes of the disks copied with the migration', read: (s) => s.disk_total },
  { name: 'disk_processed_bytes', help: 'Bytes of the disks copied so far', read: (s) => s.disk_processed },
  { name: 'disk_remaining_bytes', help: 'Bytes of the disks still to copy', read: (s) => s.disk_remaining },
  { name: 'disk_transfer_rate_bytes', help: 'Disk copy rate, bytes per second', read: (s) => s.disk_bps },
  { name: 'elapsed_seconds', help: 'Time since the migration job began', read: (s) => s.time_elapsed / 1000 },
];

/** The counters of migrations, by how they end. */
const OUTCOMES = { Completed: 'succeeded', Failed: 'failed', Cancelled: 'aborted' } as const;

/**
 * The registry `/metrics` serves for `host`: process figures (RSS, CPU,
 * event-loop lag, from prom-client's defaults), the host's domains and
 * running migrations, counters of outgoing migrations by mode and outcome,
 * and the daemon's own load.
 */
export function daemonMetrics(host: Host, migrations: Migrations, sources: MetricsSources): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // prom-client also exports these counts as gauges named `_total`, which Prometheus's naming rules keep for
  // counters (promtool says so); the same figures stay under `nodejs_active_handles` and so on.
  for (const legacy of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(legacy);
  const label = { domain: '', uuid: '' };
  type DomainLabels = keyof typeof label;

  const perDomain = (name: string, help: string, read: (d: ReturnType<Host['registry']['all']>[number]) => number | undefined) =>
    new Gauge<DomainLabels>({
      name: `ferry_domain_info_${name}`,
      help,
      labelNames: ['domain', 'uuid'],
      registers: [registry],
      collect() {
        this.reset();
        for (const d of host.registry.all()) {
          const v = read(d);
          if (v !== undefined) this.set({ domain: d.name, uuid: d.uuid }, v);
        }
      },
    });
  perDomain('state', "libvirt's domain state number (1 running, 3 paused, 5 shut off, ...)", (d) => DOMAIN_STATES[d.status.state].number);
  perDomain('maximum_memory_bytes', 'Memory the domain may use, bytes (<memory>)', (d) => d.currentDoc.def.memoryKiB * 1024);
  perDomain('virtual_cpus', 'Virtual CPUs of the domain', (d) => d.currentDoc.def.vcpus);
  perDomain('active', '1 while QEMU runs the domain', (d) => (d.active ? 1 : 0));
  perDomain('persistent', '1 when the domain has a persistent definition', (d) => (d.persistent ? 1 : 0));
  new Counter({
    name: 'ferry_domain_info_cpu_time_seconds_total',
    help: "CPU time the domain's QEMU process has used (user and system), seconds",
    labelNames: ['domain', 'uuid'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const d of host.registry.all()) {
        if (d.runtime === null) continue;
        const seconds = await cpuSecondsOf(d.runtime.qemu.pid);
        if (seconds !== undefined) this.inc({ domain: d.name, uuid: d.uuid }, seconds);
      }
    },
  });
  new Gauge({
    name: 'ferry_domain_state_reason_info',
    help: 'The domain state and its reason as virsh names them (domstate --reason); always 1',
    labelNames: ['domain', 'uuid', 'state', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const d of host.registry.all()) this.set({ domain: d.name, uuid: d.uuid, state: d.status.state, reason: d.status.reason }, 1);
    },
  });

  // Per running migration: the job's statistics, labelled by direction (queued jobs have none yet).
  const jobs = () =>
    migrations
      .runningJobs()
      .filter((j) => j.stats.queue_position === undefined)
      .map((j) => ({ labels: { domain: j.domain, uuid: j.uuid, direction: j.stats.operation === 'Incoming migration' ? 'incoming' : 'outgoing' }, stats: j.stats }));
  let scrape: ReturnType<typeof jobs> | undefined;
  for (const [i, f] of JOB_FIGURES.entries()) {
    new Gauge({
      name: `ferry_migration_${f.name}`,
      help: f.help,
      labelNames: ['domain', 'uuid', 'direction'],
      registers: [registry],
      collect() {
        // One reading of the jobs per scrape: the first figure reads, the others reuse it.
        if (i === 0 || scrape === undefined) scrape = jobs();
        this.reset();
        for (const j of scrape) {
          const v = f.read(j.stats);
          if (v !== undefined && Number.isFinite(v)) this.set(j.labels, v);
        }
      },
    });
  }

  const started = new Counter({ name: 'ferry_migrations_started_total', help: 'Outgoing migrations begun since the daemon started, by mode (managed, p2p, p2p-tunnelled, offline)', labelNames: ['mode'], registers: [registry] });
  const ended = Object.fromEntries(
    Object.values(OUTCOMES).map((o) => [o, new Counter({ name: `ferry_migrations_${o}_total`, help: `Outgoing migrations that ${o === 'succeeded' ? 'completed' : o === 'failed' ? 'failed' : 'were aborted'} since the daemon started, by mode`, labelNames: ['mode'], registers: [registry] })]),
  ) as Record<(typeof OUTCOMES)[keyof typeof OUTCOMES], Counter<'mode'>>;
  // Every mode starts at 0, so that rate() and increase() see the first one.
  for (const mode of ['managed', 'p2p', 'p2p-tunnelled', 'offline']) {
    started.inc({ mode }, 0);
    for (const c of Object.values(ended)) c.inc({ mode }, 0);
  }
  host.events.subscribe((e) => {
    if (e.name === 'domain.migration-started') started.inc({ mode: e.data.mode });
    else if (e.name === 'domain.job-completed' && e.data.mode !== undefined && e.data.stats.operation === 'Outgoing migration') {
      const outcome = OUTCOMES[e.data.stats.type as keyof typeof OUTCOMES];
      if (outcome) ended[outcome].inc({ mode: e.data.mode });
    }
  });

  // The host's migration slots, each figure by direction.
  const slots = { outgoing: migrations.outgoing.slots, incoming: migrations.incoming.slots };
  const SLOT_FIGURES: ReadonlyArray<[string, string, (s: (typeof slots)['outgoing']) => number]> = [
    ['ferry_migration_slots_running', 'Migrations running now, by direction', (s) => s.load.running],
    ['ferry_migration_queue_length', 'Migrations waiting for a slot, by direction', (s) => s.load.queued],
    ['ferry_migration_slots_limit', 'Migrations that may run at once, by direction', (s) => s.limit],
  ];
  for (const [name, help, read] of SLOT_FIGURES) {
    new Gauge({
      name,
      help,
      labelNames: ['direction'],
      registers: [registry],
      collect() {
        for (const [direction, s] of Object.entries(slots)) this.set({ direction }, read(s));
      },
    });
  }
  new Gauge({
    name: 'ferry_api_connections',
    help: 'Open client connections, by protocol',
    labelNames: ['protocol'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [protocol, n] of Object.entries(sources.connections())) this.set({ protocol }, n);
    },
  });
  new Gauge({
    name: 'ferry_maintenance',
    help: '1 while the host is in maintenance (no new starts or incoming migrations)',
    registers: [registry],
    collect() {
      this.set(host.maintenance.status.enabled ? 1 : 0);
    },
  });
  return registry;
}
