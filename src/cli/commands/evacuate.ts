/**
 * `ferry -c SOURCE evacuate --to URI [--to URI ...] --dry-run`: the plan
 * for emptying a host (issue 15), from what each host reports
 * (`host.facts`) and the source's guests and definitions. This build plans
 * only: the migrations themselves are not wired yet, and the command says
 * so rather than pretend (docs/evacuation.md).
 */
import { Option, type Command } from 'commander';
import { DomainDocument } from '../../domain/index.js';
import { FerryError } from '../../errors/index.js';
import { evacuationGuestFromDomain, placementHostFromFacts, planEvacuation, type EvacuationGuest, type PlacementOptions } from '../../evacuation/index.js';
import { renderPlan } from '../evacuation-render.js';
import type { CliContext } from '../context.js';
import { openConnection } from '../connection.js';
import { printResult } from '../output.js';
import { parsePositiveInt } from './console.js';

interface EvacuateOptions {
  to?: string[];
  dryRun?: boolean;
  includeInactive?: boolean;
  unsafe?: boolean;
  headroomPercent?: string;
  headroomMib?: string;
}

/** Registers `evacuate`. */
export function registerEvacuateCommand(program: Command, ctx: CliContext): void {
  program
    .command('evacuate')
    .description('plan emptying this host onto others: every running guest (and with --include-inactive every inactive definition) placed by memory, CPU and maintenance')
    .addOption(new Option('--to <uri>', 'a destination host (repeat for several)').argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]))
    .option('--dry-run', 'print the plan and change nothing (required in this build: the migrations are not wired yet)')
    .option('--include-inactive', 'move persistent inactive definitions too (offline)')
    .option('--unsafe', 'place host-passthrough guests on hosts with another CPU')
    .option('--headroom-percent <n>', "part of a destination's memory kept free, in percent (default 10)")
    .option('--headroom-mib <n>', 'memory kept free on a destination, in MiB (default 0; the larger headroom applies)')
    .action(async (opts: EvacuateOptions) => {
      const destinations = opts.to ?? [];
      if (destinations.length === 0) throw new FerryError('invalid_arg', 'evacuate needs at least one destination: --to URI');
      if (!opts.dryRun) {
        throw new FerryError('argument_unsupported', 'this build of ferry evacuate only plans: add --dry-run to print the plan; the evacuation itself (migrating the guests) is not wired yet');
      }
      const options: PlacementOptions = {
        ...(opts.includeInactive ? { includeInactive: true } : {}),
        ...(opts.unsafe ? { unsafe: true } : {}),
        ...(opts.headroomPercent !== undefined ? { headroomPercent: parsePositiveInt(opts.headroomPercent, 'headroom-percent') } : {}),
        ...(opts.headroomMib !== undefined ? { headroomMiB: parsePositiveInt(opts.headroomMib, 'headroom-mib') } : {}),
      };
      const source = await ctx.client();
      const sourceHost = placementHostFromFacts(ctx.uri, await source.call('host.facts', {}));
      const guests: EvacuationGuest[] = [];
      for (const d of await source.call('domain.list', { all: true })) {
        const active = d.id !== null;
        if (!active && !d.persistent) continue;
        const { xml } = await source.call('domain.xml', { domain: d.uuid, ...(active ? {} : { inactive: true }) });
        guests.push(evacuationGuestFromDomain(DomainDocument.parse(xml).def, active ? 'running' : 'inactive', ctx.uri));
      }
      const hosts = [];
      for (const uri of destinations) {
        const client = await openConnection(uri, ctx.connectOptions);
        try {
          hosts.push(placementHostFromFacts(uri, await client.call('host.facts', {})));
        } finally {
          client.close();
        }
      }
      const plan = planEvacuation(sourceHost, guests, hosts, options);
      printResult(ctx.output, plan, () => renderPlan(plan));
    });
}
