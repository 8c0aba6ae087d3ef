/**
 * `ferry dashboard [--open]`: the address of the daemon's dashboard with
 * the token that lets the page act (`#token=...`: a fragment, which the
 * browser keeps to itself and never sends to a server). With `--open`, the
 * desktop's browser is started on it (xdg-open). The token comes over the
 * API, whose clients may do everything anyway.
 */
import type { Command } from 'commander';
import { FerryError } from '../../errors/index.js';
import type { CliContext } from '../context.js';
import { printResult } from '../output.js';

/** Registers `dashboard`. */
export function registerDashboardCommand(program: Command, ctx: CliContext): void {
  program
    .command('dashboard')
    .description("print the address of this host's dashboard (ferryd --http), with the token that lets the page start and control migrations")
    .option('--open', "open it in the desktop's browser (xdg-open)")
    .action(async (opts: { open?: boolean }) => {
      const client = await ctx.client();
      const d = await client.call('host.dashboard', {});
      const url = `${d.url}#token=${d.token}`;
      printResult(ctx.output, { url }, () => url);
      if (opts.open) {
        // node:child_process (and node:net under it) loads only here: it costs every other command ~2 ms of start-up.
        const { spawn } = await import('node:child_process');
        await new Promise<void>((resolve, reject) => {
          const child = spawn('xdg-open', [url], { stdio: 'ignore', detached: true });
          child.once('error', (err) => reject(new FerryError('operation_failed', `cannot open a browser (xdg-open): ${err.message}; open the address above yourself`)));
          child.once('spawn', () => {
            child.unref();
            resolve();
          });
        });
      }
    });
}
