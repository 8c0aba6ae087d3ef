/** `list`, `dominfo`, `domstate`, `vncdisplay`, `dumpxml`, `domid`, `domname`, `domuuid`: commands that read domains. */
import type { Command } from 'commander';
import { describeStatus, type DomainStatus } from '../../domain/lifecycle-state.js';
import { FerryError } from '../../errors/index.js';
import type { ListFilter } from '../../api/protocol.js';
import type { CliContext } from '../context.js';
import { printResult, renderFields, renderTable } from '../output.js';

interface ListOpts {
  all?: boolean;
  inactive?: boolean;
  stateRunning?: boolean;
  statePaused?: boolean;
  stateShutoff?: boolean;
  stateOther?: boolean;
  persistent?: boolean;
  transient?: boolean;
  autostart?: boolean;
  name?: boolean;
  uuid?: boolean;
  title?: boolean;
}

/** Registers the read-only domain commands on `program`. */
export function registerInfoCommands(program: Command, ctx: CliContext): void {
  program
    .command('list')
    .description('list domains (active ones unless --all or --inactive)')
    .option('--all', 'list active and inactive domains')
    .option('--inactive', 'list inactive domains only')
    .option('--state-running', 'running domains only')
    .option('--state-paused', 'paused domains only')
    .option('--state-shutoff', 'shut off domains only')
    .option('--state-other', 'domains in any other state')
    .option('--persistent', 'persistent domains only')
    .option('--transient', 'transient domains only')
    .option('--autostart', 'domains with autostart enabled only')
    .option('--no-autostart', 'domains with autostart disabled only')
    .option('--name', 'print domain names only')
    .option('--uuid', 'print domain UUIDs only')
    .action(async (opts: ListOpts) => {
      const filter: ListFilter = { all: !!opts.all, inactive: !!opts.inactive };
      const states: NonNullable<ListFilter['state']> = [];
      if (opts.stateRunning) states.push('running');
      if (opts.statePaused) states.push('paused');
      if (opts.stateShutoff) states.push('shutoff');
      if (opts.stateOther) states.push('other');
      if (states.length) filter.state = states;
      if (opts.persistent) filter.persistent = true;
      if (opts.transient) filter.transient = true;
      // commander folds --autostart / --no-autostart into one boolean, undefined when neither is given.
      if (opts.autostart === true) filter.autostart = true;
      if (opts.autostart === false) filter.noAutostart = true;
      const rows = await (await ctx.client()).call('domain.list', filter);
      printResult(ctx.output, rows, () => {
        if (opts.name) return rows.map((r) => r.name).join('\n') + (rows.length ? '\n' : '');
        if (opts.uuid) return rows.map((r) => r.uuid).join('\n') + (rows.length ? '\n' : '');
        return renderTable(
          ['Id', 'Name', 'State'],
          rows.map((r) => [r.id === null ? '-' : String(r.id), r.name, describeStatus({ state: r.state, reason: r.reason } as DomainStatus, false)]),
        );
      });
    });

  program
    .command('dominfo')
    .description('show basic information about a domain')
    .argument('<domain>', 'domain name, id or uuid')
    .action(async (domain: string) => {
      const i = await (await ctx.client()).call('domain.info', { domain });
      printResult(ctx.output, i, () =>
        renderFields([
          ['Id', i.id === null ? '-' : String(i.id)],
          ['Name', i.name],
          ['UUID', i.uuid],
          ['OS Type', i.osType],
          ['State', describeStatus({ state: i.state, reason: i.reason } as DomainStatus, false)],
          ['CPU(s)', String(i.vcpus)],
          ...(i.cpuTimeSeconds === null ? [] : ([['CPU time', `${i.cpuTimeSeconds.toFixed(1)}s`]] as Array<[string, string]>)),
          ['Max memory', `${i.maxMemoryKiB} KiB`],
          ['Used memory', `${i.usedMemoryKiB} KiB`],
          ['Persistent', i.persistent ? 'yes' : 'no'],
          ['Autostart', i.autostart ? 'enable' : 'disable'],
          ['Managed save', 'no'],
          ['Accelerator', i.accel ?? '-'],
          // Ferry's own line: what the definition holds that has no effect on the guest.
          ...(i.ignored?.length ? ([['Ignored', i.ignored.join(', ')]] as Array<[string, string]>) : []),
        ]),
      );
    });

  program
    .command('domstate')
    .description('show the state of a domain')
    .argument('<domain>', 'domain name, id or uuid')
    .option('--reason', 'also show the reason for the state')
    .action(async (domain: string, opts: { reason?: boolean }) => {
      const s = await (await ctx.client()).call('domain.state', { domain });
      printResult(ctx.output, s, () => describeStatus(s as DomainStatus, !!opts.reason));
    });

  program
    .command('qemu-monitor-command')
    .description("pass a command to the domain's QEMU monitor (QMP JSON, or a human monitor line with --hmp); for debugging")
    .argument('<domain>', 'domain name, id or uuid')
    .argument('<command...>', 'the command; several words are joined with spaces')
    .option('--hmp', 'the command is a human monitor command line')
    .option('--pretty', 'indent the QMP answer')
    .action(async (domain: string, words: string[], opts: { hmp?: boolean; pretty?: boolean }) => {
      const r = await (await ctx.client()).call('domain.qemuMonitorCommand', { domain, command: words.join(' '), hmp: !!opts.hmp });
      printResult(ctx.output, r, () => (opts.hmp ? String(r.return ?? '') : JSON.stringify({ return: r.return }, null, opts.pretty ? 2 : undefined)));
    });

  program
    .command('vncdisplay')
    .description("print the VNC display of a running domain (ADDRESS:DISPLAY, as virsh does), from its live XML")
    .argument('<domain>', 'domain name, id or uuid')
    .action(async (domain: string) => {
      const client = await ctx.client();
      const { state } = await client.call('domain.state', { domain });
      if (state === 'shutoff') throw new FerryError('operation_invalid', `domain '${domain}' is not running`);
      // The XML reader (@xmldom/xmldom) loads only here: `list` and the rest start without it (docs/performance.md).
      const { DomainDocument, VNC_PORT_MIN } = await import('../../domain/index.js');
      const g = DomainDocument.parse((await client.call('domain.xml', { domain, inactive: false })).xml).def.graphics;
      if (g === undefined || g.port === undefined) throw new FerryError('operation_failed', `domain '${domain}' has no VNC display`);
      const display = `${g.listen === '::1' ? '[::1]' : g.listen}:${g.port - VNC_PORT_MIN}`;
      printResult(ctx.output, { display, address: g.listen, port: g.port }, () => display);
    });

  program
    .command('dumpxml')
    .description("print a domain's XML definition (the live one while it runs)")
    .argument('<domain>', 'domain name, id or uuid')
    .option('--inactive', 'print the persistent definition used at next start')
    .action(async (domain: string, opts: { inactive?: boolean }) => {
      const r = await (await ctx.client()).call('domain.xml', { domain, inactive: !!opts.inactive });
      printResult(ctx.output, r, () => r.xml);
    });

  for (const [name, field, description] of [
    ['domid', 'id', 'print the id of a running domain'],
    ['domname', 'name', 'print the name of a domain given its id or uuid'],
    ['domuuid', 'uuid', 'print the uuid of a domain'],
  ] as const) {
    program
      .command(name)
      .description(description)
      .argument('<domain>', 'domain name, id or uuid')
      .action(async (domain: string) => {
        const i = await (await ctx.client()).call('domain.info', { domain });
        const value = i[field];
        printResult(ctx.output, { [field]: value }, () => (value === null ? '-' : String(value)));
      });
  }
}
