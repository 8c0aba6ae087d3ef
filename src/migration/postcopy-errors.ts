/** The error every side reports for a post-copy migration that waits, paused, to be resumed. */
import { FerryError } from '../errors/index.js';

/**
 * The error of a post-copy migration whose stream broke after the switch
 * and that QEMU holds paused on both sides: what it means and how to
 * resume it.
 */
export function postcopyPausedError(domain: string, why: string, destUri?: string): FerryError {
  return new FerryError(
    'operation_failed',
    `post-copy migration of '${domain}' paused: ${why}. The destination holds the guest and waits for the pages it has not received yet; this host keeps them (paused (post-copy failed)). Once both hosts can reach each other again, resume it with 'ferry migrate --live --postcopy --postcopy-resume ${domain} ${destUri ?? 'DESTURI'}' (add --p2p as before)`,
  );
}
