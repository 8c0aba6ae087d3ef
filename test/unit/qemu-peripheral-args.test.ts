/**
 * QEMU arguments for the peripherals (src/qemu/peripheral-args.ts): JSON
 * devices and objects, ferryd's own channel socket path whatever the XML
 * says, `-vnc` only on a loopback address, and a fixed order so that both
 * hosts of a migration build the same PCI layout.
 */
import { describe, expect, it } from 'vitest';
import { DomainDocument } from '../../src/domain/document.js';
import type { DomainDef } from '../../src/domain/types.js';
import { buildQemuArgs } from '../../src/qemu/command-line.js';
import { channelSocketPath, peripheralArgs, vncOption } from '../../src/qemu/peripheral-args.js';
import { refusal } from '../support/refusal.js';

const UUID = '4dea22b3-1d52-d8f3-2516-782e98ab3fa0';
const RUN_DIR = '/run/ferry/qemu';

function parse(devices: string): DomainDef {
  return DomainDocument.parse(
    `<domain type='qemu'><name>p</name><uuid>${UUID}</uuid><memory>262148</memory><os><type machine='pc-q35-7.2'>hvm</type></os><features><acpi/></features><devices>${devices}</devices></domain>`,
  ).def;
}

/** The argv as [option, value] pairs, JSON values parsed. */
function pairs(args: string[]): Array<[string, unknown]> {
  const out: Array<[string, unknown]> = [];
  for (let i = 0; i < args.length; i += 2) {
    const v = args[i + 1]!;
    out.push([args[i]!, v.startsWith('{') ? JSON.parse(v) : v]);
  }
  return out;
}

describe('peripheral arguments', () => {
  it("builds virt-install's devices in a fixed order: xHCI, tablet, virtio-serial and its port, balloon, rng, virtio-vga, VNC", () => {
    const def = parse(
      "<controller type='usb' index='0' model='qemu-xhci' ports='15'/><controller type='virtio-serial' index='0'/>" +
        "<channel type='unix'><source mode='bind' path='/etc/evil,server=on'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>" +
        "<input type='tablet' bus='usb'><address type='usb' bus='0' port='1'/></input><input type='mouse' bus='ps2'/><input type='keyboard' bus='ps2'/>" +
        "<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics>" +
        "<video><model type='virtio' heads='1' primary='yes'/></video><memballoon model='virtio'/>" +
        "<rng model='virtio'><backend model='random'>/dev/urandom</backend><rate bytes='1024' period='1000'/></rng>",
    );
    const socket = `${RUN_DIR}/${UUID}.channel0`;
    expect(channelSocketPath(RUN_DIR, UUID, 0)).toBe(socket);
    expect(pairs(peripheralArgs(def, RUN_DIR))).toEqual([
      ['-device', { driver: 'qemu-xhci', id: 'usb', p2: 15, p3: 15 }],
      ['-device', { driver: 'usb-tablet', id: 'input0', bus: 'usb.0', port: '1' }],
      ['-device', { driver: 'virtio-serial-pci', id: 'virtio-serial0' }],
      // ferryd's socket, never the XML's path.
      ['-chardev', `socket,id=charchannel0,path=${socket},server=on,wait=off`],
      ['-device', { driver: 'virtserialport', bus: 'virtio-serial0.0', nr: 1, chardev: 'charchannel0', id: 'channel0', name: 'org.qemu.guest_agent.0' }],
      ['-device', { driver: 'virtio-balloon-pci', id: 'balloon0' }],
      ['-object', { 'qom-type': 'rng-random', id: 'objrng0', filename: '/dev/urandom' }],
      ['-device', { driver: 'virtio-rng-pci', rng: 'objrng0', id: 'rng0', 'max-bytes': 1024, period: 1000 }],
      ['-device', { driver: 'virtio-vga', id: 'video0', max_outputs: 1 }],
      ['-vnc', '127.0.0.1:0,to=59635'],
    ]);
  });

  it('is part of the whole command line, after the NICs, with -display none kept', () => {
    const args = buildQemuArgs(parse("<memballoon model='virtio'/><graphics type='vnc'/>"), {
      accel: 'tcg',
      qmpSocketPath: `${RUN_DIR}/${UUID}.qmp`,
      serialLogPath: '/var/lib/ferry/logs/p.serial.log',
      runDir: RUN_DIR,
    });
    expect(args[args.indexOf('-display') + 1]).toBe('none');
    expect(args).toContain('{"driver":"virtio-balloon-pci","id":"balloon0"}');
    expect(args[args.indexOf('-vnc') + 1]).toBe('127.0.0.1:0,to=59635');
  });

  it('passes the options it reads: balloon flags, builtin rng, virtio inputs, a channel without a controller, USB off, no video', () => {
    const def = parse(
      "<controller type='usb' model='none'/><input type='tablet' bus='virtio'/><input type='keyboard' bus='virtio'/>" +
        "<channel type='unix'><target type='virtio' name='a.b'/></channel><channel type='unix'><target type='virtio' name='c'/></channel>" +
        "<memballoon model='virtio' autodeflate='on' freePageReporting='on'/><rng model='virtio'><backend model='builtin'/></rng><video><model type='none'/></video>",
    );
    const p = pairs(peripheralArgs(def, RUN_DIR));
    expect(p).toEqual([
      ['-device', { driver: 'virtio-tablet-pci', id: 'input0' }],
      ['-device', { driver: 'virtio-keyboard-pci', id: 'input1' }],
      // As in libvirt, channels bring their bus.
      ['-device', { driver: 'virtio-serial-pci', id: 'virtio-serial0' }],
      ['-chardev', `socket,id=charchannel0,path=${RUN_DIR}/${UUID}.channel0,server=on,wait=off`],
      ['-device', { driver: 'virtserialport', bus: 'virtio-serial0.0', nr: 1, chardev: 'charchannel0', id: 'channel0', name: 'a.b' }],
      ['-chardev', `socket,id=charchannel1,path=${RUN_DIR}/${UUID}.channel1,server=on,wait=off`],
      ['-device', { driver: 'virtserialport', bus: 'virtio-serial0.0', nr: 2, chardev: 'charchannel1', id: 'channel1', name: 'c' }],
      ['-device', { driver: 'virtio-balloon-pci', id: 'balloon0', 'deflate-on-oom': true, 'free-page-reporting': true }],
      ['-object', { 'qom-type': 'rng-builtin', id: 'objrng0' }],
      ['-device', { driver: 'virtio-rng-pci', rng: 'objrng0', id: 'rng0' }],
    ]);
    expect(peripheralArgs(parse("<memballoon model='none'/><input type='mouse' bus='ps2'/>"), RUN_DIR)).toEqual([]);
  });

  it('builds the same arguments from the same XML on any host but for the run directory', () => {
    const def = parse("<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel><graphics type='vnc'/>");
    const a = peripheralArgs(def, '/run/a/qemu');
    const b = peripheralArgs(def, '/run/b/qemu');
    expect(a.map((x) => x.replace('/run/a/', '/run/X/'))).toEqual(b.map((x) => x.replace('/run/b/', '/run/X/')));
  });

  it('puts VNC on a loopback address only, fixed ports as display numbers', () => {
    expect(vncOption({ type: 'vnc', listen: '::1', autoport: false, port: 5905 })).toBe('[::1]:5');
    expect(vncOption({ type: 'vnc', listen: '::1', autoport: true })).toBe('[::1]:0,to=59635');
    // Under autoport a live XML's port is not asked of QEMU: another host (or a restart) takes a free one.
    expect(vncOption({ type: 'vnc', listen: '127.0.0.1', autoport: true, port: 5901 })).toBe('127.0.0.1:0,to=59635');
    // A definition built some other way than by the reader is checked again: -vnc has no escaping.
    const bad = { type: 'vnc', listen: '0.0.0.0,password=on', autoport: true } as unknown as Parameters<typeof vncOption>[0];
    expect(refusal(() => vncOption(bad)).code).toBe('config_unsupported');
    expect(refusal(() => vncOption({ type: 'vnc', listen: '127.0.0.1', autoport: false, port: 80 })).code).toBe('config_unsupported');
  });

  it('refuses a run directory too long for a unix socket, and an rng file the reader would have refused', () => {
    const def = parse("<channel type='unix'><target type='virtio' name='x'/></channel>");
    expect(refusal(() => peripheralArgs(def, `/${'d'.repeat(80)}`)).message).toMatch(/longer than a unix socket allows/);
    const rng = { ...parse(''), rngs: [{ backend: 'random', path: '/etc/shadow' }] } as unknown as DomainDef;
    expect(refusal(() => peripheralArgs(rng, RUN_DIR)).message).toMatch(/not a supported random source/);
  });
});
