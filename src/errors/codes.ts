/**
 * The one table of stable error codes. Numbers follow libvirt's
 * `virErrorNumber` where libvirt has the same idea, so that a later
 * libvirt-protocol layer can pass them through unchanged; names are the
 * libvirt names without the `VIR_ERR_` prefix, in lower snake case.
 *
 * `libvirtText` is how libvirt words the same error in front of its
 * details (virsh users know these), used by the libvirt-protocol server.
 *
 * Changing a number or name here breaks scripts that parse `--json`
 * output: only ever add entries.
 */
export const ERROR_CODES = {
  internal_error: { number: 1, summary: 'internal error', libvirtText: 'internal error' },
  no_support: { number: 3, summary: 'this function is not supported', libvirtText: 'this function is not supported by the connection driver' },
  no_connect: { number: 5, summary: 'cannot connect to the host daemon', libvirtText: 'no connection driver available' },
  invalid_arg: { number: 8, summary: 'invalid argument', libvirtText: 'invalid argument' },
  operation_failed: { number: 9, summary: 'operation failed', libvirtText: 'operation failed' },
  xml_error: { number: 27, summary: 'XML error', libvirtText: 'XML error' },
  dom_exist: { number: 28, summary: 'domain already exists', libvirtText: 'operation failed' },
  operation_denied: { number: 29, summary: 'operation denied', libvirtText: 'operation forbidden' },
  write_failed: { number: 34, summary: 'failed to write a file', libvirtText: 'failed to write configuration file' },
  system_error: { number: 38, summary: 'system call failed', libvirtText: '' },
  rpc: { number: 39, summary: 'protocol error', libvirtText: 'RPC error' },
  no_domain: { number: 42, summary: 'domain not found', libvirtText: 'Domain not found' },
  no_storage_vol: { number: 50, summary: 'storage volume not found', libvirtText: 'Storage volume not found' },
  auth_failed: { number: 45, summary: 'authentication failed', libvirtText: 'authentication failed' },
  operation_invalid: { number: 55, summary: 'operation not valid in the current state', libvirtText: 'Requested operation is not valid' },
  config_unsupported: { number: 67, summary: 'unsupported configuration', libvirtText: 'unsupported configuration' },
  operation_timeout: { number: 68, summary: 'operation timed out', libvirtText: 'Timed out during operation' },
  migrate_persist_failed: { number: 69, summary: 'migrated, but persisting on the destination failed', libvirtText: 'Failed to make domain persistent after migration' },
  argument_unsupported: { number: 74, summary: 'argument not supported', libvirtText: 'argument unsupported' },
  operation_aborted: { number: 78, summary: 'operation aborted', libvirtText: 'operation aborted' },
  migrate_unsafe: { number: 81, summary: 'migration is not safe', libvirtText: 'Unsafe migration' },
  operation_unsupported: { number: 84, summary: 'operation not supported', libvirtText: 'Operation not supported' },
  resource_busy: { number: 87, summary: 'resource busy', libvirtText: 'resource busy' },
  access_denied: { number: 88, summary: 'access denied', libvirtText: 'access denied' },
} as const;

/** A stable error code name, e.g. `no_domain`. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** Whether `value` is one of the codes in {@link ERROR_CODES}. */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CODES, value);
}
