/** Reads a process's state and start time from /proc/<pid>/stat, to tell "our QEMU still runs" from "gone" or "pid reused". */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/** The fields of /proc/<pid>/stat Ferry needs. */
export interface ProcStat {
  /** One-letter state: R, S, D, Z (zombie), X (dead), T, t, I... */
  state: string;
  /** Start time in clock ticks after boot: with the pid, identifies a process for the life of the host. */
  startTime: number;
  /** CPU time in user and kernel mode, clock ticks (fields 14 and 15). */
  utime: number;
  stime: number;
}

/**
 * Parses the text of /proc/<pid>/stat.
 *
 * The second field is the command name in parentheses and may itself contain
 * spaces and parentheses, so fields are counted from the last `)`.
 *
 * @returns undefined if the text is not in the expected shape
 */
export function parseProcStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close === -1) return undefined;
  const fields = text.slice(close + 1).trim().split(/\s+/);
  // After the comm field: [0] is field 3 (state), so field 22 (starttime) is [19].
  const state = fields[0];
  const startTime = Number(fields[19]);
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (state === undefined || !Number.isSafeInteger(startTime)) return undefined;
  return { state, startTime, utime: Number.isSafeInteger(utime) ? utime : 0, stime: Number.isSafeInteger(stime) ? stime : 0 };
}

/** Reads /proc/<pid>/stat; undefined when the process does not exist. */
export async function readProcStat(pid: number): Promise<ProcStat | undefined> {
  try {
    return parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Clock ticks per second of /proc's times (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** CPU time a process has used, user and kernel mode, in seconds; undefined when it does not exist. */
export async function cpuSecondsOf(pid: number): Promise<number | undefined> {
  const st = await readProcStat(pid);
  return st ? (st.utime + st.stime) / TICKS_PER_SECOND : undefined;
}

/** Synchronous {@link readProcStat}, for the moment right after spawn where awaiting would let the child race ahead. */
export function readProcStatSync(pid: number): ProcStat | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Whether the process `pid` that started at `startTime` is still running.
 *
 * A zombie (Z) or dead (X) entry counts as gone: once ferryd is no longer
 * QEMU's parent, the orphan is reaped by PID 1 whenever it gets round to it,
 * and the guest is over well before. A different start time means the pid
 * was reused by an unrelated process after our QEMU exited.
 */
export async function isProcessAlive(pid: number, startTime: number): Promise<boolean> {
  const st = await readProcStat(pid);
  return st !== undefined && st.startTime === startTime && st.state !== 'Z' && st.state !== 'X';
}
