import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DiskDef, DomainDef } from '../../src/domain/types.js';
import { buildQemuCommand, type QemuLaunchOptions } from '../../src/qemu/command-line.js';
import { QemuProcess, QemuStartError } from '../../src/qemu/process.js';
import { isProcessAlive, readProcStat } from '../../src/qemu/proc-stat.js';
import { readStatusFile, statusFilePath, writeStatusFile } from '../../src/qemu/status-file.js';

const GUEST_KERNEL = resolve('guest/build/guest.elf');

let dir: string;
let hostileDir: string;
let qcow2Path: string;
let rawPath: string;
const running: QemuProcess[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-e2e-'));
  hostileDir = join(dir, `h,o=s"t 'x`);
  mkdirSync(hostileDir);
  qcow2Path = join(hostileDir, `a,b=c"d'e ,file.driver=nbd.qcow2`);
  rawPath = join(hostileDir, `r,aw=1,format=qcow2.img`);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', qcow2Path, '16M']);
  execFileSync('qemu-img', ['create', '-q', '-f', 'raw', rawPath, '4M']);
});

afterEach(async () => {
  // Never leave a QEMU behind, whatever a test did.
  for (const q of running.splice(0)) {
    if (!q.exitReason) await q.kill({ graceful: false, killTimeoutMs: 5000 }).catch(() => undefined);
  }
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function domain(over: Partial<DomainDef> = {}): DomainDef {
  return {
    type: 'qemu',
    name: 'e2e,guest',
    uuid: '4dea22b3-1d52-d8f3-2516-782e98ab3fa0',
    memoryKiB: 65536,
    currentMemoryKiB: 65536,
    vcpus: 1,
    os: { type: 'hvm' },
    features: ['acpi'],
    onPoweroff: 'destroy',
    onReboot: 'restart',
    onCrash: 'destroy',
    disks: [],
    serials: [],
    consoles: [],
    interfaces: [],
    ...over,
  };
}

function disk(over: Partial<DiskDef>): DiskDef {
  return { device: 'disk', type: 'file', format: 'qcow2', targetDev: 'vda', targetBus: 'virtio', readonly: false, shareable: false, ...over };
}

function launchOpts(tag: string, over: Partial<QemuLaunchOptions> = {}): QemuLaunchOptions {
  return {
    accel: 'tcg',
    // Unix socket paths are limited to 108 bytes: keep this one short (but still with a comma).
    qmpSocketPath: join(dir, `${tag},q.sock`),
    serialLogPath: join(hostileDir, `${tag},serial=log.txt`),
    runDir: dir,
    paused: true,
    ...over,
  };
}

async function start(def: DomainDef, opts: QemuLaunchOptions): Promise<QemuProcess> {
  const cmd = buildQemuCommand(def, opts);
  const q = await QemuProcess.start({
    binary: cmd.binary,
    args: cmd.args,
    qmpSocketPath: opts.qmpSocketPath,
    logPath: join(dir, 'qemu.log'),
    name: def.name,
  });
  running.push(q);
  return q;
}

interface BlockNode {
  'node-name': string;
  file: string;
  drv: string;
  ro: boolean;
  image: { filename: string };
}

describe('QemuProcess with the real QEMU', () => {
  it('opens exactly the hostile paths, runs, pauses and is destroyed', async () => {
    const serialFile = join(hostileDir, `ser,ial=x'".out`);
    const def = domain({
      disks: [
        disk({ sourcePath: qcow2Path, cache: 'writethrough', errorPolicy: 'stop' }),
        disk({ targetDev: 'sdb', targetBus: 'scsi', format: 'raw', sourcePath: rawPath, readonly: true }),
      ],
      serials: [{ element: 'serial', type: 'file', path: serialFile, targetPort: 0 }],
      interfaces: [{ type: 'user', mac: '52:54:00:12:34:99', model: 'virtio' }],
    });
    const opts = launchOpts('a');
    const q = await start(def, opts);
    console.log(`QEMU start-to-QMP-ready: ${q.startupMs} ms`);
    expect(q.isChild).toBe(true);

    // Detached: its own session, so it outlives ferryd's process group.
    const stat = readFileSync(`/proc/${q.pid}/stat`, 'utf8');
    const session = Number(stat.slice(stat.lastIndexOf(')') + 1).trim().split(/\s+/)[3]);
    expect(session).toBe(q.pid);

    const nodes = await q.qmp.execute<BlockNode[]>('query-named-block-nodes', { flat: true });
    const byName = new Map(nodes.map((n) => [n['node-name'], n]));
    expect(byName.get('drive-vda')?.file).toBe(qcow2Path);
    expect(byName.get('drive-vda')?.drv).toBe('file');
    expect(byName.get('fmt-vda')?.drv).toBe('qcow2');
    expect(byName.get('fmt-vda')?.image.filename).toBe(qcow2Path);
    expect(byName.get('drive-sdb')?.file).toBe(rawPath);
    expect(byName.get('fmt-sdb')?.drv).toBe('raw');
    expect(byName.get('fmt-sdb')?.ro).toBe(true);
    expect([...byName.keys()].sort()).toEqual(['drive-sdb', 'drive-vda', 'fmt-sdb', 'fmt-vda']);

    const blocks = await q.qmp.execute<Array<{ qdev?: string; inserted?: { file: string } }>>('query-block');
    const vda = blocks.find((b) => b.qdev?.includes('disk-vda'));
    expect(vda?.inserted?.file).toBe(qcow2Path);

    const chardevs = await q.qmp.execute<Array<{ label: string; filename: string }>>('query-chardev');
    expect(chardevs.map((c) => c.label).sort()).toEqual(['charmonitor', 'charserial0']);
    expect(existsSync(serialFile)).toBe(true);
    expect(existsSync(opts.serialLogPath)).toBe(true);

    const name = await q.qmp.execute<{ name: string }>('query-name');
    expect(name.name).toBe('e2e,guest');

    expect(await q.qmp.execute('query-status')).toMatchObject({ running: false, status: 'prelaunch' });
    await q.qmp.execute('cont');
    expect(await q.qmp.execute('query-status')).toMatchObject({ running: true, status: 'running' });
    await q.qmp.execute('stop');
    expect(await q.qmp.execute('query-status')).toMatchObject({ running: false, status: 'paused' });

    const t0 = performance.now();
    const reason = await q.kill();
    console.log(`graceful kill (quit) to exit detected: ${Math.round(performance.now() - t0)} ms`);
    expect(reason).toEqual({ kind: 'destroyed' });
    await expect(q.exited).resolves.toEqual({ kind: 'destroyed' });
    expect(q.qmp.closed).toBe(true);
    expect(await isProcessAlive(q.pid, q.startTime)).toBe(false);
  });

  it('reports a start-up failure with QEMU’s own message', async () => {
    const missing = join(hostileDir, 'no,such=disk.qcow2');
    const def = domain({ disks: [disk({ sourcePath: missing })] });
    const opts = launchOpts('b');
    const cmd = buildQemuCommand(def, opts);
    const err = await QemuProcess.start({
      binary: cmd.binary,
      args: cmd.args,
      qmpSocketPath: opts.qmpSocketPath,
      logPath: join(dir, 'qemu-fail.log'),
      name: def.name,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(QemuStartError);
    const e = err as QemuStartError;
    expect(e.code).toBe('operation_failed');
    expect(e.reason.kind).toBe('failed-to-start');
    expect(e.message).toContain(missing);
    expect(e.message).toMatch(/No such file or directory/);
    // The log holds the command line header and QEMU's message.
    expect(readFileSync(join(dir, 'qemu-fail.log'), 'utf8')).toContain('starting QEMU');
  });

  it('re-attaches from the status file after the handle is dropped, then sees quit', async () => {
    const def = domain({ disks: [disk({ sourcePath: qcow2Path })] });
    const opts = launchOpts('c');
    const q1 = await start(def, opts);
    const statusPath = statusFilePath(dir, def.uuid);
    await writeStatusFile(statusPath, {
      version: 1,
      name: def.name,
      uuid: def.uuid,
      pid: q1.pid,
      pidStartTime: q1.startTime,
      qmpSocket: opts.qmpSocketPath,
      serialLog: opts.serialLogPath,
      accel: 'tcg',
      startedAt: new Date().toISOString(),
      state: 'paused',
    });

    // "ferryd restarts": the old handle lets go without stopping QEMU.
    q1.detach();
    running.splice(running.indexOf(q1), 1);
    expect(q1.qmp.closed).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    expect(await isProcessAlive(q1.pid, q1.startTime)).toBe(true);

    const q2 = await QemuProcess.attach(await readStatusFile(statusPath), { pollIntervalMs: 500 });
    running.push(q2);
    expect(q2.isChild).toBe(false);
    expect(q2.pid).toBe(q1.pid);
    expect(await q2.qmp.execute('query-status')).toMatchObject({ status: 'prelaunch' });
    const nodes = await q2.qmp.execute<BlockNode[]>('query-named-block-nodes', { flat: true });
    expect(nodes.find((n) => n['node-name'] === 'drive-vda')?.file).toBe(qcow2Path);

    const t0 = performance.now();
    await q2.qmp.execute('quit').catch(() => undefined);
    const reason = await q2.exited;
    console.log(`re-attached quit to exit detected: ${Math.round(performance.now() - t0)} ms`);
    expect(reason).toEqual({ kind: 'shutdown', guest: false, reason: 'host-qmp-quit' });
  });

  it('refuses to attach to a pid whose start time does not match', async () => {
    const st = await readProcStat(process.pid);
    await expect(
      QemuProcess.attach({ name: 'x', pid: process.pid, pidStartTime: (st?.startTime ?? 0) + 1, qmpSocket: join(dir, 'none.sock') }),
    ).rejects.toMatchObject({ code: 'no_domain' });
  });

  it('detects the exit of an orphaned QEMU (not our child) killed from outside', async () => {
    const def = domain();
    const opts = launchOpts('d');
    const cmd = buildQemuCommand(def, opts);
    // A separate "old ferryd" starts QEMU detached and exits, so PID 1 adopts it.
    const helper = `
      const { spawn } = require('node:child_process');
      const fs = require('node:fs');
      const [bin, args, log, sock] = JSON.parse(process.argv[1]);
      const fd = fs.openSync(log, 'a');
      const c = spawn(bin, args, { detached: true, stdio: ['ignore', fd, fd] });
      c.unref();
      const t = setInterval(() => { if (fs.existsSync(sock)) { clearInterval(t); console.log(c.pid); process.exit(0); } }, 20);
      setTimeout(() => process.exit(1), 20000);
    `;
    const out = await new Promise<string>((res, rej) => {
      const h = spawn(process.execPath, ['-e', helper, JSON.stringify([cmd.binary, cmd.args, join(dir, 'qemu-orphan.log'), opts.qmpSocketPath])]);
      let s = '';
      h.stdout.on('data', (d: Buffer) => (s += d.toString()));
      h.on('exit', (code) => (code === 0 ? res(s) : rej(new Error(`helper exited ${code}`))));
    });
    const pid = Number(out.trim());
    const st = await readProcStat(pid);
    expect(st).toBeDefined();
    const q = await QemuProcess.attach({ name: def.name, pid, pidStartTime: st?.startTime ?? 0, qmpSocket: opts.qmpSocketPath });
    running.push(q);
    expect(await q.qmp.execute('query-status')).toMatchObject({ running: false });

    const t0 = performance.now();
    process.kill(pid, 'SIGKILL');
    const reason = await q.exited;
    const ms = Math.round(performance.now() - t0);
    console.log(`orphan SIGKILL to exit detected: ${ms} ms`);
    expect(reason).toEqual({ kind: 'crashed', code: null, signal: null });
    // Far sooner than PID 1 gets round to reaping: the zombie counts as gone.
    expect(ms).toBeLessThan(3000);
  });

  it('reports a crash of its own child with the signal', async () => {
    const q = await start(domain(), launchOpts('e'));
    process.kill(q.pid, 'SIGKILL');
    expect(await q.exited).toEqual({ kind: 'crashed', code: null, signal: 'SIGKILL' });
  });

  it.skipIf(!existsSync(GUEST_KERNEL))('boots the test kernel, logs its serial output, and reports a guest power-off', async () => {
    const kernel = join(hostileDir, 'k,ernel=1.elf');
    copyFileSync(GUEST_KERNEL, kernel);
    const def = domain({
      os: { type: 'hvm', kernel, cmdline: 'ws=1 rate=0 hb=100' },
      serials: [{ element: 'serial', type: 'null', targetPort: 0 }],
    });
    const opts = launchOpts('f', { paused: false });
    const q = await start(def, opts);
    // Wait for a heartbeat in ferryd's serial log copy (the port itself is 'null').
    const deadline = Date.now() + 60_000;
    let log = '';
    while (Date.now() < deadline) {
      log = existsSync(opts.serialLogPath) ? readFileSync(opts.serialLogPath, 'utf8') : '';
      if (/FERRY-GUEST ready/.test(log) && /(^|\n)HB /.test(log)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(log).toMatch(/(^|\n)HB /);
    await q.qmp.execute('system_powerdown');
    const reason = await q.exited;
    expect(reason).toMatchObject({ kind: 'shutdown', guest: true });
  });
});
