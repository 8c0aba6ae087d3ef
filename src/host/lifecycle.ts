/**
 * The domain lifecycle operations behind the API: define, undefine, create,
 * start, destroy, shutdown, suspend, resume, autostart, and the read-only
 * views. Each change runs under the domain's job lock, validates before it
 * writes, and publishes its lifecycle event.
 */
import { open as openFile } from 'node:fs/promises';
import { DomainDocument } from '../domain/index.js';
import { status as mkStatus, isActive } from '../domain/lifecycle-state.js';
import { FerryError } from '../errors/index.js';
import type { ExitReason } from '../qemu/index.js';
import type { DefinitionStore } from './definition-store.js';
import type { EventBus } from './events.js';
import { HostedDomain, type DomainRuntime } from './hosted-domain.js';
import type { DomainRegistry } from './registry.js';
import { describeExit, requireRuntime, type GuestRunner } from './guest-runner.js';
import type { DomainInfo, DomainSummary, ListFilter } from './views.js';
import { cpuSecondsOf } from '../qemu/proc-stat.js';

/** What the lifecycle operations work on. */
export interface LifecycleDeps {
  registry: DomainRegistry;
  store: DefinitionStore;
  runner: GuestRunner;
  events: EventBus;
  log: (msg: string) => void;
  /** Refuses a new start (start, create, autostart) the host cannot take now: maintenance (see maintenance.ts). */
  admitStart?: (op: { kind: 'start' | 'create'; domain: string }) => void;
}

/** The lifecycle operations of one host. */
export class Lifecycle {
  /** Serialises define/create of new domains so two calls cannot claim one name. */
  private creating: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: LifecycleDeps) {}

  /** `define`: adds a persistent domain, or replaces the persistent definition of an existing one. */
  async define(xml: unknown): Promise<DomainSummary> {
    const doc = DomainDocument.parse(requireXml(xml));
    const { registry, store, events } = this.deps;
    this.reportIgnored(doc);
    return this.exclusive(async () => {
      const existing = registry.getByUuid(doc.def.uuid) ?? registry.getByName(doc.def.name);
      if (!existing) {
        registry.assertFree(doc.def.name, doc.def.uuid);
        await store.save(doc);
        const d = new HostedDomain(doc.def.uuid, doc.def.name, doc);
        registry.add(d);
        events.lifecycle(d, 'defined', 'added');
        return d.summary();
      }
      registry.assertFree(doc.def.name, doc.def.uuid, existing);
      if (existing.name !== doc.def.name || existing.uuid !== doc.def.uuid) {
        throw new FerryError('dom_exist', `domain '${existing.name}' already exists with uuid ${existing.uuid}; a definition may not change its name or uuid`);
      }
      return existing.jobs.run('define', async () => {
        await this.saveDefinition(existing, doc);
        return existing.summary();
      });
    });
  }

  /** `undefine`: removes the persistent definition; an active domain carries on as transient. */
  async undefine(ref: unknown): Promise<DomainSummary> {
    const d = this.deps.registry.lookup(ref);
    return d.jobs.run('undefine', async () => {
      if (!d.persistent) {
        throw new FerryError('operation_invalid', `cannot undefine transient domain '${d.name}': it has no persistent definition (use destroy to stop it)`);
      }
      await this.dropDefinition(d);
      return d.summary();
    });
  }

  /**
   * Makes `doc` the persistent definition of the existing domain `d`:
   * stored first, then recorded, then published as `defined` (updated or
   * added). The caller holds the domain's job lock.
   */
  async saveDefinition(d: HostedDomain, doc: DomainDocument): Promise<void> {
    await this.deps.store.save(doc);
    const wasPersistent = d.persistent;
    d.persistentDoc = doc;
    this.deps.events.lifecycle(d, 'defined', wasPersistent ? 'updated' : 'added');
  }

  /**
   * Removes the persistent definition of `d` and its autostart mark: an
   * inactive domain leaves the host, an active one carries on as transient
   * (its status file says so). The caller holds the domain's job lock.
   */
  async dropDefinition(d: HostedDomain): Promise<void> {
    await this.deps.store.remove(d.name);
    d.persistentDoc = null;
    d.autostart = false;
    if (!d.active) this.deps.registry.remove(d);
    else await this.refreshStatusFile(d);
    this.deps.events.lifecycle(d, 'undefined', 'removed');
  }

  /** `create`: starts a transient domain from XML. */
  async create(xml: unknown, paused: boolean): Promise<DomainSummary> {
    const doc = DomainDocument.parse(requireXml(xml));
    const { registry } = this.deps;
    this.deps.admitStart?.({ kind: 'create', domain: doc.def.name });
    this.reportIgnored(doc);
    return this.exclusive(async () => {
      const existing = registry.getByUuid(doc.def.uuid) ?? registry.getByName(doc.def.name);
      if (existing) {
        // libvirt lets create start an inactive persistent domain with a one-off live definition.
        if (existing.active || existing.name !== doc.def.name || existing.uuid !== doc.def.uuid) {
          throw new FerryError('dom_exist', `domain '${existing.name}' already exists with uuid ${existing.uuid}${existing.active ? ' and is running' : ''}`);
        }
        return existing.jobs.run('start', () => this.boot(existing, doc, paused));
      }
      const d = new HostedDomain(doc.def.uuid, doc.def.name, null);
      registry.add(d);
      try {
        return await d.jobs.run('start', () => this.boot(d, doc, paused));
      } catch (err) {
        registry.remove(d);
        throw err;
      }
    });
  }

  /** `start`: boots an inactive persistent domain. */
  async start(ref: unknown, paused: boolean): Promise<DomainSummary> {
    const d = this.deps.registry.lookup(ref);
    return d.jobs.run('start', async () => {
      if (d.active) throw new FerryError('operation_invalid', `domain '${d.name}' is already running`);
      this.deps.admitStart?.({ kind: 'start', domain: d.name });
      if (!d.persistentDoc) throw new FerryError('operation_invalid', `domain '${d.name}' has no persistent definition to start`);
      return this.boot(d, d.persistentDoc, paused);
    });
  }

  /** `destroy`: stops QEMU at once. */
  async destroy(ref: unknown, graceful: boolean): Promise<DomainSummary> {
    const d = this.deps.registry.lookup(ref);
    return d.jobs.run('destroy', async () => {
      const runtime = requireRuntime(d);
      runtime.stopRequested = 'destroy';
      const reason = await runtime.qemu.kill({ graceful, gracefulTimeoutMs: graceful ? 30_000 : 0 });
      // The exit handler ran already (it is chained on the same promise); make sure of the outcome.
      if (d.runtime === runtime) this.onExit(d, runtime, reason);
      return d.summary();
    });
  }

  /** `shutdown`: presses the ACPI power button; the guest decides what to do. */
  async shutdown(ref: unknown): Promise<DomainSummary> {
    const d = this.deps.registry.lookup(ref);
    return d.jobs.run('shutdown', async () => {
      const runtime = requireRuntime(d);
      await runtime.qemu.qmp.execute('system_powerdown');
      return d.summary();
    });
  }

  /** `suspend`: pauses the vCPUs. Suspending a paused domain is a no-op, as in libvirt. */
  async suspend(ref: unknown): Promise<DomainSummary> {
    const d = this.deps.registry.lookup(ref);
    return d.jobs.run('suspend', async () => {
      const runtime = requireRuntime(d);
      if (d.status.state === 'paused') return d.summary();
      runtime.pendingPause = 'user';
      await runtime.qemu.qmp.execute('stop');
      // The STOP event may have recorded the state already; write it (again) before acknowledging.
      if (stateOf(d) !== 'paused') await this.deps.runner.transition(d, runtime, mkStatus('paused', 'user'), 'suspended', 'paused');
      else await this.deps.runner.writeStatus(d, runtime, d.status, runtime.qemu.startTime);
      return d.summary();
    });
  }

  /** `resume`: runs the vCPUs again. Resuming a running domain is a no-op, as in libvirt. */
  async resume(ref: unknown): Promise<DomainSummary> {
    const d = this.deps.registry.lookup(ref);
    return d.jobs.run('resume', async () => {
      const runtime = requireRuntime(d);
      if (d.status.state === 'running') return d.summary();
      if (d.status.reason === 'post-copy failed') {
        // The destination holds the guest's newest state: running this stale copy would fork the guest.
        throw new FerryError('operation_invalid', `cannot resume domain '${d.name}': its post-copy migration broke after the switch, so the destination holds its newest state; resume the migration with 'ferry migrate --postcopy --postcopy-resume', or destroy this copy`);
      }
      await runtime.qemu.qmp.execute('cont');
      if (stateOf(d) !== 'running') await this.deps.runner.transition(d, runtime, mkStatus('running', 'unpaused'), 'resumed', 'unpaused');
      else await this.deps.runner.writeStatus(d, runtime, d.status, runtime.qemu.startTime);
      return d.summary();
    });
  }

  /** `autostart`: marks a persistent domain to start with ferryd. */
  async setAutostart(ref: unknown, enable: unknown): Promise<DomainSummary> {
    const d = this.deps.registry.lookup(ref);
    if (typeof enable !== 'boolean') throw new FerryError('invalid_arg', 'autostart needs enable: true or false');
    return d.jobs.run('autostart', async () => {
      if (!d.persistent) throw new FerryError('operation_invalid', `cannot set autostart for transient domain '${d.name}'`);
      await this.deps.store.setAutostart(d.name, enable);
      d.autostart = enable;
      return d.summary();
    });
  }

  /** Says once, at define or create, which elements of a definition are kept but have no effect. */
  private reportIgnored(doc: DomainDocument): void {
    if (doc.def.ignored) this.deps.log(`domain '${doc.def.name}': kept in its XML with no effect on the guest (docs/domain-xml.md): ${doc.def.ignored.join(', ')}`);
  }

  /** `list`. */
  list(filter: ListFilter): DomainSummary[] {
    return this.deps.registry.list(filter);
  }

  /** `dominfo`. */
  async info(ref: unknown): Promise<DomainInfo> {
    const d = this.deps.registry.lookup(ref);
    const def = d.currentDoc.def;
    let cpuTimeSeconds: number | null = null;
    if (d.runtime) {
      cpuTimeSeconds = (await cpuSecondsOf(d.runtime.qemu.pid)) ?? null;
    }
    return {
      ...d.summary(),
      osType: 'hvm',
      maxMemoryKiB: def.memoryKiB,
      usedMemoryKiB: def.currentMemoryKiB,
      vcpus: def.vcpus,
      cpuTimeSeconds,
      accel: d.runtime?.accel ?? null,
      ...(def.ignored ? { ignored: def.ignored } : {}),
    };
  }

  /** `domstate`. */
  state(ref: unknown): { state: string; reason: string } {
    const d = this.deps.registry.lookup(ref);
    return { state: d.status.state, reason: d.status.reason };
  }

  /** `dumpxml`: the live definition while active unless `inactive`. */
  xml(ref: unknown, inactive: boolean): { xml: string } {
    const d = this.deps.registry.lookup(ref);
    const doc = inactive ? (d.persistentDoc ?? d.currentDoc) : d.currentDoc;
    return { xml: doc.toXml() };
  }

  /** `console --log`: the tail of the serial log. */
  /**
   * Passes one command to the domain's QEMU monitor, as virsh's
   * `qemu-monitor-command` does: a QMP command as JSON
   * (`{"execute": ..., "arguments": ...}`), or with `hmp` a human monitor
   * line. For debugging and tests: what it does to the guest is the
   * caller's responsibility, as in libvirt.
   */
  async monitorCommand(ref: unknown, command: unknown, hmp: boolean): Promise<{ return: unknown }> {
    const d = this.deps.registry.lookup(ref);
    if (typeof command !== 'string' || command.trim() === '' || command.length > 64 * 1024) throw new FerryError('invalid_arg', 'a monitor command (at most 64 KiB) is required');
    const rt = d.runtime;
    if (!rt || !d.active) throw new FerryError('operation_invalid', `domain '${d.name}' is not running`);
    if (hmp) return { return: await rt.qemu.qmp.execute('human-monitor-command', { 'command-line': command }) };
    let parsed: unknown;
    try {
      parsed = JSON.parse(command);
    } catch (err) {
      throw new FerryError('invalid_arg', `the QMP command is not JSON: ${(err as Error).message}`);
    }
    const q = parsed as { execute?: unknown; arguments?: unknown };
    if (!q || typeof q !== 'object' || typeof q.execute !== 'string' || (q.arguments !== undefined && (typeof q.arguments !== 'object' || q.arguments === null || Array.isArray(q.arguments)))) {
      throw new FerryError('invalid_arg', 'a QMP command is {"execute": "NAME", "arguments": {...}}');
    }
    if (q.execute === 'qmp_capabilities' || q.execute === 'quit') throw new FerryError('operation_denied', `'${q.execute}' would break ferryd's own monitor connection; use ferry's commands instead`);
    return { return: await rt.qemu.qmp.execute(q.execute, q.arguments as Record<string, unknown> | undefined) };
  }

  async consoleLog(ref: unknown, maxBytes: unknown): Promise<{ text: string; path: string }> {
    const d = this.deps.registry.lookup(ref);
    const limit = maxBytes === undefined ? 1024 * 1024 : maxBytes;
    if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit <= 0 || limit > 16 * 1024 * 1024) {
      throw new FerryError('invalid_arg', 'maxBytes must be an integer between 1 and 16777216');
    }
    const path = this.deps.runner.serialLogPath(d.name);
    let fh;
    try {
      fh = await openFile(path, 'r');
    } catch {
      return { text: '', path };
    }
    try {
      const size = (await fh.stat()).size;
      const start = Math.max(0, size - limit);
      const buf = Buffer.alloc(size - start);
      await fh.read(buf, 0, buf.length, start);
      return { text: buf.toString('utf8'), path };
    } finally {
      await fh.close();
    }
  }

  /**
   * What happens to a domain whose QEMU ended: its state becomes shut off
   * with the reason, a transient domain disappears, the status file goes.
   */
  onExit(d: HostedDomain, runtime: DomainRuntime, reason: ExitReason): void {
    if (d.runtime !== runtime) return;
    d.runtime = null;
    const migrated = runtime.stopRequested === 'migrated';
    const destroyed = !migrated && (runtime.stopRequested === 'destroy' || reason.kind === 'destroyed');
    const next =
      migrated ? mkStatus('shutoff', 'migrated')
      : destroyed ? mkStatus('shutoff', 'destroyed')
      : reason.kind === 'shutdown' ? mkStatus('shutoff', 'shutdown')
      : reason.kind === 'failed-to-start' ? mkStatus('shutoff', 'failed')
      : mkStatus('shutoff', 'crashed');
    d.setStatus(next);
    if (!destroyed && !migrated) this.deps.log(`domain '${d.name}' stopped: ${describeExit(reason)}`);
    void this.deps.runner.forget(runtime.liveDoc.def.uuid);
    this.deps.events.lifecycle(d, 'stopped', next.reason === 'shutdown' ? 'shutdown' : next.reason);
    if (!d.persistent) this.deps.registry.remove(d);
  }

  /** Launches QEMU for `d` from `doc` (caller holds the job lock). */
  private async boot(d: HostedDomain, doc: DomainDocument, paused: boolean): Promise<DomainSummary> {
    let runtime: DomainRuntime;
    try {
      runtime = await this.deps.runner.launch(d, doc, { paused });
    } catch (err) {
      d.setStatus(mkStatus('shutoff', 'failed'));
      throw err;
    }
    d.runtime = runtime;
    d.setStatus(paused ? mkStatus('paused', 'user') : mkStatus('running', 'booted'));
    this.deps.runner.watch(d, runtime, (dd, rt, reason) => this.onExit(dd, rt, reason));
    this.deps.events.lifecycle(d, 'started', 'booted');
    if (paused) this.deps.events.lifecycle(d, 'suspended', 'paused');
    return d.summary();
  }

  private async refreshStatusFile(d: HostedDomain): Promise<void> {
    if (d.runtime && isActive(d.status)) await this.deps.runner.writeStatus(d, d.runtime, d.status, d.runtime.qemu.startTime);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.creating.then(fn, fn);
    this.creating = run.catch(() => undefined);
    return run;
  }
}

/** The state now, read through a call so that TypeScript does not carry a narrowing across an await. */
function stateOf(d: HostedDomain): string {
  return d.status.state;
}

function requireXml(xml: unknown): string {
  if (typeof xml !== 'string' || xml.trim() === '') throw new FerryError('xml_error', 'an XML domain definition is required');
  return xml;
}
