/**
 * TLS credentials for the remote API, laid out as libvirt lays out its PKI
 * directory: cacert.pem, servercert.pem, serverkey.pem, clientcert.pem,
 * clientkey.pem. A daemon uses the server pair to listen and the client pair
 * to call other daemons (peer-to-peer migration).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { FerryError } from '../errors/index.js';

/** File names inside a PKI directory. */
export const PKI_FILES = {
  ca: 'cacert.pem',
  serverCert: 'servercert.pem',
  serverKey: 'serverkey.pem',
  clientCert: 'clientcert.pem',
  clientKey: 'clientkey.pem',
} as const;

/** PEM material for one side of a mutual-TLS connection. */
export interface TlsCredentials {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** Loads the server or client credentials from `dir`, naming any missing file. */
export async function loadTlsCredentials(dir: string, role: 'server' | 'client'): Promise<TlsCredentials> {
  const names = role === 'server' ? [PKI_FILES.ca, PKI_FILES.serverCert, PKI_FILES.serverKey] : [PKI_FILES.ca, PKI_FILES.clientCert, PKI_FILES.clientKey];
  const results = await Promise.allSettled(names.map((name) => readFile(join(dir, name))));
  // Name every missing file, in a fixed order (the first read to fail is a matter of timing).
  const missing = results.flatMap((r, i) => (r.status === 'rejected' ? [`${join(dir, names[i]!)} (${(r.reason as Error).message})`] : []));
  if (missing.length) {
    throw new FerryError('auth_failed', `cannot read TLS ${role} credentials: ${missing.join('; ')}; create a test PKI with 'ferry tls-setup ${dir}'`);
  }
  const [ca, cert, key] = results.map((r) => (r as PromiseFulfilledResult<Buffer>).value);
  checkValidity(cert!, join(dir, names[1]!), role);
  return { ca: ca!, cert: cert!, key: key! };
}

/**
 * Refuses a certificate that is not valid now, naming its dates: the peer
 * would refuse it anyway, with a far less helpful message.
 */
function checkValidity(pem: Buffer, path: string, role: 'server' | 'client'): void {
  let c: X509Certificate;
  try {
    c = new X509Certificate(pem);
  } catch (err) {
    throw new FerryError('auth_failed', `the TLS ${role} certificate ${path} cannot be read: ${(err as Error).message}`);
  }
  const now = Date.now();
  if (Date.parse(c.validTo) < now) throw new FerryError('auth_failed', `the TLS ${role} certificate ${path} expired on ${c.validTo}; issue a new one (e.g. 'ferry tls-setup --reuse-ca')`);
  if (Date.parse(c.validFrom) > now) throw new FerryError('auth_failed', `the TLS ${role} certificate ${path} is not valid before ${c.validFrom}; check the clocks`);
}
