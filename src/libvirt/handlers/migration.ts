/**
 * Migration procedures, version 3 with typed parameters. A libvirt client
 * drives the five phases itself (managed: begin and perform and confirm on
 * the source, prepare and finish on the destination), or asks the source
 * for all of them at once (perform with a destination URI: peer-to-peer).
 * Each phase calls the same host operation the native API calls; the
 * cookies carry Ferry's phase messages between the two ferryds.
 */
import { Duplex } from 'node:stream';
import { FerryError } from '../../errors/index.js';
import { hasFlag } from '../../flags/index.js';
import type { Migrations } from '../../migration/host-migrations.js';
import { performArgs } from '../../migration/driver.js';
import { attachToQemu } from '../../migration/tunnel.js';
import { requireKnownCookie, type MigrationRequest, type PrepareResult } from '../../migration/phase-messages.js';
import type { CallContext, LibvirtConnection, ProcedureHandlers } from '../connection.js';
import { isCookieOf, readCookie, writeCookie } from '../cookies.js';
import { paramsFromTyped } from '../migration-params.js';
import type { TypedParam } from '../wire-types.js';
import { PROCEDURES } from '../procedures.js';
import { lookupKey, refOf } from './refs.js';

/** The request of a call: flags as given, parameters through the one parameter table's checks (done by the phase). */
function request(flags: number, params: readonly TypedParam[]): MigrationRequest {
  return { flags, params: paramsFromTyped(params) };
}

/** The incoming jobs each connection prepared, for a finish that comes without a cookie (its perform failed). */
const preparedBy = new WeakMap<LibvirtConnection, string[]>();

function remember(conn: LibvirtConnection, jobId: string): void {
  const list = preparedBy.get(conn) ?? [];
  list.push(jobId);
  preparedBy.set(conn, list.slice(-16));
}

/** The address a client reached this host on: where a source should send the stream (the client can reach it, so a peer likely can). */
function dataAddress(call: CallContext, hostName: string): string {
  return call.conn.localAddress?.replace(/^::ffff:/, '') ?? hostName;
}

/** Handlers of the migration procedures. */
export function migrationHandlers(m: Migrations, hostName: string): ProcedureHandlers {
  /** prepare on this host, after the phase's own checks; returns the cookie for the source. */
  const prepare = async (a: { params: TypedParam[]; cookieIn: Buffer; flags: number }, call: CallContext): Promise<{ prepared: PrepareResult; sourceJobId: string }> => {
    const begin = readCookie('begin', a.cookieIn);
    if (!begin) throw new FerryError('invalid_arg', "prepare needs the source's cookie from begin");
    requireKnownCookie(begin.cookie);
    const req = request(a.flags, a.params);
    const xml = req.params.destination_xml;
    if (typeof xml !== 'string' || xml === '') throw new FerryError('invalid_arg', "prepare needs the domain XML from begin (parameter 'destination_xml')");
    const prepared = await m.incoming.prepare({ xml, cookie: begin.cookie, flags: req.flags, params: req.params });
    // The connection that prepared the job controls it: if it goes before finish, the copy here is dropped.
    if (!call.conn.isOpen) void m.incoming.controllerGone(prepared.jobId);
    else call.conn.once('close', () => void m.incoming.controllerGone(prepared.jobId));
    remember(call.conn, prepared.jobId);
    return { prepared, sourceJobId: begin.cookie.jobId };
  };

  const v3: ProcedureHandlers = {
    DOMAIN_MIGRATE_BEGIN3_PARAMS: async (a, { conn }) => {
      const begin = await m.outgoing.begin(lookupKey(a.dom), request(a.flags, a.params), conn.closedSignal);
      return { cookieOut: writeCookie('begin', { cookie: begin.cookie }), xml: begin.xml };
    },

    DOMAIN_MIGRATE_PREPARE3_PARAMS: async (a, call) => {
      if (hasFlag(a.flags, 'TUNNELLED')) throw new FerryError('invalid_arg', 'a tunnelled migration is prepared with PREPARE_TUNNEL3_PARAMS');
      const { prepared, sourceJobId } = await prepare(a, call);
      const address = dataAddress(call, hostName);
      // libvirt's client insists on a URI even for an offline migration, which streams nothing: it gets this host's address.
      const uri = prepared.migrateUri === '' ? `tcp:${address}` : performArgs(sourceJobId, { flags: a.flags, params: paramsFromTyped(a.params) }, prepared, address).migrateUri;
      return { cookieOut: writeCookie('prepare', { sourceJobId, prepare: prepared, address }), uriOut: uri };
    },

    DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS: async (a, call) => {
      if (!hasFlag(a.flags, 'TUNNELLED')) throw new FerryError('invalid_arg', 'PREPARE_TUNNEL3_PARAMS needs the TUNNELLED flag');
      const { prepared, sourceJobId } = await prepare(a, call);
      // The stream's data goes into the socket the destination QEMU listens on; it may follow this reply at once.
      const stream = new IncomingStream();
      call.conn.acceptStream(call.serial, { data: (c, resume) => stream.feed(c, resume), end: () => stream.push(null), abort: (why) => stream.destroy(why) });
      stream.once('close', () => {
        const clean = stream.readableEnded && stream.writableFinished;
        call.conn.finishStream(call.serial, PROCEDURES.DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS.number, clean ? undefined : new FerryError('operation_failed', 'the migration stream to the destination QEMU broke'));
      });
      attachToQemu(stream, m.incoming.tunnelPathOf(prepared.jobId, 'migration'));
      return { cookieOut: writeCookie('prepare', { sourceJobId, prepare: prepared, address: dataAddress(call, hostName) }) };
    },

    DOMAIN_MIGRATE_PERFORM3_PARAMS: async (a) => {
      const key = lookupKey(a.dom);
      const req = request(a.flags, a.params);
      if (a.dconnuri !== null || hasFlag(a.flags, 'PEER2PEER')) {
        // Peer-to-peer: this daemon runs all five phases with the destination the URI names, in its protocol.
        if (!hasFlag(a.flags, 'PEER2PEER')) throw new FerryError('invalid_arg', 'a destination connection URI is given only with the PEER2PEER flag');
        if (a.dconnuri === null) throw new FerryError('invalid_arg', 'a peer-to-peer migration needs the destination connection URI');
        await m.migratePeerToPeer(key, a.dconnuri, req);
        return { cookieOut: Buffer.alloc(0) };
      }
      const prep = readCookie('prepare', a.cookieIn);
      if (!prep) throw new FerryError('invalid_arg', "perform needs the destination's cookie from prepare");
      if (m.jobControl.currentJobId(key) !== prep.sourceJobId) throw new FerryError('operation_invalid', `the cookie names migration job ${prep.sourceJobId}, which is not this domain's running job`);
      // An offline migration has nothing to stream.
      const perform = prep.prepare.migrateUri === '' ? null : await m.outgoing.perform(performArgs(prep.sourceJobId, req, prep.prepare, prep.address));
      return { cookieOut: writeCookie('perform', { destJobId: prep.prepare.jobId, perform }) };
    },

    DOMAIN_MIGRATE_FINISH3_PARAMS: async (a, { conn }) => {
      if (a.cancelled && a.cookieIn.length > 0 && isCookieOf('abort-check', a.cookieIn)) {
        // Ferry's own question from a source whose earlier finish went unanswered.
        const q = readCookie('abort-check', a.cookieIn)!;
        const state = await m.incoming.abort(q.destJobId, 'the source asked (outcome check)', false, q.domainUuid);
        return { dom: { name: '', uuid: Buffer.alloc(16), id: -1 }, cookieOut: writeCookie('abort-answer', { state }) };
      }
      const perf = readCookie('perform', a.cookieIn);
      const jobId = perf?.destJobId ?? preparedBy.get(conn)?.at(-1);
      if (!jobId) throw new FerryError('operation_invalid', 'no incoming migration was prepared on this connection');
      const fin = await m.incoming.finish({
        jobId,
        cancelled: a.cancelled,
        ...(perf?.perform ? { sourceStats: perf.perform.stats } : {}),
        ...(perf?.perform?.sourceStoppedAt !== undefined ? { sourceStoppedAt: perf.perform.sourceStoppedAt } : {}),
      });
      // libvirt's clients expect no domain from a cancelled finish.
      if (a.cancelled) throw new FerryError('operation_aborted', 'the migration was cancelled; the incoming domain was removed');
      const d = m.incoming.domainOf(jobId);
      return { dom: refOf(d), cookieOut: writeCookie('finish', { finish: fin }) };
    },

    DOMAIN_MIGRATE_CONFIRM3_PARAMS: async (a) => {
      const key = lookupKey(a.dom);
      const jobId = m.jobControl.currentJobId(key);
      if (!jobId) throw new FerryError('operation_invalid', 'this domain has no migration job to confirm');
      const fin = a.cancelled ? null : readCookie('finish', a.cookieIn);
      await m.outgoing.confirm({ jobId, cancelled: a.cancelled, ...(fin?.finish.downtimeMs !== undefined ? { downtimeMs: fin.finish.downtimeMs } : {}) });
      return {};
    },
  };
  // The same phases for clients of virDomainMigrate / virDomainMigrateToURI2 (v3 without typed parameters):
  // their fixed fields become the typed parameters they stand for.
  const h = v3 as Required<Pick<ProcedureHandlers, 'DOMAIN_MIGRATE_BEGIN3_PARAMS' | 'DOMAIN_MIGRATE_PREPARE3_PARAMS' | 'DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS' | 'DOMAIN_MIGRATE_PERFORM3_PARAMS' | 'DOMAIN_MIGRATE_FINISH3_PARAMS' | 'DOMAIN_MIGRATE_CONFIRM3_PARAMS'>>;
  return {
    ...v3,
    DOMAIN_MIGRATE_BEGIN3: (a, call) => h.DOMAIN_MIGRATE_BEGIN3_PARAMS({ dom: a.dom, params: legacyParams({ destination_xml: a.xmlin, destination_name: a.dname, bandwidth: a.resource }), flags: a.flags }, call),
    DOMAIN_MIGRATE_PREPARE3: (a, call) => h.DOMAIN_MIGRATE_PREPARE3_PARAMS({ cookieIn: a.cookieIn, params: legacyParams({ destination_xml: a.domXml, destination_name: a.dname, bandwidth: a.resource, migrate_uri: a.uriIn }), flags: a.flags }, call),
    DOMAIN_MIGRATE_PREPARE_TUNNEL3: (a, call) => h.DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS({ cookieIn: a.cookieIn, params: legacyParams({ destination_xml: a.domXml, destination_name: a.dname, bandwidth: a.resource }), flags: a.flags }, call),
    DOMAIN_MIGRATE_PERFORM3: (a, call) => h.DOMAIN_MIGRATE_PERFORM3_PARAMS({ dom: a.dom, dconnuri: a.dconnuri, cookieIn: a.cookieIn, params: legacyParams({ destination_xml: a.xmlin, destination_name: a.dname, bandwidth: a.resource, migrate_uri: a.uri }), flags: a.flags }, call),
    DOMAIN_MIGRATE_FINISH3: (a, call) => h.DOMAIN_MIGRATE_FINISH3_PARAMS({ cookieIn: a.cookieIn, params: legacyParams({ destination_name: a.dname, migrate_uri: a.uri }), flags: a.flags, cancelled: a.cancelled }, call),
    DOMAIN_MIGRATE_CONFIRM3: (a, call) => h.DOMAIN_MIGRATE_CONFIRM3_PARAMS({ dom: a.dom, params: [], cookieIn: a.cookieIn, flags: a.flags, cancelled: a.cancelled }, call),
  };
}

/** The fixed fields of the v3 procedures without typed parameters, as the typed parameters they stand for (absent, empty and 0 mean unset). */
function legacyParams(fields: { destination_xml?: string | null; destination_name?: string | null; migrate_uri?: string | null; bandwidth?: number }): TypedParam[] {
  const out: TypedParam[] = [];
  for (const key of ['destination_xml', 'destination_name', 'migrate_uri'] as const) {
    const v = fields[key];
    if (typeof v === 'string' && v !== '') out.push({ field: key, value: { type: 'string', value: v } });
  }
  if (fields.bandwidth) out.push({ field: 'bandwidth', value: { type: 'ullong', value: fields.bandwidth } });
  return out;
}

/**
 * The receiving side of a tunnelled migration's stream, as a Node stream
 * the relay to QEMU reads. When QEMU cannot take more, the client's
 * connection stops being read until it can. What QEMU writes back (nothing,
 * on a migration stream) is dropped.
 */
class IncomingStream extends Duplex {
  private resumeClient: (() => void) | undefined;

  constructor() {
    super({ allowHalfOpen: true });
  }

  /** Takes a chunk from the client; false asks the connection to pause until `resume`. */
  feed(chunk: Buffer, resume: () => void): boolean {
    const more = this.push(chunk);
    if (!more) this.resumeClient = resume;
    return more;
  }

  override _read(): void {
    const r = this.resumeClient;
    this.resumeClient = undefined;
    r?.();
  }

  override _write(_chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    cb();
  }
}
