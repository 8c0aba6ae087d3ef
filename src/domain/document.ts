/** The domain document: a libvirt domain XML DOM that keeps everything, plus the model derived from it. */
import type { Document, Element } from '@xmldom/xmldom';
import { FerryError, showValue } from '../errors/index.js';
import { appendIndented, attr, childElements, insertAfter, insertBefore, optionalChild, removeIndented, setText } from './dom.js';
import { ifnameProblem } from './ifname.js';
import { normaliseDomain } from './normalise.js';
import { hostPathProblem } from './paths.js';
import { domainRoot, readDomain } from './read-domain.js';
import type { DomainDef } from './types.js';
import { normaliseUuid } from './uuid.js';
import { validateDomainName } from './validate-name.js';
import { parseXmlStrict } from './xml-parse.js';
import { cloneDocument } from './xml-quotes.js';
import { serializeDocument } from './xml-serialize.js';

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function invalidPath(path: string, what: string): FerryError | undefined {
  const problem = hostPathProblem(path);
  return problem === undefined ? undefined : new FerryError('invalid_arg', `invalid ${what} ${showValue(path)}: ${problem}`);
}

/** Options for {@link DomainDocument.withDiskSource}. */
export interface DiskSourceOptions {
  /**
   * Also remove the disk's `<backingStore>` chain, for when the new image
   * has a different chain (or none, e.g. a flattened copy). Default: keep.
   */
  removeBackingStore?: boolean;
}

/**
 * A parsed, checked and normalised libvirt domain definition.
 *
 * The DOM is the source of truth: it keeps every element, attribute,
 * namespace and comment, including those Ferry does not understand, and
 * {@link def} is derived from it and deeply frozen, so the two cannot
 * disagree. Documents are immutable: the `with*` methods return a new
 * document with the change made to the nodes in question, leaving the rest
 * of the XML as it was.
 */
export class DomainDocument {
  /** The understood content, derived from the DOM. Frozen: mutate via the `with*` methods. */
  readonly def: DomainDef;
  readonly #dom: Document;

  private constructor(dom: Document, def?: DomainDef) {
    this.#dom = dom;
    if (def !== undefined) {
      this.def = def;
    } else {
      normaliseDomain(dom);
      this.def = deepFreeze(readDomain(dom));
    }
  }

  /**
   * Parses, checks and normalises domain XML (see docs/domain-xml.md for the
   * rules). Pure apart from generating a UUID when `<uuid>` is missing.
   *
   * @throws FerryError `xml_error` for malformed, unsafe or invalid XML;
   *   `config_unsupported` for valid libvirt XML Ferry cannot run.
   */
  static parse(xml: string): DomainDocument {
    // Callers reading from the API or disk may hand over anything at run time.
    if (typeof xml !== 'string') throw new FerryError('xml_error', 'domain XML must be a string');
    return new DomainDocument(parseXmlStrict(xml));
  }

  /**
   * The document as XML: what was parsed, unchanged except for the
   * normalisations and a few purely lexical details (see
   * docs/domain-xml.md), ending with a newline.
   */
  toXml(): string {
    return serializeDocument(this.#dom);
  }

  /** An independent copy. */
  clone(): DomainDocument {
    return new DomainDocument(cloneDocument(this.#dom), this.def);
  }

  // Applies `edit` to a copy of the DOM and derives the model afresh, so an
  // edit can never leave DOM and model out of step.
  #edit(edit: (root: Element, doc: Document) => void): DomainDocument {
    const dom = cloneDocument(this.#dom);
    edit(domainRoot(dom), dom);
    return new DomainDocument(dom);
  }

  /**
   * The same definition under another name.
   *
   * @throws FerryError `invalid_arg` if `name` breaks the name rules.
   */
  withName(name: string): DomainDocument {
    validateDomainName(name);
    return this.#edit((root) => setText(optionalChild(root, 'name')!, name));
  }

  /**
   * The same definition with another UUID (any accepted spelling; stored
   * canonical).
   *
   * @throws FerryError `invalid_arg` if `uuid` is not a UUID.
   */
  withUuid(uuid: string): DomainDocument {
    const canonical = normaliseUuid(uuid);
    return this.#edit((root) => setText(optionalChild(root, 'uuid')!, canonical));
  }

  /**
   * The same definition with the disk `targetDev` pointing at `path`
   * (`<source file>` or `<source dev>` by disk type), e.g. for a migration
   * destination that stores images elsewhere. Other attributes and children
   * of `<source>` are kept; an empty cdrom gets a `<source>`.
   *
   * @throws FerryError `invalid_arg` for an unknown target or a bad path.
   */
  withDiskSource(targetDev: string, path: string, options: DiskSourceOptions = {}): DomainDocument {
    const disk = this.def.disks.find((d) => d.targetDev === targetDev);
    if (disk === undefined) {
      const known = this.def.disks.map((d) => d.targetDev).join(', ') || 'none';
      throw new FerryError('invalid_arg', `domain '${this.def.name}' has no disk with target ${showValue(targetDev)} (disks: ${known})`);
    }
    const bad = invalidPath(path, 'disk source path');
    if (bad !== undefined) throw bad;
    const pathAttr = disk.type === 'file' ? 'file' : 'dev';
    return this.#edit((root, doc) => {
      const devices = optionalChild(root, 'devices')!;
      const el = childElements(devices, 'disk').find((d) => {
        const target = optionalChild(d, 'target');
        return target !== undefined && attr(target, 'dev') === targetDev;
      })!;
      let source = optionalChild(el, 'source');
      if (source === undefined) {
        source = doc.createElement('source');
        const before = optionalChild(el, 'backingStore') ?? optionalChild(el, 'target')!;
        insertBefore(before, source);
      }
      source.setAttribute(pathAttr, path);
      if (options.removeBackingStore === true) {
        const backing = optionalChild(el, 'backingStore');
        if (backing !== undefined) removeIndented(backing);
      }
    });
  }

  /**
   * The same definition with interface number `index` (0-based, in document
   * order) naming `dev` in its `<target dev>`: the live definition of a
   * running guest shows the tap it really uses, as libvirt's does. A missing
   * `<target>` is added after `<source>` (or `<mac>`, or first), where
   * libvirt writes it; its other attributes are kept.
   *
   * @throws FerryError `invalid_arg` for an unknown index, an interface that
   *   has no tap, or a name that breaks Linux's interface name rules.
   */
  withInterfaceTarget(index: number, dev: string): DomainDocument {
    const nic = this.def.interfaces[index];
    if (nic === undefined || nic.type === 'user') {
      throw new FerryError('invalid_arg', `domain '${this.def.name}' has no tap interface number ${index}`);
    }
    const problem = ifnameProblem(dev);
    if (problem !== undefined) throw new FerryError('invalid_arg', `invalid tap name ${showValue(dev)}: ${problem}`);
    return this.#edit((root, doc) => {
      const el = childElements(optionalChild(root, 'devices')!, 'interface')[index]!;
      let target = optionalChild(el, 'target');
      if (target === undefined) {
        target = doc.createElement('target');
        const after = optionalChild(el, 'source') ?? optionalChild(el, 'mac');
        const first = childElements(el)[0];
        if (after !== undefined) insertAfter(after, target);
        else if (first !== undefined) insertBefore(first, target);
        else appendIndented(el, target);
      }
      target.setAttribute('dev', dev);
    });
  }

  /**
   * The same definition with `<emulator>` set to `path` (added to
   * `<devices>` if missing), e.g. for a destination host whose QEMU lives
   * elsewhere.
   *
   * @throws FerryError `invalid_arg` for a bad path.
   */
  withEmulator(path: string): DomainDocument {
    const bad = invalidPath(path, 'emulator path');
    if (bad !== undefined) throw bad;
    return this.#edit((root, doc) => {
      let devices = optionalChild(root, 'devices');
      if (devices === undefined) {
        devices = doc.createElement('devices');
        appendIndented(root, devices);
      }
      const emulator = optionalChild(devices, 'emulator');
      if (emulator !== undefined) {
        setText(emulator, path);
        return;
      }
      const el = doc.createElement('emulator');
      el.appendChild(doc.createTextNode(path));
      const first = childElements(devices)[0];
      if (first !== undefined) insertBefore(first, el);
      else appendIndented(devices, el);
    });
  }
}
