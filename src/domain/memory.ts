/** The memory-size elements of a domain: their checks, and their rewrite to `unit='KiB'`. */
import type { Element } from '@xmldom/xmldom';
import { attr, insertAfter, optionalChild, requiredChild, setText, textOf } from './dom.js';
import { showValue } from '../errors/index.js';
import { xmlError } from './refuse.js';
import { DEFAULT_MEMORY_UNIT, memoryToKiB } from './units.js';

/** Smallest guest memory accepted: nothing boots in less than 1 MiB. */
export const MIN_MEMORY_KIB = 1024;

/**
 * Memory sizes must be below 16 TiB: larger values are typos (a unit of
 * bytes meant as KiB, an extra digit) and would only fail later in QEMU.
 */
export const MEMORY_LIMIT_KIB = 16 * 1024 ** 3;

/** The checked sizes of a domain, all in KiB. */
export interface MemorySizes {
  memoryKiB: number;
  /** Equals {@link memoryKiB} when `<currentMemory>` is absent. */
  currentMemoryKiB: number;
  maxMemoryKiB?: number;
  hardLimitKiB?: number;
}

function describe(el: Element): string {
  const unit = attr(el, 'unit');
  return unit === undefined ? `<${el.localName}>` : `<${el.localName} unit=${showValue(unit)}>`;
}

function sizeOf(el: Element): number {
  const text = textOf(el);
  const result = memoryToKiB(text, attr(el, 'unit') ?? DEFAULT_MEMORY_UNIT);
  if (!result.ok) throw xmlError(`invalid value ${showValue(text)} for ${describe(el)}: ${result.problem}`);
  if (result.kib < MIN_MEMORY_KIB) {
    throw xmlError(`invalid value ${showValue(text)} for ${describe(el)}: the size must be at least ${MIN_MEMORY_KIB} KiB`);
  }
  if (result.kib >= MEMORY_LIMIT_KIB) {
    throw xmlError(`invalid value ${showValue(text)} for ${describe(el)}: the size must be less than 16 TiB`);
  }
  return result.kib;
}

/**
 * Reads and checks `<memory>` (required), `<currentMemory>` (at most
 * `<memory>`), `<maxMemory>` (at least `<memory>`) and
 * `<memtune><hard_limit>`; each must lie in [1 MiB, 16 TiB).
 *
 * @throws FerryError `xml_error` naming the element, its unit and the rule.
 */
export function readMemorySizes(root: Element): MemorySizes {
  const memoryKiB = sizeOf(requiredChild(root, 'memory'));
  const current = optionalChild(root, 'currentMemory');
  const currentMemoryKiB = current === undefined ? memoryKiB : sizeOf(current);
  if (currentMemoryKiB > memoryKiB) {
    throw xmlError(
      `invalid <currentMemory>: ${currentMemoryKiB} KiB is more than <memory> (${memoryKiB} KiB); ` +
        'the current allocation cannot exceed the maximum',
    );
  }
  const sizes: MemorySizes = { memoryKiB, currentMemoryKiB };
  const max = optionalChild(root, 'maxMemory');
  if (max !== undefined) {
    sizes.maxMemoryKiB = sizeOf(max);
    if (sizes.maxMemoryKiB < memoryKiB) {
      throw xmlError(`invalid <maxMemory>: ${sizes.maxMemoryKiB} KiB is less than <memory> (${memoryKiB} KiB)`);
    }
  }
  const memtune = optionalChild(root, 'memtune');
  const hardLimit = memtune === undefined ? undefined : optionalChild(memtune, 'hard_limit');
  if (hardLimit !== undefined) sizes.hardLimitKiB = sizeOf(hardLimit);
  return sizes;
}

function rewrite(el: Element, kib: number): void {
  if (attr(el, 'unit') !== 'KiB') el.setAttribute('unit', 'KiB');
  if (textOf(el) !== String(kib)) setText(el, String(kib));
}

/**
 * Rewrites every memory-size element to `unit='KiB'` with its KiB value
 * (never rounded to MiB, unlike libvirt), and inserts `<currentMemory>` equal
 * to `<memory>` right after `<memory>` when it is missing. Elements already
 * in that form are left untouched.
 */
export function normaliseMemory(root: Element): void {
  const sizes = readMemorySizes(root);
  const memory = requiredChild(root, 'memory');
  rewrite(memory, sizes.memoryKiB);
  const current = optionalChild(root, 'currentMemory');
  if (current !== undefined) {
    rewrite(current, sizes.currentMemoryKiB);
  } else {
    const el = root.ownerDocument!.createElement('currentMemory');
    el.setAttribute('unit', 'KiB');
    el.appendChild(root.ownerDocument!.createTextNode(String(sizes.currentMemoryKiB)));
    insertAfter(memory, el);
  }
  const max = optionalChild(root, 'maxMemory');
  if (max !== undefined) rewrite(max, sizes.maxMemoryKiB!);
  const memtune = optionalChild(root, 'memtune');
  const hardLimit = memtune === undefined ? undefined : optionalChild(memtune, 'hard_limit');
  if (hardLimit !== undefined) rewrite(hardLimit, sizes.hardLimitKiB!);
}
