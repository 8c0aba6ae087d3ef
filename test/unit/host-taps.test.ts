/** Tap naming and the pure parts of host/taps.ts (the `ip` calls are covered end to end in test/e2e/network-bridge.test.ts). */
import { describe, expect, it } from 'vitest';
import { DomainDocument, ifnameProblem, isAutoTapName } from '../../src/domain/index.js';
import { bridgesOf, nextAutoTapName, tapMac, tapsOf } from '../../src/host/taps.js';
import { migrationSetup } from '../../src/migration/tuning.js';
import { parseCliValue, parseParams } from '../../src/flags/index.js';
import { refusal } from '../support/refusal.js';

describe('tap names', () => {
  it('picks the lowest free vnetN, as libvirt does', () => {
    expect(nextAutoTapName(new Set())).toBe('vnet0');
    expect(nextAutoTapName(new Set(['vnet0', 'vnet1', 'vnet3', 'eth0']))).toBe('vnet2');
  });

  it('treats vnet followed by digits as a name Ferry made up, chosen afresh on each start', () => {
    expect(isAutoTapName('vnet0')).toBe(true);
    expect(isAutoTapName('vnet42')).toBe(true);
    expect(isAutoTapName('vnet')).toBe(false);
    expect(isAutoTapName('vnetx')).toBe(false);
    expect(isAutoTapName('tapguest')).toBe(false);
  });

  it("gives the tap the guest's MAC with 0xfe first, so a bridge never takes the guest's address", () => {
    expect(tapMac('52:54:00:ab:cd:01')).toBe('fe:54:00:ab:cd:01');
    expect(tapMac(undefined)).toBeUndefined();
  });

  it.each([
    ['', 'empty'],
    ['a'.repeat(16), 'at most 15'],
    ['.', "'.' and '..'"],
    ['..', "'.' and '..'"],
    ['br 0', 'whitespace'],
    ['br\n0', 'whitespace'],
    ['br/0', "'/'"],
    ['br0:1', "':'"],
    ['-br0', "'-'"],
    ['br\u00e9', 'ASCII'],
  ])('refuses interface name %j', (name, why) => {
    expect(ifnameProblem(name)).toContain(why);
  });

  it.each(['br0', 'a'.repeat(15), 'vnet0', 'br-guest_1.2', 'br0,vhost=on'])('accepts interface name %j', (name) => {
    expect(ifnameProblem(name)).toBeUndefined();
  });
});

describe('bridges and taps of a definition', () => {
  const doc = DomainDocument.parse(`<domain type='qemu'><name>g</name><memory>262148</memory><os><type>hvm</type></os><devices>
    <interface type='user'/>
    <interface type='bridge'><source bridge='brguest'/><target dev='vnet3'/></interface>
    <interface type='ethernet'><target dev='tapx'/></interface>
    <interface type='bridge'><source bridge='brguest'/></interface>
    <interface type='bridge'><source bridge='br2'/></interface>
  </devices></domain>`);

  it('lists each bridge once, in interface order', () => {
    expect(bridgesOf(doc.def)).toEqual(['brguest', 'br2']);
  });

  it('lists the taps a live definition names', () => {
    expect(tapsOf(doc.def)).toEqual(['vnet3', 'tapx']);
  });
});

describe('announce parameters', () => {
  it("set QEMU's announce-* on the destination only, which is the QEMU that announces", () => {
    const params = parseParams({ announce_initial: 10, announce_max: 200, announce_rounds: 12, announce_step: 20 });
    expect(migrationSetup(1, params, 'destination').parameters).toMatchObject({ 'announce-initial': 10, 'announce-max': 200, 'announce-rounds': 12, 'announce-step': 20 });
    expect(migrationSetup(1, params, 'source').parameters).not.toHaveProperty('announce-rounds');
    expect(migrationSetup(1, {}, 'destination').parameters).not.toHaveProperty('announce-rounds');
  });

  it("are checked against QEMU's limits", () => {
    expect(parseCliValue('announce_rounds', '1000')).toBe(1000);
    expect(refusal(() => parseCliValue('announce_rounds', '1001')).message).toContain('--announce-rounds (announce_rounds)');
    expect(refusal(() => parseParams({ announce_step: 0 })).code).toBe('invalid_arg');
    expect(refusal(() => parseParams({ announce_initial: 100001 })).code).toBe('invalid_arg');
  });
});
