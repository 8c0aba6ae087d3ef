/**
 * What a running guest's live XML shows of the things its host chose for
 * it, as libvirt's does: the VNC port QEMU listens on and the unix socket
 * of each virtio channel. Both are chosen afresh on every host that runs
 * the guest (a migration destination too), so they never travel as
 * configuration.
 */
import { FerryError, showValue } from '../errors/index.js';
import { childElements, insertBefore, optionalChild, appendIndented } from './dom.js';
import { DomainDocument } from './document.js';
import { hostPathProblem } from './paths.js';
import { domainRoot } from './read-domain.js';
import { parseXmlStrict } from './xml-parse.js';
import { serializeDocument } from './xml-serialize.js';

/** What the host chose for a running guest. */
export interface LiveDeviceChoices {
  /** The TCP port of the VNC server, when the guest has `<graphics type='vnc'>`. */
  vncPort?: number;
  /** The socket path of each virtio channel, in the order of {@link DomainDef.channels}. */
  channelPaths: readonly string[];
}

/**
 * `doc` with `<graphics port>` set to the port in use and each
 * `<channel>` given `<source mode='bind' path=...>` (replacing any path the
 * XML named: ferryd never uses one, see qemu/peripheral-args.ts). Nothing
 * else changes.
 *
 * @throws FerryError `invalid_arg` when the choices do not fit the definition.
 */
export function withLiveDevices(doc: DomainDocument, live: LiveDeviceChoices): DomainDocument {
  const channels = doc.def.channels ?? [];
  if (live.channelPaths.length !== channels.length) {
    throw new FerryError('invalid_arg', `domain '${doc.def.name}' has ${channels.length} channels, ${live.channelPaths.length} socket paths were given`);
  }
  for (const p of live.channelPaths) {
    const problem = hostPathProblem(p);
    if (problem !== undefined) throw new FerryError('invalid_arg', `invalid channel socket path ${showValue(p)}: ${problem}`);
  }
  if (live.vncPort !== undefined && (doc.def.graphics === undefined || !Number.isInteger(live.vncPort) || live.vncPort < 1 || live.vncPort > 65535)) {
    throw new FerryError('invalid_arg', `VNC port ${live.vncPort} does not fit domain '${doc.def.name}'`);
  }
  if (live.vncPort === undefined && live.channelPaths.length === 0) return doc;
  const dom = parseXmlStrict(doc.toXml());
  const devices = optionalChild(domainRoot(dom), 'devices')!;
  if (live.vncPort !== undefined) childElements(devices, 'graphics')[0]!.setAttribute('port', String(live.vncPort));
  childElements(devices, 'channel').forEach((el, i) => {
    let source = optionalChild(el, 'source');
    if (source === undefined) {
      source = dom.createElement('source');
      const first = childElements(el)[0];
      if (first !== undefined) insertBefore(first, source);
      else appendIndented(el, source);
    }
    source.setAttribute('mode', 'bind');
    source.setAttribute('path', live.channelPaths[i]!);
  });
  return DomainDocument.parse(serializeDocument(dom));
}
