/** The few rewrites Ferry makes to a domain DOM on the way in, so stored XML is in one canonical form. */
import type { Document } from '@xmldom/xmldom';
import { attr, childElements, insertAfter, optionalChild, requiredChild, setText, textOf } from './dom.js';
import { showValue } from '../errors/index.js';
import { canonicalMac } from './mac.js';
import { normaliseMemory } from './memory.js';
import { domainRoot, readDomainType } from './read-domain.js';
import { xmlError } from './refuse.js';
import { UUID_EXPECTED, canonicalUuid, newUuid } from './uuid.js';

/**
 * Normalises a freshly parsed domain DOM in place:
 * - `<uuid>` is rewritten in lower-case dashed form, or generated and
 *   inserted right after `<name>` when missing (libvirt does the same, and a
 *   stable UUID is what identifies the guest across a migration);
 * - memory sizes become `unit='KiB'` and `<currentMemory>` is added when
 *   missing (see {@link normaliseMemory});
 * - `<mac address>` values are lower-cased.
 *
 * Running it again on its own output changes nothing.
 *
 * @throws FerryError `xml_error` when the elements it rewrites are invalid.
 */
export function normaliseDomain(doc: Document): void {
  const root = domainRoot(doc);
  readDomainType(root);
  const name = requiredChild(root, 'name');
  const uuidEl = optionalChild(root, 'uuid');
  if (uuidEl === undefined) {
    const el = doc.createElement('uuid');
    el.appendChild(doc.createTextNode(newUuid()));
    insertAfter(name, el);
  } else {
    const text = textOf(uuidEl);
    const uuid = canonicalUuid(text.trim());
    if (uuid === undefined) throw xmlError(`invalid value ${showValue(text)} for <uuid>: ${UUID_EXPECTED}`);
    if (uuid !== text) setText(uuidEl, uuid);
  }
  normaliseMemory(root);
  const devices = optionalChild(root, 'devices');
  for (const iface of devices === undefined ? [] : childElements(devices, 'interface')) {
    for (const mac of childElements(iface, 'mac')) {
      const address = attr(mac, 'address');
      const result = address === undefined ? undefined : canonicalMac(address);
      if (result?.ok === true && result.mac !== address) mac.setAttribute('address', result.mac);
    }
  }
}
