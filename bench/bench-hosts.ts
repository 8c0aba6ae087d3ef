/**
 * The two hosts of the comparison benchmarks (bench/libvirt/hosts.sh): their
 * network namespaces and addresses, and what the programs need to drive
 * libvirt there: `virsh` inside a host, the libvirtd pids, libvirt's job
 * figures, and the guest's serial port as a file (libvirt keeps no copy of
 * a pty's output, as ferryd does).
 */
import { execFileSync } from 'node:child_process';
import { inNetns } from '../test/support/netns.js';
import { checkMigrationContinuity, parseSerialLog } from '../test/support/serial.js';
import type { Ferryd } from './ferryd.js';
import { CLI, ROOT, sleep, timedRun, type TimedRun } from './lib.js';

export const NS = ['lvb-h1', 'lvb-h2'] as const;
export const ADDR = ['10.203.0.1', '10.203.0.2'] as const;
export const LV_URI = ADDR.map((a) => `qemu+tcp://${a}/system`);
export const FERRY_URI = ADDR.map((a) => `ferry+tcp://${a}:16609/system`);
/** Port of ferryd's `--libvirt-listen-tcp` on each host (libvirtd has 16509). */
export const FERRYD_LIBVIRT_PORT = 16510;
/** ferryd's libvirt-protocol listener on each host, for stock virsh. */
export const FERRYD_LV_URI = ADDR.map((a) => `qemu+tcp://${a}:${FERRYD_LIBVIRT_PORT}/system`);

/** `virsh -q -c URI ARGS` inside host `host`'s namespace; URI: that host's libvirtd unless given (e.g. {@link FERRYD_LV_URI}). */
export function virsh(host: 0 | 1, args: string[], timeoutMs = 300_000, uri = LV_URI[host]!): Promise<TimedRun> {
  const c = inNetns(NS[host], ['virsh', '-q', '-c', uri, ...args]);
  return timedRun(c.file, c.args, { timeoutMs });
}

/** The pids of the running libvirtd processes (both hosts'). */
export function libvirtdPids(): number[] {
  return execFileSync('ps', ['-eo', 'pid=,comm='], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter(([, comm]) => comm === 'libvirtd')
    .map(([pid]) => Number(pid));
}

/** `virsh domjobinfo` output as label → value. */
export function parseJobInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([^:]+):\s+(.*)$/.exec(line.trim());
    if (m) out[m[1]!.trim()] = m[2]!.trim();
  }
  return out;
}

/** Bytes of a `domjobinfo` size ("123.456 MiB"). */
export function toBytes(v: string | undefined): number | undefined {
  const m = v ? /^([\d.]+)\s*(B|KiB|MiB|GiB)$/.exec(v) : null;
  if (!m) return undefined;
  return Number(m[1]) * { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }[m[2] as 'B']!;
}

/** The test guest's XML (test/support/guest-xml.ts) with its serial port writing `path` instead of a pty. */
export function serialToFile(xml: string, path: string): string {
  return xml
    .replace(/ *<serial type='pty'><target port='0'\/><\/serial>\n/, `    <serial type='file'><source path='${path}'/><target port='0'/></serial>\n`)
    .replace(/ *<console type='pty'><target type='serial' port='0'\/><\/console>\n/, '');
}

/** `ferry -c <ferryd's unix socket> ARGS` inside host `host`'s namespace (the built CLI, {@link CLI}). */
export function ferryIn(host: 0 | 1, f: Ferryd, args: string[], timeoutMs = 300_000): Promise<TimedRun> {
  const c = inNetns(NS[host], [process.execPath, CLI, '-c', f.unixUri, ...args]);
  return timedRun(c.file, c.args, { timeoutMs, cwd: ROOT });
}

/**
 * The guest check after a finished migration, given the source's and the
 * destination's serial logs: the heartbeat went on at the source's last + 1
 * with no CORRUPT (test/support/serial.ts checkMigrationContinuity), and the
 * guest runs on (3 heartbeats or more on the destination).
 */
export function guestProblems(src: string, dst: string): string[] {
  const c = checkMigrationContinuity(src, dst);
  const problems = [...c.problems];
  const last = parseSerialLog(src + dst).lastHeartbeat?.counter ?? 0;
  if (c.ok && last - (c.sourceLast?.counter ?? 0) < 3) problems.push('fewer than 3 heartbeats on the destination after the migration');
  return problems;
}

/**
 * {@link guestProblems} once the guest had time: after `minMs`, and then
 * again every 250 ms while there are problems, up to `maxMs` in all. A big
 * guest's full pattern check (every 10th heartbeat, over GiBs) delays its
 * heartbeats, so a fixed wait can see too few beats on the destination; a
 * guest that is wrong stays wrong, and is reported after `maxMs`.
 */
export async function settledGuestProblems(readSrc: () => string, readDst: () => string, minMs: number, maxMs = 20_000): Promise<string[]> {
  const end = Date.now() + maxMs;
  await sleep(minMs);
  for (;;) {
    const problems = guestProblems(readSrc(), readDst());
    if (problems.length === 0 || Date.now() >= end) return problems;
    await sleep(250);
  }
}
