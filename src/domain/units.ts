/** libvirt's memory size units, and conversion of a size to whole KiB. */
import { FerryError, showValue } from '../errors/index.js';

const KIB = 1024n;

// Bytes per unit, keyed by lower-cased unit name. libvirt treats the unit
// letter case-insensitively; "B" suffixes are powers of 1000, "iB" suffixes
// and bare letters powers of 1024.
const BYTES_PER_UNIT: ReadonlyMap<string, bigint> = new Map([
  ['b', 1n],
  ['bytes', 1n],
  ['kb', 1000n],
  ['k', 1024n],
  ['kib', 1024n],
  ['mb', 1000n ** 2n],
  ['m', 1024n ** 2n],
  ['mib', 1024n ** 2n],
  ['gb', 1000n ** 3n],
  ['g', 1024n ** 3n],
  ['gib', 1024n ** 3n],
  ['tb', 1000n ** 4n],
  ['t', 1024n ** 4n],
  ['tib', 1024n ** 4n],
  ['pb', 1000n ** 5n],
  ['p', 1024n ** 5n],
  ['pib', 1024n ** 5n],
  ['eb', 1000n ** 6n],
  ['e', 1024n ** 6n],
  ['eib', 1024n ** 6n],
]);

/** The unit libvirt assumes when a memory element has no `unit` attribute. */
export const DEFAULT_MEMORY_UNIT = 'KiB';

/** Unit names accepted in `unit='...'`, as documented (matching is case-insensitive). */
export const MEMORY_UNITS: readonly string[] = [
  'b', 'bytes', 'KB', 'k', 'KiB', 'MB', 'M', 'MiB', 'GB', 'G', 'GiB', 'TB', 'T', 'TiB', 'PB', 'P', 'PiB', 'EB', 'E', 'EiB',
];

/** Outcome of {@link memoryToKiB}: the size, or why the input is not one. */
export type MemorySizeResult = { ok: true; kib: number } | { ok: false; problem: string };

/**
 * Converts a size written as `value` in `unit` to KiB, rounding a partial
 * KiB up (so a size given in bytes never shrinks). `value` must be a plain
 * decimal integer; surrounding ASCII whitespace is tolerated as libvirt does.
 * Never throws: callers turn the problem into an error naming their element.
 */
export function memoryToKiB(value: string, unit: string = DEFAULT_MEMORY_UNIT): MemorySizeResult {
  const bytesPerUnit = BYTES_PER_UNIT.get(unit.toLowerCase());
  if (bytesPerUnit === undefined) {
    return { ok: false, problem: `unknown unit ${showValue(unit)} (expected one of ${MEMORY_UNITS.join(', ')})` };
  }
  const digits = value.replace(/^[ \t\n\r]+|[ \t\n\r]+$/g, '');
  if (!/^[0-9]+$/.test(digits) || digits.length > 30) {
    return { ok: false, problem: 'expected a non-negative integer' };
  }
  const bytes = BigInt(digits) * bytesPerUnit;
  const kib = (bytes + KIB - 1n) / KIB;
  if (kib > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, problem: 'the size is too large' };
  return { ok: true, kib: Number(kib) };
}

/**
 * Parses a memory size the way libvirt reads `<memory unit='...'>`, returning
 * whole KiB (partial KiB round up; nothing is rounded to MiB).
 *
 * @param value - decimal digits, e.g. `'512'`
 * @param unit - a libvirt unit such as `'MiB'`, `'GB'` or `'bytes'`; default KiB
 * @throws FerryError `invalid_arg` for a non-integer value, an unknown unit
 *   or a size beyond 2^53 KiB.
 */
export function parseMemoryToKiB(value: string, unit: string = DEFAULT_MEMORY_UNIT): number {
  const result = memoryToKiB(value, unit);
  if (!result.ok) throw new FerryError('invalid_arg', `invalid memory size ${showValue(value)} with unit ${showValue(unit)}: ${result.problem}`);
  return result.kib;
}
