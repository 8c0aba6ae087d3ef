/**
 * The machine as Linux describes it in `/proc/cpuinfo`, `/proc/meminfo`
 * and `/sys/devices/system/node/nodeN/meminfo`, parsed. Pure: the callers
 * read the files (see host-facts.ts), so every rule here is unit-tested on
 * fixed text.
 */

/** The host's processors, as `/proc/cpuinfo` lists them. */
export interface CpuInfo {
  /** Logical CPUs (`processor` entries). */
  cpus: number;
  /** The first CPU's `model name` (e.g. `AMD EPYC`), or `unknown`. */
  modelName: string;
  /** The first CPU's `vendor_id`, or `unknown`. */
  vendor: string;
  /** The first CPU's `cpu MHz`, rounded; 0 when not given. */
  mhz: number;
  /** Distinct `physical id`s (1 when the file names none). */
  sockets: number;
  /** `cpu cores` of the first CPU: cores per socket. */
  coresPerSocket: number;
  /** `siblings` / `cpu cores`: hardware threads per core. */
  threadsPerCore: number;
  /** The first CPU's `flags`, as the kernel lists them. */
  flags: string[];
}

/** Memory of the whole machine from `/proc/meminfo`, in KiB. */
export interface MemInfo {
  totalKiB: number;
  freeKiB: number;
  /** `MemAvailable`: what can be allocated without swapping (free plus reclaimable caches). */
  availableKiB: number;
  buffersKiB: number;
  cachedKiB: number;
}

/** One NUMA cell's memory, in KiB. */
export interface NumaCell {
  id: number;
  totalKiB: number;
  freeKiB: number;
}

/** Splits `/proc/cpuinfo` into one key/value map per processor. */
function cpuinfoBlocks(text: string): Array<Map<string, string>> {
  const blocks: Array<Map<string, string>> = [];
  let cur: Map<string, string> | undefined;
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const key = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (key === 'processor') {
      cur = new Map();
      blocks.push(cur);
    }
    cur?.set(key, value);
  }
  return blocks;
}

function positiveInt(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  const n = Number(v);
  return n > 0 ? n : undefined;
}

/**
 * Parses `/proc/cpuinfo` (x86 layout). A topology the file does not give
 * in full (no `physical id`, `cpu cores` or `siblings`, as in some VMs)
 * or that does not add up to the CPU count is reported as libvirt does
 * then: one socket of single-thread cores, one per CPU.
 */
export function parseCpuinfo(text: string): CpuInfo {
  const blocks = cpuinfoBlocks(text);
  const first = blocks[0] ?? new Map<string, string>();
  const cpus = Math.max(1, blocks.length);
  const mhz = Number(first.get('cpu MHz'));
  const physIds = new Set(blocks.map((b) => b.get('physical id')).filter((x): x is string => x !== undefined));
  const sockets = Math.max(1, physIds.size);
  const cores = positiveInt(first.get('cpu cores'));
  const siblings = positiveInt(first.get('siblings'));
  const threads = cores !== undefined && siblings !== undefined && siblings % cores === 0 ? siblings / cores : undefined;
  const consistent = cores !== undefined && threads !== undefined && sockets * cores * threads === cpus;
  return {
    cpus,
    modelName: first.get('model name') || 'unknown',
    vendor: first.get('vendor_id') || 'unknown',
    mhz: Number.isFinite(mhz) && mhz > 0 ? Math.round(mhz) : 0,
    sockets: consistent ? sockets : 1,
    coresPerSocket: consistent ? cores : cpus,
    threadsPerCore: consistent ? threads : 1,
    flags: (first.get('flags') ?? '').split(/\s+/).filter((f) => f !== ''),
  };
}

/** `Key:   1234 kB` lines as a map of KiB (a line without a unit, e.g. HugePages_Total, counts as is). */
function kibFields(text: string, prefix = /^/): Map<string, number> {
  const out = new Map<string, number>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(prefix, '');
    const m = /^([A-Za-z0-9_()]+):\s+(\d+)(?:\s+kB)?\s*$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/**
 * Parses `/proc/meminfo`. `MemAvailable` (Linux 3.14 and later) falls back
 * to free + buffers + cached on an older kernel.
 *
 * @throws Error when the text has no `MemTotal` or `MemFree`: not a meminfo file
 */
export function parseMeminfo(text: string): MemInfo {
  const f = kibFields(text);
  const total = f.get('MemTotal');
  const free = f.get('MemFree');
  if (total === undefined || free === undefined) throw new Error('no MemTotal or MemFree line: not a /proc/meminfo file');
  const buffers = f.get('Buffers') ?? 0;
  const cached = f.get('Cached') ?? 0;
  return { totalKiB: total, freeKiB: free, availableKiB: f.get('MemAvailable') ?? free + buffers + cached, buffersKiB: buffers, cachedKiB: cached };
}

/**
 * Parses a NUMA node's `meminfo` (`Node 0 MemTotal:  1234 kB`).
 *
 * @throws Error when the text has no `MemTotal` or `MemFree`
 */
export function parseNodeMeminfo(id: number, text: string): NumaCell {
  const f = kibFields(text, /^Node\s+\d+\s+/);
  const total = f.get('MemTotal');
  const free = f.get('MemFree');
  if (total === undefined || free === undefined) throw new Error(`no MemTotal or MemFree line in node ${id}'s meminfo`);
  return { id, totalKiB: total, freeKiB: free };
}

/** The ids of the NUMA nodes among the entries of `/sys/devices/system/node` (`node0`, `node1`, ...), sorted. */
export function numaNodeIds(entries: readonly string[]): number[] {
  return entries
    .map((e) => /^node(\d+)$/.exec(e))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}
