import { describe, it, expect } from 'vitest';
import { DEFAULT_MEMORY_UNIT, DomainDocument, MEMORY_UNITS, memoryToKiB, parseMemoryToKiB } from '../../src/domain/index.js';
import { FerryError } from '../../src/errors/index.js';

// [unit, value, KiB]: each unit once with an exact value and, where the
// unit is finer than KiB or decimal, once with a value that rounds up.
const CASES: [string, string, number][] = [
  ['b', '1048576', 1024],
  ['b', '1048577', 1025],
  ['bytes', '2097152', 2048],
  ['bytes', '1', 1],
  ['KB', '1024', 1000],
  ['KB', '1', 1],
  ['k', '4096', 4096],
  ['KiB', '262148', 262148],
  ['MB', '1', 977],
  ['MB', '1000', 976563],
  ['M', '256', 262144],
  ['MiB', '1', 1024],
  ['GB', '1', 976563],
  ['GB', '4', 3906250],
  ['G', '2', 2097152],
  ['GiB', '4', 4194304],
  ['TB', '1', 976562500],
  ['T', '1', 1073741824],
  ['TiB', '2', 2147483648],
  ['PB', '1', 976562500000],
  ['P', '1', 1099511627776],
  ['PiB', '1', 1099511627776],
  ['EB', '1', 976562500000000],
  ['E', '1', 1125899906842624],
  ['EiB', '1', 1125899906842624],
];

describe('parseMemoryToKiB', () => {
  it.each(CASES)('%s: %s is %d KiB', (unit, value, kib) => {
    expect(parseMemoryToKiB(value, unit)).toBe(kib);
  });

  it('covers every documented unit', () => {
    expect(new Set(CASES.map(([unit]) => unit))).toEqual(new Set(MEMORY_UNITS));
  });

  it('defaults to KiB, as libvirt does', () => {
    expect(DEFAULT_MEMORY_UNIT).toBe('KiB');
    expect(parseMemoryToKiB('1536')).toBe(1536);
  });

  it('matches unit names case-insensitively', () => {
    expect(parseMemoryToKiB('1', 'gib')).toBe(1048576);
    expect(parseMemoryToKiB('1', 'g')).toBe(1048576);
    expect(parseMemoryToKiB('1', 'gb')).toBe(976563);
    expect(parseMemoryToKiB('1', 'BYTES')).toBe(1);
    expect(parseMemoryToKiB('3', 'Mib')).toBe(3072);
  });

  it('tolerates surrounding whitespace, as libvirt does', () => {
    expect(parseMemoryToKiB(' \n 512\t', 'MiB')).toBe(524288);
  });

  it('never rounds to MiB', () => {
    expect(parseMemoryToKiB('262148', 'KiB')).toBe(262148);
    expect(parseMemoryToKiB('1025', 'k')).toBe(1025);
  });

  it('handles values beyond 2^53 bytes exactly', () => {
    expect(parseMemoryToKiB('9007199254740993', 'b')).toBe(8796093022209);
    expect(parseMemoryToKiB(String(2 ** 53 - 1), 'KiB')).toBe(2 ** 53 - 1);
  });

  it.each([
    ['abc', 'KiB', 'non-negative integer'],
    ['', 'KiB', 'non-negative integer'],
    ['-1', 'KiB', 'non-negative integer'],
    ['+1', 'KiB', 'non-negative integer'],
    ['1.5', 'GiB', 'non-negative integer'],
    ['1e6', 'KiB', 'non-negative integer'],
    ['0x10', 'KiB', 'non-negative integer'],
    ['1 024', 'KiB', 'non-negative integer'],
    ['1024', 'KiBB', "unknown unit 'KiBB'"],
    ['1024', '', 'unknown unit'],
    ['1024', 'Ki', 'unknown unit'],
    ['1024', 'kilobytes', 'unknown unit'],
    ['9'.repeat(31), 'KiB', 'non-negative integer'],
    [String(2 ** 53), 'KiB', 'too large'],
    ['8', 'EiB', 'too large'],
  ])('refuses %j with unit %j (%s)', (value, unit, why) => {
    let err: unknown;
    try {
      parseMemoryToKiB(value, unit);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FerryError);
    expect((err as FerryError).code).toBe('invalid_arg');
    expect((err as FerryError).message).toContain(why);
  });

  it('has a non-throwing form for callers that name their own element', () => {
    expect(memoryToKiB('2', 'MiB')).toEqual({ ok: true, kib: 2048 });
    expect(memoryToKiB('x', 'MiB')).toEqual({ ok: false, problem: 'expected a non-negative integer' });
  });
});

describe('memory normalisation in domain XML', () => {
  const xml = (memory: string) =>
    `<domain type='kvm'>\n  <name>u</name>\n  <uuid>0f8fad5b-d9cb-469f-a165-70867728950e</uuid>\n  ${memory}\n  <os><type>hvm</type></os>\n</domain>\n`;

  // Only sizes in the accepted range [1 MiB, 16 TiB) can appear in a domain.
  const inRange = CASES.filter(([, , kib]) => kib >= 1024 && kib < 16 * 1024 ** 3);

  it.each(inRange)('rewrites <memory unit=%j>%s</memory> to %d KiB', (unit, value, kib) => {
    const doc = DomainDocument.parse(xml(`<memory unit='${unit}'>${value}</memory>`));
    expect(doc.def.memoryKiB).toBe(kib);
    expect(doc.def.currentMemoryKiB).toBe(kib);
    expect(doc.toXml()).toBe(
      xml(`<memory unit='KiB'>${kib}</memory>\n  <currentMemory unit='KiB'>${kib}</currentMemory>`),
    );
  });

  it('rewrites <currentMemory> and keeps <memory> attributes such as dumpCore', () => {
    const doc = DomainDocument.parse(
      xml("<memory dumpCore='off' unit='GiB'>1</memory>\n  <currentMemory unit='MiB'>512</currentMemory>"),
    );
    expect(doc.def).toMatchObject({ memoryKiB: 1048576, currentMemoryKiB: 524288 });
    expect(doc.toXml()).toContain(
      "<memory dumpCore='off' unit='KiB'>1048576</memory>\n  <currentMemory unit='KiB'>524288</currentMemory>",
    );
  });

  it('adds unit=KiB when the unit was implied', () => {
    expect(DomainDocument.parse(xml('<memory>2048</memory>')).toXml()).toContain("<memory unit='KiB'>2048</memory>");
  });

  it('leaves whitespace-padded canonical values readable but canonical', () => {
    expect(DomainDocument.parse(xml("<memory unit='KiB'> 2048 </memory>")).toXml()).toContain("<memory unit='KiB'>2048</memory>");
  });
});
