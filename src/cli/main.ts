#!/usr/bin/env node
/** `ferry`: the command-line client, with virsh's command and option names. */
import { Command, CommanderError } from 'commander';
import { CliContext } from './context.js';
import { EXIT_OK, EXIT_USAGE, printError, stdOutput } from './output.js';
import { registerLifecycleCommands } from './commands/domain-lifecycle.js';
import { registerInfoCommands } from './commands/domain-info.js';
import { registerStatsCommands } from './commands/domain-stats.js';
import { registerConsoleCommands } from './commands/console.js';
import { registerHostCommands } from './commands/host.js';
import { registerHostFactsCommands } from './commands/host-facts.js';
import { registerEvacuateCommand } from './commands/evacuate.js';
import { registerDashboardCommand } from './commands/dashboard.js';
import { registerMaintenanceCommands } from './commands/maintenance.js';
import { registerTlsCommands } from './commands/tls-setup.js';
import { registerJobCommands, registerMigrateCommand } from './commands/migrate.js';
import { FERRY_VERSION } from '../version.js';

import { DEFAULT_KEEPALIVE } from '../api/keepalive.js';

/** Builds the program; exported for tests. */
export function buildProgram(): { program: Command; ctx: CliContext } {
  const program = new Command('ferry');
  const ctx = new CliContext(program);
  program
    .description('Ferry: manage QEMU guests on ferryd hosts and live-migrate them (virsh-compatible names)')
    .version(FERRY_VERSION, '-v, --version')
    .option('-c, --connect <uri>', 'daemon URI: ferry:///system, ferry+unix:///system?socket=PATH, ferry+tls://HOST[:PORT]/system, ferry+tcp://HOST[:PORT]/system (default: $FERRY_DEFAULT_URI or ferry:///system)')
    .option('--json', 'print results and errors as JSON for scripts')
    .option('-k, --keepalive-interval <seconds>', `seconds of silence from a daemon before it is pinged; 0 turns keepalive off (default ${DEFAULT_KEEPALIVE.intervalS})`)
    .option('-K, --keepalive-count <count>', `pings a daemon may leave unanswered: it counts as lost after INTERVAL x COUNT seconds of silence (default ${DEFAULT_KEEPALIVE.count})`)
    .showHelpAfterError()
    .exitOverride();
  registerLifecycleCommands(program, ctx);
  registerInfoCommands(program, ctx);
  registerStatsCommands(program, ctx);
  registerConsoleCommands(program, ctx);
  registerHostCommands(program, ctx);
  registerHostFactsCommands(program, ctx);
  registerMaintenanceCommands(program, ctx);
  registerTlsCommands(program, ctx);
  registerMigrateCommand(program, ctx);
  registerEvacuateCommand(program, ctx);
  registerDashboardCommand(program, ctx);
  registerJobCommands(program, ctx);
  for (const cmd of program.commands) cmd.exitOverride();
  program.hook('preAction', () => {
    ctx.output = stdOutput(!!program.opts<{ json?: boolean }>().json);
  });
  return { program, ctx };
}

/** Runs the CLI and returns its exit status. */
export async function main(argv: string[]): Promise<number> {
  const { program, ctx } = buildProgram();
  try {
    await program.parseAsync(argv);
    return EXIT_OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit through here with code 0; usage errors were already printed by commander.
      return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    return printError(ctx.output, err);
  } finally {
    await ctx.close();
  }
}

process.on('SIGPIPE', () => process.exit(0));
const code = await main(process.argv);
process.exitCode = code;
