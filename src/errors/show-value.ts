/** Quoting of user-supplied values inside error messages, safe against forged log lines. */

const MAX_SHOWN_CHARS = 80;

/**
 * `value` quoted for a message: strings in single quotes with control
 * characters escaped and long ones cut; other values through JSON (or
 * their type when JSON cannot show them).
 */
export function showValue(value: unknown): string {
  if (typeof value === 'string') return `'${escape(cut(value))}'`;
  if (typeof value === 'number') return String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (value === undefined) return 'undefined';
  if (typeof value === 'function' || typeof value === 'symbol') return `a ${typeof value}`;
  try {
    return escape(cut(JSON.stringify(value)));
  } catch {
    return `a ${typeof value}`;
  }
}

function cut(text: string): string {
  const chars = [...text];
  return chars.length > MAX_SHOWN_CHARS ? `${chars.slice(0, MAX_SHOWN_CHARS).join('')}...` : text;
}

function escape(text: string): string {
  return text.replace(/[\p{Cc}\u2028\u2029]/gu, (ch) => `\\u${ch.codePointAt(0)!.toString(16).padStart(4, '0')}`);
}
