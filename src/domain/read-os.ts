/** Reads and checks the `<os>` element: guest type, architecture, machine, direct kernel boot, boot order. */
import type { Element } from '@xmldom/xmldom';
import { choose } from './choice.js';
import { showValue } from '../errors/index.js';
import { attr, childElements, optionalChild, refuseStrayText, requiredAttr, requiredChild, textOf } from './dom.js';
import { hostPathProblem } from './paths.js';
import { unsupported, xmlError } from './refuse.js';
import type { BootDevice, DomainDef } from './types.js';

// Machine types go into QEMU's `-machine` option string, where a comma or
// '=' would add options of the user's choosing.
const MACHINE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

function pathText(el: Element): string {
  const path = textOf(el, '<os>');
  const problem = hostPathProblem(path);
  if (problem !== undefined) throw xmlError(`invalid value ${showValue(path)} for <${el.localName}> in <os>: ${problem}`);
  return path;
}

/**
 * Reads `<os>`, which must be present with `<type>hvm</type>`. Architecture
 * may be x86_64, i686 or absent. Firmware selection (`<loader>`, `<nvram>`,
 * `firmware='efi'`) is refused rather than ignored: a UEFI guest started
 * with the default BIOS would not boot.
 *
 * @throws FerryError `xml_error` or `config_unsupported` naming the element.
 */
export function readOs(root: Element): DomainDef['os'] {
  const os = requiredChild(root, 'os');
  refuseStrayText(os);
  const firmware = attr(os, 'firmware');
  if (firmware !== undefined) {
    choose(firmware, { what: '<os firmware>', supported: ['bios'], libvirtOnly: ['efi'], why: "guests boot with QEMU's default BIOS" });
  }
  for (const name of ['loader', 'nvram']) {
    if (optionalChild(os, name) !== undefined) {
      throw unsupported(`unsupported <${name}> in <os>: Ferry boots guests with QEMU's default BIOS and cannot select firmware`);
    }
  }
  const typeEl = requiredChild(os, 'type');
  const type = choose(textOf(typeEl).trim(), {
    what: '<os><type>',
    supported: ['hvm'] as const,
    libvirtOnly: ['xen', 'linux', 'exe', 'uml', 'xenpvh'],
  });
  const def: DomainDef['os'] = { type };
  const arch = attr(typeEl, 'arch');
  if (arch !== undefined) {
    def.arch = choose(arch, { what: '<os><type arch>', supported: ['x86_64', 'i686'], libvirtOnly: '*' });
  }
  const machine = attr(typeEl, 'machine');
  if (machine !== undefined) {
    if (!MACHINE_PATTERN.test(machine)) {
      throw xmlError(`invalid value ${showValue(machine)} for <os><type machine>: expected a QEMU machine type such as 'pc' or 'pc-q35-8.2'`);
    }
    def.machine = machine;
  }
  const kernel = optionalChild(os, 'kernel');
  const initrd = optionalChild(os, 'initrd');
  const cmdline = optionalChild(os, 'cmdline');
  if (kernel !== undefined) def.kernel = pathText(kernel);
  if (initrd !== undefined) def.initrd = pathText(initrd);
  if (cmdline !== undefined) def.cmdline = textOf(cmdline, '<os>');
  if (kernel === undefined && (initrd !== undefined || cmdline !== undefined)) {
    throw xmlError(`invalid <os>: <${initrd !== undefined ? 'initrd' : 'cmdline'}> needs a <kernel> (they only apply to direct kernel boot)`);
  }
  const boot = childElements(os, 'boot').map((el) =>
    choose<BootDevice>(requiredAttr(el, 'dev', '<os>'), { what: '<os><boot dev>', supported: ['hd', 'cdrom', 'network', 'fd'] }),
  );
  if (boot.length > 0) def.boot = boot;
  return def;
}
