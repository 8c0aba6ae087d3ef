/** Small DOM helpers for reading and editing domain XML without losing what Ferry does not understand. */
import type { Element, Node } from '@xmldom/xmldom';
import { xmlError } from './refuse.js';
import { showValue } from '../errors/index.js';

/** DOM node type numbers used by this module. */
export const NodeType = {
  ELEMENT: 1,
  TEXT: 3,
  CDATA_SECTION: 4,
  PROCESSING_INSTRUCTION: 7,
  COMMENT: 8,
} as const;

/** Whether `node` is an element. */
export function isElement(node: Node | null): node is Element {
  return node !== null && node.nodeType === NodeType.ELEMENT;
}

/**
 * Element children of `el`, optionally only those named `name`. Only
 * elements without a namespace count: a `<qemu:commandline>` or a foreign
 * element in `<metadata>` is never mistaken for one of libvirt's own.
 */
export function childElements(el: Element, name?: string): Element[] {
  const out: Element[] = [];
  for (let c = el.firstChild; c !== null; c = c.nextSibling) {
    if (isElement(c) && c.namespaceURI === null && (name === undefined || c.localName === name)) out.push(c);
  }
  return out;
}

/** How an element is named in messages, e.g. `<source>` or `<source> of disk 'vda'`. */
export function label(name: string, where?: string): string {
  return where === undefined ? `<${name}>` : `<${name}> of ${where}`;
}

/**
 * The single child named `name`, or undefined. libvirt silently reads the
 * first of duplicates; Ferry refuses them because the second is almost
 * always a mistake the user would want to hear about.
 */
export function optionalChild(el: Element, name: string, where?: string): Element | undefined {
  const found = childElements(el, name);
  if (found.length > 1) throw xmlError(`${label(el.localName ?? el.nodeName, where)} has more than one <${name}>`);
  return found[0];
}

/** The single child named `name`; refuses a missing one. */
export function requiredChild(el: Element, name: string, where?: string): Element {
  const found = optionalChild(el, name, where);
  if (found === undefined) throw xmlError(`missing <${name}> in ${label(el.localName ?? el.nodeName, where)}`);
  return found;
}

/** The value of the un-namespaced attribute `name`, or undefined when absent. */
export function attr(el: Element, name: string): string | undefined {
  const node = el.getAttributeNode(name);
  return node === null ? undefined : node.value;
}

/** The value of attribute `name`; refuses a missing or empty one. */
export function requiredAttr(el: Element, name: string, where?: string): string {
  const value = attr(el, name);
  if (value === undefined) throw xmlError(`missing attribute '${name}' on ${label(el.localName ?? el.nodeName, where)}`);
  if (value === '') throw xmlError(`empty attribute '${name}' on ${label(el.localName ?? el.nodeName, where)}`);
  return value;
}

/**
 * The text of an element that holds a value, such as `<name>`. Comments
 * inside are ignored; child elements are refused because libvirt would
 * flatten them into the value.
 */
export function textOf(el: Element, where?: string): string {
  let text = '';
  for (let c = el.firstChild; c !== null; c = c.nextSibling) {
    if (c.nodeType === NodeType.TEXT || c.nodeType === NodeType.CDATA_SECTION) text += c.nodeValue ?? '';
    else if (isElement(c)) {
      throw xmlError(`${label(el.localName ?? el.nodeName, where)} must contain only text, found <${c.nodeName}>`);
    }
  }
  return text;
}

/**
 * Refuses text directly inside a structural element such as `<devices>`:
 * stray characters there are usually a typo that would otherwise pass
 * unnoticed.
 */
export function refuseStrayText(el: Element, where?: string): void {
  for (let c = el.firstChild; c !== null; c = c.nextSibling) {
    if ((c.nodeType === NodeType.TEXT || c.nodeType === NodeType.CDATA_SECTION) && (c.nodeValue ?? '').trim() !== '') {
      throw xmlError(`unexpected text ${showValue((c.nodeValue ?? '').trim())} in ${label(el.localName ?? el.nodeName, where)}`);
    }
  }
}

/** Replaces the content of `el` with a single text node. */
export function setText(el: Element, text: string): void {
  while (el.firstChild !== null) el.removeChild(el.firstChild);
  el.appendChild(el.ownerDocument!.createTextNode(text));
}

// The whitespace that precedes `node` in its parent, so an inserted sibling
// can be indented like its neighbours.
function indentBefore(node: Node): string | undefined {
  const prev = node.previousSibling;
  if (prev === null || prev.nodeType !== NodeType.TEXT) return undefined;
  const value = prev.nodeValue ?? '';
  const nl = value.lastIndexOf('\n');
  if (nl < 0 || value.slice(nl).trim() !== '') return undefined;
  return value.slice(nl);
}

/**
 * Inserts `newEl` directly after `ref`, with the same indentation as `ref`,
 * so that pretty-printed input stays pretty-printed.
 */
export function insertAfter(ref: Element, newEl: Element): void {
  const parent = ref.parentNode!;
  const indent = indentBefore(ref);
  const next = ref.nextSibling;
  if (indent !== undefined) parent.insertBefore(ref.ownerDocument!.createTextNode(indent), next);
  parent.insertBefore(newEl, next);
}

/** Inserts `newEl` directly before `ref`, indented like `ref`. */
export function insertBefore(ref: Element, newEl: Element): void {
  const parent = ref.parentNode!;
  const indent = indentBefore(ref);
  parent.insertBefore(newEl, ref);
  if (indent !== undefined) parent.insertBefore(ref.ownerDocument!.createTextNode(indent), ref);
}

/**
 * Appends `newEl` as the last element of `parent`, indented one level deeper
 * than `parent` when the document is pretty-printed.
 */
export function appendIndented(parent: Element, newEl: Element): void {
  const elements = childElements(parent);
  const last = elements[elements.length - 1];
  if (last !== undefined) {
    insertAfter(last, newEl);
    return;
  }
  const doc = parent.ownerDocument!;
  const outer = indentBefore(parent);
  if (outer === undefined) {
    parent.appendChild(newEl);
    return;
  }
  // No element children: only whitespace and comments. Rebuild the
  // whitespace around the new element.
  for (let c = parent.firstChild; c !== null; ) {
    const next = c.nextSibling;
    if (c.nodeType === NodeType.TEXT && (c.nodeValue ?? '').trim() === '') parent.removeChild(c);
    c = next;
  }
  parent.appendChild(doc.createTextNode(`${outer}  `));
  parent.appendChild(newEl);
  parent.appendChild(doc.createTextNode(outer));
}

/** Removes `el` together with the indentation in front of it. */
export function removeIndented(el: Element): void {
  const parent = el.parentNode!;
  const prev = el.previousSibling;
  if (indentBefore(el) !== undefined && prev !== null) parent.removeChild(prev);
  parent.removeChild(el);
}
