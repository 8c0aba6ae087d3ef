/**
 * Storage copy (NON_SHARED_DISK, NON_SHARED_INC) between two hosts as
 * network namespaces of one machine. The hosts share a filesystem, so the
 * destination's images get other paths through --xml, as they would on
 * separate machines with their own storage.
 *
 * What a user checks: the guest carries on (heartbeat +1, no corruption),
 * and the destination's disks hold exactly what the source's held at the
 * switch-over, including writes made while the disks were being copied
 * (the guest's own disk writer and qemu-io writes through the monitor).
 * The comparison is `qemu-img compare` against the source's final images,
 * with the guest left paused on the destination (--suspend) so that it has
 * not written anything since.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ferry, resetDaemons, makeTempDir, startDaemon, useDaemonCleanup, waitFor, type CliResult, type FerrydHandle } from '../support/daemon.js';
import { serialLogFile, testGuestXml, waitForHeartbeat } from '../support/guest-xml.js';
import { createHostPair, netnsAvailable, type HostPair } from '../support/netns.js';
import { checkMigrationContinuity } from '../support/serial.js';

const USE_NETNS = !process.env.FERRY_E2E_NO_NETNS && netnsAvailable();
let pair: HostPair | undefined;
let A: { d: FerrydHandle; ns?: string };
let B: { d: FerrydHandle; ns?: string };
let destUri: string;
let dir: string;

useDaemonCleanup(() => resetDaemons([A?.d, B?.d]));

beforeAll(async () => {
  dir = makeTempDir('ferry-storage-');
  if (USE_NETNS) {
    pair = createHostPair(`fsto${process.pid}`, 61);
    A = { d: await startDaemon({ hostName: 'sto-a', listenTcp: `${pair.a.address}:16609`, netns: pair.a.ns }), ns: pair.a.ns };
    B = { d: await startDaemon({ hostName: 'sto-b', listenTcp: `${pair.b.address}:16609`, netns: pair.b.ns }), ns: pair.b.ns };
    destUri = `ferry+tcp://${pair.b.address}:16609/system`;
  } else {
    A = { d: await startDaemon({ hostName: 'sto-a', listenTcp: '127.0.0.1:0' }) };
    B = { d: await startDaemon({ hostName: 'sto-b', listenTcp: '127.0.0.1:0' }) };
    destUri = `ferry+tcp://127.0.0.1:${B.d.tcpPort}/system`;
  }
});

afterAll(() => pair?.destroy());

function on(h: { d: FerrydHandle; ns?: string }, args: string[], opts: { json?: boolean; timeoutMs?: number } = {}): Promise<CliResult> {
  return ferry(args, { uri: h.d.uri, ...(h.ns ? { netns: h.ns } : {}), ...opts });
}

async function ok(h: { d: FerrydHandle; ns?: string }, args: string[]): Promise<CliResult> {
  const r = await on(h, args);
  expect(r.code, `ferry ${args.join(' ')}\n${r.stdout}${r.stderr}`).toBe(0);
  return r;
}

function qemuImg(args: string[]): string {
  return execFileSync('qemu-img', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A raw image of `mib` MiB whose first `dataMiB` MiB are random (so that copying them takes real time). */
function rawImage(path: string, mib: number, dataMiB: number): void {
  execFileSync('dd', ['if=/dev/urandom', `of=${path}`, 'bs=1M', `count=${dataMiB}`, 'status=none']);
  execFileSync('truncate', ['-s', `${mib}M`, path]);
}

interface DiskSpec {
  target: string;
  bus: 'ide' | 'virtio';
  format: 'raw' | 'qcow2';
  path: string;
  backing?: { path: string; format: 'raw' | 'qcow2' };
}

function diskXml(d: DiskSpec): string {
  const backing = d.backing
    ? `<backingStore type='file'><format type='${d.backing.format}'/><source file='${d.backing.path}'/><backingStore/></backingStore>`
    : '';
  return `    <disk type='file' device='disk'><driver name='qemu' type='${d.format}'/><source file='${d.path}'/>${backing}<target dev='${d.target}' bus='${d.bus}'/></disk>`;
}

function guestXml(name: string, uuid: string, cmdline: string, disks: DiskSpec[]): string {
  return testGuestXml({ name, uuid, cmdline, extraDevices: disks.map(diskXml).join('\n') });
}

function writeXml(file: string, xml: string): string {
  const path = join(dir, file);
  writeFileSync(path, xml);
  return path;
}

/** qemu-io through the monitor, on the guest's own device (so the block layer, and the mirror, see the write). */
async function qemuIo(name: string, device: string, command: string): Promise<void> {
  // A virtio disk's block backend sits on the proxy's virtio-backend child.
  const qdev = device.startsWith('vd') ? `/machine/peripheral/disk-${device}/virtio-backend` : `disk-${device}`;
  const r = await on(A, ['qemu-monitor-command', '--hmp', name, `qemu-io -d ${qdev} "${command}"`], { json: true });
  expect(r.code, r.stdout + r.stderr).toBe(0);
  expect(String(r.json?.return ?? '')).not.toMatch(/error|failed/i);
}

async function startGuest(name: string, xml: string): Promise<void> {
  await ok(A, ['create', writeXml(`${name}-a.xml`, xml)]);
  await waitForHeartbeat(A.d.uri, name, (log) => (log.lastHeartbeat?.counter ?? 0) >= 3, 30_000);
}

function identical(a: string, b: string): string {
  try {
    return qemuImg(['compare', '-U', a, b]).trim();
  } catch (err) {
    return `differ: ${(err as { stdout?: string }).stdout ?? ''}${(err as { stderr?: string }).stderr ?? ''}`.trim();
  }
}

/** Whether `len` bytes at `offset` of the image all hold byte `pattern` (read with qemu-io, sharing the image with its QEMU). */
function patternAt(path: string, format: string, pattern: number, offset: string, len: string): boolean {
  try {
    const out = execFileSync('qemu-io', ['-U', '-r', '-f', format, '-c', `read -P ${pattern} ${offset} ${len}`, path], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return /read \d+\/\d+ bytes/.test(out) && !/verification failed/i.test(out);
  } catch {
    return false;
  }
}

/** Waits until the source reports disk progress: the copy is running. */
async function waitForDiskCopy(name: string): Promise<void> {
  await waitFor('the disk copy to run', async () => {
    const s = (await on(A, ['domjobinfo', name], { json: true })).json;
    return (s?.disk_total ?? 0) > 0 && (s?.disk_processed ?? 0) > 0;
  }, 30_000, 100);
}

describe('storage copy', () => {
  it('--copy-storage-all copies every writable disk, with writes made during the copy, and the guest carries on', async () => {
    const uuid = 'a1a1a1a1-0000-4000-8000-000000000001';
    const hdaA = join(dir, 'full-hda-a.raw');
    const vdbA = join(dir, 'full-vdb-a.qcow2');
    rawImage(hdaA, 64, 48);
    const seed = join(dir, 'full-vdb-seed.raw');
    rawImage(seed, 48, 40);
    qemuImg(['convert', '-f', 'raw', '-O', 'qcow2', seed, vdbA]);
    const hdaB = join(dir, 'full-hda-b.raw');
    const vdbB = join(dir, 'full-vdb-b.qcow2');
    // The guest writes its disk (hda) itself at 2000 sectors/s, from LBA 40960 (20 MiB) on.
    const cmdline = 'ws=32 rate=2 hb=200 disk=2000 disk_start=40960 disk_sectors=20480';
    await startGuest('sc1', guestXml('sc1', uuid, cmdline, [
      { target: 'hda', bus: 'ide', format: 'raw', path: hdaA },
      { target: 'vdb', bus: 'virtio', format: 'qcow2', path: vdbA },
    ]));
    const destXml = writeXml('sc1-b.xml', guestXml('sc1', uuid, cmdline, [
      { target: 'hda', bus: 'ide', format: 'raw', path: hdaB },
      { target: 'vdb', bus: 'virtio', format: 'qcow2', path: vdbB },
    ]));
    // 16 MiB/s (memory and disks alike, as in libvirt): about 6 s of copying, time to write while it runs.
    const run = on(A, ['migrate', '--live', '--p2p', '--copy-storage-all', '--suspend', '--bandwidth', '16', '--xml', destXml, 'sc1', destUri], { json: true, timeoutMs: 120_000 });
    await waitForDiskCopy('sc1');
    await qemuIo('sc1', 'vdb', 'write -P 0x5a 40M 1M');
    await qemuIo('sc1', 'hda', 'write -P 0xa5 2M 512k');
    await qemuIo('sc1', 'vdb', 'write -z 1M 1M');
    const r = await run;
    expect(r.json?.error, JSON.stringify(r.json)).toBeUndefined();
    expect(r.json.result.state).toBe('paused');

    // Created on B with the source's format and size; identical contents to the source's final state.
    expect(JSON.parse(qemuImg(['info', '-U', '--output=json', vdbB])).format).toBe('qcow2');
    expect(statSync(hdaB).size).toBe(64 * 1024 * 1024);
    expect(identical(hdaA, hdaB)).toBe('Images are identical.');
    expect(identical(vdbA, vdbB)).toBe('Images are identical.');
    // The writes made during the copy are on B.
    expect(patternAt(vdbB, 'qcow2', 0x5a, '40M', '1M')).toBe(true);
    expect(patternAt(hdaB, 'raw', 0xa5, '2M', '512k')).toBe(true);
    expect(patternAt(vdbB, 'qcow2', 0, '1M', '1M')).toBe(true);

    // Resumed on B, the guest carries on where it left off, disk writer included.
    await ok(B, ['resume', 'sc1']);
    await waitForHeartbeat(B.d.uri, 'sc1', (log) => log.heartbeats.length >= 3, 20_000);
    const cont = checkMigrationContinuity(serialLogFile(A.d.stateDir, 'sc1').text, serialLogFile(B.d.stateDir, 'sc1').text);
    expect(cont.problems).toEqual([]);
    expect(cont.destinationFirst?.diskWrites).toBeGreaterThan(cont.sourceLast?.diskWrites ?? Infinity);
    const s = (await on(B, ['domjobinfo', '--completed', 'sc1'], { json: true })).json;
    // Like libvirt's, the total counts what the mirrors had to copy: both disks, plus what was rewritten meanwhile.
    expect(s.disk_total).toBeGreaterThanOrEqual((64 + 48) * 1024 * 1024);
    expect(s.disk_remaining).toBe(0);
  }, 180_000);

  it('--copy-storage-inc (managed) copies only the top layer onto the backing image the destination already has', async () => {
    const uuid = 'a1a1a1a1-0000-4000-8000-000000000002';
    const base = join(dir, 'inc-base.qcow2');
    const seed = join(dir, 'inc-seed.raw');
    rawImage(seed, 64, 48);
    qemuImg(['convert', '-f', 'raw', '-O', 'qcow2', seed, base]);
    const topA = join(dir, 'inc-top-a.qcow2');
    const topB = join(dir, 'inc-top-b.qcow2');
    qemuImg(['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, topA]);
    // Data only the top layer has, from before the migration.
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x11 4M 2M', topA], { stdio: 'ignore' });
    const disk = (path: string): DiskSpec => ({ target: 'vda', bus: 'virtio', format: 'qcow2', path, backing: { path: base, format: 'qcow2' } });
    await startGuest('sc2', guestXml('sc2', uuid, 'ws=32 rate=2 hb=200', [disk(topA)]));
    const destXml = writeXml('sc2-b.xml', guestXml('sc2', uuid, 'ws=32 rate=2 hb=200', [disk(topB)]));
    // Managed: this client (a user on host A) drives both daemons.
    const run = on(A, ['migrate', '--live', '--copy-storage-inc', '--suspend', '--xml', destXml, 'sc2', destUri], { json: true, timeoutMs: 120_000 });
    await qemuIo('sc2', 'vda', 'write -P 0x22 30M 1M');
    const r = await run;
    expect(r.json?.error, JSON.stringify(r.json)).toBeUndefined();
    expect(r.json.result.state).toBe('paused');
    const info = JSON.parse(qemuImg(['info', '-U', '--output=json', topB]));
    expect(info['backing-filename']).toBe(base);
    // The top layer only: far less than the 48 MiB of the backing image.
    expect(statSync(topB).size).toBeLessThan(16 * 1024 * 1024);
    expect(identical(topA, topB)).toBe('Images are identical.');
    expect(patternAt(topB, 'qcow2', 0x11, '4M', '2M')).toBe(true);
    expect(patternAt(topB, 'qcow2', 0x22, '30M', '1M')).toBe(true);
    await ok(B, ['resume', 'sc2']);
    await waitForHeartbeat(B.d.uri, 'sc2', (log) => log.heartbeats.length >= 3, 20_000);
    expect(checkMigrationContinuity(serialLogFile(A.d.stateDir, 'sc2').text, serialLogFile(B.d.stateDir, 'sc2').text).problems).toEqual([]);
  }, 180_000);

  it('--tunnelled carries the disk copy through the daemons too; --migrate-disks picks the disks', async () => {
    const uuid = 'a1a1a1a1-0000-4000-8000-000000000003';
    const vdaA = join(dir, 'tun-vda-a.raw');
    const vdbShared = join(dir, 'tun-vdb-shared.raw');
    rawImage(vdaA, 32, 24);
    rawImage(vdbShared, 16, 1);
    const vdaB = join(dir, 'tun-vda-b.raw');
    const disks = (vda: string): DiskSpec[] => [
      { target: 'vda', bus: 'virtio', format: 'raw', path: vda },
      // vdb stays where it is (shared storage): only vda is copied.
      { target: 'vdb', bus: 'virtio', format: 'raw', path: vdbShared },
    ];
    await startGuest('sc3', guestXml('sc3', uuid, 'ws=32 rate=2 hb=200', disks(vdaA)));
    const destXml = writeXml('sc3-b.xml', guestXml('sc3', uuid, 'ws=32 rate=2 hb=200', disks(vdaB)));
    const r = await on(A, ['migrate', '--live', '--p2p', '--tunnelled', '--copy-storage-all', '--migrate-disks', 'vda', '--unsafe', '--suspend', '--xml', destXml, 'sc3', destUri], { json: true, timeoutMs: 120_000 });
    expect(r.json?.error, JSON.stringify(r.json)).toBeUndefined();
    expect(identical(vdaA, vdaB)).toBe('Images are identical.');
    // No NBD port was opened on B: the copy came through the daemon connection.
    expect(B.d.stderr()).not.toMatch(/disk copy server of 'sc3'.*listening/);
    await ok(B, ['resume', 'sc3']);
    await waitForHeartbeat(B.d.uri, 'sc3', (log) => log.heartbeats.length >= 3, 20_000);
    expect(checkMigrationContinuity(serialLogFile(A.d.stateDir, 'sc3').text, serialLogFile(B.d.stateDir, 'sc3').text).problems).toEqual([]);
  }, 180_000);

  it('--disks-uri unix:///PATH and --migrateuri unix:///PATH put the disk server and the memory stream on sockets', async () => {
    const uuid = 'a1a1a1a1-0000-4000-8000-000000000004';
    const vdaA = join(dir, 'uri-vda-a.raw');
    rawImage(vdaA, 16, 8);
    const vdaB = join(dir, 'uri-vda-b.raw');
    await startGuest('sc4', guestXml('sc4', uuid, 'ws=16 rate=2 hb=200', [{ target: 'vda', bus: 'virtio', format: 'raw', path: vdaA }]));
    const destXml = writeXml('sc4-b.xml', guestXml('sc4', uuid, 'ws=16 rate=2 hb=200', [{ target: 'vda', bus: 'virtio', format: 'raw', path: vdaB }]));
    const sock = join(dir, 'sc4-nbd.sock');
    const memSock = join(dir, 'sc4-mem.sock');
    const r = await on(A, ['migrate', '--live', '--p2p', '--copy-storage-all', '--disks-uri', `unix://${sock}`, '--migrateuri', `unix://${memSock}`, '--suspend', '--xml', destXml, 'sc4', destUri], { json: true, timeoutMs: 120_000 });
    expect(r.json?.error, JSON.stringify(r.json)).toBeUndefined();
    expect(identical(vdaA, vdaB)).toBe('Images are identical.');
    expect(B.d.stderr()).toContain(`incoming migration of 'sc4'`);
    expect(B.d.stderr()).toMatch(new RegExp(`listening on unix:${memSock.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    await ok(B, ['resume', 'sc4']);
    await waitForHeartbeat(B.d.uri, 'sc4', (log) => log.heartbeats.length >= 3, 20_000);
    expect(checkMigrationContinuity(serialLogFile(A.d.stateDir, 'sc4').text, serialLogFile(B.d.stateDir, 'sc4').text).problems).toEqual([]);
  }, 120_000);

  it('refuses before anything changes: a destination image that is the source\'s own file, a missing backing image, a size mismatch', async () => {
    const uuid = 'a1a1a1a1-0000-4000-8000-000000000005';
    const vdaA = join(dir, 'ref-vda-a.qcow2');
    const base = join(dir, 'ref-base.qcow2');
    qemuImg(['create', '-q', '-f', 'qcow2', base, '32M']);
    qemuImg(['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, vdaA]);
    const disk = (path: string, backing = base): DiskSpec => ({ target: 'vda', bus: 'virtio', format: 'qcow2', path, backing: { path: backing, format: 'qcow2' } });
    await startGuest('sc5', guestXml('sc5', uuid, 'ws=16 rate=2 hb=200', [disk(vdaA)]));
    const checkNothingChanged = async (): Promise<void> => {
      expect((await on(A, ['domstate', 'sc5'])).stdout.trim()).toBe('running');
      expect((await on(B, ['list', '--all', '--name'])).stdout.trim()).toBe('');
    };

    // Same path on hosts that share the filesystem: copying would overwrite the disk with itself.
    const self = await on(A, ['migrate', '--live', '--p2p', '--copy-storage-all', 'sc5', destUri], { json: true });
    expect(self.json?.error?.code).toBe('operation_invalid');
    expect(self.json?.error?.message).toMatch(/very file the source runs from/);
    await checkNothingChanged();

    // An incremental copy onto a backing image B does not have.
    const topB = join(dir, 'ref-vda-b.qcow2');
    const missing = writeXml('sc5-missing.xml', guestXml('sc5', uuid, 'ws=16 rate=2 hb=200', [disk(topB, join(dir, 'no-such-base.qcow2'))]));
    const r1 = await on(A, ['migrate', '--live', '--p2p', '--copy-storage-inc', '--xml', missing, 'sc5', destUri], { json: true });
    expect(r1.json?.error?.code).toBe('no_storage_vol');
    expect(r1.json?.error?.message).toMatch(/no-such-base\.qcow2/);
    expect(existsSync(topB)).toBe(false);
    await checkNothingChanged();

    // An existing destination image of another size.
    qemuImg(['create', '-q', '-f', 'qcow2', topB, '8M']);
    const r2 = await on(A, ['migrate', '--live', '--p2p', '--copy-storage-all', '--xml', writeXml('sc5-size.xml', guestXml('sc5', uuid, 'ws=16 rate=2 hb=200', [disk(topB)])), 'sc5', destUri], { json: true });
    expect(r2.json?.error?.code).toBe('operation_invalid');
    expect(r2.json?.error?.message).toMatch(/same virtual size/);
    await checkNothingChanged();
  }, 120_000);

  it('an abort during the disk copy leaves the guest running on the source and removes the images B created', async () => {
    const uuid = 'a1a1a1a1-0000-4000-8000-000000000006';
    const vdaA = join(dir, 'abort-vda-a.raw');
    rawImage(vdaA, 64, 64);
    const vdaB = join(dir, 'abort-vda-b.raw');
    await startGuest('sc6', guestXml('sc6', uuid, 'ws=16 rate=2 hb=200', [{ target: 'vda', bus: 'virtio', format: 'raw', path: vdaA }]));
    const destXml = writeXml('sc6-b.xml', guestXml('sc6', uuid, 'ws=16 rate=2 hb=200', [{ target: 'vda', bus: 'virtio', format: 'raw', path: vdaB }]));
    const run = on(A, ['migrate', '--live', '--p2p', '--copy-storage-all', '--bandwidth', '4', '--xml', destXml, 'sc6', destUri], { json: true, timeoutMs: 120_000 });
    await waitForDiskCopy('sc6');
    expect(existsSync(vdaB)).toBe(true);
    await ok(A, ['domjobabort', 'sc6']);
    const r = await run;
    expect(r.json?.error?.code).toBe('operation_aborted');
    expect((await on(A, ['domstate', 'sc6'])).stdout.trim()).toBe('running');
    expect((await on(B, ['list', '--all', '--name'])).stdout.trim()).toBe('');
    await waitFor('B to remove the image it created', () => !existsSync(vdaB), 10_000);
    // The source's mirror is gone: a second attempt works.
    const again = await on(A, ['migrate', '--live', '--p2p', '--copy-storage-all', '--xml', destXml, 'sc6', destUri], { json: true, timeoutMs: 120_000 });
    expect(again.json?.error, JSON.stringify(again.json)).toBeUndefined();
    await waitForHeartbeat(B.d.uri, 'sc6', (log) => log.heartbeats.length >= 3, 20_000);
    expect(checkMigrationContinuity(serialLogFile(A.d.stateDir, 'sc6').text, serialLogFile(B.d.stateDir, 'sc6').text).problems).toEqual([]);
  }, 180_000);

  it('--tls encrypts the disk copy as well as the memory (QEMU TLS on NBD); a foreign CA fails and the guest stays', async () => {
    const pki = join(dir, 'pki');
    const foreign = join(dir, 'pki-foreign');
    const hostsForCert = USE_NETNS ? [pair!.a.address, pair!.b.address] : ['127.0.0.1'];
    await ferry(['tls-setup', pki, ...hostsForCert.flatMap((h) => ['--host', h])]);
    await ferry(['tls-setup', foreign, ...hostsForCert.flatMap((h) => ['--host', h])]);
    const start = async (label: string, tlsDir: string, ns: string | undefined, addr: string, port: number) =>
      ({ d: await startDaemon({ hostName: `sto-tls-${label}`, listenTcp: `${addr}:${USE_NETNS ? port : 0}`, tlsDir, ...(ns ? { netns: ns } : {}) }), ...(ns ? { ns } : {}) });
    const aAddr = USE_NETNS ? pair!.a.address : '127.0.0.1';
    const bAddr = USE_NETNS ? pair!.b.address : '127.0.0.1';
    const ta = await start('a', pki, pair?.a.ns, aAddr, 16610);
    const tb = await start('b', pki, pair?.b.ns, bAddr, 16610);
    const tc = await start('c', foreign, pair?.b.ns, bAddr, 16611);
    const tbUri = `ferry+tcp://${bAddr}:${tb.d.tcpPort}/system`;
    const uuid = 'a1a1a1a1-0000-4000-8000-000000000007';
    const vdaA = join(dir, 'tls-vda-a.raw');
    rawImage(vdaA, 16, 8);
    const vdaB = join(dir, 'tls-vda-b.raw');
    const xmlA = writeXml('sc7-a.xml', guestXml('sc7', uuid, 'ws=16 rate=2 hb=200', [{ target: 'vda', bus: 'virtio', format: 'raw', path: vdaA }]));
    const destXml = writeXml('sc7-b.xml', guestXml('sc7', uuid, 'ws=16 rate=2 hb=200', [{ target: 'vda', bus: 'virtio', format: 'raw', path: vdaB }]));
    await ok(ta, ['create', xmlA]);
    await waitForHeartbeat(ta.d.uri, 'sc7', (log) => (log.lastHeartbeat?.counter ?? 0) >= 3, 30_000);
    // The disks are copied before the memory: a handshake failure against another CA shows the NBD connection is TLS.
    const bad = await on(ta, ['migrate', '--live', '--p2p', '--tls', '--copy-storage-all', '--xml', destXml, 'sc7', `ferry+tcp://${bAddr}:${tc.d.tcpPort}/system`], { json: true, timeoutMs: 60_000 });
    expect(bad.json?.error?.message).toMatch(/cannot start copying the disks.*(certificate|TLS)/i);
    expect((await on(ta, ['domstate', 'sc7'])).stdout.trim()).toBe('running');
    expect(existsSync(vdaB)).toBe(false);
    await tc.d.stop();
    const r = await on(ta, ['migrate', '--live', '--p2p', '--tls', '--copy-storage-all', '--suspend', '--xml', destXml, 'sc7', tbUri], { json: true, timeoutMs: 120_000 });
    expect(r.json?.error, JSON.stringify(r.json)).toBeUndefined();
    expect(identical(vdaA, vdaB)).toBe('Images are identical.');
    await ta.d.stop();
    await tb.d.stop();
  }, 180_000);
});
