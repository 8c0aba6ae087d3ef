/**
 * Synchronous disk writes (NON_SHARED_SYNCHRONOUS_WRITES,
 * `--copy-storage-synchronous-writes`) between two hosts on a link shaped
 * to 8 Mbit/s (1 MB/s), with a guest whose own disk writer asks for 8000
 * sectors/s (about 4 MB/s, the writer's ceiling) over a 4 MiB range.
 *
 * What a user sees: in the default (background) mode the storage copy
 * never catches up, so the migration sits in its storage phase with data
 * left to copy until it is aborted, and the guest stays on the source; with
 * synchronous writes the guest's writes are slowed to what the link
 * carries, the copy catches up, the migration finishes, the heartbeat
 * went on throughout and continues on the destination at +1, and the
 * destination's image is identical to the source's (`qemu-img compare`,
 * the guest left paused there with --suspend so that it has written
 * nothing since). The figures of both runs are printed.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCluster, type Cluster, type ClusterHost } from '../support/cluster.js';
import { makeTempDir, resetDaemons, useDaemonCleanup, waitFor } from '../support/daemon.js';
import { serialLogFile, testGuestXml, waitForHeartbeat } from '../support/guest-xml.js';
import { netnsAvailable } from '../support/netns.js';
import { checkMigrationContinuity, parseSerialLog } from '../support/serial.js';

const LINK = '8mbit';
/** How long the default mode is watched not converging before it is aborted. */
const BOUND_MS = 20_000;
const CMDLINE = 'ws=2 rate=0 hb=200 disk=8000 disk_start=2048 disk_sectors=8192';
const MB = 1e6;

let cluster: Cluster | undefined;
let A: ClusterHost;
let B: ClusterHost;
let dir: string;

useDaemonCleanup(() => resetDaemons([A?.d, B?.d]));

beforeAll(async () => {
  if (!netnsAvailable()) return;
  dir = makeTempDir('ferry-storage-sync-');
  cluster = await createCluster({ prefix: `fss${process.pid % 10000}`, subnet: 141, hosts: 2, rate: LINK });
  [A, B] = cluster.hosts as [ClusterHost, ClusterHost];
});

afterAll(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

function guestXml(name: string, uuid: string, image: string): string {
  const disk = `    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${image}'/><target dev='hda' bus='ide'/></disk>`;
  return testGuestXml({ name, uuid, cmdline: CMDLINE, extraDevices: disk });
}

function identical(a: string, b: string): string {
  try {
    return execFileSync('qemu-img', ['compare', '-U', a, b], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (err) {
    return `differ: ${(err as { stdout?: string }).stdout ?? ''}${(err as { stderr?: string }).stderr ?? ''}`.trim();
  }
}

/** The guest's disk writes so far, from its last heartbeat on `h`. */
function diskWrites(h: ClusterHost, name: string): number {
  return parseSerialLog(serialLogFile(h.d.stateDir, name).text).lastHeartbeat?.diskWrites ?? 0;
}

describe.skipIf(!netnsAvailable())('storage copy with synchronous writes on a slow link', () => {
  it('the default mode does not catch up with a heavy disk writer; --copy-storage-synchronous-writes finishes, guest intact', async () => {
    const name = 'ssw1';
    const uuid = 'a1a1a1a1-0000-4000-8000-000000000018';
    const imageA = join(dir, 'ssw-hda-a.raw');
    const imageB = join(dir, 'ssw-hda-b.raw');
    execFileSync('truncate', ['-s', '16M', imageA]);
    const xmlA = join(dir, 'ssw-a.xml');
    const xmlB = join(dir, 'ssw-b.xml');
    writeFileSync(xmlA, guestXml(name, uuid, imageA));
    writeFileSync(xmlB, guestXml(name, uuid, imageB));
    const ok = async (h: ClusterHost, args: string[]) => {
      const r = await h.ferry(args);
      expect(r.code, `ferry ${args.join(' ')}\n${r.stdout}${r.stderr}`).toBe(0);
      return r;
    };
    await ok(A, ['create', xmlA]);
    await waitForHeartbeat(A.d.uri, name, (log) => (log.lastHeartbeat?.counter ?? 0) >= 5 && (log.lastHeartbeat?.diskWrites ?? 0) > 0, 30_000);
    // The writer's own rate before any migration: two samples 2 s apart.
    const w0 = diskWrites(A, name);
    const s0 = Date.now();
    await new Promise((r) => setTimeout(r, 2000));
    const writerRate = ((diskWrites(A, name) - w0) * 512) / ((Date.now() - s0) / 1000);

    // Default (background) mode: the copy never catches up; watched for BOUND_MS, then aborted.
    const started = Date.now();
    const background = A.ferry(['migrate', '--live', '--p2p', '--copy-storage-all', '--suspend', '--xml', xmlB, name, B.tcpUri], { json: true, timeoutMs: BOUND_MS + 60_000 });
    const samples: Array<{ ms: number; phase?: string; disk_total?: number; disk_processed?: number; disk_remaining?: number; memory_total?: number }> = [];
    while (Date.now() - started < BOUND_MS) {
      const j = (await A.ferry(['domjobinfo', name], { json: true })).json;
      samples.push({ ms: Date.now() - started, phase: j?.phase, disk_total: j?.disk_total, disk_processed: j?.disk_processed, disk_remaining: j?.disk_remaining, memory_total: j?.memory_total });
      await new Promise((r) => setTimeout(r, 1000));
    }
    const last = samples[samples.length - 1]!;
    await ok(A, ['domjobabort', name]);
    const bg = await background;
    const bgFigures = {
      watchedMs: Date.now() - started,
      lastPhase: last.phase,
      diskTotalMB: (last.disk_total ?? 0) / MB,
      diskProcessedMB: (last.disk_processed ?? 0) / MB,
      diskRemainingMB: (last.disk_remaining ?? 0) / MB,
      remainingMBOverTime: samples.filter((_, i) => i % 4 === 0).map((s) => +((s.disk_remaining ?? 0) / MB).toFixed(2)),
    };
    // Still copying disks at the bound: the memory stream never started, data is left.
    expect(samples.every((s) => s.memory_total === undefined), JSON.stringify(samples)).toBe(true);
    expect(last.phase).toBe('storage');
    expect(last.disk_remaining ?? 0).toBeGreaterThan(0);
    expect(bg.json?.error?.code, JSON.stringify(bg.json)).toBe('operation_aborted');
    await waitFor('the guest to run on A', async () => (await A.ferry(['domstate', name])).stdout.trim() === 'running', 20_000);
    expect((await B.ferry(['list', '--all', '--name'])).stdout.trim()).toBe('');
    await waitFor('B to remove the image it created', () => !existsSync(imageB), 10_000);

    // Synchronous writes: the same guest, the same link.
    const logBefore = parseSerialLog(serialLogFile(A.d.stateDir, name).text).lastHeartbeat;
    const t0 = Date.now();
    const r = await A.ferry(['migrate', '--live', '--p2p', '--copy-storage-all', '--copy-storage-synchronous-writes', '--suspend', '--xml', xmlB, name, B.tcpUri], { json: true, timeoutMs: 180_000 });
    const wallMs = Date.now() - t0;
    expect(r.json?.error, JSON.stringify(r.json)).toBeUndefined();
    expect(r.json.result.state).toBe('paused');
    const s = r.json.stats ?? {};
    // The heartbeat went on while the disks were copied (no multi-second stall: one line per 200 ms).
    const src = parseSerialLog(serialLogFile(A.d.stateDir, name).text);
    const beatsDuring = (src.lastHeartbeat?.counter ?? 0) - (logBefore?.counter ?? 0);
    expect(beatsDuring).toBeGreaterThanOrEqual(Math.floor((wallMs - 2000) / 200 / 2));
    const syncFigures = {
      wallMs,
      diskTotalMB: (s.disk_total ?? 0) / MB,
      memoryMB: (s.memory_processed ?? 0) / MB,
      downtimeMs: s.downtime,
      heartbeatsDuring: beatsDuring,
      guestWriteMBps: (((src.lastHeartbeat?.diskWrites ?? 0) - (logBefore?.diskWrites ?? 0)) * 512) / MB / (wallMs / 1000),
    };
    expect(identical(imageA, imageB)).toBe('Images are identical.');

    await ok(B, ['resume', name]);
    await waitForHeartbeat(B.d.uri, name, (log) => log.heartbeats.length >= 3, 20_000);
    const cont = checkMigrationContinuity(serialLogFile(A.d.stateDir, name).text, serialLogFile(B.d.stateDir, name).text);
    expect(cont.problems).toEqual([]);
    expect(cont.destinationFirst?.diskWrites).toBeGreaterThan(cont.sourceLast?.diskWrites ?? Infinity);
    expect(A.d.stderr()).toMatch(/copying 1 disk\(s\) of 'ssw1' \(full, synchronous writes\)/);

    console.log(JSON.stringify({ link: LINK, writerMBps: +(writerRate / MB).toFixed(2), background: bgFigures, synchronous: syncFigures }, null, 2));
    await B.ferry(['destroy', name]);
  }, 300_000);
});
