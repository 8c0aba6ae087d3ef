import { describe, expect, it } from 'vitest';
import { numaNodeIds, parseCpuinfo, parseMeminfo, parseNodeMeminfo } from '../../src/host/proc-facts.js';

/** A /proc/cpuinfo of `n` CPUs as x86 Linux writes it, with the given topology lines. */
function cpuinfo(n: number, topo: (i: number) => string[] = () => []): string {
  const blocks: string[] = [];
  for (let i = 0; i < n; i++) {
    blocks.push(
      [`processor\t: ${i}`, 'vendor_id\t: AuthenticAMD', 'model name\t: AMD EPYC', 'cpu MHz\t\t: 2695.946', ...topo(i), 'flags\t\t: fpu vme sse sse2 avx2', 'power management:'].join('\n'),
    );
  }
  return `${blocks.join('\n\n')}\n\n`;
}

describe('parseCpuinfo', () => {
  it('reads the count, model, vendor, MHz, flags and a full topology', () => {
    const c = parseCpuinfo(cpuinfo(2, (i) => ['physical id\t: 0', 'siblings\t: 2', `core id\t\t: ${i}`, 'cpu cores\t: 2']));
    expect(c).toEqual({ cpus: 2, modelName: 'AMD EPYC', vendor: 'AuthenticAMD', mhz: 2696, sockets: 1, coresPerSocket: 2, threadsPerCore: 1, flags: ['fpu', 'vme', 'sse', 'sse2', 'avx2'] });
  });

  it('counts sockets by physical id and threads as siblings per core', () => {
    // 2 sockets x 2 cores x 2 threads
    const c = parseCpuinfo(cpuinfo(8, (i) => [`physical id\t: ${Math.floor(i / 4)}`, 'siblings\t: 4', `core id\t\t: ${Math.floor(i / 2) % 2}`, 'cpu cores\t: 2']));
    expect({ s: c.sockets, c: c.coresPerSocket, t: c.threadsPerCore, n: c.cpus }).toEqual({ s: 2, c: 2, t: 2, n: 8 });
  });

  it('falls back to one socket of single-thread cores when the topology is missing or does not add up', () => {
    expect(parseCpuinfo(cpuinfo(3))).toMatchObject({ cpus: 3, sockets: 1, coresPerSocket: 3, threadsPerCore: 1 });
    // Claims 4 cores per socket on a 2-CPU machine (a VM with half its CPUs offline).
    expect(parseCpuinfo(cpuinfo(2, () => ['physical id\t: 0', 'siblings\t: 4', 'cpu cores\t: 4']))).toMatchObject({ cpus: 2, sockets: 1, coresPerSocket: 2, threadsPerCore: 1 });
  });

  it('says unknown for what the file does not give, and never reports 0 CPUs', () => {
    expect(parseCpuinfo('')).toMatchObject({ cpus: 1, modelName: 'unknown', vendor: 'unknown', mhz: 0, flags: [] });
  });
});

const MEMINFO = ['MemTotal:       24683792 kB', 'MemFree:        23502576 kB', 'MemAvailable:   23584788 kB', 'Buffers:            3472 kB', 'Cached:           259732 kB', 'SwapCached:            0 kB', 'Active(anon):       1024 kB', 'HugePages_Total:       0', ''].join('\n');

describe('parseMeminfo', () => {
  it('reads total, free, available, buffers and cached in KiB', () => {
    expect(parseMeminfo(MEMINFO)).toEqual({ totalKiB: 24683792, freeKiB: 23502576, availableKiB: 23584788, buffersKiB: 3472, cachedKiB: 259732 });
  });

  it('estimates MemAvailable on kernels without it as free + buffers + cached', () => {
    expect(parseMeminfo(MEMINFO.replace(/^MemAvailable:.*\n/m, '')).availableKiB).toBe(23502576 + 3472 + 259732);
  });

  it('refuses a text without MemTotal or MemFree', () => {
    expect(() => parseMeminfo('Buffers: 1 kB\n')).toThrow(/MemTotal or MemFree/);
  });
});

describe('parseNodeMeminfo and numaNodeIds', () => {
  it("reads a node's total and free", () => {
    const text = 'Node 1 MemTotal:       12341896 kB\nNode 1 MemFree:        11751288 kB\nNode 1 MemUsed:          590608 kB\n';
    expect(parseNodeMeminfo(1, text)).toEqual({ id: 1, totalKiB: 12341896, freeKiB: 11751288 });
    expect(() => parseNodeMeminfo(0, 'Node 0 MemUsed: 5 kB\n')).toThrow(/node 0/);
  });

  it('keeps only node directories, sorted by number', () => {
    expect(numaNodeIds(['has_cpu', 'node10', 'node2', 'online', 'node0', 'nodeX', 'power'])).toEqual([0, 2, 10]);
  });
});
