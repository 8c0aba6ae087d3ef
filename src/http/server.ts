/**
 * ferryd's HTTP listener (`ferryd --http HOST:PORT`): the dashboard page,
 * `/metrics` for Prometheus, the native API's methods for the page, and a
 * stream of the host's events and of running migrations' figures.
 *
 * | route | access | answers |
 * |---|---|---|
 * | `GET /`, `/assets/*` | read | the page (built into dist/web at set-up) |
 * | `GET /metrics` | read | Prometheus text format (metrics.ts) |
 * | `GET /api/call/METHOD?params=JSON` | read | a read-only method of the native API |
 * | `POST /api/call/METHOD` (JSON body) | write | a method that changes something |
 * | `GET /api/events` | read | server-sent events: the host's events as they happen, and `job` with each running migration's statistics every 500 ms |
 *
 * Access is auth.ts's. Every method is the native API's own handler, so the
 * page's input is checked by the same code as the CLI's; the methods
 * offered are listed below, and a method not listed is 404.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';
import type { Registry } from 'prom-client';
import { FerryError, toFerryError } from '../errors/index.js';
import type { Host } from '../host/host.js';
import type { Migrations } from '../migration/host-migrations.js';
import type { Caller, Handler } from '../api/server.js';
import type { DashboardApiMethod } from '../api/protocol.js';
import type { TlsCredentials } from '../api/tls.js';
import { accessOf, allowedHosts, type Access } from './auth.js';

/** Methods the page may call with read access (GET). */
export const READ_METHODS: ReadonlySet<string> = new Set([
  'connect.hello',
  'host.facts',
  'host.maintenance.status',
  'host.evacuate.status',
  'domain.list',
  'domain.info',
  'domain.state',
  'domain.xml',
  'domain.consoleLog',
  'domain.jobInfo',
  'domain.stats',
  'domain.migrateGetSpeed',
  'domain.migrateGetMaxDowntime',
]);

/** Methods that change something (POST, with a credential). */
export const WRITE_METHODS: ReadonlySet<string> = new Set([
  'domain.start',
  'domain.shutdown',
  'domain.destroy',
  'domain.suspend',
  'domain.resume',
  'domain.migrate',
  'domain.migrateForecast',
  'domain.jobAbort',
  'domain.migrateStartPostcopy',
  'domain.migrateSetSpeed',
  'domain.migrateSetMaxDowntime',
  'host.maintenance.enable',
  'host.maintenance.disable',
  'host.evacuate.plan',
  'host.evacuate.start',
  'host.evacuate.stop',
]);

/** Largest request body accepted (bytes). */
const MAX_BODY = 1024 * 1024;
/** Event streams served at once. */
const MAX_STREAMS = 64;
/** How often a running migration's figures are pushed (ms). */
const JOB_SAMPLE_MS = 500;
/** A comment line keeps idle streams (and the proxies between) open (ms). */
const STREAM_HEARTBEAT_MS = 15_000;

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
};

/** What the HTTP listener serves from. */
export interface HttpServerOptions {
  handlers: ReadonlyMap<string, Handler>;
  host: Host;
  migrations: Migrations;
  metrics: Registry;
  token: string;
  /** The built page (dist/web). */
  staticDir: string;
  log: (msg: string) => void;
}

/** One event stream. */
interface Stream {
  res: ServerResponse;
  heartbeat: NodeJS.Timeout;
}

export class HttpServer {
  private server: Server | undefined;
  private hosts = new Set<string>();
  private scheme: 'http' | 'https' = 'http';
  private readonly streams = new Set<Stream>();
  private sampler: NodeJS.Timeout | undefined;
  private readonly unsubscribe: () => void;

  constructor(private readonly o: HttpServerOptions) {
    this.unsubscribe = o.host.events.subscribe((e) => this.broadcast(e.name, e.data));
  }

  /** The page's address, for `ferry dashboard`: the listener's address, a wildcard shown as the loopback. */
  get url(): string {
    const addr = this.server?.address();
    if (typeof addr !== 'object' || addr === null) throw new FerryError('operation_invalid', 'the HTTP listener is not listening');
    const host = addr.address === '0.0.0.0' ? '127.0.0.1' : addr.address === '::' ? '[::1]' : addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    return `${this.scheme}://${host}:${addr.port}/`;
  }

  /** Open event streams (for the daemon's connection count). */
  get streamCount(): number {
    return this.streams.size;
  }

  /** Listens on `host:port` (HTTPS with `tls`, client certificates of the API's CA then count as a credential); answers the port. */
  async listen(host: string, port: number, tls?: TlsCredentials): Promise<number> {
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.route(req, res).catch((err) => this.fail(res, err));
    this.scheme = tls ? 'https' : 'http';
    const server = tls ? createHttpsServer({ ca: tls.ca, cert: tls.cert, key: tls.key, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, handler) : createHttpServer(handler);
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => resolve());
    });
    const addr = server.address();
    const bound = typeof addr === 'object' && addr !== null ? addr.port : port;
    this.hosts = allowedHosts(host, bound);
    this.o.log(`http: answering to ${[...this.hosts].join(', ')}`);
    return bound;
  }

  async close(): Promise<void> {
    this.unsubscribe();
    if (this.sampler) clearInterval(this.sampler);
    for (const s of this.streams) this.endStream(s);
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections();
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const access = accessOf(req, this.o.token, this.hosts, this.scheme);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('Cache-Control', 'no-store');
    if (!access.read) return this.refuse(res, access, 'read');
    const path = url.pathname;
    if (req.method === 'GET' && path === '/metrics') {
      res.writeHead(200, { 'Content-Type': this.o.metrics.contentType });
      res.end(await this.o.metrics.metrics());
      return;
    }
    if (req.method === 'GET' && path === '/api/events') return this.openStream(req, res);
    const call = /^\/api\/call\/([a-zA-Z.]+)$/.exec(path);
    if (call) {
      const method = call[1]!;
      if (req.method === 'GET' && READ_METHODS.has(method)) return this.answer(res, method, parseParams(url.searchParams.get('params')), req);
      if (req.method === 'POST' && WRITE_METHODS.has(method)) {
        if (!access.write) return this.refuse(res, access, 'write');
        if (!(req.headers['content-type'] ?? '').startsWith('application/json')) throw new FerryError('invalid_arg', 'a call is sent as application/json');
        return this.answer(res, method, parseParams(await readBody(req)), req);
      }
      if (READ_METHODS.has(method) || WRITE_METHODS.has(method)) {
        res.writeHead(405, { Allow: READ_METHODS.has(method) ? 'GET' : 'POST', 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'invalid_arg', message: `${method} is called with ${READ_METHODS.has(method) ? 'GET' : 'POST'}` } }));
        return;
      }
      throw new FerryError('no_support', `${method} is not offered over HTTP`);
    }
    if (req.method === 'GET') return this.serveStatic(res, path);
    res.writeHead(405, { Allow: 'GET' });
    res.end();
  }

  private refuse(res: ServerResponse, access: Access, what: 'read' | 'write'): void {
    res.writeHead(what === 'read' ? 403 : 401, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error: { code: 'auth_failed', message: access.why ?? 'not allowed' } }));
  }

  private async answer(res: ServerResponse, method: string, params: Record<string, unknown>, req: IncomingMessage): Promise<void> {
    const handler = this.o.handlers.get(method);
    if (handler === undefined) throw new FerryError('no_support', `${method} is not offered by this daemon`);
    const result = await handler(params, httpCaller(req));
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ result }));
  }

  private fail(res: ServerResponse, err: unknown): void {
    const e = toFerryError(err);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const status = e.code === 'no_support' ? 404 : e.code === 'no_domain' ? 404 : e.code === 'invalid_arg' || e.code === 'argument_unsupported' ? 400 : 409;
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error: e.toPayload() }));
  }

  private async serveStatic(res: ServerResponse, path: string): Promise<void> {
    const rel = path === '/' ? 'index.html' : path.startsWith('/assets/') ? normalize(path.slice(1)) : undefined;
    if (rel === undefined || rel.includes('..') || !CONTENT_TYPES[extname(rel)]) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found\n');
      return;
    }
    const body = await readFile(join(this.o.staticDir, rel)).catch(() => undefined);
    if (body === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end(rel === 'index.html' ? 'the dashboard is not built: run npm run build\n' : 'not found\n');
      return;
    }
    // The page loads nothing from elsewhere and runs no inline script.
    res.writeHead(200, { 'Content-Type': CONTENT_TYPES[extname(rel)]!, 'Content-Security-Policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'" });
    res.end(body);
  }

  private openStream(req: IncomingMessage, res: ServerResponse): void {
    if (this.streams.size >= MAX_STREAMS) throw new FerryError('resource_busy', `${MAX_STREAMS} event streams are open already`);
    res.writeHead(200, { 'Content-Type': 'text/event-stream', Connection: 'keep-alive' });
    res.write(': ferryd events\n\n');
    const stream: Stream = { res, heartbeat: setInterval(() => res.write(': \n\n'), STREAM_HEARTBEAT_MS) };
    this.streams.add(stream);
    req.on('close', () => this.endStream(stream));
    res.on('error', () => this.endStream(stream));
    if (!this.sampler) this.sampler = setInterval(() => this.sampleJobs(), JOB_SAMPLE_MS);
    // The figures of migrations already running, at once.
    this.sampleJobs();
  }

  private endStream(s: Stream): void {
    clearInterval(s.heartbeat);
    this.streams.delete(s);
    s.res.end();
    if (this.streams.size === 0 && this.sampler) {
      clearInterval(this.sampler);
      this.sampler = undefined;
    }
  }

  private broadcast(event: string, data: unknown): void {
    if (this.streams.size === 0) return;
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const s of this.streams) s.res.write(frame);
  }

  /** Pushes each running migration's statistics (outgoing and incoming) to the streams. */
  private sampleJobs(): void {
    if (this.streams.size === 0) return;
    for (const j of this.o.migrations.runningJobs()) this.broadcast('job', { ...j, timestamp: new Date().toISOString() });
  }
}

/** `host.dashboard` of the native API: the listener's address and its token, or a refusal when ferryd has no `--http`. */
export function dashboardHandlers(current: () => { server: HttpServer; token: string } | undefined): Record<DashboardApiMethod, Handler> {
  return {
    'host.dashboard': async () => {
      const c = current();
      if (c === undefined) throw new FerryError('operation_invalid', 'this ferryd serves no dashboard: start it with --http HOST:PORT');
      return { url: c.server.url, token: c.token };
    },
  };
}

/** The caller of an HTTP call: it offers none of the methods that need a connection. */
function httpCaller(req: IncomingMessage): Caller {
  const closed = new AbortController();
  req.socket.once('close', () => closed.abort());
  return {
    id: 0,
    transport: 'http',
    peer: `http ${req.socket.remoteAddress ?? '?'}`,
    subscribed: false,
    closedSignal: closed.signal,
    get isOpen() {
      return !req.socket.destroyed;
    },
    once: (_event, listener) => req.socket.once('close', listener),
    takeOverSocket: () => {
      throw new FerryError('argument_unsupported', 'an HTTP call cannot carry a migration stream');
    },
    close: () => undefined,
  };
}

function parseParams(text: string | null): Record<string, unknown> {
  if (text === null || text === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new FerryError('invalid_arg', 'the parameters are not JSON');
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new FerryError('invalid_arg', 'the parameters must be a JSON object');
  return v as Record<string, unknown>;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new FerryError('invalid_arg', `a request body may have at most ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

