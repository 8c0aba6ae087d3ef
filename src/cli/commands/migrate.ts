/**
 * `migrate`: virsh's options, read from the flag and parameter tables so
 * that each option is defined once. Managed mode (default) drives the five
 * phases from here over two connections; `--p2p` hands them to the source
 * daemon. Progress comes from polling the source's job statistics.
 */
import { Option, type Command } from 'commander';
import { FerryError } from '../../errors/index.js';
import { MIGRATION_FLAGS, type MigrationFlagSpec } from '../../flags/migration-flags.js';
import { MIGRATION_PARAMS, type MigrationParamSpec } from '../../flags/migration-params.js';
import type { JobStats } from '../../host/job-stats.js';
import type { CliContext } from '../context.js';
import { printResult, renderFields } from '../output.js';
import { addPolicyOptions, type PolicyOptions } from '../policy-options.js';
import { parsePositiveInt } from './console.js';

export interface MigrateExtras extends PolicyOptions {
  verbose?: boolean;
  timeout?: number;
  timeoutSuspend?: boolean;
  timeoutPostcopy?: boolean;
  postcopyAfterPrecopy?: boolean;
  direct?: boolean;
  dryRun?: boolean;
}

// The action lives in migrate-run.ts, loaded when `migrate` runs (start-up time: docs/performance.md).

/** Registers `migrate`. */
export function registerMigrateCommand(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('migrate')
    .description('migrate a domain to another host (managed by this client unless --p2p)')
    .argument('<domain>', 'domain name, id or uuid')
    .argument('<desturi>', 'destination host URI, e.g. ferry+tls://host-b/system');
  for (const f of MIGRATION_FLAGS as readonly MigrationFlagSpec[]) {
    cmd.addOption(new Option(f.option, `${f.summary}${f.availability === 'later' ? ' (not implemented yet)' : ''}`));
  }
  for (const p of MIGRATION_PARAMS as readonly MigrationParamSpec[]) {
    const value = p.cliInput === 'file' ? 'FILE' : p.valueName;
    cmd.addOption(new Option(`${p.option} <${value}>`, `${p.summary}${p.availability === 'later' ? ' (not implemented yet)' : ''}`));
  }
  addPolicyOptions(cmd)
    .option('--direct', 'hypervisor-native direct migration (not offered for QEMU: use managed mode or --p2p)')
    .option('--verbose', 'show a progress bar')
    .option('--timeout <seconds>', 'act when the live migration has not finished after SECONDS (default action: suspend the guest)', (v) => parsePositiveInt(v, '--timeout'))
    .option('--timeout-suspend', 'with --timeout: suspend the guest so the copy can finish')
    .option('--timeout-postcopy', 'with --timeout: switch to post-copy instead of suspending')
    .option('--postcopy-after-precopy', 'with --postcopy: switch to post-copy once the first pass over memory is done')
    .option('--dry-run', 'migrate nothing: measure the guest and the path, and forecast whether and how the migration would finish')
    .action(async (domain: string, destUri: string, opts: Record<string, unknown> & MigrateExtras) => (await import('./migrate-run.js')).migrate(ctx, domain, destUri, opts));
}

/** Registers `domjobinfo`, `domjobabort` and the migration tuning commands. */
export function registerJobCommands(program: Command, ctx: CliContext): void {
  program
    .command('domjobinfo')
    .description("show the statistics of a domain's running job (or with --completed, of the last finished one)")
    .argument('<domain>', 'domain name, id or uuid')
    .option('--completed', 'show the last completed job')
    .action(async (domain: string, opts: { completed?: boolean }) => {
      const s = await (await ctx.client()).call('domain.jobInfo', { domain, completed: !!opts.completed });
      printResult(ctx.output, s, () => renderJobStats(s));
    });

  program
    .command('domjobabort')
    .description("abort a domain's running migration job")
    .argument('<domain>', 'domain name, id or uuid')
    .option('--postcopy', 'pause a migration in its post-copy phase instead (resume it with migrate --postcopy-resume)')
    .action(async (domain: string, opts: { postcopy?: boolean }) => {
      const r = await (await ctx.client()).call('domain.jobAbort', { domain, ...(opts.postcopy ? { postcopy: true } : {}) });
      printResult(ctx.output, r, () => '');
    });

  program
    .command('migrate-setmaxdowntime')
    .description('set the maximum tolerable downtime of a live migration, in milliseconds')
    .argument('<domain>', 'domain name, id or uuid')
    .argument('<downtime>', 'milliseconds')
    .action(async (domain: string, downtime: string) => {
      const r = await (await ctx.client()).call('domain.migrateSetMaxDowntime', { domain, downtime: parsePositiveInt(downtime, 'downtime') });
      printResult(ctx.output, r, () => '');
    });

  program
    .command('migrate-getmaxdowntime')
    .description('print the maximum tolerable downtime of a live migration, in milliseconds')
    .argument('<domain>', 'domain name, id or uuid')
    .action(async (domain: string) => {
      const r = await (await ctx.client()).call('domain.migrateGetMaxDowntime', { domain });
      printResult(ctx.output, r, () => String(r.downtime));
    });

  program
    .command('migrate-setspeed')
    .description("set the migration bandwidth limit in MiB/s (applies to a running migration at once); 0 removes the limit")
    .argument('<domain>', 'domain name, id or uuid')
    .argument('<bandwidth>', 'MiB/s')
    .action(async (domain: string, bandwidth: string) => {
      const n = Number(bandwidth);
      if (!Number.isSafeInteger(n) || n < 0) throw new FerryError('invalid_arg', `bandwidth must be a non-negative integer (MiB/s), not '${bandwidth}'`);
      const r = await (await ctx.client()).call('domain.migrateSetSpeed', { domain, bandwidth: n });
      printResult(ctx.output, r, () => '');
    });

  program
    .command('migrate-getspeed')
    .description('print the migration bandwidth limit in MiB/s')
    .argument('<domain>', 'domain name, id or uuid')
    .action(async (domain: string) => {
      const r = await (await ctx.client()).call('domain.migrateGetSpeed', { domain });
      printResult(ctx.output, r, () => String(r.bandwidth));
    });

  program
    .command('migrate-postcopy')
    .description('switch a running migration (started with --postcopy) to post-copy')
    .argument('<domain>', 'domain name, id or uuid')
    .action(async (domain: string) => {
      const r = await (await ctx.client()).call('domain.migrateStartPostcopy', { domain });
      printResult(ctx.output, r, () => '');
    });
}

const JOB_FIELDS: Array<[keyof JobStats, string, (v: number) => string]> = [
  ['queue_position', 'Queued at position', String],
  ['time_elapsed', 'Time elapsed', (v) => `${v} ms`],
  ['time_remaining', 'Time remaining', (v) => `${v} ms`],
  ['data_processed', 'Data processed', mib],
  ['data_remaining', 'Data remaining', mib],
  ['data_total', 'Data total', mib],
  ['memory_processed', 'Memory processed', mib],
  ['memory_remaining', 'Memory remaining', mib],
  ['memory_total', 'Memory total', mib],
  ['memory_bps', 'Memory bandwidth', (v) => `${mib(v)}/s`],
  ['memory_dirty_rate', 'Dirty rate', (v) => `${v} pages/s`],
  ['memory_page_size', 'Page size', (v) => `${v} bytes`],
  ['memory_iteration', 'Iteration', String],
  ['memory_postcopy_requests', 'Postcopy requests', String],
  ['memory_constant', 'Constant pages', String],
  ['memory_normal', 'Normal pages', String],
  ['memory_normal_bytes', 'Normal data', mib],
  ['disk_processed', 'File processed', mib],
  ['disk_remaining', 'File remaining', mib],
  ['disk_total', 'File total', mib],
  ['disk_bps', 'File bandwidth', (v) => `${mib(v)}/s`],
  ['downtime', 'Total downtime', (v) => `${v} ms`],
  ['setup_time', 'Setup time', (v) => `${v} ms`],
  ['auto_converge_throttle', 'Auto converge throttle', (v) => `${v} %`],
  ['compression_cache', 'Compression cache', mib],
  ['compression_bytes', 'Compressed data', mib],
  ['compression_pages', 'Compressed pages', String],
  ['compression_cache_misses', 'Compression cache misses', String],
  ['compression_overflow', 'Compression overflows', String],
  ['wall_time', 'Wall time (Ferry)', (v) => `${v} ms`],
];

function mib(v: number): string {
  return `${(v / 1048576).toFixed(3)} MiB`;
}

/** virsh's `domjobinfo` layout. */
export function renderJobStats(s: JobStats): string {
  const fields: Array<[string, string]> = [['Job type', s.type]];
  if (s.type === 'None') return renderFields(fields);
  fields.push(['Operation', s.operation]);
  for (const [key, label, fmt] of JOB_FIELDS) {
    const v = s[key];
    if (typeof v === 'number') fields.push([label, fmt(v)]);
  }
  // Ferry's own lines, after virsh's: where the job is, the live verdict, and the convergence policy's doings.
  if (s.phase) fields.push(['Phase', s.phase]);
  if (s.convergence) fields.push(['Convergence', s.convergence]);
  if (s.warning) fields.push(['Warning', s.warning]);
  if (s.policy_steps) fields.push(['Policy steps', s.policy_steps]);
  if (s.errmsg) fields.push(['Error message', s.errmsg]);
  return renderFields(fields);
}
