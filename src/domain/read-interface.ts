/** Reads and checks one `<interface>` element into an {@link InterfaceDef}. */
import type { Element } from '@xmldom/xmldom';
import { choose } from './choice.js';
import { showValue } from '../errors/index.js';
import { attr, optionalChild, refuseStrayText, requiredAttr } from './dom.js';
import { ifnameProblem } from './ifname.js';
import { canonicalMac } from './mac.js';
import { unsupported, xmlError } from './refuse.js';
import type { InterfaceDef } from './types.js';

/** NIC models Ferry's QEMU builder knows how to create. */
export const NIC_MODELS: readonly string[] = ['virtio', 'e1000', 'e1000e', 'rtl8139'];

const INTERFACE_TYPES_LIBVIRT = [
  'vhostuser', 'server', 'client', 'mcast', 'network', 'internal', 'direct', 'hostdev', 'udp', 'vdpa', 'null', 'vds',
];

/** Children of a tap interface that would change what the tap is or does, and that Ferry does not carry out. */
const TAP_CHILDREN_REFUSED: Readonly<Record<string, string>> = {
  script: 'Ferry runs no interface scripts: it attaches the tap to <source bridge> itself',
  virtualport: 'Ferry attaches taps to Linux bridges only (no Open vSwitch or 802.1Qbh/bg port profiles)',
  vlan: 'Ferry sets no VLAN tags on taps',
  bandwidth: 'Ferry sets no traffic shaping on taps',
  mtu: "Ferry gives a tap its bridge's MTU and sets no other",
};

/** `<backend>` attributes of a tap interface that name other host devices than Ferry uses. */
const TAP_BACKEND_ATTRS_REFUSED = ['tap', 'vhost'];

/**
 * Reads `<interface>` number `index` (1-based, for messages). Runnable types:
 * `user` (QEMU's built-in slirp: no host set-up, survives migration to any
 * host); `bridge` (`<source bridge='NAME'/>` required: ferryd creates a tap
 * and enslaves it to that Linux bridge); `ethernet` (a tap with no bridge).
 * For the two tap types `<target dev>` names the tap (see docs/domain-xml.md).
 * Interface and bridge names follow Linux's rules ({@link ifnameProblem}).
 *
 * @throws FerryError `config_unsupported` naming any other interface type,
 *   backend, NIC model or tap feature Ferry does not carry out; `xml_error`
 *   for a malformed MAC, a missing bridge or a bad interface name.
 */
export function readInterface(el: Element, index: number): InterfaceDef {
  const where = `interface #${index}`;
  refuseStrayText(el, where);
  const type = choose(requiredAttr(el, 'type', where), {
    what: `<interface type> of ${where}`,
    supported: ['user', 'bridge', 'ethernet'] as const,
    libvirtOnly: INTERFACE_TYPES_LIBVIRT,
    why: 'other types need host networking Ferry does not set up (libvirt networks, macvtap, vhost-user, host devices, ...)',
  });
  const def: InterfaceDef = { type };
  const backend = optionalChild(el, 'backend', where);
  const backendType = backend === undefined ? undefined : attr(backend, 'type');
  if (backendType !== undefined) {
    choose(backendType, { what: `<backend type> of ${where}`, supported: ['default'], libvirtOnly: '*', why: "only QEMU's built-in slirp backend" });
  }
  const mac = optionalChild(el, 'mac', where);
  if (mac !== undefined) {
    const address = requiredAttr(mac, 'address', where);
    const result = canonicalMac(address);
    if (!result.ok) throw xmlError(`invalid value ${showValue(address)} for <mac address> of ${where}: ${result.problem}`);
    def.mac = result.mac;
  }
  const model = optionalChild(el, 'model', where);
  if (model !== undefined) {
    def.model = choose(requiredAttr(model, 'type', where), { what: `<model type> of ${where}`, supported: NIC_MODELS, libvirtOnly: '*' });
  }
  if (type !== 'user') readTap(el, def, where);
  return def;
}

/** The tap parts of a bridge or ethernet interface: bridge name, tap name, and the children Ferry refuses. */
function readTap(el: Element, def: InterfaceDef, where: string): void {
  for (const [child, why] of Object.entries(TAP_CHILDREN_REFUSED)) {
    if (optionalChild(el, child, where) !== undefined) throw unsupported(`unsupported <${child}> in ${where} (type '${def.type}'): ${why}`);
  }
  const backend = optionalChild(el, 'backend', where);
  for (const name of TAP_BACKEND_ATTRS_REFUSED) {
    if (backend !== undefined && attr(backend, name) !== undefined) {
      throw unsupported(`unsupported <backend ${name}> in ${where} (type '${def.type}'): ferryd creates the tap through /dev/net/tun and QEMU runs without vhost-net`);
    }
  }
  const source = optionalChild(el, 'source', where);
  if (def.type === 'bridge') {
    if (source === undefined) throw xmlError(`missing <source bridge='NAME'/> in ${where} (type 'bridge'): it names the host bridge the guest joins`);
    def.bridge = ifname(requiredAttr(source, 'bridge', `<source> of ${where}`), `<source bridge> of ${where}`);
  } else if (source !== undefined) {
    throw unsupported(`unsupported <source> in ${where} (type 'ethernet'): Ferry creates the tap and attaches it to nothing; use type='bridge' to join a bridge`);
  }
  const target = optionalChild(el, 'target', where);
  if (target === undefined) return;
  const managed = attr(target, 'managed');
  if (managed !== undefined) {
    choose(managed, { what: `<target managed> of ${where}`, supported: ['yes'], libvirtOnly: ['no'], why: 'ferryd always creates and removes the tap itself' });
  }
  const dev = attr(target, 'dev');
  if (dev !== undefined) def.targetDev = ifname(dev, `<target dev> of ${where}`);
}

function ifname(name: string, what: string): string {
  const problem = ifnameProblem(name);
  if (problem !== undefined) throw xmlError(`invalid value ${showValue(name)} for ${what}: ${problem}`);
  return name;
}
