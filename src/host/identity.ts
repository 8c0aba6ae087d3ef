/**
 * The host's identity: a UUID made at first start and kept in the state
 * directory, and a name. Two daemons on one machine with different state
 * directories are two hosts; a migration between equal UUIDs is refused.
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { UUID_EXPECTED, canonicalUuid, newUuid } from '../domain/index.js';
import { FerryError, showValue } from '../errors/index.js';
import { writeFileAtomic } from '../util/atomic-file.js';

/** A host's name and UUID. */
export interface HostIdentityConfig {
  hostName: string;
  hostUuid: string;
}

/**
 * Resolves the identity: an explicit `--host-uuid` wins (and is stored), else
 * the stored one, else a new one is generated and stored.
 */
export async function loadHostIdentity(stateDir: string, overrides: { hostUuid?: string; hostName?: string }): Promise<HostIdentityConfig> {
  const file = join(stateDir, 'host-uuid');
  let uuid = overrides.hostUuid === undefined ? undefined : canonicalUuid(overrides.hostUuid);
  if (overrides.hostUuid !== undefined && uuid === undefined) {
    throw new FerryError('invalid_arg', `--host-uuid ${showValue(overrides.hostUuid)} is not a UUID: ${UUID_EXPECTED}`);
  }
  if (uuid === undefined) {
    try {
      uuid = canonicalUuid((await readFile(file, 'utf8')).trim());
    } catch {
      // First start: no file yet.
    }
  }
  const hostName = overrides.hostName ?? hostname();
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,253}$/.test(hostName)) {
    throw new FerryError('invalid_arg', `host name '${hostName}' may hold only letters, digits, '.', '_' and '-'`);
  }
  // Written only once everything is checked, so a refused start changes nothing.
  if (uuid === undefined) uuid = newUuid();
  await writeFileAtomic(file, `${uuid}\n`, 0o644);
  return { hostName, hostUuid: uuid };
}
