/**
 * The native protocol's messages and methods: what a client may call, with
 * the shape of its parameters and result. Client and server both read this
 * file, so a method's contract is written once.
 */
import type { ErrorPayload } from '../errors/index.js';
import type { DomainState } from '../domain/lifecycle-state.js';
import type { DomainInfo, DomainSummary, ListFilter } from '../host/views.js';
import type { LifecycleEvent } from '../host/events.js';

export type { DomainInfo, DomainSummary, ListFilter, LifecycleEvent };

/** Protocol version, sent in `connect.hello`; bump on incompatible change (2: keepalive pings). */
export const PROTOCOL_VERSION = 2;

/** A client's request. */
export interface CallMessage {
  type: 'call';
  id: number;
  method: string;
  params?: Record<string, unknown>;
}

/** The server's answer to one call. */
export type ReplyMessage =
  | { type: 'reply'; id: number; result: unknown }
  | { type: 'reply'; id: number; error: ErrorPayload };

/** An unsolicited event, sent to connections that subscribed. */
export interface EventMessage {
  type: 'event';
  event: string;
  data: unknown;
}

/**
 * Keepalive (see keepalive.ts): either end may ping after a silent
 * interval; the other answers with a pong at once.
 */
export interface PingMessage {
  type: 'ping';
}

/** The answer to a {@link PingMessage}. */
export interface PongMessage {
  type: 'pong';
}

/** A domain lookup: by name, UUID or numeric id, as virsh accepts them. */
export interface DomainRef {
  domain: string;
}

/** The host's identity, returned by `connect.hello`. */
export interface HostIdentity {
  hostName: string;
  hostUuid: string;
  protocolVersion: number;
  version: string;
}

/** Method table: parameter and result types of every call. */
export interface ApiMethods {
  'connect.hello': { params: Record<string, never>; result: HostIdentity };
  'domain.list': { params: ListFilter; result: DomainSummary[] };
  'domain.define': { params: { xml: string }; result: DomainSummary };
  'domain.undefine': { params: DomainRef; result: DomainSummary };
  'domain.create': { params: { xml: string; paused?: boolean; autodestroy?: boolean }; result: DomainSummary };
  'domain.start': { params: DomainRef & { paused?: boolean }; result: DomainSummary };
  'domain.destroy': { params: DomainRef & { graceful?: boolean }; result: DomainSummary };
  'domain.shutdown': { params: DomainRef; result: DomainSummary };
  'domain.suspend': { params: DomainRef; result: DomainSummary };
  'domain.resume': { params: DomainRef; result: DomainSummary };
  'domain.info': { params: DomainRef; result: DomainInfo };
  'domain.state': { params: DomainRef; result: { state: DomainState; reason: string } };
  'domain.xml': { params: DomainRef & { inactive?: boolean }; result: { xml: string } };
  'domain.autostart': { params: DomainRef & { enable: boolean }; result: DomainSummary };
  'domain.consoleLog': { params: DomainRef & { maxBytes?: number }; result: { text: string; path: string } };
  'domain.qemuMonitorCommand': { params: DomainRef & { command: string; hmp?: boolean }; result: { return: unknown } };
  'events.subscribe': { params: Record<string, never>; result: { subscribed: true } };
}

/** A method name. */
export type ApiMethod = keyof ApiMethods;
