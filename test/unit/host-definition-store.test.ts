import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DefinitionStore } from '../../src/host/definition-store.js';
import { DomainDocument } from '../../src/domain/index.js';

function doc(name: string, uuid: string, extra = ''): DomainDocument {
  return DomainDocument.parse(
    `<domain type='kvm'><name>${name}</name><uuid>${uuid}</uuid><title>${name} box</title><memory unit='MiB'>64</memory><os><type>hvm</type></os>${extra}</domain>`,
  );
}

const A = '5c4e7a63-8f27-4b6e-9c1d-3a2f0e8b7d14';
const B = '0f8fad5b-d9cb-469f-a165-70867728950e';
const C = '7c9e6679-7425-40de-944b-e07fc1f90ae7';

let dir: string;
let logs: string[];
let store: DefinitionStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-defs-'));
  logs = [];
  store = new DefinitionStore(dir, (m) => logs.push(m));
  await store.init();
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const byName = (defs: Awaited<ReturnType<DefinitionStore['loadAll']>>) =>
  Object.fromEntries(defs.map((d) => [d.doc.def.name, d]));

describe('DefinitionStore', () => {
  it('init creates private domains/ and autostart/ directories (idempotently)', async () => {
    await store.init();
    for (const sub of ['domains', 'autostart']) {
      const st = await stat(join(dir, sub));
      expect(st.isDirectory()).toBe(true);
      expect(st.mode & 0o777).toBe(0o700);
    }
    expect(await store.loadAll()).toEqual([]);
  });

  it('round-trips definitions through save and loadAll', async () => {
    const a = doc('alpha', A);
    const b = doc('beta', B, '<on_crash>destroy</on_crash>');
    await store.save(a);
    await store.save(b);
    const loaded = byName(await store.loadAll());
    expect(Object.keys(loaded).sort()).toEqual(['alpha', 'beta']);
    expect(loaded.alpha!.doc.toXml()).toBe(a.toXml());
    expect(loaded.beta!.doc.toXml()).toBe(b.toXml());
    expect(loaded.alpha!.doc.def.uuid).toBe(A);
    expect(loaded.beta!.doc.def.memoryKiB).toBe(65536);
    expect(logs).toEqual([]);
  });

  it('stores each definition as domains/NAME.xml, private to the owner, with no temp files left', async () => {
    await store.save(doc('alpha', A));
    expect(await readdir(join(dir, 'domains'))).toEqual(['alpha.xml']);
    expect((await stat(join(dir, 'domains', 'alpha.xml'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(dir, 'domains', 'alpha.xml'), 'utf8')).toContain('<name>alpha</name>');
  });

  it('save replaces an earlier definition of the same name', async () => {
    await store.save(doc('alpha', A));
    await store.save(doc('alpha', A, '<description>second</description>'));
    const [only, ...rest] = await store.loadAll();
    expect(rest).toEqual([]);
    expect(only!.doc.toXml()).toContain('<description>second</description>');
  });

  it('loads autostart marks with their definitions, and clears them', async () => {
    await store.save(doc('alpha', A));
    await store.save(doc('beta', B));
    await store.setAutostart('beta', true);
    expect(existsSync(join(dir, 'autostart', 'beta'))).toBe(true);
    let loaded = byName(await store.loadAll());
    expect(loaded.alpha!.autostart).toBe(false);
    expect(loaded.beta!.autostart).toBe(true);

    await store.setAutostart('beta', false);
    await store.setAutostart('beta', false); // clearing twice is fine
    loaded = byName(await store.loadAll());
    expect(loaded.beta!.autostart).toBe(false);
    expect(existsSync(join(dir, 'autostart', 'beta'))).toBe(false);
  });

  it('renames a corrupt definition to .invalid, logs it, and still loads the others', async () => {
    await store.save(doc('alpha', A));
    await store.save(doc('gamma', C));
    const corrupt = join(dir, 'domains', 'broken.xml');
    await writeFile(corrupt, "<domain type='kvm'><name>broken</name><memory>64");

    const loaded = await store.loadAll();
    expect(loaded.map((d) => d.doc.def.name).sort()).toEqual(['alpha', 'gamma']);
    expect(existsSync(corrupt)).toBe(false);
    expect(await readFile(`${corrupt}.invalid`, 'utf8')).toBe("<domain type='kvm'><name>broken</name><memory>64");
    expect(logs).toHaveLength(1);
    expect(logs[0]).toContain(corrupt);

    // The .invalid file is not retried on the next start.
    logs.length = 0;
    expect((await store.loadAll()).map((d) => d.doc.def.name).sort()).toEqual(['alpha', 'gamma']);
    expect(logs).toEqual([]);
  });

  it('sets aside a definition whose file name does not match its domain name', async () => {
    await writeFile(join(dir, 'domains', 'other.xml'), doc('alpha', A).toXml());
    expect(await store.loadAll()).toEqual([]);
    expect(existsSync(join(dir, 'domains', 'other.xml.invalid'))).toBe(true);
    expect(logs[0]).toContain("'alpha'");
  });

  it('ignores files that are not definitions (other suffixes, hidden temp files)', async () => {
    await store.save(doc('alpha', A));
    await writeFile(join(dir, 'domains', 'notes.txt'), 'hello');
    await writeFile(join(dir, 'domains', '.beta.xml'), doc('beta', B).toXml());
    expect((await store.loadAll()).map((d) => d.doc.def.name)).toEqual(['alpha']);
    expect(existsSync(join(dir, 'domains', 'notes.txt'))).toBe(true);
    expect(logs).toEqual([]);
  });

  it('remove deletes the definition and its autostart mark, and tolerates a missing one', async () => {
    await store.save(doc('alpha', A));
    await store.save(doc('beta', B));
    await store.setAutostart('alpha', true);
    await store.remove('alpha');
    expect(await readdir(join(dir, 'domains'))).toEqual(['beta.xml']);
    expect(await readdir(join(dir, 'autostart'))).toEqual([]);
    expect((await store.loadAll()).map((d) => d.doc.def.name)).toEqual(['beta']);
    await expect(store.remove('alpha')).resolves.toBeUndefined();
  });
});
