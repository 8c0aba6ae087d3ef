/**
 * Domain states and their reasons, with libvirt's numbers and virsh's
 * wording, so that `domstate --reason` reads like virsh and a later
 * libvirt-protocol layer can send the numbers unchanged.
 */

/** libvirt's virDomainState values Ferry uses. */
export const DOMAIN_STATES = {
  nostate: { number: 0, label: 'no state' },
  running: { number: 1, label: 'running' },
  blocked: { number: 2, label: 'idle' },
  paused: { number: 3, label: 'paused' },
  shutdown: { number: 4, label: 'in shutdown' },
  shutoff: { number: 5, label: 'shut off' },
  crashed: { number: 6, label: 'crashed' },
  pmsuspended: { number: 7, label: 'pmsuspended' },
} as const;

/** A domain state name. */
export type DomainState = keyof typeof DOMAIN_STATES;

/** Reasons per state, in libvirt's order (index = libvirt's reason number). */
export const STATE_REASONS = {
  nostate: ['unknown'],
  running: ['unknown', 'booted', 'migrated', 'restored', 'from snapshot', 'unpaused', 'migration canceled', 'save canceled', 'event wakeup', 'crashed', 'post-copy', 'post-copy failed'],
  blocked: ['unknown'],
  paused: ['unknown', 'user', 'migrating', 'saving', 'dumping', 'I/O error', 'watchdog', 'from snapshot', 'shutting down', 'creating snapshot', 'crashed', 'starting up', 'post-copy', 'post-copy failed'],
  shutdown: ['unknown', 'user'],
  shutoff: ['unknown', 'shutdown', 'destroyed', 'crashed', 'migrated', 'saved', 'failed', 'from snapshot', 'daemon'],
  crashed: ['unknown', 'panicked'],
  pmsuspended: ['unknown'],
} as const satisfies Record<DomainState, readonly string[]>;

/** A reason valid for state `S`. */
export type StateReason<S extends DomainState = DomainState> = (typeof STATE_REASONS)[S][number];

/** A state together with a reason that belongs to it. */
export type DomainStatus = { [S in DomainState]: { state: S; reason: StateReason<S> } }[DomainState];

/** Builds a {@link DomainStatus}, checked at compile time. */
export function status<S extends DomainState>(state: S, reason: StateReason<S>): DomainStatus {
  return { state, reason } as DomainStatus;
}

/** virsh's rendering, e.g. `shut off (destroyed)` or `running`. */
export function describeStatus(s: DomainStatus, withReason: boolean): string {
  const label = DOMAIN_STATES[s.state].label;
  return withReason ? `${label} (${s.reason})` : label;
}

/** libvirt's reason number of `s` (index in {@link STATE_REASONS}). */
export function reasonNumber(s: DomainStatus): number {
  const list = STATE_REASONS[s.state] as readonly string[];
  const i = list.indexOf(s.reason);
  return i < 0 ? 0 : i;
}

/** Whether a QEMU process exists for a domain in this state. */
export function isActive(s: DomainStatus): boolean {
  return s.state === 'running' || s.state === 'paused' || s.state === 'blocked' || s.state === 'shutdown' || s.state === 'pmsuspended';
}
