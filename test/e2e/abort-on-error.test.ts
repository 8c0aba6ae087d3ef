/**
 * ABORT_ON_ERROR with a real disk error: the test guest writes to an IDE
 * disk whose image lives on a tiny tmpfs; filling the tmpfs makes QEMU
 * pause the guest with ENOSPC (error_policy='stop').
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ferry, ferryOk, makeTempDir, startDaemon, useDaemonCleanup, waitFor, type FerrydHandle } from '../support/daemon.js';
import { serialLogFile, waitForHeartbeat, writeGuestXml } from '../support/guest-xml.js';

useDaemonCleanup();

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('ABORT_ON_ERROR and I/O-error pauses', () => {
  let dir: string;
  let mnt: string;
  let a: FerrydHandle;
  let b: FerrydHandle;

  beforeAll(() => {
    dir = makeTempDir('ferry-aoe-');
    mnt = join(dir, 'small');
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
  });
  afterAll(() => {
    try {
      execFileSync('umount', ['-l', mnt]);
    } catch {
      // Already unmounted.
    }
    rmSync(dir, { recursive: true, force: true });
  });

  /** A guest writing `rate` sectors/s to a sparse 64 MiB image on the small tmpfs. */
  async function startWriter(name: string): Promise<void> {
    a = await startDaemon({ hostName: 'aoe-a', listenTcp: '127.0.0.1:0' });
    b = await startDaemon({ hostName: 'aoe-b', listenTcp: '127.0.0.1:0' });
    const image = join(mnt, `${name}.raw`);
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', image, '64M']);
    const disk = `    <disk type='file' device='disk'><driver name='qemu' type='raw' cache='writeback' error_policy='stop'/><source file='${image}'/><target dev='hda' bus='ide'/></disk>`;
    await ferryOk(['create', writeGuestXml(dir, { name, cmdline: 'ws=32 rate=5 hb=200 disk=200', extraDevices: disk })], { uri: a.uri });
    await waitForHeartbeat(a.uri, name, (log) => (log.lastHeartbeat?.diskWrites ?? 0) > 0, 30_000);
  }

  function fillDisk(): void {
    // fallocate fails once the tmpfs is full; the file then takes what was left.
    try {
      execFileSync('fallocate', ['-l', '8M', join(mnt, 'filler')]);
    } catch {
      execFileSync('sh', ['-c', `dd if=/dev/zero of=${join(mnt, 'filler')} bs=64k 2>/dev/null || true`]);
    }
  }

  function freeDisk(): void {
    rmSync(join(mnt, 'filler'), { force: true });
  }

  it('a guest paused by a disk I/O error cannot start migrating', async () => {
    await startWriter('aoe1');
    fillDisk();
    try {
      await waitFor('paused (I/O error)', async () => (await ferry(['domstate', '--reason', 'aoe1'], { uri: a.uri })).stdout.includes('paused (I/O error)'), 20_000);
      const r = await ferry(['migrate', '--live', '--p2p', '--unsafe', 'aoe1', `ferry+tcp://127.0.0.1:${b.tcpPort}/system`], { uri: a.uri, json: true });
      expect(r.code).toBe(1);
      expect(r.json?.error?.code).toBe('operation_invalid');
      expect(r.json?.error?.message).toMatch(/I\/O error/);
      expect((await ferry(['list', '--all', '--name'], { uri: b.uri })).stdout.trim()).toBe('');
    } finally {
      freeDisk();
    }
    // Freed space, resumed: the guest carries on where it stopped.
    const before = serialLogFile(a.stateDir, 'aoe1').log.lastHeartbeat!.counter;
    await ferryOk(['resume', 'aoe1'], { uri: a.uri });
    await waitForHeartbeat(a.uri, 'aoe1', (log) => (log.lastHeartbeat?.counter ?? 0) > before + 2, 20_000);
    const log = serialLogFile(a.stateDir, 'aoe1').log;
    expect(log.corrupt).toBe(false);
  });

  it('with --abort-on-error, an I/O error during the migration cancels it and the source keeps the guest', async () => {
    await startWriter('aoe2');
    // Slow enough that the error lands mid-copy.
    const dest = `ferry+tcp://127.0.0.1:${b.tcpPort}/system`;
    const migration = ferry(['migrate', '--live', '--p2p', '--unsafe', '--abort-on-error', '--bandwidth', '4', 'aoe2', dest], { uri: a.uri, json: true, timeoutMs: 120_000 });
    await waitFor(
      'the migration to be copying',
      async () => {
        const r = await ferry(['domjobinfo', 'aoe2'], { uri: a.uri, json: true });
        return (r.json?.data_processed ?? 0) > 1024 * 1024;
      },
      30_000,
      200,
    );
    fillDisk();
    const r = await migration;
    freeDisk();
    expect(r.code).toBe(1);
    expect(r.json?.error?.code).toBe('operation_aborted');
    expect(r.json?.error?.message).toMatch(/abort-on-error|I\/O error/);
    // Exactly one copy: nothing on B, the guest on A, which runs again once the disk has room.
    expect((await ferry(['list', '--all', '--name'], { uri: b.uri })).stdout.trim()).toBe('');
    const st = (await ferry(['domstate', '--reason', 'aoe2'], { uri: a.uri })).stdout.trim();
    if (st.startsWith('paused')) await ferryOk(['resume', 'aoe2'], { uri: a.uri });
    const before = serialLogFile(a.stateDir, 'aoe2').log.lastHeartbeat!.counter;
    await waitForHeartbeat(a.uri, 'aoe2', (log) => (log.lastHeartbeat?.counter ?? 0) > before + 2, 20_000);
    expect(serialLogFile(a.stateDir, 'aoe2').log.corrupt).toBe(false);
    const done = await ferry(['domjobinfo', '--completed', 'aoe2'], { uri: a.uri, json: true });
    expect(['Cancelled', 'Failed']).toContain(done.json?.type);
  });
});
