/** The per-guest status file in the run dir: what a restarted ferryd needs to find and re-attach to a running QEMU. */
import { readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isCanonicalUuid } from '../domain/uuid.js';
import { FerryError, showValue } from '../errors/index.js';
import { writeFileAtomic } from '../util/atomic-file.js';

/**
 * Version of the status file format.
 *
 * Changing the structure (renaming, removing or retyping a field, or adding a
 * required one) needs a bump here and a migration in {@link parseStatus}: a
 * ferryd upgraded while guests run must still read what the old one wrote.
 * Optional additions, and anything under `extra`, need no bump.
 */
export const STATUS_FILE_VERSION = 1;

/** Contents of a status file. */
export interface QemuStatus {
  version: typeof STATUS_FILE_VERSION;
  /** Domain name when started. */
  name: string;
  uuid: string;
  /** QEMU's pid. */
  pid: number;
  /** Start time of `pid` in clock ticks after boot (/proc/<pid>/stat field 22): tells our QEMU from a reused pid. */
  pidStartTime: number;
  /** QMP unix socket path. */
  qmpSocket: string;
  /** ferryd's copy of the first serial port's output. */
  serialLog: string;
  /** QEMU's own stdout/stderr log, if known. */
  stderrLog?: string;
  /** QEMU binary that runs the guest. */
  binary?: string;
  accel: 'kvm' | 'tcg';
  /** ISO 8601 time of launch. */
  startedAt: string;
  /** The live domain XML QEMU was started from (the host layer's business). */
  liveXml?: string;
  /** Last known state, as the host layer names it. */
  state?: string;
  /** Free-form fields of higher layers; kept verbatim. */
  extra?: Record<string, unknown>;
}

/** A status file found in the run dir, read or not. */
export type StatusFileEntry = { path: string; status: QemuStatus } | { path: string; error: FerryError };

/** The suffix of status files, so the host layer can tell them from sockets and logs in the run dir. */
export const STATUS_FILE_SUFFIX = '.status.json';

/**
 * The status file path of a domain in `runDir`, named by its UUID: names
 * can be long or hold any character, a UUID is short and safe as a file name.
 */
export function statusFilePath(runDir: string, domainUuid: string): string {
  if (!isCanonicalUuid(domainUuid)) throw new FerryError('invalid_arg', `${showValue(domainUuid)} is not a domain UUID`);
  return join(runDir, `${domainUuid}${STATUS_FILE_SUFFIX}`);
}

/**
 * The last write or removal queued for each status file. Each one starts
 * after the one before it has ended, so two in flight for the same domain
 * (a state change and a client's suspend, say) land in the order they were
 * asked for: the last one requested is what the file holds.
 */
const queued = new Map<string, Promise<void>>();

/** Runs `op` on `path` after the operations queued on that path before it, whether they succeeded or not. */
function inTurn(path: string, op: () => Promise<void>): Promise<void> {
  const mine = (queued.get(path) ?? Promise.resolve()).then(op, op);
  const settled = mine.catch(() => undefined);
  queued.set(path, settled);
  void settled.then(() => {
    if (queued.get(path) === settled) queued.delete(path);
  });
  return mine;
}

/**
 * Writes a status file atomically (temp file, fsync, rename, fsync dir), so a
 * crash never leaves a half-written one that would strand a running guest.
 * Writes and removals of one file happen in the order they are called, each
 * with the content it was called with.
 *
 * @throws FerryError `invalid_arg` if the status is malformed, `write_failed` on I/O errors
 */
export async function writeStatusFile(path: string, status: QemuStatus): Promise<void> {
  // Validate on the way out too: a bad file only shows up at the worst time, after a restart.
  parseStatus(JSON.parse(JSON.stringify(status)) as unknown, path, 'invalid_arg');
  const text = `${JSON.stringify(status, null, 2)}\n`;
  await inTurn(path, () => writeFileAtomic(path, text));
}

/**
 * Reads and validates a status file.
 *
 * @throws FerryError `no_domain` if it does not exist, `config_unsupported` if it
 *   was written by a newer format version, `operation_failed` if it is malformed
 */
export async function readStatusFile(path: string): Promise<QemuStatus> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new FerryError('no_domain', `no status file at ${path}`, { cause: err });
    }
    throw new FerryError('system_error', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new FerryError('operation_failed', `status file ${path} is not valid JSON`);
  }
  return parseStatus(json, path, 'operation_failed');
}

/**
 * Removes a status file, after the writes to it requested before; a missing
 * one is fine (removal is the end state either way).
 */
export async function removeStatusFile(path: string): Promise<void> {
  await inTurn(path, async () => {
    try {
      await unlink(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new FerryError('system_error', `cannot remove ${path}: ${(err as Error).message}`, { cause: err });
      }
    }
  });
}

/**
 * Reads every status file in `runDir`, for re-attaching to all guests at
 * ferryd start. Unreadable files are returned as errors, not thrown, so one
 * bad file doesn't strand the other guests.
 */
export async function readAllStatusFiles(runDir: string): Promise<StatusFileEntry[]> {
  let names: string[];
  try {
    names = await readdir(runDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new FerryError('system_error', `cannot list ${runDir}: ${(err as Error).message}`, { cause: err });
  }
  const entries: StatusFileEntry[] = [];
  for (const n of names.sort()) {
    if (!n.endsWith(STATUS_FILE_SUFFIX) || n.startsWith('.')) continue;
    const path = join(runDir, n);
    try {
      entries.push({ path, status: await readStatusFile(path) });
    } catch (err) {
      entries.push({
        path,
        error: err instanceof FerryError ? err : new FerryError('operation_failed', String(err), { cause: err }),
      });
    }
  }
  return entries;
}

/**
 * Validates parsed JSON as a {@link QemuStatus}. Unknown top-level fields are
 * dropped (they can only come from a newer ferryd of the same version, which
 * must put them under `extra` anyway).
 */
export function parseStatus(json: unknown, path: string, code: 'operation_failed' | 'invalid_arg'): QemuStatus {
  const bad = (what: string): FerryError => new FerryError(code, `status file ${path}: ${what}`);
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw bad('not a JSON object');
  const o = json as Record<string, unknown>;
  if (typeof o.version !== 'number') throw bad('no version');
  if (o.version > STATUS_FILE_VERSION) {
    throw new FerryError(
      'config_unsupported',
      `status file ${path} has format version ${o.version}, newer than the ${STATUS_FILE_VERSION} this ferryd understands`,
    );
  }
  if (o.version !== STATUS_FILE_VERSION) throw bad(`unknown format version ${String(o.version)}`);
  const str = (k: string): string => {
    const v = o[k];
    if (typeof v !== 'string' || v === '') throw bad(`field "${k}" must be a non-empty string`);
    return v;
  };
  const optStr = (k: string): string | undefined => {
    const v = o[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw bad(`field "${k}" must be a string`);
    return v;
  };
  const posInt = (k: string): number => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad(`field "${k}" must be a whole number`);
    return v;
  };
  const pid = posInt('pid');
  if (pid < 2) throw bad('field "pid" must be a real process id');
  const accel = o.accel;
  if (accel !== 'kvm' && accel !== 'tcg') throw bad('field "accel" must be "kvm" or "tcg"');
  if (o.extra !== undefined && (o.extra === null || typeof o.extra !== 'object' || Array.isArray(o.extra))) {
    throw bad('field "extra" must be an object');
  }
  const startedAt = str('startedAt');
  if (Number.isNaN(Date.parse(startedAt))) throw bad('field "startedAt" must be an ISO 8601 time');
  const status: QemuStatus = {
    version: STATUS_FILE_VERSION,
    name: str('name'),
    uuid: str('uuid'),
    pid,
    pidStartTime: posInt('pidStartTime'),
    qmpSocket: str('qmpSocket'),
    serialLog: str('serialLog'),
    accel,
    startedAt,
  };
  const stderrLog = optStr('stderrLog');
  if (stderrLog !== undefined) status.stderrLog = stderrLog;
  const binary = optStr('binary');
  if (binary !== undefined) status.binary = binary;
  const liveXml = optStr('liveXml');
  if (liveXml !== undefined) status.liveXml = liveXml;
  const state = optStr('state');
  if (state !== undefined) status.state = state;
  if (o.extra !== undefined) status.extra = o.extra as Record<string, unknown>;
  return status;
}
