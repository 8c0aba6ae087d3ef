/**
 * The procedures of libvirt's `remote` program that ferryd serves (and, for
 * peer-to-peer migration to another ferryd, calls): each with libvirt's
 * procedure number and the shapes of its arguments and reply. Encoders and
 * decoders follow from these shapes (see `xdr.ts`); the handlers that map
 * each one onto the host core live in `handlers/`. A procedure not listed
 * here is answered "not supported by the connection driver".
 */
import { array, bool, empty, fixedArray, int, struct, uhyper, uint, type Xdr, type XdrValue } from './xdr.js';
import { cookie, domainRef, DOMAIN_LIST_MAX, JOB_STATS_MAX, MIGRATE_PARAMS_MAX, nonnullString, optDomainRef, optString, typedParams, uuid } from './wire-types.js';

/** libvirt's `remote` program number and version. */
export const REMOTE_PROGRAM = 0x20008086;
export const REMOTE_VERSION = 1;

/** One procedure: its number, what it takes and what it answers. */
export interface Procedure<A = unknown, R = unknown> {
  readonly number: number;
  readonly args: Xdr<A>;
  readonly ret: Xdr<R>;
}

function proc<A, R>(number: number, args: Xdr<A>, ret: Xdr<R>): Procedure<A, R> {
  return { number, args, ret };
}

const dom = struct({ dom: domainRef });
const domFlags = struct({ dom: domainRef, flags: uint });
const domRet = struct({ dom: domainRef });
const jobParams = typedParams(JOB_STATS_MAX);
const migrateParams = typedParams(MIGRATE_PARAMS_MAX);

/** The procedures, by libvirt's name without the `REMOTE_PROC_` prefix. */
export const PROCEDURES = {
  // Connection
  CONNECT_OPEN: proc(1, struct({ name: optString, flags: uint }), empty),
  CONNECT_CLOSE: proc(2, empty, empty),
  CONNECT_GET_TYPE: proc(3, empty, struct({ type: nonnullString })),
  CONNECT_GET_VERSION: proc(4, empty, struct({ hvVer: uhyper })),
  CONNECT_GET_MAX_VCPUS: proc(5, struct({ type: optString }), struct({ maxVcpus: int })),
  NODE_GET_INFO: proc(6, empty, struct({ model: fixedArray(int, 32), memory: uhyper, cpus: int, mhz: int, nodes: int, sockets: int, cores: int, threads: int })),
  CONNECT_GET_CAPABILITIES: proc(7, empty, struct({ capabilities: nonnullString })),
  CONNECT_GET_HOSTNAME: proc(59, empty, struct({ hostname: nonnullString })),
  CONNECT_SUPPORTS_FEATURE: proc(60, struct({ feature: int }), struct({ supported: int })),
  AUTH_LIST: proc(66, empty, struct({ types: array(int, 20) })),
  CONNECT_GET_URI: proc(110, empty, struct({ uri: nonnullString })),
  CONNECT_IS_SECURE: proc(149, empty, struct({ secure: int })),
  CONNECT_GET_LIB_VERSION: proc(157, empty, struct({ libVer: uhyper })),
  CONNECT_GET_SYSINFO: proc(203, struct({ flags: uint }), struct({ sysinfo: nonnullString })),
  NODE_GET_FREE_MEMORY: proc(102, empty, struct({ freeMem: uhyper })),
  CONNECT_REGISTER_CLOSE_CALLBACK: proc(360, empty, empty),
  CONNECT_UNREGISTER_CLOSE_CALLBACK: proc(361, empty, empty),

  // Domains
  CONNECT_NUM_OF_DOMAINS: proc(51, empty, struct({ num: int })),
  CONNECT_LIST_DOMAINS: proc(37, struct({ maxids: int }), struct({ ids: array(int, DOMAIN_LIST_MAX) })),
  CONNECT_NUM_OF_DEFINED_DOMAINS: proc(25, empty, struct({ num: int })),
  CONNECT_LIST_DEFINED_DOMAINS: proc(21, struct({ maxnames: int }), struct({ names: array(nonnullString, DOMAIN_LIST_MAX) })),
  CONNECT_LIST_ALL_DOMAINS: proc(273, struct({ needResults: int, flags: uint }), struct({ domains: array(domainRef, DOMAIN_LIST_MAX), ret: uint })),
  DOMAIN_LOOKUP_BY_ID: proc(22, struct({ id: int }), domRet),
  DOMAIN_LOOKUP_BY_NAME: proc(23, struct({ name: nonnullString }), domRet),
  DOMAIN_LOOKUP_BY_UUID: proc(24, struct({ uuid }), domRet),
  DOMAIN_GET_INFO: proc(16, dom, struct({ state: uint, maxMem: uhyper, memory: uhyper, nrVirtCpu: uint, cpuTime: uhyper })),
  DOMAIN_GET_STATE: proc(212, domFlags, struct({ state: int, reason: int })),
  DOMAIN_GET_CONTROL_INFO: proc(229, domFlags, struct({ state: uint, details: uint, stateTime: uhyper })),
  DOMAIN_GET_XML_DESC: proc(14, domFlags, struct({ xml: nonnullString })),
  DOMAIN_GET_OS_TYPE: proc(19, dom, struct({ type: nonnullString })),
  DOMAIN_GET_MAX_MEMORY: proc(17, dom, struct({ memory: uhyper })),
  DOMAIN_GET_VCPUS_FLAGS: proc(200, domFlags, struct({ num: int })),
  DOMAIN_IS_ACTIVE: proc(150, dom, struct({ active: int })),
  DOMAIN_IS_PERSISTENT: proc(151, dom, struct({ persistent: int })),
  DOMAIN_IS_UPDATED: proc(202, dom, struct({ updated: int })),
  DOMAIN_HAS_MANAGED_SAVE_IMAGE: proc(183, domFlags, struct({ result: int })),
  DOMAIN_GET_AUTOSTART: proc(15, dom, struct({ autostart: int })),
  DOMAIN_SET_AUTOSTART: proc(29, struct({ dom: domainRef, autostart: int }), empty),
  DOMAIN_DEFINE_XML: proc(11, struct({ xml: nonnullString }), domRet),
  DOMAIN_DEFINE_XML_FLAGS: proc(350, struct({ xml: nonnullString, flags: uint }), domRet),
  DOMAIN_UNDEFINE: proc(35, dom, empty),
  DOMAIN_UNDEFINE_FLAGS: proc(231, domFlags, empty),
  DOMAIN_CREATE: proc(9, dom, empty),
  DOMAIN_CREATE_WITH_FLAGS: proc(196, domFlags, domRet),
  DOMAIN_CREATE_XML: proc(10, struct({ xmlDesc: nonnullString, flags: uint }), domRet),
  DOMAIN_DESTROY: proc(12, dom, empty),
  DOMAIN_DESTROY_FLAGS: proc(234, domFlags, empty),
  DOMAIN_SUSPEND: proc(34, dom, empty),
  DOMAIN_RESUME: proc(28, dom, empty),
  DOMAIN_SHUTDOWN: proc(33, dom, empty),
  DOMAIN_SHUTDOWN_FLAGS: proc(258, domFlags, empty),

  // Jobs
  DOMAIN_GET_JOB_INFO: proc(
    163,
    dom,
    struct({
      type: int,
      timeElapsed: uhyper,
      timeRemaining: uhyper,
      dataTotal: uhyper,
      dataProcessed: uhyper,
      dataRemaining: uhyper,
      memTotal: uhyper,
      memProcessed: uhyper,
      memRemaining: uhyper,
      fileTotal: uhyper,
      fileProcessed: uhyper,
      fileRemaining: uhyper,
    }),
  ),
  DOMAIN_GET_JOB_STATS: proc(298, domFlags, struct({ type: int, params: jobParams })),
  DOMAIN_ABORT_JOB: proc(164, dom, empty),
  DOMAIN_ABORT_JOB_FLAGS: proc(442, domFlags, empty),
  DOMAIN_MIGRATE_SET_MAX_DOWNTIME: proc(166, struct({ dom: domainRef, downtime: uhyper, flags: uint }), empty),
  DOMAIN_MIGRATE_GET_MAX_DOWNTIME: proc(387, domFlags, struct({ downtime: uhyper })),
  DOMAIN_MIGRATE_SET_MAX_SPEED: proc(207, struct({ dom: domainRef, bandwidth: uhyper, flags: uint }), empty),
  DOMAIN_MIGRATE_GET_MAX_SPEED: proc(242, domFlags, struct({ bandwidth: uhyper })),
  DOMAIN_MIGRATE_START_POST_COPY: proc(364, domFlags, empty),

  // Events
  CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY: proc(316, struct({ eventID: int, dom: optDomainRef }), struct({ callbackID: int })),
  CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY: proc(317, struct({ callbackID: int }), empty),

  // Migration, version 3 with typed parameters
  DOMAIN_MIGRATE_BEGIN3_PARAMS: proc(302, struct({ dom: domainRef, params: migrateParams, flags: uint }), struct({ cookieOut: cookie, xml: nonnullString })),
  DOMAIN_MIGRATE_PREPARE3_PARAMS: proc(303, struct({ params: migrateParams, cookieIn: cookie, flags: uint }), struct({ cookieOut: cookie, uriOut: optString })),
  DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS: proc(304, struct({ params: migrateParams, cookieIn: cookie, flags: uint }), struct({ cookieOut: cookie })),
  DOMAIN_MIGRATE_PERFORM3_PARAMS: proc(305, struct({ dom: domainRef, dconnuri: optString, params: migrateParams, cookieIn: cookie, flags: uint }), struct({ cookieOut: cookie })),
  DOMAIN_MIGRATE_FINISH3_PARAMS: proc(306, struct({ params: migrateParams, cookieIn: cookie, flags: uint, cancelled: bool }), struct({ dom: domainRef, cookieOut: cookie })),
  DOMAIN_MIGRATE_CONFIRM3_PARAMS: proc(307, struct({ dom: domainRef, params: migrateParams, cookieIn: cookie, flags: uint, cancelled: bool }), empty),
} as const;

/** A procedure's name. */
export type ProcedureName = keyof typeof PROCEDURES;
/** The decoded arguments of procedure `N`. */
export type ArgsOf<N extends ProcedureName> = XdrValue<(typeof PROCEDURES)[N]['args']>;
/** The reply of procedure `N`. */
export type RetOf<N extends ProcedureName> = XdrValue<(typeof PROCEDURES)[N]['ret']>;

/** Procedure names by number, for dispatch. */
export const PROCEDURE_BY_NUMBER: ReadonlyMap<number, ProcedureName> = new Map(Object.entries(PROCEDURES).map(([name, p]) => [p.number, name as ProcedureName]));

/** Messages the server sends without a call (events), with their procedure numbers and bodies. */
export const EVENT_MESSAGES = {
  DOMAIN_EVENT_CALLBACK_LIFECYCLE: proc(318, struct({ callbackID: int, msg: struct({ dom: domainRef, event: int, detail: int }) }), empty),
  DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION: proc(359, struct({ callbackID: int, dom: domainRef, iteration: int }), empty),
  DOMAIN_EVENT_CALLBACK_JOB_COMPLETED: proc(363, struct({ callbackID: int, dom: domainRef, params: jobParams }), empty),
} as const;

/** libvirt's event ids (`virDomainEventID`) that ferryd can deliver. */
export const EVENT_IDS = { lifecycle: 0, migrationIteration: 20, jobCompleted: 21 } as const;

/** The `keepalive` program: ping and pong, no bodies. */
export const KEEPALIVE_PROGRAM = 0x6b656570;
export const KEEPALIVE_VERSION = 1;
export const KEEPALIVE_PING = 1;
export const KEEPALIVE_PONG = 2;

