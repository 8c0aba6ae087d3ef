/** Domain references on the wire (name, 16-byte UUID, id) to and from the host's domains. */
import { FerryError } from '../../errors/index.js';
import type { DomainSummary } from '../../host/views.js';
import type { DomainRef } from '../wire-types.js';

/** The wire reference of a domain. */
export function refOf(d: Pick<DomainSummary, 'name' | 'uuid' | 'id'>): DomainRef {
  return { name: d.name, uuid: uuidBytes(d.uuid), id: d.id ?? -1 };
}

/** A canonical UUID string as 16 bytes. */
export function uuidBytes(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new FerryError('internal_error', `'${uuid}' is not a UUID`);
  return Buffer.from(hex, 'hex');
}

/** 16 bytes as a canonical UUID string. */
export function uuidString(bytes: Buffer): string {
  const h = bytes.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** How the host finds the domain a reference names: libvirt servers look domains up by UUID. */
export function lookupKey(ref: DomainRef): string {
  return uuidString(ref.uuid);
}

/** Refuses flag bits outside `known`, naming them, as libvirt's virCheckFlags does. */
export function checkFlags(flags: number, known: number, what: string): void {
  const unknown = (flags & ~known) >>> 0;
  if (unknown !== 0) throw new FerryError('invalid_arg', `unsupported flags (0x${unknown.toString(16)}) in function ${what}`);
}
