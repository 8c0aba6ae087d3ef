/**
 * Dirty-rate measurement and domain statistics without QEMU: the checks
 * made before QEMU is asked (period, mode, state, dirty-ring under TCG),
 * QEMU's `query-dirty-rate` answer read into libvirt's `dirtyrate.*` fields
 * and types, libvirt's group bits and mode flags, and virsh's `domstats`
 * text. Numbers are libvirt's (`libvirt-domain.h`), written out here.
 */
import { describe, expect, it } from 'vitest';
import { status } from '../../src/domain/lifecycle-state.js';
import { QmpCommandError } from '../../src/qemu/index.js';
import { checkDirtyRateMode, checkDirtyRateSeconds, DirtyRates, dirtyRateModeOfFlags, parseDirtyRateInfo } from '../../src/host/dirty-rate.js';
import { collectStats, fieldsObject } from '../../src/host/domain-stats.js';
import { HostedDomain, type DomainRuntime } from '../../src/host/hosted-domain.js';
import { DomainRegistry } from '../../src/host/registry.js';
import { statsGroupsOfBits } from '../../src/libvirt/handlers/stats.js';
import { PROCEDURES } from '../../src/libvirt/procedures.js';
import { decode, encode } from '../../src/libvirt/xdr.js';
import { renderDomainStats } from '../../src/cli/commands/domain-stats.js';
import { expectRefused, rejection } from '../support/refusal.js';

const UUID = '6a1f4f5e-2c1b-4e8e-9d1a-0c5b7e2f9a10';

/** A registry with one domain; `answers` stands in for QEMU's monitor. */
function fixture(opts: { running?: boolean; accel?: 'tcg' | 'kvm'; answers?: Record<string, unknown> } = {}) {
  const calls: Array<{ command: string; args: unknown }> = [];
  const registry = new DomainRegistry();
  const d = new HostedDomain(UUID, 'g1', null);
  registry.add(d);
  if (opts.running !== false) {
    const execute = async (command: string, args?: unknown) => {
      calls.push({ command, args });
      const a = opts.answers?.[command];
      if (a instanceof Error) throw a;
      return a ?? {};
    };
    d.runtime = { id: 3, accel: opts.accel ?? 'tcg', qemu: { qmp: { execute } } } as unknown as DomainRuntime;
    d.setStatus(status('running', 'booted'));
  }
  return { registry, d, calls, rates: new DirtyRates(registry) };
}

describe('checks before QEMU is asked', () => {
  it.each([1, 30, 60])('%i seconds is a valid period', (s) => expect(checkDirtyRateSeconds(s)).toBe(s));

  it.each([0, 61, -1, 1.5, Number.NaN, '5', undefined])('%s seconds is invalid_arg naming the range', (s) => {
    expectRefused(() => checkDirtyRateSeconds(s), 'invalid_arg', 'from 1 to 60');
  });

  it('modes: default page-sampling; unknown names listed', () => {
    expect(checkDirtyRateMode(undefined)).toBe('page-sampling');
    expect(checkDirtyRateMode('dirty-bitmap')).toBe('dirty-bitmap');
    expectRefused(() => checkDirtyRateMode('bitmap'), 'invalid_arg', 'page-sampling, dirty-bitmap, dirty-ring');
  });

  it("libvirt's flags: 0 page sampling, 1 dirty bitmap, 2 dirty ring, not both, nothing else", () => {
    expect(dirtyRateModeOfFlags(0)).toBe('page-sampling');
    expect(dirtyRateModeOfFlags(1)).toBe('dirty-bitmap');
    expect(dirtyRateModeOfFlags(2)).toBe('dirty-ring');
    expectRefused(() => dirtyRateModeOfFlags(3), 'invalid_arg', 'mutually exclusive');
    expectRefused(() => dirtyRateModeOfFlags(4), 'invalid_arg', '0x4');
  });

  it('start asks QEMU for calc-dirty-rate with calc-time and mode', async () => {
    const f = fixture();
    expect(await f.rates.start('g1', 2, undefined)).toEqual({ domain: 'g1', seconds: 2, mode: 'page-sampling' });
    expect(f.calls).toEqual([{ command: 'calc-dirty-rate', args: { 'calc-time': 2, mode: 'page-sampling' } }]);
    const kvm = fixture({ accel: 'kvm' });
    await kvm.rates.start('g1', 60, 'dirty-bitmap');
    expect(kvm.calls).toEqual([{ command: 'calc-dirty-rate', args: { 'calc-time': 60, mode: 'dirty-bitmap' } }]);
  });

  it("QEMU's refusal of a measurement already running is operation_invalid", async () => {
    const f = fixture({ answers: { 'calc-dirty-rate': new QmpCommandError('calc-dirty-rate', 'GenericError', 'the dirty rate is already being measured.') } });
    const err = await rejection(f.rates.start('g1', 1, undefined));
    expect(err.code).toBe('operation_invalid');
    expect(err.message).toContain('already running');
  });

  it('an inactive domain is operation_invalid "not running"', async () => {
    const f = fixture({ running: false });
    const err = await rejection(f.rates.start('g1', 1, undefined));
    expect(err.code).toBe('operation_invalid');
    expect(err.message).toContain('is not running');
  });

  it.each(['dirty-ring', 'dirty-bitmap'])('%s under TCG is refused before QEMU is asked (QEMU 7.2 would crash)', async (mode) => {
    const tcg = fixture();
    const err = await rejection(tcg.rates.start('g1', 1, mode));
    expect(err.code).toBe('operation_unsupported');
    expect(err.message).toMatch(/needs KVM.*TCG/);
    expect(tcg.calls).toEqual([]);
  });

  it("under KVM, QEMU's refusal of a mode is operation_unsupported", async () => {
    const kvm = fixture({ accel: 'kvm', answers: { 'calc-dirty-rate': new QmpCommandError('calc-dirty-rate', 'GenericError', 'mode dirty-ring is not enabled, use other method instead.') } });
    const refused = await rejection(kvm.rates.start('g1', 1, 'dirty-ring'));
    expect(refused.code).toBe('operation_unsupported');
  });

  it('a bad period is refused before the domain is looked up', async () => {
    const f = fixture();
    expect((await rejection(f.rates.start('no-such', 0, undefined))).code).toBe('invalid_arg');
    expect(f.calls).toEqual([]);
  });
});

describe("QEMU's answer as libvirt's dirtyrate fields", () => {
  const measured = { status: 'measured', 'start-time': 1234, 'calc-time': 1, 'sample-pages': 512, mode: 'page-sampling', 'dirty-rate': 31 };

  it('parses measured, measuring and unstarted answers', () => {
    expect(parseDirtyRateInfo(measured)).toEqual({ status: 'measured', startTime: 1234, calcTime: 1, mode: 'page-sampling', megabytesPerSecond: 31 });
    expect(parseDirtyRateInfo({ ...measured, status: 'measuring', 'dirty-rate': undefined }).megabytesPerSecond).toBeNull();
    expect(parseDirtyRateInfo({ status: 'unstarted', 'start-time': 0, 'calc-time': 0, 'sample-pages': 512, mode: 'page-sampling' }).status).toBe('unstarted');
  });

  it.each([null, {}, { ...measured, status: 'done' }, { ...measured, 'start-time': 'x' }, { ...measured, mode: 'fast' }])('refuses an answer of another shape: %j', (raw) => {
    expectRefused(() => parseDirtyRateInfo(raw), 'internal_error', 'query-dirty-rate');
  });

  it('fields, types and order as libvirt 9.0 gives them; the rate only once measured', async () => {
    const f = fixture({ answers: { 'query-dirty-rate': { ...measured, mode: 'dirty-bitmap' } } });
    const [rec] = await collectStats([f.d], ['dirtyrate', 'state'], { dirtyRates: f.rates });
    expect(rec!.fields).toEqual([
      { field: 'state.state', value: { type: 'int', value: 1 } },
      { field: 'state.reason', value: { type: 'int', value: 1 } },
      { field: 'dirtyrate.calc_status', value: { type: 'int', value: 2 } },
      { field: 'dirtyrate.calc_start_time', value: { type: 'llong', value: 1234 } },
      { field: 'dirtyrate.calc_period', value: { type: 'int', value: 1 } },
      { field: 'dirtyrate.megabytes_per_second', value: { type: 'llong', value: 31 } },
      { field: 'dirtyrate.calc_mode', value: { type: 'string', value: 'dirty-bitmap' } },
    ]);
    const measuring = fixture({ answers: { 'query-dirty-rate': { ...measured, status: 'measuring' } } });
    const [m] = await collectStats([measuring.d], ['dirtyrate'], { dirtyRates: measuring.rates });
    expect(fieldsObject(m!.fields)).toEqual({ 'dirtyrate.calc_status': 1, 'dirtyrate.calc_start_time': 1234, 'dirtyrate.calc_period': 1, 'dirtyrate.calc_mode': 'page-sampling' });
  });

  it('an inactive domain has state fields and no dirtyrate fields', async () => {
    const f = fixture({ running: false });
    f.d.setStatus(status('shutoff', 'destroyed'));
    const [rec] = await collectStats([f.d], ['state', 'dirtyrate'], { dirtyRates: f.rates });
    expect(fieldsObject(rec!.fields)).toEqual({ 'state.state': 5, 'state.reason': 2 });
    expect(f.calls).toEqual([]);
  });
});

describe("libvirt's stats bits and wire shapes", () => {
  it('0 asks for every group ferryd has; bits of other groups are left out unless ENFORCE_STATS', () => {
    expect(statsGroupsOfBits(0, 0)).toEqual(['state', 'dirtyrate']);
    expect(statsGroupsOfBits(512, 0)).toEqual(['dirtyrate']);
    expect(statsGroupsOfBits(1 | 2 | 4, 0)).toEqual(['state']);
    expect(statsGroupsOfBits(2, 0)).toEqual([]);
    expectRefused(() => statsGroupsOfBits(512 | 32, 0x80000000), 'argument_unsupported', '0x20');
    expect(statsGroupsOfBits(513, 0x80000000)).toEqual(['state', 'dirtyrate']);
  });

  it('CONNECT_GET_ALL_DOMAIN_STATS and DOMAIN_START_DIRTY_RATE_CALC carry libvirt’s numbers and shapes', () => {
    expect(PROCEDURES.CONNECT_GET_ALL_DOMAIN_STATS.number).toBe(344);
    expect(PROCEDURES.DOMAIN_START_DIRTY_RATE_CALC.number).toBe(427);
    expect(PROCEDURES.DOMAIN_START_DIRTY_RATE_CALC.changes).toBe(true);
    expect(PROCEDURES.CONNECT_GET_ALL_DOMAIN_STATS.changes).toBe(false);
    const dom = { name: 'g1', uuid: Buffer.alloc(16, 7), id: 3 };
    // args: dom (name, uuid, id), seconds int, flags uint.
    const args = encode(PROCEDURES.DOMAIN_START_DIRTY_RATE_CALC.args, { dom, seconds: -1, flags: 1 });
    expect(args.length).toBe(4 + 4 + 16 + 4 + 4 + 4);
    expect(args.readInt32BE(28)).toBe(-1);
    const ret = { retStats: [{ dom, params: [{ field: 'dirtyrate.calc_start_time', value: { type: 'llong' as const, value: 2 ** 40 } }] }] };
    expect(decode(PROCEDURES.CONNECT_GET_ALL_DOMAIN_STATS.ret, encode(PROCEDURES.CONNECT_GET_ALL_DOMAIN_STATS.ret, ret))).toEqual(ret);
  });
});

describe("virsh's domstats text", () => {
  it("Domain: 'NAME', indented field=value lines, a blank line after each", () => {
    expect(
      renderDomainStats([
        { domain: 'a', uuid: UUID, stats: { 'state.state': 1, 'dirtyrate.calc_mode': 'page-sampling' } },
        { domain: 'b', uuid: UUID, stats: {} },
      ]),
    ).toBe("Domain: 'a'\n  state.state=1\n  dirtyrate.calc_mode=page-sampling\n\nDomain: 'b'\n\n");
  });
});
