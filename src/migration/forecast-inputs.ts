/**
 * What the forecast needs, measured on the source host for one guest:
 * its memory and how much of it is touched, its dirty rate (a QEMU
 * page-sampling measurement, which costs the guest nothing), the downtime
 * limit, and the bandwidth the stream would get: the `bandwidth`
 * parameter or `migrate-setspeed` when set, else a measurement of the
 * path to the destination. Nothing here changes the guest or a host.
 */
import { FerryError } from '../errors/index.js';
import { hasFlag, type MigrationParams } from '../flags/index.js';
import type { Host } from '../host/host.js';
import type { HostedDomain } from '../host/hosted-domain.js';
import { guestRamResidentKiB } from '../qemu/index.js';
import { STREAM_CEILING_BYTES_PER_S, type Forecast, type ForecastInput } from './forecast.js';
import type { ProbeResult } from './bandwidth-probe.js';
import { MIB } from './tuning.js';

/** What `migrate --dry-run` answers: the forecast, what it was computed from, and where each figure came from. */
export interface MigrationForecast {
  domain: string;
  forecast: Forecast;
  inputs: ForecastInput;
  sources: MeasuredInputs['sources'];
}

/** Pages QEMU samples per GiB for the forecast's dirty rate (its maximum). */
export const FORECAST_SAMPLE_PAGES_PER_GIB = 4096;
/** How long the dirty rate is measured, seconds. */
export const FORECAST_DIRTY_SECONDS = 1;
/** QEMU's default downtime limit, ms (when the guest's QEMU does not say). */
const QEMU_DEFAULT_DOWNTIME_MS = 300;

/** The inputs, and where each came from (shown with the forecast). */
export interface MeasuredInputs {
  input: ForecastInput;
  sources: {
    dirtyRate: string;
    bandwidth: string;
    touched: string;
  };
}

/**
 * Measures the forecast's inputs for running guest `d` and request `req`.
 * `probe` measures the path to the destination; it is asked only when no
 * bandwidth is set.
 */
export async function measureForecastInputs(
  host: Host,
  d: HostedDomain,
  req: { flags: number; params: MigrationParams },
  setSpeedMiB: number | undefined,
  probe: (() => Promise<ProbeResult>) | undefined,
): Promise<MeasuredInputs> {
  const rt = d.runtime;
  if (!rt || !d.active) throw new FerryError('operation_invalid', `domain '${d.name}' is not running: there is nothing to forecast for an offline migration (it copies only the definition)`);
  const def = rt.liveDoc.def;
  const memoryBytes = def.memoryKiB * 1024;
  const residentKiB = await guestRamResidentKiB(rt.qemu.pid, def.memoryKiB);
  const touchedBytes = residentKiB !== undefined ? Math.min(memoryBytes, residentKiB * 1024) : memoryBytes;

  // Two 1 s windows, averaged: one window moves by up to +-15 % for a steady writer (measured), and a
  // longer window would cap the figure at working set / period.
  const windows = [await measureDirtyRate(host, d), await measureDirtyRate(host, d)];
  const dirtyMiBps = windows.reduce((a, b) => a + b, 0) / windows.length;
  const downtime = await rt.qemu.qmp.execute<{ 'downtime-limit'?: number }>('query-migrate-parameters').then((p) => p['downtime-limit'] ?? QEMU_DEFAULT_DOWNTIME_MS);

  let bandwidthBytesPerS: number;
  let bandwidthFrom: string;
  const cap = req.params.bandwidth ?? setSpeedMiB;
  if (cap !== undefined && cap > 0 && cap < 2 ** 40) {
    bandwidthBytesPerS = cap * MIB;
    bandwidthFrom = req.params.bandwidth !== undefined ? `--bandwidth ${cap} MiB/s` : `migrate-setspeed ${cap} MiB/s`;
    if (probe) {
      // A cap above what the path carries is not what the stream will get.
      const measured = await probe().catch(() => undefined);
      if (measured && measured.bytesPerS > 0 && measured.bytesPerS < bandwidthBytesPerS) {
        bandwidthBytesPerS = measured.bytesPerS;
        bandwidthFrom = `measured path to the destination (${(measured.bytesPerS / MIB).toFixed(1)} MiB/s, below --bandwidth ${cap})`;
      }
    }
  } else {
    if (!probe) throw new FerryError('invalid_arg', 'cannot measure the path to the destination from here; give --bandwidth MiB/s for the forecast');
    const measured = await probe();
    if (measured.bytesPerS <= 0) throw new FerryError('operation_failed', 'the measurement of the path to the destination moved too little to tell a rate; give --bandwidth MiB/s for the forecast');
    bandwidthBytesPerS = measured.bytesPerS;
    bandwidthFrom = `measured path to the destination: ${(measured.bytes / MIB).toFixed(0)} MiB in ${measured.ms.toFixed(0)} ms`;
  }
  if (bandwidthBytesPerS > STREAM_CEILING_BYTES_PER_S) {
    // QEMU under TCG does not fill a fast path (forecast.ts, STREAM_CEILING_BYTES_PER_S).
    bandwidthFrom = `${bandwidthFrom}; QEMU's stream ceiling ${(STREAM_CEILING_BYTES_PER_S / MIB).toFixed(0)} MiB/s applies`;
    bandwidthBytesPerS = STREAM_CEILING_BYTES_PER_S;
  }
  const input: ForecastInput = {
    memoryBytes,
    touchedBytes,
    dirtyBytesPerS: dirtyMiBps * MIB,
    bandwidthBytesPerS,
    downtimeLimitMs: downtime,
    ...(hasFlag(req.flags, 'AUTO_CONVERGE') ? { autoConverge: { ...(req.params['auto_converge.initial'] !== undefined ? { initial: req.params['auto_converge.initial'] } : {}), ...(req.params['auto_converge.increment'] !== undefined ? { increment: req.params['auto_converge.increment'] } : {}) } } : {}),
    ...(hasFlag(req.flags, 'POSTCOPY') ? { postcopy: true } : {}),
  };
  return {
    input,
    sources: {
      dirtyRate: `QEMU page sampling (${FORECAST_SAMPLE_PAGES_PER_GIB} pages per GiB), two ${FORECAST_DIRTY_SECONDS} s windows: ${windows.join(' and ')} MiB/s`,
      bandwidth: bandwidthFrom,
      touched: residentKiB !== undefined ? `${(touchedBytes / MIB).toFixed(1)} MiB of ${(memoryBytes / MIB).toFixed(1)} MiB resident in QEMU` : 'all of the memory (the resident size could not be read)',
    },
  };
}

/** Measures the dirty rate (MiB/s) and waits for the result, bounded by the period plus 10 s. */
async function measureDirtyRate(host: Host, d: HostedDomain): Promise<number> {
  // The most sampled pages QEMU takes: at 512 per GiB a 256 MiB guest has 128 pages sampled, and the rate moves in 2 MiB/s steps.
  await host.dirtyRates.start(d.uuid, FORECAST_DIRTY_SECONDS, 'page-sampling', { samplePagesPerGiB: FORECAST_SAMPLE_PAGES_PER_GIB });
  const deadline = Date.now() + FORECAST_DIRTY_SECONDS * 1000 + 10_000;
  await new Promise((r) => setTimeout(r, FORECAST_DIRTY_SECONDS * 1000));
  for (;;) {
    const info = await host.dirtyRates.query(d);
    if (!info) throw new FerryError('operation_failed', `domain '${d.name}' stopped running while its dirty rate was measured`);
    if (info.status === 'measured' && info.megabytesPerSecond !== null) return info.megabytesPerSecond;
    if (Date.now() > deadline) throw new FerryError('operation_timeout', `QEMU did not finish measuring the dirty rate of '${d.name}' within ${FORECAST_DIRTY_SECONDS + 10} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
