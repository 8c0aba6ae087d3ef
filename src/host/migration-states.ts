/**
 * The state changes a migration makes to a domain, in one place. The
 * migration layer decides when each happens; these operations say what it
 * does to the domain, its status file, its definition and its lifecycle
 * events. On the source: the pause for the switch-over, the take-back after
 * a failure, the stop (and undefine) after success. On the destination:
 * adopting the incoming domain, starting its QEMU, persisting its
 * definition, the hand-over that makes the guest this host's, and the
 * clean-up of a copy that never got the guest.
 */
import type { DomainDocument } from '../domain/index.js';
import { status as mkStatus } from '../domain/lifecycle-state.js';
import { FerryError } from '../errors/index.js';
import type { EventBus } from './events.js';
import type { GuestRunner } from './guest-runner.js';
import { HostedDomain, type DomainRuntime } from './hosted-domain.js';
import type { Lifecycle } from './lifecycle.js';
import type { DomainRegistry } from './registry.js';

/** What the migration state changes work on. */
export interface MigrationStatesDeps {
  registry: DomainRegistry;
  runner: GuestRunner;
  events: EventBus;
  lifecycle: Lifecycle;
  /** This host's name, for refusals. */
  hostName: string;
}

/** How the destination runs the guest once it is handed over. */
export interface HandOverMode {
  /** Leave it paused (PAUSED, or a guest that was paused on the source). */
  paused: boolean;
  /** The stream is in post-copy: the guest runs while the rest of its memory arrives. */
  postcopy: boolean;
}

/** The named domain state changes of migrations on one host. */
export class MigrationStates {
  constructor(private readonly deps: MigrationStatesDeps) {}

  // --- source ---

  /**
   * Pauses the guest for an offline-style (not LIVE) migration: QEMU `stop`,
   * recorded as `paused (migrating)` once, whether the STOP event or this
   * call records it first.
   */
  async pauseForMigration(d: HostedDomain, rt: DomainRuntime): Promise<void> {
    rt.pendingPause = 'migrating';
    await rt.qemu.qmp.execute('stop');
    // The STOP event may have recorded the pause already; one event, one state.
    if (stateOf(d) !== 'paused') await this.deps.runner.transition(d, rt, mkStatus('paused', 'migrating'), 'suspended', 'migrated');
  }

  /** QEMU is about to pause the guest itself at the switch-over: record that pause as `migrating`, not `unknown`. */
  expectSwitchoverPause(rt: DomainRuntime): void {
    rt.pendingPause = 'migrating';
  }

  /** No switch-over happened: a STOP from now on (a user's suspend, say) is not the migration's. */
  dropSwitchoverPause(rt: DomainRuntime): void {
    if (rt.pendingPause === 'migrating') rt.pendingPause = undefined;
  }

  /**
   * Takes the guest back after a migration that failed: it runs again on
   * the source as `running (migration canceled)`. `qemuRunning` is QEMU's
   * own view (`query-status`): a QEMU still stopped gets `cont`, one already
   * running only has its state recorded.
   */
  async takeBack(d: HostedDomain, rt: DomainRuntime, qemuRunning: boolean): Promise<void> {
    const canceled = mkStatus('running', 'migration canceled');
    if (!qemuRunning) {
      // Set before `cont` so the RESUME event does not record a plain 'unpaused'.
      d.setStatus(canceled);
      await rt.qemu.qmp.execute('cont');
    }
    await this.deps.runner.transition(d, rt, canceled, 'resumed', 'migration canceled');
  }

  /**
   * Stops the source QEMU after a successful migration: the guest runs on
   * the destination, so the domain becomes `shut off (migrated)` here (a
   * transient one disappears).
   */
  async stopAfterMigration(d: HostedDomain, rt: DomainRuntime): Promise<void> {
    rt.stopRequested = 'migrated';
    await rt.qemu.kill({ graceful: true, gracefulTimeoutMs: 5000 }).catch(() => undefined);
    this.deps.lifecycle.onExit(d, rt, { kind: 'destroyed' });
  }

  /** Removes the source's persistent definition after a successful migration (UNDEFINE_SOURCE), as `undefine` does; a transient domain is left alone. */
  async undefineAfterMigration(d: HostedDomain): Promise<void> {
    if (d.persistent) await this.deps.lifecycle.dropDefinition(d);
  }

  // --- both sides ---

  /**
   * Records a post-copy that broke after the switch. The source's guest is
   * `paused (post-copy failed)` and never runs again (its memory is stale);
   * the destination's keeps `running (post-copy failed)` and may stall on
   * pages it never received. Recorded once: a second call changes nothing.
   */
  async markPostcopyFailed(d: HostedDomain, rt: DomainRuntime, side: 'source' | 'destination'): Promise<void> {
    if (side === 'source') {
      if (stateOf(d) !== 'paused' || d.status.reason !== 'post-copy failed') {
        await this.deps.runner.transition(d, rt, mkStatus('paused', 'post-copy failed'), 'suspended', 'postcopy failed');
      }
      return;
    }
    if (stateOf(d) !== 'running' || d.status.reason !== 'post-copy failed') {
      await this.deps.runner.transition(d, rt, mkStatus('running', 'post-copy failed'), 'resumed', 'postcopy failed');
    }
  }

  /**
   * A paused post-copy migration runs again (POSTCOPY_RESUME): the source's
   * guest is `paused (post-copy)` until its stream ends, the destination's
   * `running (post-copy)` again.
   */
  async markPostcopyResumed(d: HostedDomain, rt: DomainRuntime, side: 'source' | 'destination'): Promise<void> {
    if (d.status.reason !== 'post-copy failed') return;
    if (side === 'source') await this.deps.runner.transition(d, rt, mkStatus('paused', 'post-copy'), 'suspended', 'postcopy');
    else await this.deps.runner.transition(d, rt, mkStatus('running', 'post-copy'), 'resumed', 'postcopy');
  }

  // --- destination ---

  /**
   * Finds or adds the domain an incoming migration fills: an inactive
   * domain with the same name and UUID is reused (it stays afterwards),
   * else a new transient domain is added to the registry.
   *
   * @throws FerryError `operation_invalid` when the domain is active here, `dom_exist` when the name or UUID belongs to another domain
   */
  adoptIncoming(uuid: string, name: string): { domain: HostedDomain; existedBefore: boolean } {
    const { registry, hostName } = this.deps;
    const existing = registry.getByUuid(uuid) ?? registry.getByName(name);
    if (existing) {
      if (existing.active || existing.runtime) {
        throw new FerryError('operation_invalid', `domain '${existing.name}' is already active on ${hostName}`);
      }
      if (existing.uuid !== uuid || existing.name !== name) {
        throw new FerryError('dom_exist', `domain '${existing.name}' already exists on ${hostName} with uuid ${existing.uuid}`);
      }
    }
    const d = existing ?? new HostedDomain(uuid, name, null);
    if (!existing) registry.add(d);
    return { domain: d, existedBefore: !!existing };
  }

  /**
   * Starts the destination QEMU waiting for the stream (`-incoming defer`):
   * the domain is `paused (migrating)` and its QEMU watched like any other.
   * The caller holds the domain's job lock.
   */
  async startIncoming(d: HostedDomain, doc: DomainDocument): Promise<DomainRuntime> {
    const { runner, lifecycle } = this.deps;
    const rt = await runner.launch(d, doc, { paused: true, incoming: true });
    d.runtime = rt;
    d.setStatus(mkStatus('paused', 'migrating'));
    runner.watch(d, rt, (dd, r, reason) => lifecycle.onExit(dd, r, reason));
    return rt;
  }

  /** Makes `doc` the destination's persistent definition (PERSIST_DEST), as `define` does. */
  async persistAfterMigration(d: HostedDomain, doc: DomainDocument): Promise<void> {
    await this.deps.lifecycle.saveDefinition(d, doc);
  }

  /**
   * Hands the guest over to this host: from here a restarted ferryd keeps
   * the QEMU instead of removing it, and the guest is `started (migrated)`.
   * It then runs (`running (migrated)`, or `running (post-copy)` while the
   * rest of a post-copy stream flows) or, with `paused`, stays
   * `paused (user)`. Returns when the vCPUs were resumed (epoch ms), for the
   * downtime; undefined when the guest stays paused.
   */
  async handOver(d: HostedDomain, rt: DomainRuntime, mode: HandOverMode): Promise<number | undefined> {
    const { runner, events } = this.deps;
    // From here the QEMU holds the guest: it must outlive this daemon like any other.
    rt.tether?.release();
    rt.incoming = false;
    events.lifecycle(d, 'started', 'migrated');
    if (mode.paused) {
      await runner.transition(d, rt, mkStatus('paused', 'user'), 'suspended', 'paused');
      return undefined;
    }
    // Set before `cont` so the RESUME event does not record a plain 'unpaused'.
    const running = mode.postcopy ? mkStatus('running', 'post-copy') : mkStatus('running', 'migrated');
    d.setStatus(running);
    await rt.qemu.qmp.execute('cont');
    const resumedAt = Date.now();
    await runner.transition(d, rt, running, 'resumed', mode.postcopy ? 'postcopy' : 'migrated');
    return resumedAt;
  }

  /**
   * The source switched to post-copy: the incoming QEMU now holds the
   * guest's device state, so it must outlive this daemon (untethered) even
   * before it is handed over, and its state says so (`paused (post-copy)`,
   * recorded in the status file for a restarted daemon).
   */
  async keepSwitchedIncoming(d: HostedDomain, rt: DomainRuntime): Promise<void> {
    rt.tether?.release();
    d.setStatus(mkStatus('paused', 'post-copy'));
    await this.deps.runner.writeStatus(d, rt, d.status, rt.qemu.startTime);
  }

  /** The rest of a post-copy stream arrived: `running (post-copy)` becomes `running (migrated)`. */
  async markPostcopyCompleted(d: HostedDomain, rt: DomainRuntime): Promise<void> {
    if (d.status.reason === 'post-copy') await this.deps.runner.transition(d, rt, mkStatus('running', 'migrated'), 'resumed', 'migrated');
  }

  /** Kills an incoming QEMU that never got the guest (the source keeps it); its exit is a destroy, not a crash. */
  async killIncoming(rt: DomainRuntime): Promise<void> {
    rt.stopRequested = 'destroy';
    await rt.qemu.kill({ graceful: false }).catch(() => undefined);
  }

  /**
   * Undoes an incoming migration that did not hand the guest over: kills
   * its QEMU, leaves the domain `shut off (failed)` and removes it unless it
   * existed (inactive) before the migration.
   */
  async dropIncoming(d: HostedDomain, existedBefore: boolean): Promise<void> {
    const rt = d.runtime;
    if (rt) {
      await this.killIncoming(rt);
      if (d.runtime === rt) {
        d.runtime = null;
        void this.deps.runner.forget(rt.liveDoc.def.uuid);
      }
    }
    d.setStatus(mkStatus('shutoff', 'failed'));
    if (!existedBefore) this.deps.registry.remove(d);
  }
}

/** The state now, read through a call so that TypeScript does not carry a narrowing across an await. */
function stateOf(d: HostedDomain): string {
  return d.status.state;
}
