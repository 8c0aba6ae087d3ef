/** `console --log`: show (and follow) a guest's serial output as ferryd records it. */
import type { Command } from 'commander';
import { FerryError } from '../../errors/index.js';
import type { CliContext } from '../context.js';
import { printResult } from '../output.js';

/** Registers `console`. */
export function registerConsoleCommands(program: Command, ctx: CliContext): void {
  program
    .command('console')
    .description("print the guest's serial console output recorded by ferryd")
    .argument('<domain>', 'domain name, id or uuid')
    .option('--log', 'print the recorded serial log (the only console mode Ferry offers)')
    .option('--tail <bytes>', 'print at most the last BYTES bytes', (v) => parsePositiveInt(v, '--tail'))
    .option('--follow', 'keep printing new output until interrupted')
    .action(async (domain: string, opts: { log?: boolean; tail?: number; follow?: boolean }) => {
      if (!opts.log) {
        throw new FerryError('argument_unsupported', 'an interactive console is not offered; use `ferry console --log DOMAIN` to read the serial output');
      }
      const client = await ctx.client();
      const first = await client.call('domain.consoleLog', { domain, maxBytes: opts.tail ?? 1024 * 1024 });
      printResult(ctx.output, first, () => first.text);
      if (!opts.follow || ctx.output.json) return;
      let seen = first.text;
      for (;;) {
        await new Promise((r) => setTimeout(r, 500));
        const next = await client.call('domain.consoleLog', { domain, maxBytes: 1024 * 1024 });
        // The log only grows while the guest runs; print what is new since the last read.
        const overlap = seen.length ? next.text.lastIndexOf(seen.slice(-256)) : -1;
        const fresh = overlap >= 0 ? next.text.slice(overlap + Math.min(256, seen.length)) : next.text;
        if (fresh) process.stdout.write(fresh);
        seen = next.text;
      }
    });
}

/** Parses a positive integer option value. */
export function parsePositiveInt(value: string, option: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new FerryError('invalid_arg', `${option} needs a positive integer, not '${value}'`);
  return n;
}
