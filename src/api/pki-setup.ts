/**
 * Makes a test PKI for mutual TLS with the system's `openssl`: a CA, a
 * server certificate (with the host names and addresses it will be reached
 * by) and a client certificate, in the layout of {@link PKI_FILES}. Meant
 * for tests and small labs; production hosts use their own CA.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdir, writeFile, rm, chmod, access } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { FerryError } from '../errors/index.js';
import { PKI_FILES } from './tls.js';

const run = promisify(execFile);

/** Options of {@link createTestPki}. */
export interface PkiSetupOptions {
  /** Names and IP addresses the server certificate is valid for (localhost and 127.0.0.1 are always added). */
  hosts: string[];
  /** Validity in days. */
  days: number;
  /** Reuse an existing CA in `dir` (cacert.pem + cakey.pem) instead of making a new one. */
  reuseCa: boolean;
  /** Common name of the client certificate. */
  clientName: string;
}

/** The CA's private key file (kept beside the certificates so more can be issued). */
export const CA_KEY_FILE = 'cakey.pem';

/** Creates the PKI in `dir`; returns the files written. */
export async function createTestPki(dir: string, opts: PkiSetupOptions): Promise<string[]> {
  for (const h of [...opts.hosts, opts.clientName]) {
    if (!/^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$/.test(h)) {
      throw new FerryError('invalid_arg', `'${h}' is not a host name or IP address usable in a certificate`);
    }
  }
  if (!Number.isInteger(opts.days) || opts.days < 1 || opts.days > 36500) {
    throw new FerryError('invalid_arg', `--days must be between 1 and 36500, not ${opts.days}`);
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const caCert = join(dir, PKI_FILES.ca);
  const caKey = join(dir, CA_KEY_FILE);
  const written: string[] = [];
  const haveCa = opts.reuseCa && (await exists(caCert)) && (await exists(caKey));
  if (!haveCa) {
    await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', caKey, '-out', caCert,
      '-days', String(opts.days), '-subj', '/CN=Ferry test CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    written.push(caCert, caKey);
  }
  const hosts = [...new Set(['localhost', '127.0.0.1', ...opts.hosts])];
  const san = hosts.map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
  const firstName = opts.hosts[0] ?? 'localhost';
  written.push(...(await issue(dir, caCert, caKey, 'server', firstName, `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`, opts.days)));
  written.push(...(await issue(dir, caCert, caKey, 'client', opts.clientName, 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n', opts.days)));
  for (const f of written) await chmod(f, f.endsWith('key.pem') ? 0o600 : 0o644);
  return written;
}

async function issue(dir: string, caCert: string, caKey: string, role: 'server' | 'client', cn: string, ext: string, days: number): Promise<string[]> {
  const key = join(dir, role === 'server' ? PKI_FILES.serverKey : PKI_FILES.clientKey);
  const cert = join(dir, role === 'server' ? PKI_FILES.serverCert : PKI_FILES.clientCert);
  const csr = join(dir, `.${role}.csr`);
  const extFile = join(dir, `.${role}.ext`);
  try {
    await writeFile(extFile, ext);
    await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`]);
    await openssl(['x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', String(days), '-extfile', extFile]);
  } finally {
    await rm(csr, { force: true });
    await rm(extFile, { force: true });
    await rm(join(dir, 'cacert.srl'), { force: true });
  }
  return [key, cert];
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args, { timeout: 30_000 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new FerryError('operation_failed', "the 'openssl' command is needed to make certificates (apt-get install openssl)");
    throw new FerryError('operation_failed', `openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim().split('\n').slice(-2).join(' ')}`);
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}
