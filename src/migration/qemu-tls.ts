/**
 * QEMU's own TLS on the migration stream (the TLS flag): a `tls-creds-x509`
 * object on each QEMU, made from ferryd's certificate directory. QEMU wants
 * its own file names (ca-cert.pem, server-cert.pem, ...), ferryd keeps
 * libvirt's (cacert.pem, servercert.pem, ...), so ferryd lays out a
 * directory of links in its run dir.
 */
import { mkdir, rm, symlink, access } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError } from '../errors/index.js';
import type { QmpClient } from '../qemu/index.js';

/** Id of the credentials object Ferry adds to a QEMU for one migration. */
export const TLS_CREDS_ID = 'ferry-migration-tls';

const LINKS: Array<[qemuName: string, ferryName: string]> = [
  ['ca-cert.pem', 'cacert.pem'],
  ['server-cert.pem', 'servercert.pem'],
  ['server-key.pem', 'serverkey.pem'],
  ['client-cert.pem', 'clientcert.pem'],
  ['client-key.pem', 'clientkey.pem'],
];

/** Creates `runDir/qemu-tls` linking QEMU's file names to `tlsDir`; returns its path. */
export async function layoutQemuTlsDir(tlsDir: string, runDir: string): Promise<string> {
  const dir = join(runDir, 'qemu-tls');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { mode: 0o700 });
  for (const [qemuName, ferryName] of LINKS) {
    const target = join(tlsDir, ferryName);
    try {
      await access(target);
    } catch {
      continue; // A missing file is reported by QEMU when it needs it, naming the file.
    }
    await symlink(target, join(dir, qemuName));
  }
  return dir;
}

/**
 * Adds the credentials object to `qmp` (replacing one left by an earlier
 * migration). The destination is the TLS server, the source the client;
 * both verify the other's certificate against the CA.
 */
export async function addTlsCreds(qmp: QmpClient, dir: string | undefined, endpoint: 'server' | 'client'): Promise<string> {
  if (!dir) {
    throw new FerryError('operation_invalid', 'migration with --tls (TLS) needs certificates: start ferryd with --tls-dir on both hosts');
  }
  await qmp.execute('object-del', { id: TLS_CREDS_ID }).catch(() => undefined);
  await qmp.execute('object-add', { 'qom-type': 'tls-creds-x509', id: TLS_CREDS_ID, dir, endpoint, 'verify-peer': true });
  return TLS_CREDS_ID;
}
