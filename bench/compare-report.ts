/**
 * The contenders, modes and report of bench/compare.ts, apart so that the
 * report can be made again from saved results:
 *
 *   npx tsx bench/compare-report.ts bench/results/compare*.json
 *
 * prints the tables of every file given (one section per guest size) after
 * one summary table of the ratios over all of them; with the ferry-virsh
 * contender, one more table: stock virsh against ferryd and against
 * libvirtd.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fmtSummary, markdownTable, summarize, type Summary } from './lib.js';

const MB = 1e6;

/** ferry-virsh: ferryd driven by stock virsh over its libvirt-protocol listener. */
export type Tool = 'raw' | 'ferry' | 'libvirt' | 'ferry-virsh';
export type RecipeKey = 'plain' | 'tls' | 'xbzrle' | 'mt' | 'zlib' | 'zstd' | 'parallel' | 'auto-converge' | 'postcopy';

export interface Mode {
  label: string;
  /** `ferry migrate` flags (besides the domain and URI). */
  ferry: string[];
  /** `virsh migrate` flags; null: libvirt 9.0 has no such mode. */
  virsh: string[] | null;
  /** The raw QEMU recipe this mode is held to. */
  raw: RecipeKey;
  /** Modes that are nothing but their recipe run raw too; the others use `raw` of the same row. */
  ownRaw: boolean;
}

export const P2P = ['--live', '--p2p'];
export const MODES: Record<string, Mode> = {
  p2p: { label: 'peer-to-peer', ferry: P2P, virsh: P2P, raw: 'plain', ownRaw: true },
  managed: { label: 'managed (the client drives both daemons)', ferry: ['--live'], virsh: ['--live'], raw: 'plain', ownRaw: false },
  tunnelled: { label: 'tunnelled (the daemons relay the stream)', ferry: [...P2P, '--tunnelled'], virsh: [...P2P, '--tunnelled'], raw: 'plain', ownRaw: false },
  tls: { label: 'TLS (QEMU native, `--tls`)', ferry: [...P2P, '--tls'], virsh: [...P2P, '--tls'], raw: 'tls', ownRaw: true },
  xbzrle: { label: 'compressed: xbzrle', ferry: [...P2P, '--compressed'], virsh: [...P2P, '--compressed'], raw: 'xbzrle', ownRaw: true },
  mt: { label: 'compressed: mt (zlib threads)', ferry: [...P2P, '--compressed', '--comp-methods', 'mt'], virsh: [...P2P, '--compressed', '--comp-methods', 'mt'], raw: 'mt', ownRaw: true },
  zlib: { label: 'compressed: zlib (multifd)', ferry: [...P2P, '--parallel', '--compressed', '--comp-methods', 'zlib'], virsh: null, raw: 'zlib', ownRaw: true },
  zstd: { label: 'compressed: zstd (multifd)', ferry: [...P2P, '--parallel', '--compressed', '--comp-methods', 'zstd'], virsh: null, raw: 'zstd', ownRaw: true },
  parallel: { label: 'parallel (multifd, 2 channels)', ferry: [...P2P, '--parallel'], virsh: [...P2P, '--parallel'], raw: 'parallel', ownRaw: true },
  'auto-converge': { label: 'auto-converge', ferry: [...P2P, '--auto-converge'], virsh: [...P2P, '--auto-converge'], raw: 'auto-converge', ownRaw: true },
  postcopy: { label: 'post-copy after the first pass', ferry: [...P2P, '--postcopy', '--postcopy-after-precopy'], virsh: [...P2P, '--postcopy', '--postcopy-after-precopy'], raw: 'postcopy', ownRaw: true },
};


export interface Cell {
  memoryKiB: number;
  rate: number;
  modes: string[];
  tools: Tool[];
}

export interface Run {
  tool: Tool;
  mode: string;
  memoryKiB: number;
  rate: number;
  run: number;
  ok: boolean;
  /** Plain pre-copy still running at the cap, aborted. */
  unfinished?: boolean;
  problems: string[];
  wallMs?: number;
  downtimeMs?: number;
  /** raw: QEMU's own downtime figure (source stop to the end of the stream). */
  qemuDowntimeMs?: number;
  setupMs?: number;
  /** raw: QEMU's total-time. */
  qemuTotalMs?: number;
  /** As the tool reports it. */
  dataBytes?: number;
  wireMs?: number;
  wireBytes?: number;
  daemonCpuMs?: number;
  /**
   * Where the whole command's time went, ms. raw: its steps (RawOutcome.steps);
   * Ferry p2p: the source ferryd's connect and phase times from its log, and
   * `cli`, the rest of the command (CLI start, its connection and call, exit).
   */
  steps?: Record<string, number>;
}

/** A size as `--sizes` takes it (257M, 256M+4K, 1G+4K), in KiB. */
export function parseSize(s: string): number {
  let kib = 0;
  for (const term of s.split('+')) {
    const m = /^(\d+)([KMG])$/i.exec(term.trim());
    if (!m) throw new Error(`bad size '${s}' (e.g. 257M, 256M+4K, 1G+4K)`);
    kib += Number(m[1]) * { K: 1, M: 1024, G: 1024 * 1024 }[m[2]!.toUpperCase() as 'K']!;
  }
  return kib;
}

export const fmtSize = (kib: number) => (kib % 1024 === 0 ? `${kib / 1024} MiB` : `${Math.floor(kib / 1024)} MiB + ${kib % 1024} KiB`);

/**
 * The guest's working set: most of its memory holds live data, up to
 * {@link WS_MAX_MIB}: the test guest is a 32-bit kernel without paging and
 * uses only the RAM below 4 GiB, and QEMU's pc machine puts 3 GiB there
 * (the rest above 4 GiB) once a guest has 3.5 GiB or more. Bigger guests
 * (4 GiB, 8 GiB) thus carry 3000 MiB of live data and the rest zero pages,
 * which pre-copy sends as zero-page markers.
 */
export const wsMiB = (memoryKiB: number) => (memoryKiB <= 300 * 1024 ? 200 : Math.min(Math.floor(memoryKiB / 1024) - 64, WS_MAX_MIB));
export const WS_MAX_MIB = 3000;

/** Contenders of one mode in one cell: raw only where the mode is its own recipe; the virsh ones where virsh has the mode. */
export function contendersOf(cell: Cell, mode: string): Tool[] {
  const m = MODES[mode]!;
  return cell.tools.filter((t) => (t === 'raw' ? m.ownRaw : t === 'libvirt' || t === 'ferry-virsh' ? m.virsh !== null : true));
}

// ------------------------------------------------------------ report

/** What bench/compare.ts saves (and the report needs). */
export interface SavedCompare {
  runs: number;
  heavyRate: number;
  heavyLink: string;
  cells: Cell[];
  results: Run[];
  ferrydPeakRssKiB: number;
  /** Per cell and mode: both ferryds' VmRSS before the first Ferry run of it and the peak during its Ferry runs (sampled every 50 ms). */
  ferrydRss?: FerrydRssCell[];
}

export interface FerrydRssCell {
  memoryKiB: number;
  rate: number;
  mode: string;
  /** ferryd A (source) and B (destination), KiB. */
  beforeKiB: [number, number];
  peakKiB: [number, number];
  /**
   * The most any one of its Ferry runs added: peak during the run minus the
   * RSS right before it. Runs of a cell alternate with the other modes' runs
   * (a tunnelled run leaves ferryd's heap bigger), so the peak alone mixes
   * in what other runs left; this is what the migration itself costs.
   */
  growthKiB?: [number, number];
}

/** The table "ferryd RSS by guest size": does ferryd's memory grow with the guest it migrates? */
export function rssTable(cells: readonly FerrydRssCell[]): string {
  const mib = (kib: number) => (Number.isFinite(kib) ? (kib / 1024).toFixed(1) : '-');
  const rows = [...cells]
    .sort((a, b) => a.mode.localeCompare(b.mode) || a.rate - b.rate || a.memoryKiB - b.memoryKiB)
    .map((c) => [
      fmtSize(c.memoryKiB),
      c.rate === 0 ? 'idle' : `${c.rate} MiB/s`,
      c.mode,
      `${mib(c.beforeKiB[0])} / ${mib(c.peakKiB[0])}${c.growthKiB ? ` (+${mib(c.growthKiB[0])})` : ''}`,
      `${mib(c.beforeKiB[1])} / ${mib(c.peakKiB[1])}${c.growthKiB ? ` (+${mib(c.growthKiB[1])})` : ''}`,
    ]);
  return markdownTable(['guest size', 'writer', 'mode', 'ferryd A (source) RSS MiB: before / peak (most one run added)', 'ferryd B (destination) RSS MiB: before / peak (most one run added)'], rows);
}

const workloadOf = (s: SavedCompare, rate: number) => (rate === 0 ? 'idle' : rate >= s.heavyRate ? `writer ${rate} MiB/s, ${s.heavyLink} link` : `writer ${rate} MiB/s`);

/** The runs of one contender in one cell and mode. */
function runsOf(s: SavedCompare, t: Tool, cell: Cell, mode: string): Run[] {
  return s.results.filter((r) => r.tool === t && r.mode === mode && r.memoryKiB === cell.memoryKiB && r.rate === cell.rate);
}

/** The raw runs a mode is held to: its own recipe, else plain p2p of the same cell. */
function rawRunsOf(s: SavedCompare, cell: Cell, mode: string): Run[] {
  return runsOf(s, 'raw', cell, MODES[mode]!.ownRaw ? mode : 'p2p');
}

/** Median of `f` over the runs that passed the guest check. */
function okSummary(rs: Run[], f: (r: Run) => number | undefined): Summary {
  return summarize(rs.filter((r) => r.ok).map(f).filter((x): x is number => x !== undefined));
}

/** Ratio of the medians of `f` (OK runs only), or '-'. */
function ratioOf(a: Run[], b: Run[], f: (r: Run) => number | undefined): string {
  const x = okSummary(a, f);
  const y = okSummary(b, f);
  return x.n && y.n && y.median > 0 ? (x.median / y.median).toFixed(2) : '-';
}

/**
 * One line per mode, one column per cell of every saved run: Ferry's median
 * wall time over raw QEMU's and over libvirt's (OK runs only).
 */
export function summaryTable(saved: SavedCompare[]): string {
  const cols = saved.flatMap((s) => s.cells.map((cell) => ({ s, cell })));
  const modes = [...new Set(cols.flatMap((c) => c.cell.modes))];
  const rows = modes.map((mode) => [
    MODES[mode]!.label,
    ...cols.map(({ s, cell }) => {
      if (!cell.modes.includes(mode)) return '';
      const fe = runsOf(s, 'ferry', cell, mode);
      const lv = runsOf(s, 'libvirt', cell, mode);
      const raw = rawRunsOf(s, cell, mode);
      const vsLv = cell.tools.includes('libvirt') ? ` · ${MODES[mode]!.virsh ? ratioOf(fe, lv, (r) => r.wallMs) : 'n/a'}` : '';
      return `${ratioOf(fe, raw, (r) => r.wallMs)}${vsLv}`;
    }),
  ]);
  const header = ['mode', ...cols.map(({ s, cell }) => `${fmtSize(cell.memoryKiB)}, ${workloadOf(s, cell.rate)}: Ferry/raw${cell.tools.includes('libvirt') ? ' · Ferry/libvirt' : ''}`)];
  return markdownTable(header, rows);
}

/**
 * The fixed cost of a peer-to-peer migration over raw QEMU, cell by cell
 * (medians of OK runs): whole time, Ferry − raw, and where each one's time
 * went, step by step, the steps of the two set side by side where they do
 * the same work.
 */
export function fixedCostTable(s: SavedCompare): string {
  const rows: string[][] = [];
  const med = (rs: Run[], k: string) => okSummary(rs, (r) => r.steps?.[k]);
  const f = (x: Summary) => (x.n ? x.median.toFixed(0) : '-');
  for (const cell of s.cells) {
    if (!cell.modes.includes('p2p')) continue;
    const raw = runsOf(s, 'raw', cell, 'p2p');
    const fe = runsOf(s, 'ferry', cell, 'p2p');
    if (okSummary(raw, (r) => r.wallMs).n === 0 || okSummary(fe, (r) => r.wallMs).n === 0) continue;
    const rawWall = okSummary(raw, (r) => r.wallMs).median;
    const feWall = okSummary(fe, (r) => r.wallMs).median;
    rows.push([
      `${fmtSize(cell.memoryKiB)}, ${workloadOf(s, cell.rate)}`,
      `${rawWall.toFixed(0)} · ${feWall.toFixed(0)}`,
      `**${(feWall - rawWall).toFixed(0)}**`,
      `- · ${f(med(fe, 'cli'))}`,
      `- · ${f(med(fe, 'connect'))} + ${f(med(fe, 'begin'))}`,
      `${f(med(raw, 'dstStart'))} + ${f(med(raw, 'setUp'))} · ${f(med(fe, 'prepare'))}`,
      `${f(med(raw, 'stream'))} · ${f(med(fe, 'perform'))}`,
      `${f(med(raw, 'cont'))} · ${f(med(fe, 'finish'))}`,
      `${f(med(raw, 'quit'))} · ${f(med(fe, 'confirm'))}`,
    ]);
  }
  if (rows.length === 0) return '';
  return markdownTable(
    [
      'guest, workload',
      'whole, ms: raw (dest QEMU start to source exit) · Ferry (`ferry migrate --live --p2p`)',
      'Ferry − raw, ms',
      'CLI: start, call, exit (Ferry)',
      'connect to the destination daemon + begin (Ferry)',
      'dest QEMU start + tune both, `migrate-incoming` (raw) · prepare (Ferry)',
      '`migrate` to completed seen (raw) · perform',
      'dest completed, `cont` (raw) · finish',
      'source `quit` to exit (raw) · confirm',
    ],
    rows,
  );
}

export function renderReport(s: SavedCompare): string {
  const { cells, ferrydPeakRssKiB: peakRss, runs: RUNS } = s;
  const out: string[] = [];
  const workload = (rate: number) => workloadOf(s, rate);
  const cellStr = (rs: Run[], f: (r: Run) => number | undefined, digits = 0) => fmtSummary(okSummary(rs, f), digits);
  const ratio = ratioOf;
  const checks = (rs: Run[]) => {
    if (rs.length === 0) return '-';
    const ok = rs.filter((r) => r.ok).length;
    const unfinished = rs.filter((r) => r.unfinished).length;
    return `${ok}/${rs.length}${unfinished ? ` (${unfinished} unfinished)` : ''}`;
  };
  const tput = (r: Run) => (r.wireBytes && r.wireMs ? r.wireBytes / MB / (r.wireMs / 1000) : undefined);

  for (const memoryKiB of [...new Set(cells.map((c) => c.memoryKiB))]) {
    const sizeCells = cells.filter((c) => c.memoryKiB === memoryKiB);
    const withLibvirt = sizeCells.some((c) => c.tools.includes('libvirt'));
    out.push(`### Guest of ${fmtSize(memoryKiB)} (${wsMiB(memoryKiB)} MiB of live data)${withLibvirt ? '' : ': raw QEMU and Ferry (libvirt rounds memory to whole MiB)'}\n`);
    const rows1: string[][] = [];
    const rows2: string[][] = [];
    for (const cell of sizeCells) {
      for (const mode of cell.modes) {
        const raw = rawRunsOf(s, cell, mode);
        const fe = runsOf(s, 'ferry', cell, mode);
        const lv = runsOf(s, 'libvirt', cell, mode);
        const lvCol = (s: string) => (withLibvirt ? [s] : []);
        const rawLabel = MODES[mode]!.ownRaw ? '' : ' ¹';
        rows1.push([
          workload(cell.rate),
          MODES[mode]!.label,
          `${checks(MODES[mode]!.ownRaw ? raw : [])}${rawLabel}`,
          checks(fe),
          ...lvCol(MODES[mode]!.virsh ? checks(lv) : 'n/a'),
          `${cellStr(raw, (r) => r.wallMs)}${rawLabel}`,
          cellStr(fe, (r) => r.wallMs),
          ...lvCol(cellStr(lv, (r) => r.wallMs)),
          ratio(fe, raw, (r) => r.wallMs),
          ...lvCol(ratio(fe, lv, (r) => r.wallMs)),
          cellStr(fe, (r) => r.daemonCpuMs),
          ...lvCol(cellStr(lv, (r) => r.daemonCpuMs)),
          ...lvCol(ratio(fe, lv, (r) => r.daemonCpuMs)),
        ]);
        rows2.push([
          workload(cell.rate),
          MODES[mode]!.label,
          `${cellStr(raw, (r) => r.downtimeMs)} · ${cellStr(raw, (r) => r.qemuDowntimeMs)}`,
          cellStr(fe, (r) => r.downtimeMs),
          ...lvCol(cellStr(lv, (r) => r.downtimeMs)),
          `${cellStr(raw, (r) => r.setupMs)} · ${cellStr(fe, (r) => r.setupMs)}${withLibvirt ? ` · ${cellStr(lv, (r) => r.setupMs)}` : ''}`,
          cellStr(raw, (r) => r.qemuTotalMs),
          `${cellStr(raw, (r) => r.wireMs)} · ${cellStr(fe, (r) => r.wireMs)}${withLibvirt ? ` · ${cellStr(lv, (r) => r.wireMs)}` : ''}`,
          `${cellStr(raw, (r) => (r.wireBytes ?? 0) / MB)} · ${cellStr(fe, (r) => (r.wireBytes ?? 0) / MB)}${withLibvirt ? ` · ${cellStr(lv, (r) => (r.wireBytes ?? 0) / MB)}` : ''}`,
          `${cellStr(raw, tput)} · ${cellStr(fe, tput)}${withLibvirt ? ` · ${cellStr(lv, tput)}` : ''}`,
          ratio(fe, raw, tput),
          ...lvCol(ratio(fe, lv, tput)),
        ]);
      }
    }
    const L = (s: string) => (withLibvirt ? [s] : []);
    out.push(
      markdownTable(
        ['workload', 'mode', 'raw: guest OK', 'Ferry: guest OK', ...L('libvirt: guest OK'), 'raw wall ms', 'Ferry wall ms', ...L('libvirt wall ms'), 'Ferry / raw', ...L('Ferry / libvirt'), 'ferryds CPU ms', ...L('libvirtds CPU ms'), ...L('CPU Ferry / libvirt')],
        rows1,
      ),
    );
    out.push('');
    const who = withLibvirt ? 'raw · Ferry · libvirt' : 'raw · Ferry';
    out.push(
      markdownTable(
        ['workload', 'mode', 'raw downtime ms: stop→cont · QEMU', 'Ferry downtime ms', ...L('libvirt downtime ms'), `setup ms (${who})`, 'raw: QEMU total ms', `stream on the wire ms (${who})`, `MB on the wire (${who})`, `MB/s on the wire (${who})`, 'throughput Ferry / raw', ...L('throughput Ferry / libvirt')],
        rows2,
      ),
    );
    out.push('');
  }
  const virshCells = cells.filter((c) => c.tools.includes('ferry-virsh'));
  if (virshCells.length > 0) {
    out.push(`### The same virsh against ferryd and against libvirtd\n`);
    const rows: string[][] = [];
    for (const cell of virshCells) {
      for (const mode of cell.modes.filter((m) => MODES[m]!.virsh)) {
        const fv = runsOf(s, 'ferry-virsh', cell, mode);
        const lv = runsOf(s, 'libvirt', cell, mode);
        const fe = runsOf(s, 'ferry', cell, mode);
        const both = (f: (r: Run) => number | undefined, digits = 0) => `${cellStr(fv, f, digits)} · ${cellStr(lv, f, digits)}`;
        rows.push([
          `${fmtSize(cell.memoryKiB)}, ${workload(cell.rate)}`,
          MODES[mode]!.label,
          `${checks(fv)} · ${checks(lv)}`,
          cellStr(fv, (r) => r.wallMs),
          cellStr(lv, (r) => r.wallMs),
          ratio(fv, lv, (r) => r.wallMs),
          both((r) => r.downtimeMs),
          both((r) => r.setupMs),
          both((r) => r.daemonCpuMs),
          both(tput),
          fe.length ? `${cellStr(fe, (r) => r.wallMs)} (${checks(fe)})` : '-',
        ]);
      }
    }
    out.push(
      markdownTable(
        [
          'guest, workload',
          'mode',
          'guest OK (ferryd · libvirtd)',
          'virsh → ferryd wall ms',
          'virsh → libvirtd wall ms',
          'ferryd / libvirtd',
          'downtime ms, as the destination reports it (ferryd · libvirtd)',
          'setup ms (ferryd · libvirtd)',
          'daemons CPU ms (ferryd · libvirtd)',
          'MB/s on the wire (ferryd · libvirtd)',
          '`ferry migrate` wall ms (guest OK)',
        ],
        rows,
      ),
    );
    out.push('');
  }
  out.push(`¹ no raw run of its own: held to raw peer-to-peer of the same row.\n`);
  out.push(`ferryd peak RSS over the whole run: ${(peakRss / 1024).toFixed(1)} MiB. Medians (min-max) of the runs that passed the guest check; ${RUNS} runs per contender, alternated.\n`);
  if (s.ferrydRss && s.ferrydRss.length > 0) {
    out.push('### ferryd RSS by guest size\n');
    out.push('Both ferryds\' VmRSS right before the first Ferry run of the row and the peak while its Ferry migrations ran (sampled every 50 ms), MiB; in brackets the most one run added (its peak minus the RSS right before it: runs of the modes alternate, and a tunnelled run leaves the heap bigger for the next).\n');
    out.push(rssTable(s.ferrydRss));
    out.push('');
  }
  return out.join('\n');
}

// Run directly: the report of saved results.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const saved = process.argv.slice(2).map((f) => JSON.parse(readFileSync(f, 'utf8')) as SavedCompare);
  if (saved.length === 0) {
    process.stderr.write('usage: npx tsx bench/compare-report.ts RESULTS.json...\n');
    process.exit(2);
  }
  process.stdout.write(`${summaryTable(saved)}\n\n${saved.map(renderReport).join('\n')}`);
}
