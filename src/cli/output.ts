/** CLI output: virsh-style tables and key/value blocks, `--json`, and `error: ...` lines. */
import { FerryError, toFerryError } from '../errors/index.js';

/** Exit status for success. */
export const EXIT_OK = 0;
/** Exit status for any failed command, as virsh uses 1. */
export const EXIT_FAILURE = 1;
/** Exit status for a command line that could not be parsed. */
export const EXIT_USAGE = 2;

/** Where a command writes; tests replace it. */
export interface Output {
  json: boolean;
  out: (text: string) => void;
  err: (text: string) => void;
}

/** The process's stdout/stderr. */
export function stdOutput(json: boolean): Output {
  return {
    json,
    out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
    err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
  };
}

/** Renders rows like virsh's tables: a header, a dashed rule, left-aligned columns. */
export function renderTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => ` ${cells.map((c, i) => c.padEnd(widths[i]!)).join('   ')}`.trimEnd();
  const rule = '-'.repeat(widths.reduce((a, w) => a + w + 3, 0));
  return [line(headers), rule, ...rows.map(line)].join('\n') + '\n';
}

/** Renders `Key:   value` lines like virsh's dominfo. */
export function renderFields(fields: Array<[string, string]>): string {
  const width = Math.max(...fields.map(([k]) => k.length + 1)) + 1;
  return fields.map(([k, v]) => `${`${k}:`.padEnd(width)}${v}`).join('\n') + '\n';
}

/** Prints a result: JSON in `--json` mode, else the human text. */
export function printResult(o: Output, value: unknown, human: () => string): void {
  if (o.json) o.out(JSON.stringify(value, null, 2));
  else {
    const text = human();
    if (text) o.out(text);
  }
}

/**
 * A failure the command has already printed, in its result (an evacuation's
 * report with `--json`, whose object carries the error): only the exit
 * status is left to give.
 */
export class ReportedFailure extends FerryError {}

/** Prints an error as `error: <sentence>`, or as a JSON object, and returns the exit status. */
export function printError(o: Output, err: unknown): number {
  if (err instanceof ReportedFailure) return EXIT_FAILURE;
  const e: FerryError = toFerryError(err);
  if (o.json) o.out(JSON.stringify({ error: e.toPayload() }, null, 2));
  else o.err(`error: ${e.message}`);
  return EXIT_FAILURE;
}
