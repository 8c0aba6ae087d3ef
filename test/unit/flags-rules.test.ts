import { describe, expect, it } from 'vitest';
import type { ErrorCode } from '../../src/errors/index.js';
import {
  MIGRATION_FLAGS,
  MIGRATION_PARAMS,
  MIGRATION_RULES,
  flagsFromNames,
  validateMigrationRequest,
  type MigrationContext,
  type MigrationParamSpec,
  type MigrationParams,
  type ValidateOptions,
} from '../../src/flags/index.js';
import { expectRefused, refusal } from '../support/refusal.js';

const LATER: ValidateOptions = { allowLater: true };

function validate(names: string[], params: Record<string, unknown> = {}, ctx: MigrationContext = {}, options: ValidateOptions = LATER) {
  return validateMigrationRequest({ flags: flagsFromNames(names), params: params as MigrationParams }, ctx, options);
}

const disk = (targetDev: string, extra: { readonly?: boolean; shareable?: boolean; sourcePath?: string | undefined } = {}) => ({
  targetDev,
  readonly: false,
  shareable: false,
  sourcePath: `/images/${targetDev}.qcow2`,
  ...extra,
});

/** [rule id, flags, params, context, code, message fragments]: each request breaks exactly the rule named. */
type Case = [id: string, flags: string[], params: Record<string, unknown>, ctx: MigrationContext, code: ErrorCode, ...fragments: string[]];

const CASES: Case[] = [
  ['known-params', ['LIVE'], { bandwidth: 'fast' }, {}, 'invalid_arg', '--bandwidth (bandwidth)'],
  ['known-params', ['LIVE'], { speed: 1 }, {}, 'invalid_arg', "unknown migration parameter 'speed'"],
  ['tunnelled-needs-p2p', ['LIVE', 'TUNNELLED'], {}, {}, 'invalid_arg', '--tunnelled (TUNNELLED) requires --p2p (PEER2PEER)'],
  ['storage-copy-exclusive', ['LIVE', 'NON_SHARED_DISK', 'NON_SHARED_INC'], {}, {}, 'invalid_arg', '--copy-storage-all (NON_SHARED_DISK) and --copy-storage-inc (NON_SHARED_INC) exclude each other'],
  ['synchronous-writes-need-storage-copy', ['LIVE', 'NON_SHARED_SYNCHRONOUS_WRITES'], {}, {}, 'operation_unsupported', '--copy-storage-synchronous-writes (NON_SHARED_SYNCHRONOUS_WRITES) requires --copy-storage-all (NON_SHARED_DISK) or --copy-storage-inc (NON_SHARED_INC)'],
  ['offline-needs-persist', ['OFFLINE'], {}, {}, 'operation_invalid', '--offline (OFFLINE) requires --persistent (PERSIST_DEST)'],
  ['offline-excludes-storage-copy', ['OFFLINE', 'PERSIST_DEST', 'NON_SHARED_INC'], {}, {}, 'operation_invalid', '--offline (OFFLINE) excludes --copy-storage-inc (NON_SHARED_INC)'],
  ['offline-excludes-tunnelled', ['OFFLINE', 'PERSIST_DEST', 'PEER2PEER', 'TUNNELLED'], {}, {}, 'operation_invalid', '--offline (OFFLINE) excludes --tunnelled (TUNNELLED)'],
  ['offline-excludes-memory-options', ['OFFLINE', 'PERSIST_DEST', 'LIVE'], {}, {}, 'invalid_arg', '--offline (OFFLINE) excludes --live (LIVE)'],
  ['offline-excludes-memory-options', ['OFFLINE', 'PERSIST_DEST', 'PAUSED'], {}, {}, 'invalid_arg', '--suspend (PAUSED)'],
  ['offline-excludes-memory-options', ['OFFLINE', 'PERSIST_DEST', 'COMPRESSED', 'AUTO_CONVERGE'], {}, {}, 'invalid_arg', '--compressed (COMPRESSED) and --auto-converge (AUTO_CONVERGE)'],
  ['offline-excludes-memory-options', ['OFFLINE', 'PERSIST_DEST', 'PARALLEL'], {}, {}, 'invalid_arg', '--parallel (PARALLEL)'],
  ['offline-excludes-memory-options', ['OFFLINE', 'PERSIST_DEST', 'RDMA_PIN_ALL'], { migrate_uri: 'rdma://h' }, {}, 'invalid_arg', '--rdma-pin-all (RDMA_PIN_ALL)'],
  ['offline-excludes-memory-options', ['OFFLINE', 'PERSIST_DEST', 'ZEROCOPY'], {}, {}, 'invalid_arg', '--zerocopy (ZEROCOPY)'],
  ['postcopy-needs-live', ['POSTCOPY'], {}, {}, 'argument_unsupported', '--postcopy (POSTCOPY) requires --live (LIVE)'],
  ['zerocopy-needs-parallel', ['LIVE', 'ZEROCOPY'], {}, {}, 'operation_invalid', 'zero-copy is only available for parallel migration', '--zerocopy (ZEROCOPY) requires --parallel (PARALLEL)'],
  ['zerocopy-excludes-transforms', ['LIVE', 'PARALLEL', 'ZEROCOPY', 'COMPRESSED'], { compression: ['zstd'] }, {}, 'operation_invalid', '--zerocopy (ZEROCOPY) cannot be used with --compressed (COMPRESSED)', 'non-compressed non-TLS'],
  ['zerocopy-excludes-transforms', ['LIVE', 'PARALLEL', 'ZEROCOPY', 'TLS'], {}, {}, 'operation_invalid', '--zerocopy (ZEROCOPY) cannot be used with --tls (TLS)'],
  ['zerocopy-excludes-transforms', ['LIVE', 'PARALLEL', 'ZEROCOPY', 'TLS', 'COMPRESSED'], { compression: ['zlib'] }, {}, 'operation_invalid', '--compressed (COMPRESSED) and --tls (TLS)'],
  ['offline-excludes-memory-options', ['OFFLINE', 'PERSIST_DEST', 'POSTCOPY'], {}, {}, 'invalid_arg', '--postcopy (POSTCOPY)'],
  ['postcopy-excludes-paused', ['LIVE', 'POSTCOPY', 'PAUSED'], {}, {}, 'argument_unsupported', '--postcopy (POSTCOPY) excludes --suspend (PAUSED)'],
  ['postcopy-excludes-tunnelled', ['LIVE', 'POSTCOPY', 'PEER2PEER', 'TUNNELLED'], {}, {}, 'argument_unsupported', '--postcopy (POSTCOPY) excludes --tunnelled (TUNNELLED)'],
  ['postcopy-resume-needs-postcopy', ['LIVE', 'POSTCOPY_RESUME'], {}, {}, 'argument_unsupported', '--postcopy-resume (POSTCOPY_RESUME) requires --postcopy (POSTCOPY)'],
  ['postcopy-resume-excludes-storage-copy', ['LIVE', 'POSTCOPY', 'POSTCOPY_RESUME', 'NON_SHARED_DISK'], {}, {}, 'argument_unsupported', '--postcopy-resume (POSTCOPY_RESUME) excludes --copy-storage-all (NON_SHARED_DISK)'],
  ['tunnelled-excludes-data-address', ['LIVE', 'PEER2PEER', 'TUNNELLED'], { migrate_uri: 'tcp://h:1' }, {}, 'argument_unsupported', '--tunnelled (TUNNELLED) excludes --migrateuri (migrate_uri)'],
  ['tunnelled-excludes-data-address', ['LIVE', 'PEER2PEER', 'TUNNELLED'], { listen_address: '0.0.0.0' }, {}, 'argument_unsupported', '--listen-address (listen_address)'],
  ['tunnelled-excludes-data-address', ['LIVE', 'PEER2PEER', 'TUNNELLED', 'NON_SHARED_DISK'], { disks_uri: 'unix:///run/n.sock' }, {}, 'argument_unsupported', '--disks-uri (disks_uri)'],
  ['migrate-uri-unix-path', ['LIVE'], { migrate_uri: 'unix://host/x.sock' }, {}, 'invalid_arg', 'names no socket path', 'unix:///PATH'],
  ['migrate-uri-unix-path', ['LIVE'], { migrate_uri: 'unix:///' }, {}, 'invalid_arg', 'names no socket path'],
  ['migrate-uri-scheme', ['LIVE'], { migrate_uri: 'http://h' }, {}, 'argument_unsupported', 'unsupported scheme http:', '--migrateuri (migrate_uri)', 'tcp:, unix:, rdma:'],
  ['migrate-uri-scheme', ['LIVE'], { migrate_uri: '/just/a/path' }, {}, 'argument_unsupported', 'has no scheme'],
  ['rdma-pin-all-needs-rdma-uri', ['LIVE', 'RDMA_PIN_ALL'], {}, {}, 'invalid_arg', '--rdma-pin-all (RDMA_PIN_ALL) requires --migrateuri (migrate_uri) to start with rdma://'],
  ['rdma-pin-all-needs-rdma-uri', ['LIVE', 'RDMA_PIN_ALL'], { migrate_uri: 'tcp://h:1' }, {}, 'invalid_arg', 'rdma://'],
  ['disk-params-need-storage-copy', ['LIVE'], { migrate_disks: ['vda'] }, {}, 'operation_unsupported', '--migrate-disks (migrate_disks) requires --copy-storage-all (NON_SHARED_DISK) or --copy-storage-inc (NON_SHARED_INC)'],
  ['disk-params-need-storage-copy', ['LIVE'], { disks_port: 5000, migrate_disks: 'vda' }, {}, 'operation_unsupported', '--migrate-disks (migrate_disks) and --disks-port (disks_port) require'],
  ['disk-params-need-storage-copy', ['LIVE'], { disks_uri: 'unix:///s' }, {}, 'operation_unsupported', '--disks-uri (disks_uri) requires'],
  ['disks-port-excludes-uri', ['LIVE', 'NON_SHARED_DISK'], { disks_port: 5000, disks_uri: 'tcp://h:5001' }, {}, 'invalid_arg', '--disks-port (disks_port) and --disks-uri (disks_uri) exclude each other'],
  ['disks-uri-form', ['LIVE', 'NON_SHARED_DISK'], { disks_uri: 'nbd://h' }, {}, 'invalid_arg', '--disks-uri (disks_uri)', 'tcp:// or unix://'],
  ['disks-uri-form', ['LIVE', 'NON_SHARED_DISK'], { disks_uri: 'tcp://:5000' }, {}, 'invalid_arg', 'not a valid URI'],
  ['disks-uri-form', ['LIVE', 'NON_SHARED_DISK'], { disks_uri: 'tcp:h:5000' }, {}, 'invalid_arg', 'names no host'],
  ['disks-uri-form', ['LIVE', 'NON_SHARED_DISK'], { disks_uri: 'unix://' }, {}, 'invalid_arg', 'names no socket path'],
  ['compression-needs-compressed', ['LIVE'], { compression: ['xbzrle'] }, {}, 'invalid_arg', '--comp-methods (compression) requires --compressed (COMPRESSED)'],
  ['compression-needs-compressed', ['LIVE'], { 'compression.zstd.level': 3, 'compression.mt.threads': 2 }, {}, 'invalid_arg', '--comp-mt-threads (compression.mt.threads) and --comp-zstd-level (compression.zstd.level) require --compressed (COMPRESSED)'],
  ['compression-method-needs-sequential', ['LIVE', 'COMPRESSED', 'PARALLEL'], { compression: ['mt'] }, {}, 'invalid_arg', 'compression method mt', '--parallel (PARALLEL)'],
  ['compression-method-needs-sequential', ['LIVE', 'COMPRESSED', 'PARALLEL'], { compression: ['xbzrle'] }, {}, 'invalid_arg', 'compression method xbzrle'],
  ['compression-method-needs-parallel', ['LIVE', 'COMPRESSED'], { compression: ['zstd'] }, {}, 'invalid_arg', 'compression method zstd in --comp-methods (compression) requires --parallel (PARALLEL)'],
  ['compression-method-needs-parallel', ['LIVE', 'COMPRESSED'], { compression: ['xbzrle', 'zlib'] }, {}, 'invalid_arg', 'method zlib'],
  ['compression-one-parallel-method', ['LIVE', 'COMPRESSED', 'PARALLEL'], { compression: ['zlib', 'zstd'] }, {}, 'invalid_arg', 'zlib and zstd', 'one method only'],
  ['compression-parallel-needs-method', ['LIVE', 'COMPRESSED', 'PARALLEL'], {}, {}, 'invalid_arg', '--compressed (COMPRESSED) with --parallel (PARALLEL) requires --comp-methods (compression)'],
  ['compression-tuning-needs-method', ['LIVE', 'COMPRESSED'], { compression: ['xbzrle'], 'compression.mt.level': 3 }, {}, 'invalid_arg', '--comp-mt-level (compression.mt.level) requires method mt in --comp-methods (compression)'],
  ['compression-tuning-needs-method', ['LIVE', 'COMPRESSED'], { 'compression.xbzrle.cache': 1 << 20 }, {}, 'invalid_arg', '--comp-xbzrle-cache (compression.xbzrle.cache) requires method xbzrle'],
  ['compression-tuning-needs-method', ['LIVE', 'COMPRESSED', 'PARALLEL'], { compression: ['zstd'], 'compression.zlib.level': 3 }, {}, 'invalid_arg', 'requires method zlib'],
  ['compression-tuning-needs-method', ['LIVE', 'COMPRESSED', 'PARALLEL'], { compression: ['zlib'], 'compression.zstd.level': 3 }, {}, 'invalid_arg', 'requires method zstd'],
  ['auto-converge-params-need-flag', ['LIVE'], { 'auto_converge.initial': 20 }, {}, 'invalid_arg', '--auto-converge-initial (auto_converge.initial) requires --auto-converge (AUTO_CONVERGE)'],
  ['auto-converge-params-need-flag', ['LIVE'], { 'auto_converge.increment': 5 }, {}, 'invalid_arg', '--auto-converge-increment (auto_converge.increment)'],
  ['parallel-connections-need-flag', ['LIVE'], { 'parallel.connections': 4 }, {}, 'invalid_arg', '--parallel-connections (parallel.connections) requires --parallel (PARALLEL)'],
  ['postcopy-bandwidth-needs-postcopy', ['LIVE'], { 'bandwidth.postcopy': 100 }, {}, 'invalid_arg', '--postcopy-bandwidth (bandwidth.postcopy) requires --postcopy (POSTCOPY)'],
  ['tls-destination-needs-tls', ['LIVE'], { 'tls.destination': 'h' }, {}, 'invalid_arg', '--tls-destination (tls.destination) requires --tls (TLS)'],
  ['destination-name-valid', ['LIVE'], { destination_name: 'a/b' }, {}, 'invalid_arg', "invalid domain name 'a/b' in --dname (destination_name)", "'/'"],
  ['destination-name-valid', ['LIVE'], { destination_name: '-x' }, {}, 'invalid_arg', "must not start with '-'"],
  ['domain-running', ['LIVE'], {}, { active: false }, 'operation_invalid', 'the domain is not running', '--offline (OFFLINE) with --persistent (PERSIST_DEST)'],
  ['domain-running', ['LIVE'], {}, { active: false, domainName: 'web1' }, 'operation_invalid', "domain 'web1' is not running"],
  ['domain-not-io-error', ['LIVE'], {}, { active: true, pausedByIoError: true, domainName: 'web1' }, 'operation_invalid', "domain 'web1' is paused after a disk I/O error"],
  ['domain-holds-its-memory', ['LIVE', 'PEER2PEER'], {}, { active: true, postcopy: 'stale', domainName: 'web1' }, 'operation_invalid', "the post-copy migration of domain 'web1' broke after the switch", '--postcopy-resume (POSTCOPY_RESUME)'],
  ['domain-holds-its-memory', ['LIVE', 'POSTCOPY', 'POSTCOPY_RESUME'], {}, { active: true, postcopy: 'incomplete', domainName: 'web1' }, 'operation_invalid', "domain 'web1' is still receiving its memory by post-copy"],
  ['offline-needs-persistent-guest', ['OFFLINE', 'PERSIST_DEST'], {}, { persistent: false }, 'operation_invalid', '--offline (OFFLINE) requires a persistent guest'],
  ['offline-needs-persistent-guest', ['OFFLINE', 'PERSIST_DEST'], {}, { persistent: false, active: false, domainName: 't1' }, 'operation_invalid', "cannot migrate transient domain 't1' offline"],
  ['rdma-needs-hard-limit', ['LIVE'], { migrate_uri: 'rdma://h:1' }, { hardLimitKiB: undefined }, 'operation_invalid', 'no memory hard limit', '<memtune><hard_limit>'],
  ['rdma-needs-hard-limit', ['LIVE', 'RDMA_PIN_ALL'], { migrate_uri: 'rdma://h:1' }, { hardLimitKiB: undefined }, 'operation_invalid', '--rdma-pin-all (RDMA_PIN_ALL)'],
  ['migrate-disks-exist', ['LIVE', 'NON_SHARED_DISK'], { migrate_disks: ['vda', 'vdz'] }, { disks: [disk('vda')] }, 'invalid_arg', '--migrate-disks (migrate_disks) names disk target vdz'],
  ['migrate-disks-writable', ['LIVE', 'NON_SHARED_DISK'], { migrate_disks: ['vda', 'hdc'] }, { disks: [disk('vda'), disk('hdc', { readonly: true })] }, 'operation_unsupported', 'read-only disk hdc'],
  ['migrate-disks-writable', ['LIVE', 'NON_SHARED_INC'], { migrate_disks: ['sda'] }, { disks: [disk('sda', { sourcePath: undefined })] }, 'operation_unsupported', 'disk sda'],
  ['same-host', ['LIVE'], {}, { sourceHostUuid: 'AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE', destHostUuid: 'aaaaaaaabbbbccccddddeeeeeeeeeeee', destHostName: 'h1' }, 'operation_invalid', 'Attempt to migrate guest to the same host h1'],
];

describe('each rule refuses with its code and a sentence naming the flags', () => {
  it.each(CASES)('%s: %j %j', (id, flags, params, ctx, code, ...fragments) => {
    expect(MIGRATION_RULES.find((r) => r.id === id)?.code, `rule ${id} in the table`).toBe(code);
    expectRefused(() => validate(flags, params, ctx), code, ...fragments);
  });

  it('every rule of the table has a case', () => {
    const tested = new Set([...CASES.map((c) => c[0]), 'known-flags', 'not-implemented']);
    expect(MIGRATION_RULES.map((r) => r.id).filter((id) => !tested.has(id))).toEqual([]);
  });
});

describe('known-flags', () => {
  it.each([[1 << 21], [1 << 25], [0x80000000], [-1], [0.5]])('refuses flags word %s', (flags) => {
    const err = refusal(() => validateMigrationRequest({ flags, params: {} }));
    expect(err.code).toBe('invalid_arg');
    expect(err.message).toMatch(/migration flags/);
  });
});

describe('not-implemented', () => {
  it('has nothing to refuse: every flag, parameter and URI scheme of the tables is implemented', () => {
    expect(MIGRATION_FLAGS.filter((f) => (f.availability as string) === 'later').map((f) => f.name)).toEqual([]);
    expect(MIGRATION_PARAMS.filter((p) => (p.availability as string) === 'later').map((p) => p.name)).toEqual([]);
    const laterSchemes = (MIGRATION_PARAMS as readonly MigrationParamSpec[]).flatMap((p) => (p.schemes ?? []).filter((s) => s.availability === 'later').map((s) => `${p.name}:${s.scheme}`));
    expect(laterSchemes).toEqual([]);
  });

  it('lets the storage-copy flags and parameters through to the combination rules', () => {
    expect(validate(['LIVE', 'NON_SHARED_DISK'], { migrate_disks: ['vda'], disks_port: 49500 }, {}, {}).params.migrate_disks).toEqual(['vda']);
    expect(validate(['LIVE'], { migrate_uri: 'unix:///tmp/m.sock' }, {}, {}).params.migrate_uri).toBe('unix:///tmp/m.sock');
    expect(refusal(() => validate(['NON_SHARED_DISK', 'NON_SHARED_INC'], {}, {}, {})).code).toBe('invalid_arg');
  });

  it('comes after the form checks', () => {
    expect(refusal(() => validateMigrationRequest({ flags: (1 << 2) | (1 << 25), params: {} })).code).toBe('invalid_arg');
    expect(refusal(() => validate(['TUNNELLED'], { nope: 1 }, {}, {})).code).toBe('invalid_arg');
  });
});

describe('accepted requests', () => {
  it.each<[string, string[], Record<string, unknown>, ValidateOptions]>([
    ['plain non-live migration', [], {}, {}],
    ['live peer-to-peer, persistent, undefining the source', ['LIVE', 'PEER2PEER', 'PERSIST_DEST', 'UNDEFINE_SOURCE'], {}, {}],
    ['offline with persistence', ['OFFLINE', 'PERSIST_DEST'], {}, {}],
    ['offline undefining the source', ['OFFLINE', 'PERSIST_DEST', 'UNDEFINE_SOURCE', 'CHANGE_PROTECTION'], {}, {}],
    ['every supported flag but OFFLINE', ['LIVE', 'PEER2PEER', 'PERSIST_DEST', 'UNDEFINE_SOURCE', 'PAUSED', 'CHANGE_PROTECTION', 'UNSAFE', 'ABORT_ON_ERROR'], {}, {}],
    [
      'every supported parameter',
      ['LIVE', 'PERSIST_DEST'],
      { migrate_uri: 'tcp://10.0.0.2:49152', destination_name: 'copy', destination_xml: '<domain/>', persistent_xml: '<domain/>', bandwidth: 100, listen_address: '10.0.0.2' },
      {},
    ],
    ['old-style tcp URI', ['LIVE'], { migrate_uri: 'tcp:10.0.0.2:49152' }, {}],
    ['live post-copy', ['LIVE', 'POSTCOPY'], { 'bandwidth.postcopy': 50 }, LATER],
    ['tunnelled peer-to-peer', ['LIVE', 'PEER2PEER', 'TUNNELLED'], {}, LATER],
    ['TLS with offline', ['OFFLINE', 'PERSIST_DEST', 'TLS'], { 'tls.destination': 'dest.example' }, LATER],
    ['storage copy of chosen disks over a unix socket', ['LIVE', 'NON_SHARED_DISK'], { migrate_disks: ['vda'], disks_uri: 'unix:///run/nbd.sock' }, LATER],
    ['incremental storage copy on a port', ['LIVE', 'NON_SHARED_INC'], { disks_port: 49200 }, LATER],
    ['mt compression tuned', ['LIVE', 'COMPRESSED'], { compression: ['mt', 'xbzrle'], 'compression.mt.level': 1, 'compression.xbzrle.cache': 1 << 26 }, LATER],
    ['parallel zstd', ['LIVE', 'COMPRESSED', 'PARALLEL'], { compression: ['zstd'], 'compression.zstd.level': 3, 'parallel.connections': 8 }, LATER],
    ['auto-converge tuned', ['LIVE', 'AUTO_CONVERGE'], { 'auto_converge.initial': 20, 'auto_converge.increment': 10 }, LATER],
    ['RDMA pinning', ['LIVE', 'RDMA_PIN_ALL'], { migrate_uri: 'rdma://10.0.0.2:4444' }, LATER],
    ['tunnelled storage copy', ['LIVE', 'PEER2PEER', 'TUNNELLED', 'NON_SHARED_INC'], { migrate_disks: ['vda'] }, {}],
    ['memory over a unix socket', ['LIVE'], { migrate_uri: 'unix:///run/ferry/m.sock' }, {}],
    ['storage copy with synchronous writes', ['LIVE', 'PEER2PEER', 'NON_SHARED_DISK', 'NON_SHARED_SYNCHRONOUS_WRITES'], {}, {}],
    ['incremental tunnelled storage copy with synchronous writes', ['LIVE', 'PEER2PEER', 'TUNNELLED', 'NON_SHARED_INC', 'NON_SHARED_SYNCHRONOUS_WRITES'], {}, {}],
    ['parallel zero-copy', ['LIVE', 'PARALLEL', 'ZEROCOPY'], { 'parallel.connections': 4 }, {}],
    ['parallel zero-copy with auto-converge and post-copy', ['LIVE', 'PARALLEL', 'ZEROCOPY', 'AUTO_CONVERGE', 'POSTCOPY'], {}, {}],
  ])('%s', (_title, flags, params, options) => {
    const out = validate(flags, params, {}, options);
    expect(out.flags).toBe(flagsFromNames(flags));
    expect(out.flagNames).toEqual(MIGRATION_FLAGS.filter((f) => flags.includes(f.name)).map((f) => f.name));
  });

  it('accepts PERSIST_DEST and UNDEFINE_SOURCE on a transient guest', () => {
    expect(() => validate(['LIVE', 'PERSIST_DEST', 'UNDEFINE_SOURCE'], {}, { persistent: false, active: true }, {})).not.toThrow();
  });

  it('accepts an offline migration of a shut-off persistent guest', () => {
    expect(() => validate(['OFFLINE', 'PERSIST_DEST'], {}, { persistent: true, active: false }, {})).not.toThrow();
  });

  it('accepts RDMA with a hard limit', () => {
    expect(() => validate(['LIVE', 'RDMA_PIN_ALL'], { migrate_uri: 'rdma://h:1' }, { hardLimitKiB: 4 << 20 })).not.toThrow();
  });

  it('skips the RDMA hard-limit rule when the guest is unknown', () => {
    expect(() => validate(['LIVE', 'RDMA_PIN_ALL'], { migrate_uri: 'rdma://h:1' }, {})).not.toThrow();
  });

  it('accepts a storage copy whose default selection skips read-only and empty disks', () => {
    const disks = [disk('vda'), disk('hdc', { readonly: true }), disk('hdd', { sourcePath: undefined })];
    expect(() => validate(['LIVE', 'NON_SHARED_DISK'], {}, { disks })).not.toThrow();
  });

  it('accepts two different hosts', () => {
    expect(() => validate(['LIVE'], {}, { sourceHostUuid: '0f8fad5b-d9cb-469f-a165-70867728950e', destHostUuid: '1f8fad5b-d9cb-469f-a165-70867728950e' })).not.toThrow();
  });
});

describe('normalisation', () => {
  it('drops bandwidth 0 and disks_port 0, which mean "choose for me"', () => {
    expect(validate(['LIVE', 'NON_SHARED_DISK'], { bandwidth: 0, disks_port: 0 }).params).toEqual({});
  });

  it('keeps postcopy bandwidth 0 (no cap)', () => {
    expect(validate(['LIVE', 'POSTCOPY'], { 'bandwidth.postcopy': 0 }).params).toEqual({ 'bandwidth.postcopy': 0 });
  });

  it('names xbzrle when COMPRESSED comes without a method or PARALLEL', () => {
    expect(validate(['LIVE', 'COMPRESSED']).params).toEqual({ compression: ['xbzrle'] });
    expect(validate(['LIVE', 'COMPRESSED'], { compression: ['mt'] }).params).toEqual({ compression: ['mt'] });
  });

  it('turns a lone list string into a list and leaves the input alone', () => {
    const params = { compression: 'zstd', bandwidth: 0 } as unknown as MigrationParams;
    const out = validateMigrationRequest({ flags: flagsFromNames(['LIVE', 'COMPRESSED', 'PARALLEL']), params }, {}, LATER);
    expect(out.params).toEqual({ compression: ['zstd'] });
    expect(params).toEqual({ compression: 'zstd', bandwidth: 0 });
  });
});

describe('order: the most fundamental problem first', () => {
  it('reports TUNNELLED without PEER2PEER before the post-copy conflict', () => {
    expect(refusal(() => validate(['TUNNELLED', 'POSTCOPY'])).message).toContain('requires --p2p (PEER2PEER)');
  });

  it('reports OFFLINE without PERSIST_DEST before what OFFLINE excludes', () => {
    expect(refusal(() => validate(['OFFLINE', 'LIVE'])).message).toContain('requires --persistent (PERSIST_DEST)');
  });

  it('reports flag conflicts before parameter dependencies', () => {
    expect(refusal(() => validate(['POSTCOPY'], { 'auto_converge.initial': 5 })).message).toContain('requires --live (LIVE)');
  });

  it('reports request problems before guest and host facts', () => {
    const ctx: MigrationContext = { active: false, sourceHostUuid: 'a', destHostUuid: 'a', destHostName: 'h' };
    expect(refusal(() => validate(['LIVE'], { destination_name: '' }, ctx)).code).toBe('invalid_arg');
    expect(refusal(() => validate(['LIVE'], {}, ctx)).message).toContain('domain is not running');
  });
});

describe('same-host', () => {
  const hosts = (source: string, dest: string, destHostName: string): MigrationContext => ({ sourceHostUuid: source, destHostUuid: dest, destHostName });

  it('refuses the same UUID in any spelling', () => {
    const err = refusal(() => validate(['LIVE'], {}, hosts('0F8FAD5B-D9CB-469F-A165-70867728950E', '0f8fad5bd9cb469fa16570867728950e', 'host-a')));
    expect(err.code).toBe('operation_invalid');
    expect(err.message).toBe('Attempt to migrate guest to the same host host-a (host UUID 0f8fad5b-d9cb-469f-a165-70867728950e): source and destination are one host');
  });

  it('accepts different hosts', () => {
    expect(() => validate(['LIVE'], {}, hosts('0f8fad5b-d9cb-469f-a165-70867728950e', '1f8fad5b-d9cb-469f-a165-70867728950e', 'host-b'))).not.toThrow();
  });

  it('keeps control characters of the host name out of the message', () => {
    const err = refusal(() => validate(['LIVE'], {}, hosts('x', 'X', 'evil\nline')));
    expect(err.message).not.toContain('\n');
  });
});

describe('guest facts', () => {
  it('lets OFFLINE move a shut-off guest and one paused by an I/O error', () => {
    expect(() => validate(['OFFLINE', 'PERSIST_DEST'], {}, { active: false, pausedByIoError: false, persistent: true }, {})).not.toThrow();
    expect(() => validate(['OFFLINE', 'PERSIST_DEST'], {}, { active: true, pausedByIoError: true, persistent: true }, {})).not.toThrow();
  });

  it('lets POSTCOPY_RESUME move a source copy left behind by a broken post-copy, and every flag move a guest with no post-copy under way', () => {
    expect(() => validate(['LIVE', 'POSTCOPY', 'POSTCOPY_RESUME'], {}, { active: true, postcopy: 'stale' }, {})).not.toThrow();
    expect(() => validate(['LIVE'], {}, { active: true, postcopy: 'none' }, {})).not.toThrow();
  });

  it('reports a shut-off guest before its being transient, for a live migration', () => {
    expect(refusal(() => validate(['LIVE'], {}, { active: false, persistent: false }, {})).message).toContain('is not running');
  });
});
