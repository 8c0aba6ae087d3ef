/** A lexical pass over raw XML that rejects dangerous or sloppy input before any parser sees it. */
import { xmlError } from './refuse.js';
import { MAX_XML_BYTES, MAX_XML_DEPTH } from './xml-limits.js';
import type { Quote } from './xml-quotes.js';

// The five predefined entities and numeric character references: nothing
// else can be valid once DOCTYPE is forbidden.
const REFERENCE = /&(?:(lt|gt|amp|apos|quot)|#([0-9]{1,7})|#x([0-9a-fA-F]{1,6}));/y;

/** XML 1.0 `Char` production, as code points. */
export function isXmlChar(cp: number): boolean {
  return (
    cp === 0x9 ||
    cp === 0xa ||
    cp === 0xd ||
    (cp >= 0x20 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd) ||
    (cp >= 0x10000 && cp <= 0x10ffff)
  );
}

function lineOf(src: string, index: number): number {
  let line = 1;
  for (let i = 0; i < index; i++) if (src.charCodeAt(i) === 10) line++;
  return line;
}

function checkReference(src: string, at: number): number {
  REFERENCE.lastIndex = at;
  const m = REFERENCE.exec(src);
  if (!m) {
    const near = src.slice(at, at + 12).split(/[\s<]/)[0] ?? '&';
    throw xmlError(
      `malformed XML at line ${lineOf(src, at)}: '${near}' is not a valid reference ` +
        `(write '&amp;' for a literal '&'; named entities other than lt, gt, amp, apos, quot are not allowed)`,
    );
  }
  if (m[1] === undefined) {
    const cp = m[2] !== undefined ? Number.parseInt(m[2], 10) : Number.parseInt(m[3]!, 16);
    if (!isXmlChar(cp)) {
      throw xmlError(`malformed XML at line ${lineOf(src, at)}: character reference '${m[0]}' is not a legal XML character`);
    }
  }
  return REFERENCE.lastIndex;
}

function skipPast(src: string, from: number, terminator: string): number {
  const end = src.indexOf(terminator, from);
  // Unterminated constructs are left for the parser to report with position.
  return end < 0 ? src.length : end + terminator.length;
}

/**
 * Refuses, in one linear pass and before building any tree: documents over
 * {@link MAX_XML_BYTES}; characters XML 1.0 forbids (NUL and most control
 * characters); any `<!DOCTYPE`/`<!ENTITY` (so no entity expansion can ever
 * happen, billion-laughs included); references other than the predefined
 * entities and legal character references (xmldom would otherwise keep a bare
 * `&` as text); and nesting deeper than {@link MAX_XML_DEPTH}, which would
 * otherwise cost seconds of parsing before the tree could be checked.
 *
 * The scan skips comments, CDATA sections and processing instructions, and
 * honours quotes inside tags, so it never mistakes their content for markup.
 *
 * It also returns, per start tag in document order, the quote character of
 * each attribute, which the DOM does not keep.
 *
 * @throws FerryError `xml_error` naming the problem and its line.
 */
export function prescanXml(src: string): Quote[][] {
  if (src.length > MAX_XML_BYTES || Buffer.byteLength(src, 'utf8') > MAX_XML_BYTES) {
    throw xmlError(`domain XML is larger than the ${MAX_XML_BYTES}-byte limit`);
  }
  for (let i = 0; i < src.length; i++) {
    const cp = src.codePointAt(i)!;
    if (!isXmlChar(cp)) {
      const what = cp === 0 ? 'NUL character' : `character U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
      throw xmlError(`malformed XML at line ${lineOf(src, i)}: ${what} is not allowed in XML`);
    }
    if (cp > 0xffff) i++;
  }

  const quotes: Quote[][] = [];
  let depth = 0;
  let i = 0;
  while (i < src.length) {
    const ch = src[i];
    if (ch === '&') {
      i = checkReference(src, i);
      continue;
    }
    if (ch !== '<') {
      i++;
      continue;
    }
    if (src.startsWith('<!--', i)) {
      i = skipPast(src, i + 4, '-->');
    } else if (src.startsWith('<![CDATA[', i)) {
      i = skipPast(src, i + 9, ']]>');
    } else if (src.startsWith('<?', i)) {
      i = skipPast(src, i + 2, '?>');
    } else if (src.startsWith('<!', i)) {
      const decl = /^<!([A-Za-z]*)/.exec(src.slice(i, i + 16))?.[1] ?? '';
      throw xmlError(
        `malformed XML at line ${lineOf(src, i)}: <!${decl}> declarations are not allowed in domain XML ` +
          `(DOCTYPE and entity declarations are refused for safety)`,
      );
    } else if (src[i + 1] === '/') {
      depth--;
      i = skipPast(src, i + 2, '>');
    } else {
      // A start tag: find its end, ignoring '>' inside quoted attribute values.
      let j = i + 1;
      let quote: Quote | undefined;
      const tagQuotes: Quote[] = [];
      quotes.push(tagQuotes);
      let last = '';
      for (; j < src.length; j++) {
        const c = src[j]!;
        if (quote !== undefined) {
          if (c === quote) quote = undefined;
          else if (c === '&') j = checkReference(src, j) - 1;
          continue;
        }
        if (c === '"' || c === "'") {
          quote = c;
          tagQuotes.push(c);
        }
        else if (c === '>') break;
        if (!/\s/.test(c)) last = c;
      }
      if (last !== '/') {
        depth++;
        if (depth > MAX_XML_DEPTH) {
          throw xmlError(`domain XML nests elements deeper than the limit of ${MAX_XML_DEPTH} (at line ${lineOf(src, i)})`);
        }
      }
      i = j + 1;
    }
  }
  return quotes;
}
