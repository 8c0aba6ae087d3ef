/** Domain UUIDs: accepted spellings and the one canonical form Ferry stores. */
import { FerryError, showValue } from '../errors/index.js';

const DASHED = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const PLAIN = /^[0-9a-fA-F]{32}$/;

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

/**
 * Checks and canonicalises a UUID given as an argument.
 *
 * @throws FerryError `invalid_arg` when `text` is not a UUID.
 */
export function normaliseUuid(text: string): string {
  const uuid = canonicalUuid(text);
  if (uuid === undefined) {
    throw new FerryError('invalid_arg', `invalid UUID ${showValue(text)}: expected 32 hex digits, optionally dashed 8-4-4-4-12`);
  }
  return uuid;
}
