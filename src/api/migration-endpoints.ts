/**
 * Migration endpoints over the native API: the driver's view of a remote
 * source (managed mode, from the CLI) and of a remote destination (both
 * modes). The destination side reconnects when it must learn a lost outcome.
 */
import type { DestinationEndpoint, SourceEndpoint } from '../migration/driver.js';
import type { PeerDestination } from '../migration/host-migrations.js';
import { ApiClient, type ConnectOptions } from './client.js';
import { requireProtocolVersion } from './protocol.js';
import type { ConnectionTarget } from './uri.js';
import { sendProbe } from '../migration/bandwidth-probe.js';

/** Phase calls can take as long as the migration: no call timeout on perform and finish. */
const PHASE_TIMEOUT_MS = 120_000;

/** The host name a data stream should use to reach the daemon at `target`. */
export function dataAddressOf(target: ConnectionTarget): string {
  return target.transport === 'unix' ? '127.0.0.1' : target.host;
}

/** A remote daemon as a migration source. */
export function remoteSource(client: ApiClient): SourceEndpoint {
  return {
    // begin and prepare may wait for a migration slot (the host's concurrency limit): no timeout either.
    begin: (domain, req) => client.call('migration.begin', { domain, flags: req.flags, params: req.params, ...(req.policy !== undefined ? { policy: req.policy } : {}), ...(req.destUri ? { destUri: req.destUri } : {}) }, { timeoutMs: 0 }),
    perform: (args) => client.call('migration.perform', { ...args }),
    confirm: async (args) => {
      await client.call('migration.confirm', { ...args }, { timeoutMs: PHASE_TIMEOUT_MS });
    },
    cancel: async (jobId, reason) => {
      await client.call('migration.cancel', { jobId, reason }, { timeoutMs: 30_000 });
    },
  };
}

/** A remote daemon as a migration destination. */
export function remoteDestination(client: ApiClient, connectOpts: ConnectOptions = {}): PeerDestination {
  let current = client;
  const reconnect = async (): Promise<ApiClient> => {
    try {
      await current.call('connect.hello', {}, { timeoutMs: 5000 });
      return current;
    } catch {
      current = await ApiClient.connect(client.target, { ...connectOpts, timeoutMs: 5000 });
      return current;
    }
  };
  const dst: DestinationEndpoint & PeerDestination = {
    addressForData: dataAddressOf(client.target),
    identity: async () => {
      const h = await current.call('connect.hello', {}, { timeoutMs: 10_000 });
      requireProtocolVersion(h, `the destination daemon at ${client.target.uri}`);
      return { hostName: h.hostName, hostUuid: h.hostUuid };
    },
    prepare: (args) => current.call('migration.prepare', { ...args }, { timeoutMs: 0 }),
    finish: (args) => current.call('migration.finish', { ...args }, { timeoutMs: PHASE_TIMEOUT_MS }),
    abortUnlessFinished: async (jobId, domainUuid) => {
      const c = await reconnect();
      const r = await c.call('migration.abortIncoming', { jobId, domainUuid }, { timeoutMs: 30_000 });
      return r.state;
    },
    connectionLost: () => current.isClosed,
    whenLost: () => current.whenClosed(),
    openTunnel: async (destJobId, channel = 'migration') => {
      // A connection of its own, authenticated like the control one, that then carries only the stream.
      const t = await ApiClient.connect(client.target, { ...connectOpts, timeoutMs: 10_000 });
      try {
        await t.callRaw('migration.tunnelAttach', { jobId: destJobId, channel }, { timeoutMs: 30_000, handover: true });
      } catch (err) {
        t.close();
        throw err;
      }
      return t.detachSocket();
    },
    probeBandwidth: async () => {
      const { port } = await current.call('migration.probeBandwidth', {}, { timeoutMs: 10_000 });
      return sendProbe(dataAddressOf(client.target), port);
    },
    close: () => {
      current.close();
      if (current !== client) client.close();
    },
  };
  return dst;
}
