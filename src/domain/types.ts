/**
 * The domain model: the parts of a libvirt domain definition that Ferry
 * understands and acts on. Everything else in the XML is kept verbatim by
 * the document layer (see `document.ts`) but has no field here.
 *
 * All sizes are KiB; the XML layer normalises units on the way in.
 */

/** Action for on_poweroff / on_reboot / on_crash. */
export type LifecycleAction = 'destroy' | 'restart' | 'preserve' | 'rename-restart' | 'coredump-destroy' | 'coredump-restart';

/** libvirt disk cache modes. */
export type DiskCache = 'default' | 'none' | 'writethrough' | 'writeback' | 'directsync' | 'unsafe';

/** Disk image formats Ferry can run. */
export type DiskFormat = 'raw' | 'qcow2';

/** What happens to the guest when its disk reports an I/O error. */
export type DiskErrorPolicy = 'stop' | 'report' | 'ignore' | 'enospace';

/** One layer of a disk's backing chain, as written in `<backingStore>`. */
export interface BackingStoreDef {
  type: 'file' | 'block';
  format: DiskFormat;
  sourcePath: string;
  backingStore?: BackingStoreDef;
}

/** A `<disk>` element. */
export interface DiskDef {
  device: 'disk' | 'cdrom';
  type: 'file' | 'block';
  /** `<driver type>`; raw when absent (Ferry never probes an image's format). */
  format: DiskFormat;
  cache?: DiskCache;
  io?: 'native' | 'threads' | 'io_uring';
  errorPolicy?: DiskErrorPolicy;
  rerrorPolicy?: DiskErrorPolicy;
  /** Absent for an empty cdrom. */
  sourcePath?: string;
  backingStore?: BackingStoreDef;
  targetDev: string;
  /** `<target bus>`; when absent, from the name: vd* virtio, sd* scsi, hd* ide. */
  targetBus: 'virtio' | 'ide' | 'sata' | 'scsi';
  /** `<readonly/>`; always true for a cdrom. */
  readonly: boolean;
  shareable: boolean;
}

/**
 * A `<serial>` or `<console>` element. A console is another name for the
 * serial port with the same `targetPort` (libvirt's x86 convention), so
 * devices are created from {@link DomainDef.serials} only.
 */
export interface CharDevDef {
  element: 'serial' | 'console';
  type: 'file' | 'pty' | 'unix' | 'null';
  /** file: the output path; unix: the socket path. */
  path?: string;
  /** file: append instead of truncate (`<source append='on'/>`). */
  append?: boolean;
  /** unix: 'bind' (QEMU listens) or 'connect'. */
  mode?: 'bind' | 'connect';
  targetPort: number;
}

/**
 * An `<interface>` element: `user` (QEMU's slirp), `bridge` (a tap Ferry
 * creates and enslaves to `<source bridge>`) or `ethernet` (a tap Ferry
 * creates and leaves unattached).
 */
export interface InterfaceDef {
  type: 'user' | 'bridge' | 'ethernet';
  mac?: string;
  model?: string;
  /** bridge: `<source bridge>`, the host bridge the tap joins. */
  bridge?: string;
  /**
   * bridge and ethernet: `<target dev>`, the tap's name. In a definition, a
   * wish (used when free; `vnetN` names are always chosen afresh); in the
   * live definition, the tap QEMU really uses.
   */
  targetDev?: string;
}

/**
 * `<controller type='usb'>` (index 0). QEMU gets one USB controller:
 * `qemu-xhci`, `nec-usb-xhci` or `piix3-usb-uhci`; `none` means no USB.
 */
export interface UsbControllerDef {
  model: 'qemu-xhci' | 'nec-xhci' | 'piix3-uhci' | 'none';
  /** `ports`: the xHCI's USB 2 and USB 3 port counts (QEMU's p2 and p3). */
  ports?: number;
}

/**
 * An `<input>`. ps2 mouse and keyboard are the i8042 every PC machine has
 * built in, so they need no device; usb and virtio ones are devices.
 */
export interface InputDef {
  type: 'tablet' | 'mouse' | 'keyboard';
  bus: 'usb' | 'ps2' | 'virtio';
  /** `<address type='usb' port>`: the port on USB bus 0, e.g. `1` or `1.2`. */
  usbPort?: string;
}

/** `<memballoon>`: `virtio` is a virtio-balloon-pci device, `none` none. */
export interface MemballoonDef {
  model: 'virtio' | 'none';
  /** `autodeflate='on'`: QEMU's deflate-on-oom. */
  autodeflate?: boolean;
  /** `freePageReporting='on'`: QEMU's free-page-reporting. */
  freePageReporting?: boolean;
}

/** An `<rng model='virtio'>`: a virtio-rng-pci device and its backend object. */
export interface RngDef {
  /** `random`: a host device (rng-random); `builtin`: QEMU's own generator (rng-builtin). */
  backend: 'random' | 'builtin';
  /** The random backend's device: libvirt accepts only these two. */
  path?: '/dev/urandom' | '/dev/random';
  /** `<rate bytes>`: at most this many bytes per period. */
  rateBytes?: number;
  /** `<rate period>` in ms; libvirt's default 1000 when only bytes are given. */
  ratePeriodMs?: number;
}

/** `<controller type='virtio-serial'>` (index 0): the bus virtio channels sit on. */
export interface VirtioSerialDef {
  /** `ports`: QEMU's max_ports. */
  ports?: number;
  /** `vectors`: MSI-X vectors. */
  vectors?: number;
}

/**
 * A `<channel type='unix'>` with a virtio target: a virtserialport backed
 * by a unix socket that QEMU listens on. The socket is always ferryd's own
 * (under its run directory), whatever `<source path>` says; the live XML
 * shows it.
 */
export interface ChannelDef {
  /** `<target name>`, e.g. `org.qemu.guest_agent.0`: what the guest sees. */
  name: string;
}

/**
 * `<graphics type='vnc'>`: a VNC server on a local address only. With
 * autoport QEMU takes the first free port from 5900 and ferryd shows it in
 * the live XML.
 */
export interface GraphicsDef {
  type: 'vnc';
  /** The loopback address QEMU listens on. */
  listen: '127.0.0.1' | '::1';
  autoport: boolean;
  /**
   * The TCP port (5900 and up): without autoport the one QEMU must use;
   * with autoport only the one in use, as a running guest's live XML shows
   * it (a new launch takes whatever port is free).
   */
  port?: number;
}

/** The primary `<video>`: `virtio` is virtio-vga, `vga` std VGA, `none` none. */
export interface VideoDef {
  model: 'virtio' | 'vga' | 'none';
  /** `heads` of a virtio video: virtio-vga's max_outputs. */
  heads?: number;
}

/**
 * Machine-wide options from `<features>`, `<clock>` timers and `<pm>` (read
 * in read-platform.ts, passed in qemu/platform-args.ts). Absent fields leave
 * QEMU's defaults.
 */
export interface PlatformDef {
  /** `<features><vmport state>`: the machine's `vmport`. */
  vmport?: 'on' | 'off';
  /** `<timer name='hpet' present>`: the machine's `hpet`. */
  hpet?: boolean;
  /** `<timer name='rtc' tickpolicy>`: catchup is `-rtc driftfix=slew`; delay is QEMU's default. */
  rtcTickPolicy?: 'catchup' | 'delay';
  /** `<timer name='pit' tickpolicy='delay'>`: QEMU's default under TCG, `kvm-pit.lost_tick_policy=delay` under KVM. */
  pitTickPolicy?: 'delay';
  /** `<pm><suspend-to-mem enabled>`: S3 offered to the guest (QEMU's `disable_s3` is its negation). */
  suspendToMem?: boolean;
  /** `<pm><suspend-to-disk enabled>`: S4 offered to the guest. */
  suspendToDisk?: boolean;
}

/** `<cpu mode>`: libvirt's modes; Ferry maps each to a QEMU `-cpu` (see qemu/command-line.ts). */
export type CpuMode = 'host-passthrough' | 'host-model' | 'custom' | 'maximum';

/** `<cpu match>` of a custom CPU: how closely the host must provide the model. */
export type CpuMatch = 'exact' | 'minimum' | 'strict';

/** `<feature policy>`: libvirt's five policies. */
export type CpuFeaturePolicy = 'force' | 'require' | 'optional' | 'disable' | 'forbid';

/** One `<cpu><feature>`. */
export interface CpuFeatureDef {
  /** A QEMU/libvirt feature name such as `avx2` or `sse4.2` (checked against {@link CPU_NAME_PATTERN} in read-cpu.ts). */
  name: string;
  policy: CpuFeaturePolicy;
}

/** The `<cpu>` element, as far as it decides the guest's CPU. `<topology>`, `<cache>`, `<numa>` are kept in the XML, not here. */
export interface CpuDef {
  mode: CpuMode;
  /** custom: libvirt's default is `exact` when a model is given. */
  match?: CpuMatch;
  /** `<cpu check>`: `none` turns Ferry's "can this host provide it" check off, as libvirt's check does. */
  check?: 'none' | 'partial' | 'full';
  /** `<model>` text: required for custom when features are listed. */
  model?: string;
  /** `<model fallback>`; libvirt's default `allow`. Ferry has no closest-model fallback, so both refuse an unknown model. */
  fallback?: 'allow' | 'forbid';
  /** host-passthrough and maximum: `migratable` (on by default in QEMU). */
  migratable?: 'on' | 'off';
  /** The `<feature>` children in document order. */
  features: CpuFeatureDef[];
}

/** A `<boot dev=...>` entry of `<os>`, in boot order. */
export type BootDevice = 'hd' | 'cdrom' | 'network' | 'fd';

/** The understood content of a domain definition. */
export interface DomainDef {
  /** `<domain type=...>`: 'qemu' (TCG) or 'kvm'; Ferry's accel setting decides what really runs. */
  type: 'qemu' | 'kvm';
  name: string;
  uuid: string;
  title?: string;
  description?: string;
  memoryKiB: number;
  currentMemoryKiB: number;
  /** `<memtune><hard_limit>`, if any. */
  hardLimitKiB?: number;
  vcpus: number;
  os: {
    type: 'hvm';
    arch?: string;
    machine?: string;
    kernel?: string;
    initrd?: string;
    cmdline?: string;
    /** `<boot dev=...>` entries in order; absent when there are none. */
    boot?: BootDevice[];
  };
  /** Names of the child elements of `<features>` (e.g. 'acpi', 'apic'). */
  features: string[];
  /** `<cpu mode=...>`, if any (the same as `cpu.mode`; kept for callers that only need the mode). */
  cpuMode?: CpuMode;
  /** The `<cpu>` element, if any. */
  cpu?: CpuDef;
  /** `<clock offset=...>`, if any. */
  clockOffset?: 'utc' | 'localtime';
  /** vmport, timers and S3/S4, when the XML sets any of them. */
  platform?: PlatformDef;
  onPoweroff: LifecycleAction;
  onReboot: LifecycleAction;
  onCrash: LifecycleAction;
  emulator?: string;
  disks: DiskDef[];
  /**
   * Every serial port the guest has, one device each. A `<console>` with no
   * matching `<serial>` defines its port and appears here too, with
   * `element: 'console'`.
   */
  serials: CharDevDef[];
  /** The `<console>` elements; each repeats the serial entry with its `targetPort`. Creates no device. */
  consoles: CharDevDef[];
  interfaces: InterfaceDef[];
  /** The USB controller, when the XML has one. */
  usb?: UsbControllerDef;
  /** `<input>` devices in document order. */
  inputs?: InputDef[];
  /** `<memballoon>`, when given (libvirt adds a virtio one when it is missing; Ferry does not). */
  memballoon?: MemballoonDef;
  /** `<rng>` devices in document order. */
  rngs?: RngDef[];
  /** The virtio-serial controller, when the XML has one (channels get one anyway, as in libvirt). */
  virtioSerial?: VirtioSerialDef;
  /** Virtio `<channel>`s in document order. */
  channels?: ChannelDef[];
  /** `<graphics type='vnc'>`, when given. */
  graphics?: GraphicsDef;
  /** The `<video>` device, when given. */
  video?: VideoDef;
  /**
   * Elements kept verbatim in the XML that have no effect on the guest
   * (`pm`, `controller (pcie-root-port)`, `sound`, ...), each once; absent when
   * there are none. Reported at define and in `dominfo`, never silently.
   */
  ignored?: string[];
}
