/** Turns untrusted text into an xmldom Document, refusing anything that is not strictly well-formed. */
import { DOMParser, type Document } from '@xmldom/xmldom';
import { xmlError } from './refuse.js';
import { prescanXml } from './xml-prescan.js';
import { recordQuotes } from './xml-quotes.js';

// XML 1.0 line-end handling only: xmldom's default also folds U+0085, U+2028
// and U+2029 into '\n' (an XML 1.1 rule), which would silently change text
// such as a <description>.
function normalizeXml10LineEndings(src: string): string {
  return src.replace(/\r\n?/g, '\n');
}

/**
 * Parses `src` into a Document. xmldom on its own is lenient (it keeps going
 * after many `error`-level problems and even some `warning`s, such as an
 * unquoted attribute); every report at any level is made fatal here.
 *
 * @throws FerryError `xml_error` for anything {@link prescanXml} refuses and
 *   for any well-formedness problem, with line and column where known.
 */
export function parseXmlStrict(src: string): Document {
  const quotes = prescanXml(src);
  let first: { message: string; line?: number; column?: number } | undefined;
  const parser = new DOMParser({
    locator: true,
    normalizeLineEndings: normalizeXml10LineEndings,
    onError: (_level, message, context: unknown) => {
      if (first === undefined) {
        const locator = (context as { locator?: { lineNumber?: number; columnNumber?: number } } | undefined)?.locator;
        first = { message, line: locator?.lineNumber, column: locator?.columnNumber };
      }
      throw new Error(message);
    },
  });
  let doc: Document;
  try {
    doc = parser.parseFromString(src, 'text/xml');
  } catch (err) {
    // xmldom reports line 0 when it has no position (e.g. for an empty document).
    const line = first?.line !== undefined && first.line > 0 ? first.line : undefined;
    const at = line === undefined ? '' : first?.column !== undefined ? ` at line ${line}, column ${first.column}` : ` at line ${line}`;
    const message = first?.message ?? (err instanceof Error ? err.message : String(err));
    throw xmlError(`malformed XML${at}: ${message.split('\n')[0]}`);
  }
  if (first !== undefined) throw xmlError(`malformed XML: ${first.message}`);
  // The prescan already refuses DOCTYPE; this guards against a parser that
  // finds one some other way.
  if (doc.doctype !== null) throw xmlError('malformed XML: DOCTYPE declarations are not allowed in domain XML');
  recordQuotes(doc, quotes);
  return doc;
}
