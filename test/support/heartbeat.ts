/**
 * The test guest's heartbeat across migrations, read from the serial log
 * file each ferryd keeps (STATE_DIR/logs/NAME.serial.log): waiting for
 * heartbeats, and the checks a migration test makes of them (the counter
 * carries on at the destination from the source's last one + 1, in the same
 * guest, with no CORRUPT; or, after a refused or failed migration, it
 * carries on at the source with no restart).
 */
import { expect } from 'vitest';
import { waitFor } from './daemon.js';
import { serialLogFile } from './guest-xml.js';
import { checkMigrationContinuity, findCounterAnomalies, parseSerialLog } from './serial.js';

/** A host as these helpers need it: a label for messages and its daemon's state dir. */
export interface HeartbeatHost {
  readonly label: string;
  readonly d: { readonly stateDir: string };
}

/** A host's serial log of `name` (STATE_DIR/logs/NAME.serial.log); empty if there is none. */
export function serialText(h: HeartbeatHost, name: string): string {
  return serialLogFile(h.d.stateDir, name).text;
}

/** The last heartbeat counter of `name` on a host (0 before the first). */
export function lastCounter(h: HeartbeatHost, name: string): number {
  return parseSerialLog(serialText(h, name)).lastHeartbeat?.counter ?? 0;
}

/** Waits until `name` printed at least `n` heartbeats on a host (a freshly started guest is up). */
export async function waitHeartbeats(h: HeartbeatHost, name: string, n = 3, timeoutMs = 30_000): Promise<void> {
  await waitFor(`${n} heartbeats of '${name}' on ${h.label}`, () => parseSerialLog(serialText(h, name)).heartbeats.length >= n, timeoutMs, 100);
}

/** Waits until the heartbeat counter of `name` on a host is above `counter`. */
export async function waitCounterAbove(h: HeartbeatHost, name: string, counter: number, timeoutMs = 20_000): Promise<void> {
  await waitFor(`heartbeat of '${name}' above ${counter} on ${h.label}`, () => lastCounter(h, name) > counter, timeoutMs, 100);
}

/**
 * After a migration of `name` from `from` to `to` (there called
 * `destName`): the heartbeats carry on from the source's last one, in the
 * same guest. Waits until the destination printed a few more.
 * (ferryd starts a QEMU's serial log afresh, an incoming one's too, so each
 * log holds one run: a guest may go back and forth.)
 */
export async function expectContinuity(name: string, from: HeartbeatHost, to: HeartbeatHost, destName = name): Promise<void> {
  const srcText = serialText(from, name);
  const srcLast = parseSerialLog(srcText).lastHeartbeat?.counter ?? 0;
  expect(srcLast, `${from.label}'s serial log of '${name}' has heartbeats`).toBeGreaterThan(0);
  await waitCounterAbove(to, destName, srcLast + 3);
  const destText = serialText(to, destName);
  const c = checkMigrationContinuity(srcText, destText);
  expect(c.problems, `heartbeat continuity of '${name}' ${from.label}->${to.label} (last ${c.sourceLast?.counter}, first after ${c.destinationFirst?.counter})`).toEqual([]);
  expect(c.destinationFirst?.counter).toBe(srcLast + 1);
  expect(parseSerialLog(destText).boot, `'${destName}' booted afresh on ${to.label}`).toBeUndefined();
}

/**
 * The guest carries on on host `h` with no restart: counters +1 each, no
 * CORRUPT, and it still prints. `fromBoot` (default): the guest booted on
 * `h`, once, and its counter started at 1; false: it came to `h` by a
 * migration, and did not boot there.
 */
export async function expectHeartbeatCarriesOn(h: HeartbeatHost, name: string, fromBoot = true): Promise<void> {
  await waitCounterAbove(h, name, lastCounter(h, name) + 2);
  const log = parseSerialLog(serialText(h, name));
  expect(log.events.filter((e) => e.kind === 'boot'), fromBoot ? `'${name}' booted more than once on ${h.label}` : `'${name}' booted on ${h.label}`).toHaveLength(fromBoot ? 1 : 0);
  expect(findCounterAnomalies(log.heartbeats, fromBoot ? 1 : undefined), `heartbeat anomalies of '${name}' on ${h.label}`).toEqual([]);
  expect(log.corrupt, `'${name}' reported corruption`).toBe(false);
}
