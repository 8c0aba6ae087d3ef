/**
 * One domain as the host holds it: its persistent definition (if any), its
 * live definition and QEMU while active, its state with reason, its runtime
 * id and its job lock. State changes go through {@link HostedDomain.setStatus}.
 */
import type { DomainDocument } from '../domain/index.js';
import { isActive, status, type DomainStatus } from '../domain/lifecycle-state.js';
import type { QemuHandle, Tether } from '../qemu/index.js';
import { DomainJobLock } from './job-lock.js';
import type { DomainSummary } from './views.js';
import type { JobStats } from './job-stats.js';

/** The running side of an active domain. */
export interface DomainRuntime {
  /** Runtime id (virsh's Id). */
  id: number;
  /** The definition QEMU was started from. */
  liveDoc: DomainDocument;
  qemu: QemuHandle;
  accel: 'kvm' | 'tcg';
  /** ISO 8601 time QEMU was launched. */
  startedAt: string;
  /** Set when ferryd itself asked QEMU to stop, so the exit is not taken for a crash. */
  stopRequested: 'destroy' | 'migrated' | null;
  /** This QEMU was started to receive an incoming migration (until finish hands it the guest). */
  incoming?: boolean;
  /** While incoming: ties the QEMU to this ferryd, so it dies with it (released when the guest is handed over or the QEMU ends). */
  tether?: Tether;
  /** Reason to record when QEMU reports the next STOP (set by suspend). */
  pendingPause?: 'user' | 'migrating';
}

/** A domain known to this host. */
export class HostedDomain {
  /** Persistent definition; null for a transient domain. */
  persistentDoc: DomainDocument | null;
  runtime: DomainRuntime | null = null;
  autostart = false;
  /** Statistics of the last completed (or failed) job, for `domjobinfo --completed`. */
  completedJob: JobStats | null = null;
  private currentStatus: DomainStatus = status('shutoff', 'unknown');
  readonly jobs: DomainJobLock;

  constructor(
    readonly uuid: string,
    public name: string,
    persistentDoc: DomainDocument | null,
  ) {
    this.persistentDoc = persistentDoc;
    this.jobs = new DomainJobLock(() => this.name);
  }

  /** Current state and reason. */
  get status(): DomainStatus {
    return this.currentStatus;
  }

  /** Whether QEMU runs for this domain. */
  get active(): boolean {
    return this.runtime !== null && isActive(this.currentStatus);
  }

  /** Whether the domain has a persistent definition. */
  get persistent(): boolean {
    return this.persistentDoc !== null;
  }

  /** The definition to show: live while active, else persistent. */
  get currentDoc(): DomainDocument {
    const doc = this.runtime?.liveDoc ?? this.persistentDoc;
    if (!doc) throw new Error(`domain ${this.name} has neither a live nor a persistent definition`);
    return doc;
  }

  /** Records a new state; returns the previous one. */
  setStatus(next: DomainStatus): DomainStatus {
    const prev = this.currentStatus;
    this.currentStatus = next;
    return prev;
  }

  /** The `list` row of this domain. */
  summary(): DomainSummary {
    return {
      id: this.runtime?.id ?? null,
      name: this.name,
      uuid: this.uuid,
      state: this.currentStatus.state,
      reason: this.currentStatus.reason,
      persistent: this.persistent,
      autostart: this.autostart,
    };
  }
}
