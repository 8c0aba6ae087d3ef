/**
 * Reading the cheap peripherals (src/domain/read-peripherals.ts): what is
 * accepted into the model, what is refused (xml_error for libvirt-invalid
 * XML, config_unsupported for what Ferry cannot give the guest), what is
 * kept and reported as ignored, and the live XML a host writes for them
 * (src/domain/live-devices.ts).
 */
import { describe, expect, it } from 'vitest';
import { DomainDocument } from '../../src/domain/document.js';
import { withLiveDevices } from '../../src/domain/live-devices.js';
import { refusal } from '../support/refusal.js';

/** A q35 domain with `devices` inside `<devices>`. */
function xml(devices: string, machine = 'pc-q35-7.2'): string {
  return `<domain type='qemu'><name>p</name><uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid><memory>262148</memory><os><type machine='${machine}'>hvm</type></os><devices>${devices}</devices></domain>`;
}

function def(devices: string, machine?: string): DomainDocument['def'] {
  return DomainDocument.parse(xml(devices, machine)).def;
}

function refused(devices: string, machine?: string): { code: string; message: string } {
  const err = refusal(() => DomainDocument.parse(xml(devices, machine)));
  return { code: err.code, message: err.message };
}

const VIRT_INSTALL = [
  "<controller type='usb' index='0' model='qemu-xhci' ports='15'><address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/></controller>",
  "<controller type='pci' index='0' model='pcie-root'/>",
  "<controller type='pci' index='1' model='pcie-root-port'><model name='pcie-root-port'/><target chassis='1' port='0x10'/></controller>",
  "<controller type='virtio-serial' index='0'/>",
  "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>",
  "<input type='tablet' bus='usb'><address type='usb' bus='0' port='1'/></input>",
  "<input type='mouse' bus='ps2'/>",
  "<input type='keyboard' bus='ps2'/>",
  "<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics>",
  "<video><model type='virtio' heads='1' primary='yes'/></video>",
  "<memballoon model='virtio'/>",
  "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>",
].join('');

describe('peripherals as virt-install writes them', () => {
  it('are read into the model; only the pcie-root-port is left over as ignored', () => {
    const d = def(VIRT_INSTALL);
    expect(d).toMatchObject({
      usb: { model: 'qemu-xhci', ports: 15 },
      virtioSerial: {},
      channels: [{ name: 'org.qemu.guest_agent.0' }],
      inputs: [
        { type: 'tablet', bus: 'usb', usbPort: '1' },
        { type: 'mouse', bus: 'ps2' },
        { type: 'keyboard', bus: 'ps2' },
      ],
      graphics: { type: 'vnc', listen: '127.0.0.1', autoport: true },
      video: { model: 'virtio', heads: 1 },
      memballoon: { model: 'virtio' },
      rngs: [{ backend: 'random', path: '/dev/urandom' }],
    });
    expect(d.ignored).toEqual(['controller (pcie-root-port)']);
  });

  it("takes libvirt's defaults: a tablet is USB, mouse and keyboard PS/2, the USB model by machine, VNC on 127.0.0.1", () => {
    const q35 = def("<controller type='usb'/><input type='tablet'/><input type='mouse'/><graphics type='vnc'/>");
    expect(q35.usb).toEqual({ model: 'qemu-xhci' });
    expect(q35.inputs).toEqual([{ type: 'tablet', bus: 'usb' }, { type: 'mouse', bus: 'ps2' }]);
    expect(q35.graphics).toEqual({ type: 'vnc', listen: '127.0.0.1', autoport: true });
    expect(def("<controller type='usb'/>", 'pc').usb).toEqual({ model: 'piix3-uhci' });
    // A USB input without a controller gets the machine's default one, as libvirt adds it.
    expect(def("<input type='tablet'/>").usb).toEqual({ model: 'qemu-xhci' });
    expect(def("<input type='keyboard' bus='usb'/>", 'pc').usb).toEqual({ model: 'piix3-uhci' });
    // pc's root bus is honoured, q35's is pcie-root.
    expect(def("<controller type='pci' model='pci-root'/>", 'pc').ignored).toBeUndefined();
    expect(def("<controller type='pci' model='pci-root'/>").ignored).toEqual(['controller (pci-root)']);
  });

  it('reads the options it passes on: balloon flags, rng rate and builtin backend, fixed VNC port on ::1, virtio inputs', () => {
    const d = def(
      "<memballoon model='virtio' autodeflate='on' freePageReporting='off'/>" +
        "<rng model='virtio'><backend model='random'>/dev/random</backend><rate bytes='1024' period='2000'/></rng>" +
        "<rng model='virtio'><backend model='builtin'/><rate bytes='512'/></rng>" +
        "<graphics type='vnc' port='5907' autoport='no'><listen type='address' address='::1'/></graphics>" +
        "<input type='keyboard' bus='virtio'/><video><model type='none'/></video>",
    );
    expect(d.memballoon).toEqual({ model: 'virtio', autodeflate: true, freePageReporting: false });
    expect(d.rngs).toEqual([
      { backend: 'random', path: '/dev/random', rateBytes: 1024, ratePeriodMs: 2000 },
      { backend: 'builtin', rateBytes: 512, ratePeriodMs: 1000 },
    ]);
    expect(d.graphics).toEqual({ type: 'vnc', listen: '::1', autoport: false, port: 5907 });
    expect(d.inputs).toEqual([{ type: 'keyboard', bus: 'virtio' }]);
    expect(d.video).toEqual({ model: 'none' });
    expect(def("<memballoon model='none'/>").memballoon).toEqual({ model: 'none' });
  });

  it('keeps what it does not give the guest and reports it: SPICE, qxl video, spicevmc channels, balloon statistics', () => {
    const d = def(
      "<graphics type='spice' autoport='yes'><image compression='off'/></graphics><video><model type='qxl' ram='65536'/></video>" +
        "<channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel><memballoon model='virtio'><stats period='10'/></memballoon>",
    );
    expect(d.graphics).toBeUndefined();
    expect(d.video).toBeUndefined();
    expect(d.channels).toBeUndefined();
    expect(d.memballoon).toEqual({ model: 'virtio' });
    expect(d.ignored).toEqual(['graphics (spice)', 'video (qxl)', 'channel (spicevmc)', 'memballoon <stats>']);
  });
});

describe('refusals', () => {
  const cases: Array<[string, string, string, RegExp]> = [
    ['VNC on every address', "<graphics type='vnc' listen='0.0.0.0'/>", 'config_unsupported', /VNC listen address '0\.0\.0\.0'.*local address \(127\.0\.0\.1 or ::1\)/],
    ['VNC on a LAN address', "<graphics type='vnc'><listen type='address' address='10.0.0.5'/></graphics>", 'config_unsupported', /'10\.0\.0\.5'.*only on a local address/],
    ['VNC on a network', "<graphics type='vnc'><listen type='network' network='default'/></graphics>", 'config_unsupported', /'network' for <listen type>/],
    ['a VNC password', "<graphics type='vnc' passwd='secret'/>", 'config_unsupported', /attribute 'passwd'/],
    ['a VNC websocket', "<graphics type='vnc' websocket='5700'/>", 'config_unsupported', /attribute 'websocket'/],
    ['a VNC port below 5900', "<graphics type='vnc' port='22' autoport='no'/>", 'config_unsupported', /5900 to 65535/],
    ['a fixed VNC port missing', "<graphics type='vnc' autoport='no'/>", 'xml_error', /needs a port/],
    ['listen attribute and element disagreeing', "<graphics type='vnc' listen='127.0.0.1'><listen type='address' address='::1'/></graphics>", 'xml_error', /does not match/],
    ['two VNC servers', "<graphics type='vnc'/><graphics type='vnc'/>", 'config_unsupported', /more than one <graphics type='vnc'>/],
    ['an RNG reading another file', "<rng model='virtio'><backend model='random'>/etc/shadow</backend></rng>", 'config_unsupported', /'\/etc\/shadow' is not a supported random source/],
    ['an EGD RNG', "<rng model='virtio'><backend model='egd' type='tcp'/></rng>", 'config_unsupported', /'egd'/],
    ['an RNG rate without bytes', "<rng model='virtio'><backend model='random'/><rate period='100'/></rng>", 'xml_error', /missing attribute 'bytes'/],
    ['a transitional balloon', "<memballoon model='virtio-transitional'/>", 'config_unsupported', /<memballoon model>/],
    ['a balloon without a model', '<memballoon/>', 'xml_error', /missing attribute 'model'/],
    ['a channel connecting out', "<channel type='unix'><source mode='connect' path='/tmp/x'/><target type='virtio' name='a.b'/></channel>", 'config_unsupported', /'connect'/],
    ['a guestfwd channel', "<channel type='unix'><target type='guestfwd' address='10.0.2.1' port='4600'/></channel>", 'config_unsupported', /'guestfwd' for <target type>/],
    ['a channel name with a slash', "<channel type='unix'><target type='virtio' name='../x'/></channel>", 'config_unsupported', /<target name> '\.\.\/x'/],
    ['two channels of one name', "<channel type='unix'><target type='virtio' name='a'/></channel><channel type='unix'><target type='virtio' name='a'/></channel>", 'xml_error', /same <target name>/],
    ['a USB tablet with USB off', "<controller type='usb' model='none'/><input type='tablet'/>", 'config_unsupported', /needs a USB controller/],
    ['a PS/2 tablet', "<input type='tablet' bus='ps2'/>", 'config_unsupported', /PS\/2 bus has no tablet/],
    ['a passthrough input', "<input type='passthrough' bus='virtio'/>", 'config_unsupported', /'passthrough'/],
    ['the ICH9 companion set', "<controller type='usb' model='ich9-ehci1'/>", 'config_unsupported', /'ich9-ehci1'/],
    ['a second USB controller', "<controller type='usb' index='1'/>", 'config_unsupported', /index='1'/],
    ['ports on a UHCI', "<controller type='usb' model='piix3-uhci' ports='4'/>", 'config_unsupported', /only xHCI/],
    ['a second USB port on bus 1', "<controller type='usb'/><input type='tablet'><address type='usb' bus='1' port='1'/></input>", 'config_unsupported', /one USB bus/],
    ['a video with two heads on vga', "<video><model type='vga' heads='2'/></video>", 'config_unsupported', /only virtio video/],
    ['a video with 3D acceleration', "<video><model type='virtio'><acceleration accel3d='yes'/></model></video>", 'config_unsupported', /<acceleration>/],
  ];
  for (const [what, devices, code, message] of cases) {
    it(`refuses ${what}`, () => {
      const r = refused(devices);
      expect(r.code, r.message).toBe(code);
      expect(r.message).toMatch(message);
    });
  }
});

describe('the live XML of a running guest', () => {
  const doc = DomainDocument.parse(xml(VIRT_INSTALL));

  it('shows the VNC port in use and the channel socket ferryd chose, changing nothing else', () => {
    const live = withLiveDevices(doc, { vncPort: 5901, channelPaths: ['/run/ferry/qemu/u.channel0'] });
    const out = live.toXml();
    expect(out).toContain("<graphics type='vnc' port='5901' autoport='yes' listen='127.0.0.1'>");
    expect(out).toContain("<channel type='unix'><source mode='bind' path='/run/ferry/qemu/u.channel0'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>");
    expect(out.replace(" port='5901'", " port='-1'").replace("<source mode='bind' path='/run/ferry/qemu/u.channel0'/>", '')).toBe(doc.toXml());
    // The port in use is in the model (for vncdisplay); autoport stays, so a new launch takes a free port.
    expect(live.def.graphics).toEqual({ ...doc.def.graphics, port: 5901 });
  });

  it("replaces a channel path the XML names (another host's, or a user's) with this host's", () => {
    const other = withLiveDevices(doc, { vncPort: 5900, channelPaths: ['/run/a/qemu/u.channel0'] });
    const here = withLiveDevices(other, { vncPort: 5902, channelPaths: ['/run/b/qemu/u.channel0'] });
    expect(here.toXml()).toContain("<source mode='bind' path='/run/b/qemu/u.channel0'/>");
    expect(here.toXml()).not.toContain('/run/a/');
    expect(here.toXml()).toContain("port='5902'");
  });

  it('refuses choices that do not fit the definition', () => {
    expect(refusal(() => withLiveDevices(doc, { channelPaths: [] })).code).toBe('invalid_arg');
    expect(refusal(() => withLiveDevices(doc, { channelPaths: ['relative'] })).code).toBe('invalid_arg');
    expect(refusal(() => withLiveDevices(DomainDocument.parse(xml('')), { vncPort: 5900, channelPaths: [] })).code).toBe('invalid_arg');
  });
});
