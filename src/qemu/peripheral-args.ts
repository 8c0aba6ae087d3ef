/**
 * QEMU arguments for the cheap peripherals of a domain (read in
 * domain/read-peripherals.ts): the USB controller and its tablet, virtio
 * inputs, the virtio-serial bus and its channels, the memory balloon, the
 * RNG, the video card and the VNC server.
 *
 * Every device and object is a JSON `-device`/`-object`, so user strings
 * stay JSON strings. The two legacy options, `-chardev` (QEMU 7.2 takes no
 * JSON there) and `-vnc`, carry only ferryd's own values: the channel
 * socket path is ferryd's, under its run directory (never a path from the
 * XML, which could point anywhere on the host), and the VNC address is one
 * of two loopback constants.
 *
 * Per-host things are chosen on each host: the channel sockets are named by
 * the domain's UUID under that host's run directory, and an autoport VNC
 * server takes the first free port from 5900 (QEMU's `to=`, so no other
 * process can take the port between a check and QEMU's bind); ferryd
 * reads the port back with `query-vnc` for the live XML. The devices are
 * emitted in a fixed order, so both hosts of a migration build the same
 * PCI layout from the same XML.
 */
import { join } from 'node:path';
import { RNG_RANDOM_SOURCES, VNC_LOCAL_ADDRESSES, VNC_PORT_MIN } from '../domain/read-peripherals.js';
import type { DomainDef, GraphicsDef, InputDef } from '../domain/types.js';
import { FerryError, showValue } from '../errors/index.js';
import { jsonOption, legacyOption } from './option-syntax.js';

/** sun_path holds 108 bytes with the terminating NUL. */
const MAX_UNIX_SOCKET_PATH = 107;

/** The VNC port range an autoport server may take (libvirt's default range, from display :0). */
export const VNC_AUTOPORT_RANGE = { min: VNC_PORT_MIN, max: 65535 } as const;

/** QEMU's id of the USB controller; its bus is `usb.0`. */
const USB_ID = 'usb';
/** QEMU's id of the virtio-serial controller; its bus is `virtio-serial0.0`. */
const VIRTIO_SERIAL_ID = 'virtio-serial0';

/** The unix socket of channel number `index` (0-based) of the domain `uuid`, under the host's QEMU run directory. */
export function channelSocketPath(runDir: string, uuid: string, index: number): string {
  return join(runDir, `${uuid}.channel${index}`);
}

/**
 * The arguments for the peripherals, in a fixed order: USB controller,
 * inputs, virtio-serial and channels, balloon, RNGs, video, VNC.
 *
 * @param runDir ferryd's QEMU run directory on this host (channel sockets go there)
 * @throws FerryError `config_unsupported` for a definition that cannot be expressed
 */
export function peripheralArgs(def: DomainDef, runDir: string): string[] {
  const args: string[] = [];
  const usb = def.usb;
  if (usb !== undefined && usb.model !== 'none') {
    const driver = { 'qemu-xhci': 'qemu-xhci', 'nec-xhci': 'nec-usb-xhci', 'piix3-uhci': 'piix3-usb-uhci' }[usb.model];
    const xhci = usb.model !== 'piix3-uhci';
    args.push('-device', jsonOption({ driver, id: USB_ID, ...(xhci && usb.ports !== undefined && { p2: usb.ports, p3: usb.ports }) }, 'USB controller'));
  }
  (def.inputs ?? []).forEach((input, i) => args.push(...inputArgs(input, i, usb !== undefined && usb.model !== 'none')));

  const channels = def.channels ?? [];
  if (def.virtioSerial !== undefined || channels.length > 0) {
    // As in libvirt, channels get a virtio-serial controller even when the XML names none.
    const vs = def.virtioSerial ?? {};
    args.push('-device', jsonOption({ driver: 'virtio-serial-pci', id: VIRTIO_SERIAL_ID, max_ports: vs.ports, vectors: vs.vectors }, 'virtio-serial controller'));
  }
  channels.forEach((ch, i) => {
    const what = `channel ${ch.name}`;
    const path = channelSocketPath(runDir, def.uuid, i);
    if (Buffer.byteLength(path) > MAX_UNIX_SOCKET_PATH) {
      throw unsupported(`${what}: its socket path ${showValue(path)} is longer than a unix socket allows (${MAX_UNIX_SOCKET_PATH} bytes); give ferryd a shorter --run-dir`);
    }
    args.push('-chardev', legacyOption('socket', [['id', `charchannel${i}`], ['path', path], ['server', 'on'], ['wait', 'off']], what));
    args.push('-device', jsonOption({ driver: 'virtserialport', bus: `${VIRTIO_SERIAL_ID}.0`, nr: i + 1, chardev: `charchannel${i}`, id: `channel${i}`, name: ch.name }, what));
  });

  const balloon = def.memballoon;
  if (balloon !== undefined && balloon.model === 'virtio') {
    args.push('-device', jsonOption({ driver: 'virtio-balloon-pci', id: 'balloon0', 'deflate-on-oom': balloon.autodeflate, 'free-page-reporting': balloon.freePageReporting }, 'memory balloon'));
  }

  (def.rngs ?? []).forEach((rng, i) => {
    const what = `rng ${i}`;
    if (rng.backend === 'random') {
      // Checked again: the backend opens this file, and a definition may be built some other way than by the reader.
      const filename = rng.path ?? '/dev/urandom';
      if (!(RNG_RANDOM_SOURCES as readonly string[]).includes(filename)) throw unsupported(`${what}: ${showValue(filename)} is not a supported random source; use ${RNG_RANDOM_SOURCES.join(' or ')}`);
      args.push('-object', jsonOption({ 'qom-type': 'rng-random', id: `objrng${i}`, filename }, `${what} backend`));
    } else if (rng.backend === 'builtin') {
      args.push('-object', jsonOption({ 'qom-type': 'rng-builtin', id: `objrng${i}` }, `${what} backend`));
    } else {
      throw unsupported(`${what}: backend ${showValue(rng.backend)} is not supported; use random or builtin`);
    }
    args.push('-device', jsonOption({ driver: 'virtio-rng-pci', rng: `objrng${i}`, id: `rng${i}`, 'max-bytes': rng.rateBytes, period: rng.rateBytes === undefined ? undefined : rng.ratePeriodMs ?? 1000 }, what));
  });

  const video = def.video;
  if (video !== undefined && video.model !== 'none') {
    args.push('-device', jsonOption(video.model === 'virtio' ? { driver: 'virtio-vga', id: 'video0', max_outputs: video.heads } : { driver: 'VGA', id: 'video0' }, 'video'));
  }
  if (def.graphics !== undefined) args.push('-vnc', vncOption(def.graphics));
  return args;
}

function inputArgs(input: InputDef, i: number, haveUsb: boolean): string[] {
  const what = `input ${i} (${input.type} on ${input.bus})`;
  switch (input.bus) {
    case 'ps2':
      // The i8042 of the PC machines (pc and q35) is built in: nothing to add.
      if (input.type === 'tablet') throw unsupported(`${what}: the PS/2 bus has no tablet`);
      return [];
    case 'usb': {
      if (!haveUsb) throw unsupported(`${what} needs a USB controller`);
      const driver = { tablet: 'usb-tablet', mouse: 'usb-mouse', keyboard: 'usb-kbd' }[input.type];
      return ['-device', jsonOption({ driver, id: `input${i}`, bus: `${USB_ID}.0`, port: input.usbPort }, what)];
    }
    case 'virtio': {
      const driver = { tablet: 'virtio-tablet-pci', mouse: 'virtio-mouse-pci', keyboard: 'virtio-keyboard-pci' }[input.type];
      return ['-device', jsonOption({ driver, id: `input${i}` }, what)];
    }
    default:
      throw unsupported(`${what}: bus ${showValue(input.bus)} is not supported`);
  }
}

/**
 * `-vnc` for a loopback address: `127.0.0.1:DISPLAY` or `[::1]:DISPLAY`,
 * with `to=` up to the last port for autoport. The address is checked
 * against the two constants again, because `-vnc` has no escaping and a
 * definition may be built some other way than by the reader.
 */
export function vncOption(g: GraphicsDef): string {
  if (g.type !== 'vnc') throw unsupported(`graphics type ${showValue(g.type)} is not supported; only vnc`);
  if (!(VNC_LOCAL_ADDRESSES as readonly string[]).includes(g.listen)) throw unsupported(`VNC listen address ${showValue(g.listen)} is not a local address (${VNC_LOCAL_ADDRESSES.join(' or ')})`);
  const host = g.listen === '::1' ? '[::1]' : g.listen;
  if (g.autoport) return `${host}:0,to=${VNC_AUTOPORT_RANGE.max - VNC_AUTOPORT_RANGE.min}`;
  const port = g.port;
  if (port === undefined || !Number.isInteger(port) || port < VNC_AUTOPORT_RANGE.min || port > VNC_AUTOPORT_RANGE.max) {
    throw unsupported(`VNC port ${String(port)} is not from ${VNC_AUTOPORT_RANGE.min} to ${VNC_AUTOPORT_RANGE.max}`);
  }
  return `${host}:${port - VNC_AUTOPORT_RANGE.min}`;
}

function unsupported(message: string): FerryError {
  return new FerryError('config_unsupported', message);
}
