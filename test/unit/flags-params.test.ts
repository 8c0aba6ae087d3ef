import { describe, expect, it } from 'vitest';
import { MIGRATION_PARAMS, parseCliValue, parseParams, uriScheme, type MigrationParamName } from '../../src/flags/index.js';
import { expectRefused as expectRefusedWith, refusal } from '../support/refusal.js';

/** Asserts `fn` is refused with invalid_arg and a message containing every fragment. */
const expectRefused = (fn: () => unknown, ...fragments: string[]): void => void expectRefusedWith(fn, 'invalid_arg', ...fragments);

describe('parseParams', () => {
  it('accepts every parameter with a valid value and keeps it', () => {
    const raw = {
      migrate_uri: 'tcp://10.0.0.2:49152',
      destination_name: 'copy',
      destination_xml: '<domain/>',
      persistent_xml: '<domain/>',
      bandwidth: 100,
      'bandwidth.postcopy': 0,
      listen_address: '::',
      migrate_disks: ['vda', 'vdb'],
      disks_port: 49153,
      disks_uri: 'unix:///run/sock',
      compression: ['xbzrle', 'mt'],
      'compression.mt.level': 9,
      'compression.mt.threads': 4,
      'compression.mt.dthreads': 1,
      'compression.xbzrle.cache': 64 * 1024 * 1024,
      'compression.zlib.level': 0,
      'compression.zstd.level': 20,
      'auto_converge.initial': 20,
      'auto_converge.increment': 10,
      'parallel.connections': 255,
      'tls.destination': 'dest.example',
      announce_initial: 0,
      announce_max: 100000,
      announce_rounds: 1000,
      announce_step: 1,
    };
    expect(Object.keys(raw).sort()).toEqual(MIGRATION_PARAMS.map((p) => p.name).sort());
    expect(parseParams(raw)).toEqual(raw);
  });

  it('returns a new object and leaves out undefined values', () => {
    const raw = { bandwidth: 5, migrate_uri: undefined };
    const parsed = parseParams(raw);
    expect(parsed).toEqual({ bandwidth: 5 });
    expect(parsed).not.toBe(raw);
    expect(parseParams({})).toEqual({});
  });

  it('accepts a lone string for a list parameter', () => {
    expect(parseParams({ compression: 'zstd', migrate_disks: 'vda' })).toEqual({ compression: ['zstd'], migrate_disks: ['vda'] });
  });

  it('accepts a bigint for an ullong within range', () => {
    expect(parseParams({ bandwidth: 10n })).toEqual({ bandwidth: 10 });
  });

  it('refuses an unknown parameter, naming it', () => {
    expectRefused(() => parseParams({ migrate_url: 'tcp://x' }), "unknown migration parameter 'migrate_url'");
    expectRefused(() => parseParams({ graphics_uri: 'spice://x' }), "'graphics_uri'");
  });

  it('refuses something other than an object', () => {
    expectRefused(() => parseParams([] as unknown as Record<string, unknown>), 'must be an object');
    expectRefused(() => parseParams(null as unknown as Record<string, unknown>), 'must be an object');
  });

  it.each<[string, Record<string, unknown>, ...string[]]>([
    ['a number for a string', { migrate_uri: 5 }, '--migrateuri (migrate_uri)', 'a non-empty string'],
    ['an empty string', { destination_name: '' }, '--dname (destination_name)', 'empty'],
    ['a NUL in a string', { listen_address: 'a\0b' }, 'NUL', "'a\\u0000b'"],
    ['a string for an int', { disks_port: '5' }, '--disks-port (disks_port)', 'an integer from 0 to 65535'],
    ['a fraction', { 'compression.mt.level': 1.5 }, 'compression.mt.level'],
    ['NaN', { bandwidth: Number.NaN }, 'NaN'],
    ['Infinity', { bandwidth: Number.POSITIVE_INFINITY }, 'Infinity'],
    ['a negative ullong', { bandwidth: -1 }, '--bandwidth (bandwidth)', 'from 0 to 8796093022207 MiB/s'],
    ['bandwidth above libvirt ceiling', { bandwidth: 8796093022208 }, 'bandwidth'],
    ['postcopy bandwidth above libvirt ceiling', { 'bandwidth.postcopy': 17592186044416 }, 'bandwidth.postcopy'],
    ['an ullong beyond 2^53', { 'compression.xbzrle.cache': 2n ** 60n }, 'compression.xbzrle.cache'],
    ['a port above 65535', { disks_port: 65536 }, 'disks_port'],
    ['mt level 10', { 'compression.mt.level': 10 }, 'from 0 to 9'],
    ['mt threads 0', { 'compression.mt.threads': 0 }, 'from 1 to 255'],
    ['mt dthreads 256', { 'compression.mt.dthreads': 256 }, 'from 1 to 255'],
    ['zlib level 10', { 'compression.zlib.level': 10 }, 'from 0 to 9'],
    ['zstd level 21', { 'compression.zstd.level': 21 }, 'from 0 to 20'],
    ['zstd level -1', { 'compression.zstd.level': -1 }, 'from 0 to 20'],
    ['auto-converge initial 0', { 'auto_converge.initial': 0 }, 'from 1 to 99 percent'],
    ['auto-converge increment 100', { 'auto_converge.increment': 100 }, 'from 1 to 99 percent'],
    ['parallel connections 0', { 'parallel.connections': 0 }, 'from 1 to 255'],
    ['an xbzrle cache that is not a power of two', { 'compression.xbzrle.cache': 3 * 4096 }, 'a power of two from 4096'],
    ['an xbzrle cache below a page', { 'compression.xbzrle.cache': 2048 }, 'a power of two from 4096'],
    ['an unknown compression method', { compression: ['lz4'] }, "'lz4'", 'xbzrle, mt, zlib, zstd'],
    ['a compression method twice', { compression: ['mt', 'mt'] }, "'mt'", 'given twice'],
    ['an empty list', { migrate_disks: [] }, 'the list is empty'],
    ['a list with a number', { migrate_disks: ['vda', 1] }, 'migrate_disks'],
    ['a bad disk target', { migrate_disks: ['vda', '../etc'] }, "'../etc'", 'disk target name'],
    ['a disk twice', { migrate_disks: ['vda', 'vda'] }, 'given twice'],
    ['an object for a list', { compression: { a: 1 } }, 'compression'],
  ])('refuses %s', (_title, raw, ...fragments) => {
    expectRefused(() => parseParams(raw), 'invalid value', ...fragments);
  });

  it('escapes control characters in the value it shows', () => {
    const err = refusal(() => parseParams({ compression: ['x\ny'] }));
    expect(err.message).toContain("'x\\u000ay'");
    expect(err.message).not.toContain('\n');
  });
});

describe('parseCliValue', () => {
  it.each<[MigrationParamName, string, unknown]>([
    ['migrate_uri', 'tcp://h:1', 'tcp://h:1'],
    ['destination_name', 'copy', 'copy'],
    ['destination_xml', '<domain>\n</domain>', '<domain>\n</domain>'],
    ['bandwidth', '100', 100],
    ['bandwidth', '+7', 7],
    ['bandwidth', '8796093022207', 8796093022207],
    ['disks_port', '0', 0],
    ['compression.zstd.level', '020', 20],
    ['compression.xbzrle.cache', '67108864', 67108864],
    ['migrate_disks', 'vda,vdb', ['vda', 'vdb']],
    ['compression', 'zstd', ['zstd']],
    ['compression', 'xbzrle,mt', ['xbzrle', 'mt']],
  ])('%s %j', (param, text, value) => {
    expect(parseCliValue(param, text)).toEqual(value);
  });

  it.each<[MigrationParamName, string, ...string[]]>([
    ['bandwidth', 'fast', "invalid value 'fast' for --bandwidth (bandwidth)", 'an integer from 0'],
    ['bandwidth', '-1', "'-1'"],
    ['bandwidth', '1e3', "'1e3'"],
    ['bandwidth', '1.5', "'1.5'"],
    ['bandwidth', '', "''"],
    ['bandwidth', ' 5', "' 5'"],
    ['bandwidth', '99999999999999999999999', 'bandwidth'],
    ['disks_port', '65536', '--disks-port (disks_port)', 'from 0 to 65535'],
    ['compression.mt.level', '-0x1', 'compression.mt.level'],
    ['auto_converge.initial', '100', '--auto-converge-initial', 'from 1 to 99 percent'],
    ['compression', 'zlib,', '--comp-methods (compression)', 'empty item'],
    ['compression', 'gzip', "'gzip'", 'one of xbzrle, mt, zlib, zstd'],
    ['migrate_disks', 'vda,,vdb', 'empty item'],
    ['migrate_disks', 'vda, vdb', "' vdb'"],
    ['destination_name', '', '--dname (destination_name)', 'empty'],
  ])('refuses %s %j', (param, text, ...fragments) => {
    expectRefused(() => parseCliValue(param, text), ...fragments);
  });
});

describe('uriScheme', () => {
  it.each([
    ['tcp://h:1', 'tcp'],
    ['tcp:h:1', 'tcp'],
    ['RDMA://h', 'rdma'],
    ['unix:///p', 'unix'],
    ['h:1', 'h'],
    ['/path', undefined],
    ['', undefined],
  ])('%j -> %j', (uri, scheme) => {
    expect(uriScheme(uri)).toBe(scheme);
  });
});
