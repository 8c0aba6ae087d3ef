/**
 * The source QEMU's locked-memory limit (RLIMIT_MEMLOCK) for the flags that
 * make the kernel pin guest memory: RDMA_PIN_ALL pins all of it at once,
 * ZEROCOPY pins the pages queued for sending. libvirt raises the limit for
 * both; Node cannot set another process's rlimits, so this uses util-linux
 * `prlimit`, with fixed arguments, and reads the limit back from
 * /proc/PID/limits.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { FerryError } from '../errors/index.js';

const run = promisify(execFile);

/** What libvirt adds to the guest memory for the locked-memory limit of a QEMU that may pin all of it (1 GiB). */
export const MEMLOCK_OVERHEAD_KIB = 1024 * 1024;

/** A locked-memory limit in bytes; `unlimited` is RLIM_INFINITY. */
export type MemlockBytes = number | 'unlimited';

/** The soft and hard locked-memory limits of a process. */
export interface MemlockLimits {
  soft: MemlockBytes;
  hard: MemlockBytes;
}

/** The locked-memory limits of `pid`, from /proc/PID/limits; undefined when they cannot be read. */
export async function readMemlock(pid: number): Promise<MemlockLimits | undefined> {
  const text = await readFile(`/proc/${pid}/limits`, 'utf8').catch(() => undefined);
  const m = text?.match(/^Max locked memory\s+(\S+)\s+(\S+)/m);
  if (!m) return undefined;
  const value = (v: string): MemlockBytes => (v === 'unlimited' ? 'unlimited' : Number(v));
  return { soft: value(m[1]!), hard: value(m[2]!) };
}

/** Sets both limits of `pid` with prlimit; the error carries prlimit's own reason. */
async function setMemlock(pid: number, limits: MemlockLimits): Promise<void> {
  await run('prlimit', ['--pid', String(pid), `--memlock=${String(limits.soft)}:${String(limits.hard)}`], { timeout: 10_000 });
}

/** The reason a prlimit call failed, for a message. */
function prlimitReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { stderr?: string };
  if (e.code === 'ENOENT') return "the 'prlimit' command (util-linux) is not installed";
  return (e.stderr ?? e.message).trim();
}

/** CAP_IPC_LOCK's bit in a capability set. */
const CAP_IPC_LOCK = 14n;

/**
 * Whether `pid` holds CAP_IPC_LOCK in its effective set (/proc/PID/status
 * CapEff). The kernel does not count pages that MSG_ZEROCOPY pins against
 * RLIMIT_MEMLOCK for such a process (`mm_account_pinned_pages`), so its
 * limit does not matter for zero-copy sending.
 */
export async function hasIpcLock(pid: number): Promise<boolean> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const m = text.match(/^CapEff:\s*([0-9a-f]+)/im);
  return m !== null && ((BigInt(`0x${m[1]!}`) >> CAP_IPC_LOCK) & 1n) === 1n;
}

/** Whether `limit` already allows locking `bytes`. */
const covers = (limit: MemlockBytes, bytes: number): boolean => limit === 'unlimited' || limit >= bytes;

/**
 * Raises RLIMIT_MEMLOCK of `pid` (soft and hard) to `kib` KiB. Raising a
 * hard limit needs CAP_SYS_RESOURCE; where the daemon lacks it (some
 * containers), the refusal is logged and the migration goes on, so that
 * QEMU's own answer (pinning fails) is what the user sees.
 */
export async function raiseMemlock(pid: number, kib: number, log: (msg: string) => void): Promise<void> {
  const bytes = kib * 1024;
  try {
    await setMemlock(pid, { soft: bytes, hard: bytes });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new FerryError('operation_failed', "--rdma-pin-all needs the 'prlimit' command (util-linux)");
    log(`WARNING: cannot raise the locked-memory limit of QEMU (pid ${pid}) to ${kib} KiB for --rdma-pin-all (${prlimitReason(err)}); continuing with the current limit`);
  }
}

/**
 * For ZEROCOPY: makes sure QEMU `pid` may lock `kib` KiB, raising its
 * limits where they are lower (never lowering one), and returns what puts
 * the previous limits back once the migration has failed (a source that
 * migrated away stops anyway). Unlike RDMA's, a limit that cannot be raised
 * refuses the migration before its stream starts: zero-copy sending would
 * otherwise fail part-way, or pin memory the host has not allowed. The
 * exception is a QEMU holding CAP_IPC_LOCK (QEMU run as root), for which
 * the kernel does not apply the limit to pinned pages: that is logged and
 * the migration goes on.
 *
 * @throws FerryError `operation_failed` naming the limit wanted and the host's reason.
 */
export async function raiseMemlockForZeroCopy(pid: number, kib: number, flag: string, log: (msg: string) => void): Promise<() => Promise<void>> {
  const bytes = kib * 1024;
  const before = await readMemlock(pid);
  if (before && covers(before.soft, bytes) && covers(before.hard, bytes)) return async () => undefined;
  const wanted: MemlockLimits = {
    soft: before && covers(before.soft, bytes) ? before.soft : bytes,
    hard: before && covers(before.hard, bytes) ? before.hard : bytes,
  };
  try {
    await setMemlock(pid, wanted);
  } catch (err) {
    if (await hasIpcLock(pid)) {
      log(
        `cannot raise the locked-memory limit of QEMU (pid ${pid}) to ${kib} KiB for ${flag} (${prlimitReason(err)}); ` +
          'going on: QEMU holds CAP_IPC_LOCK, so the kernel does not count the pages zero-copy pins against that limit',
      );
      return async () => undefined;
    }
    throw new FerryError(
      'operation_failed',
      `cannot raise the locked-memory limit (RLIMIT_MEMLOCK) of QEMU (pid ${pid}) to ${kib} KiB for ${flag}: ${prlimitReason(err)}. ` +
        'Zero-copy sending pins the guest pages it sends; give ferryd CAP_SYS_RESOURCE, or migrate without it',
    );
  }
  return async () => {
    if (before) await setMemlock(pid, before).catch(() => undefined);
  };
}
