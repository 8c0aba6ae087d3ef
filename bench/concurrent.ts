/**
 * concurrent: many live migrations at once between the same two hosts, and
 * what they cost ferryd in memory (issue 17, "Scale with the work").
 *
 * Hosts: the two network namespaces of bench/libvirt/hosts.sh (`net` only,
 * no libvirtd), a ferryd in each (bench/ferryd.ts), both with their
 * migration slots raised to `--guests` (`--max-outgoing-migrations N
 * --max-incoming-migrations N`; the default, the number of cores and at least
 * 2, would queue the rest, see docs/migration.md "How many at once").
 *
 * Per mode (`--modes`, default p2p and tunnelled) and batch size (1, then
 * `--guests`), per run: N small memory-writing test guests are defined and
 * started on host A (`ferry create`), each gets warm (4 heartbeats in ferryd's
 * serial log), then N `ferry migrate --live --p2p [--tunnelled]` run at once,
 * each its own CLI process, to host B. Both ferryds' VmRSS is sampled every
 * 50 ms from before the batch to its end: before (the first sample), peak,
 * and after (once the batch is over and every guest was checked, at least
 * `--settle-ms` later). Then every guest is checked: its CLI exited 0, and its
 * serial heartbeat went on at the source's last + 1 on B with no CORRUPT and
 * at least 3 more heartbeats (bench/bench-hosts.ts guestProblems, as
 * bench/compare.ts checks). Guests are destroyed after each batch; the two
 * ferryds live for the whole invocation, so "before" of a later batch
 * includes what earlier batches left behind.
 *
 * Guests: `--size` (default 128M+4K: an odd size, QEMU 7.2 under TCG loses
 * dirty pages at multiples of 256 KiB, /work/shared/PLATFORM.md), a `--ws`
 * MiB working set (default 96) rewritten at `--rate` MiB/s (default 1), a
 * heartbeat every `--hb` ms (500). Big enough that the streams overlap: a
 * 64 MiB guest moves in about 0.15 s, less than the CLI processes take to
 * start one after the other on 2 cores; 16 of these hold about 3 GiB on
 * the two hosts while the batch runs.
 *
 *   npx tsx bench/concurrent.ts [--guests 16] [--runs 1] [--modes p2p,tunnelled]
 *       [--size 128M+4K] [--ws 96] [--rate 1] [--hb 500] [--settle-ms 1500] [--out concurrent]
 *
 * Needs root, `npm run build` and `make -C guest`. Prints markdown tables and
 * writes bench/results/NAME.json.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { heartbeatCount, testGuestXml, waitForSerialFile } from '../test/support/guest-xml.js';
import { FERRY_URI, ADDR, NS, ferryIn, settledGuestProblems } from './bench-hosts.js';
import { MODES, parseSize, fmtSize } from './compare-report.js';
import { startFerryd, type Ferryd } from './ferryd.js';
import {
  ROOT,
  RssSampler,
  argInt,
  argValue,
  fmtSummary,
  machineInfo,
  markdownTable,
  mibOf,
  onCleanup,
  requireBuild,
  rmTree,
  runMain,
  sleep,
  summarize,
  useDistSnapshot,
  writeResults,
} from './lib.js';

const GUESTS = argInt('guests', 16);
const RUNS = argInt('runs', 1);
const MODE_NAMES = (argValue('modes') ?? 'p2p,tunnelled').split(',');
const SIZE_KIB = parseSize(argValue('size') ?? '128M+4K');
const WS_MIB = argInt('ws', 96);
const RATE = Number(argValue('rate') ?? 1);
const HB_MS = argInt('hb', 500);
const SETTLE_MS = argInt('settle-ms', 1500);
const MIGRATE_TIMEOUT_MS = argInt('migrate-timeout-s', 300) * 1000;
const BATCHES = [...new Set([1, GUESTS])];

for (const m of MODE_NAMES) {
  if (!(m in MODES)) {
    process.stderr.write(`unknown mode '${m}' (${Object.keys(MODES).join(', ')})\n`);
    process.exit(2);
  }
}

interface GuestResult {
  name: string;
  /** `ferry migrate` wall time, ms. */
  migrateMs: number;
  code: number | null;
  ok: boolean;
  problems: string[];
}

interface Batch {
  mode: string;
  n: number;
  run: number;
  /** First `ferry migrate` spawned -> last one exited, ms. */
  wallMs: number;
  /** ferryd A (source) and B (destination): VmRSS KiB. */
  rssKiB: { before: [number, number]; peak: [number, number]; after: [number, number] };
  guests: GuestResult[];
  /** Tunnelled: ferryd's "relayed by ..." lines so far (it logs one per process, at the first relay it hands to the helper). */
  relay: string[];
}

const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '');
const serialOf = (f: Ferryd, name: string) => join(f.stateDir, 'logs', `${name}.serial.log`);

/** Runs `fn` over `xs`, at most `k` at a time. */
async function pool<T, R>(xs: readonly T[], k: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(xs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(k, xs.length) }, async () => {
      while (next < xs.length) {
        const i = next++;
        out[i] = await fn(xs[i]!);
      }
    }),
  );
  return out;
}

runMain(async () => {
  requireBuild(true);
  await useDistSnapshot();
  const machine = machineInfo();
  const work = mkdtempSync(join(tmpdir(), 'ferry-concurrent-'));
  onCleanup('temp dir', () => rmTree(work));
  const hosts = join(ROOT, 'bench', 'libvirt', 'hosts.sh');
  execFileSync('bash', [hosts, 'net'], { stdio: 'inherit' });
  onCleanup('hosts', () => execFileSync('bash', [hosts, 'stop'], { stdio: 'ignore' }));
  const limits = ['--max-outgoing-migrations', String(GUESTS), '--max-incoming-migrations', String(GUESTS)];
  const fd = [
    await startFerryd({ dir: join(work, 'ferry-a'), hostName: 'conc-a', netns: NS[0], listenTcp: `${ADDR[0]}:16609`, extraArgs: limits }),
    await startFerryd({ dir: join(work, 'ferry-b'), hostName: 'conc-b', netns: NS[1], listenTcp: `${ADDR[1]}:16609`, extraArgs: limits }),
  ] as const;
  onCleanup('ferryds', () => fd.forEach((f) => f.stop()));
  const pids = [fd[0].pid, fd[1].pid] as const;
  const t0 = Date.now();
  const batches: Batch[] = [];

  const runBatch = async (mode: string, n: number, run: number): Promise<Batch> => {
    const names = Array.from({ length: n }, (_, i) => `cc-${mode}-${n}-${run}-${i + 1}`);
    try {
      // Define and start the guests on A, a few at a time, and wait until each beats.
      await pool(names, 4, async (name) => {
        const xml = join(work, `${name}.xml`);
        writeFileSync(xml, testGuestXml({ name, uuid: randomUUID(), memoryKiB: SIZE_KIB, cmdline: `ws=${WS_MIB} rate=${RATE} hb=${HB_MS}` }));
        const c = await ferryIn(0, fd[0], ['create', xml], 120_000);
        if (c.code !== 0) throw new Error(`ferry create ${name}: ${c.stderr.trim()}`);
      });
      await Promise.all(names.map((name) => waitForSerialFile(serialOf(fd[0], name), heartbeatCount(4), 120_000)));
      await sleep(500);

      const sampler = new RssSampler(pids, 50).start();
      const tStart = performance.now();
      const outs = await Promise.all(
        names.map(async (name) => {
          const m = await ferryIn(0, fd[0], ['--json', 'migrate', ...MODES[mode]!.ferry, name, FERRY_URI[1]!], MIGRATE_TIMEOUT_MS);
          return { name, m };
        }),
      );
      const wallMs = performance.now() - tStart;
      const guests: GuestResult[] = await Promise.all(
        outs.map(async ({ name, m }) => {
          const problems: string[] = [];
          if (m.code !== 0) problems.push(`ferry migrate exit ${m.code}: ${(m.stderr || m.stdout).trim().split('\n')[0]}`);
          else problems.push(...(await settledGuestProblems(() => read(serialOf(fd[0], name)), () => read(serialOf(fd[1], name)), SETTLE_MS)));
          return { name, migrateMs: m.ms, code: m.code, ok: problems.length === 0, problems };
        }),
      );
      const [a, b] = sampler.stop();
      // ferryd says "relayed by HELPER" once per process, at the first relay it hands over: read the whole log.
      const relay = mode === 'tunnelled' ? [read(fd[0].logPath), read(fd[1].logPath)].flatMap((t) => t.split('\n')).filter((l) => /relayed by/.test(l)) : [];
      return {
        mode,
        n,
        run,
        wallMs,
        rssKiB: { before: [a!.firstKiB, b!.firstKiB], peak: [a!.peakKiB, b!.peakKiB], after: [a!.lastKiB, b!.lastKiB] },
        guests,
        relay: [...new Set(relay.map((l) => l.replace(/^.*?(relayed by)/, '$1')))],
      };
    } finally {
      await pool(names, 4, async (name) => {
        await ferryIn(1, fd[1], ['destroy', name], 60_000).catch(() => null);
        await ferryIn(0, fd[0], ['destroy', name], 60_000).catch(() => null);
      });
    }
  };

  const total = MODE_NAMES.length * BATCHES.length * RUNS;
  for (let run = 1; run <= RUNS; run++) {
    for (const mode of MODE_NAMES) {
      for (const n of BATCHES) {
        const b = await runBatch(mode, n, run);
        batches.push(b);
        const ok = b.guests.filter((g) => g.ok).length;
        process.stderr.write(
          `[${batches.length}/${total} ${((Date.now() - t0) / 60000).toFixed(1)} min] ${mode} N=${n} run ${run}: ${ok}/${n} OK, batch ${(b.wallMs / 1000).toFixed(2)} s, ` +
            `RSS A ${mibOf(b.rssKiB.before[0])}/${mibOf(b.rssKiB.peak[0])}/${mibOf(b.rssKiB.after[0])} B ${mibOf(b.rssKiB.before[1])}/${mibOf(b.rssKiB.peak[1])}/${mibOf(b.rssKiB.after[1])} MiB` +
            `${b.relay.length ? `; ${b.relay.join('; ')}` : ''}\n`,
        );
        for (const g of b.guests.filter((x) => !x.ok)) process.stderr.write(`  ${g.name}: ${g.problems.join('; ')}\n`);
      }
    }
  }

  const report = render(batches);
  process.stdout.write(report);
  const file = writeResults(argValue('out') ?? 'concurrent', {
    machine,
    loadavgAtEnd: os.loadavg(),
    minutes: (Date.now() - t0) / 60000,
    settings: { guests: GUESTS, runs: RUNS, modes: MODE_NAMES, sizeKiB: SIZE_KIB, wsMiB: WS_MIB, rate: RATE, hbMs: HB_MS, settleMs: SETTLE_MS, slotLimit: GUESTS },
    batches,
    report,
  });
  process.stdout.write(`\nresults: ${file}\n`);
});

function render(batches: readonly Batch[]): string {
  const out: string[] = [];
  out.push(
    `${GUESTS} guests of ${fmtSize(SIZE_KIB)} (${WS_MIB} MiB working set, writer ${RATE} MiB/s, heartbeat ${HB_MS} ms) migrated from ferryd A to ferryd B, N at once, each by its own \`ferry migrate\`; both ferryds at ${GUESTS} outgoing and incoming slots. RSS: VmRSS sampled every 50 ms, MiB (before the batch / peak during it / after it, once every guest was checked: at least ${SETTLE_MS} ms later).\n`,
  );
  const rows: string[][] = [];
  for (const mode of MODE_NAMES) {
    for (const n of BATCHES) {
      const bs = batches.filter((b) => b.mode === mode && b.n === n);
      if (bs.length === 0) continue;
      const ok = bs.reduce((k, b) => k + b.guests.filter((g) => g.ok).length, 0);
      const all = bs.reduce((k, b) => k + b.guests.length, 0);
      const med = (f: (b: Batch) => number) => fmtSummary(summarize(bs.map(f)), 1);
      const rss = (i: 0 | 1) => `${med((b) => b.rssKiB.before[i] / 1024)} / ${med((b) => b.rssKiB.peak[i] / 1024)} / ${med((b) => b.rssKiB.after[i] / 1024)}`;
      rows.push([
        MODES[mode]!.label,
        String(n),
        `${ok}/${all}`,
        fmtSummary(summarize(bs.map((b) => b.wallMs / 1000)), 2),
        fmtSummary(summarize(bs.flatMap((b) => b.guests.map((g) => g.migrateMs / 1000))), 2),
        rss(0),
        rss(1),
        [...new Set(bs.flatMap((b) => b.relay))].join('; ') || (mode === 'tunnelled' ? 'in-process relay (no "relayed by" line)' : '-'),
      ]);
    }
  }
  out.push(
    markdownTable(
      ['mode', 'N at once', 'guest check OK', 'batch wall s', 'one `ferry migrate` s, median (min-max)', 'ferryd A RSS MiB before / peak / after', 'ferryd B RSS MiB before / peak / after', 'relay'],
      rows,
    ),
  );
  out.push('');
  out.push('Every guest (heartbeat on A, then on B: continuous at +1, no CORRUPT, still beating):\n');
  out.push(
    markdownTable(
      ['mode', 'N', 'run', 'guest', '`ferry migrate` s', 'check'],
      batches.flatMap((b) => b.guests.map((g) => [b.mode, String(b.n), String(b.run), g.name, (g.migrateMs / 1000).toFixed(2), g.ok ? 'OK' : g.problems.join('; ')])),
    ),
  );
  out.push('');
  return out.join('\n');
}
