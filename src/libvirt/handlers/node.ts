/**
 * Node procedures: `virsh nodeinfo` (NODE_GET_INFO), `virsh nodememstats`
 * (NODE_GET_MEMORY_STATS) and `virsh freecell` (NODE_GET_FREE_MEMORY,
 * NODE_GET_CELLS_FREE_MEMORY), answered from the same reading of /proc
 * and /sys as the native `host.facts` (src/host/host-facts.ts), with
 * libvirt's rules for arguments and topology. The replies are pure
 * functions of that reading, exported for the unit tests.
 */
import { FerryError } from '../../errors/index.js';
import { readMachine, type MachineText } from '../../host/host-facts.js';
import { parseCpuinfo, parseMeminfo, parseNodeMeminfo, type NumaCell } from '../../host/proc-facts.js';
import type { ProcedureHandlers } from '../connection.js';
import type { RetOf } from '../procedures.js';

/** libvirt's VIR_NODE_MEMORY_STATS_ALL_CELLS. */
export const ALL_CELLS = -1;
/** The fields NODE_GET_MEMORY_STATS answers, always all four (libvirt's NODE_MEMORY_STATS_NUM). */
const MEMORY_STATS_NUM = 4;
/** libvirt's REMOTE_NODE_MAX_CELLS. */
export const NODE_MAX_CELLS = 1024;

/** The NUMA cells of `m`: the kernel's nodes, or one cell of the whole machine. */
function cellsOf(m: MachineText): NumaCell[] {
  const cells = [...m.nodes].sort(([a], [b]) => a - b).map(([id, text]) => parseNodeMeminfo(id, text));
  if (cells.length > 0) return cells;
  const mem = parseMeminfo(m.meminfo);
  return [{ id: 0, totalKiB: mem.totalKiB, freeKiB: mem.freeKiB }];
}

/**
 * NODE_GET_INFO's reply. Sockets count per NUMA cell, as in libvirt; a
 * topology that does not multiply out to the CPU count is reported as
 * libvirt does then: one cell, one socket, a core per CPU, one thread.
 */
export function nodeInfoReply(m: MachineText): RetOf<'NODE_GET_INFO'> {
  const cpu = parseCpuinfo(m.cpuinfo);
  const mem = parseMeminfo(m.meminfo);
  const nodes = cellsOf(m).length;
  let sockets = cpu.sockets % nodes === 0 ? cpu.sockets / nodes : 0;
  let cores = cpu.coresPerSocket;
  let threads = cpu.threadsPerCore;
  let cells = nodes;
  if (sockets === 0 || cells * sockets * cores * threads !== cpu.cpus) {
    cells = 1;
    sockets = 1;
    cores = cpu.cpus;
    threads = 1;
  }
  const model = Buffer.alloc(32);
  model.write(m.arch, 'ascii');
  return { model: [...model].map((b) => (b > 127 ? b - 256 : b)), memory: mem.totalKiB, cpus: cpu.cpus, mhz: cpu.mhz, nodes: cells, sockets, cores, threads };
}

/**
 * NODE_GET_MEMORY_STATS's reply, as libvirt's Linux driver gives it:
 * `total`, `free`, `buffers`, `cached` in KiB for the machine
 * (cellNum -1) or one NUMA cell (its total and free; buffers and cached
 * are not kept per cell and read 0). `nparams` 0 asks only how many.
 *
 * @throws FerryError `invalid_arg` for flags, a cell that does not exist or too small an `nparams`
 */
export function memoryStatsReply(m: MachineText, a: { nparams: number; cellNum: number; flags: number }): RetOf<'NODE_GET_MEMORY_STATS'> {
  if (a.flags !== 0) throw new FerryError('invalid_arg', `unsupported flags (0x${(a.flags >>> 0).toString(16)}) in function virNodeGetMemoryStats`);
  if (a.nparams < 0 || a.nparams > 16) throw new FerryError('invalid_arg', `nparams ${a.nparams} is out of range (0 to 16)`);
  if (a.nparams === 0) return { params: [], nparams: MEMORY_STATS_NUM };
  if (a.nparams < MEMORY_STATS_NUM) throw new FerryError('invalid_arg', `nparams in virNodeGetMemoryStats must be ${MEMORY_STATS_NUM}`);
  let values: [number, number, number, number];
  if (a.cellNum === ALL_CELLS) {
    const mem = parseMeminfo(m.meminfo);
    values = [mem.totalKiB, mem.freeKiB, mem.buffersKiB, mem.cachedKiB];
  } else {
    const cells = cellsOf(m);
    const cell = cells.find((c) => c.id === a.cellNum);
    if (cell === undefined) throw new FerryError('invalid_arg', `Invalid cell number ${a.cellNum}: this host has NUMA cells ${cells.map((c) => c.id).join(', ')} (or -1 for all)`);
    values = [cell.totalKiB, cell.freeKiB, 0, 0];
  }
  const names = ['total', 'free', 'buffers', 'cached'];
  return { params: names.map((field, i) => ({ field, value: values[i]! })), nparams: MEMORY_STATS_NUM };
}

/**
 * NODE_GET_CELLS_FREE_MEMORY's reply: the free memory in bytes of up to
 * `maxcells` cells from `startCell` on.
 *
 * @throws FerryError `invalid_arg` for a negative start, a count out of 1 to 1024, or a start beyond the last cell
 */
export function cellsFreeReply(m: MachineText, a: { startCell: number; maxcells: number }): RetOf<'NODE_GET_CELLS_FREE_MEMORY'> {
  if (a.startCell < 0) throw new FerryError('invalid_arg', `startCell must be 0 or more, not ${a.startCell}`);
  if (a.maxcells < 1 || a.maxcells > NODE_MAX_CELLS) throw new FerryError('invalid_arg', `maxcells must be 1 to ${NODE_MAX_CELLS}, not ${a.maxcells}`);
  const cells = cellsOf(m);
  const last = cells[cells.length - 1]!.id;
  if (a.startCell > last) throw new FerryError('invalid_arg', `start cell ${a.startCell} out of range (0-${last})`);
  const end = a.startCell + a.maxcells - 1;
  // Ids without a node (a gap in the numbering) count as cells with nothing free, as libvirt reports them.
  const out: number[] = [];
  for (let id = a.startCell; id <= Math.min(end, last); id++) out.push((cells.find((c) => c.id === id)?.freeKiB ?? 0) * 1024);
  return { cells: out };
}

/** NODE_GET_FREE_MEMORY's reply: the free memory of every cell together, in bytes. */
export function freeMemoryReply(m: MachineText): RetOf<'NODE_GET_FREE_MEMORY'> {
  return { freeMem: cellsOf(m).reduce((sum, c) => sum + c.freeKiB, 0) * 1024 };
}

/**
 * The `<topology>` of the capabilities document: one `<cell>` per NUMA
 * cell with its memory, which `virsh freecell --all` walks (then asking
 * NODE_GET_CELLS_FREE_MEMORY for each).
 */
export function topologyXml(m: MachineText): string[] {
  const cells = cellsOf(m);
  return [
    '    <topology>',
    `      <cells num='${cells.length}'>`,
    ...cells.flatMap((c) => [`        <cell id='${c.id}'>`, `          <memory unit='KiB'>${c.totalKiB}</memory>`, '        </cell>']),
    '      </cells>',
    '    </topology>',
  ];
}

/** Reads the machine, as a libvirt error when /proc or /sys cannot be read. */
async function machine(read: () => Promise<MachineText>): Promise<MachineText> {
  try {
    return await read();
  } catch (err) {
    throw new FerryError('system_error', `cannot read this machine's CPU and memory: ${(err as Error).message}`, { cause: err });
  }
}

/** Handlers of the node procedures; `read` is replaced in tests. */
export function nodeHandlers(read: () => Promise<MachineText> = () => readMachine()): ProcedureHandlers {
  return {
    NODE_GET_INFO: async () => nodeInfoReply(await machine(read)),
    NODE_GET_FREE_MEMORY: async () => freeMemoryReply(await machine(read)),
    NODE_GET_MEMORY_STATS: async (a) => memoryStatsReply(await machine(read), a),
    NODE_GET_CELLS_FREE_MEMORY: async (a) => cellsFreeReply(await machine(read), a),
  };
}
