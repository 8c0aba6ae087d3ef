/** Reads and checks one `<interface>` element into an {@link InterfaceDef}. */
import type { Element } from '@xmldom/xmldom';
import { choose } from './choice.js';
import { showValue } from '../errors/index.js';
import { attr, optionalChild, refuseStrayText, requiredAttr } from './dom.js';
import { canonicalMac } from './mac.js';
import { xmlError } from './refuse.js';
import type { InterfaceDef } from './types.js';

/** NIC models Ferry's QEMU builder knows how to create. */
export const NIC_MODELS: readonly string[] = ['virtio', 'e1000', 'e1000e', 'rtl8139'];

const INTERFACE_TYPES_LIBVIRT = [
  'ethernet', 'vhostuser', 'server', 'client', 'mcast', 'network', 'bridge', 'internal', 'direct', 'hostdev', 'udp', 'vdpa', 'null', 'vds',
];

/**
 * Reads `<interface>` number `index` (1-based, for messages). Only
 * user-mode networking (`type='user'`, QEMU's built-in slirp) is runnable:
 * it needs no host set-up and survives migration to any host.
 *
 * @throws FerryError `config_unsupported` naming any other interface type,
 *   backend or NIC model; `xml_error` for a malformed MAC.
 */
export function readInterface(el: Element, index: number): InterfaceDef {
  const where = `interface #${index}`;
  refuseStrayText(el, where);
  const type = choose(requiredAttr(el, 'type', where), {
    what: `<interface type> of ${where}`,
    supported: ['user'] as const,
    libvirtOnly: INTERFACE_TYPES_LIBVIRT,
    why: 'guests get user-mode networking, which needs no host set-up',
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
  return def;
}
