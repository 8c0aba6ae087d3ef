/** `hostname`, `uri`, `event`: commands about the connection and its host. */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { printResult, renderFields } from '../output.js';
import { parsePositiveInt } from './console.js';

/** Registers the host commands. */
export function registerHostCommands(program: Command, ctx: CliContext): void {
  program
    .command('hostname')
    .description("print the host's name (and, with --json, its host UUID)")
    .action(async () => {
      const h = await (await ctx.client()).call('connect.hello', {});
      printResult(ctx.output, h, () => h.hostName);
    });

  program
    .command('sysinfo')
    .description("print the host's identity: name, host UUID, versions")
    .action(async () => {
      const h = await (await ctx.client()).call('connect.hello', {});
      printResult(ctx.output, h, () =>
        renderFields([
          ['Host name', h.hostName],
          ['Host UUID', h.hostUuid],
          ['Ferry version', h.version],
          ['Protocol version', String(h.protocolVersion)],
        ]),
      );
    });

  program
    .command('uri')
    .description('print the connection URI in use')
    .action(() => {
      printResult(ctx.output, { uri: ctx.uri }, () => ctx.uri);
    });

  program
    .command('event')
    .description('print domain events (lifecycle, migration-iteration, job-completed) and host maintenance changes as they happen')
    .option('--loop', 'keep printing events until interrupted (default: stop after the first)')
    .option('--timeout <seconds>', 'stop after SECONDS', (v) => parsePositiveInt(v, '--timeout'))
    .action(async (opts: { loop?: boolean; timeout?: number }) => {
      const client = await ctx.client();
      await new Promise<void>((resolve, reject) => {
        client.on('event', (name: string, data: Record<string, unknown>) => {
          if (ctx.output.json) ctx.output.out(JSON.stringify({ event: name, ...data }));
          else ctx.output.out(describeEvent(name, data));
          if (!opts.loop) resolve();
        });
        client.on('close', (err: unknown) => reject(err ?? new Error('the connection to the daemon closed')));
        if (opts.timeout) setTimeout(resolve, opts.timeout * 1000);
        void client.call('events.subscribe', {}).then(() => {
          if (!ctx.output.json) process.stderr.write('waiting for events (Ctrl-C to stop)\n');
        });
      });
    });
}

/** One event as virsh's `event` prints it. */
function describeEvent(name: string, data: Record<string, unknown>): string {
  const head = `${String(data.timestamp)}: event`;
  switch (name) {
    case 'domain.lifecycle':
      return `${head} 'lifecycle' for domain '${String(data.domain)}': ${String(data.kind)} ${String(data.detail)}`;
    case 'domain.migration-iteration':
      return `${head} 'migration-iteration' for domain '${String(data.domain)}': iteration: '${String(data.iteration)}'`;
    case 'domain.job-completed': {
      const stats = (data.stats ?? {}) as Record<string, unknown>;
      return `${head} 'job-completed' for domain '${String(data.domain)}': ${String(stats.operation ?? 'job')} ${String(stats.type ?? '')}`;
    }
    case 'host.evacuation':
      return `${head} 'evacuation' for host '${String(data.host)}': ${String(data.state)}, ${String(data.done)} of ${String(data.total)} moved, ${String(data.running)} running, ${String(data.failed)} failed, ${String(data.check)} to check`;
    case 'host.maintenance':
      return `${head} 'maintenance' for host '${String(data.host)}': ${data.enabled ? `enabled${data.reason ? ` (${String(data.reason)})` : ''}` : 'disabled'}`;
    default:
      return `${head} '${name}': ${JSON.stringify(data)}`;
  }
}
