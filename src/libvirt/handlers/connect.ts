/**
 * Connection procedures: open and close, authentication list, feature
 * checks, identity of the host (URI, hostname, versions, capabilities).
 * The machine's CPU and memory (NODE_*) are in node.ts.
 */
import { FerryError } from '../../errors/index.js';
import type { Host } from '../../host/host.js';
import { FERRY_VERSION } from '../../version.js';
import { readMachine } from '../../host/host-facts.js';
import type { ProcedureHandlers } from '../connection.js';
import { topologyXml } from './node.js';

/** libvirt's `virDrvFeature` numbers ferryd supports, and why. */
export const FEATURES: ReadonlyMap<number, string> = new Map([
  [4, 'peer-to-peer migration'],
  [6, 'migration protocol version 3'],
  [7, 'a migration protected from changes from begin on'],
  [9, 'string typed parameters'],
  [10, 'the keepalive program'],
  [11, 'migratable XML'],
  [12, 'offline migration'],
  [13, 'migration with typed parameters'],
  [14, 'server-side event filtering by callback id'],
  [15, 'close callbacks'],
]);
const FEATURE_KEEPALIVE = 10;

/** The library version ferryd answers: the libvirt release whose protocol it speaks (9.0.0). */
export const LIBVIRT_COMPAT_VERSION = 9_000_000;

/** `virConnectFlags`: VIR_CONNECT_RO, a read-only connection. */
const CONNECT_RO = 1;

/** Hypervisor driver URIs a client may open. */
const OPENABLE = new Set(['qemu:///system', 'qemu:///session', 'qemu:///']);

/** `major.minor.micro` as libvirt's single number. */
function versionNumber(v: string): number {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(v);
  return m ? Number(m[1]) * 1_000_000 + Number(m[2]) * 1000 + Number(m[3] ?? 0) : 0;
}

/** Handlers of the connection procedures. */
export function connectHandlers(host: Host, qemuVersion: () => Promise<string>): ProcedureHandlers {
  const identity = host.config.identity;
  return {
    // No SASL or polkit step: unix sockets are owner-only, TLS clients proved themselves by certificate, TCP is the insecure test listener.
    AUTH_LIST: async () => ({ types: [0] }),
    CONNECT_OPEN: async (a, { conn }) => {
      const name = a.name ?? 'qemu:///system';
      // The remote driver sends the URI without transport and host; a query (e.g. ?socket=) stays client-side.
      const bare = name.split('?')[0]!;
      if (!OPENABLE.has(bare)) throw new FerryError('no_connect', `${name}: ferryd serves only the QEMU driver (qemu:///system)`);
      conn.openedUri = bare === 'qemu:///' ? 'qemu:///system' : bare;
      conn.readOnly = (a.flags & CONNECT_RO) !== 0;
      return {};
    },
    CONNECT_CLOSE: async (_a, { conn }) => {
      conn.openedUri = null;
      return {};
    },
    CONNECT_SUPPORTS_FEATURE: async (a, { conn }) => {
      const supported = FEATURES.has(a.feature);
      // As libvirtd: a client that asks whether the server speaks keepalive gets pinged from then on.
      if (a.feature === FEATURE_KEEPALIVE) conn.startKeepalive();
      return { supported: supported ? 1 : 0 };
    },
    CONNECT_GET_TYPE: async () => ({ type: 'QEMU' }),
    CONNECT_GET_VERSION: async () => ({ hvVer: versionNumber(await qemuVersion()) }),
    CONNECT_GET_LIB_VERSION: async () => ({ libVer: LIBVIRT_COMPAT_VERSION }),
    CONNECT_GET_HOSTNAME: async () => ({ hostname: identity.hostName }),
    CONNECT_GET_URI: async (_a, { conn }) => ({ uri: conn.openedUri ?? 'qemu:///system' }),
    CONNECT_IS_SECURE: async (_a, { conn }) => ({ secure: conn.transport === 'tcp' ? 0 : 1 }),
    CONNECT_GET_MAX_VCPUS: async () => ({ maxVcpus: 255 }),
    CONNECT_GET_SYSINFO: async () => ({ sysinfo: `<sysinfo type='smbios'>\n  <system>\n    <entry name='product'>ferryd ${FERRY_VERSION}</entry>\n    <entry name='uuid'>${identity.hostUuid}</entry>\n  </system>\n</sysinfo>\n` }),
    // The NUMA topology only when the machine can be read: the rest of the document stands without it.
    CONNECT_GET_CAPABILITIES: async () => ({ capabilities: capabilitiesXml(identity.hostUuid, await readMachine().then(topologyXml, () => [])) }),
    CONNECT_REGISTER_CLOSE_CALLBACK: async () => ({}),
    CONNECT_UNREGISTER_CLOSE_CALLBACK: async () => ({}),
  };
}

/** A small capabilities document: the host's UUID and arch, migration transports, NUMA cells, the hvm/x86_64 guest. */
function capabilitiesXml(hostUuid: string, topology: string[]): string {
  return [
    '<capabilities>',
    '  <host>',
    `    <uuid>${hostUuid}</uuid>`,
    '    <cpu>',
    '      <arch>x86_64</arch>',
    '    </cpu>',
    '    <migration_features>',
    '      <live/>',
    '      <uri_transports>',
    '        <uri_transport>tcp</uri_transport>',
    '        <uri_transport>rdma</uri_transport>',
    '        <uri_transport>unix</uri_transport>',
    '      </uri_transports>',
    '    </migration_features>',
    ...topology,
    '  </host>',
    '  <guest>',
    '    <os_type>hvm</os_type>',
    "    <arch name='x86_64'>",
    '      <wordsize>64</wordsize>',
    '      <emulator>/usr/bin/qemu-system-x86_64</emulator>',
    "      <domain type='qemu'/>",
    "      <domain type='kvm'/>",
    '    </arch>',
    '  </guest>',
    '</capabilities>',
    '',
  ].join('\n');
}
