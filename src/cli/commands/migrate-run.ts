/** What `migrate` does (registered in migrate.ts, loaded when it runs): managed mode or --p2p, --dry-run's forecast, the progress line. */
import { readFile } from 'node:fs/promises';
import { ApiClient } from '../../api/client.js';
import { remoteDestination, remoteSource } from '../../api/migration-endpoints.js';
import { requireProtocolVersion } from '../../api/protocol.js';
import { FerryError, toFerryError } from '../../errors/index.js';
import { MIGRATION_FLAGS, MIGRATION_PARAMS, flagsFromNames, hasFlag, parseCliValue, validateMigrationRequest, type MigrationParamName, type MigrationParamSpec } from '../../flags/index.js';
import type { JobStats } from '../../host/job-stats.js';
import type { MigrationForecast } from '../../migration/forecast-inputs.js';
import { DEFAULT_POLICY, resolvePolicy } from '../../migration/convergence.js';
import type { MigrationPolicyEvent } from '../../host/events.js';
import { admitBetweenHosts } from '../../migration/admission.js';
import { runMigration } from '../../migration/driver.js';
import type { CliContext } from '../context.js';
import { printResult } from '../output.js';
import { MigrationProgress } from '../progress.js';
import { policyFromOptions } from '../policy-options.js';
import type { MigrateExtras } from './migrate.js';

/** Commander's camel-case key of an option like `--copy-storage-all`. */
function optionKey(option: string): string {
  return option.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** `migrate DOMAIN DESTURI`. */
export async function migrate(ctx: CliContext, domain: string, destUri: string, opts: Record<string, unknown> & MigrateExtras): Promise<void> {
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

