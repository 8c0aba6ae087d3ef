/** Writes a DOM back out so that `virsh dumpxml` output round-trips byte for byte. */
import type { Attr, Document, Element, Node } from '@xmldom/xmldom';
import { NodeType } from './dom.js';
import { quoteOf, type Quote } from './xml-quotes.js';

function escapeText(text: string): string {
  return text.replace(/[&<>\r]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&#13;'));
}

// Tabs and line ends are written as references because a parser would
// otherwise turn them into spaces. In a '-quoted value both quotes are
// escaped, as libvirt does; in a "-quoted one only ", as libxml2 does.
function escapeAttribute(value: string, quote: Quote): string {
  const special = quote === "'" ? /[&<>'"\t\n\r]/g : /[&<>"\t\n\r]/g;
  return value.replace(special, (c) => {
    switch (c) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '>':
        return '&gt;';
      case "'":
        return '&apos;';
      case '"':
        return '&quot;';
      case '\t':
        return '&#9;';
      case '\n':
        return '&#10;';
      default:
        return '&#13;';
    }
  });
}

function writeNode(node: Node, out: string[]): void {
  switch (node.nodeType) {
    case NodeType.ELEMENT: {
      const el = node as Element;
      out.push('<', el.nodeName);
      for (let i = 0; i < el.attributes.length; i++) {
        const a = el.attributes.item(i) as Attr;
        const quote = quoteOf(a);
        out.push(' ', a.name, '=', quote, escapeAttribute(a.value, quote), quote);
      }
      if (el.firstChild === null) {
        out.push('/>');
        return;
      }
      out.push('>');
      for (let c: Node | null = el.firstChild; c !== null; c = c.nextSibling) writeNode(c, out);
      out.push('</', el.nodeName, '>');
      return;
    }
    case NodeType.TEXT:
      out.push(escapeText(node.nodeValue ?? ''));
      return;
    case NodeType.CDATA_SECTION:
      out.push('<![CDATA[', node.nodeValue ?? '', ']]>');
      return;
    case NodeType.COMMENT:
      out.push('<!--', node.nodeValue ?? '', '-->');
      return;
    case NodeType.PROCESSING_INSTRUCTION: {
      const data = node.nodeValue ?? '';
      out.push('<?', node.nodeName, data === '' ? '' : ` ${data}`, '?>');
      return;
    }
    default:
      // Document types are refused at parse time; nothing else can occur.
      return;
  }
}

/**
 * Serialises `doc`: attributes in document order, each with the quote
 * character it was parsed with (libvirt's `'` for attributes Ferry adds to a
 * document that has no other), element order, namespace declarations, comments, CDATA and
 * processing instructions as they are in the DOM. Empty elements are written
 * `<x/>`. The output always ends with one newline, like `virsh dumpxml`.
 */
export function serializeDocument(doc: Document): string {
  const out: string[] = [];
  for (let c: Node | null = doc.firstChild; c !== null; c = c.nextSibling) writeNode(c, out);
  const xml = out.join('');
  return xml.endsWith('\n') ? xml : `${xml}\n`;
}
