/**
 * Persistent domain definitions and autostart marks in the state directory:
 * `domains/NAME.xml` and `autostart/NAME`. Every write is atomic (see
 * util/atomic-file), so a crash leaves the old or the new definition.
 */
import { readdir, readFile, writeFile, mkdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { DomainDocument } from '../domain/index.js';
import { removeFileDurable, writeFileAtomic } from '../util/atomic-file.js';

/** A definition found on disk at start-up. */
export interface StoredDefinition {
  doc: DomainDocument;
  autostart: boolean;
}

/** Reads and writes definitions under one state directory. */
export class DefinitionStore {
  private readonly domainsDir: string;
  private readonly autostartDir: string;

  constructor(stateDir: string, private readonly log: (msg: string) => void) {
    this.domainsDir = join(stateDir, 'domains');
    this.autostartDir = join(stateDir, 'autostart');
  }

  /** Creates the directories. */
  async init(): Promise<void> {
    await mkdir(this.domainsDir, { recursive: true, mode: 0o700 });
    await mkdir(this.autostartDir, { recursive: true, mode: 0o700 });
  }

  /**
   * Loads every definition. A file that no longer parses is not deleted: it
   * is renamed `*.xml.invalid` and logged, so nothing is silently lost.
   */
  async loadAll(): Promise<StoredDefinition[]> {
    const out: StoredDefinition[] = [];
    const autostart = new Set(await readdir(this.autostartDir));
    for (const file of await readdir(this.domainsDir)) {
      if (!file.endsWith('.xml') || file.startsWith('.')) continue;
      const path = join(this.domainsDir, file);
      try {
        const doc = DomainDocument.parse(await readFile(path, 'utf8'));
        if (`${doc.def.name}.xml` !== file) throw new Error(`file name does not match domain name '${doc.def.name}'`);
        out.push({ doc, autostart: autostart.has(doc.def.name) });
      } catch (err) {
        this.log(`ignoring unreadable definition ${path}: ${(err as Error).message}; kept as ${path}.invalid`);
        await rename(path, `${path}.invalid`).catch(() => undefined);
      }
    }
    return out;
  }

  /** Writes (or replaces) the definition of `doc`. */
  async save(doc: DomainDocument): Promise<void> {
    await writeFileAtomic(this.pathOf(doc.def.name), doc.toXml(), 0o600);
  }

  /** Removes a definition and its autostart mark. */
  async remove(name: string): Promise<void> {
    await removeFileDurable(join(this.autostartDir, name));
    await removeFileDurable(this.pathOf(name));
  }

  /** Sets or clears the autostart mark. */
  async setAutostart(name: string, enable: boolean): Promise<void> {
    const mark = join(this.autostartDir, name);
    if (enable) await writeFile(mark, '', { mode: 0o600 });
    else await removeFileDurable(mark);
  }

  private pathOf(name: string): string {
    return join(this.domainsDir, `${name}.xml`);
  }
}
