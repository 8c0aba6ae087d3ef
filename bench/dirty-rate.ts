/**
 * dirty-rate: what `domdirtyrate-calc` measures under TCG (QEMU 7.2) for the
 * test guest at known rewrite rates, in page-sampling mode (the only one
 * that works under TCG) and a few periods, next to the rate the guest writes and
 * the bound working set / period (a page written twice in a period counts
 * once). One guest at a time, one ferryd, through the native API.
 *
 * Guest RAM is 256 MiB + 4 KiB by default; `--mems 262148,262144` also runs
 * the aligned 256 MiB, where QEMU 7.2 under TCG syncs the dirty bitmap on
 * its fast path (docs/migration.md, "Memory sizes under TCG").
 *
 * Run: npx tsx bench/dirty-rate.ts [--runs 3] [--ws 64] [--rates 0,10,30,100] [--periods 1,3] [--mems 262148]
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../src/api/client.js';
import { testGuestXml } from '../test/support/guest-xml.js';
import { startFerryd } from './ferryd.js';
import { argInt, argValue, machineInfo, markdownTable, median, requireBuild, rmTree, runMain, sleep, writeResults } from './lib.js';

const RUNS = argInt('runs', 3);
const WS = argInt('ws', 64);
const RATES = (argValue('rates') ?? '0,10,30,100').split(',').map(Number);
const PERIODS = (argValue('periods') ?? '1,3').split(',').map(Number);
const MEMS = (argValue('mems') ?? '262148').split(',').map(Number);
/** Under TCG ferryd refuses dirty-bitmap (QEMU 7.2 crashes on it); `--modes page-sampling,dirty-bitmap` for a KVM host. */
const MODES = (argValue('modes') ?? 'page-sampling').split(',');

interface Row {
  memKiB: number;
  rate: number;
  period: number;
  mode: string;
  measured: number[];
}

async function measure(c: ApiClient, domain: string, seconds: number, mode: string): Promise<number> {
  await c.call('domain.dirtyRateCalc', { domain, seconds, mode: mode as never });
  const deadline = Date.now() + seconds * 1000 + 10_000;
  for (;;) {
    const [r] = await c.call('domain.stats', { domains: [domain], dirtyrate: true });
    const s = r?.stats ?? {};
    if (s['dirtyrate.calc_status'] === 2 && s['dirtyrate.calc_mode'] === mode && s['dirtyrate.calc_period'] === seconds) return Number(s['dirtyrate.megabytes_per_second']);
    if (Date.now() > deadline) throw new Error(`no result for ${domain} (${mode}, ${seconds} s): ${JSON.stringify(s)}`);
    await sleep(100);
  }
}

async function main(): Promise<void> {
  requireBuild(true);
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-dirty-'));
  const f = await startFerryd({ dir, hostName: 'dirty-rate' });
  const c = await ApiClient.connect(f.unixUri);
  const rows: Row[] = [];
  try {
    for (const memKiB of MEMS) for (const rate of RATES) {
      const name = `dr-${memKiB}-${rate}`;
      await c.call('domain.create', { xml: testGuestXml({ name, memoryKiB: memKiB, cmdline: `ws=${WS} rate=${rate} hb=500` }) });
      // Let the guest fill its working set first (one pass at its rate, at least 2 s).
      await sleep(Math.max(2000, rate > 0 ? Math.min(10_000, (WS / rate) * 1000) : 0));
      for (const period of PERIODS) {
        for (const mode of MODES) {
          const row: Row = { memKiB, rate, period, mode, measured: [] };
          for (let i = 0; i < RUNS; i++) row.measured.push(await measure(c, name, period, mode));
          rows.push(row);
          process.stderr.write(`${memKiB} KiB, rate ${rate} MiB/s, ${period} s, ${mode}: ${row.measured.join(', ')} MiB/s\n`);
        }
      }
      await c.call('domain.destroy', { domain: name });
    }
  } finally {
    c.close();
    f.stop();
    rmTree(dir);
  }
  const table = markdownTable(
    ['guest RAM (KiB)', 'guest writes (MiB/s)', 'period (s)', 'mode', 'measured (MiB/s), each run', 'median', 'bound min(rate, ws/period)'],
    rows.map((r) => [String(r.memKiB), String(r.rate), String(r.period), r.mode, r.measured.join(', '), String(median(r.measured)), String(Math.round(Math.min(r.rate, WS / r.period)))]),
  );
  process.stdout.write(`working set ${WS} MiB, TCG\n\n${table}\n`);
  writeResults('dirty-rate', { machine: machineInfo(), ws: WS, rows });
}

runMain(main);
