/** The rules for domain names, which Ferry uses in file paths and QEMU arguments. */
import { FerryError, showValue } from '../errors/index.js';

/** Longest domain name accepted, in characters (Unicode code points). */
export const MAX_DOMAIN_NAME_LENGTH = 200;

/** Longest domain name accepted, in UTF-8 bytes: names become file names. */
export const MAX_DOMAIN_NAME_BYTES = 200;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

// Each refused character with the reason a user needs to understand it.
const FORBIDDEN: ReadonlyMap<string, string> = new Map([
  ['/', 'names are used as file names'],
  ['\\', 'names are used as file names'],
  [',', 'names are passed inside QEMU option strings'],
]);

/**
 * Why `name` cannot be a domain name, or undefined when it can. Refused: the
 * empty name; names over {@link MAX_DOMAIN_NAME_LENGTH} characters; leading
 * or trailing whitespace; `/`, `\` and `,`; NUL and every other control
 * character; invalid UTF-16; a leading `.` (hidden files, `.` and `..`) or
 * `-` (would read as a command-line option).
 */
export function domainNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'the name is empty';
  if (LONE_SURROGATE.test(name)) return 'the name is not valid Unicode';
  const chars = [...name];
  if (chars.length > MAX_DOMAIN_NAME_LENGTH) {
    return `the name is ${chars.length} characters long; at most ${MAX_DOMAIN_NAME_LENGTH} are allowed`;
  }
  // File names (NAME.xml, NAME.serial.log plus a temporary suffix) must stay within the 255-byte limit.
  const bytes = new TextEncoder().encode(name).length;
  if (bytes > MAX_DOMAIN_NAME_BYTES) {
    return `the name takes ${bytes} bytes in UTF-8; at most ${MAX_DOMAIN_NAME_BYTES} are allowed`;
  }
  if (name.trim() !== name) return 'the name has leading or trailing whitespace';
  for (const ch of chars) {
    const why = FORBIDDEN.get(ch);
    if (why !== undefined) return `the character '${ch}' is not allowed (${why})`;
    if (/\p{Cc}/u.test(ch)) {
      const cp = ch.codePointAt(0)!;
      const what = cp === 0 ? 'NUL' : `control character U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
      return `the ${what} is not allowed`;
    }
  }
  if (name.startsWith('.')) return "the name must not start with '.'";
  if (name.startsWith('-')) return "the name must not start with '-' (it would look like a command-line option)";
  return undefined;
}

/**
 * Checks a domain name given as an argument (for example to a rename).
 *
 * @throws FerryError `invalid_arg` saying which rule the name breaks.
 */
export function validateDomainName(name: string): void {
  const problem = domainNameProblem(name);
  if (problem !== undefined) throw new FerryError('invalid_arg', `invalid domain name ${showValue(name)}: ${problem}`);
}
