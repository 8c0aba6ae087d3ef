/** The one table of typed migration parameters (libvirt's `VIR_MIGRATE_PARAM_*`), their checks and their CLI parsing. */
import { DISK_TARGET_PATTERN } from '../domain/read-disk.js';
import { FerryError, showValue } from '../errors/index.js';
import type { Availability } from './migration-flags.js';

/**
 * A parameter's value type, after libvirt's typed parameters: `string`
 * (VIR_TYPED_PARAM_STRING), `string-list` (a string field that may be
 * given several times), `int` (VIR_TYPED_PARAM_INT, signed 32-bit) and
 * `ullong` (VIR_TYPED_PARAM_ULLONG; Ferry holds it in a JavaScript number,
 * so at most 2^53 - 1).
 */
export type ParamType = 'string' | 'string-list' | 'int' | 'ullong';

/** A URI scheme a parameter accepts, and whether the current build implements it. */
export interface UriScheme {
  readonly scheme: string;
  readonly availability: Availability;
}

/** One migration parameter: libvirt's field name and type, virsh's option, limits and documentation. */
export interface MigrationParamSpec {
  /** libvirt's field name, also Ferry's wire name, e.g. `migrate_uri`. */
  readonly name: string;
  /** libvirt's constant, e.g. `VIR_MIGRATE_PARAM_URI`; absent for Ferry's own parameters, which libvirt does not have. */
  readonly libvirtName?: string;
  readonly type: ParamType;
  /** virsh `migrate` option, e.g. `--migrateuri`. */
  readonly option: string;
  /** The option's value as CLI help shows it, e.g. `URI`. */
  readonly valueName: string;
  /** `file`: the CLI option names a file whose content is the value. */
  readonly cliInput?: 'file';
  /** Unit of a number, e.g. `MiB/s`. */
  readonly unit?: string;
  /** Smallest accepted number (for `int` default -2^31, for `ullong` 0). */
  readonly min?: number;
  /** Largest accepted number (for `int` default 2^31 - 1, for `ullong` 2^53 - 1). */
  readonly max?: number;
  /** A number must also be a power of two. */
  readonly powerOfTwo?: boolean;
  /** The only values a string-list item may take. */
  readonly choices?: readonly string[];
  /** For URIs: the schemes accepted. */
  readonly schemes?: readonly UriScheme[];
  /** One line for CLI help. */
  readonly summary: string;
  /** What it does, its limits and what needs it. */
  readonly doc: string;
  /** Whether the current build implements it. */
  readonly availability: Availability;
}

const INT_MIN = -2147483648;
const INT_MAX = 2147483647;

/** libvirt's ceiling for `bandwidth`: the MiB/s that still fit a signed 64-bit byte rate. */
export const MAX_BANDWIDTH_MIB = 8796093022207;
/** libvirt's ceiling for `bandwidth.postcopy`: the MiB/s whose byte rate fits an unsigned 64-bit number. */
export const MAX_POSTCOPY_BANDWIDTH_MIB = 17592186044415;

/** Compression methods, in the order libvirt lists them. */
export const COMPRESSION_METHODS = ['xbzrle', 'mt', 'zlib', 'zstd'] as const;

/** A compression method name. */
export type CompressionMethod = (typeof COMPRESSION_METHODS)[number];

/** Every typed migration parameter. Names and types are libvirt's, so the same request means the same to both. */
export const MIGRATION_PARAMS = [
  {
    name: 'migrate_uri',
    libvirtName: 'VIR_MIGRATE_PARAM_URI',
    type: 'string',
    option: '--migrateuri',
    valueName: 'URI',
    schemes: [
      { scheme: 'tcp', availability: 'supported' },
      { scheme: 'unix', availability: 'supported' },
      { scheme: 'rdma', availability: 'supported' },
    ],
    summary: 'address the destination QEMU listens on for the memory stream',
    doc:
      'Where the memory stream goes, as `tcp://HOST[:PORT]` (or `tcp:HOST[:PORT]`), `unix:///PATH` or ' +
      "`rdma://HOST[:PORT]`. When omitted, the destination picks a port and the address by which the source reaches " +
      'it. Useful when the destination has several networks or a firewall allows only some ports. Refused with ' +
      'TUNNELLED, where the data travels inside the daemon connection.',
    availability: 'supported',
  },
  {
    name: 'destination_name',
    libvirtName: 'VIR_MIGRATE_PARAM_DEST_NAME',
    type: 'string',
    option: '--dname',
    valueName: 'NAME',
    summary: 'name of the guest on the destination',
    doc:
      'Renames the guest on the destination; it must be a valid domain name. When omitted, the guest keeps its name. ' +
      'The name inside destination_xml and persistent_xml stays the original one: this parameter is the only way to ' +
      'rename.',
    availability: 'supported',
  },
  {
    name: 'destination_xml',
    libvirtName: 'VIR_MIGRATE_PARAM_DEST_XML',
    type: 'string',
    option: '--xml',
    valueName: 'FILE',
    cliInput: 'file',
    summary: 'domain XML to run the guest with on the destination',
    doc:
      'A replacement definition for the running guest on the destination. ' +
      'Only host-side details may differ, such as disk paths; the devices the guest sees must be identical, and the ' +
      'migration is refused if they are not. Its name must be the original name.',
    availability: 'supported',
  },
  {
    name: 'persistent_xml',
    libvirtName: 'VIR_MIGRATE_PARAM_PERSIST_XML',
    type: 'string',
    option: '--persistent-xml',
    valueName: 'FILE',
    cliInput: 'file',
    summary: 'domain XML to define on the destination with PERSIST_DEST',
    doc:
      'The persistent definition to save on the destination when PERSIST_DEST is set; when omitted, the source ' +
      'definition is used. Its name must be the original name.',
    availability: 'supported',
  },
  {
    name: 'bandwidth',
    libvirtName: 'VIR_MIGRATE_PARAM_BANDWIDTH',
    type: 'ullong',
    option: '--bandwidth',
    valueName: 'MIB/S',
    unit: 'MiB/s',
    min: 0,
    max: MAX_BANDWIDTH_MIB,
    summary: 'maximum bandwidth of the migration',
    doc:
      'Caps the rate of the migration (of its pre-copy phase when POSTCOPY is used). 0 or omitted means the default ' +
      'rate.',
    availability: 'supported',
  },
  {
    name: 'bandwidth.postcopy',
    libvirtName: 'VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY',
    type: 'ullong',
    option: '--postcopy-bandwidth',
    valueName: 'MIB/S',
    unit: 'MiB/s',
    min: 0,
    max: MAX_POSTCOPY_BANDWIDTH_MIB,
    summary: 'maximum bandwidth of the post-copy phase',
    doc: 'Caps the rate of the post-copy phase. 0 or omitted means no cap. Requires POSTCOPY.',
    availability: 'supported',
  },
  {
    name: 'listen_address',
    libvirtName: 'VIR_MIGRATE_PARAM_LISTEN_ADDRESS',
    type: 'string',
    option: '--listen-address',
    valueName: 'ADDRESS',
    summary: 'address the destination QEMU listens on',
    doc:
      'The address the destination binds for the incoming stream: an IPv4 or IPv6 address or a host name resolved ' +
      'on the destination. When omitted, every address. Refused with TUNNELLED.',
    availability: 'supported',
  },
  {
    name: 'migrate_disks',
    libvirtName: 'VIR_MIGRATE_PARAM_MIGRATE_DISKS',
    type: 'string-list',
    option: '--migrate-disks',
    valueName: 'DISK-LIST',
    summary: 'target names of the disks to copy',
    doc:
      'The disks to copy with NON_SHARED_DISK or NON_SHARED_INC, by target name (e.g. `vda`); on the CLI a comma ' +
      'separated list. Each must be a writable disk with a source in the guest. When omitted, every disk that has a ' +
      'source and is neither read-only nor shareable is copied. Requires a storage-copy flag.',
    availability: 'supported',
  },
  {
    name: 'disks_port',
    libvirtName: 'VIR_MIGRATE_PARAM_DISKS_PORT',
    type: 'int',
    option: '--disks-port',
    valueName: 'PORT',
    min: 0,
    max: 65535,
    summary: 'TCP port the destination uses for the disk copy',
    doc:
      'The port the destination listens on for disk contents; 0 or omitted lets it choose. Requires a storage-copy ' +
      'flag; excludes disks_uri and TUNNELLED.',
    availability: 'supported',
  },
  {
    name: 'disks_uri',
    libvirtName: 'VIR_MIGRATE_PARAM_DISKS_URI',
    type: 'string',
    option: '--disks-uri',
    valueName: 'URI',
    schemes: [
      { scheme: 'tcp', availability: 'supported' },
      { scheme: 'unix', availability: 'supported' },
    ],
    summary: 'address the destination uses for the disk copy',
    doc:
      'Where the disk contents go: `tcp://HOST[:PORT]` (overriding migrate_uri and listen_address for disks) or ' +
      '`unix:///PATH`, a socket path that must lead to the destination from the source too. Requires a storage-copy ' +
      'flag; excludes disks_port and TUNNELLED.',
    availability: 'supported',
  },
  {
    name: 'compression',
    libvirtName: 'VIR_MIGRATE_PARAM_COMPRESSION',
    type: 'string-list',
    option: '--comp-methods',
    valueName: 'METHOD-LIST',
    choices: COMPRESSION_METHODS,
    summary: 'compression methods to use',
    doc:
      'The compression methods, each at most once; on the CLI a comma separated list. `xbzrle` resends only the ' +
      'changed bytes of pages sent before; `mt` compresses pages with several threads; `zlib` and `zstd` compress ' +
      'the streams of a PARALLEL migration. xbzrle and mt cannot be used with PARALLEL; zlib and zstd only with ' +
      'PARALLEL, and only one of them. Requires COMPRESSED.',
    availability: 'supported',
  },
  {
    name: 'compression.mt.level',
    libvirtName: 'VIR_MIGRATE_PARAM_COMPRESSION_MT_LEVEL',
    type: 'int',
    option: '--comp-mt-level',
    valueName: 'LEVEL',
    min: 0,
    max: 9,
    summary: 'compression level of the mt method',
    doc: 'From 0 (no compression) through 1 (fastest) to 9 (smallest). Requires method mt.',
    availability: 'supported',
  },
  {
    name: 'compression.mt.threads',
    libvirtName: 'VIR_MIGRATE_PARAM_COMPRESSION_MT_THREADS',
    type: 'int',
    option: '--comp-mt-threads',
    valueName: 'COUNT',
    min: 1,
    max: 255,
    summary: 'compression threads of the mt method on the source',
    doc: 'Number of threads compressing on the source. Requires method mt.',
    availability: 'supported',
  },
  {
    name: 'compression.mt.dthreads',
    libvirtName: 'VIR_MIGRATE_PARAM_COMPRESSION_MT_DTHREADS',
    type: 'int',
    option: '--comp-mt-dthreads',
    valueName: 'COUNT',
    min: 1,
    max: 255,
    summary: 'decompression threads of the mt method on the destination',
    doc: 'Number of threads decompressing on the destination. Requires method mt.',
    availability: 'supported',
  },
  {
    name: 'compression.xbzrle.cache',
    libvirtName: 'VIR_MIGRATE_PARAM_COMPRESSION_XBZRLE_CACHE',
    type: 'ullong',
    option: '--comp-xbzrle-cache',
    valueName: 'BYTES',
    unit: 'bytes',
    min: 4096,
    powerOfTwo: true,
    summary: 'page cache size of the xbzrle method',
    doc:
      'Size of the cache of sent pages that xbzrle compares against: a power of two, at least one 4 KiB page. ' +
      'Requires method xbzrle.',
    availability: 'supported',
  },
  {
    name: 'compression.zlib.level',
    libvirtName: 'VIR_MIGRATE_PARAM_COMPRESSION_ZLIB_LEVEL',
    type: 'int',
    option: '--comp-zlib-level',
    valueName: 'LEVEL',
    min: 0,
    max: 9,
    summary: 'compression level of the zlib method',
    doc: 'From 0 (no compression) through 1 (fastest, the default) to 9 (smallest). Requires method zlib.',
    availability: 'supported',
  },
  {
    name: 'compression.zstd.level',
    libvirtName: 'VIR_MIGRATE_PARAM_COMPRESSION_ZSTD_LEVEL',
    type: 'int',
    option: '--comp-zstd-level',
    valueName: 'LEVEL',
    min: 0,
    max: 20,
    summary: 'compression level of the zstd method',
    doc: 'From 0 (no compression) through 1 (fastest, the default) to 20 (smallest). Requires method zstd.',
    availability: 'supported',
  },
  {
    name: 'auto_converge.initial',
    libvirtName: 'VIR_MIGRATE_PARAM_AUTO_CONVERGE_INITIAL',
    type: 'int',
    option: '--auto-converge-initial',
    valueName: 'PERCENT',
    unit: 'percent',
    min: 1,
    max: 99,
    summary: 'first CPU throttling step of auto-convergence',
    doc: 'How much guest CPU time is taken away when throttling first starts. Requires AUTO_CONVERGE.',
    availability: 'supported',
  },
  {
    name: 'auto_converge.increment',
    libvirtName: 'VIR_MIGRATE_PARAM_AUTO_CONVERGE_INCREMENT',
    type: 'int',
    option: '--auto-converge-increment',
    valueName: 'PERCENT',
    unit: 'percent',
    min: 1,
    max: 99,
    summary: 'further CPU throttling step of auto-convergence',
    doc: 'How much more is taken away each time the throttling is still not enough. Requires AUTO_CONVERGE.',
    availability: 'supported',
  },
  {
    name: 'parallel.connections',
    libvirtName: 'VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS',
    type: 'int',
    option: '--parallel-connections',
    valueName: 'COUNT',
    min: 1,
    max: 255,
    summary: 'number of connections of a parallel migration',
    doc: 'How many connections carry the memory; when omitted, the hypervisor default. Requires PARALLEL.',
    availability: 'supported',
  },
  {
    name: 'tls.destination',
    libvirtName: 'VIR_MIGRATE_PARAM_TLS_DESTINATION',
    type: 'string',
    option: '--tls-destination',
    valueName: 'HOSTNAME',
    summary: "host name to expect in the destination's TLS certificate",
    doc:
      "The name the destination's certificate must carry, when it differs from the host name in the destination " +
      'URI. Requires TLS.',
    availability: 'supported',
  },
  // Ferry's own: QEMU's self-announce after the switch-over (libvirt has no parameter for it). The
  // destination QEMU sends the guest's MACs in RARP frames so that switches learn where the guest is now.
  {
    name: 'announce_initial',
    type: 'int',
    option: '--announce-initial',
    valueName: 'MS',
    unit: 'ms',
    min: 0,
    max: 100000,
    summary: "interval after the destination's first announcement of the guest's MACs",
    doc:
      "After the switch-over the destination's QEMU announces each of the guest's MAC addresses on its network " +
      '(self-announce: RARP frames, ethertype 0x8035), so that switches send the guest\'s traffic to its new host. ' +
      'The first round goes out as soon as the guest runs there; this is the interval before the second, ' +
      "QEMU's `announce-initial` (default 50 ms). Ferry's own parameter: " +
      'libvirt has none (and a libvirt destination refuses it).',
    availability: 'supported',
  },
  {
    name: 'announce_max',
    type: 'int',
    option: '--announce-max',
    valueName: 'MS',
    unit: 'ms',
    min: 0,
    max: 100000,
    summary: 'longest interval between two announcement rounds',
    doc:
      "The interval between announcement rounds grows by announce_step up to this, QEMU's `announce-max` " +
      "(default 550 ms). Ferry's own parameter: libvirt has none.",
    availability: 'supported',
  },
  {
    name: 'announce_rounds',
    type: 'int',
    option: '--announce-rounds',
    valueName: 'COUNT',
    min: 0,
    max: 1000,
    summary: "how many times the destination announces the guest's MACs",
    doc:
      "The number of announcement rounds after the switch-over, one RARP frame per guest NIC each, QEMU's " +
      "`announce-rounds` (default 5); 0 announces nothing. Ferry's own parameter: libvirt has none.",
    availability: 'supported',
  },
  {
    name: 'announce_step',
    type: 'int',
    option: '--announce-step',
    valueName: 'MS',
    unit: 'ms',
    min: 1,
    max: 10000,
    summary: 'how much the interval between announcement rounds grows',
    doc:
      "The first interval between rounds and its increase each round, QEMU's `announce-step` (default 100 ms). " +
      "Ferry's own parameter: libvirt has none.",
    availability: 'supported',
  },
] as const satisfies readonly MigrationParamSpec[];

/** A migration parameter's name, e.g. `migrate_uri`. */
export type MigrationParamName = (typeof MIGRATION_PARAMS)[number]['name'];

type ValueOfType<T extends ParamType> = T extends 'string' ? string : T extends 'string-list' ? string[] : number;

/** The value type of parameter `N`. */
export type MigrationParamValue<N extends MigrationParamName> = ValueOfType<Extract<(typeof MIGRATION_PARAMS)[number], { name: N }>['type']>;

/** Checked migration parameters, keyed by libvirt's names (as {@link parseParams} returns them). */
export type MigrationParams = {
  -readonly [P in (typeof MIGRATION_PARAMS)[number] as P['name']]?: ValueOfType<P['type']>;
};

const BY_NAME: ReadonlyMap<string, MigrationParamSpec> = new Map(MIGRATION_PARAMS.map((p) => [p.name, p]));

/** The table entry of `name`. */
export function paramSpec(name: MigrationParamName): MigrationParamSpec {
  return BY_NAME.get(name)!;
}

/** Whether `name` is a known parameter name. */
export function isParamName(name: string): name is MigrationParamName {
  return BY_NAME.has(name);
}

/** How messages name a parameter: virsh's option and libvirt's field, e.g. `--dname (destination_name)`. */
export function paramRef(name: MigrationParamName): string {
  return `${paramSpec(name).option} (${name})`;
}

/** The bounds a number of `spec` must lie within. */
export function numberBounds(spec: MigrationParamSpec): { min: number; max: number } {
  if (spec.type === 'int') return { min: spec.min ?? INT_MIN, max: spec.max ?? INT_MAX };
  return { min: spec.min ?? 0, max: spec.max ?? Number.MAX_SAFE_INTEGER };
}

/** What a value of `spec` must look like, as a message fragment. */
export function expectation(spec: MigrationParamSpec): string {
  switch (spec.type) {
    case 'string':
      return 'a non-empty string';
    case 'string-list':
      if (spec.choices) return `a non-empty list of distinct values among ${spec.choices.join(', ')}`;
      return 'a non-empty list of distinct disk target names such as vda';
    case 'int':
    case 'ullong': {
      const { min, max } = numberBounds(spec);
      const unit = spec.unit ? ` ${spec.unit}` : '';
      const two = spec.powerOfTwo ? 'a power of two ' : 'an integer ';
      return `${two}from ${min} to ${max}${unit}`;
    }
  }
}

function refuse(spec: MigrationParamSpec, shown: string, why?: string): never {
  const ref = `${spec.option} (${spec.name})`;
  throw new FerryError('invalid_arg', `invalid value ${shown} for ${ref}: ${why ?? `expected ${expectation(spec)}`}`);
}

function checkString(spec: MigrationParamSpec, value: string, shown: string): void {
  if (value.length === 0) refuse(spec, shown, 'the value is empty');
  if (value.includes('\0')) refuse(spec, shown, 'the value contains a NUL character');
}

function checkNumber(spec: MigrationParamSpec, value: number, shown: string): number {
  const { min, max } = numberBounds(spec);
  if (!Number.isSafeInteger(value) || value < min || value > max) refuse(spec, shown);
  if (spec.powerOfTwo && (BigInt(value) & (BigInt(value) - 1n)) !== 0n) refuse(spec, shown);
  return value;
}

function checkList(spec: MigrationParamSpec, items: readonly unknown[], shown: string): string[] {
  if (items.length === 0) refuse(spec, shown, 'the list is empty');
  const seen = new Set<string>();
  for (const item of items) {
    if (typeof item !== 'string') refuse(spec, shown);
    if (item.length === 0) refuse(spec, shown, 'the list has an empty item');
    checkString(spec, item, showValue(item));
    if (spec.choices) {
      if (!spec.choices.includes(item)) refuse(spec, showValue(item), `expected one of ${spec.choices.join(', ')}`);
    } else if (!DISK_TARGET_PATTERN.test(item)) {
      refuse(spec, showValue(item), 'expected a disk target name: vd, sd or hd followed by 1 to 3 lower-case letters, e.g. vda');
    }
    if (seen.has(item)) refuse(spec, showValue(item), 'the value is given twice');
    seen.add(item);
  }
  return [...items] as string[];
}

/** Checks one value against its table entry; returns it normalised (a lone string becomes a one-item list). */
function checkValue(spec: MigrationParamSpec, value: unknown): string | string[] | number {
  const shown = showValue(value);
  switch (spec.type) {
    case 'string':
      if (typeof value !== 'string') refuse(spec, shown);
      checkString(spec, value, shown);
      return value;
    case 'string-list':
      if (typeof value === 'string') return checkList(spec, [value], shown);
      if (!Array.isArray(value)) refuse(spec, shown);
      return checkList(spec, value, shown);
    case 'int':
    case 'ullong':
      if (typeof value === 'bigint' && spec.type === 'ullong') {
        if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < 0n) refuse(spec, shown);
        return checkNumber(spec, Number(value), shown);
      }
      if (typeof value !== 'number') refuse(spec, shown);
      return checkNumber(spec, value, shown);
  }
}

/**
 * Checks raw parameters (from the API or a caller building them) against
 * the table: every name known, every value of the right type and within
 * its limits. Keys whose value is `undefined` count as absent. A list
 * parameter may be given as one string.
 *
 * @throws FerryError `invalid_arg` naming the parameter (and its virsh option) at fault.
 */
export function parseParams(raw: Record<string, unknown>): MigrationParams {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new FerryError('invalid_arg', `migration parameters must be an object of name/value pairs, got ${showValue(raw)}`);
  }
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(raw)) {
    const spec = BY_NAME.get(name);
    if (spec === undefined) {
      throw new FerryError('invalid_arg', `unknown migration parameter ${showValue(name)}; see docs/migration-flags.md for the known ones`);
    }
    if (value === undefined) continue;
    out[name] = checkValue(spec, value);
  }
  return out as MigrationParams;
}

/**
 * Parses one CLI option's text into the value of parameter `param`, with
 * the same checks as {@link parseParams}: integers in decimal, lists
 * comma separated, strings as given. For an option that names a file
 * (`cliInput: 'file'`), pass the file's content: reading it is the CLI's
 * business.
 *
 * @throws FerryError `invalid_arg` naming the option when the text does not parse or is out of range.
 */
export function parseCliValue<N extends MigrationParamName>(param: N, text: string): MigrationParamValue<N> {
  const spec = paramSpec(param);
  const shown = showValue(text);
  switch (spec.type) {
    case 'string':
      return checkValue(spec, text) as MigrationParamValue<N>;
    case 'string-list':
      return checkList(spec, text.split(','), shown) as MigrationParamValue<N>;
    case 'int':
    case 'ullong': {
      const pattern = spec.type === 'int' ? /^[+-]?[0-9]+$/ : /^\+?[0-9]+$/;
      if (!pattern.test(text)) refuse(spec, shown);
      const big = BigInt(text);
      if (big > BigInt(Number.MAX_SAFE_INTEGER) || big < BigInt(Number.MIN_SAFE_INTEGER)) refuse(spec, shown);
      return checkNumber(spec, Number(big), shown) as MigrationParamValue<N>;
    }
  }
}
