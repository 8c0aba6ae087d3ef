/** Remembers the quote character of each parsed attribute, which the DOM itself forgets. */
import type { Attr, Document, Element } from '@xmldom/xmldom';
import { isElement } from './dom.js';

// libvirt writes ', but libxml2-formatted parts such as <metadata>, and most
// hand-written XML, use ": writing attributes back as they came keeps
// `virsh dumpxml` output and users' files byte-for-byte stable.

/** An attribute delimiter. */
export type Quote = "'" | '"';

const QUOTES = new WeakMap<Attr, Quote>();

// Elements of `doc` in document order, which is also the order of their
// start tags in the source text.
function elementsInOrder(doc: Document): Element[] {
  const out: Element[] = [];
  const stack: Element[] = doc.documentElement === null ? [] : [doc.documentElement];
  while (stack.length > 0) {
    const el = stack.pop()!;
    out.push(el);
    const children: Element[] = [];
    for (let c = el.firstChild; c !== null; c = c.nextSibling) if (isElement(c)) children.push(c);
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
  }
  return out;
}

/**
 * Attaches the quote characters found by the prescan (one list per start
 * tag, one entry per attribute) to the parsed attributes. If the shapes do
 * not match, nothing is recorded and output falls back to `'`.
 */
export function recordQuotes(doc: Document, quotesPerTag: readonly (readonly Quote[])[]): void {
  const elements = elementsInOrder(doc);
  if (elements.length !== quotesPerTag.length) return;
  if (elements.some((el, i) => el.attributes.length !== quotesPerTag[i]!.length)) return;
  elements.forEach((el, i) => {
    for (let j = 0; j < el.attributes.length; j++) QUOTES.set(el.attributes.item(j)!, quotesPerTag[i]![j]!);
  });
}

/**
 * The quote to write `attr` with: as parsed; for an attribute Ferry added,
 * the style of its element's other attributes, else of the root element,
 * else libvirt's `'`.
 */
export function quoteOf(attr: Attr): Quote {
  const own = QUOTES.get(attr);
  if (own !== undefined) return own;
  const candidates = [attr.ownerElement, attr.ownerDocument?.documentElement ?? null];
  for (const el of candidates) {
    if (el === null || el === undefined) continue;
    for (let i = 0; i < el.attributes.length; i++) {
      const q = QUOTES.get(el.attributes.item(i)!);
      if (q !== undefined) return q;
    }
  }
  return "'";
}

/** A deep copy of `doc` that keeps the recorded quote characters. */
export function cloneDocument(doc: Document): Document {
  const copy = doc.cloneNode(true) as Document;
  const from = elementsInOrder(doc);
  const to = elementsInOrder(copy);
  from.forEach((el, i) => {
    const target = to[i]!;
    for (let j = 0; j < el.attributes.length; j++) {
      const q = QUOTES.get(el.attributes.item(j)!);
      if (q !== undefined) QUOTES.set(target.attributes.item(j)!, q);
    }
  });
  return copy;
}
