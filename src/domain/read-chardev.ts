/** Reads `<serial>` and `<console>` elements, where a console is libvirt's alias for a serial port. */
import type { Element } from '@xmldom/xmldom';
import { choose } from './choice.js';
import { showValue } from '../errors/index.js';
import { attr, optionalChild, refuseStrayText, requiredAttr, requiredChild } from './dom.js';
import { hostPathProblem } from './paths.js';
import { unsupported, xmlError } from './refuse.js';
import type { CharDevDef } from './types.js';

/** ISA serial ports: COM1 to COM4. */
export const MAX_SERIAL_PORTS = 4;

const CHARDEV_TYPES_LIBVIRT = [
  'vc', 'dev', 'pipe', 'stdio', 'udp', 'tcp', 'spicevmc', 'spiceport', 'nmdm', 'qemu-vdagent', 'dbus',
];

interface Parsed {
  def: CharDevDef;
  /** The port written in the XML, if any. */
  port?: number;
}

function readPort(target: Element | undefined, where: string): number | undefined {
  const text = target === undefined ? undefined : attr(target, 'port');
  if (text === undefined) return undefined;
  if (!/^[0-9]{1,3}$/.test(text)) {
    throw xmlError(`invalid value ${showValue(text)} for <target port> of ${where}: expected a non-negative integer`);
  }
  const port = Number(text);
  if (port >= MAX_SERIAL_PORTS) {
    throw unsupported(`unsupported <target port='${port}'> for ${where}: Ferry provides ISA serial ports 0 to ${MAX_SERIAL_PORTS - 1}`);
  }
  return port;
}

function readSource(el: Element, def: CharDevDef, where: string): void {
  if (def.type !== 'file' && def.type !== 'unix') return;
  // A pty's <source path> is only the host pty of a running guest: informative, not configuration.
  const source = requiredChild(el, 'source', where);
  const path = requiredAttr(source, 'path', where);
  const problem = hostPathProblem(path);
  if (problem !== undefined) throw xmlError(`invalid value ${showValue(path)} for <source path> of ${where}: ${problem}`);
  def.path = path;
  if (def.type === 'file') {
    const append = attr(source, 'append');
    if (append !== undefined) def.append = choose(append, { what: `<source append> of ${where}`, supported: ['on', 'off'] }) === 'on';
  } else {
    // libvirt's default for a unix socket is to connect to an existing listener.
    def.mode = choose(attr(source, 'mode') ?? 'connect', { what: `<source mode> of ${where}`, supported: ['bind', 'connect'] as const });
  }
}

function readCharDev(el: Element, element: 'serial' | 'console', index: number): Parsed {
  const where = `${element} #${index}`;
  refuseStrayText(el, where);
  // libvirt treats a character device without a type as a pty.
  const type = choose(attr(el, 'type') ?? 'pty', {
    what: `<${element} type> of ${where}`,
    supported: ['file', 'pty', 'unix', 'null'] as const,
    libvirtOnly: CHARDEV_TYPES_LIBVIRT,
  });
  const def: CharDevDef = { element, type, targetPort: 0 };
  readSource(el, def, where);
  const target = optionalChild(el, 'target', where);
  if (target !== undefined) {
    const targetType = attr(target, 'type');
    if (element === 'serial') {
      if (targetType !== undefined) {
        choose(targetType, { what: `<target type> of ${where}`, supported: ['isa-serial'], libvirtOnly: '*' });
      }
      const model = optionalChild(target, 'model', where);
      const modelName = model === undefined ? undefined : attr(model, 'name');
      if (modelName !== undefined) {
        choose(modelName, { what: `<target><model name> of ${where}`, supported: ['isa-serial'], libvirtOnly: '*' });
      }
    } else if (targetType !== undefined) {
      choose(targetType, {
        what: `<target type> of ${where}`,
        supported: ['serial'],
        libvirtOnly: ['virtio', 'xen', 'uml', 'lxc', 'openvz', 'sclp', 'sclplm'],
        why: 'a console is always the guest serial port',
      });
    }
  }
  const port = readPort(target, where);
  return port === undefined ? { def } : { def, port };
}

/**
 * Reads the `<serial>` and `<console>` children of `<devices>`.
 *
 * The returned `serials` are exactly the serial devices the guest has: a
 * command-line builder creates one device per entry and nothing for
 * `consoles`. Each console is another name for the serial port its
 * `<target port>` gives (default 0), following libvirt's x86 convention:
 * when that `<serial>` exists, the serial's settings win and the console
 * entry repeats them; when it does not, the console itself defines the port
 * and is also added to `serials` (with `element: 'console'`). Serials without
 * a port take the lowest free port in document order.
 *
 * @throws FerryError `xml_error` for duplicate ports or bad values,
 *   `config_unsupported` for backends or targets Ferry cannot provide.
 */
export function readCharDevs(serialEls: Element[], consoleEls: Element[]): { serials: CharDevDef[]; consoles: CharDevDef[] } {
  const parsedSerials = serialEls.map((el, i) => readCharDev(el, 'serial', i + 1));
  const used = new Set<number>();
  for (const p of parsedSerials) {
    if (p.port === undefined) continue;
    if (used.has(p.port)) throw xmlError(`two <serial> elements use <target port='${p.port}'>`);
    used.add(p.port);
  }
  const serials: CharDevDef[] = [];
  for (const p of parsedSerials) {
    let port = p.port;
    if (port === undefined) {
      port = 0;
      while (used.has(port)) port++;
      if (port >= MAX_SERIAL_PORTS) throw unsupported(`too many <serial> devices: Ferry provides ${MAX_SERIAL_PORTS} ISA serial ports`);
      used.add(port);
    }
    serials.push({ ...p.def, targetPort: port });
  }

  const consoles: CharDevDef[] = [];
  const consolePorts = new Set<number>();
  consoleEls.forEach((el, i) => {
    const p = readCharDev(el, 'console', i + 1);
    const port = p.port ?? 0;
    if (consolePorts.has(port)) throw xmlError(`two <console> elements refer to serial port ${port}`);
    consolePorts.add(port);
    const serial = serials.find((s) => s.targetPort === port);
    if (serial !== undefined) {
      consoles.push({ ...serial, element: 'console' });
    } else {
      const def: CharDevDef = { ...p.def, targetPort: port };
      serials.push(def);
      consoles.push({ ...def });
    }
  });
  return { serials, consoles };
}
