/** `domstats` and `domdirtyrate-calc`: a domain's statistics by group, and the memory dirty-rate measurement behind `--dirtyrate`. */
import type { Command } from 'commander';
import { FerryError } from '../../errors/index.js';
import type { DirtyRateMode, DomainStatsResult } from '../../api/protocol.js';
import type { ApiClient } from '../../api/client.js';
import type { CliContext } from '../context.js';
import { printResult } from '../output.js';

/** Extra time `domdirtyrate-calc --wait` allows beyond the measuring period. */
const WAIT_MARGIN_MS = 10_000;
/** How often `--wait` reads the measurement. */
const WAIT_POLL_MS = 200;

/** virsh's `domstats` text: `Domain: 'NAME'`, then `  field=value` lines, and a blank line after each domain. */
export function renderDomainStats(records: readonly DomainStatsResult[]): string {
  return records.map((r) => [`Domain: '${r.domain}'`, ...Object.entries(r.stats).map(([k, v]) => `  ${k}=${String(v)}`), ''].join('\n') + '\n').join('');
}

/** A whole number from an option's text, as virsh reads `--seconds`. */
function integerOption(text: string, option: string): number {
  if (!/^[+-]?\d{1,9}$/.test(text.trim())) throw new FerryError('invalid_arg', `Numeric value '${text}' for <${option}> option is malformed or out of range`);
  return Number(text);
}

/**
 * Reads `domain`'s dirty-rate statistics until the measurement is done
 * (`calc_status` 2), for at most `seconds` + 10 s. The status seen is this
 * measurement's: QEMU sets it back to unstarted before it answers the
 * request that starts one.
 */
async function waitForMeasurement(client: ApiClient, domain: string, seconds: number): Promise<DomainStatsResult> {
  const deadline = Date.now() + seconds * 1000 + WAIT_MARGIN_MS;
  for (;;) {
    const [now] = await client.call('domain.stats', { domains: [domain], dirtyrate: true });
    const status = now?.stats['dirtyrate.calc_status'];
    if (now && status === 2) return now;
    if (status === undefined) throw new FerryError('operation_failed', `domain '${domain}' stopped before its dirty-rate calculation finished`);
    if (Date.now() > deadline) throw new FerryError('operation_timeout', `the dirty-rate calculation of domain '${domain}' did not finish within ${seconds} s + ${WAIT_MARGIN_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, WAIT_POLL_MS));
  }
}

/** Registers `domdirtyrate-calc` and `domstats` on `program`. */
export function registerStatsCommands(program: Command, ctx: CliContext): void {
  program
    .command('domdirtyrate-calc')
    .description("start measuring a running domain's memory dirty rate; read the result with domstats --dirtyrate")
    .argument('<domain>', 'domain name, id or uuid')
    .option('--seconds <n>', 'measuring period, 1 to 60 seconds', '1')
    .option('--mode <mode>', 'page-sampling (default; the only mode under TCG), dirty-bitmap or dirty-ring (both need KVM)')
    .option('--wait', 'wait for the result (at most the period + 10 s) and print it')
    .action(async (domain: string, opts: { seconds: string; mode?: string; wait?: boolean }) => {
      const seconds = integerOption(opts.seconds, 'seconds');
      const client = await ctx.client();
      const started = await client.call('domain.dirtyRateCalc', { domain, seconds, ...(opts.mode !== undefined ? { mode: opts.mode as DirtyRateMode } : {}) });
      const sentence = "Start to calculate domain's memory dirty rate successfully.";
      if (!opts.wait) {
        printResult(ctx.output, started, () => sentence);
        return;
      }
      const result = await waitForMeasurement(client, started.domain, started.seconds);
      printResult(ctx.output, { ...started, stats: result.stats }, () => `${sentence}\n${renderDomainStats([result])}`);
    });

  program
    .command('domstats')
    .description("print domains' statistics by group, virsh's field names (all domains when none is named; all groups when none is chosen)")
    .argument('[domains...]', 'domain names, ids or uuids')
    .option('--state', 'the state group: state.state, state.reason')
    .option('--dirtyrate', 'the last memory dirty-rate calculation (domdirtyrate-calc): dirtyrate.calc_status, calc_start_time, calc_period, megabytes_per_second, calc_mode')
    .action(async (domains: string[], opts: { state?: boolean; dirtyrate?: boolean }) => {
      const records = await (await ctx.client()).call('domain.stats', {
        ...(domains.length ? { domains } : {}),
        ...(opts.state ? { state: true } : {}),
        ...(opts.dirtyrate ? { dirtyrate: true } : {}),
      });
      printResult(ctx.output, records, () => renderDomainStats(records));
    });
}
