/**
 * Evacuations end to end (issue 15, docs/evacuation.md): a fleet of test
 * guests started on one host of a {@link Cluster}, the lines ferryd logs
 * about an evacuation and its migration slots (parsed, and checked against
 * the limits), the evacuation's status through the API (cheap enough to
 * poll), and the check a user makes afterwards: every guest on exactly one
 * destination, none left on the source, definitions moved, the heartbeat
 * continuous, no CORRUPT anywhere, the record saying `done` for each.
 */
import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import { ApiClient } from '../../src/api/client.js';
import type { EvacuationRecord } from '../../src/evacuation/index.js';
import type { EvacuationStatus } from '../../src/api/protocol.js';
import { expectCliOk } from './cli-result.js';
import type { ClusterHost } from './cluster.js';
import { qemuPidsMentioning, waitFor } from './daemon.js';
import { testGuestXml } from './guest-xml.js';
import { expectContinuity, serialText, waitHeartbeats, type HeartbeatHost } from './heartbeat.js';
import { parseSerialLog } from './serial.js';

/** One guest of a fleet. */
export interface FleetGuest {
  name: string;
  uuid: string;
  /** An odd size (whole MiB + 4 KiB): QEMU 7.2 under TCG loses dirty pages at multiples of 256 KiB (docs/PLATFORM). */
  memoryKiB: number;
  /** Started (moved live) or only defined (moved offline with --include-inactive). */
  running: boolean;
  cmdline: string;
}

/** Options of {@link fleetOf}. */
export interface FleetOptions {
  running: number;
  inactive?: number;
  /** Memory of the first guest in MiB (each gets 4 KiB more); the next ones `stepMiB` more each. */
  firstMiB: number;
  stepMiB?: number;
  /** The guest kernel's command line (working set, rewrite rate, heartbeat interval). */
  cmdline: string;
}

/** `running` guests `PREFIX-01`... then `inactive` ones `PREFIX-off1`..., of odd and different sizes. */
export function fleetOf(prefix: string, o: FleetOptions): FleetGuest[] {
  const step = o.stepMiB ?? 2;
  const guests: FleetGuest[] = [];
  const total = o.running + (o.inactive ?? 0);
  for (let i = 0; i < total; i++) {
    const running = i < o.running;
    guests.push({
      name: running ? `${prefix}-${String(i + 1).padStart(2, '0')}` : `${prefix}-off${i - o.running + 1}`,
      uuid: randomUUID(),
      memoryKiB: (o.firstMiB + step * i) * 1024 + 4,
      running,
      cmdline: o.cmdline,
    });
  }
  return guests;
}

/** A cluster host as the heartbeat helpers name it. */
export function heartbeatHost(h: ClusterHost): HeartbeatHost {
  return { label: h.name, d: h.d };
}

/** Defines every guest on `h` (persistent), starts the running ones, and waits until each of them beats. */
export async function createFleet(h: ClusterHost, guests: readonly FleetGuest[]): Promise<void> {
  const c = await ApiClient.connect(h.d.uri);
  try {
    for (const g of guests) await c.call('domain.define', { xml: testGuestXml({ name: g.name, uuid: g.uuid, memoryKiB: g.memoryKiB, cmdline: g.cmdline }) });
    for (const g of guests) if (g.running) await c.call('domain.start', { domain: g.uuid });
  } finally {
    c.close();
  }
  for (const g of guests) if (g.running) await waitHeartbeats(heartbeatHost(h), g.name, 3, 60_000);
}

/** `evacuation: start 'NAME' to HOST (attempt K); in flight N (max M); outgoing from SRC O of LO; incoming to HOST I of LI` */
export interface EvacuationStartLine {
  name: string;
  /** The destination's host name. */
  host: string;
  attempt: number;
  inFlight: number;
  maxParallel: number;
  outgoing: number;
  outgoingLimit: number;
  /** Absent for an offline move, which takes no incoming slot. */
  incoming?: number;
  incomingLimit?: number;
}

const START_LINE = /evacuation: start '([^']+)' to (\S+) \(attempt (\d+)\); in flight (\d+) \(max (\d+)\); outgoing from \S+ (\d+) of (\d+); (?:incoming to \S+ (\d+) of (\d+)|offline: no incoming slot)/;

/** Every `evacuation: start` line of a ferryd log, in order. */
export function evacuationStarts(log: string): EvacuationStartLine[] {
  const out: EvacuationStartLine[] = [];
  for (const line of log.split('\n')) {
    const m = START_LINE.exec(line);
    if (!m) continue;
    out.push({
      name: m[1]!,
      host: m[2]!,
      attempt: Number(m[3]),
      inFlight: Number(m[4]),
      maxParallel: Number(m[5]),
      outgoing: Number(m[6]),
      outgoingLimit: Number(m[7]),
      ...(m[8] !== undefined ? { incoming: Number(m[8]), incomingLimit: Number(m[9]) } : {}),
    });
  }
  return out;
}

/** `evacuation: 'NAME' ended: migrated to HOST ... | failed on HOST: MSG | unknown: MSG | stopped: MSG` */
export interface EvacuationEndLine {
  name: string;
  result: 'migrated' | 'failed' | 'unknown' | 'stopped';
  /** Where it went (migrated) or failed. */
  host?: string;
  line: string;
}

/** Every `evacuation: 'NAME' ended:` line of a ferryd log, in order. */
export function evacuationEnds(log: string): EvacuationEndLine[] {
  const out: EvacuationEndLine[] = [];
  for (const line of log.split('\n')) {
    const m = /evacuation: '([^']+)' ended: (migrated to (\S+)|failed on ([^:\s]+):|unknown:|stopped:)/.exec(line);
    if (!m) continue;
    const result = m[3] !== undefined ? 'migrated' : m[4] !== undefined ? 'failed' : m[2]!.startsWith('unknown') ? 'unknown' : 'stopped';
    const host = m[3] ?? m[4];
    out.push({ name: m[1]!, result, ...(host !== undefined ? { host } : {}), line: line.trim() });
  }
  return out;
}

/** `migration slots: incoming R running of L, Q queued` (or outgoing). */
export interface SlotLine {
  running: number;
  limit: number;
  queued: number;
}

/** Every `migration slots: KIND` line of a ferryd log, in order. */
export function slotLines(log: string, kind: 'incoming' | 'outgoing'): SlotLine[] {
  const re = new RegExp(`migration slots: ${kind} (\\d+) running of (\\d+), (\\d+) queued`);
  const out: SlotLine[] = [];
  for (const line of log.split('\n')) {
    const m = re.exec(line);
    if (m) out.push({ running: Number(m[1]), limit: Number(m[2]), queued: Number(m[3]) });
  }
  return out;
}

/** The limits an evacuation ran under. */
export interface EvacuationLimits {
  maxParallel: number;
  maxOutgoing: number;
  maxIncoming: number;
}

/** What {@link limitsSeen} found in the logs: every number that passed its limit, and the highest of each. */
export interface LimitsSeen {
  problems: string[];
  starts: EvacuationStartLine[];
  /**
   * The highest of each number: the evacuation's own (`inFlight`,
   * `outgoing`, `incoming`, from its start lines) and ferryd's slots
   * (running and queued, on the source and on any destination).
   */
  most: { inFlight: number; outgoing: number; incoming: number; sourceSlots: number; sourceQueued: number; destinationSlots: number; destinationQueued: number };
}

/**
 * Checks the source's `evacuation: start` lines and `migration slots:
 * outgoing` lines, and each destination's `migration slots: incoming`
 * lines, against the limits: no number above its limit, and the limits in
 * the lines the ones the daemons were started with.
 */
export function limitsSeen(sourceLog: string, destinationLogs: ReadonlyArray<{ host: string; log: string }>, limits: EvacuationLimits): LimitsSeen {
  const problems: string[] = [];
  const starts = evacuationStarts(sourceLog);
  const most = { inFlight: 0, outgoing: 0, incoming: 0, sourceSlots: 0, sourceQueued: 0, destinationSlots: 0, destinationQueued: 0 };
  for (const s of starts) {
    const where = `start of '${s.name}' to ${s.host} (attempt ${s.attempt})`;
    if (s.maxParallel !== limits.maxParallel) problems.push(`${where}: max ${s.maxParallel}, expected ${limits.maxParallel}`);
    if (s.outgoingLimit !== limits.maxOutgoing) problems.push(`${where}: outgoing limit ${s.outgoingLimit}, expected ${limits.maxOutgoing}`);
    if (s.inFlight > s.maxParallel) problems.push(`${where}: ${s.inFlight} in flight, max ${s.maxParallel}`);
    if (s.outgoing > s.outgoingLimit) problems.push(`${where}: ${s.outgoing} outgoing, limit ${s.outgoingLimit}`);
    if (s.incoming !== undefined) {
      if (s.incomingLimit !== limits.maxIncoming) problems.push(`${where}: incoming limit ${s.incomingLimit}, expected ${limits.maxIncoming}`);
      if (s.incoming > s.incomingLimit!) problems.push(`${where}: ${s.incoming} incoming, limit ${s.incomingLimit}`);
      most.incoming = Math.max(most.incoming, s.incoming);
    }
    most.inFlight = Math.max(most.inFlight, s.inFlight);
    most.outgoing = Math.max(most.outgoing, s.outgoing);
  }
  for (const l of slotLines(sourceLog, 'outgoing')) {
    if (l.limit !== limits.maxOutgoing) problems.push(`source: outgoing slot limit ${l.limit}, expected ${limits.maxOutgoing}`);
    if (l.running > l.limit) problems.push(`source: ${l.running} outgoing migrations running, limit ${l.limit}`);
    most.sourceSlots = Math.max(most.sourceSlots, l.running);
    most.sourceQueued = Math.max(most.sourceQueued, l.queued);
  }
  for (const d of destinationLogs) {
    for (const l of slotLines(d.log, 'incoming')) {
      if (l.limit !== limits.maxIncoming) problems.push(`${d.host}: incoming slot limit ${l.limit}, expected ${limits.maxIncoming}`);
      if (l.running > l.limit) problems.push(`${d.host}: ${l.running} incoming migrations running, limit ${l.limit}`);
      most.destinationSlots = Math.max(most.destinationSlots, l.running);
      most.destinationQueued = Math.max(most.destinationQueued, l.queued);
    }
  }
  return { problems, starts, most };
}

/** The source's evacuation status through the API (`host.evacuate.status`): cheap enough to poll every 100 ms. */
export async function evacuationStatus(h: ClusterHost): Promise<EvacuationStatus> {
  const c = await ApiClient.connect(h.d.uri);
  try {
    return await c.call('host.evacuate.status', {});
  } finally {
    c.close();
  }
}

/** How many guests of a record are in each status. */
export function statusCounts(record: EvacuationRecord | null): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const e of record?.guests ?? []) counts[e.status] = (counts[e.status] ?? 0) + 1;
  return counts;
}

/** One line per guest of a record (status, destination, attempts, note): what a failed assertion shows. */
export function describeRecord(record: EvacuationRecord | null | undefined): string {
  if (!record) return '(no record)';
  return record.guests
    .map((e) => `${e.guest.name}: ${e.status} -> ${e.destination ?? '-'}; ${e.attempts.map((a) => `${a.destination} ${a.result ?? 'open'}${a.error ? ` (${a.error})` : ''}`).join(', ')}; ${e.note}`)
    .join('\n');
}

/** Running and defined (persistent) domains of a host, as `ferry list` shows them. */
export interface HostListing {
  /** Running or paused (`ferry list --name`). */
  active: string[];
  /** Running (`ferry list --state-running --name`). */
  running: string[];
  /** Defined, running or not (`ferry list --all --persistent --name`). */
  persistent: string[];
}

/** `ferry list --name`, `ferry list --state-running --name` and `ferry list --all --persistent --name` on `h`. */
export async function listingOf(h: ClusterHost): Promise<HostListing> {
  const names = (out: string) => out.split('\n').map((x) => x.trim()).filter((x) => x !== '');
  const active = await h.ferry(['list', '--name']);
  expectCliOk(active, `list on ${h.name}`);
  const running = await h.ferry(['list', '--state-running', '--name']);
  expectCliOk(running, `list --state-running on ${h.name}`);
  const persistent = await h.ferry(['list', '--all', '--persistent', '--name']);
  expectCliOk(persistent, `list --all --persistent on ${h.name}`);
  return { active: names(active.stdout), running: names(running.stdout), persistent: names(persistent.stdout) };
}

/**
 * What a user checks after an evacuation of `guests` from `source` to
 * `destinations`, whatever went wrong on the way:
 *
 * - the record (`status.record`, from `ferry evacuate --json` or
 *   `evacuate-status --json`) says `done` for each guest, at the host where
 *   it is;
 * - every running guest runs (not paused) on exactly one host, a
 *   destination (`ferry list` on every host), is active nowhere else, and
 *   has one QEMU on the machine; the source has none of them active;
 * - every guest is defined (persistent) on exactly that destination and no
 *   longer on the source; an inactive one stays shut off;
 * - each running guest's heartbeat carries on at the destination from the
 *   source's last count + 1, in the same guest; no host's serial log of any
 *   guest reports CORRUPT.
 *
 * Returns where each guest ended (name -> destination host).
 */
export async function expectEvacuated(source: ClusterHost, destinations: readonly ClusterHost[], guests: readonly FleetGuest[], status: EvacuationStatus): Promise<Map<string, ClusterHost>> {
  const record = status.record;
  const table = describeRecord(record);
  expect(record, 'the evacuation has a record').not.toBeNull();
  for (const g of guests) {
    const e = record!.guests.find((x) => x.guest.name === g.name);
    expect(e, `the record lists '${g.name}'\n${table}`).toBeDefined();
    expect(e!.status, `record status of '${g.name}'\n${table}`).toBe('done');
  }

  const hosts = [source, ...destinations];
  const listings = new Map<ClusterHost, HostListing>();
  for (const h of hosts) listings.set(h, await listingOf(h));
  const summary = hosts
    .map((h) => `${h.name}: active [${listings.get(h)!.active.join(' ')}], running [${listings.get(h)!.running.join(' ')}], persistent [${listings.get(h)!.persistent.join(' ')}]`)
    .join('\n');
  const src = listings.get(source)!;
  expect(src.active.filter((n) => guests.some((g) => g.name === n)), `guests still running on the source ${source.name}\n${summary}`).toEqual([]);
  expect(src.persistent.filter((n) => guests.some((g) => g.name === n)), `guests still defined on the source ${source.name}\n${summary}`).toEqual([]);

  const where = new Map<string, ClusterHost>();
  for (const g of guests) {
    const runningOn = destinations.filter((h) => listings.get(h)!.running.includes(g.name));
    const activeOn = destinations.filter((h) => listings.get(h)!.active.includes(g.name));
    const definedOn = destinations.filter((h) => listings.get(h)!.persistent.includes(g.name));
    if (g.running) {
      expect(runningOn.map((h) => h.name), `hosts running '${g.name}'\n${summary}`).toHaveLength(1);
      expect(activeOn.map((h) => h.name), `hosts where '${g.name}' is active (running or paused)\n${summary}`).toEqual(runningOn.map((h) => h.name));
      expect(definedOn.map((h) => h.name), `hosts where '${g.name}' is defined (persistent)\n${summary}`).toEqual(runningOn.map((h) => h.name));
    } else {
      expect(activeOn.map((h) => h.name), `hosts running the inactive '${g.name}'\n${summary}`).toEqual([]);
      expect(definedOn.map((h) => h.name), `hosts where the inactive '${g.name}' is defined\n${summary}`).toHaveLength(1);
    }
    const at = g.running ? runningOn[0]! : definedOn[0]!;
    where.set(g.name, at);
    const e = record!.guests.find((x) => x.guest.name === g.name)!;
    expect(e.destination, `the record's destination of '${g.name}' is where it is (${at.name})\n${table}`).toBe(at.tcpUri);
  }

  // One QEMU per running guest on the whole machine (an incoming copy left behind may take a moment to go), none for inactive ones.
  for (const g of guests) {
    const want = g.running ? 1 : 0;
    await waitFor(`${want} QEMU of '${g.name}'`, () => qemuPidsMentioning(g.uuid).length === want, 20_000).catch(() => undefined);
    expect(qemuPidsMentioning(g.uuid), `QEMU processes of '${g.name}' (${g.uuid})`).toHaveLength(want);
  }

  // The heartbeat of every running guest carried on at its destination, in the same guest, and nothing reported corruption.
  await Promise.all(guests.filter((g) => g.running).map((g) => expectContinuity(g.name, heartbeatHost(source), heartbeatHost(where.get(g.name)!))));
  for (const g of guests) {
    for (const h of hosts) expect(parseSerialLog(serialText(heartbeatHost(h), g.name)).corrupt, `CORRUPT in ${h.name}'s serial log of '${g.name}'`).toBe(false);
  }
  return where;
}

const ACTIVE: ReadonlySet<string> = new Set(['running', 'stopping', 'aborting']);

/** Aborts the evacuation running on `source`, if one runs (`ferry evacuate-stop --abort`), and waits until it stopped; returns the status then. */
export async function stopEvacuation(source: ClusterHost): Promise<EvacuationStatus> {
  const st = await evacuationStatus(source);
  if (!ACTIVE.has(st.state)) return st;
  await source.ferry(['evacuate-stop', '--abort']);
  return waitFor('the evacuation to stop', async () => {
    const s = await evacuationStatus(source);
    return ACTIVE.has(s.state) ? undefined : s;
  }, 90_000, 250);
}

/**
 * Between tests: no evacuation runs on `source` and none is left
 * unfinished there, so that the next `ferry evacuate` plans afresh. A
 * running one is aborted; an unfinished record is replaced with `--fresh`
 * (the host has no guest left then, so the new evacuation is settled at once).
 */
export async function forgetEvacuation(source: ClusterHost, to: readonly string[]): Promise<void> {
  const st = await stopEvacuation(source);
  if (st.state === 'interrupted') {
    const r = await source.ferry(['evacuate', ...to.flatMap((u) => ['--to', u]), '--fresh'], { json: true, timeoutMs: 60_000 });
    const after = await evacuationStatus(source);
    if (after.state !== 'ended') throw new Error(`an unfinished evacuation is left on ${source.name} (${after.state}) after evacuate --fresh of an emptied host: exit ${r.code}, ${r.stdout}${r.stderr}`);
  }
}
