/**
 * Migration URIs, pure (no I/O): libvirt's spellings that users write
 * (`tcp://HOST[:PORT]`, `rdma://HOST:PORT`, `unix:///PATH`), QEMU's that
 * the daemons hand to QEMU (`tcp:HOST:PORT`, `unix:PATH`), the daemons' own
 * `tunnel:JOB`, and the rewriting between what the destination prepared and
 * what the source's QEMU connects to.
 */
import { showValue } from '../errors/index.js';

/** A host that listens on every address, as prepare reports it: `tcp:*:PORT`. */
export const WILDCARD_HOST = '*';

/** The URI scheme of `uri` (lower case), or undefined when it has none. `tcp:HOST:PORT` counts as `tcp`. */
export function uriScheme(uri: string): string | undefined {
  return /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(uri)?.[1]?.toLowerCase();
}

/** The socket path of a `unix:///PATH` (or `unix:/PATH`) URI, or undefined when it names none. */
export function unixPath(uri: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(uri);
  } catch {
    return undefined;
  }
  let path: string;
  try {
    path = decodeURIComponent(parsed.pathname);
  } catch {
    return undefined; // A malformed %-escape names no path.
  }
  return path === '' || path === '/' || path.includes('\0') || parsed.hostname !== '' ? undefined : path;
}

/** Why `uri` is no valid `disks_uri` (`tcp://HOST[:PORT]` or `unix:///PATH`), or undefined. */
export function disksUriProblem(uri: string): string | undefined {
  const scheme = uriScheme(uri);
  if (scheme !== 'tcp' && scheme !== 'unix') return `expected a tcp:// or unix:// URI, got ${showValue(uri)}`;
  let parsed: URL;
  try {
    parsed = new URL(uri);
  } catch {
    return `${showValue(uri)} is not a valid URI`;
  }
  if (scheme === 'tcp' && parsed.hostname === '') return `the tcp URI ${showValue(uri)} names no host; write tcp://HOST[:PORT]`;
  if (scheme === 'unix' && unixPath(uri) === undefined) return `the unix URI ${showValue(uri)} names no socket path; write unix:///PATH`;
  return undefined;
}

/** The host of a `SCHEME://HOST[:PORT]` URI without IPv6 brackets, or undefined when it has none. */
export function uriHost(uri: string): string | undefined {
  try {
    const host = new URL(uri).hostname;
    return host === '' ? undefined : unbracket(host);
  } catch {
    return undefined;
  }
}

/** The port of a `SCHEME://HOST:PORT` URI, or undefined when it gives none. */
export function uriPort(uri: string): number | undefined {
  try {
    const port = new URL(uri).port;
    return port === '' ? undefined : Number(port);
  } catch {
    return undefined;
  }
}

/** `host` as it stands in a URI: an IPv6 literal in brackets. */
export function bracketHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/** `host` without the brackets of an IPv6 literal. */
export function unbracket(host: string): string {
  return host.replace(/^\[|\]$/g, '');
}

/** How a listener on `host` is reported to the other side: {@link WILDCARD_HOST} for every address. */
export function advertisedHost(host: string): string {
  return host === '0.0.0.0' || host === '::' ? WILDCARD_HOST : host;
}

/** QEMU's spelling of an inet URI: `tcp:HOST:PORT` or `rdma:HOST:PORT` (an IPv6 host in brackets). */
export function qemuInetUri(transport: 'tcp' | 'rdma', host: string, port: number): string {
  return `${transport}:${bracketHost(host)}:${port}`;
}

/** QEMU's spelling of a unix socket URI: `unix:PATH`. */
export function qemuUnixUri(path: string): string {
  return `unix:${path}`;
}

/** QEMU's `tcp:HOST:PORT` or `rdma:HOST:PORT` read back (the host without brackets); undefined for any other URI. */
export function qemuInetAddress(uri: string): { transport: 'tcp' | 'rdma'; host: string; port: number } | undefined {
  const m = /^(tcp|rdma):(\[[^\]]+\]|[^:/[\]]+):(\d+)$/.exec(uri);
  return m ? { transport: m[1] as 'tcp' | 'rdma', host: unbracket(m[2]!), port: Number(m[3]) } : undefined;
}

/** The host of QEMU's `tcp:HOST:PORT` or `rdma:HOST:PORT`, without brackets; undefined for any other URI. */
export function qemuInetHost(uri: string): string | undefined {
  return qemuInetAddress(uri)?.host;
}

/** The URI prepare answers for a TUNNELLED job: the stream goes through the daemons, to incoming job `jobId`. */
export function tunnelUri(jobId: string): string {
  return `tunnel:${jobId}`;
}

/** The destination job of a {@link tunnelUri}, or undefined when `uri` is not one. */
export function tunnelJobId(uri: string): string | undefined {
  return /^tunnel:(.+)$/.exec(uri)?.[1];
}

/**
 * Picks the URI the source's QEMU connects to, from the destination's
 * prepared one: an explicit `migrate_uri` wins (in QEMU's spelling); a
 * bare `tcp://HOST` takes the prepared port; a wildcard host becomes the
 * destination's address.
 */
export function chooseDataUri(explicit: unknown, prepared: string, destAddress: string): string {
  if (typeof explicit === 'string' && explicit !== '') {
    // unix:///PATH: the destination listens on that path and said so in QEMU's spelling.
    if (/^unix:/i.test(explicit) && prepared.startsWith('unix:')) return prepared;
    // A bare host (virsh accepts tcp://HOST) takes the port the destination chose.
    const m = /^tcp:\/\/([^/:]+|\[[^\]]+\])\/?$/.exec(explicit);
    if (m) return prepared.replace(/^tcp:(\*|\[[^\]]+\]|[^:]+):/, `tcp:${m[1]}:`);
    // libvirt writes tcp://HOST:PORT and rdma://HOST:PORT; QEMU wants tcp:HOST:PORT and rdma:HOST:PORT.
    if (/^rdma:\/\//.test(explicit) && prepared.startsWith('rdma:')) return prepared.replace(/^rdma:\*:/, `rdma:${bracketHost(uriHost(explicit) ?? '')}:`);
    return explicit.replace(/^(tcp|rdma):\/\//, '$1:');
  }
  return prepared.replace(/^tcp:\*:/, `tcp:${bracketHost(destAddress)}:`);
}

/**
 * The address the source's disk mirrors connect to: a wildcard NBD host
 * becomes the host the memory stream goes to (as libvirt does), or the
 * destination's address when the stream is not over TCP or RDMA.
 */
export function resolveNbdTarget<T extends { transport: string; host?: string }>(nbd: T, dataUri: string, destAddress: string): T {
  if (nbd.transport !== 'tcp' || (nbd.host !== undefined && nbd.host !== WILDCARD_HOST)) return nbd;
  return { ...nbd, host: qemuInetHost(dataUri) ?? unbracket(destAddress) };
}
