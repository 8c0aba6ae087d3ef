/**
 * Emptying a host (issue 15, docs/evacuation.md):
 *
 * - `ferry -c SOURCE evacuate --to URI [--to URI ...]` asks the source
 *   daemon to plan and run the evacuation (`host.evacuate.start`), follows
 *   it to its end with a line per guest as its migration starts and ends
 *   and, on a terminal, a progress line, then prints the report. The
 *   evacuation runs in the daemon: this command only watches it, so killing
 *   the command leaves it running, and running it again follows it (or,
 *   after the daemon stopped mid-way, continues it). Ctrl-C stops it on
 *   purpose: the first lets the running migrations finish and starts no
 *   more, the second aborts them;
 * - `--dry-run` prints the plan (`host.evacuate.plan`) and changes nothing;
 * - `evacuate-status` and `evacuate-stop [--abort]` for another terminal or a script.
 */
import { Option, type Command } from 'commander';
import type { CliContext } from '../context.js';
import { addPolicyOptions, type PolicyOptions } from '../policy-options.js';
import { parsePositiveInt } from './console.js';

export interface EvacuateOptions extends PolicyOptions {
  to?: string[];
  dryRun?: boolean;
  includeInactive?: boolean;
  unsafe?: boolean;
  headroomPercent?: string;
  headroomMib?: string;
  maxParallel?: number;
  maxFailures?: number;
  fresh?: boolean;
}

// The actions live in evacuate-run.ts, loaded when one of these commands runs (start-up time: docs/performance.md).

/** Registers `evacuate`, `evacuate-status` and `evacuate-stop`. */
export function registerEvacuateCommand(program: Command, ctx: CliContext): void {
  const evacuate = program.command('evacuate');
  addPolicyOptions(evacuate)
    .description('empty this host: live-migrate every running guest (and with --include-inactive every inactive definition) to the hosts given, placed by memory, CPU and maintenance, a bounded number at a time; run again to continue after an interruption')
    .addOption(new Option('--to <uri>', 'a destination host, as the source daemon reaches it (repeat for several)').argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]))
    .option('--dry-run', 'print the plan and change nothing')
    .option('--include-inactive', 'move persistent inactive definitions too (offline)')
    .option('--unsafe', 'place host-passthrough guests on hosts with another CPU (and migrate them with --unsafe)')
    .option('--headroom-percent <n>', "part of a destination's memory kept free, in percent (default 10)")
    .option('--headroom-mib <n>', 'memory kept free on a destination, in MiB (default 0; the larger headroom applies)')
    .option('--max-parallel <n>', "migrations at once (default: the source's outgoing migration limit)", (v) => parsePositiveInt(v, '--max-parallel'))
    .option('--max-failures <n>', 'failed migrations of one guest before it is left on the source (default 3)', (v) => parsePositiveInt(v, '--max-failures'))
    .option('--fresh', 'discard an unfinished evacuation of this host and plan afresh')
    .action(async (opts: EvacuateOptions) => (await import('./evacuate-run.js')).evacuate(ctx, opts));

  program
    .command('evacuate-status')
    .description("the running or last evacuation of this host: each guest's destination, time, downtime and result, and the migrations in flight")
    .action(async () => (await import('./evacuate-run.js')).evacuateStatus(ctx));

  program
    .command('evacuate-stop')
    .description('stop the running evacuation: no new migrations start, the running ones finish (with --abort they are aborted and their guests stay here)')
    .option('--abort', 'abort the running migrations too')
    .action(async (opts: { abort?: boolean }) => (await import('./evacuate-run.js')).evacuateStop(ctx, opts));
}

