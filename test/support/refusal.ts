/**
 * The refusal every unit test checks for: that a call throws (or a promise
 * rejects with) a FerryError, which the test then reads for its code and
 * sentence. One copy here instead of one per test file.
 */
import { expect } from 'vitest';
import { FerryError, type ErrorCode } from '../../src/errors/index.js';

/** The FerryError `fn` throws; fails the test when it throws something else or nothing. */
export function refusal(fn: () => unknown): FerryError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FerryError);
    return err as FerryError;
  }
  throw new Error('expected a FerryError, but nothing was thrown');
}

/** The FerryError `p` rejects with; fails the test when it rejects with something else or resolves. */
export async function rejection(p: Promise<unknown>): Promise<FerryError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(FerryError);
    return err as FerryError;
  }
  throw new Error('expected a rejection with a FerryError, but the promise resolved');
}

/** The code of the FerryError `fn` throws. */
export function codeOf(fn: () => unknown): ErrorCode {
  return refusal(fn).code;
}

/** Expects `fn` to throw a FerryError with `code` whose message holds every fragment; returns the error. */
export function expectRefused(fn: () => unknown, code: ErrorCode, ...fragments: string[]): FerryError {
  const err = refusal(fn);
  expect({ code: err.code, message: err.message }).toMatchObject({ code });
  for (const fragment of fragments) expect(err.message).toContain(fragment);
  return err;
}
