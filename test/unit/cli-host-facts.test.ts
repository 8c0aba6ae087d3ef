import { describe, expect, it } from 'vitest';
import { memStatsOf, nodeInfoOf, renderFreecell, renderHostFacts, renderMemStats, renderNodeInfo } from '../../src/cli/commands/host-facts.js';
import { renderMaintenance } from '../../src/cli/commands/maintenance.js';
import type { HostFacts } from '../../src/api/protocol.js';
import { codeOf } from '../support/refusal.js';

const FACTS: HostFacts = {
  hostName: 'hostA',
  hostUuid: '11111111-2222-3333-4444-555555555555',
  collectedAt: '2026-12-04T20:00:00.000Z',
  cpu: { arch: 'x86_64', count: 2, model: 'AMD EPYC', vendor: 'AuthenticAMD', mhz: 2696, sockets: 1, coresPerSocket: 2, threadsPerCore: 1, numaCells: 1, qemu: { accel: 'tcg', fingerprint: 'sha256:0123456789abcdef', features: ['fpu', 'sse2'] } },
  memory: { totalKiB: 24683792, freeKiB: 23502576, availableKiB: 23584788, buffersKiB: 3472, cachedKiB: 259732, committedKiB: 262148, cells: [{ id: 0, totalKiB: 24683792, freeKiB: 23502576 }] },
  guests: { running: 1, incoming: 0, defined: 1, total: 1 },
  maintenance: { enabled: true, since: '2026-12-04T19:00:00.000Z', reason: 'kernel update' },
  migrations: { outgoing: { running: 1, queued: 0, limit: 2 }, incoming: { running: 0, queued: 0, limit: 2 } },
};

describe('nodeinfo', () => {
  it("prints virsh's layout", () => {
    expect(renderNodeInfo(nodeInfoOf(FACTS))).toBe(
      [
        'CPU model:           x86_64',
        'CPU(s):              2',
        'CPU frequency:       2696 MHz',
        'CPU socket(s):       1',
        'Core(s) per socket:  2',
        'Thread(s) per core:  1',
        'NUMA cell(s):        1',
        'Memory size:         24683792 KiB',
        '',
      ].join('\n'),
    );
  });

  it('leaves out an unknown frequency, as virsh does', () => {
    expect(renderNodeInfo({ ...nodeInfoOf(FACTS), mhz: 0 })).not.toContain('CPU frequency');
  });
});

describe('nodememstats', () => {
  it("prints virsh's layout", () => {
    expect(renderMemStats(memStatsOf(FACTS))).toBe(['total  :             24683792 KiB', 'free   :             23502576 KiB', 'buffers:                 3472 KiB', 'cached :               259732 KiB', ''].join('\n'));
  });

  it('gives a cell its total and free, and refuses a cell that does not exist', () => {
    expect(memStatsOf(FACTS, 0)).toEqual({ total: 24683792, free: 23502576, buffers: 0, cached: 0 });
    expect(codeOf(() => memStatsOf(FACTS, 3))).toBe('invalid_arg');
  });
});

describe('freecell', () => {
  it("prints virsh's layouts: total, one cell, all cells", () => {
    expect(renderFreecell(FACTS, {}).text).toBe('Total: 23502576 KiB\n');
    expect(renderFreecell(FACTS, { cellno: 0 }).text).toBe('0: 23502576 KiB\n');
    expect(renderFreecell(FACTS, { all: true }).text).toBe('    0:   23502576 KiB\n--------------------\nTotal:   23502576 KiB\n');
    expect(codeOf(() => renderFreecell(FACTS, { cellno: 1 }))).toBe('invalid_arg');
  });
});

describe('hostfacts and maintenance', () => {
  it('shows every fact on its own line', () => {
    const text = renderHostFacts(FACTS);
    for (const fragment of ['Host name:', 'hostA', 'AMD EPYC', 'fingerprint sha256:0123456789abcdef', 'Memory committed:', '262148 KiB', '1 running (0 incoming), 1 defined', 'yes, since 2026-12-04T19:00:00.000Z (kernel update)', 'Migrations out:', '1 running, 0 queued, limit 2']) {
      expect(text).toContain(fragment);
    }
  });

  it('says whether the host is in maintenance, since when and why', () => {
    expect(renderMaintenance({ hostName: 'hostA', enabled: false, since: null, reason: null, incomingUnderWay: 0 })).toBe("Host 'hostA' is not in maintenance\n");
    const on = renderMaintenance({ hostName: 'hostA', enabled: true, since: '2026-12-04T19:00:00.000Z', reason: 'kernel update', incomingUnderWay: 1 });
    expect(on).toMatch(/Since:\s+2026-12-04T19:00:00.000Z/);
    expect(on).toMatch(/Reason:\s+kernel update/);
    expect(on).toContain('1 migration(s) admitted before maintenance are still under way');
  });
});
