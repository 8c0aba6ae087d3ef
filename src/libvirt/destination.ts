/**
 * Another ferryd as a migration destination, reached over libvirt's
 * protocol (a `qemu+tcp://`, `qemu+tls://` or `qemu+unix://` URI given to a
 * peer-to-peer migration): the driver's destination endpoint, built from
 * the prepare, prepare-tunnel and finish procedures with Ferry's cookies.
 */
import type { Duplex } from 'node:stream';
import { FerryError } from '../errors/index.js';
import { hasFlag } from '../flags/index.js';
import { dataAddressOf } from '../api/migration-endpoints.js';
import type { PeerDestination } from '../migration/host-migrations.js';
import type { DestinationEndpoint } from '../migration/driver.js';
import { LibvirtClient, type LibvirtConnectOptions } from './client.js';
import { readCookie, writeCookie } from './cookies.js';
import { typedFromParams } from './migration-params.js';

/** prepare and perform may take as long as a slot takes to free; finish as long as the switch-over. */
const FINISH_TIMEOUT_MS = 120_000;

/** The host UUID in a capabilities document. */
function hostUuidOf(capabilities: string): string {
  const m = /<host>[\s\S]*?<uuid>([0-9a-fA-F-]{36})<\/uuid>/.exec(capabilities);
  if (!m) throw new FerryError('operation_failed', 'the destination did not say its host UUID in its capabilities');
  return m[1]!.toLowerCase();
}

/** A ferryd reached over libvirt's protocol, as a migration destination. */
export function libvirtDestination(client: LibvirtClient, opts: LibvirtConnectOptions): PeerDestination {
  let current = client;
  let tunnel: Duplex | undefined;
  const reconnect = async (): Promise<LibvirtClient> => {
    if (!current.isClosed) return current;
    current = await LibvirtClient.connect(client.target.uri, { ...opts, timeoutMs: 5000 });
    return current;
  };
  const dst: DestinationEndpoint & PeerDestination = {
    addressForData: dataAddressOf(client.target),
    identity: async () => {
      const [h, caps] = await Promise.all([current.call('CONNECT_GET_HOSTNAME', {}), current.call('CONNECT_GET_CAPABILITIES', {})]);
      return { hostName: h.hostname, hostUuid: hostUuidOf(caps.capabilities) };
    },
    prepare: async (args) => {
      const params = typedFromParams({ ...args.params, destination_xml: args.xml });
      const cookieIn = writeCookie('begin', { cookie: args.cookie });
      if (hasFlag(args.flags, 'TUNNELLED')) {
        const r = await current.callWithStream('DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS', { params, cookieIn, flags: args.flags }, 0);
        tunnel = r.stream;
        return readCookie('prepare', r.ret.cookieOut)!.prepare;
      }
      const r = await current.call('DOMAIN_MIGRATE_PREPARE3_PARAMS', { params, cookieIn, flags: args.flags }, 0);
      const c = readCookie('prepare', r.cookieOut);
      if (!c) throw new FerryError('operation_failed', 'the destination answered prepare without a cookie; is it a ferryd?');
      return c.prepare;
    },
    finish: async (args) => {
      const cookieIn = writeCookie('perform', { destJobId: args.jobId, perform: args.sourceStats ? { stats: args.sourceStats, ...(args.sourceStoppedAt !== undefined ? { sourceStoppedAt: args.sourceStoppedAt } : {}) } : null });
      const r = await current.call('DOMAIN_MIGRATE_FINISH3_PARAMS', { params: [], cookieIn, flags: 0, cancelled: args.cancelled }, FINISH_TIMEOUT_MS);
      const c = readCookie('finish', r.cookieOut);
      if (!c) throw new FerryError('operation_failed', 'the destination answered finish without a cookie; is it a ferryd?');
      return c.finish;
    },
    abortUnlessFinished: async (jobId, domainUuid) => {
      const c = await reconnect();
      const r = await c.call('DOMAIN_MIGRATE_FINISH3_PARAMS', { params: [], cookieIn: writeCookie('abort-check', { destJobId: jobId, domainUuid: domainUuid ?? '' }), flags: 0, cancelled: true }, 30_000);
      return readCookie('abort-answer', r.cookieOut)?.state ?? 'unknown';
    },
    connectionLost: () => current.isClosed,
    whenLost: () => current.whenClosed(),
    openTunnel: async (_destJobId, channel = 'migration') => {
      if (channel === 'nbd') throw new FerryError('argument_unsupported', 'copying storage through a tunnel is not supported to a destination reached over the libvirt protocol; use a ferry+tls:// destination URI or drop --tunnelled');
      if (!tunnel) throw new FerryError('operation_failed', 'the destination opened no migration stream');
      const t = tunnel;
      tunnel = undefined;
      return t;
    },
    probeBandwidth: async () => {
      throw new FerryError('argument_unsupported', 'the path to a destination reached over the libvirt protocol cannot be measured; give --bandwidth MiB/s for the forecast');
    },
    close: () => {
      tunnel?.destroy();
      current.close();
      if (current !== client) client.close();
    },
  };
  return dst;
}
