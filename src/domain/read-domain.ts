/** Derives the {@link DomainDef} model from a normalised domain DOM, checking every rule on the way. */
import type { Document, Element } from '@xmldom/xmldom';
import { choose } from './choice.js';
import { showValue } from '../errors/index.js';
import { attr, childElements, optionalChild, refuseStrayText, requiredAttr, requiredChild, textOf } from './dom.js';
import { readMemorySizes } from './memory.js';
import { hostPathProblem } from './paths.js';
import { readCharDevs } from './read-chardev.js';
import { readCpu } from './read-cpu.js';
import { readDisk } from './read-disk.js';
import { readInterface } from './read-interface.js';
import { readOs } from './read-os.js';
import { readPlatform } from './read-platform.js';
import { ignoredPeripheralParts, peripheralHonoured, readPeripherals, type Peripherals } from './read-peripherals.js';
import { xmlError } from './refuse.js';
import type { DiskDef, DomainDef, LifecycleAction } from './types.js';
import { UUID_EXPECTED, canonicalUuid } from './uuid.js';
import { domainNameProblem } from './validate-name.js';

/** Largest vCPU count accepted; QEMU's i440fx/q35 limit without extra set-up. */
export const MAX_VCPUS = 255;

const DOMAIN_TYPES_LIBVIRT = ['xen', 'lxc', 'uml', 'openvz', 'test', 'vmware', 'hyperv', 'vbox', 'phyp', 'vz', 'bhyve', 'hvf', 'kqemu', 'ch'];
/**
 * What Ferry does with each lifecycle element's values. libvirt accepts
 * destroy, restart, preserve and rename-restart for all three, and the two
 * coredump actions for `<on_crash>` only (dumping core only makes sense after
 * a crash); a value libvirt accepts but Ferry would not carry out is refused
 * with `config_unsupported` rather than kept and ignored.
 */
const LIFECYCLE_ACTIONS: Record<'on_poweroff' | 'on_reboot' | 'on_crash', { supported: readonly LifecycleAction[]; libvirtOnly: readonly LifecycleAction[]; why: string }> = {
  // QEMU exits when the guest powers off; ferryd does not start it again (restart) nor keep it (preserve, which libvirt's QEMU driver refuses too).
  on_poweroff: {
    supported: ['destroy'],
    libvirtOnly: ['restart', 'preserve', 'rename-restart'],
    why: 'when the guest powers off, QEMU exits and the domain is shut off',
  },
  // restart: QEMU resets the guest; destroy and preserve: QEMU turns the reboot into a shutdown (see qemu/command-line.ts).
  on_reboot: { supported: ['restart', 'destroy', 'preserve'], libvirtOnly: ['rename-restart'], why: 'rename-restart is refused by libvirt\'s QEMU driver too' },
  // A guest crash is only visible through a panic device, which Ferry does not model: nothing could act on another value.
  on_crash: {
    supported: ['destroy'],
    libvirtOnly: ['restart', 'preserve', 'rename-restart', 'coredump-destroy', 'coredump-restart'],
    why: 'Ferry has no <panic> device to learn of a guest crash',
  },
};

/**
 * The `<domain>` root of `doc`. The domain format has no namespace; one on
 * the root would put every child out of reach of the reader.
 *
 * @throws FerryError `xml_error` for any other root.
 */
export function domainRoot(doc: Document): Element {
  const root = doc.documentElement;
  if (root === null) throw xmlError('malformed XML: no root element');
  if (root.localName !== 'domain' || root.namespaceURI !== null) {
    const ns = root.namespaceURI === null ? '' : ` in namespace ${showValue(root.namespaceURI)}`;
    throw xmlError(`the root element must be <domain> without a namespace, found <${root.nodeName}>${ns}`);
  }
  return root;
}

/**
 * Reads `<domain type>` (`qemu` or `kvm`), after refusing stray text in
 * `<domain>`. Checked first so that, say, a Xen definition is told it is
 * unsupported rather than about some detail further down.
 */
export function readDomainType(root: Element): DomainDef['type'] {
  refuseStrayText(root);
  return choose(requiredAttr(root, 'type'), {
    what: '<domain type>',
    supported: ['qemu', 'kvm'] as const,
    libvirtOnly: DOMAIN_TYPES_LIBVIRT,
  });
}

/** Reads `<name>` and applies {@link domainNameProblem}. */
export function readName(root: Element): string {
  const name = textOf(requiredChild(root, 'name'));
  const problem = domainNameProblem(name);
  if (problem !== undefined) throw xmlError(`invalid value ${showValue(name)} for <name>: ${problem}`);
  return name;
}

function positiveInt(text: string, what: string, max: number): number {
  const trimmed = text.trim();
  if (!/^[0-9]{1,6}$/.test(trimmed) || Number(trimmed) < 1 || Number(trimmed) > max) {
    throw xmlError(`invalid value ${showValue(text)} for ${what}: expected an integer from 1 to ${max}`);
  }
  return Number(trimmed);
}

function readVcpus(root: Element): number {
  const el = optionalChild(root, 'vcpu');
  if (el === undefined) return 1;
  const vcpus = positiveInt(textOf(el), '<vcpu>', MAX_VCPUS);
  const placement = attr(el, 'placement');
  if (placement !== undefined) choose(placement, { what: '<vcpu placement>', supported: ['static', 'auto'] });
  const current = attr(el, 'current');
  if (current !== undefined) positiveInt(current, `<vcpu current> (with ${vcpus} vCPUs)`, vcpus);
  return vcpus;
}

function readLifecycle(root: Element, name: keyof typeof LIFECYCLE_ACTIONS, dflt: LifecycleAction): LifecycleAction {
  const el = optionalChild(root, name);
  if (el === undefined) return dflt;
  return choose(textOf(el).trim(), { what: `<${name}>`, ...LIFECYCLE_ACTIONS[name] });
}

function readFeatures(root: Element): string[] {
  const el = optionalChild(root, 'features');
  if (el === undefined) return [];
  refuseStrayText(el);
  const names: string[] = [];
  for (const child of childElements(el)) {
    const name = child.localName!;
    if (names.includes(name)) throw xmlError(`<features> lists <${name}> more than once`);
    names.push(name);
  }
  return names;
}

type Devices = Pick<DomainDef, 'emulator' | 'disks' | 'serials' | 'consoles' | 'interfaces'> & Peripherals;

function readDevices(root: Element, os: DomainDef['os']): Devices {
  const def: Devices = { disks: [], serials: [], consoles: [], interfaces: [] };
  const devices = optionalChild(root, 'devices');
  if (devices === undefined) return def;
  refuseStrayText(devices);
  const emulator = optionalChild(devices, 'emulator');
  if (emulator !== undefined) {
    const path = textOf(emulator);
    const problem = hostPathProblem(path);
    if (problem !== undefined) throw xmlError(`invalid value ${showValue(path)} for <emulator>: ${problem}`);
    def.emulator = path;
  }
  const disks: DiskDef[] = [];
  childElements(devices, 'disk').forEach((el, i) => {
    const disk = readDisk(el, i + 1);
    if (disks.some((d) => d.targetDev === disk.targetDev)) throw xmlError(`two disks use <target dev='${disk.targetDev}'>`);
    disks.push(disk);
  });
  def.disks = disks;
  const { serials, consoles } = readCharDevs(childElements(devices, 'serial'), childElements(devices, 'console'));
  def.serials = serials;
  def.consoles = consoles;
  def.interfaces = childElements(devices, 'interface').map((el, i) => readInterface(el, i + 1));
  Object.assign(def, readPeripherals(devices, os.machine));
  if (os.boot !== undefined) {
    for (const device of childElements(devices)) {
      if (optionalChild(device, 'boot') !== undefined) {
        throw xmlError(`per-device <boot order> in <${device.localName}> cannot be combined with <boot dev> in <os>; use one or the other`);
      }
    }
  }
  return def;
}

/**
 * Derives the model from a document that `normaliseDomain` has already
 * processed. Pure: reads the DOM, never changes it.
 *
 * @throws FerryError `xml_error` for anything invalid, `config_unsupported`
 *   for valid libvirt settings Ferry cannot run.
 */
export function readDomain(doc: Document): DomainDef {
  const root = domainRoot(doc);
  const type = readDomainType(root);
  const name = readName(root);
  const uuidText = textOf(requiredChild(root, 'uuid'));
  const uuid = canonicalUuid(uuidText);
  if (uuid === undefined) throw xmlError(`invalid value ${showValue(uuidText)} for <uuid>: ${UUID_EXPECTED}`);
  const sizes = readMemorySizes(root);
  const os = readOs(root);
  const title = optionalChild(root, 'title');
  const titleText = title === undefined ? undefined : textOf(title);
  if (titleText !== undefined && /[\r\n]/.test(titleText)) {
    throw xmlError('invalid <title>: a title must be a single line (use <description> for more)');
  }
  const description = optionalChild(root, 'description');
  const cpu = optionalChild(root, 'cpu');
  const cpuMode = cpu === undefined ? undefined : attr(cpu, 'mode');
  const clock = optionalChild(root, 'clock');
  const offset = clock === undefined ? undefined : attr(clock, 'offset');
  // Built in the field order of DomainDef so the JSON form reads naturally.
  const def: DomainDef = {
    type,
    name,
    uuid,
    ...(titleText !== undefined && { title: titleText }),
    ...(description !== undefined && { description: textOf(description) }),
    memoryKiB: sizes.memoryKiB,
    currentMemoryKiB: sizes.currentMemoryKiB,
    ...(sizes.hardLimitKiB !== undefined && { hardLimitKiB: sizes.hardLimitKiB }),
    vcpus: readVcpus(root),
    os,
    features: readFeatures(root),
    ...(cpuMode !== undefined && {
      cpuMode: choose(cpuMode, { what: '<cpu mode>', supported: ['host-passthrough', 'host-model', 'custom', 'maximum'] as const }),
    }),
    ...(cpu !== undefined && { cpu: readCpu(cpu) }),
    ...(offset !== undefined && {
      clockOffset: choose(offset, {
        what: '<clock offset>',
        supported: ['utc', 'localtime'] as const,
        libvirtOnly: ['variable', 'timezone', 'absolute'],
      }),
    }),
    onPoweroff: readLifecycle(root, 'on_poweroff', 'destroy'),
    onReboot: readLifecycle(root, 'on_reboot', 'restart'),
    onCrash: readLifecycle(root, 'on_crash', 'destroy'),
    ...readDevices(root, os),
  };
  const platform = readPlatform(root);
  if (platform.platform !== undefined) def.platform = platform.platform;
  const ignored = ignoredElements(root, os.machine, platform.ignored);
  if (ignored.length > 0) def.ignored = ignored;
  return def;
}

/** Children of `<domain>` Ferry reads or that only describe the domain (kept and shown as they are). */
const READ_AT_TOP = new Set(['name', 'uuid', 'title', 'description', 'metadata', 'memory', 'currentMemory', 'memtune', 'vcpu', 'os', 'features', 'cpu', 'clock', 'pm', 'on_poweroff', 'on_reboot', 'on_crash', 'devices']);
/** Children of `<devices>` Ferry runs the guest with; the peripherals are decided one by one ({@link peripheralHonoured}). */
const READ_IN_DEVICES = new Set(['emulator', 'disk', 'serial', 'console', 'interface']);

/**
 * The elements of `<domain>` and `<devices>` (in libvirt's namespace) that
 * are kept but have no effect, as `name` or `name (type)`, each once. A PCI
 * controller is named by its model (`controller (pcie-root-port)`), since
 * the machine's root bus is honoured and the others are not; parts of an
 * honoured device (or of `<features>`, `<clock>` and `<pm>`) that have no
 * effect are named `element <child>`: `features <hyperv>`,
 * `clock <timer name='tsc'>`, `memballoon <stats>`.
 */
function ignoredElements(root: Element, machine: string | undefined, platformIgnored: readonly string[]): string[] {
  const out = new Set<string>();
  const label = (el: Element): string => {
    const type =
      el.localName === 'controller' && attr(el, 'type') === 'pci' ? attr(el, 'model') ?? 'pci'
      : el.localName === 'video' ? childElements(el, 'model').map((m) => attr(m, 'type'))[0]
      : attr(el, 'type') ?? attr(el, 'model');
    return type !== undefined ? `${el.localName} (${type})` : el.localName!;
  };
  for (const el of childElements(root)) if (!READ_AT_TOP.has(el.localName!)) out.add(label(el));
  // Read elements whose children are only partly honoured (read-platform.ts).
  for (const part of platformIgnored) out.add(part);
  const devices = optionalChild(root, 'devices');
  if (devices !== undefined) {
    for (const el of childElements(devices)) {
      const honoured = peripheralHonoured(el, machine) ?? READ_IN_DEVICES.has(el.localName!);
      if (!honoured) out.add(label(el));
    }
    for (const part of ignoredPeripheralParts(devices)) out.add(part);
  }
  return [...out];
}
