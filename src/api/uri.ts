/**
 * Connection URIs, in libvirt's style:
 * `ferry:///system` (local socket), `ferry+unix:///system?socket=PATH`,
 * `ferry+tls://HOST[:PORT]/system[?pkipath=DIR&no_verify=1]`,
 * `ferry+tcp://HOST[:PORT]/system` (tests only: no authentication).
 */
import { FerryError } from '../errors/index.js';

/** Default local socket, under the default run dir. */
export const DEFAULT_SOCKET_PATH = '/run/ferry/ferryd.sock';
/** Default port of the mutual-TLS listener. */
export const DEFAULT_TLS_PORT = 16614;
/** Default port of the insecure TCP listener. */
export const DEFAULT_TCP_PORT = 16609;
/** Default directory of TLS credentials (cacert.pem, client/server cert and key). */
export const DEFAULT_PKI_DIR = '/etc/ferry/pki';

/** ASCII control characters: the URL parser drops some of them silently, so they are refused first. */
const CONTROL_CHARS = /[\x00-\x1f\x7f]/;

/** A parsed connection URI. */
export type ConnectionTarget =
  | { transport: 'unix'; socketPath: string; uri: string }
  | { transport: 'tls'; host: string; port: number; pkiDir: string; verifyServer: boolean; uri: string }
  | { transport: 'tcp'; host: string; port: number; uri: string };

const ALLOWED_PARAMS: Record<ConnectionTarget['transport'], string[]> = {
  unix: ['socket'],
  tls: ['pkipath', 'no_verify'],
  tcp: [],
};

/** Parses a connection URI; refuses anything ambiguous with `invalid_arg`. */
export function parseConnectionUri(uri: string, env: { pkiDir?: string } = {}): ConnectionTarget {
  if (uri.length > 4096 || CONTROL_CHARS.test(uri)) {
    throw new FerryError('invalid_arg', 'connection URI is too long or holds control characters');
  }
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new FerryError('invalid_arg', `cannot parse connection URI '${uri}': expected e.g. ferry:///system or ferry+tls://host/system`);
  }
  const scheme = url.protocol.replace(/:$/, '');
  const transport = schemeTransport(scheme, uri, url.hostname);
  if (url.pathname !== '/system' && url.pathname !== '/system/') {
    throw new FerryError('invalid_arg', `connection URI '${uri}' must have the path /system`);
  }
  if (url.username || url.password) {
    throw new FerryError('invalid_arg', `connection URI '${uri}': user names are not supported (authentication is by TLS certificate)`);
  }
  if (url.hash) throw new FerryError('invalid_arg', `connection URI '${uri}': a #fragment means nothing here`);
  for (const key of new Set(url.searchParams.keys())) {
    if (!ALLOWED_PARAMS[transport].includes(key)) {
      throw new FerryError('invalid_arg', `connection URI '${uri}': unknown parameter '${key}' for ${scheme}`);
    }
    const values = url.searchParams.getAll(key);
    if (values.length > 1) throw new FerryError('invalid_arg', `connection URI '${uri}': parameter '${key}' is given ${values.length} times`);
    // Decoded values end up in paths and messages: %00 or %0a must not slip through.
    if (CONTROL_CHARS.test(values[0]!)) throw new FerryError('invalid_arg', `connection URI '${uri}': parameter '${key}' holds control characters`);
  }
  if (transport === 'unix') {
    if (url.hostname) {
      throw new FerryError('invalid_arg', `connection URI '${uri}': a local socket URI has no host; use ferry+tls://${url.hostname}/system for a remote host`);
    }
    const socketPath = url.searchParams.get('socket') ?? DEFAULT_SOCKET_PATH;
    if (!socketPath.startsWith('/')) throw new FerryError('invalid_arg', `socket path '${socketPath}' must be absolute`);
    return { transport, socketPath, uri };
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new FerryError('invalid_arg', `connection URI '${uri}' needs a host name`);
  const port = url.port ? Number(url.port) : transport === 'tls' ? DEFAULT_TLS_PORT : DEFAULT_TCP_PORT;
  if (port < 1) throw new FerryError('invalid_arg', `connection URI '${uri}': port must be between 1 and 65535`);
  if (transport === 'tcp') return { transport, host, port, uri };
  const noVerify = url.searchParams.get('no_verify');
  if (noVerify !== null && noVerify !== '0' && noVerify !== '1') {
    throw new FerryError('invalid_arg', `connection URI '${uri}': no_verify must be 0 or 1`);
  }
  const pkiDir = url.searchParams.get('pkipath') ?? env.pkiDir ?? DEFAULT_PKI_DIR;
  if (!pkiDir.startsWith('/')) throw new FerryError('invalid_arg', `connection URI '${uri}': pkipath '${pkiDir}' must be an absolute directory`);
  return {
    transport,
    host,
    port,
    pkiDir,
    verifyServer: noVerify !== '1',
    uri,
  };
}

function schemeTransport(scheme: string, uri: string, hostname: string): ConnectionTarget['transport'] {
  switch (scheme) {
    case 'ferry':
      // Like libvirt's qemu:///system: no host means the local socket.
      if (hostname) return 'tls';
      return 'unix';
    case 'ferry+unix':
      return 'unix';
    case 'ferry+tls':
      return 'tls';
    case 'ferry+tcp':
      return 'tcp';
    default:
      throw new FerryError('invalid_arg', `unsupported URI scheme '${scheme}' in '${uri}': use ferry, ferry+unix, ferry+tls or ferry+tcp`);
  }
}
