/** The libvirt procedure table of one host: every group of handlers together. */
import type { Host } from '../../host/host.js';
import type { Migrations } from '../../migration/host-migrations.js';
import { defaultQemuVersion } from '../../qemu/index.js';
import type { ProcedureHandlers } from '../connection.js';
import { connectHandlers } from './connect.js';
import { domainHandlers } from './domains.js';
import { eventHandlers } from './events.js';
import { jobHandlers } from './jobs.js';
import { migrationHandlers } from './migration.js';
import { nodeHandlers } from './node.js';
import { statsHandlers } from './stats.js';

/** Builds the handlers of every procedure ferryd serves over the libvirt protocol. */
export function libvirtHandlers(host: Host, migrations: Migrations): ProcedureHandlers {
  return {
    ...connectHandlers(host, defaultQemuVersion),
    ...nodeHandlers(),
    ...domainHandlers(host),
    ...jobHandlers(migrations),
    ...statsHandlers(host),
    ...eventHandlers(),
    ...migrationHandlers(migrations, host.config.identity.hostName),
  };
}
