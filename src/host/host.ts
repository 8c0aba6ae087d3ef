/**
 * A host: ferryd's core, owning the domains of one state directory. Opening
 * it loads the persistent definitions, re-attaches to QEMUs that kept
 * running while the daemon was away, and starts autostart domains once per
 * boot of the run directory.
 */
import { access, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { status as mkStatus } from '../domain/lifecycle-state.js';
import { DefinitionStore } from './definition-store.js';
import { DirtyRates } from './dirty-rate.js';
import { EventBus } from './events.js';
import { GuestRunner, hostPaths, type HostPaths } from './guest-runner.js';
import { HostedDomain } from './hosted-domain.js';
import type { HostIdentityConfig } from './identity.js';
import { Lifecycle } from './lifecycle.js';
import { Maintenance } from './maintenance.js';
import { MigrationStates } from './migration-states.js';
import { DomainRegistry } from './registry.js';

/** What a host needs to open. */
export interface HostConfig {
  stateDir: string;
  runDir: string;
  identity: HostIdentityConfig;
  accel: 'kvm' | 'tcg';
  log: (msg: string) => void;
  /** TCP ports for incoming migration streams and disk copies (default 49152-49215, libvirt's). */
  migrationPorts?: { min: number; max: number };
  /** Concurrent migrations each way (default: the number of cores, at least 2). */
  migrationLimits?: { outgoing?: number; incoming?: number };
}

/** ferryd's core. */
export class Host {
  readonly registry = new DomainRegistry();
  readonly events = new EventBus();
  readonly store: DefinitionStore;
  readonly runner: GuestRunner;
  readonly lifecycle: Lifecycle;
  /** The domain state changes migrations make (see migration-states.ts). */
  readonly migrationStates: MigrationStates;
  readonly paths: HostPaths;
  /** Memory dirty-rate measurements of running domains (see dirty-rate.ts). */
  readonly dirtyRates: DirtyRates;
  /** Maintenance mode: while on, no new starts or incoming migrations (see maintenance.ts). */
  readonly maintenance: Maintenance;

  private constructor(readonly config: HostConfig) {
    this.paths = hostPaths(config.stateDir, config.runDir);
    this.store = new DefinitionStore(config.stateDir, config.log);
    this.runner = new GuestRunner(this.paths, config.accel, this.events, config.log);
    this.maintenance = new Maintenance(config.stateDir, config.identity.hostName, config.log, (st) => this.events.maintenance(config.identity.hostName, st));
    this.lifecycle = new Lifecycle({ registry: this.registry, store: this.store, runner: this.runner, events: this.events, log: config.log, admitStart: (op) => this.maintenance.refuse(op) });
    this.dirtyRates = new DirtyRates(this.registry);
    this.migrationStates = new MigrationStates({ registry: this.registry, runner: this.runner, events: this.events, lifecycle: this.lifecycle, hostName: config.identity.hostName });
  }

  /** Opens the host: definitions, re-attached guests, autostart. */
  static async open(config: HostConfig): Promise<Host> {
    const host = new Host(config);
    await host.store.init();
    await host.runner.init();
    // Before autostart, which maintenance holds back.
    await host.maintenance.load();
    for (const { doc, autostart } of await host.store.loadAll()) {
      const d = new HostedDomain(doc.def.uuid, doc.def.name, doc);
      d.autostart = autostart;
      host.registry.add(d);
    }
    await host.reattach();
    await host.autostartOnce();
    return host;
  }

  /** Lets go of every QEMU without stopping it, so a restarted ferryd can take them back. */
  close(): void {
    for (const d of this.registry.all()) {
      const rt = d.runtime;
      if (rt) rt.qemu.detach();
    }
  }

  private async reattach(): Promise<void> {
    const found = await this.runner.reattachAll((gone) => {
      const d = this.registry.getByUuid(gone.uuid);
      if (d) d.setStatus(mkStatus('shutoff', 'unknown'));
    });
    for (const g of found) {
      let d = this.registry.getByUuid(g.liveDoc.def.uuid);
      if (!d) {
        // A transient domain, or one undefined while it ran: it lives on as transient.
        d = new HostedDomain(g.liveDoc.def.uuid, g.liveDoc.def.name, null);
        this.registry.add(d);
      }
      // (An incoming QEMU kept across the restart switched to post-copy before it was handed over: it still is incoming.)
      d.runtime = { id: g.id, liveDoc: g.liveDoc, qemu: g.qemu, accel: g.status.accel, startedAt: g.status.startedAt, stopRequested: null, ...(g.status.extra?.incoming === true ? { incoming: true } : {}) };
      d.setStatus(g.domainStatus);
      this.runner.watch(d, d.runtime, (dd, rt, reason) => this.lifecycle.onExit(dd, rt, reason));
      this.config.log(`re-attached to running domain '${d.name}' (pid ${g.qemu.pid}, ${g.domainStatus.state})`);
    }
  }

  /** Autostart runs once per run directory (a tmpfs that empties at boot), as libvirt does once per host boot. */
  private async autostartOnce(): Promise<void> {
    const marker = join(this.config.runDir, 'autostarted');
    try {
      await access(marker);
      return;
    } catch {
      // Not yet done since this run dir was made.
    }
    if (this.maintenance.enabled) {
      // No mark: the first ferryd start of this boot after maintenance ends runs autostart.
      const waiting = this.registry.all().filter((d) => d.autostart && !d.active).map((d) => d.name);
      if (waiting.length > 0) this.config.log(`autostart held back: the host is in maintenance (${waiting.join(', ')} not started); it runs at the next ferryd start after 'ferry maintenance disable'`);
      return;
    }
    await writeFile(marker, '');
    for (const d of this.registry.all()) {
      if (!d.autostart || d.active) continue;
      try {
        await this.lifecycle.start(d.uuid, false);
        this.config.log(`autostarted domain '${d.name}'`);
      } catch (err) {
        this.config.log(`cannot autostart domain '${d.name}': ${(err as Error).message}`);
      }
    }
  }
}
