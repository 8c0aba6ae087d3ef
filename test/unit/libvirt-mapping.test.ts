/**
 * What ferryd's libvirt layer maps between Ferry and libvirt, as a libvirt
 * peer depends on it: error numbers and wording, migration typed
 * parameters, the migration cookies, domain list filters, lifecycle event
 * numbers and job statistics. Numbers are libvirt's (`virerror.h`,
 * `libvirt-domain.h`), written out here rather than read from the code.
 */
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, FerryError, type ErrorCode } from '../../src/errors/index.js';
import { ferryErrorOf, libvirtMessage, remoteErrorOf } from '../../src/libvirt/errors.js';
import { paramsFromTyped, typedFromParams } from '../../src/libvirt/migration-params.js';
import { isCookieOf, readCookie, writeCookie } from '../../src/libvirt/cookies.js';
import { filterDomains } from '../../src/libvirt/handlers/domains.js';
import { lifecycleNumbers } from '../../src/libvirt/handlers/events.js';
import { jobStatsParams } from '../../src/libvirt/handlers/jobs.js';
import { checkFlags, lookupKey, refOf, uuidBytes, uuidString } from '../../src/libvirt/handlers/refs.js';
import { decode, encode } from '../../src/libvirt/xdr.js';
import { remoteError, typedParams, type TypedParam } from '../../src/libvirt/wire-types.js';
import { MIGRATION_PARAMS, parseParams } from '../../src/flags/index.js';
import type { DomainSummary } from '../../src/host/views.js';
import type { JobStats } from '../../src/host/job-stats.js';
import { expectRefused, refusal } from '../support/refusal.js';

describe('errors as libvirt words and numbers them', () => {
  it.each([
    ['operation_invalid', 'domain is not running', 'Requested operation is not valid: domain is not running'],
    ['no_domain', "no domain with matching name 'x'", "Domain not found: no domain with matching name 'x'"],
    ['invalid_arg', 'bad flags', 'invalid argument: bad flags'],
    ['no_support', 'nope', 'this function is not supported by the connection driver: nope'],
    ['operation_timeout', 'slow', 'Timed out during operation: slow'],
    ['rpc', 'garbage', 'RPC error: garbage'],
    ['system_error', 'Connection refused', 'Connection refused'],
  ] as const)('%s: libvirtMessage gives libvirt’s prefix', (code, message, worded) => {
    expect(libvirtMessage(new FerryError(code, message))).toBe(worded);
  });

  it.each([
    ['internal_error', 1],
    ['no_support', 3],
    ['no_connect', 5],
    ['invalid_arg', 8],
    ['operation_failed', 9],
    ['xml_error', 27],
    ['rpc', 39],
    ['no_domain', 42],
    ['auth_failed', 45],
    ['operation_invalid', 55],
    ['operation_timeout', 68],
    ['argument_unsupported', 74],
    ['operation_aborted', 78],
    ['operation_unsupported', 84],
    ['resource_busy', 87],
    ['access_denied', 88],
  ] as const)('%s is virErrorNumber %i on the wire', (code, number) => {
    const e = remoteErrorOf(new FerryError(code, 'm'));
    expect(e.code).toBe(number);
    // virErrorLevel VIR_ERR_ERROR
    expect(e.level).toBe(2);
    expect(e.message).toBe(libvirtMessage(new FerryError(code, 'm')));
    expect(e.dom).toBeNull();
    expect(e.net).toBeNull();
  });

  it('protocol errors come from the RPC domain (7), the rest from the QEMU driver (10)', () => {
    expect(remoteErrorOf(new FerryError('rpc', 'x')).domain).toBe(7);
    expect(remoteErrorOf(new FerryError('no_domain', 'x')).domain).toBe(10);
  });

  it('a remote_error encodes and decodes (what virsh reads: code, domain, message, level)', () => {
    const bytes = encode(remoteError, remoteErrorOf(new FerryError('operation_invalid', 'not running')));
    expect(bytes.readInt32BE(0)).toBe(55);
    expect(bytes.readInt32BE(4)).toBe(10);
    expect(bytes.readUInt32BE(8)).toBe(1);
    const text = 'Requested operation is not valid: not running';
    expect(bytes.readUInt32BE(12)).toBe(Buffer.byteLength(text));
    expect(bytes.toString('utf8', 16, 16 + Buffer.byteLength(text))).toBe(text);
    expect(decode(remoteError, bytes).message).toBe(text);
  });

  it('ferryErrorOf maps the number back and strips the prefix it added', () => {
    for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) {
      if (code === 'dom_exist') continue; // shares 'operation failed' with operation_failed; checked below
      const back = ferryErrorOf(remoteErrorOf(new FerryError(code, 'the details')));
      expect({ code: back.code, message: back.message }).toEqual({ code, message: 'the details' });
    }
    const exists = ferryErrorOf(remoteErrorOf(new FerryError('dom_exist', "domain 'a' already exists")));
    expect({ code: exists.code, message: exists.message }).toEqual({ code: 'dom_exist', message: "domain 'a' already exists" });
  });

  it('ferryErrorOf keeps a real libvirtd’s message, and makes unknown numbers internal errors', () => {
    const base = remoteErrorOf(new FerryError('internal_error', 'x'));
    expect(ferryErrorOf({ ...base, code: 42, message: "Domain not found: no domain with matching name 'vm1'" }).message).toBe("no domain with matching name 'vm1'");
    // A prefix that is not this number's is kept.
    expect(ferryErrorOf({ ...base, code: 55, message: 'invalid argument: x' }).message).toBe('invalid argument: x');
    const unknown = ferryErrorOf({ ...base, code: 86, message: 'Guest agent is not responding: QEMU guest agent is not connected' });
    expect(unknown.code).toBe('internal_error');
    expect(unknown.message).toBe('Guest agent is not responding: QEMU guest agent is not connected');
    expect(ferryErrorOf({ ...base, code: 9, message: null }).message).toBe('unknown error');
  });
});

describe('migration typed parameters', () => {
  const s = (field: string, value: string): TypedParam => ({ field, value: { type: 'string', value } });

  it('a repeated migrate_disks (or compression) becomes a list, in order', () => {
    expect(paramsFromTyped([s('migrate_disks', 'vda'), s('migrate_uri', 'tcp://h:1'), s('migrate_disks', 'vdb'), s('compression', 'xbzrle'), s('compression', 'mt')])).toEqual({
      migrate_disks: ['vda', 'vdb'],
      migrate_uri: 'tcp://h:1',
      compression: ['xbzrle', 'mt'],
    });
    expect(paramsFromTyped([s('migrate_disks', 'vda')])).toEqual({ migrate_disks: ['vda'] });
  });

  it('a repeated scalar is refused', () => {
    const bw = (v: number): TypedParam => ({ field: 'bandwidth', value: { type: 'ullong', value: v } });
    expectRefused(() => paramsFromTyped([bw(1), bw(2)]), 'invalid_arg', 'bandwidth', 'more than once');
    expectRefused(() => paramsFromTyped([s('destination_name', 'a'), s('destination_name', 'a')]), 'invalid_arg', 'destination_name');
  });

  it('a list item that is not a string is refused', () => {
    expectRefused(() => paramsFromTyped([{ field: 'migrate_disks', value: { type: 'int', value: 1 } }]), 'invalid_arg', 'migrate_disks');
  });

  it('numbers keep their value; the parameter table then checks them', () => {
    const p = paramsFromTyped([
      { field: 'bandwidth', value: { type: 'ullong', value: 100 } },
      { field: 'disks_port', value: { type: 'int', value: 49152 } },
    ]);
    expect(p).toEqual({ bandwidth: 100, disks_port: 49152 });
    expect(parseParams(p)).toEqual({ bandwidth: 100, disks_port: 49152 });
  });

  it('an unknown field is passed on for the parameter table to refuse by name', () => {
    const p = paramsFromTyped([s('no_such_param', 'x')]);
    expect(p).toEqual({ no_such_param: 'x' });
    expectRefused(() => parseParams(p), 'invalid_arg', 'unknown migration parameter');
  });

  it('a field named like an Object property is an unknown field too, not a duplicate', () => {
    for (const field of ['constructor', 'toString', 'hasOwnProperty']) {
      const p = paramsFromTyped([s(field, 'x')]);
      expect(Object.prototype.hasOwnProperty.call(p, field)).toBe(true);
      expectRefused(() => parseParams(p), 'invalid_arg', 'unknown migration parameter');
    }
  });

  it('typedFromParams types every table entry as libvirt does: int, ullong, string (a list once per item)', () => {
    const wire = { int: 'int', ullong: 'ullong', string: 'string', 'string-list': 'string' } as const;
    for (const spec of MIGRATION_PARAMS) {
      const value = spec.type === 'string-list' ? ['a', 'b'] : spec.type === 'string' ? 'v' : 7;
      const typed = typedFromParams({ [spec.name]: value });
      expect(typed.map((t) => t.field)).toEqual(spec.type === 'string-list' ? [spec.name, spec.name] : [spec.name]);
      for (const t of typed) expect(t.value.type, spec.name).toBe(wire[spec.type]);
    }
    expect(typedFromParams({ bandwidth: 5 })).toEqual([{ field: 'bandwidth', value: { type: 'ullong', value: 5 } }]);
    expect(typedFromParams({ 'compression.mt.level': 3 })).toEqual([{ field: 'compression.mt.level', value: { type: 'int', value: 3 } }]);
    expect(typedFromParams({ migrate_uri: 'tcp://h' })).toEqual([{ field: 'migrate_uri', value: { type: 'string', value: 'tcp://h' } }]);
  });

  it('typedFromParams drops undefined values and names outside the table', () => {
    expect(typedFromParams({ bandwidth: undefined, bogus: 1 })).toEqual([]);
  });

  it('round trip: parameters → typed parameters → XDR → typed parameters → the same parameters', () => {
    const params = {
      migrate_uri: 'tcp://10.0.0.2:49152',
      destination_name: 'copy',
      bandwidth: 8796093022207,
      'bandwidth.postcopy': 0,
      migrate_disks: ['vda', 'vdc'],
      disks_port: 0,
      compression: ['zstd'],
      'compression.zstd.level': 20,
      'compression.xbzrle.cache': 2 ** 40,
      'auto_converge.initial': 1,
      'parallel.connections': 255,
      'tls.destination': 'dest.example',
    };
    const typed = typedFromParams(params);
    const wired = decode(typedParams(64), encode(typedParams(64), typed));
    expect(wired).toEqual(typed);
    expect(paramsFromTyped(wired)).toEqual(params);
    expect(parseParams(paramsFromTyped(wired))).toEqual(params);
  });
});

describe('migration cookies', () => {
  const abortCheck = { destJobId: 'job-1', domainUuid: '5c4e7a63-8f27-4b6e-9c1d-3a2f0e8b7d14' };

  it('carry their phase, and come back as written', () => {
    const raw = writeCookie('abort-check', abortCheck);
    expect(JSON.parse(raw.toString('utf8'))).toEqual({ ferry: 1, phase: 'abort-check', ...abortCheck });
    expect(readCookie('abort-check', raw)).toMatchObject(abortCheck);
    expect(isCookieOf('abort-check', raw)).toBe(true);
    expect(isCookieOf('perform', raw)).toBe(false);
  });

  it('a cookie of another phase is refused with invalid_arg, naming both phases', () => {
    expectRefused(() => readCookie('perform', writeCookie('abort-check', abortCheck)), 'invalid_arg', "'abort-check'", "'perform'");
  });

  it('a cookie that is not JSON, or not a ferryd’s, is refused with invalid_arg', () => {
    for (const raw of ['<qemu-migration/>', '{', '\u0000\u0001', 'null', '42', '"x"', '[]', '{"phase":"perform"}', '{"ferry":2,"phase":"perform"}']) {
      expect(refusal(() => readCookie('perform', Buffer.from(raw))).code, raw).toBe('invalid_arg');
      expect(isCookieOf('perform', Buffer.from(raw))).toBe(false);
    }
  });

  it('an empty cookie is null (libvirt clients send none where none was given)', () => {
    expect(readCookie('prepare', Buffer.alloc(0))).toBeNull();
    expect(isCookieOf('prepare', Buffer.alloc(0))).toBe(false);
  });
});

describe('domain references', () => {
  it('UUID strings and their 16 bytes', () => {
    const u = '5c4e7a63-8f27-4b6e-9c1d-3a2f0e8b7d14';
    expect(uuidBytes(u).toString('hex')).toBe('5c4e7a638f274b6e9c1d3a2f0e8b7d14');
    expect(uuidString(uuidBytes(u))).toBe(u);
    expect(refOf({ name: 'a', uuid: u, id: null })).toEqual({ name: 'a', uuid: uuidBytes(u), id: -1 });
    // libvirt servers look a domain up by UUID; the name in the reference does not matter.
    expect(lookupKey({ name: 'whatever', uuid: uuidBytes(u), id: 9 })).toBe(u);
  });

  it('checkFlags refuses unknown bits as virCheckFlags does', () => {
    expect(() => checkFlags(3, 3, 'f')).not.toThrow();
    expectRefused(() => checkFlags(4, 3, 'virDomainFoo'), 'invalid_arg', 'unsupported flags (0x4) in function virDomainFoo');
    expectRefused(() => checkFlags(0x80000000, 0xffff, 'f'), 'invalid_arg', '0x80000000');
  });
});

describe('virConnectListAllDomains filters', () => {
  const F = { ACTIVE: 1, INACTIVE: 2, PERSISTENT: 4, TRANSIENT: 8, RUNNING: 16, PAUSED: 32, SHUTOFF: 64, OTHER: 128, MANAGEDSAVE: 256, NO_MANAGEDSAVE: 512, AUTOSTART: 1024, NO_AUTOSTART: 2048, HAS_SNAPSHOT: 4096, NO_SNAPSHOT: 8192 };
  const dom = (name: string, o: Partial<DomainSummary>): DomainSummary => ({ id: null, name, uuid: '00000000-0000-0000-0000-000000000000', state: 'shutoff', reason: 'unknown', persistent: true, autostart: false, ...o });
  const all = [
    dom('run-auto', { id: 1, state: 'running', autostart: true }),
    dom('paused-transient', { id: 2, state: 'paused', persistent: false }),
    dom('off', {}),
    dom('off-auto', { autostart: true }),
    dom('crashed', { id: 3, state: 'crashed' }),
  ];
  const names = (flags: number) => filterDomains(all, flags).map((d) => d.name);

  it.each([
    ['no flags: every domain', 0, ['run-auto', 'paused-transient', 'off', 'off-auto', 'crashed']],
    ['ACTIVE', F.ACTIVE, ['run-auto', 'paused-transient', 'crashed']],
    ['INACTIVE', F.INACTIVE, ['off', 'off-auto']],
    ['ACTIVE | INACTIVE (alternatives in one group)', F.ACTIVE | F.INACTIVE, ['run-auto', 'paused-transient', 'off', 'off-auto', 'crashed']],
    ['PERSISTENT', F.PERSISTENT, ['run-auto', 'off', 'off-auto', 'crashed']],
    ['TRANSIENT', F.TRANSIENT, ['paused-transient']],
    ['RUNNING', F.RUNNING, ['run-auto']],
    ['PAUSED', F.PAUSED, ['paused-transient']],
    ['SHUTOFF', F.SHUTOFF, ['off', 'off-auto']],
    ['OTHER', F.OTHER, ['crashed']],
    ['RUNNING | PAUSED', F.RUNNING | F.PAUSED, ['run-auto', 'paused-transient']],
    ['AUTOSTART', F.AUTOSTART, ['run-auto', 'off-auto']],
    ['NO_AUTOSTART', F.NO_AUTOSTART, ['paused-transient', 'off', 'crashed']],
    ['ACTIVE & PERSISTENT (groups combine with AND)', F.ACTIVE | F.PERSISTENT, ['run-auto', 'crashed']],
    ['INACTIVE & AUTOSTART', F.INACTIVE | F.AUTOSTART, ['off-auto']],
    ['ACTIVE & SHUTOFF: nothing', F.ACTIVE | F.SHUTOFF, []],
    ['MANAGEDSAVE: none on a ferryd host', F.MANAGEDSAVE, []],
    ['NO_MANAGEDSAVE: all', F.NO_MANAGEDSAVE, ['run-auto', 'paused-transient', 'off', 'off-auto', 'crashed']],
    ['HAS_SNAPSHOT: none', F.HAS_SNAPSHOT, []],
    ['NO_SNAPSHOT & TRANSIENT', F.NO_SNAPSHOT | F.TRANSIENT, ['paused-transient']],
  ])('%s', (_label, flags, expected) => {
    expect(names(flags)).toEqual(expected);
  });

  it('unknown bits are refused', () => {
    for (const bad of [0x10000, 0x40000, 0x80000000, 0xffffffff]) expect(refusal(() => filterDomains(all, bad)).code).toBe('invalid_arg');
  });
});

describe('lifecycle event numbers (virDomainEventType, and its detail enum)', () => {
  it.each([
    ['defined', 'added', 0, 0],
    ['undefined', 'removed', 1, 0],
    ['started', 'booted', 2, 0],
    ['started', 'migrated', 2, 1],
    ['suspended', 'paused', 3, 0],
    ['suspended', 'migrated', 3, 1],
    ['suspended', 'postcopy', 3, 7],
    ['suspended', 'postcopy-failed', 3, 8],
    ['resumed', 'unpaused', 4, 0],
    ['resumed', 'migrated', 4, 1],
    ['resumed', 'postcopy', 4, 3],
    ['stopped', 'shutdown', 5, 0],
    ['stopped', 'destroyed', 5, 1],
    ['stopped', 'crashed', 5, 2],
    ['stopped', 'migrated', 5, 3],
    ['stopped', 'failed', 5, 5],
    ['shutdown', 'finished', 6, 0],
    ['started', 'from_snapshot', 2, 3],
  ] as const)('%s/%s → %i/%i', (kind, detail, event, num) => {
    expect(lifecycleNumbers({ kind, detail })).toEqual({ event, detail: num });
  });

  it('an unknown detail is 0', () => {
    expect(lifecycleNumbers({ kind: 'stopped', detail: 'no-such-detail' })).toEqual({ event: 5, detail: 0 });
  });
});

describe('job statistics as typed parameters (virDomainGetJobStats)', () => {
  const base: JobStats = { type: 'Unbounded', operation: 'Outgoing migration', time_elapsed: 1234, data_total: 1000, auto_converge_throttle: 20, memory_bps: 12.6 };
  const byField = (ps: TypedParam[]) => Object.fromEntries(ps.map((p) => [p.field, p.value]));

  it('operation is an int: 5 outgoing, 4 incoming; it comes first', () => {
    const ps = jobStatsParams(base);
    expect(ps[0]).toEqual({ field: 'operation', value: { type: 'int', value: 5 } });
    expect(jobStatsParams({ ...base, operation: 'Incoming migration' })[0]).toEqual({ field: 'operation', value: { type: 'int', value: 4 } });
  });

  it('auto_converge_throttle is an int, other numbers unsigned long long (rounded, never negative)', () => {
    const f = byField(jobStatsParams({ ...base, memory_remaining: -5 }));
    expect(f.auto_converge_throttle).toEqual({ type: 'int', value: 20 });
    expect(f.time_elapsed).toEqual({ type: 'ullong', value: 1234 });
    expect(f.data_total).toEqual({ type: 'ullong', value: 1000 });
    expect(f.memory_bps).toEqual({ type: 'ullong', value: 13 });
    expect(f.memory_remaining).toEqual({ type: 'ullong', value: 0 });
    expect(f.type).toBeUndefined();
  });

  it('success is a boolean: true for Completed, false for Failed and Cancelled, absent while running', () => {
    expect(byField(jobStatsParams({ ...base, type: 'Completed' })).success).toEqual({ type: 'boolean', value: true });
    expect(byField(jobStatsParams({ ...base, type: 'Failed', errmsg: 'boom' })).success).toEqual({ type: 'boolean', value: false });
    expect(byField(jobStatsParams({ ...base, type: 'Failed', errmsg: 'boom' })).errmsg).toEqual({ type: 'string', value: 'boom' });
    expect(byField(jobStatsParams({ ...base, type: 'Cancelled' })).success).toEqual({ type: 'boolean', value: false });
    expect(byField(jobStatsParams(base)).success).toBeUndefined();
  });

  it('a full set of statistics fits the reply’s 64 parameters and encodes', () => {
    const full: JobStats = { type: 'Completed', operation: 'Outgoing migration', time_elapsed: 1, time_remaining: 0, downtime: 30, setup_time: 2, data_total: 3, data_processed: 3, data_remaining: 0, memory_total: 3, memory_processed: 3, memory_remaining: 0, memory_constant: 1, memory_normal: 1, memory_normal_bytes: 4096, memory_bps: 1, memory_dirty_rate: 1, memory_iteration: 2, memory_page_size: 4096, memory_postcopy_requests: 0, auto_converge_throttle: 0, disk_total: 1, disk_processed: 1, disk_remaining: 0, disk_bps: 1, compression_cache: 1, compression_bytes: 1, compression_pages: 1, compression_cache_misses: 0, compression_overflow: 0, queue_position: 1, wall_time: 5 };
    const ps = jobStatsParams(full);
    expect(ps.length).toBeLessThanOrEqual(64);
    expect(decode(typedParams(64), encode(typedParams(64), ps))).toEqual(ps);
  });
});
