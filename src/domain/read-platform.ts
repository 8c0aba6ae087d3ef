/**
 * Reads the parts of `<features>`, `<clock>` and `<pm>` that QEMU gets as
 * machine-wide options (see qemu/platform-args.ts): the vmport, the HPET,
 * the RTC's and PIT's lost-tick policies, and S3/S4. What is written in a
 * way Ferry does not carry out is never refused here (these elements were
 * always kept): it is reported as ignored, once, like any other element.
 */
import type { Element } from '@xmldom/xmldom';
import { attr, childElements, optionalChild } from './dom.js';
import type { PlatformDef } from './types.js';

/**
 * `<features>` QEMU gets: `acpi` switches the machine's ACPI, `vmport`
 * the VMware I/O port; the APIC and PAE are always there on x86, so `apic`
 * and `pae` are honoured implicitly. Others (hyperv, kvm, smm, ...) are kept
 * and reported as ignored.
 */
const HONOURED_FEATURES = new Set(['acpi', 'apic', 'pae', 'vmport']);

/** What {@link readPlatform} found: the model's part, and what is kept without effect. */
export interface PlatformReading {
  platform?: PlatformDef;
  /** Labels for the ignored list: `features <hyperv>`, `clock <timer name='tsc'>`, `pm <child>`. */
  ignored: string[];
}

/** Whether `el` has exactly these attributes (any subset of them), and no others. */
function onlyAttributes(el: Element, allowed: readonly string[]): boolean {
  for (let i = 0; i < el.attributes.length; i++) {
    const a = el.attributes.item(i)!;
    if (a.namespaceURI !== null || a.name.startsWith('xmlns')) continue;
    if (!allowed.includes(a.name)) return false;
  }
  return childElements(el).length === 0;
}

function onOff(value: string | undefined, on: string, off: string): boolean | undefined {
  return value === on ? true : value === off ? false : undefined;
}

/**
 * Reads `<features><vmport state>`, `<clock><timer>` and `<pm>`.
 *
 * Timers honoured: `hpet` with `present` yes/no (machine `hpet=on|off`),
 * `rtc` with `tickpolicy` catchup (`-rtc driftfix=slew`, as libvirt) or
 * delay (QEMU's default), `pit` with `tickpolicy` delay (QEMU's default
 * under TCG; `kvm-pit.lost_tick_policy=delay` under KVM). Any other timer,
 * or one with other attributes, is listed as ignored.
 */
export function readPlatform(root: Element): PlatformReading {
  const p: PlatformDef = {};
  const ignored: string[] = [];

  const features = optionalChild(root, 'features');
  for (const el of features === undefined ? [] : childElements(features)) {
    const name = el.localName!;
    let honoured = HONOURED_FEATURES.has(name);
    if (name === 'vmport') {
      const state = onOff(attr(el, 'state'), 'on', 'off');
      honoured = onlyAttributes(el, ['state']) && (attr(el, 'state') === undefined || state !== undefined);
      if (honoured && state !== undefined) p.vmport = state ? 'on' : 'off';
    }
    if (!honoured) ignored.push(`features <${name}>`);
  }

  const clock = optionalChild(root, 'clock');
  for (const t of clock === undefined ? [] : childElements(clock, 'timer')) {
    const name = attr(t, 'name') ?? '';
    let honoured = false;
    if (name === 'hpet' && onlyAttributes(t, ['name', 'present'])) {
      const present = onOff(attr(t, 'present'), 'yes', 'no');
      if (present !== undefined && p.hpet === undefined) {
        p.hpet = present;
        honoured = true;
      }
    } else if (name === 'rtc' && onlyAttributes(t, ['name', 'tickpolicy'])) {
      const policy = attr(t, 'tickpolicy');
      if ((policy === 'catchup' || policy === 'delay') && p.rtcTickPolicy === undefined) {
        p.rtcTickPolicy = policy;
        honoured = true;
      }
    } else if (name === 'pit' && onlyAttributes(t, ['name', 'tickpolicy']) && attr(t, 'tickpolicy') === 'delay' && p.pitTickPolicy === undefined) {
      p.pitTickPolicy = 'delay';
      honoured = true;
    }
    if (!honoured) ignored.push(`clock <timer name='${name}'>`);
  }

  const pm = optionalChild(root, 'pm');
  for (const el of pm === undefined ? [] : childElements(pm)) {
    const name = el.localName!;
    const enabled = onOff(attr(el, 'enabled'), 'yes', 'no');
    const field = name === 'suspend-to-mem' ? 'suspendToMem' : name === 'suspend-to-disk' ? 'suspendToDisk' : undefined;
    if (field !== undefined && enabled !== undefined && onlyAttributes(el, ['enabled']) && p[field] === undefined) p[field] = enabled;
    else ignored.push(`pm <${name}>`);
  }
  return { ...(Object.keys(p).length > 0 && { platform: p }), ignored };
}
