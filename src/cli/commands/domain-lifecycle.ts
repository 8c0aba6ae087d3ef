/** `define`, `undefine`, `create`, `start`, `destroy`, `shutdown`, `suspend`, `resume`, `autostart`: commands that change a domain. */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { FerryError } from '../../errors/index.js';
import type { ApiClient } from '../../api/client.js';
import type { CliContext } from '../context.js';
import { printResult } from '../output.js';

async function readXmlFile(file: string): Promise<string> {
  try {
    return await readFile(file === '-' ? '/dev/stdin' : file, 'utf8');
  } catch (err) {
    throw new FerryError('invalid_arg', `cannot read XML file '${file}': ${(err as Error).message}`);
  }
}

/** Registers the lifecycle commands on `program`. */
export function registerLifecycleCommands(program: Command, ctx: CliContext): void {
  program
    .command('define')
    .description('define (but do not start) a persistent domain from an XML file')
    .argument('<file>', 'domain XML file, or - for standard input')
    .action(async (file: string) => {
      const xml = await readXmlFile(file);
      const client = await ctx.client();
      const d = await client.call('domain.define', { xml });
      await warnIgnored(client, d.uuid, ctx);
      printResult(ctx.output, d, () => `Domain '${d.name}' defined from ${file}`);
    });

  program
    .command('undefine')
    .description('undefine a domain; a running persistent domain becomes transient')
    .argument('<domain>', 'domain name, id or uuid')
    .action(async (domain: string) => {
      const d = await (await ctx.client()).call('domain.undefine', { domain });
      printResult(ctx.output, d, () => `Domain '${d.name}' has been undefined`);
    });

  program
    .command('create')
    .description('create and start a transient domain from an XML file')
    .argument('<file>', 'domain XML file, or - for standard input')
    .option('--paused', 'leave the guest paused after creating it')
    .action(async (file: string, opts: { paused?: boolean }) => {
      const xml = await readXmlFile(file);
      const d = await (await ctx.client()).call('domain.create', { xml, paused: !!opts.paused });
      printResult(ctx.output, d, () => `Domain '${d.name}' created from ${file}`);
    });

  program
    .command('start')
    .description('start a defined (inactive) domain')
    .argument('<domain>', 'domain name or uuid')
    .option('--paused', 'leave the guest paused after starting it')
    .action(async (domain: string, opts: { paused?: boolean }) => {
      const d = await (await ctx.client()).call('domain.start', { domain, paused: !!opts.paused });
      printResult(ctx.output, d, () => `Domain '${d.name}' started`);
    });

  program
    .command('destroy')
    .description('stop a domain at once (power off); its definition is kept unless it is transient')
    .argument('<domain>', 'domain name, id or uuid')
    .option('--graceful', 'ask QEMU to quit cleanly and do not force it')
    .action(async (domain: string, opts: { graceful?: boolean }) => {
      const d = await (await ctx.client()).call('domain.destroy', { domain, graceful: !!opts.graceful });
      printResult(ctx.output, d, () => `Domain '${d.name}' destroyed`);
    });

  program
    .command('shutdown')
    .description('ask the guest to shut down (ACPI power button); returns once the request is sent')
    .argument('<domain>', 'domain name, id or uuid')
    .action(async (domain: string) => {
      const d = await (await ctx.client()).call('domain.shutdown', { domain });
      printResult(ctx.output, d, () => `Domain '${d.name}' is being shutdown`);
    });

  program
    .command('suspend')
    .description("pause a running domain's virtual CPUs")
    .argument('<domain>', 'domain name, id or uuid')
    .action(async (domain: string) => {
      const d = await (await ctx.client()).call('domain.suspend', { domain });
      printResult(ctx.output, d, () => `Domain '${d.name}' suspended`);
    });

  program
    .command('resume')
    .description("resume a paused domain's virtual CPUs")
    .argument('<domain>', 'domain name, id or uuid')
    .action(async (domain: string) => {
      const d = await (await ctx.client()).call('domain.resume', { domain });
      printResult(ctx.output, d, () => `Domain '${d.name}' resumed`);
    });

  program
    .command('autostart')
    .description('start the domain whenever ferryd starts')
    .argument('<domain>', 'domain name or uuid')
    .option('--disable', 'turn autostart off')
    .action(async (domain: string, opts: { disable?: boolean }) => {
      const d = await (await ctx.client()).call('domain.autostart', { domain, enable: !opts.disable });
      printResult(ctx.output, d, () => (d.autostart ? `Domain '${d.name}' marked as autostarted` : `Domain '${d.name}' unmarked as autostarted`));
    });
}

/** Prints, once, what the definition holds that Ferry keeps but does not act on (also in `dominfo`). */
async function warnIgnored(client: ApiClient, uuid: string, ctx: CliContext): Promise<void> {
  if (ctx.output.json) return;
  const info = await client.call('domain.info', { domain: uuid }).catch(() => undefined);
  if (info?.ignored?.length) process.stderr.write(`warning: kept in the XML with no effect on the guest (docs/domain-xml.md): ${info.ignored.join(', ')}\n`);
}

