import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmod, mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkReason, Maintenance, MAINTENANCE_FILE, maintenanceRefusal, parseMaintenanceFile } from '../../src/host/maintenance.js';
import { expectRefused, rejection } from '../support/refusal.js';

let dir: string;
let logs: string[];
const log = (m: string) => logs.push(m);

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-maint-'));
  logs = [];
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('Maintenance', () => {
  it('starts out of maintenance when there is no state file', async () => {
    const m = new Maintenance(dir, 'hostA', log);
    expect(await m.load()).toEqual({ enabled: false, since: null, reason: null });
    expect(() => m.refuse({ kind: 'start', domain: 'web1' })).not.toThrow();
  });

  it('persists enable and reloads it in a new instance (a restarted ferryd)', async () => {
    const m = new Maintenance(dir, 'hostA', log);
    await m.load();
    const on = await m.enable('kernel update');
    expect(on).toMatchObject({ enabled: true, reason: 'kernel update' });
    expect(Date.parse(on.since!)).not.toBeNaN();
    const again = new Maintenance(dir, 'hostA', log);
    expect(await again.load()).toEqual(on);
    expect(JSON.parse(await readFile(join(dir, MAINTENANCE_FILE), 'utf8'))).toMatchObject({ version: 1, enabled: true, reason: 'kernel update' });
  });

  it('keeps the first since on a repeated enable and takes a new reason; disable persists too', async () => {
    const m = new Maintenance(dir, 'hostA', log);
    const first = await m.enable('disk swap');
    const second = await m.enable('disk swap and BIOS');
    expect(second.since).toBe(first.since);
    expect(second.reason).toBe('disk swap and BIOS');
    expect((await m.enable()).reason).toBe('disk swap and BIOS');
    expect(await m.disable()).toEqual({ enabled: false, since: null, reason: null });
    const again = new Maintenance(dir, 'hostA', log);
    expect((await again.load()).enabled).toBe(false);
  });

  it('refuses starts, creates and incoming migrations while on, naming the host, since, reason and the way out', async () => {
    const m = new Maintenance(dir, 'hostA', log);
    const s = await m.enable('kernel update');
    expectRefused(() => m.refuse({ kind: 'start', domain: 'web1' }), 'operation_invalid', "cannot start domain 'web1' on host 'hostA'", `since ${s.since}`, 'kernel update', 'ferry maintenance disable');
    expectRefused(() => m.refuse({ kind: 'create', domain: 'web2' }), 'operation_invalid', "cannot create domain 'web2'");
    expectRefused(() => m.refuse({ kind: 'incoming', domain: 'web3' }), 'operation_invalid', "cannot migrate domain 'web3' to host 'hostA'");
    await m.disable();
    expect(() => m.refuse({ kind: 'start', domain: 'web1' })).not.toThrow();
  });

  it('reads a damaged file as in maintenance, says so, and lets enable or disable rewrite it', async () => {
    await writeFile(join(dir, MAINTENANCE_FILE), '{"version":1,"enab');
    const m = new Maintenance(dir, 'hostA', log);
    const s = await m.load();
    expect(s.enabled).toBe(true);
    expect(s.problem).toContain('is damaged');
    expect(s.problem).toContain('ferry maintenance disable');
    expect(logs.some((l) => l.startsWith('WARNING:') && l.includes(MAINTENANCE_FILE))).toBe(true);
    expectRefused(() => m.refuse({ kind: 'start', domain: 'web1' }), 'operation_invalid', 'maintenance state unreadable');
    // The file is left as it was for the operator to look at, until a command rewrites it.
    expect(await readFile(join(dir, MAINTENANCE_FILE), 'utf8')).toBe('{"version":1,"enab');
    const enabled = await m.enable('after repair');
    expect(enabled.problem).toBeUndefined();
    expect(enabled.reason).toBe('after repair');
    expect(Date.parse(enabled.since!)).not.toBeNaN();
    expect((await m.disable()).enabled).toBe(false);
    expect(await new Maintenance(dir, 'hostA', log).load()).toEqual({ enabled: false, since: null, reason: null });
  });

  it('reads a file of another version, and one that cannot be read, as in maintenance', async () => {
    await writeFile(join(dir, MAINTENANCE_FILE), JSON.stringify({ version: 2, enabled: false }));
    expect(await new Maintenance(dir, 'hostA', log).load()).toMatchObject({ enabled: true, problem: expect.stringContaining('version 2') });
    await rm(join(dir, MAINTENANCE_FILE));
    await mkdir(join(dir, MAINTENANCE_FILE)); // EISDIR on read
    expect(await new Maintenance(dir, 'hostA', log).load()).toMatchObject({ enabled: true, problem: expect.stringContaining('cannot be read') });
  });

  it('stays as it was when the state cannot be written', async () => {
    if (process.getuid?.() === 0) {
      // root writes through permissions: make the state dir a file's child instead.
      const m = new Maintenance(join(dir, 'file-not-dir'), 'hostA', log);
      await writeFile(join(dir, 'file-not-dir'), 'x');
      const err = await rejection(m.enable('x'));
      expect(err.code).toBe('write_failed');
      expect(m.enabled).toBe(false);
      return;
    }
    await chmod(dir, 0o500);
    const m = new Maintenance(dir, 'hostA', log);
    expect((await rejection(m.enable('x'))).code).toBe('write_failed');
    expect(m.enabled).toBe(false);
  });

  it('tells of each change that enable and disable make, and of nothing else', async () => {
    const changes: boolean[] = [];
    const m = new Maintenance(dir, 'hostA', log, (st) => changes.push(st.enabled));
    await m.disable();
    await m.enable('a');
    await m.enable('a');
    await m.enable('b');
    await m.disable();
    expect(changes).toEqual([true, true, false]);
  });

  it('refuses a reason that is not text, too long, or has control characters', async () => {
    const m = new Maintenance(dir, 'hostA', log);
    expect((await rejection(m.enable(42))).code).toBe('invalid_arg');
    expect((await rejection(m.enable('x'.repeat(1025)))).code).toBe('invalid_arg');
    expect((await rejection(m.enable('two\nlines'))).code).toBe('invalid_arg');
    expect(m.enabled).toBe(false);
    expect(checkReason('  spaced  ')).toBe('spaced');
    expect(checkReason('')).toBeNull();
  });
});

describe('parseMaintenanceFile and maintenanceRefusal', () => {
  it('refuses shapes it does not know', () => {
    expect(() => parseMaintenanceFile('[]')).toThrow(/version/);
    expect(() => parseMaintenanceFile('{"version":1,"enabled":"yes"}')).toThrow(/enabled/);
    expect(() => parseMaintenanceFile('{"version":1,"enabled":true,"since":"soon","reason":null}')).toThrow(/since/);
    expect(parseMaintenanceFile('{"version":1,"enabled":false,"since":"x"}')).toEqual({ enabled: false, since: null, reason: null });
  });

  it('shows control characters in a name escaped', () => {
    const e = maintenanceRefusal('host\u001b', { enabled: true, since: '2026-12-04T19:00:00.000Z', reason: null }, { kind: 'start', domain: 'a\nb' });
    expect(e.message).not.toMatch(/[\n\u001b]/);
    expect(e.message).not.toContain('reason:');
  });
});
