/** The daemon's event bus: lifecycle, migration-iteration, job-completed, host maintenance and evacuation events fanned out to API subscribers. */
import { EventEmitter } from 'node:events';
import type { JobStats } from './job-stats.js';

/** A lifecycle event as sent to subscribers (event name 'domain.lifecycle'), after libvirt's lifecycle events. */
export interface LifecycleEvent {
  domain: string;
  uuid: string;
  kind: 'defined' | 'undefined' | 'started' | 'suspended' | 'resumed' | 'stopped' | 'shutdown';
  /** libvirt's detail, e.g. 'booted', 'destroyed', 'shutdown', 'crashed', 'migrated'. */
  detail: string;
  timestamp: string;
}

/** libvirt's migration-iteration event: QEMU started another pass over dirty memory. */
export interface MigrationIterationEvent {
  domain: string;
  uuid: string;
  iteration: number;
  /** The live forecast's time to completion when the pass began, ms; absent when it cannot be known. */
  time_remaining?: number;
  /** The live verdict then (see src/migration/convergence.ts). */
  convergence?: 'converging' | 'not converging' | 'unknown';
  timestamp: string;
}

/** libvirt's job-completed event: a job ended, with its final statistics. */
export interface JobCompletedEvent {
  domain: string;
  uuid: string;
  stats: JobStats;
  /** An outgoing migration's mode (`managed`, `p2p`, `p2p-tunnelled`, `offline`); absent on the destination. */
  mode?: string;
  timestamp: string;
}

/** An outgoing migration began (its slot granted, begin done): counted by mode in the metrics. */
export interface MigrationStartedEvent {
  domain: string;
  uuid: string;
  mode: string;
  timestamp: string;
}

/** A step of a migration's convergence policy: a warning, a raised downtime limit, throttling, post-copy, pause or abort. */
export interface MigrationPolicyEvent {
  domain: string;
  uuid: string;
  step: 'warn' | 'set-downtime' | 'throttle-harder' | 'start-postcopy' | 'pause' | 'abort';
  message: string;
  timestamp: string;
}

/** The host went into maintenance or out of it (see maintenance.ts); no domain. */
export interface MaintenanceEvent {
  host: string;
  enabled: boolean;
  since: string | null;
  reason: string | null;
  timestamp: string;
}

/** An evacuation of this host changed (a migration started or ended, it was stopped, it ended); `host.evacuate.status` has the details. */
export interface EvacuationEvent {
  host: string;
  state: string;
  total: number;
  done: number;
  failed: number;
  check: number;
  running: number;
  timestamp: string;
}

/** A typed event published by the host layer. */
export type HostEvent =
  | { name: 'host.maintenance'; data: MaintenanceEvent }
  | { name: 'host.evacuation'; data: EvacuationEvent }
  | { name: 'domain.migration-policy'; data: MigrationPolicyEvent }
  | { name: 'domain.lifecycle'; data: LifecycleEvent }
  | { name: 'domain.migration-iteration'; data: MigrationIterationEvent }
  | { name: 'domain.job-completed'; data: JobCompletedEvent }
  | { name: 'domain.migration-started'; data: MigrationStartedEvent };

/** Publish/subscribe for {@link HostEvent}s. */
export class EventBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  /** Publishes a lifecycle event. */
  lifecycle(domain: { name: string; uuid: string }, kind: LifecycleEvent['kind'], detail: string): void {
    this.publish({ name: 'domain.lifecycle', data: { domain: domain.name, uuid: domain.uuid, kind, detail, timestamp: new Date().toISOString() } });
  }

  /** Publishes a migration-iteration event. */
  migrationIteration(domain: { name: string; uuid: string }, iteration: number, estimate: { time_remaining?: number; convergence?: MigrationIterationEvent['convergence'] } = {}): void {
    this.publish({ name: 'domain.migration-iteration', data: { domain: domain.name, uuid: domain.uuid, iteration, ...estimate, timestamp: new Date().toISOString() } });
  }

  /** Publishes a job-completed event. */
  jobCompleted(domain: { name: string; uuid: string }, stats: JobStats, mode?: string): void {
    this.publish({ name: 'domain.job-completed', data: { domain: domain.name, uuid: domain.uuid, stats, ...(mode !== undefined ? { mode } : {}), timestamp: new Date().toISOString() } });
  }

  /** Publishes the start of an outgoing migration. */
  migrationStarted(domain: { name: string; uuid: string }, mode: string): void {
    this.publish({ name: 'domain.migration-started', data: { domain: domain.name, uuid: domain.uuid, mode, timestamp: new Date().toISOString() } });
  }

  /** Publishes a step of a migration's convergence policy. */
  migrationPolicy(domain: { name: string; uuid: string }, step: MigrationPolicyEvent['step'], message: string): void {
    this.publish({ name: 'domain.migration-policy', data: { domain: domain.name, uuid: domain.uuid, step, message, timestamp: new Date().toISOString() } });
  }

  /** Publishes a change of an evacuation of this host. */
  evacuation(data: Omit<EvacuationEvent, 'timestamp'>): void {
    this.publish({ name: 'host.evacuation', data: { ...data, timestamp: new Date().toISOString() } });
  }

  /** Publishes a change of the host's maintenance mode. */
  maintenance(host: string, state: { enabled: boolean; since: string | null; reason: string | null }): void {
    this.publish({ name: 'host.maintenance', data: { host, enabled: state.enabled, since: state.since, reason: state.reason, timestamp: new Date().toISOString() } });
  }

  /** Publishes any event. */
  publish(event: HostEvent): void {
    this.emitter.emit('event', event);
  }

  /** Subscribes; returns the unsubscribe function. */
  subscribe(fn: (event: HostEvent) => void): () => void {
    this.emitter.on('event', fn);
    return () => this.emitter.off('event', fn);
  }
}
