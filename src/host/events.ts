/** The daemon's event bus: lifecycle (and later job) events fanned out to API subscribers. */
import { EventEmitter } from 'node:events';

/** A lifecycle event as sent to subscribers (event name 'domain.lifecycle'), after libvirt's lifecycle events. */
export interface LifecycleEvent {
  domain: string;
  uuid: string;
  kind: 'defined' | 'undefined' | 'started' | 'suspended' | 'resumed' | 'stopped' | 'shutdown';
  /** libvirt's detail, e.g. 'booted', 'destroyed', 'shutdown', 'crashed', 'migrated'. */
  detail: string;
  timestamp: string;
}

/** A typed event published by the host layer. */
export type HostEvent = { name: 'domain.lifecycle'; data: LifecycleEvent };

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
