/**
 * UUIDs, of domains and of hosts: the spellings accepted, the one canonical
 * form Ferry stores and compares, and the making of new ones. Every layer
 * that reads, checks or makes a UUID does it here.
 */
import { FerryError, showValue } from '../errors/index.js';

const DASHED = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const PLAIN = /^[0-9a-fA-F]{32}$/;

/** What a UUID must look like, as the end of a refusal: `invalid value 'x' for <uuid>: expected ...`. */
export const UUID_EXPECTED = 'expected 32 hex digits, optionally dashed 8-4-4-4-12';

/**
 * The canonical (lower-case, dashed 8-4-4-4-12) form of `text`, or undefined
 * when `text` is not a UUID. Accepts the dashed form and 32 bare hex digits
 * in either case, the spellings libvirt users write in practice.
 */
export function canonicalUuid(text: string): string | undefined {
  let hex: string;
  if (DASHED.test(text)) hex = text.replace(/-/g, '');
  else if (PLAIN.test(text)) hex = text;
  else return undefined;
  hex = hex.toLowerCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Whether `text` is a UUID in its canonical form (what Ferry stores, and names files by). */
export function isCanonicalUuid(text: string): boolean {
  return canonicalUuid(text) === text;
}

/**
 * Whether `a` and `b` name the same UUID, in whatever spelling; two strings
 * that are no UUIDs compare without regard to case.
 */
export function sameUuid(a: string, b: string): boolean {
  return (canonicalUuid(a) ?? a.toLowerCase()) === (canonicalUuid(b) ?? b.toLowerCase());
}

/** A new random (version 4) UUID, in canonical form. */
export function newUuid(): string {
  return globalThis.crypto.randomUUID();
}

/**
 * Checks and canonicalises a UUID given as an argument; `what` names it in
 * the refusal (default "UUID").
 *
 * @throws FerryError `invalid_arg` when `text` is not a UUID.
 */
export function normaliseUuid(text: string, what = 'UUID'): string {
  const uuid = canonicalUuid(text);
  if (uuid === undefined) throw new FerryError('invalid_arg', `invalid ${what} ${showValue(text)}: ${UUID_EXPECTED}`);
  return uuid;
}
