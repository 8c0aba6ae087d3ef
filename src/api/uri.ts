/**
 * Connection URIs, in libvirt's style:
 * `ferry:///system` (local socket), `ferry+unix:///system?socket=PATH`,
 * `ferry+tls://HOST[:PORT]/system[?pkipath=DIR&no_verify=1]`,
 * `ferry+tcp://HOST[:PORT]/system` (tests only: no authentication).
 * The same forms with `qemu` name a daemon speaking libvirt's own protocol
 * (libvirtd, or ferryd's libvirt listeners), with libvirt's default ports.
 */
import { FerryError } from '../errors/index.js';

/** Default local socket, under the default run dir. */
export const DEFAULT_SOCKET_PATH = '/run/ferry/ferryd.sock';
/** Default port of the mutual-TLS listener. */
export const DEFAULT_TLS_PORT = 16614;
/** Default port of the insecure TCP listener. */
export const DEFAULT_TCP_PORT = 16609;
/** libvirt's default ports and socket, for `qemu+...` URIs. */
export const LIBVIRT_DEFAULTS = { tlsPort: 16514, tcpPort: 16509, socketPath: '/var/run/libvirt/libvirt-sock' } as const;
/** Default directory of TLS credentials (cacert.pem, client/server cert and key). */
export const DEFAULT_PKI_DIR = '/etc/ferry/pki';

/** ASCII control characters: the URL parser drops some of them silently, so they are refused first. */
const CONTROL_CHARS = /[\x00-\x1f\x7f]/;

/** Which protocol the daemon at a URI speaks: Ferry's own (`ferry...`) or libvirt's (`qemu...`). */
export type UriProtocol = 'ferry' | 'libvirt';

/** A parsed connection URI. */
export type ConnectionTarget = (
  | { transport: 'unix'; socketPath: string; uri: string }
  | { transport: 'tls'; host: string; port: number; pkiDir: string; verifyServer: boolean; uri: string }
  | { transport: 'tcp'; host: string; port: number; uri: string }
) & { protocol?: UriProtocol };

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
  const { transport, protocol } = schemeTransport(scheme, uri, url.hostname);
  const libvirt = protocol === 'libvirt';
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
    const socketPath = url.searchParams.get('socket') ?? (libvirt ? LIBVIRT_DEFAULTS.socketPath : DEFAULT_SOCKET_PATH);
    if (!socketPath.startsWith('/')) throw new FerryError('invalid_arg', `socket path '${socketPath}' must be absolute`);
    return { transport, socketPath, uri, protocol };
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new FerryError('invalid_arg', `connection URI '${uri}' needs a host name`);
  const port = url.port ? Number(url.port) : transport === 'tls' ? (libvirt ? LIBVIRT_DEFAULTS.tlsPort : DEFAULT_TLS_PORT) : libvirt ? LIBVIRT_DEFAULTS.tcpPort : DEFAULT_TCP_PORT;
  if (port < 1) throw new FerryError('invalid_arg', `connection URI '${uri}': port must be between 1 and 65535`);
  if (transport === 'tcp') return { transport, host, port, uri, protocol };
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
    protocol,
  };
}

function schemeTransport(scheme: string, uri: string, hostname: string): { transport: ConnectionTarget['transport']; protocol: UriProtocol } {
  const m = /^(ferry|qemu)(?:\+(unix|tls|tcp))?$/.exec(scheme);
  if (!m) throw new FerryError('invalid_arg', `unsupported URI scheme '${scheme}' in '${uri}': use ferry, ferry+unix, ferry+tls or ferry+tcp (or qemu, qemu+unix, qemu+tls, qemu+tcp for libvirt's protocol)`);
  const protocol: UriProtocol = m[1] === 'qemu' ? 'libvirt' : 'ferry';
  // Like libvirt's qemu:///system: no host means the local socket, a host means TLS.
  const transport = (m[2] ?? (hostname ? 'tls' : 'unix')) as ConnectionTarget['transport'];
  return { transport, protocol };
}

/** Whether `uri` names a daemon speaking libvirt's protocol (`qemu`, `qemu+unix`, `qemu+tls`, `qemu+tcp`). */
export function isLibvirtUri(uri: string): boolean {
  return /^qemu(\+(unix|tls|tcp))?:/.test(uri);
}
