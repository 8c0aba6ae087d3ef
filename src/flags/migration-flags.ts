/** The one table of migration flags (libvirt's `virDomainMigrateFlags`), with virsh's option names and what the current build implements. */
import { FerryError } from '../errors/index.js';

/**
 * Whether the current build implements a flag or parameter end to end
 * (`supported`) or only knows it and refuses it (`later`). Flipping one
 * entry's field is all it takes to switch a feature on.
 */
export type Availability = 'supported' | 'later';

/** One migration flag: libvirt's name and bit, virsh's option, and its documentation. */
export interface MigrationFlagSpec {
  /** Short name without the `VIR_MIGRATE_` prefix, e.g. `LIVE`. */
  readonly name: string;
  /** libvirt's constant, e.g. `VIR_MIGRATE_LIVE`. */
  readonly libvirtName: string;
  /** Bit position in the flags word. */
  readonly bit: number;
  /** `1 << bit`, libvirt's value. */
  readonly value: number;
  /** virsh `migrate` option that sets the flag, e.g. `--live`. */
  readonly option: string;
  /** One line for CLI help. */
  readonly summary: string;
  /** What it does, what it needs, what it excludes and what happens on failure. */
  readonly doc: string;
  /** Whether the current build implements it. */
  readonly availability: Availability;
}

/**
 * Every migration flag, in bit order. Bits and names are libvirt's, so a
 * flags word means the same to Ferry and to libvirt clients.
 */
export const MIGRATION_FLAGS = [
  {
    name: 'LIVE',
    libvirtName: 'VIR_MIGRATE_LIVE',
    bit: 0,
    value: 1 << 0,
    option: '--live',
    summary: 'keep the guest running while its memory is copied',
    doc:
      'The guest keeps running on the source while its memory is copied to the destination; pages it writes in the ' +
      'meantime are sent again, and the guest only stops for the short final copy. A guest that dirties memory faster ' +
      'than the link carries it may never finish: pause it by hand (`ferry suspend`) to let the copy complete, or use ' +
      'AUTO_CONVERGE or POSTCOPY. Without this flag the guest is paused for the whole copy and resumed on the ' +
      'destination. Refused with OFFLINE. If the migration fails, the guest carries on running on the source.',
    availability: 'supported',
  },
  {
    name: 'PEER2PEER',
    libvirtName: 'VIR_MIGRATE_PEER2PEER',
    bit: 1,
    value: 1 << 1,
    option: '--p2p',
    summary: 'let the source daemon drive the migration itself',
    doc:
      'The source daemon connects to the destination daemon on its own and runs every phase of the migration; the ' +
      'client only starts the job and waits for its outcome, and the destination URI must be reachable from the source ' +
      'host. Without it the client connects to both daemons and runs the phases itself (managed migration), so it must ' +
      'reach both hosts. Required by TUNNELLED. If the source cannot reach the destination daemon, nothing changes on ' +
      'either host.',
    availability: 'supported',
  },
  {
    name: 'TUNNELLED',
    libvirtName: 'VIR_MIGRATE_TUNNELLED',
    bit: 2,
    value: 1 << 2,
    option: '--tunnelled',
    summary: "carry the migration data inside the daemons' connection",
    doc:
      "The memory stream travels inside the connection between the two daemons instead of a separate connection " +
      "from one QEMU to the other, so only the daemons' port has to be open and the stream gets that connection's " +
      'encryption. Requires PEER2PEER. Since the data never uses its own connection, migrate_uri, listen_address and ' +
      'disks_port and disks_uri are refused with it, and so are POSTCOPY and OFFLINE. With a storage copy ' +
      '(NON_SHARED_DISK, NON_SHARED_INC) the disk contents take the same way: each NBD connection of the source QEMU ' +
      "is relayed through the daemons' connection to the destination's NBD server. If the daemons lose their " +
      'connection, the migration fails and the guest stays on the source.',
    availability: 'supported',
  },
  {
    name: 'PERSIST_DEST',
    libvirtName: 'VIR_MIGRATE_PERSIST_DEST',
    bit: 3,
    value: 1 << 3,
    option: '--persistent',
    summary: 'define the guest persistently on the destination',
    doc:
      'Once the guest runs on the destination, its definition is saved there too: persistent_xml when given, else ' +
      "the source's persistent definition, or, for a transient guest, its live definition (a transient guest is not " +
      'an error). Without UNDEFINE_SOURCE a persistent guest ends up defined on both hosts. Required by OFFLINE. ' +
      'Without this flag the guest is transient on the destination. If the guest migrated but its definition could ' +
      'not be saved, the migration reports `migrate_persist_failed` and the guest runs on the destination as a ' +
      'transient guest.',
    availability: 'supported',
  },
  {
    name: 'UNDEFINE_SOURCE',
    libvirtName: 'VIR_MIGRATE_UNDEFINE_SOURCE',
    bit: 4,
    value: 1 << 4,
    option: '--undefinesource',
    summary: 'remove the guest definition from the source afterwards',
    doc:
      "After the migration succeeds, the guest's persistent definition is removed from the source host, so the guest " +
      'no longer exists there. A transient guest has no definition to remove: the flag is accepted and does nothing. ' +
      'If the migration fails, nothing is removed.',
    availability: 'supported',
  },
  {
    name: 'PAUSED',
    libvirtName: 'VIR_MIGRATE_PAUSED',
    bit: 5,
    value: 1 << 5,
    option: '--suspend',
    summary: 'leave the guest paused on the destination',
    doc:
      "The guest's virtual CPUs stay paused on the destination once the migration completes; start them there with " +
      '`ferry resume`. Useful to check the destination before the guest runs. Refused with POSTCOPY (post-copy needs ' +
      'the guest running on the destination) and OFFLINE (nothing is started). If the migration fails, the guest is ' +
      'left on the source in the state it had before.',
    availability: 'supported',
  },
  {
    name: 'NON_SHARED_DISK',
    libvirtName: 'VIR_MIGRATE_NON_SHARED_DISK',
    bit: 6,
    value: 1 << 6,
    option: '--copy-storage-all',
    summary: 'copy whole disk images along with memory',
    doc:
      'For hosts that do not share storage: the contents of the guest disks are copied to the destination while the ' +
      'guest runs. The destination exports its images over NBD; the source mirrors every selected disk into them, ' +
      'waits until all mirrors have caught up, migrates memory and completes the mirrors at the switch-over. A ' +
      'missing destination image is created with the same format and virtual size (as a standalone image: the copy ' +
      'holds the whole chain); an existing one must have the same virtual size. By default every disk with a source ' +
      'that is neither read-only nor shareable is copied; migrate_disks names the disks instead. Excludes ' +
      'NON_SHARED_INC and OFFLINE. If the migration fails, the copies are abandoned (images the destination created ' +
      'are deleted) and the guest keeps using its original images on the source.',
    availability: 'supported',
  },
  {
    name: 'NON_SHARED_INC',
    libvirtName: 'VIR_MIGRATE_NON_SHARED_INC',
    bit: 7,
    value: 1 << 7,
    option: '--copy-storage-inc',
    summary: 'copy the top layer of each disk along with memory',
    doc:
      "Like NON_SHARED_DISK, but only the top image of each disk's backing chain is copied: the backing images below " +
      "it must already be on the destination, identical to the source's (same format and virtual size are checked; " +
      'a missing or different backing image is refused before anything is copied). A missing destination image is ' +
      'created as an overlay on that backing image. Excludes NON_SHARED_DISK and OFFLINE. If the migration fails, ' +
      'the copies are abandoned and the guest keeps using its original images on the source.',
    availability: 'supported',
  },
  {
    name: 'CHANGE_PROTECTION',
    libvirtName: 'VIR_MIGRATE_CHANGE_PROTECTION',
    bit: 8,
    value: 1 << 8,
    option: '--change-protection',
    summary: "insist that the guest's configuration is locked during the migration",
    doc:
      "The guest's configuration (its definition, device hot-plug) cannot change from the start of the migration " +
      'until it completes or is rolled back. Ferry protects every migration this way when both hosts can; naming the ' +
      'flag makes the migration fail instead of going ahead unprotected when either host cannot.',
    availability: 'supported',
  },
  {
    name: 'UNSAFE',
    libvirtName: 'VIR_MIGRATE_UNSAFE',
    bit: 9,
    value: 1 << 9,
    option: '--unsafe',
    summary: 'skip the storage safety check',
    doc:
      'Skips the check that refuses (`migrate_unsafe`) to migrate a guest whose writable, non-shareable disks could ' +
      'be corrupted by two hosts caching them: a disk that is not copied and uses a cache mode other than none or ' +
      'directsync, unless its image is on a cluster filesystem. Use it only when you know the storage stays coherent ' +
      'between the hosts; the migration itself is unchanged.',
    availability: 'supported',
  },
  {
    name: 'OFFLINE',
    libvirtName: 'VIR_MIGRATE_OFFLINE',
    bit: 10,
    value: 1 << 10,
    option: '--offline',
    summary: 'copy only the guest definition',
    doc:
      "Only the guest's definition moves: nothing is started on the destination and nothing is stopped on the source, " +
      'whether or not the guest runs. The guest must be persistent, and PERSIST_DEST is required, since the saved ' +
      'definition is all that arrives. Refuses ' +
      'LIVE, PAUSED, TUNNELLED, storage copy and every option about the memory stream (POSTCOPY, COMPRESSED, ' +
      'AUTO_CONVERGE, PARALLEL, RDMA_PIN_ALL, ZEROCOPY). Disk images and other files the guest uses (such as a firmware ' +
      'variable store) are not copied. If the definition cannot be saved on the destination, nothing changes on the ' +
      'source.',
    availability: 'supported',
  },
  {
    name: 'COMPRESSED',
    libvirtName: 'VIR_MIGRATE_COMPRESSED',
    bit: 11,
    value: 1 << 11,
    option: '--compressed',
    summary: 'compress memory pages on the way',
    doc:
      'Memory is compressed before it is sent, with the methods named in `compression` or, when none is named, ' +
      'xbzrle (a cache of pages already sent, so that only the changed bytes of a page travel again). With PARALLEL ' +
      'the method must be named and must be zlib or zstd. Every compression* parameter requires this flag. It trades ' +
      'CPU time on both hosts for bandwidth. Refused with OFFLINE.',
    availability: 'supported',
  },
  {
    name: 'ABORT_ON_ERROR',
    libvirtName: 'VIR_MIGRATE_ABORT_ON_ERROR',
    bit: 12,
    value: 1 << 12,
    option: '--abort-on-error',
    summary: 'abandon the migration on an I/O error',
    doc:
      'If a soft error, such as an I/O error on a guest disk, happens while the migration runs, the migration is ' +
      'abandoned instead of carrying on, and the guest stays on the source.',
    availability: 'supported',
  },
  {
    name: 'AUTO_CONVERGE',
    libvirtName: 'VIR_MIGRATE_AUTO_CONVERGE',
    bit: 13,
    value: 1 << 13,
    option: '--auto-converge',
    summary: 'slow the guest down if the copy cannot catch up',
    doc:
      "When the copy does not catch up with the memory the guest writes, the guest's virtual CPUs are throttled, " +
      'first by auto_converge.initial percent and then by auto_converge.increment more each time it is still not ' +
      'enough, so that a live migration ends at the cost of guest speed. The auto_converge.* parameters require it. ' +
      'Refused with OFFLINE.',
    availability: 'supported',
  },
  {
    name: 'RDMA_PIN_ALL',
    libvirtName: 'VIR_MIGRATE_RDMA_PIN_ALL',
    bit: 14,
    value: 1 << 14,
    option: '--rdma-pin-all',
    summary: 'lock all guest memory in host RAM before an RDMA migration',
    doc:
      'For migration over RDMA: all guest memory is locked into host RAM before the copy starts, instead of page by ' +
      'page as it is sent. Requires a migrate_uri starting with `rdma://` and a memory hard limit ' +
      '(`<memtune><hard_limit>`) in the guest definition covering the guest memory plus what QEMU itself uses. A limit ' +
      "set too high lets the guest lock most of the host's memory, which can starve the host. Refused with OFFLINE.",
    availability: 'supported',
  },
  {
    name: 'POSTCOPY',
    libvirtName: 'VIR_MIGRATE_POSTCOPY',
    bit: 15,
    value: 1 << 15,
    option: '--postcopy',
    summary: 'allow switching the migration to post-copy',
    doc:
      'Makes it possible to switch a running live migration to post-copy: the guest then runs on the destination and ' +
      'fetches the pages it still lacks from the source when it touches them. The migration starts as usual; the ' +
      'switch happens later, on request. Requires LIVE; refused with PAUSED, TUNNELLED and OFFLINE. bandwidth.postcopy ' +
      'requires it. After the switch, losing either host or the link between them leaves the guest unable to run ' +
      'anywhere until the migration is recovered.',
    availability: 'supported',
  },
  {
    name: 'TLS',
    libvirtName: 'VIR_MIGRATE_TLS',
    bit: 16,
    value: 1 << 16,
    option: '--tls',
    summary: 'encrypt the migration data with TLS',
    doc:
      "The migration data (memory and any copied disks) is encrypted with TLS, using the certificates configured on " +
      'the hosts; the migration fails if either host lacks a usable setup. tls.destination requires it. Allowed with ' +
      'OFFLINE, where it has nothing to encrypt, so that hosts that insist on TLS accept every migration.',
    availability: 'supported',
  },
  {
    name: 'PARALLEL',
    libvirtName: 'VIR_MIGRATE_PARALLEL',
    bit: 17,
    value: 1 << 17,
    option: '--parallel',
    summary: 'send memory over several connections',
    doc:
      'Memory is sent over several connections at once (parallel.connections of them) to use more of a fast link. ' +
      'With it, compression is limited to one method, zlib or zstd, which must be named. parallel.connections requires ' +
      'it. Refused with OFFLINE.',
    availability: 'supported',
  },
  {
    name: 'NON_SHARED_SYNCHRONOUS_WRITES',
    libvirtName: 'VIR_MIGRATE_NON_SHARED_SYNCHRONOUS_WRITES',
    bit: 18,
    value: 1 << 18,
    option: '--copy-storage-synchronous-writes',
    summary: "write the guest's disk writes to the destination as they happen",
    doc:
      'With a storage copy, every write the guest makes to a copied disk also goes to the destination before the ' +
      "guest is told it is done (QEMU's write-blocking mirror mode), while the rest of the disk is copied in the " +
      'background as usual. The copy then always catches up, even for a guest that writes its disks faster than ' +
      'the link carries data, at the cost of guest disk writes running at the speed of the link while the copy ' +
      'lasts. Without it (background mode) the guest writes at full speed and a disk it rewrites faster than the ' +
      'link carries never catches up, so the memory copy never starts. Requires NON_SHARED_DISK or NON_SHARED_INC. ' +
      'If the migration fails, the copies are abandoned and the guest keeps using its own images on the source ' +
      '(writes that reached the destination meanwhile are simply lost with its copy).',
    availability: 'supported',
  },
  {
    name: 'POSTCOPY_RESUME',
    libvirtName: 'VIR_MIGRATE_POSTCOPY_RESUME',
    bit: 19,
    value: 1 << 19,
    option: '--postcopy-resume',
    summary: 'resume a post-copy migration whose stream broke after the switch',
    doc:
      'Continues a post-copy migration that stopped after the switch: the stream broke (a cut link, a peer that went ' +
      'away, or `domjobabort --postcopy`), both QEMU processes wait with the migration paused, the source guest is ' +
      '`paused (post-copy failed)` and the destination guest `running (post-copy failed)`. Run the same migrate ' +
      'command again with this flag added (same domain, same destination): the destination opens a new listener for ' +
      'the rest of the stream, the source reconnects and sends the pages the destination still lacks, and the ' +
      'migration ends as a normal post-copy one (the source QEMU stops; UNDEFINE_SOURCE given now undefines the ' +
      'source). Nothing is copied again from the start. Requires POSTCOPY; refused unless both sides really wait in ' +
      'a paused post-copy (a destination still stuck on a dead connection is paused first). If resuming fails, both ' +
      'sides stay paused and it can be tried again; the guest never runs on both hosts.',
    availability: 'supported',
  },
  {
    name: 'ZEROCOPY',
    libvirtName: 'VIR_MIGRATE_ZEROCOPY',
    bit: 20,
    value: 1 << 20,
    option: '--zerocopy',
    summary: 'send memory pages without copying them (Linux MSG_ZEROCOPY)',
    doc:
      "The source QEMU sends guest memory straight from the guest's pages (QEMU's `zero-copy-send`, Linux " +
      "MSG_ZEROCOPY) instead of copying each page into a socket buffer first, to spend less CPU per byte sent. The " +
      'kernel pins the pages queued for sending, which counts against the locked-memory limit: the source QEMU\'s ' +
      'limit (RLIMIT_MEMLOCK) is raised for the migration to the memory hard limit (`<memtune><hard_limit>`) or, ' +
      'without one, to the guest memory plus 1 GiB, as libvirt does, and put back if the migration fails; where the host does ' +
      'not allow raising it the migration is refused before it starts, unless QEMU holds CAP_IPC_LOCK (the kernel ' +
      'does not count its pinned pages against the limit, so that is logged and the migration goes on). Requires ' +
      'PARALLEL; refused with COMPRESSED ' +
      'and with TLS (pages that must be compressed or encrypted are copied anyway), and with OFFLINE. Only the ' +
      'sending side changes. If QEMU or the kernel cannot send this way, the migration fails with their reason and ' +
      'the guest stays on the source.',
    availability: 'supported',
  },
] as const satisfies readonly MigrationFlagSpec[];

/** A migration flag's short name, e.g. `LIVE`. */
export type MigrationFlagName = (typeof MIGRATION_FLAGS)[number]['name'];

/** The OR of every flag's value: the bits Ferry knows. */
export const KNOWN_FLAG_BITS: number = MIGRATION_FLAGS.reduce((all, f) => (all | f.value) >>> 0, 0);

const BY_NAME: ReadonlyMap<string, MigrationFlagSpec> = new Map(MIGRATION_FLAGS.map((f) => [f.name, f]));

/** The table entry of `name`. */
export function flagSpec(name: MigrationFlagName): MigrationFlagSpec {
  return BY_NAME.get(name)!;
}

/** How messages name a flag: virsh's option and the flag, e.g. `--tunnelled (TUNNELLED)`. */
export function flagRef(name: MigrationFlagName): string {
  return `${flagSpec(name).option} (${name})`;
}

/**
 * The flags word for `names`. Accepts the short name (`LIVE`), libvirt's
 * name (`VIR_MIGRATE_LIVE`) or virsh's option (`--live`); repeats are fine.
 *
 * @throws FerryError `invalid_arg` naming the first unknown name.
 */
export function flagsFromNames(names: readonly string[]): number {
  let value = 0;
  for (const name of names) {
    const spec = BY_NAME.get(name) ?? MIGRATION_FLAGS.find((f) => f.libvirtName === name || f.option === name);
    if (spec === undefined) {
      throw new FerryError('invalid_arg', `unknown migration flag '${name}': expected one of ${MIGRATION_FLAGS.map((f) => f.name).join(', ')}`);
    }
    value = (value | spec.value) >>> 0;
  }
  return value;
}

/**
 * Checks that `value` is a flags word: an unsigned 32-bit integer whose
 * bits are all known.
 *
 * @throws FerryError `invalid_arg` otherwise, listing the unknown bits.
 */
export function checkFlagsWord(value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new FerryError('invalid_arg', `migration flags must be an unsigned 32-bit integer, got ${String(value)}`);
  }
  const unknown = (value & ~KNOWN_FLAG_BITS) >>> 0;
  if (unknown !== 0) {
    const bits: number[] = [];
    for (let bit = 0; bit < 32; bit++) if ((unknown >>> bit) & 1) bits.push(bit);
    throw new FerryError(
      'invalid_arg',
      `unsupported migration flags 0x${unknown.toString(16)} (bit${bits.length > 1 ? 's' : ''} ${bits.join(', ')}): Ferry knows bits ${knownBitRanges()}`,
    );
  }
}

/** The known bits as ranges, e.g. `0 to 18 and 20`: libvirt's bits are not all implemented, so the set may have gaps. */
function knownBitRanges(): string {
  const ranges: string[] = [];
  const bits = MIGRATION_FLAGS.map((f) => f.bit as number).sort((a, b) => a - b);
  for (let i = 0; i < bits.length; ) {
    let j = i;
    while (j + 1 < bits.length && bits[j + 1] === bits[j]! + 1) j++;
    ranges.push(j > i ? `${bits[i]} to ${bits[j]}` : String(bits[i]));
    i = j + 1;
  }
  return ranges.length > 1 ? `${ranges.slice(0, -1).join(', ')} and ${ranges[ranges.length - 1]}` : ranges.join('');
}

/**
 * The names of the flags set in `value`, in bit order.
 *
 * @throws FerryError `invalid_arg` when `value` is not a flags word or has unknown bits.
 */
export function namesFromFlags(value: number): MigrationFlagName[] {
  checkFlagsWord(value);
  return MIGRATION_FLAGS.filter((f) => (value & f.value) !== 0).map((f) => f.name);
}

/** Whether flag `name` is set in `value`. */
export function hasFlag(value: number, name: MigrationFlagName): boolean {
  return (value & flagSpec(name).value) !== 0;
}

/**
 * How a migration is run, for counting (metrics): `offline`, `p2p-tunnelled`,
 * `p2p`, or `managed` (the client drives the phases).
 */
export function migrationMode(value: number): 'managed' | 'p2p' | 'p2p-tunnelled' | 'offline' {
  if (hasFlag(value, 'OFFLINE')) return 'offline';
  if (hasFlag(value, 'PEER2PEER')) return hasFlag(value, 'TUNNELLED') ? 'p2p-tunnelled' : 'p2p';
  return 'managed';
}
