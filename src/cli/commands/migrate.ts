/**
 * `migrate`: virsh's options, read from the flag and parameter tables so
 * that each option is defined once. Managed mode (default) drives the five
 * phases from here over two connections; `--p2p` hands them to the source
 * daemon. Progress comes from polling the source's job statistics.
 */
import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { ApiClient } from '../../api/client.js';
import { remoteDestination, remoteSource } from '../../api/migration-endpoints.js';
import { requireProtocolVersion } from '../../api/protocol.js';
import { FerryError, toFerryError } from '../../errors/index.js';
import { MIGRATION_FLAGS, MIGRATION_PARAMS, flagsFromNames, hasFlag, parseCliValue, validateMigrationRequest, type MigrationFlagSpec, type MigrationParamName, type MigrationParamSpec } from '../../flags/index.js';
import type { JobStats } from '../../host/job-stats.js';
import type { MigrationForecast } from '../../migration/forecast-inputs.js';
import { DEFAULT_POLICY, resolvePolicy } from '../../migration/convergence.js';
import type { MigrationPolicyEvent } from '../../host/events.js';
import { admitBetweenHosts } from '../../migration/admission.js';
import { runMigration } from '../../migration/driver.js';
import type { CliContext } from '../context.js';
import { printResult, renderFields } from '../output.js';
import { MigrationProgress } from '../progress.js';
import { addPolicyOptions, policyFromOptions, type PolicyOptions } from '../policy-options.js';
import { parsePositiveInt } from './console.js';

/** Commander's camel-case key of an option like `--copy-storage-all`. */
function optionKey(option: string): string {
  return option.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

interface MigrateExtras extends PolicyOptions {
  verbose?: boolean;
  timeout?: number;
  timeoutSuspend?: boolean;
  timeoutPostcopy?: boolean;
  postcopyAfterPrecopy?: boolean;
  direct?: boolean;
  dryRun?: boolean;
}

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
    .action(async (domain: string, destUri: string, opts: Record<string, unknown> & MigrateExtras) => {
      if (opts.direct) throw new FerryError('argument_unsupported', '--direct migration is not offered for QEMU guests; use managed migration (default) or --p2p');
      if ((opts.timeoutPostcopy || opts.postcopyAfterPrecopy) && opts.postcopy !== true) {
        throw new FerryError('invalid_arg', '--timeout-postcopy and --postcopy-after-precopy need --postcopy (POSTCOPY)');
      }
      if (opts.timeoutPostcopy && opts.timeout === undefined) throw new FerryError('invalid_arg', '--timeout-postcopy needs --timeout SECONDS');
      if (opts.timeoutPostcopy && opts.timeoutSuspend) throw new FerryError('invalid_arg', '--timeout-suspend and --timeout-postcopy exclude each other');
      const names = MIGRATION_FLAGS.filter((f) => opts[optionKey(f.option)] === true).map((f) => f.name);
      let flags = flagsFromNames(names);
      if (opts.timeout !== undefined) flags |= flagsFromNames(['LIVE']); // virsh: --timeout implies a live migration
      const params: Record<string, unknown> = {};
      for (const p of MIGRATION_PARAMS as readonly MigrationParamSpec[]) {
        const raw = opts[optionKey(p.option)];
        if (typeof raw !== 'string') continue;
        const text = p.cliInput === 'file' ? await readParamFile(p.option, raw) : raw;
        params[p.name] = p.cliInput === 'file' ? text : parseCliValue(p.name as MigrationParamName, text);
      }
      // Fail early, before any host is touched; the daemons check again with what only they know.
      validateMigrationRequest({ flags, params });
      const policy = policyFromOptions(opts);
      if (policy) resolvePolicy(policy, DEFAULT_POLICY);
      const source = await ctx.client();
      if (opts.dryRun) {
        const f = await source.call('domain.migrateForecast', { domain, destUri, flags, params }, { timeoutMs: 60_000 });
        printResult(ctx.output, { domain: f.domain, ...f.forecast, inputs: f.inputs, sources: f.sources }, () => renderForecast(f, destUri));
        return;
      }
      const start = Date.now();
      const progress = opts.verbose ? startProgress(source, domain) : null;
      const switchToPostcopy = () => void source.call('domain.migrateStartPostcopy', { domain }).catch(() => undefined);
      // virsh: when --timeout expires, suspend the guest, or with --timeout-postcopy switch to post-copy.
      const timeoutTimer =
        opts.timeout !== undefined
          ? setTimeout(() => (opts.timeoutPostcopy ? switchToPostcopy() : void source.call('domain.suspend', { domain }).catch(() => undefined)), opts.timeout * 1000)
          : null;
      // --postcopy-after-precopy: switch once the first pass over memory is done. As virsh does, on
      // the migration-iteration event that starts the second pass; a 200 ms poll of the job covers
      // an event that never comes.
      let switched = false;
      const switchOnce = () => {
        if (switched) return;
        switched = true;
        if (afterPrecopy) clearInterval(afterPrecopy);
        switchToPostcopy();
      };
      const afterPrecopy = opts.postcopyAfterPrecopy
        ? setInterval(() => {
            void source
              .call('domain.jobInfo', { domain })
              .then((s) => {
                if ((s.memory_iteration ?? 0) >= 2) switchOnce();
              })
              .catch(() => undefined);
          }, 200)
        : null;
      if (opts.postcopyAfterPrecopy) {
        source.on('event', (name: string, data: { domain?: string; uuid?: string; iteration?: number }) => {
          if (name === 'domain.migration-iteration' && (data.domain === domain || data.uuid === domain) && (data.iteration ?? 0) >= 2) switchOnce();
        });
        await source.call('events.subscribe', {}).catch(() => undefined);
      }
      // The convergence policy's warnings and steps, as they happen.
      const policyEvents: MigrationPolicyEvent[] = [];
      source.on('event', (name: string, data: MigrationPolicyEvent) => {
        if (name !== 'domain.migration-policy' || (data.domain !== domain && data.uuid !== domain)) return;
        policyEvents.push(data);
        if (!ctx.output.json) process.stderr.write(`${opts.verbose && process.stderr.isTTY ? '\n' : ''}migrate: ${data.step === 'warn' ? 'warning' : 'policy'}: ${data.message}\n`);
      });
      await source.call('events.subscribe', {}).catch(() => undefined);
      const onSigint = () => {
        process.stderr.write('\nmigrate: aborting the job (Ctrl-C)\n');
        void source.call('domain.jobAbort', { domain }).catch(() => undefined);
      };
      process.on('SIGINT', onSigint);
      try {
        let result: { domain?: string; state: string; reason: string; persistent: boolean };
        let stats: JobStats | null = null;
        if (hasFlag(flags, 'PEER2PEER')) {
          const r = await source.call('domain.migrate', { domain, destUri, flags, params, ...(policy ? { policy } : {}) });
          result = { domain: r.domain ?? domain, state: r.state, reason: r.reason, persistent: r.persistent };
          stats = r.stats;
        } else {
          // Managed mode: this client watches both daemons (keepalive) and the driver cancels the stream if the destination is lost.
          const dest = await ApiClient.connect(destUri, ctx.connectOptions);
          const dst = remoteDestination(dest, ctx.connectOptions);
          try {
            const [srcId, dstId] = await Promise.all([source.call('connect.hello', {}), dest.call('connect.hello', {})]);
            requireProtocolVersion(srcId, 'the source daemon');
            requireProtocolVersion(dstId, `the destination daemon at ${destUri}`);
            // Again with both hosts known: the table's same-host rule.
            admitBetweenHosts({ flags, params }, srcId, dstId);
            const out = await runMigration(remoteSource(source), dst, domain, { flags, params, ...(policy ? { policy } : {}), destUri });
            if (out.confirmWarning) process.stderr.write(`warning: ${out.confirmWarning}\n`);
            result = { domain: out.finish.domainName, state: out.finish.state, reason: out.finish.reason, persistent: out.finish.persistent };
            stats = out.perform ? { ...out.perform.stats, ...(out.finish.downtimeMs !== undefined ? { downtime: out.finish.downtimeMs } : {}) } : null;
          } finally {
            dst.close();
          }
        }
        await progress?.stop(true);
        const wall = Date.now() - start;
        printResult(ctx.output, { result, stats, wallTimeMs: wall, policyEvents }, () => {
          const lines = [`Migration: [100 %]`, `Domain '${domain}' migrated to ${destUri} in ${(wall / 1000).toFixed(2)} s: ${result.state} (${result.reason})${result.persistent ? ', persistent' : ''}`];
          if (stats?.downtime !== undefined) lines.push(`downtime ${stats.downtime} ms, ${((stats.data_processed ?? 0) / 1048576).toFixed(1)} MiB sent`);
          return opts.verbose ? lines.join('\n') : lines.slice(1).join('\n');
        });
      } catch (err) {
        await progress?.stop(false);
        throw toFerryError(err);
      } finally {
        if (timeoutTimer) clearTimeout(timeoutTimer);
        if (afterPrecopy) clearInterval(afterPrecopy);
        process.off('SIGINT', onSigint);
      }
    });
}

/** The forecast as `migrate --dry-run` prints it. */
function renderForecast(f: MigrationForecast, destUri: string): string {
  const MiB = 1048576;
  const i = f.inputs;
  const fc = f.forecast;
  const lines = [
    `Forecast for migrating '${f.domain}' to ${destUri} (dry run: nothing was migrated)`,
    `  memory:     ${(i.memoryBytes / MiB).toFixed(1)} MiB (${f.sources.touched})`,
    `  dirty rate: ${(i.dirtyBytesPerS / MiB).toFixed(1)} MiB/s (${f.sources.dirtyRate})`,
    `  bandwidth:  ${(i.bandwidthBytesPerS / MiB).toFixed(1)} MiB/s (${f.sources.bandwidth})`,
    `  downtime limit: ${i.downtimeLimitMs} ms`,
    '',
    fc.converges ? `Converges (${fc.mode}): ${fc.reason}.` : `Will NOT converge: ${fc.reason}.`,
    `  passes over memory: ${fc.iterations}`,
    `  ${fc.converges ? 'total time' : 'time until it stalls'}: ${(fc.total_ms / 1000).toFixed(1)} s`,
    `  downtime:   ${fc.downtime_ms} ms`,
    `  data sent:  ${(fc.data_bytes / MiB).toFixed(1)} MiB`,
  ];
  if (fc.postcopy_window_ms !== undefined) lines.push(`  post-copy window: ${(fc.postcopy_window_ms / 1000).toFixed(1)} s (losing the source host or the link meanwhile loses the guest)`);
  if (fc.throttle_percent !== undefined) lines.push(`  vCPU throttle reached: ${fc.throttle_percent} %`);
  if (fc.advice.length) {
    lines.push('', 'What would make it finish:');
    for (const a of fc.advice) lines.push(`  - ${a.action}: ${a.effect}; cost: ${a.cost}`);
  }
  return lines.join('\n');
}

async function readParamFile(option: string, file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new FerryError('invalid_arg', `cannot read the file given to ${option}: ${(err as Error).message}`);
  }
}

/** Polls the source's job statistics and draws the progress line on stderr. */
function startProgress(source: ApiClient, domain: string): { stop(ok: boolean): Promise<void> } {
  const bar = new MigrationProgress();
  const tty = process.stderr.isTTY;
  let last = '';
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    const s = await source.call('domain.jobInfo', { domain }).catch(() => null);
    if (!s || s.type === 'None' || stopped) return;
    const line = bar.line(s, Date.now());
    if (tty) process.stderr.write(`\r${line.padEnd(last.length)}`);
    else process.stderr.write(`${line}\n`);
    last = line;
  };
  const timer = setInterval(() => void tick(), tty ? 300 : 1000);
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      if (tty && last) process.stderr.write('\n');
    },
  };
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
