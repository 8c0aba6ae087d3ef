/** ferryd's command line: directories, listeners, identity, accelerator. */
import { Command, Option } from 'commander';
import { FerryError } from '../errors/index.js';
import type { AccelSetting } from '../qemu/index.js';
import { DEFAULT_KEEPALIVE, parseKeepalive, type KeepaliveSettings } from '../api/keepalive.js';
import { FERRY_VERSION } from '../version.js';
import type { PolicyMode } from '../migration/convergence.js';

/** A host:port to listen on. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** ferryd's configuration after parsing. */
export interface DaemonConfig {
  stateDir: string;
  runDir: string;
  listenTls?: ListenAddress;
  tlsDir?: string;
  listenTcp?: ListenAddress;
  hostUuid?: string;
  hostName?: string;
  accel: AccelSetting;
  /** Ports for incoming migration streams and disk copies. */
  migrationPorts?: { min: number; max: number };
  /** Concurrent migrations each way; the rest queue. */
  migrationLimits?: { outgoing?: number; incoming?: number };
  /** How this daemon checks that clients and peer daemons are alive, on every connection. */
  keepalive: KeepaliveSettings;
  /** What an outgoing migration does when it does not converge, unless its request says (see src/migration/convergence.ts). */
  migrationPolicy: PolicyMode;
  /** The dashboard and /metrics listener (`--http`), HTTPS with `--http-tls` (uses --tls-dir). */
  http?: ListenAddress & { tls: boolean };
  /** libvirt-protocol listeners: a unix socket, plain TCP (needs --insecure), mutual TLS (uses --tls-dir). */
  libvirt: { socket?: string; tcp?: ListenAddress; tls?: ListenAddress };
}

function parseLimit(value: string, option: string): number {
  if (!/^\d{1,4}$/.test(value) || Number(value) < 1) throw new FerryError('invalid_arg', `${option} expects a whole number from 1 to 9999, not '${value}'`);
  return Number(value);
}

/** Parses `MIN-MAX`, a TCP port range. */
export function parsePortRange(value: string, option: string): { min: number; max: number } {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(value);
  const min = m ? Number(m[1]) : NaN;
  const max = m ? Number(m[2]) : NaN;
  if (!m || min < 1 || max > 65535 || min > max) throw new FerryError('invalid_arg', `${option} expects MIN-MAX with 1 <= MIN <= MAX <= 65535 (e.g. 49152-49215), not '${value}'`);
  return { min, max };
}

/** Parses `HOST:PORT` (IPv6 as `[::1]:PORT`). */
export function parseListenAddress(value: string, option: string): ListenAddress {
  const m = /^(?:\[([^\]\s]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 0 || port > 65535) {
    throw new FerryError('invalid_arg', `${option} expects HOST:PORT (e.g. 0.0.0.0:16614), not '${value}'`);
  }
  return { host: (m[1] ?? m[2])!, port };
}

/** Parses ferryd's argv; refuses inconsistent combinations with a sentence. */
export function parseDaemonArgs(argv: string[]): DaemonConfig {
  const program = new Command('ferryd')
    .description('Ferry host daemon: runs QEMU guests and migrates them')
    .version(FERRY_VERSION, '-v, --version')
    .option('--state-dir <dir>', 'persistent state: definitions, host UUID, logs', '/var/lib/ferry')
    .option('--run-dir <dir>', 'runtime state: API socket, QMP sockets, guest status files', '/run/ferry')
    .option('--listen-tls <host:port>', 'serve the API to other hosts over mutual TLS')
    .option('--tls-dir <dir>', 'TLS credentials (cacert.pem, servercert.pem, serverkey.pem, clientcert.pem, clientkey.pem)')
    .option('--listen-tcp <host:port>', 'serve the API over plain TCP with NO authentication (tests only; needs --insecure)')
    .option('--insecure', 'allow --listen-tcp and --libvirt-listen-tcp')
    .option('--libvirt-socket <path>', "serve libvirt's remote protocol on this unix socket (virsh -c 'qemu+unix:///system?socket=PATH')")
    .option('--libvirt-listen-tcp <host:port>', "serve libvirt's remote protocol over plain TCP with NO authentication, like libvirtd's auth_tcp=\"none\" (needs --insecure)")
    .option('--libvirt-listen-tls <host:port>', "serve libvirt's remote protocol over mutual TLS with the credentials in --tls-dir (virsh -c 'qemu+tls://HOST:PORT/system?pkipath=DIR')")
    .option('--http <host:port>', 'serve the dashboard, /metrics and the API for the page over HTTP (reading from this machine needs nothing; changes need the token in RUN_DIR/http-token, see ferry dashboard)')
    .option('--http-tls', 'serve --http as HTTPS with the certificates of --tls-dir; a client certificate of the CA counts as a credential')
    .option('--host-uuid <uuid>', 'host UUID (default: generated at first start and kept in the state dir)')
    .option('--host-name <name>', "host name (default: the machine's)")
    .option('--migration-ports <min-max>', 'TCP ports for incoming migration streams and disk copies (libvirt\'s default range)', '49152-49215')
    .option('--max-outgoing-migrations <n>', 'migrations from this host that run at once; more wait in a queue (default: the number of cores, at least 2)')
    .option('--max-incoming-migrations <n>', 'migrations to this host that run at once; more wait in a queue (default: the number of cores, at least 2)')
    .option('--keepalive-interval <seconds>', `seconds of silence from a client or peer daemon before it is pinged; 0 turns keepalive off (default ${DEFAULT_KEEPALIVE.intervalS})`)
    .option('--keepalive-count <count>', `unanswered pings after which a client or peer counts as gone: INTERVAL x COUNT seconds of silence (default ${DEFAULT_KEEPALIVE.count})`)
    .addOption(new Option('--migration-policy <mode>', 'what an outgoing migration that does not converge does unless its request says: none, warn (say so, with the numbers and what would help) or auto (escalate: downtime, throttling, post-copy where allowed, then abort)').choices(['none', 'warn', 'auto']).default('warn'))
    .addOption(new Option('--accel <mode>', 'accelerator: auto (KVM where a probe guest really runs, else TCG), kvm or tcg').choices(['auto', 'kvm', 'tcg']).default('auto'))
    .exitOverride()
    .parse(argv);
  const o = program.opts<{
    stateDir: string;
    runDir: string;
    listenTls?: string;
    tlsDir?: string;
    listenTcp?: string;
    insecure?: boolean;
    hostUuid?: string;
    hostName?: string;
    accel: AccelSetting;
    migrationPorts: string;
    maxOutgoingMigrations?: string;
    maxIncomingMigrations?: string;
    keepaliveInterval?: string;
    keepaliveCount?: string;
    libvirtSocket?: string;
    migrationPolicy: PolicyMode;
    libvirtListenTcp?: string;
    libvirtListenTls?: string;
    http?: string;
    httpTls?: boolean;
  }>();
  const cfg: DaemonConfig = {
    stateDir: o.stateDir,
    runDir: o.runDir,
    accel: o.accel,
    migrationPorts: parsePortRange(o.migrationPorts, '--migration-ports'),
    keepalive: parseKeepalive(o.keepaliveInterval, o.keepaliveCount),
    libvirt: {},
    migrationPolicy: o.migrationPolicy,
  };
  if (o.listenTls) {
    if (!o.tlsDir) throw new FerryError('invalid_arg', '--listen-tls needs --tls-dir with the CA and server certificate (make a test set with `ferry tls-setup DIR`)');
    cfg.listenTls = parseListenAddress(o.listenTls, '--listen-tls');
  }
  if (o.tlsDir) cfg.tlsDir = o.tlsDir;
  if (o.listenTcp) {
    if (!o.insecure) throw new FerryError('invalid_arg', '--listen-tcp serves the API without any authentication; add --insecure to confirm (tests only), or use --listen-tls');
    cfg.listenTcp = parseListenAddress(o.listenTcp, '--listen-tcp');
  }
  if (o.libvirtSocket !== undefined) {
    if (!o.libvirtSocket.startsWith('/')) throw new FerryError('invalid_arg', `--libvirt-socket expects an absolute path, not '${o.libvirtSocket}'`);
    cfg.libvirt.socket = o.libvirtSocket;
  }
  if (o.libvirtListenTcp) {
    if (!o.insecure) throw new FerryError('invalid_arg', '--libvirt-listen-tcp serves the libvirt protocol without any authentication; add --insecure to confirm (tests only), or use --libvirt-listen-tls');
    cfg.libvirt.tcp = parseListenAddress(o.libvirtListenTcp, '--libvirt-listen-tcp');
  }
  if (o.libvirtListenTls) {
    if (!o.tlsDir) throw new FerryError('invalid_arg', '--libvirt-listen-tls needs --tls-dir with the CA and server certificate (make a test set with `ferry tls-setup DIR`)');
    cfg.libvirt.tls = parseListenAddress(o.libvirtListenTls, '--libvirt-listen-tls');
  }
  if (o.maxOutgoingMigrations !== undefined || o.maxIncomingMigrations !== undefined) {
    cfg.migrationLimits = {
      ...(o.maxOutgoingMigrations !== undefined ? { outgoing: parseLimit(o.maxOutgoingMigrations, '--max-outgoing-migrations') } : {}),
      ...(o.maxIncomingMigrations !== undefined ? { incoming: parseLimit(o.maxIncomingMigrations, '--max-incoming-migrations') } : {}),
    };
  }
  if (o.httpTls && !o.http) throw new FerryError('invalid_arg', '--http-tls needs --http HOST:PORT');
  if (o.httpTls && !o.tlsDir) throw new FerryError('invalid_arg', '--http-tls needs --tls-dir with the CA and server certificate');
  if (o.http) cfg.http = { ...parseListenAddress(o.http, '--http'), tls: o.httpTls === true };
  if (o.hostUuid) cfg.hostUuid = o.hostUuid;
  if (o.hostName) cfg.hostName = o.hostName;
  return cfg;
}
