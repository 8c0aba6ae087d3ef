/** Builders for the two refusals the domain layer makes, so messages stay uniform (values in them are quoted with showValue, src/errors). */
import { FerryError } from '../errors/index.js';

/** The document is malformed or breaks a rule of the domain XML format. */
export function xmlError(message: string): FerryError {
  return new FerryError('xml_error', message);
}

/** The document is valid libvirt domain XML but asks for something Ferry cannot run. */
export function unsupported(message: string): FerryError {
  return new FerryError('config_unsupported', message);
}
