/**
 * QEMU options for the machine-wide settings of a domain (read in
 * domain/read-platform.ts): the vmport and HPET as `-machine` properties,
 * the RTC's lost-tick policy on `-rtc`, the PIT's under KVM and S3/S4 as
 * `-global`s, as libvirt passes them. Every value is one of Ferry's own
 * constants; nothing from the XML is pasted into QEMU's comma syntax.
 */
import type { PlatformDef } from '../domain/types.js';
import type { Accel } from './command-line.js';

/** Extra `-machine` properties (key, value) for `platform`. */
export function machineProperties(platform: PlatformDef | undefined): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (platform?.vmport !== undefined) out.push(['vmport', platform.vmport === 'on' ? 'on' : 'off']);
  if (platform?.hpet !== undefined) out.push(['hpet', platform.hpet ? 'on' : 'off']);
  return out;
}

/** The `-rtc` value: the base, and libvirt's `driftfix=slew` for an RTC that catches up lost ticks. */
export function rtcOption(base: 'utc' | 'localtime', platform: PlatformDef | undefined): string {
  return platform?.rtcTickPolicy === 'catchup' ? `base=${base},driftfix=slew` : `base=${base}`;
}

/**
 * `-global`s: the in-kernel PIT's lost-tick policy under KVM (QEMU's own
 * PIT under TCG already delays, which is what `delay` asks), and S3/S4 on
 * the machine's power-management device (ICH9-LPC on q35, PIIX4_PM on pc),
 * `disable_s3=1` for `enabled='no'` as in libvirt.
 */
export function platformGlobals(platform: PlatformDef | undefined, q35: boolean, accel: Accel): string[] {
  const args: string[] = [];
  if (platform?.pitTickPolicy === 'delay' && accel === 'kvm') args.push('-global', 'kvm-pit.lost_tick_policy=delay');
  const pmDevice = q35 ? 'ICH9-LPC' : 'PIIX4_PM';
  if (platform?.suspendToMem !== undefined) args.push('-global', `${pmDevice}.disable_s3=${platform.suspendToMem ? 0 : 1}`);
  if (platform?.suspendToDisk !== undefined) args.push('-global', `${pmDevice}.disable_s4=${platform.suspendToDisk ? 0 : 1}`);
  return args;
}
