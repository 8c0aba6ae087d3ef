/**
 * Reads the cheap peripheral devices of a domain, as virt-install writes
 * them: the USB controller and `<input>`s, `<memballoon>`, `<rng>`, the
 * virtio-serial controller and its `<channel>`s, VNC `<graphics>` and
 * `<video>`. Every option is checked; what Ferry cannot give the guest is
 * refused (`config_unsupported`), never kept and silently left out.
 * PCI/USB/virtio-serial `<address>` elements are kept but not honoured:
 * QEMU places the devices in the fixed order of the command line, the same
 * on every host (see qemu/peripheral-args.ts).
 */
import type { Element } from '@xmldom/xmldom';
import { choose } from './choice.js';
import { showValue } from '../errors/index.js';
import { attr, childElements, optionalChild, refuseStrayText, requiredAttr, requiredChild, textOf } from './dom.js';
import { hostPathProblem } from './paths.js';
import { unsupported, xmlError } from './refuse.js';
import type { ChannelDef, DomainDef, GraphicsDef, InputDef, MemballoonDef, RngDef, UsbControllerDef, VideoDef, VirtioSerialDef } from './types.js';

/** The model fields this module fills in. */
export type Peripherals = Pick<DomainDef, 'usb' | 'inputs' | 'memballoon' | 'rngs' | 'virtioSerial' | 'channels' | 'graphics' | 'video'>;

/** Children every device may carry that change nothing Ferry runs: libvirt's address and alias. */
const BOOKKEEPING = new Set(['address', 'alias']);

/** The loopback addresses a VNC server may listen on: VNC without a password or TLS must not be reachable from elsewhere. */
export const VNC_LOCAL_ADDRESSES = ['127.0.0.1', '::1'] as const;

/** The host devices an rng-random backend may read: libvirt's QEMU driver allows only these two. */
export const RNG_RANDOM_SOURCES = ['/dev/urandom', '/dev/random'] as const;

/** First VNC port (display :0), as in libvirt and QEMU. */
export const VNC_PORT_MIN = 5900;

/** A virtio channel's `<target name>`: it reaches QEMU only inside JSON, but it names the port for the guest, so keep it plain. */
const CHANNEL_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A USB port path on bus 0 (`1`, `2.1`): QEMU's `port` property. */
const USB_PORT_RE = /^[1-9][0-9]{0,2}(?:\.[1-9][0-9]{0,2}){0,4}$/;

function isQ35(machine: string | undefined): boolean {
  return machine !== undefined && /q35/.test(machine);
}

/** Refuses child elements other than `allowed` (plus address and alias), naming the device. */
function refuseOtherChildren(el: Element, allowed: readonly string[], where: string): void {
  refuseStrayText(el, where);
  for (const c of childElements(el)) {
    const name = c.localName!;
    if (!BOOKKEEPING.has(name) && !allowed.includes(name)) throw unsupported(`unsupported <${name}> in ${where}: Ferry does not pass it to QEMU`);
  }
}

/** Refuses attributes other than `allowed`, naming the device. */
function refuseOtherAttributes(el: Element, allowed: readonly string[], where: string): void {
  for (let i = 0; i < el.attributes.length; i++) {
    const a = el.attributes.item(i)!;
    if (a.namespaceURI !== null || a.name.startsWith('xmlns')) continue;
    if (!allowed.includes(a.name)) throw unsupported(`unsupported attribute ${showValue(a.name)} on ${where}: Ferry does not pass it to QEMU`);
  }
}

function intAttr(el: Element, name: string, min: number, max: number, where: string): number | undefined {
  const text = attr(el, name);
  if (text === undefined) return undefined;
  if (!/^[0-9]{1,9}$/.test(text) || Number(text) < min || Number(text) > max) {
    throw xmlError(`invalid value ${showValue(text)} for <${el.localName} ${name}> of ${where}: expected an integer from ${min} to ${max}`);
  }
  return Number(text);
}

function onOff(el: Element, name: string, where: string): boolean | undefined {
  const v = attr(el, name);
  return v === undefined ? undefined : choose(v, { what: `<${el.localName} ${name}> of ${where}`, supported: ['on', 'off'] }) === 'on';
}

function controllerIndex(el: Element, where: string): void {
  const index = attr(el, 'index') ?? '0';
  if (!/^[0-9]{1,4}$/.test(index)) throw xmlError(`invalid value ${showValue(index)} for <controller index> of ${where}: expected a non-negative integer`);
  if (index !== '0') throw unsupported(`unsupported <controller index='${index}'> for ${where}: Ferry gives the guest one such controller, index 0`);
}

// ---------------------------------------------------------------- USB

function readUsbController(el: Element, machine: string | undefined): UsbControllerDef {
  const where = "<controller type='usb'>";
  controllerIndex(el, where);
  refuseOtherChildren(el, [], where);
  refuseOtherAttributes(el, ['type', 'index', 'model', 'ports'], where);
  // libvirt's defaults for x86: an xHCI on q35 where QEMU has one, PIIX3's UHCI on pc.
  const model = choose(attr(el, 'model') ?? (isQ35(machine) ? 'qemu-xhci' : 'piix3-uhci'), {
    what: `<controller model> of ${where}`,
    supported: ['qemu-xhci', 'nec-xhci', 'piix3-uhci', 'none'] as const,
    libvirtOnly: '*',
    why: 'companion controller sets (ich9-ehci1 with its UHCIs) and other models are not modelled',
  });
  const ports = intAttr(el, 'ports', 1, 15, where);
  if (ports !== undefined && model !== 'qemu-xhci' && model !== 'nec-xhci') {
    throw unsupported(`unsupported <controller ports> for ${where} model ${model}: only xHCI controllers take a port count`);
  }
  return { model, ...(ports !== undefined && { ports }) };
}

function readInput(el: Element, i: number): InputDef {
  const where = `input #${i}`;
  refuseOtherChildren(el, [], where);
  refuseOtherAttributes(el, ['type', 'bus', 'model'], where);
  const type = choose(requiredAttr(el, 'type', where), {
    what: `<input type> of ${where}`,
    supported: ['tablet', 'mouse', 'keyboard'] as const,
    libvirtOnly: ['passthrough', 'evdev'],
  });
  // libvirt's x86 defaults: a tablet is a USB device, mouse and keyboard are PS/2.
  const bus = choose(attr(el, 'bus') ?? (type === 'tablet' ? 'usb' : 'ps2'), {
    what: `<input bus> of ${where}`,
    supported: ['usb', 'ps2', 'virtio'] as const,
    libvirtOnly: ['xen', 'parallels', 'none'],
  });
  if (bus === 'ps2' && type === 'tablet') throw unsupported(`unsupported <input type='tablet' bus='ps2'> (${where}): the PS/2 bus has no tablet; use bus='usb' or 'virtio'`);
  const model = attr(el, 'model');
  if (model !== undefined) choose(model, { what: `<input model> of ${where}`, supported: ['virtio'], libvirtOnly: '*' });
  const address = optionalChild(el, 'address', where);
  const def: InputDef = { type, bus };
  if (address !== undefined && bus === 'usb' && attr(address, 'type') === 'usb') {
    const usbBus = attr(address, 'bus') ?? '0';
    if (usbBus !== '0') throw unsupported(`unsupported <address bus='${usbBus}'> of ${where}: the guest has one USB bus, 0`);
    const port = attr(address, 'port');
    if (port !== undefined) {
      if (!USB_PORT_RE.test(port)) throw xmlError(`invalid value ${showValue(port)} for <address port> of ${where}: expected a USB port such as 1 or 2.1`);
      def.usbPort = port;
    }
  }
  return def;
}

// ---------------------------------------------------------------- balloon, rng

function readMemballoon(el: Element): MemballoonDef {
  const where = '<memballoon>';
  refuseOtherChildren(el, ['stats'], where);
  refuseOtherAttributes(el, ['model', 'autodeflate', 'freePageReporting'], where);
  const model = choose(requiredAttr(el, 'model', where), {
    what: '<memballoon model>',
    supported: ['virtio', 'none'] as const,
    libvirtOnly: ['xen', 'virtio-transitional', 'virtio-non-transitional'],
  });
  const autodeflate = onOff(el, 'autodeflate', where);
  const freePageReporting = onOff(el, 'freePageReporting', where);
  if (model === 'none' && (autodeflate !== undefined || freePageReporting !== undefined)) {
    throw xmlError("<memballoon model='none'> takes no autodeflate or freePageReporting");
  }
  return { model, ...(autodeflate !== undefined && { autodeflate }), ...(freePageReporting !== undefined && { freePageReporting }) };
}

function readRng(el: Element, i: number): RngDef {
  const where = `rng #${i}`;
  refuseOtherChildren(el, ['backend', 'rate'], where);
  refuseOtherAttributes(el, ['model'], where);
  choose(requiredAttr(el, 'model', where), { what: `<rng model> of ${where}`, supported: ['virtio'], libvirtOnly: ['virtio-transitional', 'virtio-non-transitional'] });
  const backend = requiredChild(el, 'backend', where);
  const model = choose(requiredAttr(backend, 'model', `<backend> of ${where}`), {
    what: `<backend model> of ${where}`,
    supported: ['random', 'builtin'] as const,
    libvirtOnly: ['egd'],
    why: 'an EGD backend needs a character device Ferry does not model',
  });
  refuseOtherAttributes(backend, ['model'], `<backend> of ${where}`);
  const def: RngDef = { backend: model };
  const path = textOf(backend, `<backend> of ${where}`).trim();
  if (model === 'builtin' && path !== '') throw xmlError(`<backend model='builtin'> of ${where} takes no device path`);
  if (model === 'random' && path !== '') {
    if (!(RNG_RANDOM_SOURCES as readonly string[]).includes(path)) {
      throw unsupported(`file ${showValue(path)} is not a supported random source for ${where}: use ${RNG_RANDOM_SOURCES.join(' or ')}`);
    }
    def.path = path as RngDef['path'];
  }
  const rate = optionalChild(el, 'rate', where);
  if (rate !== undefined) {
    refuseOtherAttributes(rate, ['bytes', 'period'], `<rate> of ${where}`);
    if (attr(rate, 'bytes') === undefined) throw xmlError(`missing attribute 'bytes' on <rate> of ${where}`);
    def.rateBytes = intAttr(rate, 'bytes', 1, 0x7fffffff, where)!;
    def.ratePeriodMs = intAttr(rate, 'period', 1, 0x7fffffff, where) ?? 1000;
  }
  return def;
}

// ---------------------------------------------------------------- virtio-serial, channels

function readVirtioSerial(el: Element): VirtioSerialDef {
  const where = "<controller type='virtio-serial'>";
  controllerIndex(el, where);
  refuseOtherChildren(el, [], where);
  refuseOtherAttributes(el, ['type', 'index', 'ports', 'vectors', 'model'], where);
  const model = attr(el, 'model');
  if (model !== undefined) choose(model, { what: `<controller model> of ${where}`, supported: ['virtio'], libvirtOnly: '*' });
  const ports = intAttr(el, 'ports', 1, 31, where);
  const vectors = intAttr(el, 'vectors', 1, 32, where);
  return { ...(ports !== undefined && { ports }), ...(vectors !== undefined && { vectors }) };
}

function readChannel(el: Element, i: number): ChannelDef {
  const where = `channel #${i}`;
  refuseOtherChildren(el, ['source', 'target'], where);
  refuseOtherAttributes(el, ['type'], where);
  const target = requiredChild(el, 'target', where);
  choose(requiredAttr(target, 'type', `<target> of ${where}`), { what: `<target type> of ${where}`, supported: ['virtio'], libvirtOnly: ['guestfwd', 'xen'] });
  refuseOtherAttributes(target, ['type', 'name', 'state'], `<target> of ${where}`);
  const name = requiredAttr(target, 'name', `<target> of ${where}`);
  if (!CHANNEL_NAME_RE.test(name)) {
    throw unsupported(`unsupported <target name> ${showValue(name)} of ${where}: use letters, digits, '.', '_' and '-' (like org.qemu.guest_agent.0)`);
  }
  const source = optionalChild(el, 'source', where);
  if (source !== undefined) {
    refuseOtherAttributes(source, ['mode', 'path'], `<source> of ${where}`);
    // QEMU listens and the guest agent's client connects: that is what libvirt does for a channel too.
    choose(attr(source, 'mode') ?? 'bind', {
      what: `<source mode> of ${where}`,
      supported: ['bind'],
      libvirtOnly: ['connect'],
      why: 'QEMU listens on the channel socket',
    });
    // The path itself is never used: ferryd puts the socket under its own run directory (see the file comment of qemu/peripheral-args.ts).
    const path = attr(source, 'path');
    const problem = path === undefined ? undefined : hostPathProblem(path);
    if (problem !== undefined) throw xmlError(`invalid value ${showValue(path)} for <source path> of ${where}: ${problem}`);
  }
  return { name };
}

// ---------------------------------------------------------------- graphics, video

function localAddress(address: string, where: string): GraphicsDef['listen'] {
  if ((VNC_LOCAL_ADDRESSES as readonly string[]).includes(address)) return address as GraphicsDef['listen'];
  throw unsupported(
    `unsupported VNC listen address ${showValue(address)} for ${where}: Ferry's VNC server has no password or TLS, so it listens only on a local address (${VNC_LOCAL_ADDRESSES.join(' or ')}); reach it from elsewhere through an SSH tunnel`,
  );
}

function readGraphics(el: Element): GraphicsDef {
  const where = "<graphics type='vnc'>";
  refuseOtherChildren(el, ['listen'], where);
  refuseOtherAttributes(el, ['type', 'port', 'autoport', 'listen'], where);
  const portText = attr(el, 'port');
  if (portText !== undefined && !/^(-1|[0-9]{1,5})$/.test(portText)) throw xmlError(`invalid value ${showValue(portText)} for <graphics port>: expected -1 or a port number`);
  const autoportText = attr(el, 'autoport');
  const autoport =
    autoportText !== undefined
      ? choose(autoportText, { what: '<graphics autoport>', supported: ['yes', 'no'] }) === 'yes'
      : portText === undefined || portText === '-1';
  let port: number | undefined;
  if (!autoport) {
    if (portText === undefined || portText === '-1') throw xmlError("<graphics autoport='no'> needs a port");
    port = Number(portText);
    if (port < VNC_PORT_MIN || port > 65535) throw unsupported(`unsupported <graphics port='${port}'>: a VNC port is from ${VNC_PORT_MIN} to 65535`);
  } else if (portText !== undefined && portText !== '-1' && Number(portText) >= VNC_PORT_MIN && Number(portText) <= 65535) {
    // A live XML's port in use: shown (vncdisplay), never asked of QEMU, which takes a free one under autoport.
    port = Number(portText);
  }
  // The listen attribute and the first address <listen> must agree, as in libvirt.
  const listens = childElements(el, 'listen');
  if (listens.length > 1) throw unsupported('unsupported: more than one <listen> in <graphics>; Ferry listens on one local address');
  let address = attr(el, 'listen');
  const listen = listens[0];
  if (listen !== undefined) {
    choose(requiredAttr(listen, 'type', '<listen> of <graphics>'), {
      what: '<listen type> of <graphics>',
      supported: ['address'],
      libvirtOnly: ['network', 'socket', 'none'],
      why: 'VNC listens on a local address',
    });
    refuseOtherAttributes(listen, ['type', 'address'], '<listen> of <graphics>');
    const a = attr(listen, 'address');
    if (a !== undefined) {
      if (address !== undefined && address !== a) throw xmlError(`<graphics listen=${showValue(address)}> does not match its <listen address=${showValue(a)}>`);
      address = a;
    }
  }
  // libvirt's default vnc_listen.
  return { type: 'vnc', listen: localAddress(address ?? '127.0.0.1', where), autoport, ...(port !== undefined && { port }) };
}

/** Video models Ferry gives the guest; libvirt's others (qxl, cirrus, bochs, ...) are kept and reported as ignored. */
const VIDEO_MODELS = ['virtio', 'vga', 'none'] as const;

function videoModel(el: Element): string | undefined {
  const model = childElements(el, 'model')[0];
  return model === undefined ? undefined : attr(model, 'type');
}

function readVideo(el: Element): VideoDef {
  const where = '<video>';
  refuseOtherChildren(el, ['model'], where);
  refuseOtherAttributes(el, [], where);
  const model = requiredChild(el, 'model', where);
  refuseOtherChildren(model, [], '<model> of <video>');
  refuseOtherAttributes(model, ['type', 'heads', 'primary'], '<model> of <video>');
  const type = choose(requiredAttr(model, 'type', '<model> of <video>'), { what: '<video model type>', supported: VIDEO_MODELS });
  const heads = intAttr(model, 'heads', 1, 16, where);
  if (heads !== undefined && heads > 1 && type !== 'virtio') throw unsupported(`unsupported <video model type='${type}' heads='${heads}'>: only virtio video has more than one head`);
  const primary = attr(model, 'primary');
  if (primary !== undefined) choose(primary, { what: '<model primary> of <video>', supported: ['yes', 'no'] });
  return { model: type, ...(heads !== undefined && type === 'virtio' && { heads }) };
}

// ---------------------------------------------------------------- all

/**
 * Whether Ferry gives the guest this child of `<devices>`, for the
 * peripherals this module reads (undefined for other elements): the USB and
 * virtio-serial controllers, the machine's own root bus (pcie.0 on q35,
 * pci.0 on pc), every `<input>` (ps2 ones are built in), `<memballoon>`,
 * `<rng>`, unix `<channel>`s, VNC `<graphics>` and virtio/vga/none
 * `<video>`. The rest (other PCI controllers, SPICE, qxl video, spicevmc
 * channels, ...) is kept in the XML and reported as ignored.
 */
export function peripheralHonoured(el: Element, machine: string | undefined): boolean | undefined {
  const type = attr(el, 'type');
  switch (el.localName) {
    case 'controller':
      if (type === 'usb' || type === 'virtio-serial') return true;
      return type === 'pci' && attr(el, 'model') === (isQ35(machine) ? 'pcie-root' : 'pci-root');
    case 'input':
    case 'memballoon':
    case 'rng':
      return true;
    case 'channel':
      return type === 'unix';
    case 'graphics':
      return type === 'vnc';
    case 'video': {
      const model = videoModel(el);
      return model !== undefined && (VIDEO_MODELS as readonly string[]).includes(model);
    }
    default:
      return undefined;
  }
}

/**
 * Parts of honoured peripherals that are kept but have no effect, as
 * `element <child>` (e.g. `memballoon <stats>`: QEMU's statistics polling
 * is not switched on).
 */
export function ignoredPeripheralParts(devices: Element): string[] {
  const out: string[] = [];
  for (const el of childElements(devices, 'memballoon')) if (optionalChild(el, 'stats') !== undefined) out.push('memballoon <stats>');
  return out;
}

/**
 * Reads the peripherals from `<devices>`.
 *
 * @throws FerryError `xml_error` for invalid elements, `config_unsupported`
 *   for libvirt settings Ferry cannot give the guest.
 */
export function readPeripherals(devices: Element, machine: string | undefined): Peripherals {
  const out: Peripherals = {};
  const controllers = childElements(devices, 'controller');
  const usbs = controllers.filter((c) => attr(c, 'type') === 'usb');
  if (usbs.length > 1) throw unsupported("unsupported: more than one <controller type='usb'>; Ferry gives the guest one USB controller");
  if (usbs[0] !== undefined) out.usb = readUsbController(usbs[0], machine);
  const serials = controllers.filter((c) => attr(c, 'type') === 'virtio-serial');
  if (serials.length > 1) throw unsupported("unsupported: more than one <controller type='virtio-serial'>; Ferry gives the guest one");
  if (serials[0] !== undefined) out.virtioSerial = readVirtioSerial(serials[0]);

  const inputs = childElements(devices, 'input').map((el, i) => readInput(el, i + 1));
  if (inputs.some((i) => i.bus === 'usb')) {
    // libvirt gives an x86 guest its default USB controller when the XML names none; so does Ferry, for a USB input.
    out.usb ??= { model: isQ35(machine) ? 'qemu-xhci' : 'piix3-uhci' };
    if (out.usb.model === 'none') throw unsupported("a USB <input> needs a USB controller, and <controller type='usb' model='none'> removes it");
  }
  const ports = inputs.flatMap((i) => (i.usbPort === undefined ? [] : [i.usbPort]));
  if (new Set(ports).size !== ports.length) throw xmlError('two USB <input> devices use the same <address port>');
  if (inputs.length > 0) out.inputs = inputs;

  const balloons = childElements(devices, 'memballoon');
  if (balloons.length > 1) throw xmlError('<devices> has more than one <memballoon>');
  if (balloons[0] !== undefined) out.memballoon = readMemballoon(balloons[0]);

  const rngs = childElements(devices, 'rng').map((el, i) => readRng(el, i + 1));
  if (rngs.length > 0) out.rngs = rngs;

  const honoured = (el: Element): boolean => peripheralHonoured(el, machine) === true;
  const channels = childElements(devices, 'channel').filter(honoured).map((el, i) => readChannel(el, i + 1));
  const names = channels.map((c) => c.name);
  if (new Set(names).size !== names.length) throw xmlError('two <channel> elements use the same <target name>');
  if (channels.length > 31) throw unsupported('unsupported: more than 31 <channel> elements; the virtio-serial bus has 31 ports');
  if (channels.length > 0) out.channels = channels;

  const graphics = childElements(devices, 'graphics').filter(honoured);
  if (graphics.length > 1) throw unsupported("unsupported: more than one <graphics type='vnc'>; Ferry gives the guest one VNC server");
  if (graphics[0] !== undefined) out.graphics = readGraphics(graphics[0]);

  const videos = childElements(devices, 'video').filter(honoured);
  if (videos.length > 1) throw unsupported('unsupported: more than one <video>; Ferry gives the guest one video device');
  if (videos[0] !== undefined) out.video = readVideo(videos[0]);
  return out;
}
