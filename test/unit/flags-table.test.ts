import { describe, expect, it } from 'vitest';
import {
  KNOWN_FLAG_BITS,
  MIGRATION_FLAGS,
  MIGRATION_PARAMS,
  MIGRATION_RULES,
  flagRef,
  flagsFromNames,
  hasFlag,
  migrationMode,
  namesFromFlags,
  paramRef,
  renderMigrationFlagsDoc,
} from '../../src/flags/index.js';
import type { MigrationParamSpec } from '../../src/flags/index.js';
import { refusal } from '../support/refusal.js';

/** libvirt's virDomainMigrateFlags, name, value and virsh option, written out independently of the table. */
const LIBVIRT_FLAGS: Array<[string, number, string]> = [
  ['LIVE', 1, '--live'],
  ['PEER2PEER', 2, '--p2p'],
  ['TUNNELLED', 4, '--tunnelled'],
  ['PERSIST_DEST', 8, '--persistent'],
  ['UNDEFINE_SOURCE', 16, '--undefinesource'],
  ['PAUSED', 32, '--suspend'],
  ['NON_SHARED_DISK', 64, '--copy-storage-all'],
  ['NON_SHARED_INC', 128, '--copy-storage-inc'],
  ['CHANGE_PROTECTION', 256, '--change-protection'],
  ['UNSAFE', 512, '--unsafe'],
  ['OFFLINE', 1024, '--offline'],
  ['COMPRESSED', 2048, '--compressed'],
  ['ABORT_ON_ERROR', 4096, '--abort-on-error'],
  ['AUTO_CONVERGE', 8192, '--auto-converge'],
  ['RDMA_PIN_ALL', 16384, '--rdma-pin-all'],
  ['POSTCOPY', 32768, '--postcopy'],
  ['TLS', 65536, '--tls'],
  ['PARALLEL', 131072, '--parallel'],
  ['NON_SHARED_SYNCHRONOUS_WRITES', 262144, '--copy-storage-synchronous-writes'],
  ['POSTCOPY_RESUME', 524288, '--postcopy-resume'],
  ['ZEROCOPY', 1048576, '--zerocopy'],
];

const SUPPORTED = ['LIVE', 'PEER2PEER', 'PERSIST_DEST', 'UNDEFINE_SOURCE', 'PAUSED', 'OFFLINE', 'CHANGE_PROTECTION', 'UNSAFE', 'ABORT_ON_ERROR', 'COMPRESSED', 'AUTO_CONVERGE', 'PARALLEL', 'TLS', 'RDMA_PIN_ALL', 'POSTCOPY', 'TUNNELLED', 'NON_SHARED_DISK', 'NON_SHARED_INC', 'NON_SHARED_SYNCHRONOUS_WRITES', 'POSTCOPY_RESUME', 'ZEROCOPY'];

/** libvirt's typed parameters: field, constant, type and virsh option. */
const LIBVIRT_PARAMS: Array<[string, string, string, string]> = [
  ['migrate_uri', 'VIR_MIGRATE_PARAM_URI', 'string', '--migrateuri'],
  ['destination_name', 'VIR_MIGRATE_PARAM_DEST_NAME', 'string', '--dname'],
  ['destination_xml', 'VIR_MIGRATE_PARAM_DEST_XML', 'string', '--xml'],
  ['persistent_xml', 'VIR_MIGRATE_PARAM_PERSIST_XML', 'string', '--persistent-xml'],
  ['bandwidth', 'VIR_MIGRATE_PARAM_BANDWIDTH', 'ullong', '--bandwidth'],
  ['bandwidth.postcopy', 'VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY', 'ullong', '--postcopy-bandwidth'],
  ['listen_address', 'VIR_MIGRATE_PARAM_LISTEN_ADDRESS', 'string', '--listen-address'],
  ['migrate_disks', 'VIR_MIGRATE_PARAM_MIGRATE_DISKS', 'string-list', '--migrate-disks'],
  ['disks_port', 'VIR_MIGRATE_PARAM_DISKS_PORT', 'int', '--disks-port'],
  ['disks_uri', 'VIR_MIGRATE_PARAM_DISKS_URI', 'string', '--disks-uri'],
  ['compression', 'VIR_MIGRATE_PARAM_COMPRESSION', 'string-list', '--comp-methods'],
  ['compression.mt.level', 'VIR_MIGRATE_PARAM_COMPRESSION_MT_LEVEL', 'int', '--comp-mt-level'],
  ['compression.mt.threads', 'VIR_MIGRATE_PARAM_COMPRESSION_MT_THREADS', 'int', '--comp-mt-threads'],
  ['compression.mt.dthreads', 'VIR_MIGRATE_PARAM_COMPRESSION_MT_DTHREADS', 'int', '--comp-mt-dthreads'],
  ['compression.xbzrle.cache', 'VIR_MIGRATE_PARAM_COMPRESSION_XBZRLE_CACHE', 'ullong', '--comp-xbzrle-cache'],
  ['compression.zlib.level', 'VIR_MIGRATE_PARAM_COMPRESSION_ZLIB_LEVEL', 'int', '--comp-zlib-level'],
  ['compression.zstd.level', 'VIR_MIGRATE_PARAM_COMPRESSION_ZSTD_LEVEL', 'int', '--comp-zstd-level'],
  ['auto_converge.initial', 'VIR_MIGRATE_PARAM_AUTO_CONVERGE_INITIAL', 'int', '--auto-converge-initial'],
  ['auto_converge.increment', 'VIR_MIGRATE_PARAM_AUTO_CONVERGE_INCREMENT', 'int', '--auto-converge-increment'],
  ['parallel.connections', 'VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS', 'int', '--parallel-connections'],
  ['tls.destination', 'VIR_MIGRATE_PARAM_TLS_DESTINATION', 'string', '--tls-destination'],
];

describe('flag table', () => {
  it("has libvirt's flags, values and virsh options, in bit order", () => {
    expect(MIGRATION_FLAGS.map((f) => [f.name, f.value, f.option])).toEqual(LIBVIRT_FLAGS);
  });

  it.each(MIGRATION_FLAGS.map((f) => [f.name, f] as const))('%s: bit, value and libvirt name agree', (name, f) => {
    expect(f.value).toBe(2 ** f.bit);
    expect(f.libvirtName).toBe(`VIR_MIGRATE_${name}`);
  });

  it('has unique names, bits and options', () => {
    const unique = (xs: unknown[]) => new Set(xs).size === xs.length;
    expect(unique(MIGRATION_FLAGS.map((f) => f.name))).toBe(true);
    expect(unique(MIGRATION_FLAGS.map((f) => f.bit))).toBe(true);
    expect(unique([...MIGRATION_FLAGS.map((f) => f.option), ...MIGRATION_PARAMS.map((p) => p.option)])).toBe(true);
  });

  it.each(MIGRATION_FLAGS.map((f) => [f.name, f] as const))('%s is documented', (_name, f) => {
    expect(f.summary.length).toBeGreaterThan(10);
    expect(f.summary).not.toMatch(/\n/);
    expect(f.doc.length).toBeGreaterThan(120);
  });

  it('marks exactly the implemented flags as supported', () => {
    expect(MIGRATION_FLAGS.filter((f) => f.availability === 'supported').map((f) => f.name).sort()).toEqual([...SUPPORTED].sort());
  });

  it('KNOWN_FLAG_BITS covers bits 0 to 20, libvirt 9.0\'s whole set', () => {
    expect(KNOWN_FLAG_BITS).toBe(2 ** 21 - 1);
  });
});

describe('flag helpers', () => {
  it('flagsFromNames accepts short names, libvirt names and virsh options', () => {
    expect(flagsFromNames(['LIVE', 'VIR_MIGRATE_PEER2PEER', '--persistent', 'LIVE'])).toBe(1 | 2 | 8);
    expect(flagsFromNames([])).toBe(0);
    expect(flagsFromNames(MIGRATION_FLAGS.map((f) => f.name))).toBe(KNOWN_FLAG_BITS);
  });

  it('flagsFromNames refuses an unknown name', () => {
    const err = refusal(() => flagsFromNames(['LIVE', 'SPEEDY']));
    expect(err.code).toBe('invalid_arg');
    expect(err.message).toContain("'SPEEDY'");
  });

  it('namesFromFlags lists the set flags in bit order', () => {
    expect(namesFromFlags(0)).toEqual([]);
    expect(namesFromFlags(8 | 1 | 1024)).toEqual(['LIVE', 'PERSIST_DEST', 'OFFLINE']);
    expect(namesFromFlags(KNOWN_FLAG_BITS)).toEqual(MIGRATION_FLAGS.map((f) => f.name));
  });

  it.each([
    ['bit 21 (past libvirt 9.0\'s flags)', 1 << 21, '0x200000'],
    ['bit 31', 0x80000000, '0x80000000'],
    ['a known and an unknown bit', 1 | (1 << 21), '0x200000'],
  ])('namesFromFlags refuses %s', (_title, value, hex) => {
    const err = refusal(() => namesFromFlags(value));
    expect(err.code).toBe('invalid_arg');
    expect(err.message).toContain(hex);
    expect(err.message).toContain('Ferry knows bits 0 to 20');
  });

  it.each([[-1], [1.5], [2 ** 32], [Number.NaN]])('namesFromFlags refuses %s as a flags word', (value) => {
    expect(refusal(() => namesFromFlags(value)).code).toBe('invalid_arg');
  });

  it('hasFlag tests one bit', () => {
    expect(hasFlag(1 | 8, 'LIVE')).toBe(true);
    expect(hasFlag(1 | 8, 'PERSIST_DEST')).toBe(true);
    expect(hasFlag(1 | 8, 'PEER2PEER')).toBe(false);
    expect(hasFlag(1 << 17, 'PARALLEL')).toBe(true);
  });

  it('flagRef and paramRef name the virsh option and the name', () => {
    expect(flagRef('TUNNELLED')).toBe('--tunnelled (TUNNELLED)');
    expect(paramRef('destination_name')).toBe('--dname (destination_name)');
  });
});

describe('parameter table', () => {
  it("has libvirt's parameters, constants, types and virsh options", () => {
    const libvirts = (MIGRATION_PARAMS as readonly MigrationParamSpec[]).filter((p) => p.libvirtName !== undefined);
    expect(libvirts.map((p) => [p.name, p.libvirtName, p.type, p.option])).toEqual(LIBVIRT_PARAMS);
  });

  it("has Ferry's own parameters, which libvirt lacks, after libvirt's: QEMU's self-announce", () => {
    const own = (MIGRATION_PARAMS as readonly MigrationParamSpec[]).filter((p) => p.libvirtName === undefined);
    expect(own.map((p) => [p.name, p.type, p.option])).toEqual([
      ['announce_initial', 'int', '--announce-initial'],
      ['announce_max', 'int', '--announce-max'],
      ['announce_rounds', 'int', '--announce-rounds'],
      ['announce_step', 'int', '--announce-step'],
    ]);
    for (const p of own) expect(p.doc).toContain('libvirt has none');
    expect(MIGRATION_PARAMS.slice(-own.length)).toEqual(own);
  });

  it.each(MIGRATION_PARAMS.map((p) => [p.name, p] as const))('%s is documented', (_name, p) => {
    expect(p.summary.length).toBeGreaterThan(10);
    expect(p.doc.length).toBeGreaterThan(30);
    expect(p.valueName).toMatch(/^[A-Z][A-Z/-]*$/);
  });

  it('gives the limits libvirt and QEMU apply', () => {
    const limits = Object.fromEntries(
      MIGRATION_PARAMS.filter((p) => 'max' in p || 'min' in p).map((p) => [p.name, [(p as { min?: number }).min, (p as { max?: number }).max]]),
    );
    expect(limits).toEqual({
      bandwidth: [0, 8796093022207],
      'bandwidth.postcopy': [0, 17592186044415],
      disks_port: [0, 65535],
      'compression.mt.level': [0, 9],
      'compression.mt.threads': [1, 255],
      'compression.mt.dthreads': [1, 255],
      'compression.xbzrle.cache': [4096, undefined],
      'compression.zlib.level': [0, 9],
      'compression.zstd.level': [0, 20],
      'auto_converge.initial': [1, 99],
      'auto_converge.increment': [1, 99],
      'parallel.connections': [1, 255],
      announce_initial: [0, 100000],
      announce_max: [0, 100000],
      announce_rounds: [0, 1000],
      announce_step: [1, 10000],
    });
  });

  it('says which CLI options take a file', () => {
    expect(MIGRATION_PARAMS.filter((p) => 'cliInput' in p).map((p) => p.name)).toEqual(['destination_xml', 'persistent_xml']);
  });
});

describe('rule table', () => {
  it('has unique ids and a description for every rule', () => {
    expect(new Set(MIGRATION_RULES.map((r) => r.id)).size).toBe(MIGRATION_RULES.length);
    for (const r of MIGRATION_RULES) expect(r.description).toMatch(/^[A-Z`].*\.$/);
  });
});

describe('generated document', () => {
  const doc = renderMigrationFlagsDoc();

  it('documents every flag with its value, option, doc and availability', () => {
    for (const f of MIGRATION_FLAGS) {
      expect(doc).toContain(`### ${f.name} (\`${f.option}\`)`);
      expect(doc).toContain(`Value ${f.value} (1 << ${f.bit})`);
      expect(doc).toContain(f.doc);
    }
    expect(doc).toContain('| 6 | 64 | `NON_SHARED_DISK` | `VIR_MIGRATE_NON_SHARED_DISK` | `--copy-storage-all` | supported |');
    expect(doc).toContain('| 0 | 1 | `LIVE` | `VIR_MIGRATE_LIVE` | `--live` | supported |');
  });

  it('documents every parameter with its type, option and doc', () => {
    for (const p of MIGRATION_PARAMS) {
      expect(doc).toContain(`### \`${p.name}\` (\`${p.option} ${p.valueName}\`)`);
      expect(doc).toContain(p.doc);
      const libvirtName = (p as MigrationParamSpec).libvirtName;
      expect(doc).toContain(`| \`${p.name}\` | ${libvirtName !== undefined ? `\`${libvirtName}\`` : 'none (Ferry only)'} |`);
    }
  });

  it('lists every rule with its id, code and description, in order', () => {
    let at = 0;
    for (const r of MIGRATION_RULES) {
      const row = doc.indexOf(`| \`${r.id}\` | \`${r.code}\``, at);
      expect(row, r.id).toBeGreaterThan(at);
      at = row;
    }
  });
});

describe('migrationMode (the metrics label)', () => {
  it('names how a migration runs: offline first, then peer-to-peer tunnelled or direct, else managed', () => {
    expect(migrationMode(flagsFromNames(['LIVE']))).toBe('managed');
    expect(migrationMode(flagsFromNames(['LIVE', 'PEER2PEER']))).toBe('p2p');
    expect(migrationMode(flagsFromNames(['LIVE', 'PEER2PEER', 'TUNNELLED']))).toBe('p2p-tunnelled');
    expect(migrationMode(flagsFromNames(['OFFLINE', 'PEER2PEER', 'PERSIST_DEST']))).toBe('offline');
    expect(migrationMode(flagsFromNames(['OFFLINE', 'PERSIST_DEST']))).toBe('offline');
  });
});
