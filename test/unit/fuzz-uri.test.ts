/**
 * Connection URIs and migration URIs from a fuzzer: whatever the string,
 * parsing either succeeds or throws a FerryError with a code from the
 * table; it never throws anything else and never accepts control
 * characters.
 */
import { describe, expect, it } from 'vitest';
import { parseConnectionUri } from '../../src/api/uri.js';
import { ERROR_CODES, FerryError } from '../../src/errors/index.js';
import { flagsFromNames, validateMigrationRequest } from '../../src/flags/index.js';
import { Rng } from '../fuzz/rng.js';

const SEEDS = [
  'ferry:///system', 'ferry+unix:///system?socket=/run/ferry/ferryd.sock', 'ferry+tls://host-b/system', 'ferry+tls://[::1]:16614/system?pkipath=/etc/ferry/pki',
  'ferry+tcp://10.0.0.2:16609/system', 'qemu+ssh://root@h/system', 'tcp://10.0.0.2:49152', 'unix:///tmp/m.sock', 'rdma://10.0.0.2:4444',
];

function mutate(rng: Rng, s: string): string {
  let out = s;
  for (let k = rng.int(1, 4); k > 0; k--) {
    const at = rng.int(0, out.length);
    switch (rng.int(0, 3)) {
      case 0: out = out.slice(0, at) + rng.nasty(8) + out.slice(at); break;
      case 1: out = out.slice(0, at) + out.slice(at + rng.int(1, 5)); break;
      case 2: out = out.slice(0, at) + String.fromCharCode(rng.int(0, 0x3000)) + out.slice(at); break;
      default: out = out.slice(0, at) + rng.pick(['%', '%00', '%2F', '@', ':', '[', ']', '?', '#', '&', '=', '//', '\\']) + out.slice(at);
    }
  }
  return out;
}

function fuzzStrings(count: number, seed: number): string[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => (rng.next() < 0.2 ? rng.nasty(80) : mutate(rng, rng.pick(SEEDS))));
}

const known = (e: unknown) => e instanceof FerryError && Object.prototype.hasOwnProperty.call(ERROR_CODES, e.code);

describe('URI fuzzing', () => {
  it('parses or refuses 5000 connection URIs with a coded error, never accepting control characters', () => {
    let accepted = 0;
    for (const uri of fuzzStrings(5000, 1)) {
      try {
        const t = parseConnectionUri(uri);
        accepted++;
        expect(uri, 'accepted a URI with a control character').not.toMatch(/[\u0000-\u001f\u007f]/);
        expect(t.transport).toMatch(/^(unix|tls|tcp)$/);
      } catch (err) {
        expect(known(err), `${JSON.stringify(uri)}: ${String(err)}`).toBe(true);
      }
    }
    expect(accepted).toBeGreaterThan(50);
  });

  it('checks 5000 migration and disk URIs with coded errors only', () => {
    const flags = flagsFromNames(['LIVE', 'NON_SHARED_DISK']);
    for (const [i, uri] of fuzzStrings(5000, 2).entries()) {
      const params = i % 2 === 0 ? { migrate_uri: uri } : { disks_uri: uri };
      try {
        validateMigrationRequest({ flags, params });
      } catch (err) {
        expect(known(err), `${JSON.stringify(uri)}: ${String(err)}`).toBe(true);
      }
    }
  });
});
