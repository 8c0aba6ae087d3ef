/** Turns a DomainDef into a QEMU argv without ever letting user strings reach QEMU's comma-separated option syntax unescaped. */
import type {
  BackingStoreDef,
  CharDevDef,
  DiskCache,
  DiskDef,
  DiskErrorPolicy,
  DomainDef,
  InterfaceDef,
} from '../domain/types.js';
import { CPU_NAME_PATTERN } from '../domain/read-cpu.js';
import { ifnameProblem } from '../domain/ifname.js';
import { canonicalUuid } from '../domain/uuid.js';
import { FerryError, showValue } from '../errors/index.js';
import { resolveQemuBinary } from './binary.js';
import { assertPlainString, jsonOption, legacyOption, optionWord } from './option-syntax.js';
import { peripheralArgs } from './peripheral-args.js';
import { machineProperties, platformGlobals, rtcOption } from './platform-args.js';

/** The accelerator QEMU runs the guest with. */
export type Accel = 'kvm' | 'tcg';

/** What ferryd decides about a launch, as opposed to what the domain defines. */
export interface QemuLaunchOptions {
  /** Accelerator actually used (see `resolveAccel`), whatever `<domain type>` says. */
  accel: Accel;
  /** Where QEMU listens for ferryd's QMP connection. */
  qmpSocketPath: string;
  /**
   * ferryd's copy of the first serial port's output. QEMU appends everything
   * the guest writes there (chardev `logfile=`), whatever the port's own type
   * is, so the CLI can always show the console.
   */
  serialLogPath: string;
  /** QEMU writes its pid here once started, if given. */
  pidFilePath?: string;
  /** Migration destination: `defer` or a URI for `-incoming`. */
  incoming?: string;
  /** Start with the vCPUs stopped (`-S`). */
  paused?: boolean;
  /**
   * ferryd's QEMU run directory on this host: the home of per-guest sockets
   * such as the virtio channels' (see peripheral-args.ts).
   */
  runDir: string;
}

/** A ready-to-spawn QEMU invocation. */
export interface QemuCommand {
  /** Absolute path of the QEMU binary. */
  binary: string;
  /** argv without the binary itself. */
  args: string[];
}

/** Node and device names Ferry gives one disk; the migration layer needs them to address the disk over QMP. */
export interface DiskNodeNames {
  /** Protocol (file/host_device) node of the top image. */
  protocol: string;
  /** Format (raw/qcow2) node of the top image: the node the device is attached to. */
  format: string;
  /** `-device` id. */
  device: string;
}

/** Node names of a disk's layer: 0 is the top image, 1 its first backing file, and so on. */
export function diskNodeNames(targetDev: string, layer = 0): DiskNodeNames {
  const suffix = layer === 0 ? '' : `-${layer}`;
  return { protocol: `drive-${targetDev}${suffix}`, format: `fmt-${targetDev}${suffix}`, device: `disk-${targetDev}` };
}

/**
 * Builds the QEMU invocation for a domain: resolves the binary (the domain's
 * `<emulator>` or `qemu-system-x86_64` on PATH) and the argv.
 *
 * @param pathEnv PATH to search for the default binary; `process.env.PATH` if omitted
 * @throws FerryError `config_unsupported` for definitions Ferry can't express safely
 */
export function buildQemuCommand(def: DomainDef, opts: QemuLaunchOptions, pathEnv?: string): QemuCommand {
  const args = buildQemuArgs(def, opts);
  return { binary: resolveQemuBinary(def.emulator, pathEnv ?? process.env.PATH), args };
}

/**
 * Builds QEMU's argv (without the binary) for a domain. Pure: touches no files.
 *
 * Every string that came from the user is either a JSON string inside a
 * `-blockdev`/`-device`/`-netdev` object, a whole argv element of an option
 * that takes its value verbatim (`-kernel`, `-initrd`, `-append`, `-pidfile`),
 * or a comma-doubled value in a legacy option (`-chardev`, `-name`).
 * Identifiers (node names, ids) are Ferry's own, built only from validated
 * target names and port numbers.
 *
 * Argument order is deterministic in the definition's order: PCI slots are
 * handed out in that order, and a migration destination must build the same
 * device layout as the source.
 *
 * @throws FerryError `config_unsupported` for definitions Ferry can't express safely
 */
export function buildQemuArgs(def: DomainDef, opts: QemuLaunchOptions): string[] {
  const args: string[] = [];
  const machine = def.os.machine ?? 'pc';
  validateTopLevel(def, machine);
  if (opts.accel !== 'kvm' && opts.accel !== 'tcg') throw unsupported(`accelerator ${showValue(opts.accel)} is not kvm or tcg`);

  args.push('-name', legacyOption(undefined, [['guest', def.name]], 'domain name'));
  args.push('-uuid', def.uuid);
  // No config files from /etc/qemu and no default devices: the guest gets
  // exactly what the definition lists, identically on every host.
  args.push('-no-user-config', '-nodefaults');
  args.push('-machine', legacyOption(machine, [['acpi', def.features.includes('acpi') ? 'on' : 'off'], ...machineProperties(def.platform)], 'machine'));
  args.push('-accel', opts.accel);
  args.push('-cpu', cpuOption(def, opts.accel));
  // QEMU takes a `k` suffix: pass the size exactly as defined, never rounded.
  args.push('-m', `${def.memoryKiB}k`);
  args.push('-smp', String(def.vcpus));
  args.push('-rtc', rtcOption(def.clockOffset ?? 'utc', def.platform));
  args.push(...platformGlobals(def.platform, isQ35(machine), opts.accel));
  // No local display window (-nodefaults already drops the VGA card): the
  // console is the serial port, and a <graphics type='vnc'> is a VNC server
  // (peripheral-args.ts), which works beside `-display none`. Timestamps make
  // the per-guest QEMU log useful.
  args.push('-display', 'none');
  args.push('-msg', 'timestamp=on');
  args.push(...lifecycleArgs(def));

  // QMP through an explicit chardev so the socket path is escaped like every
  // other legacy value (`-qmp unix:PATH,...` has no escaping at all).
  args.push(
    '-chardev',
    legacyOption(
      'socket',
      [
        ['id', 'charmonitor'],
        ['path', opts.qmpSocketPath],
        ['server', 'on'],
        ['wait', 'off'],
      ],
      'QMP socket',
    ),
  );
  args.push('-mon', 'chardev=charmonitor,id=monitor,mode=control');

  if (def.os.kernel !== undefined) args.push('-kernel', plain(def.os.kernel, 'kernel path'));
  if (def.os.initrd !== undefined) args.push('-initrd', plain(def.os.initrd, 'initrd path'));
  if (def.os.cmdline !== undefined) args.push('-append', plain(def.os.cmdline, 'kernel command line'));

  args.push(...diskArgs(def.disks, machine));
  args.push(...serialArgs(def, opts.serialLogPath));
  args.push(...interfaceArgs(def.interfaces));
  args.push(...peripheralArgs(def, opts.runDir));

  if (opts.pidFilePath !== undefined) args.push('-pidfile', plain(opts.pidFilePath, 'pid file path'));
  if (opts.incoming !== undefined) args.push('-incoming', plain(opts.incoming, 'incoming migration URI'));
  if (opts.paused) args.push('-S');
  return args;
}

/** Machine types are QEMU identifiers; anything else is refused rather than escaped. */
const MACHINE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function validateTopLevel(def: DomainDef, machine: string): void {
  assertPlainString(def.name, 'domain name');
  if (canonicalUuid(def.uuid) === undefined) throw unsupported(`domain uuid ${showValue(def.uuid)} is not a UUID`);
  if (!MACHINE_RE.test(machine)) throw unsupported(`machine type ${showValue(machine)} is not a valid QEMU machine name`);
  if (def.os.type !== 'hvm') throw unsupported(`OS type ${showValue(def.os.type)} is not supported; only hvm`);
  if (def.os.arch !== undefined && def.os.arch !== 'x86_64' && def.os.arch !== 'i686') {
    throw unsupported(`architecture ${showValue(def.os.arch)} is not supported; Ferry runs x86_64 and i686 guests`);
  }
  if (!Number.isSafeInteger(def.memoryKiB) || def.memoryKiB <= 0) {
    throw unsupported(`memory size ${def.memoryKiB} KiB is not a positive whole number`);
  }
  if (def.clockOffset !== undefined && def.clockOffset !== 'utc' && def.clockOffset !== 'localtime') {
    throw unsupported(`clock offset ${showValue(def.clockOffset)} is not supported; use utc or localtime`);
  }
  if (!Number.isSafeInteger(def.vcpus) || def.vcpus <= 0) {
    throw unsupported(`vcpu count ${def.vcpus} is not a positive whole number`);
  }
}

/**
 * The guest CPU: QEMU's `-cpu` value for the definition's `<cpu>`.
 *
 * - no `<cpu>`, or custom without a model: `qemu64`, the same CPUID on every
 *   host, which is what keeps live migration safe between differing hosts;
 * - custom with a model: the model, then `+name` for features with policy
 *   `force`, `require` or `optional` (QEMU drops an optional one the
 *   accelerator lacks, which is libvirt's meaning of optional) and `-name`
 *   for `disable` and `forbid`. Whether this host can provide the model and
 *   the required features is checked before QEMU starts (cpu-check.ts);
 * - host-passthrough and host-model: `host` under KVM. Under TCG there is no
 *   `host` CPU: the nearest thing is `max`, everything TCG can emulate, and
 *   that is what runs (ferryd logs it when the guest starts, see
 *   {@link cpuModeNote});
 * - maximum: `max`. `migratable='off'` on host-passthrough or maximum adds
 *   `migratable=off`, as libvirt does.
 *
 * Names were checked when the XML was read; they are checked again here,
 * because `-cpu` has no escaping and a definition may be built another way.
 */
export function cpuOption(def: Pick<DomainDef, 'cpu' | 'cpuMode'>, accel: Accel): string {
  const cpu = def.cpu ?? (def.cpuMode !== undefined ? { mode: def.cpuMode, features: [] } : undefined);
  if (cpu === undefined) return 'qemu64';
  let base: string;
  switch (cpu.mode) {
    case 'host-passthrough':
    case 'host-model':
      base = accel === 'kvm' ? 'host' : 'max';
      break;
    case 'maximum':
      base = 'max';
      break;
    case 'custom':
      base = cpu.model === undefined ? 'qemu64' : optionWord(cpu.model, CPU_NAME_PATTERN, 'CPU model');
      break;
    default:
      throw unsupported(`CPU mode ${showValue(cpu.mode)} is not supported`);
  }
  const parts = [base];
  if (cpu.migratable === 'off' && (cpu.mode === 'host-passthrough' || cpu.mode === 'maximum')) parts.push('migratable=off');
  for (const f of cpu.features) {
    const name = optionWord(f.name, CPU_NAME_PATTERN, 'CPU feature');
    switch (f.policy) {
      case 'force':
      case 'require':
      case 'optional':
        parts.push(`+${name}`);
        break;
      case 'disable':
      case 'forbid':
        parts.push(`-${name}`);
        break;
      default:
        throw unsupported(`CPU feature ${name}: policy ${showValue(f.policy)} is not supported`);
    }
  }
  return parts.join(',');
}

/**
 * What the accelerator makes of the definition's CPU mode, when that is not
 * what the name says: under TCG host-passthrough and host-model run as
 * QEMU's `max` CPU. Undefined when there is nothing to say.
 */
export function cpuModeNote(def: Pick<DomainDef, 'cpu' | 'cpuMode'>, accel: Accel): string | undefined {
  const mode = def.cpu?.mode ?? def.cpuMode;
  if (accel !== 'tcg' || (mode !== 'host-passthrough' && mode !== 'host-model')) return undefined;
  return `<cpu mode='${mode}'> runs as QEMU's 'max' CPU: under TCG there is no host CPU to pass through, and 'max' is everything TCG can emulate`;
}

/**
 * Lifecycle actions. Unlike libvirt, which always passes `-no-shutdown` and
 * then quits QEMU itself, Ferry lets QEMU exit on guest power-off: the exit
 * (with the SHUTDOWN event that preceded it) is how the supervisor learns of
 * it, and it works the same while ferryd is down. So `on_poweroff` can only
 * be `destroy`, and `on_crash` too (a guest crash is invisible without a
 * panic device); the domain reader refuses the rest, and so does this, for
 * a definition built some other way. Guest reboots are handled inside QEMU
 * unless `on_reboot` asks otherwise, in which case a reboot becomes a
 * shutdown with reason `guest-reset`; `preserve` keeps QEMU (`-no-shutdown`).
 */
function lifecycleArgs(def: DomainDef): string[] {
  const args: string[] = [];
  if (def.onPoweroff !== 'destroy') throw unsupported(`on_poweroff ${showValue(def.onPoweroff)} is not supported; only destroy`);
  if (def.onCrash !== 'destroy') throw unsupported(`on_crash ${showValue(def.onCrash)} is not supported; only destroy`);
  switch (def.onReboot) {
    case 'restart':
      break;
    case 'destroy':
      args.push('-action', 'reboot=shutdown');
      break;
    case 'preserve':
      args.push('-action', 'reboot=shutdown', '-no-shutdown');
      break;
    default:
      throw unsupported(`on_reboot ${showValue(def.onReboot)} is not supported; use restart, destroy or preserve`);
  }
  return args;
}

// ---------------------------------------------------------------- disks

/** Target names become part of node names (at most 31 bytes in QEMU) and ids: keep them short and plain. */
const TARGET_RE = /^[a-z][a-z0-9]{0,11}$/;
const MAX_BACKING_DEPTH = 99;

interface CacheFlags {
  direct: boolean;
  noFlush: boolean;
  /** Device `write-cache`; undefined leaves QEMU's default (on). */
  writeCache?: 'on' | 'off';
}

/**
 * libvirt's cache modes expressed in -blockdev terms: `cache.direct`
 * (O_DIRECT, bypass the host page cache), `cache.no-flush` (ignore guest
 * flushes) on the nodes, and the device's `write-cache` (off means QEMU
 * flushes after every write, i.e. write-through).
 */
function cacheFlags(cache: DiskCache | undefined): CacheFlags {
  switch (cache ?? 'default') {
    case 'default':
      return { direct: false, noFlush: false };
    case 'none':
      return { direct: true, noFlush: false, writeCache: 'on' };
    case 'writeback':
      return { direct: false, noFlush: false, writeCache: 'on' };
    case 'writethrough':
      return { direct: false, noFlush: false, writeCache: 'off' };
    case 'directsync':
      return { direct: true, noFlush: false, writeCache: 'off' };
    case 'unsafe':
      return { direct: false, noFlush: true, writeCache: 'on' };
  }
}

function errorPolicy(p: DiskErrorPolicy | undefined): string | undefined {
  if (p === undefined) return undefined;
  return p === 'enospace' ? 'enospc' : p;
}

/** Index of a disk from its target name (`hda` 0, `sdb` 1, `sdaa` 26), as libvirt derives addresses without `<address>`. */
function targetIndex(targetDev: string): number | undefined {
  const m = /^(?:hd|sd|vd|xvd)([a-z]+)$/.exec(targetDev);
  if (!m || m[1] === undefined) return undefined;
  let n = 0;
  for (const ch of m[1]) n = n * 26 + (ch.charCodeAt(0) - 96);
  return n - 1;
}

function isQ35(machine: string): boolean {
  return /q35/.test(machine);
}

function diskArgs(disks: DiskDef[], machine: string): string[] {
  const args: string[] = [];
  const seen = new Set<string>();
  const controllers: string[] = [];
  const devices: string[] = [];

  for (const disk of disks) {
    const t = disk.targetDev;
    if (!TARGET_RE.test(t)) throw unsupported(`disk target ${showValue(t)} is not a plain short device name like vda or sdb`);
    if (seen.has(t)) throw unsupported(`disk target ${showValue(t)} is used twice`);
    seen.add(t);
    const names = diskNodeNames(t);
    const isCdrom = disk.device === 'cdrom';
    const readOnly = disk.readonly || isCdrom;
    const cache = cacheFlags(disk.cache);
    if (disk.io === 'native' && !cache.direct) {
      throw unsupported(`disk ${t}: io='native' needs cache='none' or 'directsync' (O_DIRECT)`);
    }

    let attached = false;
    if (disk.sourcePath !== undefined) {
      args.push(...blockNodes(t, 0, disk, readOnly, cache));
      attached = true;
    } else if (!isCdrom) {
      throw unsupported(`disk ${t} has no source; only a cdrom may be empty`);
    }

    const dev: Record<string, unknown> = {};
    switch (disk.targetBus) {
      case 'virtio':
        if (isCdrom) throw unsupported(`cdrom ${t} can't be on the virtio bus; use ide, sata or scsi`);
        dev.driver = 'virtio-blk-pci';
        break;
      case 'ide': {
        const idx = requireIndex(t, 'ide');
        const ports = isQ35(machine) ? 6 : 4;
        if (idx >= ports) throw unsupported(`disk ${t}: IDE on machine ${machine} has only ${ports} positions`);
        if (readOnly && !isCdrom) throw unsupported(`disk ${t}: QEMU's IDE disks can't be read-only; use virtio or scsi`);
        dev.driver = isCdrom ? 'ide-cd' : 'ide-hd';
        // i440fx: two IDE buses with master/slave; q35: AHCI ports, one unit each.
        dev.bus = isQ35(machine) ? `ide.${idx}` : `ide.${Math.floor(idx / 2)}`;
        dev.unit = isQ35(machine) ? 0 : idx % 2;
        break;
      }
      case 'sata': {
        const idx = requireIndex(t, 'sata');
        if (idx >= 6) throw unsupported(`disk ${t}: the SATA controller has only 6 ports (sda..sdf)`);
        if (readOnly && !isCdrom) throw unsupported(`disk ${t}: QEMU's SATA disks can't be read-only; use virtio or scsi`);
        if (!controllers.includes('sata0')) controllers.push('sata0');
        dev.driver = isCdrom ? 'ide-cd' : 'ide-hd';
        dev.bus = `sata0.${idx}`;
        break;
      }
      case 'scsi': {
        const idx = requireIndex(t, 'scsi');
        if (idx > 255) throw unsupported(`disk ${t}: SCSI target index ${idx} is out of range`);
        if (!controllers.includes('scsi0')) controllers.push('scsi0');
        dev.driver = isCdrom ? 'scsi-cd' : 'scsi-hd';
        dev.bus = 'scsi0.0';
        dev.channel = 0;
        dev['scsi-id'] = idx;
        dev.lun = 0;
        break;
      }
      default:
        throw unsupported(`disk ${t}: bus ${showValue(disk.targetBus)} is not supported`);
    }
    if (attached) dev.drive = names.format;
    dev.id = names.device;
    if (!isCdrom && cache.writeCache !== undefined) dev['write-cache'] = cache.writeCache;
    const werror = errorPolicy(disk.errorPolicy);
    // libvirt: without rerror_policy, read errors follow error_policy, except
    // 'enospace', which has no meaning for reads.
    const rerror = errorPolicy(disk.rerrorPolicy ?? (disk.errorPolicy === 'enospace' ? undefined : disk.errorPolicy));
    if (rerror === 'enospc') throw unsupported(`disk ${t}: rerror_policy 'enospace' is not valid for reads`);
    if (werror !== undefined) dev.werror = werror;
    if (rerror !== undefined) dev.rerror = rerror;
    if (disk.shareable) dev['share-rw'] = true;
    devices.push('-device', jsonOption(dev, `disk ${t} device`));
  }

  const out = [...args];
  // Controllers go before the disks that sit on them and get their PCI slot
  // before the disks' virtio devices, in a fixed order.
  if (controllers.includes('sata0')) out.push('-device', jsonOption({ driver: 'ich9-ahci', id: 'sata0' }, 'SATA controller'));
  if (controllers.includes('scsi0')) {
    out.push('-device', jsonOption({ driver: 'virtio-scsi-pci', id: 'scsi0' }, 'SCSI controller'));
  }
  out.push(...devices);
  return out;
}

function requireIndex(targetDev: string, bus: string): number {
  const idx = targetIndex(targetDev);
  if (idx === undefined) {
    throw unsupported(`disk ${targetDev}: on the ${bus} bus the target must be named like hda or sdb to give it a position`);
  }
  return idx;
}

/**
 * The -blockdev nodes of one image layer and, recursively, of the backing
 * layers named in the definition. Returned deepest layer first, because a
 * node's `backing` reference must name an existing node.
 *
 * When the definition names no backing store for a qcow2 layer, `backing` is
 * left out so qcow2 opens the chain recorded in its own header, as plain
 * `qemu-img` would.
 */
function blockNodes(
  target: string,
  layer: number,
  src: Pick<DiskDef, 'type' | 'format' | 'sourcePath' | 'backingStore' | 'io'>,
  readOnly: boolean,
  cache: CacheFlags,
): string[] {
  if (layer > MAX_BACKING_DEPTH) throw unsupported(`disk ${target}: backing chain deeper than ${MAX_BACKING_DEPTH}`);
  const names = diskNodeNames(target, layer);
  const path = src.sourcePath;
  if (path === undefined) throw unsupported(`disk ${target}: backing layer ${layer} has no source path`);
  if (path.length === 0) throw unsupported(`disk ${target}: empty source path`);
  const what = layer === 0 ? `disk ${target}` : `disk ${target} backing layer ${layer}`;
  const args: string[] = [];
  const backing: BackingStoreDef | undefined = src.backingStore;
  if (backing !== undefined && src.format !== 'qcow2') {
    throw unsupported(`${what}: a ${src.format} image can't have a backing store`);
  }
  if (backing !== undefined) {
    args.push(...blockNodes(target, layer + 1, { ...backing, io: src.io }, true, cache));
  }
  const cacheObj = { direct: cache.direct, 'no-flush': cache.noFlush };
  const protocol: Record<string, unknown> = {
    driver: src.type === 'block' ? 'host_device' : 'file',
    'node-name': names.protocol,
    filename: path,
    'read-only': readOnly,
    cache: cacheObj,
  };
  if (src.io !== undefined) protocol.aio = src.io;
  const format: Record<string, unknown> = {
    driver: src.format,
    'node-name': names.format,
    file: names.protocol,
    'read-only': readOnly,
    cache: cacheObj,
  };
  if (backing !== undefined) format.backing = diskNodeNames(target, layer + 1).format;
  args.push('-blockdev', jsonOption(protocol, `${what} source`));
  args.push('-blockdev', jsonOption(format, `${what} format`));
  return args;
}

// ---------------------------------------------------------------- serial

/**
 * The guest's serial ports. As in libvirt, a `<console>` with no `<serial>`
 * is serial port 0; other consoles (virtio consoles) are not modelled yet.
 * The port with the lowest number gets ferryd's log copy.
 */
function serialArgs(def: DomainDef, serialLogPath: string): string[] {
  const ports: CharDevDef[] = def.serials.length > 0 ? [...def.serials] : def.consoles.slice(0, 1);
  ports.sort((a, b) => a.targetPort - b.targetPort);
  const args: string[] = [];
  const seen = new Set<number>();
  ports.forEach((port, i) => {
    const n = port.targetPort;
    // isa-serial's `index` selects COM1..COM4.
    if (!Number.isInteger(n) || n < 0 || n > 3) throw unsupported(`serial port ${n} is out of range (0..3)`);
    if (seen.has(n)) throw unsupported(`serial port ${n} is defined twice`);
    seen.add(n);
    const id = `charserial${n}`;
    const what = `serial port ${n}`;
    const log: Array<[string, string | undefined]> =
      i === 0
        ? [
            ['logfile', serialLogPath],
            ['logappend', 'on'],
          ]
        : [];
    let spec: string;
    switch (port.type) {
      case 'file':
        spec = legacyOption('file', [['id', id], ['path', requirePath(port, what)], ['append', port.append ? 'on' : 'off'], ...log], what);
        break;
      case 'pty':
        spec = legacyOption('pty', [['id', id], ...log], what);
        break;
      case 'unix':
        spec = legacyOption(
          'socket',
          [
            ['id', id],
            ['path', requirePath(port, what)],
            ...(port.mode === 'connect'
              ? ([
                  ['server', 'off'],
                  // Reconnect in the background so a listener that is not up yet
                  // (or goes away) never stops the guest from starting.
                  ['reconnect', '1'],
                ] as Array<[string, string]>)
              : ([
                  ['server', 'on'],
                  ['wait', 'off'],
                ] as Array<[string, string]>)),
            ...log,
          ],
          what,
        );
        break;
      case 'null':
        spec = legacyOption('null', [['id', id], ...log], what);
        break;
      default:
        throw unsupported(`${what}: type ${showValue(port.type)} is not supported`);
    }
    args.push('-chardev', spec);
    args.push('-device', jsonOption({ driver: 'isa-serial', chardev: id, id: `serial${n}`, index: n }, what));
  });
  return args;
}

function requirePath(port: CharDevDef, what: string): string {
  if (port.path === undefined || port.path === '') throw unsupported(`${what} of type ${port.type} needs a path`);
  return port.path;
}

// ---------------------------------------------------------------- network

/** libvirt model names Ferry accepts, and QEMU's device for each. */
const NIC_MODELS: Readonly<Record<string, string>> = {
  virtio: 'virtio-net-pci',
  e1000: 'e1000',
  e1000e: 'e1000e',
  rtl8139: 'rtl8139',
};
const MAC_RE = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/i;

/**
 * The guest's NICs: a `-netdev` backend and a `-device` each, both JSON.
 * `user` is QEMU's slirp. `bridge` and `ethernet` attach to the tap named in
 * the (live) definition's `<target dev>`, which ferryd created before QEMU
 * starts (host/taps.ts): a persistent tap QEMU opens by name
 * (`ifname`), with `script`/`downscript` `no` so QEMU runs nothing and
 * never touches the bridge. The names travel as JSON strings, never in
 * QEMU's comma syntax, and are checked against Linux's rules again here.
 */
function interfaceArgs(interfaces: InterfaceDef[]): string[] {
  const args: string[] = [];
  interfaces.forEach((nic, i) => {
    // libvirt's default NIC model on x86.
    const model = nic.model ?? 'rtl8139';
    const driver = NIC_MODELS[model];
    if (driver === undefined) {
      throw unsupported(`interface ${i}: model ${showValue(model)} is not supported; use one of ${Object.keys(NIC_MODELS).join(', ')}`);
    }
    if (nic.mac !== undefined) {
      if (!MAC_RE.test(nic.mac)) throw unsupported(`interface ${i}: ${showValue(nic.mac)} is not a MAC address`);
      if ((parseInt(nic.mac.slice(0, 2), 16) & 1) === 1) throw unsupported(`interface ${i}: ${nic.mac} is a multicast MAC address`);
    }
    // QEMU 7.2 takes JSON for -netdev too, so even Ferry's own values use it.
    args.push('-netdev', jsonOption(netdevBackend(nic, i), `interface ${i} backend`));
    args.push('-device', jsonOption({ driver, netdev: `hostnet${i}`, id: `net${i}`, mac: nic.mac?.toLowerCase() }, `interface ${i}`));
  });
  return args;
}

function netdevBackend(nic: InterfaceDef, i: number): Record<string, unknown> {
  switch (nic.type) {
    case 'user':
      return { type: 'user', id: `hostnet${i}` };
    case 'bridge':
    case 'ethernet': {
      const tap = nic.targetDev;
      if (tap === undefined) throw unsupported(`interface ${i}: type ${nic.type} needs its tap's name in <target dev> (ferryd creates the tap before QEMU starts)`);
      const problem = ifnameProblem(tap);
      if (problem !== undefined) throw unsupported(`interface ${i}: tap name ${showValue(tap)} is not usable: ${problem}`);
      return { type: 'tap', id: `hostnet${i}`, ifname: tap, script: 'no', downscript: 'no' };
    }
    default:
      throw unsupported(`interface ${i}: type ${showValue((nic as { type: unknown }).type)} is not supported; only user, bridge and ethernet`);
  }
}

// ---------------------------------------------------------------- helpers

/** A value passed as a whole argv element: no QEMU parsing, but still no NUL or line breaks. */
function plain(value: string, what: string): string {
  assertPlainString(value, what);
  return value;
}

function unsupported(message: string): FerryError {
  return new FerryError('config_unsupported', message);
}
