/**
 * Quoting of user-supplied values inside messages, the one way every layer
 * does it: control characters escaped and long values cut, so that nothing
 * a user or a peer sends can forge extra lines in logs or flood them.
 */

/** How many characters of a value a message shows before cutting it. */
const MAX_SHOWN_CHARS = 120;

/**
 * `value` quoted for a message: strings in single quotes with control
 * characters escaped and long ones cut; other values through JSON (or
 * their type when JSON cannot show them).
 */
export function showValue(value: unknown): string {
  if (typeof value === 'string') return `'${plainText(value)}'`;
  if (typeof value === 'number') return String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (value === undefined) return 'undefined';
  if (typeof value === 'function' || typeof value === 'symbol') return `a ${typeof value}`;
  try {
    return plainText(JSON.stringify(value));
  } catch {
    return `a ${typeof value}`;
  }
}

/**
 * `text` safe to put into a message unquoted (a host name, say): control
 * characters escaped as `\uXXXX`, cut after {@link MAX_SHOWN_CHARS} characters.
 */
export function plainText(text: string): string {
  return escapeControls(cut(text));
}

function cut(text: string): string {
  const chars = [...text];
  return chars.length > MAX_SHOWN_CHARS ? `${chars.slice(0, MAX_SHOWN_CHARS).join('')}...` : text;
}

function escapeControls(text: string): string {
  return text.replace(/[\p{Cc}\u2028\u2029]/gu, (ch) => `\\u${ch.codePointAt(0)!.toString(16).padStart(4, '0')}`);
}
