/**
 * How much of a guest's RAM its QEMU process holds resident: the guest
 * RAM is one anonymous mapping of the guest's memory size (rounded up a
 * little), and the pages the guest never touched are not in it. Under TCG
 * and KVM alike this bounds what a migration's first pass must send in
 * full (untouched pages are zero and cost a few bytes each).
 */
import { readFile } from 'node:fs/promises';

/** The resident KiB of the mapping of `memoryKiB` (within 4 MiB above it) in /proc/PID/smaps text. */
export function parseGuestRamResidentKiB(smaps: string, memoryKiB: number): number | undefined {
  let size = -1;
  let best: { size: number; rss: number } | undefined;
  for (const line of smaps.split('\n')) {
    if (line.startsWith('Size:')) size = Number(line.slice(5).trim().split(/\s+/)[0]);
    else if (line.startsWith('Rss:') && size >= memoryKiB && size <= memoryKiB + 4096) {
      const rss = Number(line.slice(4).trim().split(/\s+/)[0]);
      // Of several candidates, the one closest to the memory size is the guest's RAM.
      if (!best || size < best.size) best = { size, rss };
    }
  }
  return best?.rss;
}

/** The resident KiB of guest RAM of QEMU process `pid`, or undefined when it cannot be read. */
export async function guestRamResidentKiB(pid: number, memoryKiB: number): Promise<number | undefined> {
  try {
    return parseGuestRamResidentKiB(await readFile(`/proc/${pid}/smaps`, 'utf8'), memoryKiB);
  } catch {
    return undefined;
  }
}
