/**
 * Who may do what on the HTTP listener (docs/dashboard.md, "Security"):
 *
 * - reading (the page, `/metrics`, `/api/state`, the event stream) needs
 *   nothing from this machine, and a credential from anywhere else;
 * - every change (`POST /api/call/...`) needs a credential, from here too;
 * - a credential is the token ferryd keeps in `RUN_DIR/http-token` (mode
 *   0600, so only who may read the run directory has it), sent as
 *   `Authorization: Bearer TOKEN`, or a TLS client certificate signed by the
 *   API's CA when the listener is HTTPS;
 * - a request must name this listener in `Host` (a page on another name
 *   that resolves here, DNS rebinding, gets nothing), and one that carries
 *   an `Origin` must come from this listener's own origin. A page of
 *   another origin can neither send the `Authorization` header (no CORS
 *   answer is ever given) nor post a form we accept (JSON only): no
 *   cross-site request forgery.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import type { TLSSocket } from 'node:tls';
import { writeFileAtomic } from '../util/atomic-file.js';

/** The token file's name in the run directory. */
export const TOKEN_FILE = 'http-token';

/** Reads the token of `path`, or writes a new one (256 random bits, mode 0600) when there is none. */
export async function loadOrCreateToken(path: string): Promise<string> {
  const existing = await readFile(path, 'utf8').catch(() => '');
  if (/^[0-9a-f]{64}$/.test(existing.trim())) return existing.trim();
  const token = randomBytes(32).toString('hex');
  await writeFileAtomic(path, `${token}\n`, 0o600);
  return token;
}

/** Whether an address is this machine's loopback. */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || (isIP(a) === 4 && a.startsWith('127.'));
}

/** What a request may do. */
export interface Access {
  /** It may read. */
  read: boolean;
  /** It may change things. */
  write: boolean;
  /** Why not, for the 401/403 answer. */
  why?: string;
}

/**
 * The names this listener answers to in `Host`, besides the address a
 * request arrived at (always accepted, see {@link accessOf}): the address
 * it is bound to, the loopback names when it listens there or on a
 * wildcard, and for a wildcard the machine's host name.
 */
export function allowedHosts(host: string, port: number): Set<string> {
  const names = new Set<string>([hostPort(host, port)]);
  const wildcard = host === '0.0.0.0' || host === '::';
  if (wildcard || isLoopback(host) || host === 'localhost') for (const h of ['localhost', '127.0.0.1', '::1']) names.add(hostPort(h, port));
  if (wildcard) names.add(hostPort(hostname(), port));
  return names;
}

/** `host:port` as a `Host` header writes it (IPv6 in brackets), lower case. */
function hostPort(host: string, port: number | undefined): string {
  const a = host.startsWith('::ffff:') && isIP(host.slice(7)) === 4 ? host.slice(7) : host;
  return (isIP(a) === 6 ? `[${a}]:${port}` : `${a}:${port}`).toLowerCase();
}

/**
 * The access of `req` on a listener of `scheme` that answers to `hosts`
 * (its own origins are those names under that scheme), checking `token`.
 */
export function accessOf(req: IncomingMessage, token: string, hosts: ReadonlySet<string>, scheme: 'http' | 'https'): Access {
  const host = (req.headers.host ?? '').toLowerCase();
  // The address the connection arrived at is this listener's own name for it (DNS rebinding brings a name, not that address).
  const arrivedAt = req.socket.localAddress !== undefined ? hostPort(req.socket.localAddress, req.socket.localPort) : '';
  if (!hosts.has(host) && host !== arrivedAt) return { read: false, write: false, why: `this listener does not answer to the name ${JSON.stringify(host)}` };
  const origin = req.headers.origin;
  if (origin !== undefined && !hosts.has(originHost(origin, scheme)) && originHost(origin, scheme) !== arrivedAt) return { read: false, write: false, why: `requests from the page of ${origin} are not accepted` };
  const credential = hasToken(req, token) || clientCertificateOk(req);
  const local = isLoopback(req.socket.remoteAddress);
  if (credential) return { read: true, write: true };
  return { read: local, write: false, why: local ? 'a change needs the token (Authorization: Bearer, see ferry dashboard) or a client certificate' : 'from another machine, everything needs the token or a client certificate' };
}

/** The `host:port` of an origin of `scheme`, or '' for another scheme (which never matches). */
function originHost(origin: string, scheme: string): string {
  try {
    const u = new URL(origin);
    if (u.protocol !== `${scheme}:`) return '';
    return `${u.hostname}:${u.port || (scheme === 'https' ? '443' : '80')}`.toLowerCase();
  } catch {
    return '';
  }
}

function hasToken(req: IncomingMessage, token: string): boolean {
  const h = req.headers.authorization;
  if (typeof h !== 'string' || !h.startsWith('Bearer ')) return false;
  const given = Buffer.from(h.slice(7).trim());
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

function clientCertificateOk(req: IncomingMessage): boolean {
  const s = req.socket as Partial<TLSSocket>;
  return s.encrypted === true && s.authorized === true;
}
