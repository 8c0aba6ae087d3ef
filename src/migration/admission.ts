/**
 * The facts the migration rule table (src/flags/rules.ts) checks besides
 * the request itself, as each side knows them: the source knows its guest,
 * the managing client, the peer-to-peer source and the destination know
 * both hosts. The rules and their messages live in the table only; the
 * phases pass these contexts to {@link validateMigrationRequest}.
 */
import { validateMigrationRequest, type MigrationContext, type ValidatedMigrationRequest } from '../flags/index.js';
import type { HostedDomain } from '../host/hosted-domain.js';
import type { CookieHost, MigrationRequest } from './phase-messages.js';

/**
 * What the source knows of the guest `d` when a migration begins: its name,
 * whether it runs, is paused by an I/O error, is persistent, and the
 * definition's memory hard limit and disks (live while it runs).
 */
export function guestContext(d: HostedDomain): MigrationContext {
  const def = (d.runtime?.liveDoc ?? d.persistentDoc ?? d.currentDoc).def;
  return {
    domainName: d.name,
    active: d.active,
    pausedByIoError: d.status.state === 'paused' && d.status.reason === 'I/O error',
    postcopy:
      d.status.state === 'paused' && d.status.reason === 'post-copy failed'
        ? 'stale'
        : d.status.state === 'running' && (d.status.reason === 'post-copy' || d.status.reason === 'post-copy failed')
          ? 'incomplete'
          : 'none',
    persistent: d.persistent,
    hardLimitKiB: def.hardLimitKiB,
    disks: def.disks,
  };
}

/** The two hosts of a migration, for the `same-host` rule. */
export function hostsContext(source: CookieHost, dest: CookieHost): MigrationContext {
  return { sourceHostUuid: source.hostUuid, destHostUuid: dest.hostUuid, destHostName: dest.hostName };
}

/**
 * The source's check at begin: the request against every rule, with what
 * the source knows of guest `d`.
 *
 * @throws FerryError with the code and sentence of the first rule broken.
 */
export function admitOnSource(req: MigrationRequest, d: HostedDomain): ValidatedMigrationRequest {
  return validateMigrationRequest({ flags: req.flags, params: req.params }, guestContext(d));
}

/**
 * The check of whoever knows both hosts (the managing client, the
 * peer-to-peer source, the destination at prepare): the request against
 * every rule, including `same-host`.
 *
 * @throws FerryError with the code and sentence of the first rule broken (`operation_invalid` for one host).
 */
export function admitBetweenHosts(req: MigrationRequest, source: CookieHost, dest: CookieHost): ValidatedMigrationRequest {
  return validateMigrationRequest({ flags: req.flags, params: req.params }, hostsContext(source, dest));
}
