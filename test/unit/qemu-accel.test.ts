import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FerryError } from '../../src/errors/index.js';
import { checkKvmDevice, resolveAccel, type AccelProbeOptions, type ProbeRun } from '../../src/qemu/accel.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-accel-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const kvmOk = async (): Promise<undefined> => undefined;
const kvmMissing = async (p: string): Promise<string> => `${p} does not exist`;

/** A probe that answers from a table and counts runs. */
function fakeProbe(table: Record<'kvm' | 'tcg', ProbeRun>): { runs: string[]; probe: AccelProbeOptions['runProbe'] } {
  const runs: string[] = [];
  return {
    runs,
    probe: async (accel) => {
      runs.push(accel);
      return table[accel];
    },
  };
}

const base = (): AccelProbeOptions => ({ binary: '/usr/bin/qemu-system-x86_64' });

describe('resolveAccel', () => {
  it('honours tcg without looking at anything', async () => {
    const d = await resolveAccel('tcg', { ...base(), checkKvmDevice: kvmMissing });
    expect(d.accel).toBe('tcg');
  });

  it('refuses forced kvm without /dev/kvm, accepts it with one, without probing', async () => {
    await expect(resolveAccel('kvm', { ...base(), checkKvmDevice: kvmMissing })).rejects.toSatisfy(
      (e: unknown) => e instanceof FerryError && e.code === 'config_unsupported',
    );
    const f = fakeProbe({ kvm: { ok: false, ms: 1, detail: '' }, tcg: { ok: true, ms: 1, detail: '' } });
    expect((await resolveAccel('kvm', { ...base(), checkKvmDevice: kvmOk, runProbe: f.probe })).accel).toBe('kvm');
    expect(f.runs).toEqual([]);
  });

  it('auto: TCG without /dev/kvm, no probe', async () => {
    const f = fakeProbe({ kvm: { ok: true, ms: 1, detail: '' }, tcg: { ok: true, ms: 1, detail: '' } });
    const d = await resolveAccel('auto', { ...base(), checkKvmDevice: kvmMissing, runProbe: f.probe });
    expect(d).toMatchObject({ accel: 'tcg' });
    expect(d.reason).toContain('does not exist');
    expect(f.runs).toEqual([]);
  });

  it('auto: KVM when the probe runs about as fast as under TCG', async () => {
    const f = fakeProbe({ kvm: { ok: true, ms: 180, detail: '' }, tcg: { ok: true, ms: 400, detail: '' } });
    const d = await resolveAccel('auto', { ...base(), checkKvmDevice: kvmOk, runProbe: f.probe });
    expect(d).toMatchObject({ accel: 'kvm', kvmMs: 180, tcgMs: 400 });
    expect(f.runs).toEqual(['kvm', 'tcg']);
  });

  it('auto: TCG when the KVM probe misses its deadline, without a TCG run', async () => {
    const f = fakeProbe({ kvm: { ok: false, ms: 5000, detail: 'no result within 5000 ms' }, tcg: { ok: true, ms: 400, detail: '' } });
    const d = await resolveAccel('auto', { ...base(), checkKvmDevice: kvmOk, runProbe: f.probe });
    expect(d.accel).toBe('tcg');
    expect(d.reason).toContain('no result within 5000 ms');
    expect(f.runs).toEqual(['kvm']);
  });

  it('auto: TCG when KVM finishes but clearly slower than TCG', async () => {
    const f = fakeProbe({ kvm: { ok: true, ms: 3000, detail: '' }, tcg: { ok: true, ms: 400, detail: '' } });
    const d = await resolveAccel('auto', { ...base(), checkKvmDevice: kvmOk, runProbe: f.probe });
    expect(d).toMatchObject({ accel: 'tcg', kvmMs: 3000, tcgMs: 400 });
  });

  it('caches the decision, keyed and aged', async () => {
    const cacheFile = join(dir, 'accel.json');
    let t = 1_000_000;
    const f = fakeProbe({ kvm: { ok: true, ms: 100, detail: '' }, tcg: { ok: true, ms: 300, detail: '' } });
    const opts: AccelProbeOptions = { ...base(), checkKvmDevice: kvmOk, runProbe: f.probe, cacheFile, now: () => t, cacheMaxAgeMs: 1000 };
    expect((await resolveAccel('auto', opts)).cached).toBeUndefined();
    expect(JSON.parse(readFileSync(cacheFile, 'utf8'))).toMatchObject({ version: 1, accel: 'kvm', decidedAt: 1_000_000 });
    t += 500;
    expect(await resolveAccel('auto', opts)).toMatchObject({ accel: 'kvm', cached: true, kvmMs: 100 });
    expect(f.runs).toEqual(['kvm', 'tcg']);
    t += 1000;
    expect((await resolveAccel('auto', opts)).cached).toBeUndefined();
    expect(f.runs).toEqual(['kvm', 'tcg', 'kvm', 'tcg']);
    // A different binary is a different key.
    expect((await resolveAccel('auto', { ...opts, binary: '/bin/sh' })).cached).toBeUndefined();
    // A vanished /dev/kvm overrides the cache.
    expect((await resolveAccel('auto', { ...opts, checkKvmDevice: kvmMissing })).accel).toBe('tcg');
  });

  it('checkKvmDevice explains a missing device', async () => {
    expect(await checkKvmDevice(join(dir, 'kvm'))).toContain('does not exist');
  });
});
