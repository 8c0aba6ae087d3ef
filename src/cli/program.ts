/**
 * `ferry`: the command-line client, with virsh's command and option names.
 * Loaded by main.ts (the entry point) for everything but `--version`.
 */
import { readFileSync } from 'node:fs';
import { SourceMap, type SourceMapPayload } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { CliContext } from './context.js';
import { EXIT_OK, EXIT_USAGE, printError, stdOutput } from './output.js';
import { FerryError } from '../errors/index.js';
import { FERRY_VERSION } from '../version.js';

import { DEFAULT_KEEPALIVE } from '../api/keepalive.js';

type Registrar = (program: Command, ctx: CliContext) => void;

/**
 * Which module registers which commands, in the order `ferry --help` lists
 * them. A command line that names one of these commands loads and
 * registers only its module (start-up time: docs/performance.md, "CLI
 * start"); help, `help CMD` and unknown commands register them all.
 * test/unit/cli-program.test.ts checks this table against what each
 * module registers.
 */
export const COMMAND_MODULES: ReadonlyArray<{ commands: readonly string[]; load: () => Promise<Registrar> }> = [
  { commands: ['define', 'undefine', 'create', 'start', 'destroy', 'shutdown', 'suspend', 'resume', 'autostart'], load: async () => (await import('./commands/domain-lifecycle.js')).registerLifecycleCommands },
  { commands: ['list', 'dominfo', 'domstate', 'qemu-monitor-command', 'vncdisplay', 'dumpxml', 'domid', 'domname', 'domuuid'], load: async () => (await import('./commands/domain-info.js')).registerInfoCommands },
  { commands: ['domdirtyrate-calc', 'domstats'], load: async () => (await import('./commands/domain-stats.js')).registerStatsCommands },
  { commands: ['console'], load: async () => (await import('./commands/console.js')).registerConsoleCommands },
  { commands: ['hostname', 'sysinfo', 'uri', 'event'], load: async () => (await import('./commands/host.js')).registerHostCommands },
  { commands: ['nodeinfo', 'nodememstats', 'freecell', 'hostfacts'], load: async () => (await import('./commands/host-facts.js')).registerHostFactsCommands },
  { commands: ['maintenance'], load: async () => (await import('./commands/maintenance.js')).registerMaintenanceCommands },
  { commands: ['tls-setup'], load: async () => (await import('./commands/tls-setup.js')).registerTlsCommands },
  { commands: ['migrate'], load: async () => (await import('./commands/migrate.js')).registerMigrateCommand },
  { commands: ['evacuate', 'evacuate-status', 'evacuate-stop'], load: async () => (await import('./commands/evacuate.js')).registerEvacuateCommand },
  { commands: ['dashboard'], load: async () => (await import('./commands/dashboard.js')).registerDashboardCommand },
  {
    commands: ['domjobinfo', 'domjobabort', 'migrate-setmaxdowntime', 'migrate-getmaxdowntime', 'migrate-setspeed', 'migrate-getspeed', 'migrate-postcopy'],
    load: async () => (await import('./commands/migrate.js')).registerJobCommands,
  },
];

/** Global options that take a value (the word after them is not the command). */
export const VALUE_OPTIONS: ReadonlySet<string> = new Set(['-c', '--connect', '-k', '--keepalive-interval', '-K', '--keepalive-count']);

/** The command a command line names (`node ferry [global options] COMMAND ...`), if any. */
export function commandOf(argv: readonly string[]): string | undefined {
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return argv[i + 1];
    if (VALUE_OPTIONS.has(a)) i++;
    else if (!a.startsWith('-')) return a;
  }
  return undefined;
}

/**
 * Builds the program: with the command line, only what its command needs
 * (see {@link COMMAND_MODULES}); without, every command.
 */
export async function buildProgram(argv?: readonly string[]): Promise<{ program: Command; ctx: CliContext }> {
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
  const name = argv && commandOf(argv);
  const wanted = name === undefined ? undefined : COMMAND_MODULES.find((m) => m.commands.includes(name));
  for (const m of wanted ? [wanted] : COMMAND_MODULES) (await m.load())(program, ctx);
  for (const cmd of program.commands) cmd.exitOverride();
  program.hook('preAction', () => {
    ctx.output = stdOutput(!!program.opts<{ json?: boolean }>().json);
  });
  return { program, ctx };
}

/** Runs the CLI and returns its exit status. */
export async function main(argv: string[]): Promise<number> {
  const { program, ctx } = await buildProgram(argv);
  try {
    await program.parseAsync(argv);
    return EXIT_OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit through here with code 0; usage errors were already printed by commander.
      return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    if (process.env.FERRY_DEBUG && err instanceof Error && !(err instanceof FerryError)) printStack(err);
    return printError(ctx.output, err);
  } finally {
    await ctx.close();
  }
}

/**
 * FERRY_DEBUG=1: the stack of an internal error (a bug rather than a
 * refusal), its frames in the bundle mapped back to src/ through
 * dist/cli/main.js.map. Node's own mapping (--enable-source-maps) must be
 * on before the bundle loads, and costs every command start-up time
 * (docs/performance.md, "CLI start"), so the map is read only here.
 */
function printStack(err: Error): void {
  process.stderr.write(`${mapStack(err.stack ?? String(err))}\n`);
}

/** `err.stack` with each `FILE:LINE:COLUMN` of a file that has a `.map` next to it replaced by its source position. */
export function mapStack(stack: string): string {
  const maps = new Map<string, SourceMap | null>();
  const mapOf = (file: string): SourceMap | null => {
    if (!maps.has(file)) {
      try {
        maps.set(file, new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8')) as SourceMapPayload));
      } catch {
        maps.set(file, null);
      }
    }
    return maps.get(file)!;
  };
  return stack.replace(/(\/[^\s():]+\.js):(\d+):(\d+)/g, (whole, file: string, line: string, col: string) => {
    const e = mapOf(file)?.findEntry(Number(line) - 1, Number(col) - 1) as Partial<{ originalSource: string; originalLine: number; originalColumn: number }> | undefined;
    if (!e?.originalSource) return whole;
    const src = e.originalSource.startsWith('file:') ? fileURLToPath(e.originalSource) : resolve(dirname(file), e.originalSource);
    return `${src}:${e.originalLine! + 1}:${e.originalColumn! + 1}`;
  });
}
