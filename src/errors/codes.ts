/**
 * The one table of stable error codes. Numbers follow libvirt's
 * `virErrorNumber` where libvirt has the same idea, so that a later
 * libvirt-protocol layer can pass them through unchanged; names are the
 * libvirt names without the `VIR_ERR_` prefix, in lower snake case.
 *
 * Changing a number or name here breaks scripts that parse `--json`
 * output: only ever add entries.
 */
export const ERROR_CODES = {
  internal_error: { number: 1, summary: 'internal error' },
  no_support: { number: 3, summary: 'this function is not supported' },
  no_connect: { number: 5, summary: 'cannot connect to the host daemon' },
  invalid_arg: { number: 8, summary: 'invalid argument' },
  operation_failed: { number: 9, summary: 'operation failed' },
  xml_error: { number: 27, summary: 'XML error' },
  dom_exist: { number: 28, summary: 'domain already exists' },
  operation_denied: { number: 29, summary: 'operation denied' },
  write_failed: { number: 34, summary: 'failed to write a file' },
  system_error: { number: 38, summary: 'system call failed' },
  rpc: { number: 39, summary: 'protocol error' },
  no_domain: { number: 42, summary: 'domain not found' },
  no_storage_vol: { number: 50, summary: 'storage volume not found' },
  auth_failed: { number: 45, summary: 'authentication failed' },
  operation_invalid: { number: 55, summary: 'operation not valid in the current state' },
  config_unsupported: { number: 67, summary: 'unsupported configuration' },
  operation_timeout: { number: 68, summary: 'operation timed out' },
  migrate_persist_failed: { number: 69, summary: 'migrated, but persisting on the destination failed' },
  argument_unsupported: { number: 74, summary: 'argument not supported' },
  operation_aborted: { number: 78, summary: 'operation aborted' },
  migrate_unsafe: { number: 81, summary: 'migration is not safe' },
  operation_unsupported: { number: 84, summary: 'operation not supported' },
  resource_busy: { number: 87, summary: 'resource busy' },
  access_denied: { number: 88, summary: 'access denied' },
} as const;

/** A stable error code name, e.g. `no_domain`. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** Whether `value` is one of the codes in {@link ERROR_CODES}. */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CODES, value);
}
