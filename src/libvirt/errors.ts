/**
 * Ferry's errors as libvirt's `remote_error`: the number is the same
 * (`ERROR_CODES` follows `virErrorNumber`), and the message starts the way
 * libvirt starts that error, so virsh prints what its users know.
 */
import { ERROR_CODES, FerryError } from '../errors/index.js';
import type { RemoteError } from './wire-types.js';

/** `virErrorDomain` values used in replies. */
export const ErrorDomain = { qemu: 10, rpc: 7 } as const;
/** `virErrorLevel`: an error, not a warning. */
const LEVEL_ERROR = 2;

/** The libvirt wording of `err`: "Requested operation is not valid: domain is not running". */
export function libvirtMessage(err: FerryError): string {
  const text = ERROR_CODES[err.code].libvirtText;
  // Some host messages already open with the same words ("Domain not found: ..."): say them once.
  if (text === '' || err.message.toLowerCase().startsWith(`${text.toLowerCase()}:`)) return err.message;
  return `${text}: ${err.message}`;
}

/** The wire form of `err`. */
export function remoteErrorOf(err: FerryError): RemoteError {
  return {
    code: err.number,
    domain: err.code === 'rpc' ? ErrorDomain.rpc : ErrorDomain.qemu,
    message: libvirtMessage(err),
    level: LEVEL_ERROR,
    dom: null,
    str1: libvirtMessage(err),
    str2: null,
    str3: null,
    int1: -1,
    int2: -1,
    net: null,
  };
}

/** An error a libvirt peer answered, as a FerryError with the same number where Ferry has it. */
export function ferryErrorOf(e: RemoteError): FerryError {
  const entry = Object.entries(ERROR_CODES).find(([, v]) => v.number === e.code);
  const code = (entry ? entry[0] : 'internal_error') as keyof typeof ERROR_CODES;
  let message = e.message ?? 'unknown error';
  const prefix = `${ERROR_CODES[code].libvirtText}: `;
  // The peer's wording already carries libvirt's prefix; our own errors add it again when relayed.
  if (prefix !== ': ' && message.startsWith(prefix)) message = message.slice(prefix.length);
  return new FerryError(code, message);
}
