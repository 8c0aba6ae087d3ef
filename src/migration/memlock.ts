/**
 * RDMA_PIN_ALL pins all guest memory at once, which the kernel allows only
 * up to the process's locked-memory limit; libvirt raises that limit to the
 * domain's memory hard limit. Node cannot set another process's rlimits,
 * so this uses util-linux `prlimit`, with fixed arguments.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { FerryError } from '../errors/index.js';

const run = promisify(execFile);

/**
 * Raises RLIMIT_MEMLOCK of `pid` (soft and hard) to `kib` KiB. Raising a
 * hard limit needs CAP_SYS_RESOURCE; where the daemon lacks it (some
 * containers), the refusal is logged and the migration goes on, so that
 * QEMU's own answer (pinning fails) is what the user sees.
 */
export async function raiseMemlock(pid: number, kib: number, log: (msg: string) => void): Promise<void> {
  const bytes = String(kib * 1024);
  try {
    await run('prlimit', ['--pid', String(pid), `--memlock=${bytes}:${bytes}`], { timeout: 10_000 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new FerryError('operation_failed', "--rdma-pin-all needs the 'prlimit' command (util-linux)");
    log(`WARNING: cannot raise the locked-memory limit of QEMU (pid ${pid}) to ${kib} KiB for --rdma-pin-all (${(e.stderr ?? e.message).trim()}); continuing with the current limit`);
  }
}
