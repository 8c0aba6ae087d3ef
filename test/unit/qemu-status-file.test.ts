import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FerryError } from '../../src/errors/index.js';

const G1_UUID = '4dea22b3-1d52-d8f3-2516-782e98ab3fa0';
import { parseProcStat } from '../../src/qemu/proc-stat.js';
import {
  readAllStatusFiles,
  readStatusFile,
  removeStatusFile,
  statusFilePath,
  writeStatusFile,
  type QemuStatus,
} from '../../src/qemu/status-file.js';
import { rejection } from '../support/refusal.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-status-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function status(over: Partial<QemuStatus> = {}): QemuStatus {
  return {
    version: 1,
    name: 'g1',
    uuid: '4dea22b3-1d52-d8f3-2516-782e98ab3fa0',
    pid: 4242,
    pidStartTime: 123456,
    qmpSocket: '/run/ferry/g1/qmp.sock',
    serialLog: '/var/log/ferry/g1.serial.log',
    accel: 'tcg',
    startedAt: '2025-01-01T00:00:00.000Z',
    ...over,
  };
}

/** The code of the FerryError `p` rejects with. */
const codeOf = async (p: Promise<unknown>): Promise<string> => (await rejection(p)).code;

describe('status file', () => {
  it('round-trips every field, including the optional and extra ones', async () => {
    const s = status({
      stderrLog: '/var/log/ferry/g1.log',
      binary: '/usr/bin/qemu-system-x86_64',
      liveXml: '<domain type="qemu"><name>g1</name></domain>',
      state: 'running',
      extra: { migration: { id: 3 }, note: 'x' },
    });
    const path = statusFilePath(dir, G1_UUID);
    await writeStatusFile(path, s);
    expect(await readStatusFile(path)).toEqual(s);
    // No temp files left behind.
    expect(readdirSync(dir)).toEqual([`${G1_UUID}.status.json`]);
  });

  it('replaces an existing file whole', async () => {
    const path = statusFilePath(dir, G1_UUID);
    await writeStatusFile(path, status({ liveXml: 'x'.repeat(10000) }));
    await writeStatusFile(path, status({ state: 'paused' }));
    const s = await readStatusFile(path);
    expect(s.state).toBe('paused');
    expect(s.liveXml).toBeUndefined();
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual(status({ state: 'paused' }));
  });

  it('refuses to write a malformed status', async () => {
    const path = statusFilePath(dir, G1_UUID);
    expect(await codeOf(writeStatusFile(path, status({ pid: -1 })))).toBe('invalid_arg');
    expect(await codeOf(writeStatusFile(path, { ...status(), accel: 'hvf' as 'kvm' }))).toBe('invalid_arg');
  });

  it('reports missing, corrupt, invalid and newer files distinctly', async () => {
    const path = join(dir, 'x.status.json');
    expect(await codeOf(readStatusFile(path))).toBe('no_domain');
    writeFileSync(path, '{"version":1,');
    expect(await codeOf(readStatusFile(path))).toBe('operation_failed');
    writeFileSync(path, JSON.stringify({ ...status(), qmpSocket: 7 }));
    expect(await codeOf(readStatusFile(path))).toBe('operation_failed');
    writeFileSync(path, JSON.stringify({ ...status(), startedAt: 'yesterday' }));
    expect(await codeOf(readStatusFile(path))).toBe('operation_failed');
    writeFileSync(path, JSON.stringify({ ...status(), extra: [1] }));
    expect(await codeOf(readStatusFile(path))).toBe('operation_failed');
    writeFileSync(path, JSON.stringify({ ...status(), version: 2 }));
    expect(await codeOf(readStatusFile(path))).toBe('config_unsupported');
  });

  it('removes files and tolerates one already gone', async () => {
    const path = statusFilePath(dir, G1_UUID);
    await writeStatusFile(path, status());
    await removeStatusFile(path);
    await removeStatusFile(path);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('keeps the state of the last write requested when writes overlap (a slow earlier write cannot land last)', async () => {
    const path = statusFilePath(dir, G1_UUID);
    // The first write is large, so it takes longer than the second on its own.
    const slow = writeStatusFile(path, status({ state: 'running:booted', liveXml: `<domain>${'x'.repeat(32 * 1024 * 1024)}</domain>` }));
    const fast = writeStatusFile(path, status({ state: 'paused:user' }));
    await Promise.all([slow, fast]);
    expect((await readStatusFile(path)).state).toBe('paused:user');
    expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('removes the file for good when the removal is requested after a write still in flight', async () => {
    const path = statusFilePath(dir, G1_UUID);
    const write = writeStatusFile(path, status({ liveXml: `<domain>${'x'.repeat(32 * 1024 * 1024)}</domain>` }));
    const removal = removeStatusFile(path);
    await Promise.all([write, removal]);
    expect(await codeOf(readStatusFile(path))).toBe('no_domain');
  });

  it('a failed write does not stop the ones requested after it', async () => {
    const path = statusFilePath(dir, G1_UUID);
    const bad = writeStatusFile(path, status({ pid: 0 }));
    const good = writeStatusFile(path, status({ state: 'running:booted' }));
    expect(await codeOf(bad)).toBe('invalid_arg');
    await good;
    expect((await readStatusFile(path)).state).toBe('running:booted');
  });

  it('names the file by domain UUID and refuses anything else', () => {
    expect(statusFilePath('/run', G1_UUID)).toBe(`/run/${G1_UUID}.status.json`);
    expect(() => statusFilePath('/run', 'a/../../etc')).toThrow(FerryError);
    expect(() => statusFilePath('/run', '.hidden')).toThrow(/not a domain UUID/);
  });

  it('reads all status files, reporting bad ones without failing the rest', async () => {
    await writeStatusFile(statusFilePath(dir, '00000000-0000-4000-8000-00000000000a'), status({ name: 'a' }));
    await writeStatusFile(statusFilePath(dir, '00000000-0000-4000-8000-00000000000b'), status({ name: 'b' }));
    writeFileSync(join(dir, '00000000-0000-4000-8000-00000000000c.status.json'), 'garbage');
    writeFileSync(join(dir, 'qmp.sock'), '');
    const all = await readAllStatusFiles(dir);
    expect(all.map((e) => ('status' in e ? e.status.name : `error:${e.error.code}`))).toEqual(['a', 'b', 'error:operation_failed']);
    expect(await readAllStatusFiles(join(dir, 'missing'))).toEqual([]);
  });
});

describe('parseProcStat', () => {
  it('finds state and start time after a command name with spaces and parens', () => {
    const fields = ['S', ...Array.from({ length: 18 }, (_, i) => String(i + 4)), '987654', '0', '0'];
    expect(parseProcStat(`1234 (qemu (x) y) ${fields.join(' ')}\n`)).toMatchObject({ state: 'S', startTime: 987654, utime: 14, stime: 15 });
  });

  it('reads our own /proc entry', () => {
    const st = parseProcStat(readFileSync(`/proc/${process.pid}/stat`, 'utf8'));
    expect(st?.state).toMatch(/^[RS]$/);
    expect(st?.startTime).toBeGreaterThan(0);
  });

  it('rejects garbage', () => {
    expect(parseProcStat('nonsense')).toBeUndefined();
    expect(parseProcStat('1 (x) S 1 2')).toBeUndefined();
  });
});
