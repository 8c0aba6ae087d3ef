/**
 * API methods of migration: the five phases (called by a managing client
 * or by a peer daemon), peer-to-peer `domain.migrate`, and job control.
 * A managing connection that closes mid-job rolls the job back on that
 * side, in the way that cannot leave two running copies.
 */
import { FerryError } from '../errors/index.js';
import type { Migrations } from '../migration/host-migrations.js';
import type { MigrationApiMethod } from './protocol.js';
import type { Handler } from './server.js';
import { attachToQemu } from '../migration/tunnel.js';
import { requireKnownCookie, type NbdTarget } from '../migration/phase-messages.js';

function requireString(p: Record<string, unknown>, key: string): string {
  const v = p[key];
  if (typeof v !== 'string' || v === '') throw new FerryError('invalid_arg', `parameter '${key}' must be a non-empty string`);
  return v;
}

function requireFlags(p: Record<string, unknown>): number {
  const v = p.flags ?? 0;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new FerryError('invalid_arg', "parameter 'flags' must be a non-negative integer");
  return v;
}

function requireParams(p: Record<string, unknown>): Record<string, unknown> {
  const v = p.params ?? {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FerryError('invalid_arg', "parameter 'params' must be an object");
  return v as Record<string, unknown>;
}

/** Handlers of the migration methods. */
export function migrationHandlers(m: Migrations, log: (msg: string) => void): Record<MigrationApiMethod, Handler> {
  return {
    'migration.begin': async (p, conn) => {
      const destUri = typeof p.destUri === 'string' ? p.destUri : undefined;
      // The connection that began the job owns it from the start, also while it waits in the queue.
      return m.outgoing.begin(requireString(p, 'domain'), { flags: requireFlags(p), params: requireParams(p), ...(p.policy !== undefined ? { policy: p.policy } : {}), ...(destUri ? { destUri } : {}) }, conn.closedSignal);
    },
    'migration.perform': async (p) => {
      const nbd = p.nbd === undefined ? undefined : requireNbdTarget(p.nbd);
      return m.outgoing.perform({ jobId: requireString(p, 'jobId'), migrateUri: requireString(p, 'migrateUri'), ...(nbd ? { nbd } : {}) });
    },
    'migration.confirm': async (p) => {
      const cancelled = p.cancelled === true;
      const outcomeUnknown = typeof p.outcomeUnknown === 'string' && p.outcomeUnknown !== '' ? p.outcomeUnknown.slice(0, 2000) : undefined;
      await m.outgoing.confirm({ jobId: requireString(p, 'jobId'), cancelled, ...(typeof p.downtimeMs === 'number' ? { downtimeMs: p.downtimeMs } : {}), ...(cancelled && outcomeUnknown ? { outcomeUnknown } : {}) });
      return { confirmed: true };
    },
    'migration.cancel': async (p) => {
      const reason = typeof p.reason === 'string' && p.reason !== '' ? p.reason.slice(0, 2000) : 'the managing client cancelled the job';
      await m.jobControl.cancel(requireString(p, 'jobId'), reason);
      return { cancelled: true };
    },
    'migration.prepare': async (p, conn) => {
      const cookie = p.cookie as Parameters<typeof m.incoming.prepare>[0]['cookie'];
      // A cookie of another format is refused as such, not as malformed.
      if (cookie && typeof cookie === 'object') requireKnownCookie(cookie);
      if (!cookie || typeof cookie !== 'object' || typeof cookie.source?.hostUuid !== 'string' || typeof cookie.domain?.uuid !== 'string') {
        throw new FerryError('invalid_arg', "parameter 'cookie' is missing or malformed");
      }
      const r = await m.incoming.prepare({ xml: requireString(p, 'xml'), cookie, flags: requireFlags(p), params: requireParams(p) });
      // A source that gave up while this prepare waited (for a slot, say) is already gone.
      if (!conn.isOpen) void m.incoming.controllerGone(r.jobId);
      else conn.once('close', () => void m.incoming.controllerGone(r.jobId));
      return r;
    },
    'migration.finish': async (p) => {
      return m.incoming.finish({
        jobId: requireString(p, 'jobId'),
        cancelled: p.cancelled === true,
        ...(p.sourceStats && typeof p.sourceStats === 'object' ? { sourceStats: p.sourceStats as never } : {}),
        ...(typeof p.sourceStoppedAt === 'number' ? { sourceStoppedAt: p.sourceStoppedAt } : {}),
      });
    },
    'migration.tunnelAttach': async (p, conn) => {
      const channel = p.channel === undefined || p.channel === 'migration' ? 'migration' : p.channel === 'nbd' ? 'nbd' : undefined;
      if (!channel) throw new FerryError('invalid_arg', "parameter 'channel' must be 'migration' or 'nbd'");
      const path = m.incoming.tunnelPathOf(requireString(p, 'jobId'), channel);
      // After this reply the connection carries the migration stream only.
      setImmediate(() => {
        let raw;
        try {
          raw = conn.takeOverSocket();
        } catch (err) {
          // Nothing can use the connection now (it is neither frames nor a clean stream): hang up, so the source's relay fails too.
          log(`migration tunnel of incoming job ${String(p.jobId)} (${channel}), connection ${conn.id} (${conn.peer}): ${(err as Error).message}; closing the connection`);
          conn.close();
          return;
        }
        attachToQemu(raw, path, log);
      });
      return { attached: true };
    },
    'migration.abortIncoming': async (p) => {
      // A source that lost its job (it restarted) knows only the domain: then the job id may be empty.
      const domainUuid = typeof p.domainUuid === 'string' && p.domainUuid !== '' ? p.domainUuid : undefined;
      const jobId = domainUuid !== undefined && (p.jobId === '' || p.jobId === undefined) ? '' : requireString(p, 'jobId');
      return { state: await m.incoming.abort(jobId, 'the source asked (outcome check)', false, domainUuid) };
    },
    'migration.probeBandwidth': async () => ({ port: await m.incoming.openBandwidthProbe() }),
    'domain.migrateForecast': async (p) => {
      const destUri = typeof p.destUri === 'string' && p.destUri !== '' ? p.destUri : undefined;
      return m.forecast(requireString(p, 'domain'), destUri, { flags: requireFlags(p), params: requireParams(p) });
    },
    'domain.migrate': async (p) => {
      const out = await m.migratePeerToPeer(p.domain, p.destUri, { flags: requireFlags(p), params: requireParams(p), ...(p.policy !== undefined ? { policy: p.policy } : {}) });
      const stats = out.perform ? { ...out.perform.stats, ...(out.finish.downtimeMs !== undefined ? { downtime: out.finish.downtimeMs } : {}) } : null;
      return { domain: out.finish.domainName, state: out.finish.state, reason: out.finish.reason, persistent: out.finish.persistent, stats, warning: out.confirmWarning ?? null };
    },
    'domain.jobInfo': async (p) => m.jobControl.jobInfo(requireString(p, 'domain'), p.completed === true, (uuid) => m.incoming.runningJobInfo(uuid)),
    'domain.migrateStartPostcopy': async (p) => {
      await m.jobControl.startPostcopy(requireString(p, 'domain'));
      return { ok: true };
    },
    'domain.jobAbort': async (p) => {
      if (p.postcopy !== undefined && typeof p.postcopy !== 'boolean') throw new FerryError('invalid_arg', 'postcopy must be true or false');
      await m.jobControl.abort(requireString(p, 'domain'), { postcopy: p.postcopy === true });
      return { aborted: true };
    },
    'domain.migrateSetMaxDowntime': async (p) => {
      await m.jobControl.setMaxDowntime(requireString(p, 'domain'), p.downtime);
      return { ok: true };
    },
    'domain.migrateGetMaxDowntime': async (p) => ({ downtime: await m.jobControl.getMaxDowntime(requireString(p, 'domain')) }),
    'domain.migrateSetSpeed': async (p) => {
      await m.jobControl.setSpeed(requireString(p, 'domain'), p.bandwidth);
      return { ok: true };
    },
    'domain.migrateGetSpeed': async (p) => ({ bandwidth: m.jobControl.getSpeed(requireString(p, 'domain')) }),
  };
}

/** A perform request's NBD target, checked for shape (in managed mode it comes from the client). */
function requireNbdTarget(raw: unknown): NbdTarget {
  const bad = () => new FerryError('invalid_arg', "parameter 'nbd' is malformed: expected {transport, host?, port?, path?, exports, tls}");
  if (!raw || typeof raw !== 'object') throw bad();
  const n = raw as Record<string, unknown>;
  if (n.transport !== 'tcp' && n.transport !== 'unix' && n.transport !== 'tunnel') throw bad();
  if (n.host !== undefined && typeof n.host !== 'string') throw bad();
  if (n.port !== undefined && (typeof n.port !== 'number' || !Number.isInteger(n.port) || n.port < 1 || n.port > 65535)) throw bad();
  if (n.path !== undefined && (typeof n.path !== 'string' || !n.path.startsWith('/'))) throw bad();
  if (!n.exports || typeof n.exports !== 'object' || Object.values(n.exports).some((v) => typeof v !== 'string')) throw bad();
  return { transport: n.transport, ...(n.host !== undefined ? { host: n.host } : {}), ...(n.port !== undefined ? { port: n.port as number } : {}), ...(n.path !== undefined ? { path: n.path as string } : {}), exports: n.exports as Record<string, string>, tls: n.tls === true };
}
