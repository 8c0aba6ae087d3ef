/** What the host tells clients about its domains: the rows of `list` and `dominfo`, and list filters. */
import type { DomainState } from '../domain/lifecycle-state.js';

/** One row of `list`. */
export interface DomainSummary {
  /** Runtime id while active (virsh's Id column), else null. */
  id: number | null;
  name: string;
  uuid: string;
  state: DomainState;
  reason: string;
  persistent: boolean;
  autostart: boolean;
}

/** `dominfo`. */
export interface DomainInfo extends DomainSummary {
  osType: 'hvm';
  maxMemoryKiB: number;
  usedMemoryKiB: number;
  vcpus: number;
  /** CPU time used by the QEMU process, seconds, while active. */
  cpuTimeSeconds: number | null;
  /** The accelerator the guest runs under, while active. */
  accel: 'kvm' | 'tcg' | null;
  /** Elements of its XML that are kept but have no effect (see docs/domain-xml.md); absent when none. */
  ignored?: string[];
}

/** Filters of `list`, mirroring virsh's options; combined with AND, like virsh. */
export interface ListFilter {
  all?: boolean;
  inactive?: boolean;
  state?: Array<'running' | 'paused' | 'shutoff' | 'other'>;
  persistent?: boolean;
  transient?: boolean;
  autostart?: boolean;
  noAutostart?: boolean;
}
