/**
 * Checks of a `ferry` CLI result as a user sees it: exit status 0, or
 * status 1 with a `--json` error of a given code and libvirt number. One
 * copy here for the e2e files instead of one per file.
 */
import { expect } from 'vitest';
import type { CliResult } from './daemon.js';

/** Expects the command to have succeeded; `what` names it in the failure, with its output. */
export function expectCliOk(r: CliResult, what: string): void {
  expect(r.code, `${what}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(0);
}

/** Expects a `--json` command to have failed with `code` and `number`; returns the error's message. */
export function expectCliError(r: CliResult, code: string, number: number, what: string): string {
  expect(r.code, `${what} should fail\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(1);
  const err = r.json?.error as { code: string; number: number; message: string } | undefined;
  expect(err, `${what}: no JSON error in ${r.stdout} (stderr: ${r.stderr})`).toBeDefined();
  expect({ code: err!.code, number: err!.number }, `${what}: ${err!.message}`).toEqual({ code, number });
  return err!.message;
}

/** The names of every domain a host has (`ferry list --all --name` on that host). */
export async function domainNames(h: { name: string; ferry(args: string[]): Promise<CliResult> }): Promise<string[]> {
  const r = await h.ferry(['list', '--all', '--name']);
  expectCliOk(r, `list on ${h.name}`);
  return r.stdout.split('\n').map((x) => x.trim()).filter((x) => x !== '');
}
