/** Reads and checks one `<disk>` element into a {@link DiskDef}. */
import type { Element } from '@xmldom/xmldom';
import { choose } from './choice.js';
import { showValue } from '../errors/index.js';
import { attr, childElements, optionalChild, refuseStrayText, requiredAttr, requiredChild } from './dom.js';
import { hostPathProblem } from './paths.js';
import { xmlError } from './refuse.js';
import type { BackingStoreDef, DiskCache, DiskDef, DiskErrorPolicy, DiskFormat } from './types.js';

/** Target device names Ferry accepts: a bus prefix and one to three letters. */
export const DISK_TARGET_PATTERN = /^(vd|sd|hd)[a-z]{1,3}$/;

const STORAGE_TYPES_LIBVIRT = ['dir', 'network', 'volume', 'nvme', 'vhostuser', 'vhostvdpa'];
const FORMATS: readonly DiskFormat[] = ['raw', 'qcow2'];
const CACHE_MODES: readonly DiskCache[] = ['default', 'none', 'writethrough', 'writeback', 'directsync', 'unsafe'];
const ERROR_POLICIES: readonly DiskErrorPolicy[] = ['stop', 'report', 'ignore', 'enospace'];
type DiskBus = DiskDef['targetBus'];
const BUSES: readonly DiskBus[] = ['virtio', 'ide', 'sata', 'scsi'];
const BUS_BY_PREFIX: Readonly<Record<string, DiskBus>> = { vd: 'virtio', sd: 'scsi', hd: 'ide' };

function storageType(el: Element, what: string, dflt?: 'file'): 'file' | 'block' {
  const value = dflt === undefined ? requiredAttr(el, 'type', what) : (attr(el, 'type') ?? dflt);
  return choose(value, {
    what: `<${el.localName} type> of ${what}`,
    supported: ['file', 'block'],
    libvirtOnly: STORAGE_TYPES_LIBVIRT,
    why: 'images must be local files or block devices',
  });
}

function format(value: string, what: string): DiskFormat {
  return choose(value, { what, supported: FORMATS, libvirtOnly: '*' });
}

// `<source file=...>` for file storage, `<source dev=...>` for block storage.
function sourcePath(source: Element, type: 'file' | 'block', where: string): string {
  const name = type === 'file' ? 'file' : 'dev';
  const path = attr(source, name);
  if (path === undefined) {
    throw xmlError(`missing attribute '${name}' on <source> of ${where} (a type='${type}' source names its path with ${name}=...)`);
  }
  const problem = hostPathProblem(path);
  if (problem !== undefined) throw xmlError(`invalid value ${showValue(path)} for <source ${name}> of ${where}: ${problem}`);
  return path;
}

// An empty `<backingStore/>` says "no backing file" and ends the chain.
function isTerminator(el: Element): boolean {
  return el.attributes.length === 0 && childElements(el).length === 0;
}

function readBackingStore(parent: Element, parentFormat: DiskFormat, disk: string, layer: number): BackingStoreDef | undefined {
  const what = layer === 1 ? disk : `backing layer ${layer - 1} of ${disk}`;
  const el = optionalChild(parent, 'backingStore', what);
  if (el === undefined || isTerminator(el)) return undefined;
  if (parentFormat === 'raw') {
    throw xmlError(
      `invalid <backingStore> in ${what}: a raw image cannot have a backing file ` +
        `(set <driver type='qcow2'> or <format type='qcow2'> on the layer that has one)`,
    );
  }
  const where = `backing layer ${layer} of ${disk}`;
  refuseStrayText(el, where);
  const type = storageType(el, where);
  const fmt = format(requiredAttr(requiredChild(el, 'format', where), 'type', where), `<format type> of ${where}`);
  const def: BackingStoreDef = { type, format: fmt, sourcePath: sourcePath(requiredChild(el, 'source', where), type, where) };
  const next = readBackingStore(el, fmt, disk, layer + 1);
  if (next !== undefined) def.backingStore = next;
  return def;
}

/**
 * Reads `<disk>` number `index` (1-based, for messages before the target is
 * known). Only `type='file'|'block'`, `device='disk'|'cdrom'`, the `qemu`
 * driver with raw or qcow2 images are runnable; other valid libvirt values
 * are `config_unsupported`.
 *
 * @throws FerryError `xml_error` or `config_unsupported` naming the disk.
 */
export function readDisk(el: Element, index: number): DiskDef {
  const first = `disk #${index}`;
  refuseStrayText(el, first);
  const target = requiredChild(el, 'target', first);
  const targetDev = requiredAttr(target, 'dev', first);
  if (!DISK_TARGET_PATTERN.test(targetDev)) {
    throw xmlError(
      `invalid value ${showValue(targetDev)} for <target dev> of ${first}: expected vd, sd or hd followed by 1 to 3 lower-case letters, e.g. vda`,
    );
  }
  const where = `disk '${targetDev}'`;

  const type = storageType(el, where, 'file');
  const device = choose(attr(el, 'device') ?? 'disk', {
    what: `<disk device> of ${where}`,
    supported: ['disk', 'cdrom'] as const,
    libvirtOnly: ['floppy', 'lun'],
  });

  const driver = optionalChild(el, 'driver', where);
  const driverName = driver === undefined ? undefined : attr(driver, 'name');
  if (driverName !== undefined) {
    choose(driverName, { what: `<driver name> of ${where}`, supported: ['qemu'], libvirtOnly: '*' });
  }
  const driverType = driver === undefined ? undefined : attr(driver, 'type');
  // libvirt would probe the image; Ferry never guesses a format (probing
  // lets a guest turn a raw image into a qcow2 pointing at host files).
  const diskFormat = driverType === undefined ? 'raw' : format(driverType, `<driver type> of ${where}`);
  const driverAttr = (name: string): string | undefined => (driver === undefined ? undefined : attr(driver, name));
  const cache = driverAttr('cache');
  const io = driverAttr('io');
  const errorPolicy = driverAttr('error_policy');
  const rerrorPolicy = driverAttr('rerror_policy');

  const source = optionalChild(el, 'source', where);
  // An ejected cdrom may keep a <source> without a path (e.g. only startupPolicy).
  const pathAttr = type === 'file' ? 'file' : 'dev';
  let sourcePathValue: string | undefined;
  if (source !== undefined && (device === 'disk' || attr(source, pathAttr) !== undefined)) {
    sourcePathValue = sourcePath(source, type, where);
  } else if (device === 'disk') {
    throw xmlError(`missing <source> in ${where}: only a cdrom may be empty`);
  }
  const backing = readBackingStore(el, diskFormat, where, 1);

  const bus = attr(target, 'bus');
  // Built in the field order of DiskDef so the JSON form reads naturally.
  const disk: DiskDef = {
    device,
    type,
    format: diskFormat,
    ...(cache !== undefined && { cache: choose(cache, { what: `<driver cache> of ${where}`, supported: CACHE_MODES }) }),
    ...(io !== undefined && {
      io: choose(io, { what: `<driver io> of ${where}`, supported: ['native', 'threads', 'io_uring'] as const }),
    }),
    ...(errorPolicy !== undefined && {
      errorPolicy: choose(errorPolicy, { what: `<driver error_policy> of ${where}`, supported: ERROR_POLICIES }),
    }),
    // A read error cannot be cured by freeing space, so libvirt has no 'enospace' here.
    ...(rerrorPolicy !== undefined && {
      rerrorPolicy: choose(rerrorPolicy, {
        what: `<driver rerror_policy> of ${where}`,
        supported: ERROR_POLICIES.filter((p) => p !== 'enospace'),
      }),
    }),
    ...(sourcePathValue !== undefined && { sourcePath: sourcePathValue }),
    ...(backing !== undefined && { backingStore: backing }),
    targetDev,
    targetBus:
      bus === undefined
        ? BUS_BY_PREFIX[targetDev.slice(0, 2)]!
        : choose(bus, { what: `<target bus> of ${where}`, supported: BUSES, libvirtOnly: ['fdc', 'xen', 'usb', 'uml', 'sd'] }),
    // A cdrom is read-only whatever the XML says; libvirt behaves the same.
    readonly: device === 'cdrom' || optionalChild(el, 'readonly', where) !== undefined,
    shareable: optionalChild(el, 'shareable', where) !== undefined,
  };
  return disk;
}
