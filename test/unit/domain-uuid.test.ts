import { describe, expect, it } from 'vitest';
import { canonicalUuid, isCanonicalUuid, newUuid, normaliseUuid, sameUuid } from '../../src/domain/index.js';
import { FerryError } from '../../src/errors/index.js';

const U = '0f8fad5b-d9cb-469f-a165-70867728950e';

describe('UUIDs', () => {
  it('reads the dashed form and bare hex in either case, into one canonical form', () => {
    for (const text of [U, U.toUpperCase(), U.replace(/-/g, ''), U.replace(/-/g, '').toUpperCase()]) expect(canonicalUuid(text)).toBe(U);
    for (const text of ['', 'x', `${U}0`, U.replace('f', 'g'), ` ${U}`, '0f8fad5bd9cb-469f-a165-70867728950e']) expect(canonicalUuid(text)).toBeUndefined();
  });

  it('tells the canonical form from other spellings', () => {
    expect(isCanonicalUuid(U)).toBe(true);
    expect(isCanonicalUuid(U.toUpperCase())).toBe(false);
    expect(isCanonicalUuid('../etc')).toBe(false);
  });

  it('compares any spellings of one UUID as equal', () => {
    expect(sameUuid(U.toUpperCase(), U.replace(/-/g, ''))).toBe(true);
    expect(sameUuid(U, '1f8fad5b-d9cb-469f-a165-70867728950e')).toBe(false);
    expect(sameUuid('Not-A-Uuid', 'not-a-uuid')).toBe(true);
  });

  it('makes new canonical UUIDs, each different', () => {
    const a = newUuid();
    expect(isCanonicalUuid(a)).toBe(true);
    expect(newUuid()).not.toBe(a);
  });

  it('refuses a non-UUID argument with invalid_arg, naming what it is', () => {
    expect(normaliseUuid(U.toUpperCase())).toBe(U);
    expect(() => normaliseUuid('nope', '--host-uuid')).toThrow(FerryError);
    expect(() => normaliseUuid('nope', '--host-uuid')).toThrow("invalid --host-uuid 'nope': expected 32 hex digits");
  });
});
