import { describe, expect, it } from 'vitest';
import { cellsFreeReply, freeMemoryReply, memoryStatsReply, nodeInfoReply, topologyXml } from '../../src/libvirt/handlers/node.js';
import { PROCEDURES } from '../../src/libvirt/procedures.js';
import { decode, encode } from '../../src/libvirt/xdr.js';
import type { MachineText } from '../../src/host/host-facts.js';
import { codeOf } from '../support/refusal.js';

const CPUINFO = [0, 1, 2, 3].map((i) => `processor\t: ${i}\nmodel name\t: AMD EPYC\ncpu MHz\t\t: 2000.4\nphysical id\t: 0\nsiblings\t: 4\ncpu cores\t: 2\n`).join('\n');
const MEMINFO = 'MemTotal: 4000000 kB\nMemFree: 3000000 kB\nMemAvailable: 3500000 kB\nBuffers: 1000 kB\nCached: 200000 kB\n';

function machine(nodes: Array<[number, number, number]> = []): MachineText {
  return { arch: 'x86_64', cpuinfo: CPUINFO, meminfo: MEMINFO, nodes: new Map(nodes.map(([id, total, free]) => [id, `Node ${id} MemTotal: ${total} kB\nNode ${id} MemFree: ${free} kB\n`])) };
}

describe('NODE_GET_INFO', () => {
  it('gives the architecture, memory, CPUs, MHz and the topology per NUMA cell', () => {
    const r = nodeInfoReply(machine([[0, 4000000, 3000000]]));
    expect(Buffer.from(r.model.map((b) => b & 0xff)).toString('ascii').replace(/\0+$/, '')).toBe('x86_64');
    expect({ ...r, model: undefined }).toEqual({ model: undefined, memory: 4000000, cpus: 4, mhz: 2000, nodes: 1, sockets: 1, cores: 2, threads: 2 });
  });

  it('falls back to one cell and socket of single-thread cores when the topology does not multiply out', () => {
    const r = nodeInfoReply(machine([[0, 1, 1], [1, 1, 1], [2, 1, 1]]));
    expect([r.nodes, r.sockets, r.cores, r.threads]).toEqual([1, 1, 4, 1]);
  });
});

describe('NODE_GET_MEMORY_STATS', () => {
  it('answers the count for nparams 0, then total, free, buffers and cached in KiB', () => {
    expect(memoryStatsReply(machine(), { nparams: 0, cellNum: -1, flags: 0 })).toEqual({ params: [], nparams: 4 });
    expect(memoryStatsReply(machine(), { nparams: 4, cellNum: -1, flags: 0 }).params).toEqual([
      { field: 'total', value: 4000000 },
      { field: 'free', value: 3000000 },
      { field: 'buffers', value: 1000 },
      { field: 'cached', value: 200000 },
    ]);
  });

  it("gives one cell's total and free, and refuses cells that do not exist, flags and short nparams", () => {
    const m = machine([[0, 2000000, 1500000], [1, 2000000, 1000]]);
    expect(memoryStatsReply(m, { nparams: 4, cellNum: 1, flags: 0 }).params.map((p) => p.value)).toEqual([2000000, 1000, 0, 0]);
    expect(codeOf(() => memoryStatsReply(m, { nparams: 4, cellNum: 2, flags: 0 }))).toBe('invalid_arg');
    expect(codeOf(() => memoryStatsReply(m, { nparams: 4, cellNum: -1, flags: 1 }))).toBe('invalid_arg');
    expect(codeOf(() => memoryStatsReply(m, { nparams: 2, cellNum: -1, flags: 0 }))).toBe('invalid_arg');
    expect(codeOf(() => memoryStatsReply(m, { nparams: 17, cellNum: -1, flags: 0 }))).toBe('invalid_arg');
  });

  it('round-trips through the procedure table (libvirt remote_protocol.x shapes)', () => {
    const p = PROCEDURES.NODE_GET_MEMORY_STATS;
    expect(p.number).toBe(228);
    const ret = memoryStatsReply(machine(), { nparams: 16, cellNum: -1, flags: 0 });
    expect(decode(p.ret, encode(p.ret, ret))).toEqual(ret);
    // int nparams, int cellNum, unsigned int flags
    expect(decode(p.args, Buffer.from('00000000ffffffff00000000', 'hex'))).toEqual({ nparams: 0, cellNum: -1, flags: 0 });
  });
});

describe('NODE_GET_CELLS_FREE_MEMORY and NODE_GET_FREE_MEMORY', () => {
  it('gives bytes per cell from startCell, at most maxcells, and the total', () => {
    const m = machine([[0, 2000000, 1500000], [1, 2000000, 1000]]);
    expect(cellsFreeReply(m, { startCell: 0, maxcells: 8 })).toEqual({ cells: [1500000 * 1024, 1000 * 1024] });
    expect(cellsFreeReply(m, { startCell: 1, maxcells: 1 })).toEqual({ cells: [1000 * 1024] });
    expect(freeMemoryReply(m)).toEqual({ freeMem: 1501000 * 1024 });
    expect(PROCEDURES.NODE_GET_CELLS_FREE_MEMORY.number).toBe(101);
  });

  it('treats a machine without NUMA nodes as one cell of MemFree', () => {
    expect(cellsFreeReply(machine(), { startCell: 0, maxcells: 1 })).toEqual({ cells: [3000000 * 1024] });
    expect(freeMemoryReply(machine())).toEqual({ freeMem: 3000000 * 1024 });
  });

  it('refuses a start beyond the last cell and counts out of 1 to 1024', () => {
    expect(codeOf(() => cellsFreeReply(machine(), { startCell: 1, maxcells: 1 }))).toBe('invalid_arg');
    expect(codeOf(() => cellsFreeReply(machine(), { startCell: -1, maxcells: 1 }))).toBe('invalid_arg');
    expect(codeOf(() => cellsFreeReply(machine(), { startCell: 0, maxcells: 0 }))).toBe('invalid_arg');
    expect(codeOf(() => cellsFreeReply(machine(), { startCell: 0, maxcells: 1025 }))).toBe('invalid_arg');
  });
});

describe('capabilities topology', () => {
  it('lists each NUMA cell with its memory, or one cell of the whole machine', () => {
    expect(topologyXml(machine([[0, 2000000, 1], [1, 2000000, 1]])).join('\n')).toContain("<cells num='2'>\n        <cell id='0'>\n          <memory unit='KiB'>2000000</memory>\n        </cell>\n        <cell id='1'>");
    expect(topologyXml(machine()).join('\n')).toContain("<cell id='0'>\n          <memory unit='KiB'>4000000</memory>");
  });
});
