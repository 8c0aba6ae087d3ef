/**
 * The convergence policy's command-line options (docs/convergence.md),
 * shared by `migrate` and `evacuate`: one definition of the options, one
 * mapping onto the policy object the daemon resolves (`resolvePolicy`).
 */
import { Option, type Command } from 'commander';
import { FerryError } from '../errors/index.js';
import { DEFAULT_POLICY } from '../migration/convergence.js';

/** The policy options as commander parses them. */
export interface PolicyOptions {
  policy?: string;
  maxDowntime?: number;
  downtimeSteps?: number;
  progressTimeout?: number;
  completionTimeoutPerGib?: number;
  completionAction?: string;
}

/** A whole number option value (0 allowed). */
export function parseNonNegativeInt(v: string, option: string): number {
  if (!/^\d{1,9}$/.test(v)) throw new FerryError('invalid_arg', `${option} expects a whole number, not '${v}'`);
  return Number(v);
}

/** Adds `--policy` and its settings to `cmd`. */
export function addPolicyOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--policy <mode>', "when the migration does not converge: none, warn (say so, with what would help) or auto (escalate: downtime, throttling, post-copy where the flags allow, then abort); default: the host's").choices(['none', 'warn', 'auto']))
    .option('--max-downtime <ms>', `with --policy auto: the highest downtime limit it may set (default ${DEFAULT_POLICY.maxDowntimeMs})`, (v) => parseNonNegativeInt(v, '--max-downtime'))
    .option('--downtime-steps <n>', `with --policy auto: steps to raise the downtime limit to --max-downtime (default ${DEFAULT_POLICY.downtimeSteps})`, (v) => parseNonNegativeInt(v, '--downtime-steps'))
    .option('--progress-timeout <seconds>', `seconds without data remaining shrinking before the migration counts as stalled; 0 = off (default ${DEFAULT_POLICY.progressTimeoutS})`, (v) => parseNonNegativeInt(v, '--progress-timeout'))
    .option('--completion-timeout-per-gib <seconds>', 'seconds per GiB of guest memory after which --completion-action is taken; 0 = off (default 0)', (v) => parseNonNegativeInt(v, '--completion-timeout-per-gib'))
    .addOption(new Option('--completion-action <action>', 'what the completion timeout does: abort (default), postcopy (needs --postcopy) or pause').choices(['abort', 'postcopy', 'pause']));
}

/** The policy settings given on the command line, or undefined for the host's. */
export function policyFromOptions(o: PolicyOptions): Record<string, unknown> | undefined {
  const p: Record<string, unknown> = {};
  if (o.policy !== undefined) p.mode = o.policy;
  if (o.maxDowntime !== undefined) p.maxDowntimeMs = o.maxDowntime;
  if (o.downtimeSteps !== undefined) p.downtimeSteps = o.downtimeSteps;
  if (o.progressTimeout !== undefined) p.progressTimeoutS = o.progressTimeout;
  if (o.completionTimeoutPerGib !== undefined) p.completionTimeoutPerGiBS = o.completionTimeoutPerGib;
  if (o.completionAction !== undefined) p.completionAction = o.completionAction;
  return Object.keys(p).length ? p : undefined;
}
