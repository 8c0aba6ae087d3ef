/** The two ways Ferry writes QEMU option values: JSON where QEMU takes it, strictly escaped legacy `key=value,...` elsewhere. */
import { FerryError, showValue } from '../errors/index.js';

/**
 * A value for a legacy (QemuOpts) option, e.g. `-chardev file,id=x,path=VALUE`.
 *
 * QemuOpts splits on commas and a doubled comma stands for a literal one, so
 * doubling every comma is the only escaping it needs: after that no input can
 * end the value early and start a new `key=`. An `=` inside a value is harmless
 * because only the first `=` of a parameter separates key from value.
 *
 * NUL can't travel in an argv element at all, and newlines are refused too:
 * they are never part of a sensible path or name, and they would let a value
 * forge extra lines in the QEMU log that people read.
 *
 * @param value the raw string, typically a path or name from the domain definition
 * @param what what the value is, for the error message (e.g. "serial port 0 path")
 * @throws FerryError `config_unsupported` if the value holds NUL, CR or LF
 */
export function escapeLegacyValue(value: string, what: string): string {
  assertPlainString(value, what);
  return value.replace(/,/g, ',,');
}

/**
 * Builds one legacy option argument from a leading bare word (the implied
 * first parameter, e.g. the chardev backend) and `key=value` pairs.
 *
 * Keys and the leading word are Ferry's own constants; every value goes
 * through {@link escapeLegacyValue}. `undefined` values are left out so that
 * callers can write optional parameters inline.
 */
export function legacyOption(
  lead: string | undefined,
  params: ReadonlyArray<readonly [key: string, value: string | undefined]>,
  what: string,
): string {
  const parts: string[] = [];
  if (lead !== undefined) parts.push(lead);
  for (const [key, value] of params) {
    if (value === undefined) continue;
    if (!/^[a-z][a-z0-9._-]*$/.test(key)) {
      // Keys are never user input; a bad one is a bug in Ferry, not a config problem.
      throw new FerryError('internal_error', `invalid QEMU option key ${showValue(key)} for ${what}`);
    }
    parts.push(`${key}=${escapeLegacyValue(value, `${what} ${key}`)}`);
  }
  return parts.join(',');
}

/**
 * Serialises an option object for the options that accept JSON on the
 * command line in QEMU 7.2 (`-blockdev`, `-device`, `-netdev`, `-object`).
 * QEMU decides "JSON or legacy" by a leading `{`, which `JSON.stringify` of an
 * object always produces, so user strings inside stay plain JSON strings.
 *
 * `undefined` properties are dropped by `JSON.stringify`, which is what lets
 * callers build objects with optional fields inline.
 */
export function jsonOption(value: Record<string, unknown>, what: string): string {
  assertNoNulDeep(value, what);
  return JSON.stringify(value);
}

/**
 * A value for an option that QEMU parses without any escaping, such as
 * `-cpu MODEL,+FEATURE,...` (x86's feature string is split on every comma):
 * the only safe value is one that cannot contain a separator at all, so
 * `value` must match `pattern` in full or it is refused, never escaped.
 *
 * @param pattern an anchored pattern that admits no `,` `=` `+` or space
 * @throws FerryError `config_unsupported` when `value` does not match
 */
export function optionWord(value: string, pattern: RegExp, what: string): string {
  if (!pattern.test(value) || /[,=+\s]/.test(value)) {
    throw new FerryError('config_unsupported', `${what} ${showValue(value)} cannot be passed to QEMU safely: use letters, digits, '.', '_' and '-'`);
  }
  return value;
}

/**
 * Refuses strings that can't be passed safely anywhere on a command line.
 *
 * @throws FerryError `config_unsupported` on NUL, CR or LF
 */
export function assertPlainString(value: string, what: string): void {
  if (/[\0\r\n]/.test(value)) {
    throw new FerryError(
      'config_unsupported',
      `${what} contains a NUL or line-break character, which Ferry does not pass to QEMU: ${showValue(value)}`,
    );
  }
}

/**
 * Refuses NUL anywhere in a JSON option: argv elements are C strings, so a
 * NUL would silently cut the option short (Node refuses it anyway, but with a
 * message that names nothing useful). Line breaks are fine inside JSON.
 */
function assertNoNulDeep(value: unknown, what: string): void {
  if (typeof value === 'string') {
    if (value.includes('\0')) {
      throw new FerryError('config_unsupported', `${what} contains a NUL character: ${showValue(value)}`);
    }
  } else if (Array.isArray(value)) {
    for (const v of value) assertNoNulDeep(v, what);
  } else if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) assertNoNulDeep(v, what);
  }
}
