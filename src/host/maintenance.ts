/**
 * Maintenance mode: a host being emptied for a kernel update or a repair
 * accepts no new guests. While it is on, `start`, `create`, autostart and
 * incoming migrations (prepare) are refused with `operation_invalid`;
 * guests already here keep running, outgoing migrations (which empty the
 * host) and define/undefine stay allowed.
 *
 * The state lives in `STATE_DIR/maintenance.json`, replaced atomically,
 * so it survives a ferryd restart. A file that cannot be read or parsed
 * is reported and read as "in maintenance": refusing new guests until an
 * operator says otherwise is the mistake that loses nothing, and
 * `ferry maintenance enable|disable` rewrites the file.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, plainText } from '../errors/index.js';
import { writeFileAtomic } from '../util/atomic-file.js';

/**
 * Version of `maintenance.json`. Changing the file's fields or their
 * meaning needs a bump; a ferryd that finds a version it does not know
 * reads the file as unreadable (in maintenance).
 */
export const MAINTENANCE_FILE_VERSION = 1;

/** The file's name in the state directory. */
export const MAINTENANCE_FILE = 'maintenance.json';

/** The longest reason accepted, in characters. */
export const MAINTENANCE_REASON_MAX = 1024;

/** Whether a host is in maintenance, since when and why. */
export interface MaintenanceStatus {
  enabled: boolean;
  /** ISO 8601 time maintenance began; null when not in maintenance. */
  since: string | null;
  /** The operator's reason; null when none was given or not in maintenance. */
  reason: string | null;
  /** Set when the state file could not be read: what was wrong and what was decided. */
  problem?: string;
}

/** What an operation that maintenance refuses is, for the message. */
export interface RefusedOperation {
  kind: 'start' | 'create' | 'incoming';
  domain: string;
}

/** The persisted form. */
interface MaintenanceFile {
  version: number;
  enabled: boolean;
  since: string | null;
  reason: string | null;
}

/**
 * Checks a reason from a client: optional, text of at most
 * {@link MAINTENANCE_REASON_MAX} characters without control characters
 * (it is shown in other users' error messages).
 *
 * @throws FerryError `invalid_arg`
 */
export function checkReason(reason: unknown): string | null {
  if (reason === undefined || reason === null) return null;
  if (typeof reason !== 'string') throw new FerryError('invalid_arg', 'the maintenance reason must be text');
  const text = reason.trim();
  if ([...text].length > MAINTENANCE_REASON_MAX) throw new FerryError('invalid_arg', `the maintenance reason is longer than ${MAINTENANCE_REASON_MAX} characters`);
  if (/[\p{Cc}\u2028\u2029]/u.test(text)) throw new FerryError('invalid_arg', 'the maintenance reason may not contain control characters or line breaks');
  return text === '' ? null : text;
}

/**
 * Reads the content of `maintenance.json`. Pure.
 *
 * @throws Error with what is wrong, for a file of another shape or version
 */
export function parseMaintenanceFile(text: string): MaintenanceStatus {
  let v: Partial<MaintenanceFile>;
  try {
    v = JSON.parse(text) as Partial<MaintenanceFile>;
  } catch (err) {
    throw new Error(`not JSON (${(err as Error).message})`);
  }
  if (v === null || typeof v !== 'object') throw new Error('not a JSON object');
  if (v.version !== MAINTENANCE_FILE_VERSION) throw new Error(`version ${plainText(String(v.version))} is not ${MAINTENANCE_FILE_VERSION} (written by another Ferry release?)`);
  if (typeof v.enabled !== 'boolean') throw new Error("'enabled' is not true or false");
  if (!v.enabled) return { enabled: false, since: null, reason: null };
  if (typeof v.since !== 'string' || Number.isNaN(Date.parse(v.since))) throw new Error("'since' is not a time");
  if (v.reason !== null && typeof v.reason !== 'string') throw new Error("'reason' is not text");
  return { enabled: true, since: v.since, reason: v.reason ?? null };
}

/** The refusal of `op` on host `hostName` in maintenance `status`. Pure. */
export function maintenanceRefusal(hostName: string, status: MaintenanceStatus, op: RefusedOperation): FerryError {
  const what =
    op.kind === 'incoming'
      ? `cannot migrate domain '${plainText(String(op.domain))}' to host '${plainText(hostName)}'`
      : `cannot ${op.kind} domain '${plainText(String(op.domain))}' on host '${plainText(hostName)}'`;
  const why = status.reason !== null ? ` (reason: ${plainText(status.reason)})` : '';
  return new FerryError(
    'operation_invalid',
    `${what}: the host is in maintenance since ${status.since ?? 'an unknown time'}${why} and accepts no new starts or incoming migrations; guests already there keep running. End it with 'ferry maintenance disable' on that host, or choose another host`,
  );
}

/** The maintenance state of one host, kept in its state directory. */
export class Maintenance {
  private current: MaintenanceStatus = { enabled: false, since: null, reason: null };
  /** Serialises enable and disable, so the file and the memory agree. */
  private chain: Promise<unknown> = Promise.resolve();
  readonly path: string;

  constructor(
    stateDir: string,
    private readonly hostName: string,
    private readonly log: (msg: string) => void,
    /** Told of every change that enable or disable made (the event bus's `host.maintenance`). */
    private readonly onChange: (status: MaintenanceStatus) => void = () => undefined,
  ) {
    this.path = join(stateDir, MAINTENANCE_FILE);
  }

  /** The state now. */
  get status(): MaintenanceStatus {
    return { ...this.current };
  }

  /** Whether the host is in maintenance. */
  get enabled(): boolean {
    return this.current.enabled;
  }

  /**
   * Reads the state file. No file: not in maintenance. A file that cannot
   * be read or parsed: in maintenance, with the problem logged and shown in
   * the status (the file stays as it is until enable or disable rewrites it).
   */
  async load(): Promise<MaintenanceStatus> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return this.status;
      return this.assumeEnabled(`cannot be read (${(err as Error).message})`);
    }
    try {
      this.current = parseMaintenanceFile(text);
    } catch (err) {
      return this.assumeEnabled(`is damaged: ${(err as Error).message}`);
    }
    if (this.current.enabled) this.log(`host ${this.hostName} is in maintenance since ${this.current.since}${this.current.reason !== null ? ` (${this.current.reason})` : ''}: no new starts or incoming migrations`);
    return this.status;
  }

  private async assumeEnabled(what: string): Promise<MaintenanceStatus> {
    const since = await stat(this.path).then((s) => s.mtime.toISOString(), () => new Date().toISOString());
    const problem = `${this.path} ${what}; ferryd assumes the host is in maintenance (no new starts or incoming migrations) until 'ferry maintenance enable' or 'ferry maintenance disable' rewrites it`;
    this.current = { enabled: true, since, reason: 'maintenance state unreadable', problem };
    this.log(`WARNING: ${problem}`);
    return this.status;
  }

  /**
   * Puts the host in maintenance, durably, before answering. Already in
   * maintenance: keeps `since`, and replaces the reason when one is given.
   *
   * @throws FerryError `invalid_arg` for a bad reason, `write_failed` when the state cannot be saved (the state is then unchanged)
   */
  async enable(reason?: unknown): Promise<MaintenanceStatus> {
    const text = checkReason(reason);
    return this.serial(async () => {
      const prev = this.current;
      const next: MaintenanceStatus = {
        enabled: true,
        since: prev.enabled && prev.problem === undefined && prev.since !== null ? prev.since : new Date().toISOString(),
        reason: text ?? (prev.enabled && prev.problem === undefined ? prev.reason : null),
      };
      await this.save(next);
      if (!prev.enabled || prev.problem !== undefined) this.log(`maintenance enabled on ${this.hostName}${next.reason !== null ? ` (${next.reason})` : ''}: no new starts or incoming migrations`);
      if (!prev.enabled || prev.problem !== undefined || prev.reason !== next.reason) this.onChange(this.status);
      return this.status;
    });
  }

  /**
   * Ends maintenance, durably. A no-op (but for rewriting an unreadable
   * file) when the host is not in maintenance.
   *
   * @throws FerryError `write_failed` when the state cannot be saved (the host then stays in maintenance)
   */
  async disable(): Promise<MaintenanceStatus> {
    return this.serial(async () => {
      const was = this.current.enabled;
      await this.save({ enabled: false, since: null, reason: null });
      if (was) {
        this.log(`maintenance disabled on ${this.hostName}`);
        this.onChange(this.status);
      }
      return this.status;
    });
  }

  /**
   * Refuses `op` while the host is in maintenance.
   *
   * @throws FerryError `operation_invalid` (see {@link maintenanceRefusal})
   */
  refuse(op: RefusedOperation): void {
    if (this.current.enabled) throw maintenanceRefusal(this.hostName, this.current, op);
  }

  /** Written first, then taken: a state that was answered is a state on disk. */
  private async save(next: MaintenanceStatus): Promise<void> {
    const file: MaintenanceFile = { version: MAINTENANCE_FILE_VERSION, enabled: next.enabled, since: next.since, reason: next.reason };
    await writeFileAtomic(this.path, `${JSON.stringify(file, null, 2)}\n`);
    this.current = { enabled: next.enabled, since: next.since, reason: next.reason };
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }
}
