/**
 * `maintenance enable [--reason TEXT] | disable | status`: a host in
 * maintenance takes no new starts or incoming migrations; guests already
 * there keep running (docs/hosts.md).
 */
import type { Command } from 'commander';
import type { HostMaintenance } from '../../api/protocol.js';
import type { CliContext } from '../context.js';
import { printResult, renderFields } from '../output.js';

/** The human answer of a maintenance command. Pure. */
export function renderMaintenance(m: HostMaintenance): string {
  if (!m.enabled) return `Host '${m.hostName}' is not in maintenance\n`;
  const lines: Array<[string, string]> = [
    ['Host', m.hostName],
    ['Maintenance', 'enabled: no new starts or incoming migrations; running guests keep running'],
    ['Since', m.since ?? 'unknown'],
    ['Reason', m.reason ?? '-'],
  ];
  if (m.problem !== undefined) lines.push(['Problem', m.problem]);
  if (m.incomingUnderWay > 0) lines.push(['Incoming', `${m.incomingUnderWay} migration(s) admitted before maintenance are still under way`]);
  return renderFields(lines);
}

/** Registers `maintenance`. */
export function registerMaintenanceCommands(program: Command, ctx: CliContext): void {
  const maintenance = program.command('maintenance').description("the host's maintenance mode: no new starts or incoming migrations while it is on");

  maintenance
    .command('enable')
    .description('put the host in maintenance (kept across ferryd restarts); running guests keep running, outgoing migrations stay allowed')
    .option('--reason <text>', 'why, shown to anyone refused (e.g. "kernel update")')
    .action(async (opts: { reason?: string }) => {
      const m = await (await ctx.client()).call('host.maintenance.enable', opts.reason !== undefined ? { reason: opts.reason } : {});
      printResult(ctx.output, m, () => renderMaintenance(m));
    });

  maintenance
    .command('disable')
    .description('end maintenance: starts and incoming migrations are accepted again')
    .action(async () => {
      const m = await (await ctx.client()).call('host.maintenance.disable', {});
      printResult(ctx.output, m, () => renderMaintenance(m));
    });

  maintenance
    .command('status')
    .description('whether the host is in maintenance, since when and why')
    .action(async () => {
      const m = await (await ctx.client()).call('host.maintenance.status', {});
      printResult(ctx.output, m, () => renderMaintenance(m));
    });

  for (const cmd of maintenance.commands) cmd.exitOverride();
}
