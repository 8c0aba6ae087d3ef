#!/usr/bin/env node
/** `ferryd`: start-up and wiring of one host daemon. */
import { mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommanderError } from 'commander';
import { toFerryError } from '../errors/index.js';
import { resolveAccel } from '../qemu/index.js';
import { Host } from '../host/host.js';
import { loadHostIdentity } from '../host/identity.js';
import { ApiServer } from '../api/server.js';
import { buildHandlers } from '../api/handlers.js';
import { loadTlsCredentials } from '../api/tls.js';
import { parseDaemonArgs } from './config.js';
import { acquireInstanceLock } from './instance-lock.js';
import { Migrations, type PeerConnector } from '../migration/host-migrations.js';
import { Evacuations, type EvacuationPeerConnector } from '../migration/evacuations.js';
import { FerryError } from '../errors/index.js';
import { migrationHandlers } from '../api/migration-handlers.js';
import { hostStateHandlers } from '../api/host-handlers.js';
import { remoteDestination } from '../api/migration-endpoints.js';
import { ApiClient } from '../api/client.js';
import { layoutQemuTlsDir } from '../migration/qemu-tls.js';
import { DEFAULT_POLICY } from '../migration/convergence.js';
import { LibvirtServer } from '../libvirt/server.js';
import { libvirtHandlers } from '../libvirt/handlers/index.js';
import { LibvirtClient } from '../libvirt/client.js';
import { libvirtDestination } from '../libvirt/destination.js';
import { isLibvirtUri } from '../api/uri.js';
import { HttpServer, dashboardHandlers } from '../http/server.js';
import { daemonMetrics } from '../http/metrics.js';
import { TOKEN_FILE, loadOrCreateToken } from '../http/auth.js';

function log(msg: string): void {
  process.stderr.write(`${new Date().toISOString()} ferryd: ${msg}\n`);
}

/** The test guest shipped in the checkout, used as the accelerator probe workload when present. */
function probeKernel(): string | undefined {
  const path = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'guest', 'build', 'guest.elf');
  return existsSync(path) ? path : undefined;
}

async function run(): Promise<void> {
  const cfg = parseDaemonArgs(process.argv);
  await mkdir(cfg.stateDir, { recursive: true, mode: 0o700 });
  await mkdir(cfg.runDir, { recursive: true, mode: 0o700 });
  const releaseLock = await acquireInstanceLock(cfg.runDir);
  const identity = await loadHostIdentity(cfg.stateDir, { hostUuid: cfg.hostUuid, hostName: cfg.hostName });
  const accel = await resolveAccel(cfg.accel, { cacheFile: join(cfg.runDir, 'accel.json'), guestKernel: probeKernel() });
  log(`host ${identity.hostName} (${identity.hostUuid}); accelerator ${accel.accel}: ${accel.reason}`);
  const host = await Host.open({ stateDir: cfg.stateDir, runDir: cfg.runDir, identity, accel: accel.accel, log, ...(cfg.migrationPorts ? { migrationPorts: cfg.migrationPorts } : {}), ...(cfg.migrationLimits ? { migrationLimits: cfg.migrationLimits } : {}) });
  // Peer connections use this host's client certificate from --tls-dir (mutual TLS).
  const peerOpts = { ...(cfg.tlsDir ? { pkiDir: cfg.tlsDir } : {}), keepalive: cfg.keepalive };
  // A qemu+... URI names a ferryd's libvirt listener: the peer is then reached over libvirt's protocol.
  const connectPeer: PeerConnector = async (uri) =>
    isLibvirtUri(uri) ? libvirtDestination(await LibvirtClient.connect(uri, peerOpts), peerOpts) : remoteDestination(await ApiClient.connect(uri, peerOpts), peerOpts);
  const qemuTlsDir = cfg.tlsDir ? await layoutQemuTlsDir(cfg.tlsDir, cfg.runDir) : undefined;
  // A post-copy stream silent for as long as a silent peer daemon counts as gone is paused, ready to be resumed.
  const postcopyStallMs = cfg.keepalive.intervalS > 0 ? cfg.keepalive.intervalS * cfg.keepalive.count * 1000 : undefined;
  const migrations = new Migrations(host, connectPeer, log, qemuTlsDir, { ...DEFAULT_POLICY, mode: cfg.migrationPolicy }, postcopyStallMs);
  // An evacuation asks its destinations for their facts and guests: the native API only (libvirt has no host.facts).
  const connectEvacuationPeer: EvacuationPeerConnector = async (uri) => {
    if (isLibvirtUri(uri)) throw new FerryError('argument_unsupported', `evacuation needs Ferry destinations (ferry+tls://, ferry+tcp://, ferry+unix://), not ${uri}`);
    const client = await ApiClient.connect(uri, peerOpts);
    // Bounded: a destination that stops answering must not hold the evacuation up (the facts may ask QEMU about the CPU).
    return { facts: () => client.call('host.facts', {}, { timeoutMs: 60_000 }), domains: () => client.call('domain.list', { all: true }, { timeoutMs: 20_000 }), close: () => client.close() };
  };
  const evacuations = new Evacuations(host, migrations, connectEvacuationPeer, log);
  await evacuations.load();
  // One handler table for the native API and the HTTP listener's calls: the same checks for every entry point.
  let http: { server: HttpServer; token: string } | undefined;
  const handlers = buildHandlers(host, { ...migrationHandlers(migrations, log), ...hostStateHandlers(host, migrations, evacuations), ...dashboardHandlers(() => http) });
  const server = new ApiServer(handlers, log, cfg.keepalive);
  const libvirt = new LibvirtServer(libvirtHandlers(host, migrations), log, cfg.keepalive, (uuid) => host.registry.getByUuid(uuid)?.runtime?.id ?? null);
  host.events.subscribe((e) => {
    for (const conn of server.openConnections) conn.sendEvent(e.name, e.data);
    libvirt.publish(e);
  });
  // Migrations a killed ferryd left half-done: their domains are locked before any client can reach them;
  // settling them (which may ask the destination) goes on in the background.
  await migrations.recover().catch((err) => log(`migration recovery failed: ${toFerryError(err).message}`));
  const socketPath = join(cfg.runDir, 'ferryd.sock');
  await server.listenUnix(socketPath);
  const endpoints = [`unix ${socketPath}`];
  if (cfg.listenTls) {
    const creds = await loadTlsCredentials(cfg.tlsDir!, 'server');
    const port = await server.listenTls(cfg.listenTls.host, cfg.listenTls.port, creds);
    endpoints.push(`tls ${cfg.listenTls.host}:${port}`);
  }
  if (cfg.listenTcp) {
    const port = await server.listenTcp(cfg.listenTcp.host, cfg.listenTcp.port);
    log(`WARNING: listening on plain TCP ${cfg.listenTcp.host}:${port} with NO authentication (--insecure); use only for tests`);
    endpoints.push(`tcp ${cfg.listenTcp.host}:${port}`);
  }
  if (cfg.http) {
    const token = await loadOrCreateToken(join(cfg.runDir, TOKEN_FILE));
    const metrics = daemonMetrics(host, migrations, { connections: () => ({ native: server.openConnections.size, libvirt: libvirt.connectionCount, http: http?.server.streamCount ?? 0 }) });
    const staticDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'web');
    const httpServer = new HttpServer({ handlers, host, migrations, metrics, token, staticDir, log });
    const port = await httpServer.listen(cfg.http.host, cfg.http.port, cfg.http.tls ? await loadTlsCredentials(cfg.tlsDir!, 'server') : undefined);
    http = { server: httpServer, token };
    endpoints.push(`${cfg.http.tls ? 'https' : 'http'} ${cfg.http.host}:${port}`);
  }
  if (cfg.libvirt.socket) {
    await libvirt.listenUnix(cfg.libvirt.socket);
    endpoints.push(`libvirt-unix ${cfg.libvirt.socket}`);
  }
  if (cfg.libvirt.tls) {
    const creds = await loadTlsCredentials(cfg.tlsDir!, 'server');
    const port = await libvirt.listenTls(cfg.libvirt.tls.host, cfg.libvirt.tls.port, creds);
    endpoints.push(`libvirt-tls ${cfg.libvirt.tls.host}:${port}`);
  }
  if (cfg.libvirt.tcp) {
    const port = await libvirt.listenTcp(cfg.libvirt.tcp.host, cfg.libvirt.tcp.port);
    log(`WARNING: serving the libvirt protocol on plain TCP ${cfg.libvirt.tcp.host}:${port} with NO authentication (--insecure); use only for tests`);
    endpoints.push(`libvirt-tcp ${cfg.libvirt.tcp.host}:${port}`);
  }
  log(`ready: ${endpoints.join(', ')}`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping; running guests keep running and are re-attached at next start`);
    host.close();
    void Promise.all([server.close(), libvirt.close(), http?.server.close()])
      .then(releaseLock)
      .finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => undefined);
}

// Nothing a client sends may take the daemon down: log what escapes and carry on.
process.on('uncaughtException', (err) => log(`internal error (continuing): ${err.stack ?? err.message}`));
process.on('unhandledRejection', (err) => log(`internal error (continuing): ${toFerryError(err).message}`));

run().catch((err) => {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  log(`cannot start: ${toFerryError(err).message}`);
  process.exit(1);
});
