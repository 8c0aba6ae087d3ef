/**
 * `nodeinfo`, `nodememstats`, `freecell` (virsh's names and layouts) and
 * Ferry's `hostfacts`: the host's CPU, memory, guests, maintenance state
 * and migration load, all from one `host.facts` call. The renderers are
 * pure and exported for the unit tests.
 */
import type { Command } from 'commander';
import { FerryError } from '../../errors/index.js';
import type { HostFacts } from '../../api/protocol.js';
import type { CliContext } from '../context.js';
import { printResult, renderFields } from '../output.js';

/** `nodeinfo --json`: libvirt's virNodeInfo fields. */
export interface NodeInfoJson {
  model: string;
  cpus: number;
  mhz: number;
  nodes: number;
  sockets: number;
  cores: number;
  threads: number;
  memoryKiB: number;
}

/** virNodeInfo from the facts, with libvirt's topology rule (see src/libvirt/handlers/node.ts). */
export function nodeInfoOf(f: HostFacts): NodeInfoJson {
  const c = f.cpu;
  let nodes = c.numaCells;
  let sockets = c.sockets % nodes === 0 ? c.sockets / nodes : 0;
  let cores = c.coresPerSocket;
  let threads = c.threadsPerCore;
  if (sockets === 0 || nodes * sockets * cores * threads !== c.count) [nodes, sockets, cores, threads] = [1, 1, c.count, 1];
  return { model: c.arch, cpus: c.count, mhz: c.mhz, nodes, sockets, cores, threads, memoryKiB: f.memory.totalKiB };
}

/** virsh's `nodeinfo` layout (`%-20s %s`; no frequency line when it is unknown). */
export function renderNodeInfo(n: NodeInfoJson): string {
  const row = (k: string, v: string) => `${k.padEnd(20)} ${v}`;
  return [
    row('CPU model:', n.model),
    row('CPU(s):', String(n.cpus)),
    ...(n.mhz ? [row('CPU frequency:', `${n.mhz} MHz`)] : []),
    row('CPU socket(s):', String(n.sockets)),
    row('Core(s) per socket:', String(n.cores)),
    row('Thread(s) per core:', String(n.threads)),
    row('NUMA cell(s):', String(n.nodes)),
    row('Memory size:', `${n.memoryKiB} KiB`),
  ].join('\n') + '\n';
}

/** `nodememstats` values in KiB: the machine's, or one cell's (buffers and cached are not kept per cell: 0, as libvirt). */
export function memStatsOf(f: HostFacts, cell?: number): { total: number; free: number; buffers: number; cached: number } {
  if (cell === undefined || cell === -1) return { total: f.memory.totalKiB, free: f.memory.freeKiB, buffers: f.memory.buffersKiB, cached: f.memory.cachedKiB };
  const c = f.memory.cells.find((x) => x.id === cell);
  if (c === undefined) throw new FerryError('invalid_arg', `Invalid cell number ${cell}: host '${f.hostName}' has NUMA cells ${f.memory.cells.map((x) => x.id).join(', ')} (or -1 for all)`);
  return { total: c.totalKiB, free: c.freeKiB, buffers: 0, cached: 0 };
}

/** virsh's `nodememstats` layout (`%-7s: %20llu KiB`). */
export function renderMemStats(s: Record<'total' | 'free' | 'buffers' | 'cached', number>): string {
  return (['total', 'free', 'buffers', 'cached'] as const).map((k) => `${k.padEnd(7)}: ${String(s[k]).padStart(20)} KiB`).join('\n') + '\n';
}

/** virsh's `freecell` layouts: `Total: N KiB`; with a cell `N: M KiB`; with `--all` a line per cell, a rule and the total. */
export function renderFreecell(f: HostFacts, opts: { cellno?: number; all?: boolean }): { json: unknown; text: string } {
  const cells = f.memory.cells;
  const total = cells.reduce((s, c) => s + c.freeKiB, 0);
  if (opts.cellno !== undefined) {
    const c = cells.find((x) => x.id === opts.cellno);
    if (c === undefined) throw new FerryError('invalid_arg', `start cell ${opts.cellno} out of range (0-${cells[cells.length - 1]?.id ?? 0})`);
    return { json: { cell: c.id, freeKiB: c.freeKiB }, text: `${c.id}: ${c.freeKiB} KiB\n` };
  }
  if (opts.all) {
    const lines = cells.map((c) => `${String(c.id).padStart(5)}: ${String(c.freeKiB).padStart(10)} KiB`);
    return { json: { cells: cells.map((c) => ({ cell: c.id, freeKiB: c.freeKiB })), totalKiB: total }, text: [...lines, '--------------------', `${'Total'.padStart(5)}: ${String(total).padStart(10)} KiB`].join('\n') + '\n' };
  }
  return { json: { totalKiB: total }, text: `Total: ${total} KiB\n` };
}

/** `hostfacts`: every fact as `Key: value` lines (the feature list only with --json). */
export function renderHostFacts(f: HostFacts): string {
  const c = f.cpu;
  const m = f.maintenance;
  const load = (l: { running: number; queued: number; limit: number }) => `${l.running} running, ${l.queued} queued, limit ${l.limit}`;
  return renderFields([
    ['Host name', f.hostName],
    ['Host UUID', f.hostUuid],
    ['CPU model', `${c.model} (${c.vendor}, ${c.arch})`],
    ['CPU(s)', `${c.count}: ${c.sockets} socket(s), ${c.coresPerSocket} core(s) per socket, ${c.threadsPerCore} thread(s) per core, ${c.mhz} MHz`],
    ['NUMA cell(s)', String(c.numaCells)],
    ['Guest CPU (QEMU)', c.qemu ? `${c.qemu.accel}, ${c.qemu.features.length} features, fingerprint ${c.qemu.fingerprint}` : `unknown (${c.qemuError ?? 'QEMU could not be asked'})`],
    ['Memory total', `${f.memory.totalKiB} KiB`],
    ['Memory free', `${f.memory.freeKiB} KiB`],
    ['Memory available', `${f.memory.availableKiB} KiB`],
    ['Memory committed', `${f.memory.committedKiB} KiB (guests with a QEMU here)`],
    ['Guests', `${f.guests.running} running (${f.guests.incoming} incoming), ${f.guests.defined} defined, ${f.guests.total} in all`],
    ['Maintenance', m.enabled ? `yes, since ${m.since ?? 'unknown'}${m.reason !== null ? ` (${m.reason})` : ''}` : 'no'],
    ...(m.problem !== undefined ? ([['Maintenance problem', m.problem]] as Array<[string, string]>) : []),
    ['Migrations out', load(f.migrations.outgoing)],
    ['Migrations in', load(f.migrations.incoming)],
  ]);
}

/** A cell number: 0 or more, or -1 for all (virsh's --cell). */
function parseCell(value: string, option: string): number {
  const n = Number(value);
  if (!/^-?\d+$/.test(value) || !Number.isSafeInteger(n) || n < -1) throw new FerryError('invalid_arg', `${option} needs a NUMA cell number (0 or more, or -1 for all), not '${value}'`);
  return n;
}

/** Registers `nodeinfo`, `nodememstats`, `freecell` and `hostfacts`. */
export function registerHostFactsCommands(program: Command, ctx: CliContext): void {
  const facts = async () => (await ctx.client()).call('host.facts', {});

  program
    .command('nodeinfo')
    .description("print the host's CPU and memory, as virsh nodeinfo does")
    .action(async () => {
      const n = nodeInfoOf(await facts());
      printResult(ctx.output, n, () => renderNodeInfo(n));
    });

  program
    .command('nodememstats')
    .description("print the host's memory statistics in KiB (total, free, buffers, cached), as virsh nodememstats does")
    .option('--cell <number>', 'one NUMA cell only (-1: all)', (v) => parseCell(v, '--cell'))
    .action(async (opts: { cell?: number }) => {
      const s = memStatsOf(await facts(), opts.cell);
      printResult(ctx.output, s, () => renderMemStats(s));
    });

  program
    .command('freecell')
    .description("print the host's free memory (MemFree), in total or per NUMA cell, as virsh freecell does")
    .option('--cellno <number>', 'one NUMA cell', (v) => parseCell(v, '--cellno'))
    .option('--all', 'every NUMA cell and the total')
    .action(async (opts: { cellno?: number; all?: boolean }) => {
      if (opts.all && opts.cellno !== undefined) throw new FerryError('invalid_arg', 'Options --all and --cellno are mutually exclusive');
      const cellno = opts.cellno === -1 ? undefined : opts.cellno;
      const r = renderFreecell(await facts(), { ...(cellno !== undefined ? { cellno } : {}), ...(opts.all ? { all: true } : {}) });
      printResult(ctx.output, r.json, () => r.text);
    });

  program
    .command('hostfacts')
    .description("print what placement needs to know about the host: CPU (and QEMU's guest CPU), memory (committed to guests too), guests, maintenance, migration load (--json: all of it, with the CPU feature list)")
    .action(async () => {
      const f = await facts();
      printResult(ctx.output, f, () => renderHostFacts(f));
    });
}
