import { describe, it, expect } from 'vitest';
import { DomainRegistry } from '../../src/host/registry.js';
import { HostedDomain, type DomainRuntime } from '../../src/host/hosted-domain.js';
import { DomainDocument } from '../../src/domain/index.js';
import { status, type DomainStatus } from '../../src/domain/lifecycle-state.js';
import { FerryError } from '../../src/errors/index.js';
import type { ListFilter } from '../../src/host/views.js';
import { codeOf } from '../support/refusal.js';

function doc(name: string, uuid: string): DomainDocument {
  return DomainDocument.parse(`<domain type='kvm'><name>${name}</name><uuid>${uuid}</uuid><memory>65536</memory><os><type>hvm</type></os></domain>`);
}

interface Spec {
  name: string;
  uuid: string;
  /** Runtime id; present means QEMU runs. */
  id?: number;
  st?: DomainStatus;
  persistent?: boolean;
  autostart?: boolean;
}

function hosted(s: Spec): HostedDomain {
  const d = doc(s.name, s.uuid);
  const h = new HostedDomain(d.def.uuid, d.def.name, s.persistent === false ? null : d);
  if (s.id !== undefined) {
    h.runtime = { id: s.id, liveDoc: d, stopRequested: null } as unknown as DomainRuntime;
    h.setStatus(s.st ?? status('running', 'booted'));
  } else if (s.st) {
    h.setStatus(s.st);
  }
  h.autostart = s.autostart ?? false;
  return h;
}

const U = {
  web: '5c4e7a63-8f27-4b6e-9c1d-3a2f0e8b7d14',
  db: '0f8fad5b-d9cb-469f-a165-70867728950e',
  cache: '7c9e6679-7425-40de-944b-e07fc1f90ae7',
  batch: '16fd2706-8baf-433b-82eb-8c7fada847da',
  tmp: '886313e1-3b8a-5372-9b90-0c9aee199e5d',
  crashed: 'a3bb189e-8bf9-3888-9912-ace4e6543002',
};

/** A host with one domain of every kind `list` distinguishes. */
function fleet(): DomainRegistry {
  const r = new DomainRegistry();
  r.add(hosted({ name: 'web', uuid: U.web, id: 1, autostart: true })); // running, persistent, autostart
  r.add(hosted({ name: 'db', uuid: U.db, id: 2, st: status('paused', 'user') })); // paused, persistent
  r.add(hosted({ name: 'cache', uuid: U.cache })); // shut off, persistent
  r.add(hosted({ name: 'batch', uuid: U.batch, autostart: true, st: status('shutoff', 'destroyed') })); // shut off, autostart
  r.add(hosted({ name: 'tmp', uuid: U.tmp, id: 3, persistent: false })); // running, transient
  r.add(hosted({ name: 'crashed', uuid: U.crashed, st: status('crashed', 'panicked') })); // inactive, "other"
  return r;
}

const names = (r: DomainRegistry, f: ListFilter) => r.list(f).map((d) => d.name);

describe('DomainRegistry lookup', () => {
  const r = fleet();

  it('finds a domain by name', () => {
    expect(r.lookup('cache').uuid).toBe(U.cache);
    expect(r.getByName('db')?.uuid).toBe(U.db);
    expect(r.getByName('DB')).toBeUndefined();
  });

  it('finds a domain by dashed UUID, by bare hex and in upper case', () => {
    expect(r.lookup(U.db).name).toBe('db');
    expect(r.lookup(U.db.replace(/-/g, '')).name).toBe('db');
    expect(r.lookup(U.db.toUpperCase()).name).toBe('db');
    expect(r.lookup(U.db.replace(/-/g, '').toUpperCase()).name).toBe('db');
    expect(r.getByUuid(U.web.toUpperCase())?.name).toBe('web');
  });

  it('finds an active domain by runtime id', () => {
    expect(r.lookup('1').name).toBe('web');
    expect(r.lookup('3').name).toBe('tmp');
  });

  it('falls back to the name when a number is no runtime id', () => {
    const r2 = new DomainRegistry();
    r2.add(hosted({ name: '42', uuid: U.web }));
    r2.add(hosted({ name: 'other', uuid: U.db, id: 42 }));
    expect(r2.lookup('42').name).toBe('other'); // the id wins, as in virsh
    r2.remove(r2.lookup('other'));
    expect(r2.lookup('42').name).toBe('42');
  });

  it('refuses an unknown name, id or UUID with no_domain', () => {
    expect(codeOf(() => r.lookup('nope'))).toBe('no_domain');
    expect(codeOf(() => r.lookup('99'))).toBe('no_domain');
    expect(codeOf(() => r.lookup('0'))).toBe('no_domain');
    expect(codeOf(() => r.lookup('ffffffff-ffff-4fff-8fff-ffffffffffff'))).toBe('no_domain');
    try {
      r.lookup('nope');
    } catch (err) {
      expect((err as FerryError).message).toContain("'nope'");
    }
  });

  it('does not find an inactive domain by a number', () => {
    // cache has no runtime, so no id.
    expect(codeOf(() => r.lookup('4'))).toBe('no_domain');
  });

  it.each([[''], [undefined], [7], [null], ['x'.repeat(257)]])('refuses a missing or malformed reference %j with invalid_arg', (ref) => {
    expect(codeOf(() => r.lookup(ref))).toBe('invalid_arg');
  });

  it('forgets a removed domain, and removing a stale object leaves the current one', () => {
    const r2 = fleet();
    const cache = r2.lookup('cache');
    r2.remove(cache);
    expect(codeOf(() => r2.lookup('cache'))).toBe('no_domain');
    const again = hosted({ name: 'cache', uuid: U.cache });
    r2.add(again);
    r2.remove(cache); // the old object: no effect
    expect(r2.lookup('cache')).toBe(again);
  });
});

describe('DomainRegistry assertFree / add', () => {
  it('refuses a name already in use with dom_exist', () => {
    const r = fleet();
    expect(codeOf(() => r.assertFree('web', 'ffffffff-ffff-4fff-8fff-ffffffffffff'))).toBe('dom_exist');
    expect(codeOf(() => r.add(hosted({ name: 'web', uuid: 'ffffffff-ffff-4fff-8fff-ffffffffffff' })))).toBe('dom_exist');
  });

  it('refuses a UUID already in use with dom_exist, naming the owner', () => {
    const r = fleet();
    try {
      r.assertFree('web2', U.web);
      expect.unreachable();
    } catch (err) {
      expect((err as FerryError).code).toBe('dom_exist');
      expect((err as FerryError).message).toContain("'web'");
    }
    expect(codeOf(() => r.add(hosted({ name: 'web2', uuid: U.web })))).toBe('dom_exist');
    expect(r.all()).toHaveLength(6);
  });

  it('lets a domain being redefined keep its own name and UUID', () => {
    const r = fleet();
    const web = r.lookup('web');
    expect(() => r.assertFree('web', U.web, web)).not.toThrow();
    // ... but not take another domain's name.
    expect(codeOf(() => r.assertFree('db', U.web, web))).toBe('dom_exist');
  });

  it('accepts a free name and UUID', () => {
    expect(() => fleet().assertFree('new', 'ffffffff-ffff-4fff-8fff-ffffffffffff')).not.toThrow();
  });

  it('lists every domain in name order', () => {
    expect(fleet().all().map((d) => d.name)).toEqual(['batch', 'cache', 'crashed', 'db', 'tmp', 'web']);
  });
});

describe('DomainRegistry list (virsh semantics)', () => {
  const r = fleet();

  it('shows active domains only by default', () => {
    expect(names(r, {})).toEqual(['db', 'tmp', 'web']);
  });

  it('--all shows active and inactive', () => {
    expect(names(r, { all: true })).toEqual(['batch', 'cache', 'crashed', 'db', 'tmp', 'web']);
  });

  it('--inactive shows inactive only', () => {
    expect(names(r, { inactive: true })).toEqual(['batch', 'cache', 'crashed']);
  });

  it('a state filter lifts the active-only default', () => {
    expect(names(r, { state: ['shutoff'] })).toEqual(['batch', 'cache']);
    expect(names(r, { state: ['running'] })).toEqual(['tmp', 'web']);
    expect(names(r, { state: ['paused', 'other'] })).toEqual(['crashed', 'db']);
  });

  it('filters persistent and transient domains', () => {
    expect(names(r, { all: true, persistent: true })).toEqual(['batch', 'cache', 'crashed', 'db', 'web']);
    expect(names(r, { all: true, transient: true })).toEqual(['tmp']);
    expect(names(r, { transient: true })).toEqual(['tmp']);
  });

  it('filters by autostart', () => {
    expect(names(r, { all: true, autostart: true })).toEqual(['batch', 'web']);
    expect(names(r, { autostart: true })).toEqual(['web']);
    expect(names(r, { all: true, noAutostart: true })).toEqual(['cache', 'crashed', 'db', 'tmp']);
  });

  it('combines filters with AND', () => {
    expect(names(r, { inactive: true, autostart: true })).toEqual(['batch']);
    expect(names(r, { state: ['running'], persistent: true })).toEqual(['web']);
  });

  it('returns list rows with id, state and reason', () => {
    expect(r.list({ all: true }).find((d) => d.name === 'db')).toEqual({
      id: 2,
      name: 'db',
      uuid: U.db,
      state: 'paused',
      reason: 'user',
      persistent: true,
      autostart: false,
    });
    expect(r.list({ all: true }).find((d) => d.name === 'cache')).toMatchObject({ id: null, state: 'shutoff', persistent: true });
  });
});
