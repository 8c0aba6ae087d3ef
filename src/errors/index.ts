/** Stable error codes and the error type every layer throws. */
export { ERROR_CODES, isErrorCode, type ErrorCode } from './codes.js';
export { FerryError, toFerryError, type ErrorPayload } from './ferry-error.js';
export { plainText, showValue } from './show-value.js';
