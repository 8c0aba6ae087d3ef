/** Builders for the two refusals the domain layer makes, so messages stay uniform. */
import { FerryError } from '../errors/index.js';

const MAX_SHOWN_CHARS = 120;

/**
 * Quotes a user-supplied value for an error message. Control characters are
 * escaped and long values cut, so a hostile document cannot forge extra lines
 * in logs or flood them.
 */
export function show(value: string): string {
  const cut = [...value];
  const shown = cut.length > MAX_SHOWN_CHARS ? `${cut.slice(0, MAX_SHOWN_CHARS).join('')}...` : value;
  const escaped = shown.replace(/[\p{Cc}\u2028\u2029]/gu, (ch) => `\\u${ch.codePointAt(0)!.toString(16).padStart(4, '0')}`);
  return `'${escaped}'`;
}

/** The document is malformed or breaks a rule of the domain XML format. */
export function xmlError(message: string): FerryError {
  return new FerryError('xml_error', message);
}

/** The document is valid libvirt domain XML but asks for something Ferry cannot run. */
export function unsupported(message: string): FerryError {
  return new FerryError('config_unsupported', message);
}
