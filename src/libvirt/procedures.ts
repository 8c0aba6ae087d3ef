/**
 * The procedures of libvirt's `remote` program that ferryd serves (and, for
 * peer-to-peer migration to another ferryd, calls): each with libvirt's
 * procedure number and the shapes of its arguments and reply. Encoders and
 * decoders follow from these shapes (see `xdr.ts`); the handlers that map
 * each one onto the host core live in `handlers/`. A procedure not listed
 * here is answered "not supported by the connection driver".
 */
import { array, bool, empty, fixedArray, int, struct, uhyper, uint, type Xdr, type XdrValue } from './xdr.js';
import { MessageStatus, MessageType, type RpcHeader } from './rpc.js';
import { cookie, domainRef, DOMAIN_LIST_MAX, DOMAIN_STATS_MAX, JOB_STATS_MAX, MIGRATE_PARAMS_MAX, nonnullString, optDomainRef, optString, typedParams, uuid } from './wire-types.js';

/** libvirt's `remote` program number and version. */
export const REMOTE_PROGRAM = 0x20008086;
export const REMOTE_VERSION = 1;

/** One procedure: its number, what it takes and what it answers. */
export interface Procedure<A = unknown, R = unknown> {
  readonly number: number;
  readonly args: Xdr<A>;
  readonly ret: Xdr<R>;
  /** One line for docs/libvirt-procedures.md: what it does on ferryd, which host operation it maps to, which flags it refuses or ignores. */
  readonly doc: string;
  /** It changes a domain or a job: a read-only connection may not call it. */
  readonly changes: boolean;
}

function proc<A, R>(number: number, args: Xdr<A>, ret: Xdr<R>, doc: string): Procedure<A, R> {
  return { number, args, ret, doc, changes: false };
}

/** Marks a procedure that changes something: refused on a read-only connection (`virsh -r`). */
function changes<A, R>(p: Procedure<A, R>): Procedure<A, R> {
  return { ...p, changes: true };
}

const dom = struct({ dom: domainRef });
const domFlags = struct({ dom: domainRef, flags: uint });
const domRet = struct({ dom: domainRef });
const jobParams = typedParams(JOB_STATS_MAX);
/** libvirt's REMOTE_NODE_MAX_CELLS and REMOTE_NODE_MEMORY_STATS_MAX. */
const NODE_MAX_CELLS = 1024;
const NODE_MEMORY_STATS_MAX = 16;
const migrateParams = typedParams(MIGRATE_PARAMS_MAX);

/** The procedures, by libvirt's name without the `REMOTE_PROC_` prefix. */
export const PROCEDURES = {
  // Connection
  CONNECT_OPEN: proc(1, struct({ name: optString, flags: uint }), empty, 'Opens the connection: `qemu:///system`, `qemu:///session` and `qemu:///` (read as `qemu:///system`), a `?query` dropped; any other URI is refused with VIR_ERR_NO_CONNECT. With VIR_CONNECT_RO (`virsh -r`) the connection is read-only: a procedure that changes a domain or a job is then refused with VIR_ERR_OPERATION_DENIED. Every procedure but AUTH_LIST, CONNECT_SUPPORTS_FEATURE and this one needs it first'),
  CONNECT_CLOSE: proc(2, empty, empty, 'Closes the connection: later calls need CONNECT_OPEN again'),
  CONNECT_GET_TYPE: proc(3, empty, struct({ type: nonnullString }), '`virsh version`: the hypervisor type, always `QEMU`'),
  CONNECT_GET_VERSION: proc(4, empty, struct({ hvVer: uhyper }), '`virsh version`: the version of the QEMU ferryd runs guests with, as major × 1000000 + minor × 1000 + micro'),
  CONNECT_GET_MAX_VCPUS: proc(5, struct({ type: optString }), struct({ maxVcpus: int }), '`virsh maxvcpus`: 255, whatever type is asked'),
  NODE_GET_INFO: proc(6, empty, struct({ model: fixedArray(int, 32), memory: uhyper, cpus: int, mhz: int, nodes: int, sockets: int, cores: int, threads: int }), '`virsh nodeinfo`: this machine\'s architecture, memory (KiB, /proc/meminfo), CPU count, first CPU\'s MHz and topology (/proc/cpuinfo: sockets per NUMA cell, cores per socket, threads per core; NUMA cells from /sys/devices/system/node); a topology that does not multiply out to the CPU count is reported as libvirt does, one cell and socket of single-thread cores'),
  CONNECT_GET_CAPABILITIES: proc(7, empty, struct({ capabilities: nonnullString }), '`virsh capabilities`: a short document: host UUID, x86_64, the NUMA cells with their memory (what `virsh freecell --all` walks), live migration over tcp, rdma and unix transports, hvm x86_64 guests of domain type qemu or kvm'),
  CONNECT_GET_HOSTNAME: proc(59, empty, struct({ hostname: nonnullString }), '`virsh hostname`: the host name of ferryd\'s host identity'),
  CONNECT_SUPPORTS_FEATURE: proc(60, struct({ feature: int }), struct({ supported: int }), 'Whether ferryd has a `virDrvFeature` (the feature table below); asking about keepalive (10) also makes ferryd ping this client from then on. Allowed before CONNECT_OPEN'),
  AUTH_LIST: proc(66, empty, struct({ types: array(int, 20) }), 'Authentication types: only none (0), no SASL or polkit step: the unix socket is owner-only, TLS clients prove themselves by certificate in the handshake, plain TCP is unauthenticated. Allowed before CONNECT_OPEN'),
  CONNECT_GET_URI: proc(110, empty, struct({ uri: nonnullString }), '`virsh uri`: the URI the client opened (`qemu:///system` or `qemu:///session`)'),
  CONNECT_IS_SECURE: proc(149, empty, struct({ secure: int }), '1 on the unix socket and on TLS, 0 on plain TCP'),
  CONNECT_GET_LIB_VERSION: proc(157, empty, struct({ libVer: uhyper }), '`virsh version` ("Running against daemon"): 9.0.0, the libvirt release whose protocol ferryd speaks'),
  CONNECT_GET_SYSINFO: proc(203, struct({ flags: uint }), struct({ sysinfo: nonnullString }), '`virsh sysinfo`: an SMBIOS-style document naming ferryd\'s version and the host UUID; flags ignored'),
  NODE_GET_FREE_MEMORY: proc(102, empty, struct({ freeMem: uhyper }), '`virsh freecell`: the free memory of all NUMA cells together in bytes (MemFree, not MemAvailable, as libvirt)'),
  NODE_GET_CELLS_FREE_MEMORY: proc(101, struct({ startCell: int, maxcells: int }), struct({ cells: array(uhyper, NODE_MAX_CELLS) }), '`virsh freecell --cellno N`: the free memory in bytes of up to `maxcells` (1 to 1024) NUMA cells from `startCell`; a start beyond the last cell is VIR_ERR_INVALID_ARG'),
  NODE_GET_MEMORY_STATS: proc(228, struct({ nparams: int, cellNum: int, flags: uint }), struct({ params: array(struct({ field: nonnullString, value: uhyper }), NODE_MEMORY_STATS_MAX), nparams: int }), '`virsh nodememstats [--cell N]`: `total`, `free`, `buffers`, `cached` in KiB from /proc/meminfo, or with a cell number that cell\'s total and free (buffers and cached 0); nparams 0 asks how many (4); flags must be 0'),
  CONNECT_REGISTER_CLOSE_CALLBACK: proc(360, empty, empty, 'Accepted without effect: ferryd sends no connection-closed event (the client\'s callback still runs when its socket closes)'),
  CONNECT_UNREGISTER_CLOSE_CALLBACK: proc(361, empty, empty, 'Accepted without effect (see CONNECT_REGISTER_CLOSE_CALLBACK)'),

  // Domains
  CONNECT_NUM_OF_DOMAINS: proc(51, empty, struct({ num: int }), 'The number of active domains'),
  CONNECT_LIST_DOMAINS: proc(37, struct({ maxids: int }), struct({ ids: array(int, DOMAIN_LIST_MAX) }), 'The ids of the active domains, at most `maxids` (older clients\' `virsh list`)'),
  CONNECT_NUM_OF_DEFINED_DOMAINS: proc(25, empty, struct({ num: int }), 'The number of inactive domains'),
  CONNECT_LIST_DEFINED_DOMAINS: proc(21, struct({ maxnames: int }), struct({ names: array(nonnullString, DOMAIN_LIST_MAX) }), 'The names of the inactive domains, at most `maxnames` (older clients\' `virsh list --inactive`)'),
  CONNECT_LIST_ALL_DOMAINS: proc(273, struct({ needResults: int, flags: uint }), struct({ domains: array(domainRef, DOMAIN_LIST_MAX), ret: uint }), '`virsh list`: the host\'s domains filtered by libvirt\'s flag groups (active/inactive, persistent/transient, state, autostart; no domain has managed save, snapshots or checkpoints); bits from 0x10000 up are refused'),
  DOMAIN_LOOKUP_BY_ID: proc(22, struct({ id: int }), domRet, 'Finds an active domain by its id'),
  DOMAIN_LOOKUP_BY_NAME: proc(23, struct({ name: nonnullString }), domRet, 'Finds a domain, active or not, by name'),
  DOMAIN_LOOKUP_BY_UUID: proc(24, struct({ uuid }), domRet, 'Finds a domain, active or not, by UUID'),
  DOMAIN_GET_INFO: proc(16, dom, struct({ state: uint, maxMem: uhyper, memory: uhyper, nrVirtCpu: uint, cpuTime: uhyper }), '`virsh dominfo`: state, maximum and current memory (KiB), vCPU count and CPU time (ns)'),
  DOMAIN_GET_STATE: proc(212, domFlags, struct({ state: int, reason: int }), '`virsh domstate --reason`: state and reason in libvirt\'s numbers; flags must be 0'),
  DOMAIN_GET_CONTROL_INFO: proc(229, domFlags, struct({ state: uint, details: uint, stateTime: uhyper }), '`virsh domcontrol`: always ok, as ferryd handles its QEMU monitors itself; flags ignored'),
  DOMAIN_GET_XML_DESC: proc(14, domFlags, struct({ xml: nonnullString }), '`virsh dumpxml`: the live definition, or with INACTIVE (2) the persistent one; SECURE, UPDATE_CPU and MIGRATABLE are accepted without effect, other bits refused'),
  DOMAIN_GET_OS_TYPE: proc(19, dom, struct({ type: nonnullString }), '`virsh dominfo`\'s OS type: always `hvm`'),
  DOMAIN_GET_MAX_MEMORY: proc(17, dom, struct({ memory: uhyper }), 'The domain\'s maximum memory in KiB'),
  DOMAIN_GET_VCPUS_FLAGS: proc(200, domFlags, struct({ num: int }), '`virsh vcpucount`: the domain\'s vCPU count, whatever the flags ask (live, config, maximum and guest are not told apart)'),
  DOMAIN_IS_ACTIVE: proc(150, dom, struct({ active: int }), 'Whether the domain is running or paused'),
  DOMAIN_IS_PERSISTENT: proc(151, dom, struct({ persistent: int }), 'Whether the domain has a persistent definition'),
  DOMAIN_IS_UPDATED: proc(202, dom, struct({ updated: int }), 'Always 0'),
  DOMAIN_HAS_MANAGED_SAVE_IMAGE: proc(183, domFlags, struct({ result: int }), 'Always 0: ferryd has no managed save; flags ignored'),
  DOMAIN_GET_AUTOSTART: proc(15, dom, struct({ autostart: int }), '`virsh dominfo`\'s autostart: whether the domain starts with ferryd'),
  DOMAIN_SET_AUTOSTART: changes(proc(29, struct({ dom: domainRef, autostart: int }), empty, '`virsh autostart [--disable]`: marks or unmarks a persistent domain to start with ferryd')),
  DOMAIN_DEFINE_XML: changes(proc(11, struct({ xml: nonnullString }), domRet, '`virsh define`: adds or replaces a persistent definition from domain XML (checked as docs/domain-xml.md says)')),
  DOMAIN_DEFINE_XML_FLAGS: changes(proc(350, struct({ xml: nonnullString, flags: uint }), domRet, '`virsh define`: as DOMAIN_DEFINE_XML; VALIDATE (1) is accepted (ferryd always validates), other bits refused')),
  DOMAIN_UNDEFINE: changes(proc(35, dom, empty, '`virsh undefine`: removes the persistent definition; an inactive domain leaves the host, an active one carries on as transient')),
  DOMAIN_UNDEFINE_FLAGS: changes(proc(231, domFlags, empty, '`virsh undefine`: as DOMAIN_UNDEFINE; the managed-save, snapshot, NVRAM, checkpoint and TPM flags (1 to 64) are accepted, as there is nothing of the kind to keep or remove; other bits refused')),
  DOMAIN_CREATE: changes(proc(9, dom, empty, '`virsh start`: boots an inactive persistent domain')),
  DOMAIN_CREATE_WITH_FLAGS: changes(proc(196, domFlags, domRet, '`virsh start`: as DOMAIN_CREATE, START_PAUSED (1) honoured; BYPASS_CACHE, FORCE_BOOT, VALIDATE and RESET_NVRAM accepted without effect; AUTODESTROY (2) refused with VIR_ERR_ARGUMENT_UNSUPPORTED, other bits refused')),
  DOMAIN_CREATE_XML: changes(proc(10, struct({ xmlDesc: nonnullString, flags: uint }), domRet, '`virsh create`: starts a transient domain from XML (or an inactive persistent domain of the same name and UUID with this one-off definition); flags as DOMAIN_CREATE_WITH_FLAGS')),
  DOMAIN_DESTROY: changes(proc(12, dom, empty, '`virsh destroy`: stops QEMU at once')),
  DOMAIN_DESTROY_FLAGS: changes(proc(234, domFlags, empty, '`virsh destroy`: as DOMAIN_DESTROY; with GRACEFUL (1) QEMU is asked to quit and killed only after 30 s; other bits refused')),
  DOMAIN_SUSPEND: changes(proc(34, dom, empty, '`virsh suspend`: pauses the vCPUs (a no-op on a paused domain)')),
  DOMAIN_RESUME: changes(proc(28, dom, empty, '`virsh resume`: runs the vCPUs again (a no-op on a running domain)')),
  DOMAIN_SHUTDOWN: changes(proc(33, dom, empty, '`virsh shutdown`: presses the ACPI power button; the guest decides what to do')),
  DOMAIN_SHUTDOWN_FLAGS: changes(proc(258, domFlags, empty, '`virsh shutdown --mode`: as DOMAIN_SHUTDOWN whichever modes are given (ACPI, agent, initctl, signal, paravirt); other bits refused')),

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
    '`virsh domjobinfo` (older clients): progress of the domain\'s outgoing migration, or of the incoming one on the destination; type none when there is none',
  ),
  DOMAIN_GET_JOB_STATS: proc(298, domFlags, struct({ type: int, params: jobParams }), '`virsh domjobinfo`: the running migration job\'s statistics as typed parameters, or with COMPLETED (1) the last finished job\'s; KEEP_COMPLETED (2) accepted (finished statistics are always kept), other bits refused'),
  DOMAIN_ABORT_JOB: changes(proc(164, dom, empty, '`virsh domjobabort`: cancels the domain\'s outgoing migration (queued, begun or streaming); VIR_ERR_OPERATION_INVALID when there is none')),
  DOMAIN_ABORT_JOB_FLAGS: changes(proc(442, domFlags, empty, '`virsh domjobabort`: as DOMAIN_ABORT_JOB; POSTCOPY (1), pausing a post-copy migration, is refused with VIR_ERR_ARGUMENT_UNSUPPORTED')),
  DOMAIN_MIGRATE_SET_MAX_DOWNTIME: changes(proc(166, struct({ dom: domainRef, downtime: uhyper, flags: uint }), empty, '`virsh migrate-setmaxdowntime`: QEMU\'s downtime limit of the running domain, 1 to 2000000 ms; flags must be 0')),
  DOMAIN_MIGRATE_GET_MAX_DOWNTIME: proc(387, domFlags, struct({ downtime: uhyper }), '`virsh migrate-getmaxdowntime`: QEMU\'s downtime limit of the running domain in ms; flags must be 0'),
  DOMAIN_MIGRATE_SET_MAX_SPEED: changes(proc(207, struct({ dom: domainRef, bandwidth: uhyper, flags: uint }), empty, '`virsh migrate-setspeed`: the domain\'s migration bandwidth in MiB/s (0 = no limit), now and for later migrations; with POSTCOPY (1) QEMU\'s post-copy bandwidth of the running domain')),
  DOMAIN_MIGRATE_GET_MAX_SPEED: proc(242, domFlags, struct({ bandwidth: uhyper }), '`virsh migrate-getspeed`: the domain\'s migration bandwidth in MiB/s; with POSTCOPY (1) the post-copy bandwidth of the running domain (0 = no limit)'),
  DOMAIN_MIGRATE_START_POST_COPY: changes(proc(364, domFlags, empty, '`virsh migrate-postcopy`: switches a running migration started with POSTCOPY to post-copy; flags must be 0')),

  // Statistics and measurements
  CONNECT_GET_ALL_DOMAIN_STATS: proc(
    344,
    struct({ doms: array(domainRef, DOMAIN_LIST_MAX), stats: uint, flags: uint }),
    struct({ retStats: array(struct({ dom: domainRef, params: typedParams(DOMAIN_STATS_MAX) }), DOMAIN_LIST_MAX) }),
    '`virsh domstats`: a record per domain (those named, skipping any that is gone, or all the host\'s filtered by the list flags ACTIVE, INACTIVE, PERSISTENT, TRANSIENT, RUNNING, PAUSED, SHUTOFF, OTHER) with the groups ferryd has: `state` (1: `state.state`, `state.reason`) and `dirtyrate` (512: `dirtyrate.calc_status`, `calc_start_time`, `calc_period`, `megabytes_per_second` once measured, `calc_mode`; nothing for an inactive domain); stats 0 means both. Other groups yield no fields, or with ENFORCE_STATS (0x80000000) VIR_ERR_ARGUMENT_UNSUPPORTED; NOWAIT and BACKING are accepted without effect, other bits refused',
  ),
  DOMAIN_START_DIRTY_RATE_CALC: changes(proc(427, struct({ dom: domainRef, seconds: int, flags: uint }), empty, '`virsh domdirtyrate-calc`: starts QEMU\'s measurement of the running domain\'s memory dirty rate over 1 to 60 seconds (VIR_ERR_INVALID_ARG otherwise); flags pick the mode: 0 page sampling, DIRTY_BITMAP (1) or DIRTY_RING (2), both of which need KVM and are refused with VIR_ERR_OPERATION_UNSUPPORTED for a TCG guest (QEMU 7.2 crashes on them there); the result comes in CONNECT_GET_ALL_DOMAIN_STATS\'s `dirtyrate` group')),

  // Events
  CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY: proc(316, struct({ eventID: int, dom: optDomainRef }), struct({ callbackID: int }), '`virsh event`: registers for one event id (0 to 64) of one domain or all; ferryd raises lifecycle (0), migration-iteration (20) and job-completed (21), other ids are accepted and never fire'),
  CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY: proc(317, struct({ callbackID: int }), empty, 'Removes an event registration; an unknown callback id is VIR_ERR_INVALID_ARG'),

  // Migration, version 3 with typed parameters
  // Migration, version 3 without typed parameters (virDomainMigrate, virDomainMigrateToURI2): the same phases, the arguments in fixed fields.
  DOMAIN_MIGRATE_BEGIN3: changes(proc(213, struct({ dom: domainRef, xmlin: optString, flags: uhyper, dname: optString, resource: uhyper }), struct({ cookieOut: cookie, xml: nonnullString }), 'Source, v3 without typed parameters: as DOMAIN_MIGRATE_BEGIN3_PARAMS, with `xmlin`, `dname` and `resource` (MiB/s) as the destination_xml, destination_name and bandwidth parameters')),
  DOMAIN_MIGRATE_PREPARE3: changes(proc(214, struct({ cookieIn: cookie, uriIn: optString, flags: uhyper, dname: optString, resource: uhyper, domXml: nonnullString }), struct({ cookieOut: cookie, uriOut: optString }), 'Destination, v3 without typed parameters: as DOMAIN_MIGRATE_PREPARE3_PARAMS, `uri_in` as migrate_uri')),
  DOMAIN_MIGRATE_PREPARE_TUNNEL3: changes(proc(215, struct({ cookieIn: cookie, flags: uhyper, dname: optString, resource: uhyper, domXml: nonnullString }), struct({ cookieOut: cookie }), 'Destination, v3 without typed parameters: as DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS')),
  DOMAIN_MIGRATE_PERFORM3: changes(proc(216, struct({ dom: domainRef, xmlin: optString, cookieIn: cookie, dconnuri: optString, uri: optString, flags: uhyper, dname: optString, resource: uhyper }), struct({ cookieOut: cookie }), 'Source, v3 without typed parameters: as DOMAIN_MIGRATE_PERFORM3_PARAMS, `uri` as migrate_uri')),
  DOMAIN_MIGRATE_FINISH3: changes(proc(217, struct({ dname: nonnullString, cookieIn: cookie, dconnuri: optString, uri: optString, flags: uhyper, cancelled: bool }), struct({ dom: domainRef, cookieOut: cookie }), 'Destination, v3 without typed parameters: as DOMAIN_MIGRATE_FINISH3_PARAMS')),
  DOMAIN_MIGRATE_CONFIRM3: changes(proc(218, struct({ dom: domainRef, cookieIn: cookie, flags: uhyper, cancelled: bool }), empty, 'Source, v3 without typed parameters: as DOMAIN_MIGRATE_CONFIRM3_PARAMS')),
  DOMAIN_MIGRATE_BEGIN3_PARAMS: changes(proc(302, struct({ dom: domainRef, params: migrateParams, flags: uint }), struct({ cookieOut: cookie, xml: nonnullString }), 'Source, first phase: checks flags and typed parameters (docs/migration-flags.md), starts the domain\'s outgoing migration job and answers the domain XML and Ferry\'s begin cookie')),
  DOMAIN_MIGRATE_PREPARE3_PARAMS: changes(proc(303, struct({ params: migrateParams, cookieIn: cookie, flags: uint }), struct({ cookieOut: cookie, uriOut: optString }), 'Destination: prepares the incoming domain from the begin cookie and the `destination_xml` parameter; answers the URI to stream to, on the address the client reached this host on (for an offline migration, which streams nothing, `tcp:` and that address, as libvirt\'s client insists on a URI); TUNNELLED is refused here. The prepared domain is dropped if this connection closes before finish')),
  DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS: changes(proc(304, struct({ params: migrateParams, cookieIn: cookie, flags: uint }), struct({ cookieOut: cookie }), 'Destination, tunnelled: as DOMAIN_MIGRATE_PREPARE3_PARAMS, then the call\'s stream carries the migration data into the waiting QEMU; needs TUNNELLED')),
  DOMAIN_MIGRATE_PERFORM3_PARAMS: changes(proc(305, struct({ dom: domainRef, dconnuri: optString, params: migrateParams, cookieIn: cookie, flags: uint }), struct({ cookieOut: cookie }), 'Source: streams to where the prepare cookie says (nothing for an offline migration); with PEER2PEER and a destination URI, this ferryd runs all five phases itself against that destination (`ferry+tls://`, or `qemu+tcp/tls/unix` to another ferryd\'s libvirt listener)')),
  DOMAIN_MIGRATE_FINISH3_PARAMS: changes(proc(306, struct({ params: migrateParams, cookieIn: cookie, flags: uint, cancelled: bool }), struct({ dom: domainRef, cookieOut: cookie }), 'Destination: completes the incoming domain and answers it; when cancelled, removes it and answers VIR_ERR_OPERATION_ABORTED. Without a perform cookie it finishes the last migration this connection prepared')),
  DOMAIN_MIGRATE_CONFIRM3_PARAMS: changes(proc(307, struct({ dom: domainRef, params: migrateParams, cookieIn: cookie, flags: uint, cancelled: bool }), empty, 'Source, last phase: ends the outgoing migration job: after success the source copy stops, after a cancelled migration the domain carries on here')),
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
  DOMAIN_EVENT_CALLBACK_LIFECYCLE: proc(318, struct({ callbackID: int, msg: struct({ dom: domainRef, event: int, detail: int }) }), empty, 'Lifecycle events (defined, undefined, started, suspended, resumed, stopped, shutdown) with libvirt\'s event and detail numbers'),
  DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION: proc(359, struct({ callbackID: int, dom: domainRef, iteration: int }), empty, 'A running migration starts another pass over the guest\'s memory'),
  DOMAIN_EVENT_CALLBACK_JOB_COMPLETED: proc(363, struct({ callbackID: int, dom: domainRef, params: jobParams }), empty, 'A migration job ended: its statistics, as DOMAIN_GET_JOB_STATS with COMPLETED answers them'),
} as const;

/** libvirt's event ids (`virDomainEventID`) that ferryd can deliver. */
export const EVENT_IDS = { lifecycle: 0, migrationIteration: 20, jobCompleted: 21 } as const;

/** The `keepalive` program: ping and pong, no bodies. */
export const KEEPALIVE_DOC =
  "libvirt's `keepalive` program (0x6b656570, version 1): ferryd answers every PING (1) with a PONG (2); to a client that asked CONNECT_SUPPORTS_FEATURE about keepalive (10) it sends a PING after each interval of silence and closes the connection after interval × count of silence (--keepalive-interval × --keepalive-count, 5 s × 5 by default), as libvirtd does";
export const KEEPALIVE_PROGRAM = 0x6b656570;
export const KEEPALIVE_VERSION = 1;
export const KEEPALIVE_PING = 1;
export const KEEPALIVE_PONG = 2;

/** The header of a keepalive message (PING or PONG): program "keep", version 1, type MESSAGE, serial 0, no body. */
export function keepaliveHeader(procedure: typeof KEEPALIVE_PING | typeof KEEPALIVE_PONG): RpcHeader {
  return { program: KEEPALIVE_PROGRAM, version: KEEPALIVE_VERSION, procedure, type: MessageType.message, serial: 0, status: MessageStatus.ok };
}

/** Whether `h` is a PING as libvirt sends one (only these are answered). */
export function isKeepalivePing(h: RpcHeader): boolean {
  return h.program === KEEPALIVE_PROGRAM && h.version === KEEPALIVE_VERSION && h.procedure === KEEPALIVE_PING && h.type === MessageType.message;
}

