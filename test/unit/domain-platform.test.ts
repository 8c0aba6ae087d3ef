/**
 * Machine-wide options from `<features><vmport>`, `<clock><timer>` and
 * `<pm>` (src/domain/read-platform.ts, src/qemu/platform-args.ts): what is
 * read and passed to QEMU as libvirt passes it, and what is kept and
 * reported as ignored instead (never refused: these elements were always
 * kept).
 */
import { describe, expect, it } from 'vitest';
import { DomainDocument } from '../../src/domain/document.js';
import { buildQemuArgs } from '../../src/qemu/command-line.js';
import { machineProperties, platformGlobals, rtcOption } from '../../src/qemu/platform-args.js';

function parse(top: string, machine = 'pc-q35-7.2'): DomainDocument['def'] {
  return DomainDocument.parse(
    `<domain type='qemu'><name>p</name><uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid><memory>262148</memory><os><type machine='${machine}'>hvm</type></os>${top}</domain>`,
  ).def;
}

const VIRT_INSTALL =
  "<features><acpi/><apic/><vmport state='off'/></features>" +
  "<clock offset='utc'><timer name='rtc' tickpolicy='catchup'/><timer name='pit' tickpolicy='delay'/><timer name='hpet' present='no'/></clock>" +
  "<pm><suspend-to-mem enabled='no'/><suspend-to-disk enabled='no'/></pm>";

describe('reading', () => {
  it("honours virt-install's features, timers and pm: nothing of them is ignored", () => {
    const d = parse(VIRT_INSTALL);
    expect(d.platform).toEqual({ vmport: 'off', rtcTickPolicy: 'catchup', pitTickPolicy: 'delay', hpet: false, suspendToMem: false, suspendToDisk: false });
    expect(d.ignored).toBeUndefined();
  });

  it('reports what it does not carry out, each once, and refuses nothing', () => {
    const d = parse(
      "<features><acpi/><hyperv mode='custom'><relaxed state='on'/></hyperv><vmport/><smm state='on'/></features>" +
        "<clock offset='utc'><timer name='tsc' frequency='1000'/><timer name='rtc' tickpolicy='merge'/><timer name='hpet' present='yes'/><timer name='pit' tickpolicy='catchup'/><timer name='kvmclock' present='no'/></clock>" +
        "<pm><suspend-to-mem enabled='yes'/><suspend-to-disk/></pm>",
    );
    // A vmport without a state leaves QEMU's default; hpet present='yes' is QEMU's default, passed anyway.
    expect(d.platform).toEqual({ hpet: true, suspendToMem: true });
    expect(d.ignored).toEqual([
      'features <hyperv>',
      'features <smm>',
      "clock <timer name='tsc'>",
      "clock <timer name='rtc'>",
      "clock <timer name='pit'>",
      "clock <timer name='kvmclock'>",
      'pm <suspend-to-disk>',
    ]);
    expect(parse('<pm/>').platform).toBeUndefined();
  });
});

describe('QEMU options', () => {
  it('puts vmport and hpet on -machine, driftfix=slew on -rtc and S3/S4 on the q35 LPC, as libvirt does', () => {
    const args = buildQemuArgs(parse(VIRT_INSTALL), { accel: 'tcg', qmpSocketPath: '/r/q', serialLogPath: '/r/s', runDir: '/r' });
    expect(args[args.indexOf('-machine') + 1]).toBe('pc-q35-7.2,acpi=on,vmport=off,hpet=off');
    expect(args[args.indexOf('-rtc') + 1]).toBe('base=utc,driftfix=slew');
    const globals = args.flatMap((a, i) => (a === '-global' ? [args[i + 1]] : []));
    // Under TCG QEMU's own PIT already delays lost ticks: no kvm-pit global.
    expect(globals).toEqual(['ICH9-LPC.disable_s3=1', 'ICH9-LPC.disable_s4=1']);
  });

  it('uses the in-kernel PIT under KVM and PIIX4_PM on pc; leaves QEMU alone without a platform', () => {
    const p = { pitTickPolicy: 'delay', suspendToMem: true, suspendToDisk: false } as const;
    expect(platformGlobals(p, false, 'kvm')).toEqual(['-global', 'kvm-pit.lost_tick_policy=delay', '-global', 'PIIX4_PM.disable_s3=0', '-global', 'PIIX4_PM.disable_s4=1']);
    expect(platformGlobals(undefined, true, 'kvm')).toEqual([]);
    expect(machineProperties(undefined)).toEqual([]);
    expect(rtcOption('localtime', { rtcTickPolicy: 'delay' })).toBe('base=localtime');
  });
});
