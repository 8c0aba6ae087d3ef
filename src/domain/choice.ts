/** Reading an attribute or text that must be one of a fixed set of words. */
import { showValue } from '../errors/index.js';
import { unsupported, xmlError } from './refuse.js';

/** What a caller knows about the values of one setting. */
export interface Choices<T extends string> {
  /** How the setting is named in messages, e.g. `<disk type>` or `<driver cache> of disk 'vda'`. */
  what: string;
  /** Values Ferry runs. */
  supported: readonly T[];
  /**
   * Values libvirt accepts but Ferry cannot run: refused with
   * `config_unsupported`. `'*'` means every other non-empty value, for
   * settings whose libvirt list is long or open-ended.
   */
  libvirtOnly?: readonly string[] | '*';
  /** Why Ferry cannot run the `libvirtOnly` values, appended to the message. */
  why?: string;
}

/**
 * Checks `value` against `choices`. Values libvirt itself would reject are
 * `xml_error`; values libvirt accepts but Ferry cannot run are
 * `config_unsupported`, so users can tell a typo from a missing feature.
 */
export function choose<T extends string>(value: string, choices: Choices<T>): T {
  if ((choices.supported as readonly string[]).includes(value)) return value as T;
  const { libvirtOnly } = choices;
  if (value !== '' && (libvirtOnly === '*' || libvirtOnly?.includes(value))) {
    throw unsupported(
      `unsupported value ${showValue(value)} for ${choices.what}: Ferry supports ${choices.supported.join(', ')}` +
        (choices.why === undefined ? '' : `; ${choices.why}`),
    );
  }
  throw xmlError(`invalid value ${showValue(value)} for ${choices.what}: expected one of ${choices.supported.join(', ')}`);
}
