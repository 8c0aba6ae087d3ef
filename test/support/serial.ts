/**
 * Parser for the Ferry test guest's serial output (see guest/README.md for
 * the protocol). Pure functions, no I/O: read the log file yourself and
 * hand the text in.
 *
 * @module
 */

/** Verification mode of the guest (`verify=` on its command line). */
export type VerifyMode = 'full' | 'sample' | 'off';

/** Result of the verification sweep a heartbeat reports on. */
export type CheckStatus = 'OK' | 'CORRUPT' | 'SKIP';

/** `FERRY-GUEST boot ...`: the effective configuration, printed first. */
export interface BootEvent {
  kind: 'boot';
  /** Working set size in MiB (after clamping to available RAM). */
  wsMib: number;
  /** Rewrite rate in 4 KiB pages per second (0 = idle). */
  ratePages: number;
  /** Heartbeat interval in milliseconds. */
  hbMs: number;
  verify: VerifyMode;
}

/** `FERRY-GUEST warn <text>`: a bad or unknown command-line key, a clamped working set, ... */
export interface WarnEvent {
  kind: 'warn';
  text: string;
}

/** `FERRY-GUEST info k=v ...`: diagnostics (clock source, memory layout, ACPI). Values are kept as strings. */
export interface InfoEvent {
  kind: 'info';
  fields: Record<string, string>;
}

/** `FERRY-GUEST no-acpi`: no ACPI PM device, the power button is ignored. */
export interface NoAcpiEvent {
  kind: 'no-acpi';
}

/** `FERRY-GUEST ready pages=<n>`: working set filled, power button armed, heartbeats follow. */
export interface ReadyEvent {
  kind: 'ready';
  pages: number;
}

/** `HB <counter> gen=<n> rewrites=<n> check=<OK|CORRUPT|SKIP> full=<0|1> [disk=<n>]`. */
export interface HeartbeatEvent {
  kind: 'heartbeat';
  /** Starts at 1, +1 per heartbeat, continues across live migration. */
  counter: number;
  /** Highest page generation in the working set. */
  gen: number;
  /** Total pages rewritten since `ready`. */
  rewrites: number;
  /** Sticky: once `CORRUPT`, every later heartbeat says `CORRUPT`. */
  check: CheckStatus;
  /** Whether the reported sweep checked every word (false: first/last word of each page). */
  full: boolean;
  /**
   * Total 512-byte sectors written to the IDE disk so far (`disk=`, last
   * field). Only present when the disk writer is on (`disk=<rate>` on the
   * guest command line and a disk was found).
   */
  diskWrites?: number;
}

/** `CORRUPT page=<p> word=<w> want=0x... got=0x...`: a mismatch found by a sweep. */
export interface CorruptEvent {
  kind: 'corrupt';
  page: number;
  word: number;
  want: number;
  got: number;
}

/** `FERRY-GUEST poweroff`: the ACPI power button was seen; the guest powers off next. */
export interface PoweroffEvent {
  kind: 'poweroff';
}

/** `FERRY-GUEST poweroff-failed`: writing SLP_EN did not power the machine off. */
export interface PoweroffFailedEvent {
  kind: 'poweroff-failed';
}

/**
 * `FERRY-GUEST disk ready sectors=<n> rate=<n> disk_start=<lba> disk_sectors=<n>`:
 * the disk writer found the IDE disk and is on. Printed before `ready`.
 */
export interface DiskReadyEvent {
  kind: 'disk-ready';
  /** Drive capacity in 512-byte sectors, from IDENTIFY (LBA28). */
  sectors: number;
  /** Sectors written per second (`disk=` on the command line). */
  rate?: number;
  /** First LBA of the written range. */
  diskStart?: number;
  /** Sectors in the written range (after clamping to the disk), written round robin. */
  diskSectors?: number;
}

/** `FERRY-GUEST disk none`: the disk writer was asked for but no usable IDE disk answered; it stays off. */
export interface DiskNoneEvent {
  kind: 'disk-none';
}

/**
 * `FERRY-GUEST disk error lba=<n> status=0x... errors=<n>`: the drive
 * reported ERR/DF for a write (e.g. `werror=report`); the sector is
 * skipped. Also `disk timeout ...` (kind `disk-timeout`): the write of
 * `lba` has been pending for another 10 s of guest time (host I/O slow or
 * hung); the guest keeps waiting and repeats the line every 10 s.
 * At most one such line per second.
 */
export interface DiskErrorEvent {
  kind: 'disk-error' | 'disk-timeout';
  /** LBA of the failed write. */
  lba: number;
  /** ATA status register. */
  status: number;
  /** Failed or timed-out writes so far, including ones not reported by a line of their own. */
  errors: number;
}

/** `FERRY-GUEST fault vec=<n>`: CPU exception inside the guest (a guest bug); it halts. */
export interface FaultEvent {
  kind: 'fault';
  vector: number;
}

/** Any line the guest prints, as a discriminated union on `kind`. */
export type SerialEvent =
  | BootEvent
  | WarnEvent
  | InfoEvent
  | NoAcpiEvent
  | ReadyEvent
  | HeartbeatEvent
  | CorruptEvent
  | PoweroffEvent
  | PoweroffFailedEvent
  | FaultEvent
  | DiskReadyEvent
  | DiskNoneEvent
  | DiskErrorEvent;

const DEC = /^\d+$/;
const HEX32 = /^0x[0-9a-fA-F]{1,8}$/;

/** Parses `k=v` tokens; returns null if any token is not of that form. */
function keyValues(tokens: readonly string[]): Map<string, string> | null {
  const out = new Map<string, string>();
  for (const token of tokens) {
    const eq = token.indexOf('=');
    if (eq <= 0) return null;
    out.set(token.slice(0, eq), token.slice(eq + 1));
  }
  return out;
}

function dec(kv: Map<string, string>, key: string): number | null {
  const v = kv.get(key);
  if (v === undefined || !DEC.test(v)) return null;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : null;
}

function hex(kv: Map<string, string>, key: string): number | null {
  const v = kv.get(key);
  return v !== undefined && HEX32.test(v) ? Number.parseInt(v.slice(2), 16) : null;
}

function parseHeartbeat(tokens: readonly string[]): HeartbeatEvent | null {
  const [counterText, ...rest] = tokens;
  if (counterText === undefined || !DEC.test(counterText)) return null;
  const kv = keyValues(rest);
  if (!kv) return null;
  const gen = dec(kv, 'gen');
  const rewrites = dec(kv, 'rewrites');
  const check = kv.get('check');
  const full = kv.get('full');
  if (gen === null || rewrites === null) return null;
  if (check !== 'OK' && check !== 'CORRUPT' && check !== 'SKIP') return null;
  if (full !== '0' && full !== '1') return null;
  const event: HeartbeatEvent = { kind: 'heartbeat', counter: Number(counterText), gen, rewrites, check, full: full === '1' };
  if (kv.has('disk')) {
    const diskWrites = dec(kv, 'disk');
    if (diskWrites === null) return null;
    event.diskWrites = diskWrites;
  }
  return event;
}

function parseDisk(tokens: readonly string[]): SerialEvent | null {
  const [sub, ...fields] = tokens;
  const kv = keyValues(fields);
  if (!kv) return null;
  switch (sub) {
    case 'ready': {
      const sectors = dec(kv, 'sectors');
      if (sectors === null) return null;
      const event: DiskReadyEvent = { kind: 'disk-ready', sectors };
      const optional = [
        ['rate', 'rate'],
        ['disk_start', 'diskStart'],
        ['disk_sectors', 'diskSectors'],
      ] as const;
      for (const [key, prop] of optional) {
        if (!kv.has(key)) continue;
        const v = dec(kv, key);
        if (v === null) return null;
        event[prop] = v;
      }
      return event;
    }
    case 'none':
      return fields.length === 0 ? { kind: 'disk-none' } : null;
    case 'error':
    case 'timeout': {
      const lba = dec(kv, 'lba');
      const status = hex(kv, 'status');
      const errors = dec(kv, 'errors');
      if (lba === null || status === null || errors === null) return null;
      return { kind: sub === 'error' ? 'disk-error' : 'disk-timeout', lba, status, errors };
    }
    default:
      return null;
  }
}

function parseCorrupt(tokens: readonly string[]): CorruptEvent | null {
  const kv = keyValues(tokens);
  if (!kv) return null;
  const page = dec(kv, 'page');
  const word = dec(kv, 'word');
  const want = hex(kv, 'want');
  const got = hex(kv, 'got');
  if (page === null || word === null || want === null || got === null) return null;
  return { kind: 'corrupt', page, word, want, got };
}

function parseGuestLine(tag: string | undefined, tokens: readonly string[], rest: string): SerialEvent | null {
  switch (tag) {
    case 'boot': {
      const kv = keyValues(tokens);
      if (!kv) return null;
      const wsMib = dec(kv, 'ws_mib');
      const ratePages = dec(kv, 'rate_pages');
      const hbMs = dec(kv, 'hb_ms');
      const verify = kv.get('verify');
      if (wsMib === null || ratePages === null || hbMs === null) return null;
      if (verify !== 'full' && verify !== 'sample' && verify !== 'off') return null;
      return { kind: 'boot', wsMib, ratePages, hbMs, verify };
    }
    case 'ready': {
      const kv = keyValues(tokens);
      const pages = kv ? dec(kv, 'pages') : null;
      return pages === null ? null : { kind: 'ready', pages };
    }
    case 'info': {
      const kv = keyValues(tokens);
      return kv ? { kind: 'info', fields: Object.fromEntries(kv) } : null;
    }
    case 'warn':
      return rest.length > 0 ? { kind: 'warn', text: rest } : null;
    case 'fault': {
      const kv = keyValues(tokens);
      const vector = kv ? dec(kv, 'vec') : null;
      return vector === null ? null : { kind: 'fault', vector };
    }
    case 'no-acpi':
      return tokens.length === 0 ? { kind: 'no-acpi' } : null;
    case 'poweroff':
      return tokens.length === 0 ? { kind: 'poweroff' } : null;
    case 'poweroff-failed':
      return tokens.length === 0 ? { kind: 'poweroff-failed' } : null;
    case 'disk':
      return parseDisk(tokens);
    default:
      return null;
  }
}

/**
 * Parses one line of guest serial output.
 *
 * Trailing `\r` and whitespace are ignored. Fields beyond the documented
 * ones (`key=value` appended at the end) are tolerated. Returns null for
 * anything that is not a complete, well-formed guest line: firmware
 * output, a fragment of a line split by a migration, a truncated line.
 *
 * @param line - One line, with or without its `\n`.
 * @returns The event, or null if the line is not a guest event.
 */
export function parseSerialLine(line: string): SerialEvent | null {
  const text = line.replace(/[\r\n\s]+$/, '');
  const tokens = text.split(' ');
  const [head, ...rest] = tokens;
  if (tokens.some((t) => t.length === 0)) return null; // double or leading spaces: not ours
  if (head === 'HB') return parseHeartbeat(rest);
  if (head === 'CORRUPT') return parseCorrupt(rest);
  if (head === 'FERRY-GUEST') {
    const [tag, ...fields] = rest;
    const afterTag = tag === undefined ? '' : text.slice(head.length + 1 + tag.length + 1);
    return parseGuestLine(tag, fields, afterTag);
  }
  return null;
}

/** Options for {@link parseSerialLog}. */
export interface ParseSerialLogOptions {
  /**
   * Also parse the text after the last `\n`. Off by default: while QEMU is
   * still writing, that tail may be a line cut short (e.g. a hex value
   * missing digits) that would parse as a wrong value.
   */
  includePartial?: boolean;
}

/** Everything {@link parseSerialLog} found in a log. */
export interface SerialLog {
  /** All recognised events, in order. */
  events: SerialEvent[];
  /** The heartbeat events, in order. */
  heartbeats: HeartbeatEvent[];
  /** The last heartbeat, if any. */
  lastHeartbeat: HeartbeatEvent | undefined;
  /** True if any `CORRUPT` line was seen or any heartbeat said `check=CORRUPT`. */
  corrupt: boolean;
  /** The (first) boot event, if any. */
  boot: BootEvent | undefined;
  /** The (first) ready event, if any. */
  ready: ReadyEvent | undefined;
  /** True if the guest printed `FERRY-GUEST poweroff`. */
  poweroff: boolean;
  /** The (first) `disk ready` event: the disk writer is on. */
  diskReady: DiskReadyEvent | undefined;
  /** True if the guest printed `FERRY-GUEST disk none` (writer asked for, no usable disk). */
  diskNone: boolean;
  /** `disk error` and `disk timeout` events, in order (rate-limited by the guest: see their `errors` count). */
  diskErrors: DiskErrorEvent[];
  /** Text after the last `\n` (not parsed unless `includePartial`). */
  partial: string;
}

/**
 * Parses a whole serial log.
 *
 * For a live migration, pass the source and destination logs concatenated
 * (`src + dst`): the destination continues the byte stream, and a line the
 * source was writing when it stopped is split across the two files.
 *
 * @param text - The log contents.
 * @param options - See {@link ParseSerialLogOptions}.
 */
export function parseSerialLog(text: string, options: ParseSerialLogOptions = {}): SerialLog {
  const lines = text.split('\n');
  const partial = lines.pop() ?? '';
  if (options.includePartial && partial.length > 0) lines.push(partial);

  const events: SerialEvent[] = [];
  const heartbeats: HeartbeatEvent[] = [];
  let corrupt = false;
  let boot: BootEvent | undefined;
  let ready: ReadyEvent | undefined;
  let poweroff = false;
  let diskReady: DiskReadyEvent | undefined;
  let diskNone = false;
  const diskErrors: DiskErrorEvent[] = [];
  for (const line of lines) {
    const event = parseSerialLine(line);
    if (!event) continue;
    events.push(event);
    switch (event.kind) {
      case 'heartbeat':
        heartbeats.push(event);
        if (event.check === 'CORRUPT') corrupt = true;
        break;
      case 'corrupt':
        corrupt = true;
        break;
      case 'boot':
        boot ??= event;
        break;
      case 'ready':
        ready ??= event;
        break;
      case 'poweroff':
        poweroff = true;
        break;
      case 'disk-ready':
        diskReady ??= event;
        break;
      case 'disk-none':
        diskNone = true;
        break;
      case 'disk-error':
      case 'disk-timeout':
        diskErrors.push(event);
        break;
      default:
        break;
    }
  }
  return {
    events,
    heartbeats,
    lastHeartbeat: heartbeats[heartbeats.length - 1],
    corrupt,
    boot,
    ready,
    poweroff,
    diskReady,
    diskNone,
    diskErrors,
    partial: options.includePartial ? '' : partial,
  };
}

/** A place where the heartbeat counter did not go up by exactly one. */
export interface CounterAnomaly {
  /** Index in the heartbeat array of the offending heartbeat. */
  index: number;
  /** Counter of the heartbeat before it (0 if it is the first and did not start at 1). */
  previous: number;
  /** Its counter. */
  counter: number;
}

/**
 * Finds heartbeats whose counter is not the previous one + 1 (skipped,
 * repeated or going backwards). With `expectStart`, the first heartbeat
 * must have that counter too (1 for a log from boot).
 *
 * @param heartbeats - Heartbeats in log order.
 * @param expectStart - Counter the first heartbeat must have; omit to accept any.
 * @returns The anomalies; empty when the sequence is continuous.
 */
export function findCounterAnomalies(heartbeats: readonly HeartbeatEvent[], expectStart?: number): CounterAnomaly[] {
  const out: CounterAnomaly[] = [];
  heartbeats.forEach((hb, index) => {
    if (index === 0) {
      if (expectStart !== undefined && hb.counter !== expectStart) {
        out.push({ index, previous: expectStart - 1, counter: hb.counter });
      }
      return;
    }
    const previous = heartbeats[index - 1]?.counter ?? 0;
    if (hb.counter !== previous + 1) out.push({ index, previous, counter: hb.counter });
  });
  return out;
}

/** Verdict of {@link checkMigrationContinuity}. */
export interface MigrationContinuity {
  /** True when there are no problems. */
  ok: boolean;
  /** Last complete heartbeat in the source log. */
  sourceLast: HeartbeatEvent | undefined;
  /** First heartbeat after it in the combined stream (printed by the destination, or split across both logs). */
  destinationFirst: HeartbeatEvent | undefined;
  /** Human-readable problems, empty when `ok`. */
  problems: string[];
}

/**
 * Checks that a migrated guest carried on exactly: the first heartbeat after
 * the source's last complete one has counter + 1 and `check=OK`, the whole
 * combined stream has no counter anomaly, and no corruption was reported.
 *
 * @param sourceLog - Serial log of the source QEMU (complete: read it after the source stopped).
 * @param destinationLog - Serial log of the destination QEMU so far.
 */
export function checkMigrationContinuity(sourceLog: string, destinationLog: string): MigrationContinuity {
  const problems: string[] = [];
  const source = parseSerialLog(sourceLog);
  const combined = parseSerialLog(sourceLog + destinationLog);
  const sourceLast = source.lastHeartbeat;
  const after = combined.heartbeats.slice(source.heartbeats.length);
  const destinationFirst = after[0];

  if (!sourceLast) problems.push('no heartbeat in the source log');
  if (!destinationFirst) problems.push('no heartbeat after the migration');
  if (sourceLast && destinationFirst) {
    if (destinationFirst.counter !== sourceLast.counter + 1) {
      problems.push(`first heartbeat after migration is ${destinationFirst.counter}, expected ${sourceLast.counter + 1}`);
    }
    if (destinationFirst.check !== 'OK') {
      problems.push(`first heartbeat after migration has check=${destinationFirst.check}`);
    }
  }
  for (const a of findCounterAnomalies(combined.heartbeats)) {
    problems.push(`heartbeat counter ${a.counter} follows ${a.previous}`);
  }
  if (combined.corrupt) problems.push('guest reported memory corruption');
  return { ok: problems.length === 0, sourceLast, destinationFirst, problems };
}

/**
 * Rewrite rate between two heartbeats in MiB/s, using the nominal interval
 * (`hbMs`) rather than wall-clock time: `(b.rewrites - a.rewrites) pages /
 * ((b.counter - a.counter) * hbMs)`. Returns NaN if `b` is not after `a`.
 *
 * @param a - Earlier heartbeat.
 * @param b - Later heartbeat.
 * @param hbMs - Heartbeat interval in ms (from the boot event).
 */
export function rewriteRateMiBps(a: HeartbeatEvent, b: HeartbeatEvent, hbMs: number): number {
  const beats = b.counter - a.counter;
  if (beats <= 0 || hbMs <= 0) return Number.NaN;
  const pages = b.rewrites - a.rewrites;
  return pages / 256 / ((beats * hbMs) / 1000);
}

/**
 * Disk write rate between two heartbeats in sectors per second, using the
 * nominal interval like {@link rewriteRateMiBps}. Returns NaN if `b` is not
 * after `a` or either heartbeat has no `disk=` field.
 *
 * @param a - Earlier heartbeat.
 * @param b - Later heartbeat.
 * @param hbMs - Heartbeat interval in ms (from the boot event).
 */
export function diskWriteRate(a: HeartbeatEvent, b: HeartbeatEvent, hbMs: number): number {
  const beats = b.counter - a.counter;
  if (beats <= 0 || hbMs <= 0 || a.diskWrites === undefined || b.diskWrites === undefined) return Number.NaN;
  return (b.diskWrites - a.diskWrites) / ((beats * hbMs) / 1000);
}
