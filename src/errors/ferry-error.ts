/** The error type every layer throws: a stable code plus a sentence for people. */
import { ERROR_CODES, isErrorCode, type ErrorCode } from './codes.js';

/** The wire and `--json` shape of an error. */
export interface ErrorPayload {
  code: ErrorCode;
  number: number;
  message: string;
}

/**
 * An error with a stable {@link ErrorCode}. The message should say what was
 * asked, why it cannot be done and, where there is one, what would work.
 */
export class FerryError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FerryError';
    this.code = code;
  }

  /** libvirt-compatible error number of {@link code}. */
  get number(): number {
    return ERROR_CODES[this.code].number;
  }

  /** Serialisable form for the API and `--json`. */
  toPayload(): ErrorPayload {
    return { code: this.code, number: this.number, message: this.message };
  }

  /** Rebuilds an error received over the API; unknown codes become internal errors. */
  static fromPayload(payload: unknown): FerryError {
    const p = (payload ?? {}) as Partial<ErrorPayload>;
    const message = typeof p.message === 'string' ? p.message : 'unknown error';
    return new FerryError(isErrorCode(p.code) ? p.code : 'internal_error', message);
  }
}

/**
 * Turns anything thrown into a {@link FerryError}. Untyped errors become
 * `internal_error`, keeping their message, so nothing escapes without a code.
 */
export function toFerryError(err: unknown, fallback: ErrorCode = 'internal_error'): FerryError {
  if (err instanceof FerryError) return err;
  if (err instanceof Error) return new FerryError(fallback, err.message, { cause: err });
  return new FerryError(fallback, String(err));
}
