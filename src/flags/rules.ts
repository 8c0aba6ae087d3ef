/** The one table of rules a migration request must pass before any host is touched, and the validator that applies them in order. */
import { canonicalUuid, sameUuid } from '../domain/uuid.js';
import { domainNameProblem } from '../domain/validate-name.js';
import type { DiskDef } from '../domain/types.js';
import { FerryError, plainText, showValue, type ErrorCode } from '../errors/index.js';
import {
  MIGRATION_FLAGS,
  checkFlagsWord,
  flagRef,
  flagSpec,
  hasFlag,
  namesFromFlags,
  type MigrationFlagName,
  type MigrationFlagSpec,
} from './migration-flags.js';
import {
  MIGRATION_PARAMS,
  paramRef,
  paramSpec,
  parseParams,
  type MigrationParamName,
  type MigrationParamSpec,
  type MigrationParams,
} from './migration-params.js';
import { disksUriProblem, unixPath, uriScheme } from './migration-uri.js';

/** A migration request: a flags word and its parameters. */
export interface MigrationRequestInput {
  flags: number;
  params: MigrationParams;
}

/** A request that passed every rule, normalised (see {@link validateMigrationRequest}). */
export interface ValidatedMigrationRequest {
  flags: number;
  /** The names of the flags set, in bit order. */
  flagNames: MigrationFlagName[];
  params: MigrationParams;
}

/**
 * What is known about the world when validating. Every field is optional:
 * a rule that needs a field the context lacks is skipped, so the client
 * checks what it can and the source daemon checks again once it knows the
 * guest and the hosts.
 */
export interface MigrationContext {
  /**
   * The guest's `<memtune><hard_limit>` in KiB. The key being present says
   * the guest is known: present with the value undefined means the guest
   * has no hard limit.
   */
  hardLimitKiB?: number | undefined;
  /** The guest's name, for the messages of the guest's rules. */
  domainName?: string;
  /** Whether the guest is running or paused (rather than shut off). */
  active?: boolean;
  /** Whether the guest is paused because a disk reported an I/O error (`paused (I/O error)`). */
  pausedByIoError?: boolean;
  /**
   * Where the guest stands in a post-copy migration that has not ended:
   * 'stale' for a source copy whose post-copy broke after the switch
   * (`paused (post-copy failed)`), 'incomplete' for a destination copy
   * still receiving its memory; 'none' otherwise.
   */
  postcopy?: 'none' | 'stale' | 'incomplete';
  /** Whether the guest has a persistent definition (rather than being transient). */
  persistent?: boolean;
  /** The guest's disks. */
  disks?: readonly Pick<DiskDef, 'targetDev' | 'readonly' | 'shareable' | 'sourcePath'>[];
  /** The source host's UUID. */
  sourceHostUuid?: string;
  /** The destination host's UUID. */
  destHostUuid?: string;
  /** The destination's host name, for the message. */
  destHostName?: string;
}

/** Policy switches of {@link validateMigrationRequest}. */
export interface ValidateOptions {
  /** Skip the `not-implemented` rule, to check flags and parameters the current build does not implement yet. */
  allowLater?: boolean;
}

/** What a rule's check sees. */
export interface RuleInput {
  flags: number;
  params: MigrationParams;
  ctx: MigrationContext;
  options: ValidateOptions;
}

/** One rule: a stable id, the code it refuses with, the rule in a sentence, and its check. */
export interface MigrationRule {
  /** Stable identifier, e.g. `tunnelled-needs-p2p`. */
  readonly id: string;
  /** The error code of a refusal. */
  readonly code: ErrorCode;
  /** The rule, for the documentation. */
  readonly description: string;
  /** The context fields the rule needs; without any of them the rule is skipped. */
  readonly needs?: readonly (keyof MigrationContext)[];
  /** The refusal's message when the request breaks the rule, else undefined. */
  readonly check: (input: RuleInput) => string | undefined;
}

const has = (input: RuleInput, name: MigrationFlagName): boolean => hasFlag(input.flags, name);
const given = (input: RuleInput, name: MigrationParamName): boolean => input.params[name] !== undefined;
const f = flagRef;
const p = paramRef;
/** A flag as the documentation shows it: `` `--tunnelled` (TUNNELLED) ``. */
const fd = (name: MigrationFlagName): string => `\`${flagSpec(name).option}\` (${name})`;
/** A parameter as the documentation shows it: `` `--dname` (`destination_name`) ``. */
const pd = (name: MigrationParamName): string => `\`${paramSpec(name).option}\` (\`${name}\`)`;

/** `a`, `a and b`, `a, b and c` (or with `or`). */
function listed(items: readonly string[], conjunction: 'and' | 'or' = 'and'): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} ${conjunction} ${items[items.length - 1]}`;
}

const STORAGE_COPY: readonly MigrationFlagName[] = ['NON_SHARED_DISK', 'NON_SHARED_INC'];
const OFFLINE_EXCLUDES: readonly MigrationFlagName[] = ['LIVE', 'PAUSED', 'POSTCOPY', 'COMPRESSED', 'AUTO_CONVERGE', 'PARALLEL', 'RDMA_PIN_ALL', 'ZEROCOPY'];
/** What zero-copy sending cannot be combined with: data that is transformed before it is sent is copied anyway. */
const ZEROCOPY_EXCLUDES: readonly MigrationFlagName[] = ['COMPRESSED', 'TLS'];
const TUNNEL_EXCLUDES: readonly MigrationParamName[] = ['migrate_uri', 'listen_address', 'disks_port', 'disks_uri'];
const DISK_PARAMS: readonly MigrationParamName[] = ['migrate_disks', 'disks_port', 'disks_uri'];
const COMPRESSION_PARAMS = MIGRATION_PARAMS.map((q) => q.name).filter((n) => n === 'compression' || n.startsWith('compression.'));
const COMPRESSION_TUNING: ReadonlyArray<readonly [MigrationParamName, string]> = [
  ['compression.mt.level', 'mt'],
  ['compression.mt.threads', 'mt'],
  ['compression.mt.dthreads', 'mt'],
  ['compression.xbzrle.cache', 'xbzrle'],
  ['compression.zlib.level', 'zlib'],
  ['compression.zstd.level', 'zstd'],
];
const STORAGE_REF = `${f('NON_SHARED_DISK')} or ${f('NON_SHARED_INC')}`;
const STORAGE_DOC = `${fd('NON_SHARED_DISK')} or ${fd('NON_SHARED_INC')}`;
const MIGRATE_URI_SCHEMES = paramSpec('migrate_uri').schemes ?? [];
const copiesStorage = (input: RuleInput): boolean => STORAGE_COPY.some((n) => has(input, n));
const methods = (input: RuleInput): readonly string[] => input.params.compression ?? [];
/** The guest as a message names it: `domain 'web1'`, or `the domain` when its name is not in the context. */
const guest = (input: RuleInput): string => (input.ctx.domainName === undefined ? 'the domain' : `domain ${showValue(input.ctx.domainName)}`);

/** What `not-implemented` refuses: later flags, later parameters and later URI schemes in the request. */
function laterItems(input: RuleInput): string[] {
  const items: string[] = [];
  for (const flag of MIGRATION_FLAGS as readonly MigrationFlagSpec[]) if (flag.availability === 'later' && has(input, flag.name as MigrationFlagName)) items.push(f(flag.name as MigrationFlagName));
  for (const param of MIGRATION_PARAMS) {
    const value = input.params[param.name];
    if (value === undefined) continue;
    const spec = param as MigrationParamSpec;
    if (spec.availability === 'later') {
      items.push(p(param.name));
    } else if (spec.schemes !== undefined && typeof value === 'string') {
      const scheme = uriScheme(value);
      if (spec.schemes.some((s) => s.scheme === scheme && s.availability === 'later')) items.push(`the ${scheme}: scheme in ${p(param.name)}`);
    }
  }
  return items;
}

/** The disks a storage copy would copy: migrate_disks when given, else every writable, non-shareable disk with a source. */
export function selectedDisks(disks: NonNullable<MigrationContext['disks']>, params: MigrationParams): readonly string[] {
  if (params.migrate_disks) return params.migrate_disks;
  return disks.filter((d) => d.sourcePath !== undefined && !d.readonly && !d.shareable).map((d) => d.targetDev);
}

/**
 * Every rule, in the order they are checked: the form of the request,
 * then what the build implements, then flag against flag, then parameter
 * against flag, then parameter values, then the guest and the hosts. The
 * first broken rule is reported.
 */
export const MIGRATION_RULES: readonly MigrationRule[] = [
  {
    id: 'known-flags',
    code: 'invalid_arg',
    description: 'The flags word is an unsigned 32-bit integer with no bits beyond the flags in the table.',
    check: (input) => {
      try {
        checkFlagsWord(input.flags);
        return undefined;
      } catch (err) {
        return (err as Error).message;
      }
    },
  },
  {
    id: 'known-params',
    code: 'invalid_arg',
    description: 'Every parameter is in the table and its value has the type and lies within the limits the table gives.',
    check: (input) => {
      try {
        parseParams(input.params);
        return undefined;
      } catch (err) {
        return (err as Error).message;
      }
    },
  },
  {
    id: 'not-implemented',
    code: 'argument_unsupported',
    description:
      "A flag, parameter or URI scheme whose availability is 'later' is refused: the current build does not implement it yet.",
    check: (input) => {
      if (input.options.allowLater) return undefined;
      const items = laterItems(input);
      if (items.length === 0) return undefined;
      return `${listed(items)} ${items.length > 1 ? 'are' : 'is'} not implemented yet`;
    },
  },
  {
    id: 'tunnelled-needs-p2p',
    code: 'invalid_arg',
    description: `${fd('TUNNELLED')} requires ${fd('PEER2PEER')}.`,
    check: (input) =>
      has(input, 'TUNNELLED') && !has(input, 'PEER2PEER')
        ? `${f('TUNNELLED')} requires ${f('PEER2PEER')}: the data is tunnelled through the connection the source daemon opens to the destination`
        : undefined,
  },
  {
    id: 'storage-copy-exclusive',
    code: 'invalid_arg',
    description: `${fd('NON_SHARED_DISK')} and ${fd('NON_SHARED_INC')} exclude each other.`,
    check: (input) =>
      has(input, 'NON_SHARED_DISK') && has(input, 'NON_SHARED_INC')
        ? `${f('NON_SHARED_DISK')} and ${f('NON_SHARED_INC')} exclude each other: copy whole images or only their top layer, not both`
        : undefined,
  },
  {
    id: 'synchronous-writes-need-storage-copy',
    code: 'operation_unsupported',
    description: `${fd('NON_SHARED_SYNCHRONOUS_WRITES')} requires ${STORAGE_DOC}.`,
    check: (input) =>
      has(input, 'NON_SHARED_SYNCHRONOUS_WRITES') && !copiesStorage(input)
        ? `${f('NON_SHARED_SYNCHRONOUS_WRITES')} requires ${STORAGE_REF}: only a storage copy has disk writes to make synchronous`
        : undefined,
  },
  {
    id: 'offline-needs-persist',
    code: 'operation_invalid',
    description: `${fd('OFFLINE')} requires ${fd('PERSIST_DEST')}.`,
    check: (input) =>
      has(input, 'OFFLINE') && !has(input, 'PERSIST_DEST')
        ? `${f('OFFLINE')} requires ${f('PERSIST_DEST')}: an offline migration only moves the definition, so it must be saved on the destination`
        : undefined,
  },
  {
    id: 'offline-excludes-storage-copy',
    code: 'operation_invalid',
    description: `${fd('OFFLINE')} excludes ${STORAGE_DOC}.`,
    check: (input) => {
      if (!has(input, 'OFFLINE')) return undefined;
      const set = STORAGE_COPY.filter((n) => has(input, n));
      return set.length > 0 ? `${f('OFFLINE')} excludes ${listed(set.map(f))}: an offline migration copies no disk contents` : undefined;
    },
  },
  {
    id: 'offline-excludes-tunnelled',
    code: 'operation_invalid',
    description: `${fd('OFFLINE')} excludes ${fd('TUNNELLED')}.`,
    check: (input) =>
      has(input, 'OFFLINE') && has(input, 'TUNNELLED')
        ? `${f('OFFLINE')} excludes ${f('TUNNELLED')}: an offline migration has no data stream to tunnel`
        : undefined,
  },
  {
    id: 'offline-excludes-memory-options',
    code: 'invalid_arg',
    description: `${fd('OFFLINE')} excludes ${listed(OFFLINE_EXCLUDES.map(fd))}.`,
    check: (input) => {
      if (!has(input, 'OFFLINE')) return undefined;
      const set = OFFLINE_EXCLUDES.filter((n) => has(input, n));
      return set.length > 0
        ? `${f('OFFLINE')} excludes ${listed(set.map(f))}: an offline migration starts nothing on the destination and moves no memory`
        : undefined;
    },
  },
  {
    id: 'postcopy-needs-live',
    code: 'argument_unsupported',
    description: `${fd('POSTCOPY')} requires ${fd('LIVE')}.`,
    check: (input) =>
      has(input, 'POSTCOPY') && !has(input, 'LIVE')
        ? `${f('POSTCOPY')} requires ${f('LIVE')}: post-copy hands a running guest over to the destination`
        : undefined,
  },
  {
    id: 'postcopy-excludes-paused',
    code: 'argument_unsupported',
    description: `${fd('POSTCOPY')} excludes ${fd('PAUSED')}.`,
    check: (input) =>
      has(input, 'POSTCOPY') && has(input, 'PAUSED')
        ? `${f('POSTCOPY')} excludes ${f('PAUSED')}: after the switch the guest must run on the destination to fetch its memory`
        : undefined,
  },
  {
    id: 'postcopy-excludes-tunnelled',
    code: 'argument_unsupported',
    description: `${fd('POSTCOPY')} excludes ${fd('TUNNELLED')}.`,
    check: (input) =>
      has(input, 'POSTCOPY') && has(input, 'TUNNELLED')
        ? `${f('POSTCOPY')} excludes ${f('TUNNELLED')}: post-copy needs a direct connection between the two QEMU processes`
        : undefined,
  },
  {
    id: 'postcopy-resume-needs-postcopy',
    code: 'argument_unsupported',
    description: `${fd('POSTCOPY_RESUME')} requires ${fd('POSTCOPY')}.`,
    check: (input) =>
      has(input, 'POSTCOPY_RESUME') && !has(input, 'POSTCOPY')
        ? `${f('POSTCOPY_RESUME')} requires ${f('POSTCOPY')}: only a post-copy migration can be resumed`
        : undefined,
  },
  {
    id: 'postcopy-resume-excludes-storage-copy',
    code: 'argument_unsupported',
    description: `${fd('POSTCOPY_RESUME')} excludes ${listed(STORAGE_COPY.map(fd), 'and')}.`,
    check: (input) => {
      const copy = STORAGE_COPY.filter((n) => has(input, n));
      return has(input, 'POSTCOPY_RESUME') && copy.length > 0
        ? `${f('POSTCOPY_RESUME')} excludes ${listed(copy.map(f))}: the disks were copied before the switch; only memory is left to send`
        : undefined;
    },
  },
  {
    id: 'zerocopy-needs-parallel',
    code: 'operation_invalid',
    description: `${fd('ZEROCOPY')} requires ${fd('PARALLEL')}.`,
    check: (input) =>
      has(input, 'ZEROCOPY') && !has(input, 'PARALLEL')
        ? `zero-copy is only available for parallel migration: ${f('ZEROCOPY')} requires ${f('PARALLEL')} (QEMU sends without copying only on multifd channels)`
        : undefined,
  },
  {
    id: 'zerocopy-excludes-transforms',
    code: 'operation_invalid',
    description: `${fd('ZEROCOPY')} excludes ${listed(ZEROCOPY_EXCLUDES.map(fd))}.`,
    check: (input) => {
      if (!has(input, 'ZEROCOPY')) return undefined;
      const set = ZEROCOPY_EXCLUDES.filter((n) => has(input, n));
      return set.length > 0
        ? `${f('ZEROCOPY')} cannot be used with ${listed(set.map(f))}: zero copy is only available for non-compressed non-TLS multifd migration (pages that are compressed or encrypted are copied on the way)`
        : undefined;
    },
  },
  {
    id: 'tunnelled-excludes-data-address',
    code: 'argument_unsupported',
    description: `${fd('TUNNELLED')} excludes ${listed(TUNNEL_EXCLUDES.map(pd))}.`,
    check: (input) => {
      if (!has(input, 'TUNNELLED')) return undefined;
      const set = TUNNEL_EXCLUDES.filter((n) => given(input, n));
      return set.length > 0
        ? `${f('TUNNELLED')} excludes ${listed(set.map(p))}: tunnelled data travels over the daemons' connection, not to an address of its own`
        : undefined;
    },
  },
  {
    id: 'migrate-uri-scheme',
    code: 'argument_unsupported',
    description: `${pd('migrate_uri')} uses scheme ${listed(MIGRATE_URI_SCHEMES.map((x) => `\`${x.scheme}:\``), 'or')}.`,
    check: (input) => {
      const uri = input.params.migrate_uri;
      if (uri === undefined) return undefined;
      const scheme = uriScheme(uri);
      if (scheme !== undefined && MIGRATE_URI_SCHEMES.some((s) => s.scheme === scheme)) return undefined;
      const expected = MIGRATE_URI_SCHEMES.map((s) => `${s.scheme}:`).join(', ');
      return scheme === undefined
        ? `${p('migrate_uri')} ${showValue(uri)} has no scheme: expected one of ${expected}, e.g. tcp://HOST:PORT`
        : `unsupported scheme ${scheme}: in ${p('migrate_uri')} ${showValue(uri)}: expected one of ${expected}`;
    },
  },
  {
    id: 'migrate-uri-unix-path',
    code: 'invalid_arg',
    description: `A \`unix:\` ${pd('migrate_uri')} names a socket path (\`unix:///PATH\`).`,
    check: (input) => {
      const uri = input.params.migrate_uri;
      if (uri === undefined || uriScheme(uri) !== 'unix') return undefined;
      return unixPath(uri) === undefined ? `the unix URI ${showValue(uri)} in ${p('migrate_uri')} names no socket path; write unix:///PATH` : undefined;
    },
  },
  {
    id: 'rdma-pin-all-needs-rdma-uri',
    code: 'invalid_arg',
    description: `${fd('RDMA_PIN_ALL')} requires a ${pd('migrate_uri')} starting with \`rdma://\`.`,
    check: (input) =>
      has(input, 'RDMA_PIN_ALL') && !(input.params.migrate_uri !== undefined && uriScheme(input.params.migrate_uri) === 'rdma')
        ? `${f('RDMA_PIN_ALL')} requires ${p('migrate_uri')} to start with rdma://: pinning memory only applies to RDMA migration`
        : undefined,
  },
  {
    id: 'disk-params-need-storage-copy',
    code: 'operation_unsupported',
    description: `${listed(DISK_PARAMS.map(pd))} require ${STORAGE_DOC}.`,
    check: (input) => {
      if (copiesStorage(input)) return undefined;
      const set = DISK_PARAMS.filter((n) => given(input, n));
      return set.length > 0
        ? `${listed(set.map(p))} ${set.length > 1 ? 'require' : 'requires'} ${STORAGE_REF}: without a storage copy no disk is migrated`
        : undefined;
    },
  },
  {
    id: 'disks-port-excludes-uri',
    code: 'invalid_arg',
    description: `${pd('disks_port')} and ${pd('disks_uri')} exclude each other.`,
    check: (input) =>
      given(input, 'disks_port') && given(input, 'disks_uri')
        ? `${p('disks_port')} and ${p('disks_uri')} exclude each other: give the port inside the URI`
        : undefined,
  },
  {
    id: 'disks-uri-form',
    code: 'invalid_arg',
    description: `${pd('disks_uri')} is \`tcp://HOST[:PORT]\` or \`unix:///PATH\`.`,
    check: (input) => {
      const uri = input.params.disks_uri;
      const problem = uri === undefined ? undefined : disksUriProblem(uri);
      return problem === undefined ? undefined : `invalid ${p('disks_uri')}: ${problem}`;
    },
  },
  {
    id: 'compression-needs-compressed',
    code: 'invalid_arg',
    description: `Every compression parameter (${listed(COMPRESSION_PARAMS.map(pd))}) requires ${fd('COMPRESSED')}.`,
    check: (input) => {
      if (has(input, 'COMPRESSED')) return undefined;
      const set = COMPRESSION_PARAMS.filter((n) => given(input, n));
      return set.length > 0 ? `${listed(set.map(p))} ${set.length > 1 ? 'require' : 'requires'} ${f('COMPRESSED')}` : undefined;
    },
  },
  {
    id: 'compression-method-needs-sequential',
    code: 'invalid_arg',
    description: `Methods xbzrle and mt in ${pd('compression')} exclude ${fd('PARALLEL')}.`,
    check: (input) => {
      if (!has(input, 'PARALLEL')) return undefined;
      const bad = methods(input).filter((m) => m === 'xbzrle' || m === 'mt');
      return bad.length > 0
        ? `compression method ${listed(bad)} in ${p('compression')} cannot be used with ${f('PARALLEL')}: a parallel migration compresses with zlib or zstd`
        : undefined;
    },
  },
  {
    id: 'compression-method-needs-parallel',
    code: 'invalid_arg',
    description: `Methods zlib and zstd in ${pd('compression')} require ${fd('PARALLEL')}.`,
    check: (input) => {
      if (has(input, 'PARALLEL')) return undefined;
      const bad = methods(input).filter((m) => m === 'zlib' || m === 'zstd');
      return bad.length > 0 ? `compression method ${listed(bad)} in ${p('compression')} requires ${f('PARALLEL')}` : undefined;
    },
  },
  {
    id: 'compression-one-parallel-method',
    code: 'invalid_arg',
    description: `With ${fd('PARALLEL')}, ${pd('compression')} names one method only.`,
    check: (input) =>
      has(input, 'PARALLEL') && methods(input).length > 1
        ? `${p('compression')} names ${listed(methods(input))}, but ${f('PARALLEL')} compresses with one method only`
        : undefined,
  },
  {
    id: 'compression-parallel-needs-method',
    code: 'invalid_arg',
    description: `${fd('COMPRESSED')} with ${fd('PARALLEL')} requires a method in ${pd('compression')}.`,
    check: (input) =>
      has(input, 'COMPRESSED') && has(input, 'PARALLEL') && methods(input).length === 0
        ? `${f('COMPRESSED')} with ${f('PARALLEL')} requires ${p('compression')} to name zlib or zstd: a parallel migration has no default method`
        : undefined,
  },
  {
    id: 'compression-tuning-needs-method',
    code: 'invalid_arg',
    description: `A \`compression.METHOD.*\` parameter requires METHOD in ${pd('compression')}.`,
    check: (input) => {
      for (const [param, method] of COMPRESSION_TUNING) {
        if (given(input, param) && !methods(input).includes(method)) {
          return `${p(param)} requires method ${method} in ${p('compression')}`;
        }
      }
      return undefined;
    },
  },
  {
    id: 'auto-converge-params-need-flag',
    code: 'invalid_arg',
    description: `${pd('auto_converge.initial')} and ${pd('auto_converge.increment')} require ${fd('AUTO_CONVERGE')}.`,
    check: (input) => {
      if (has(input, 'AUTO_CONVERGE')) return undefined;
      const set = (['auto_converge.initial', 'auto_converge.increment'] as const).filter((n) => given(input, n));
      return set.length > 0 ? `${listed(set.map(p))} ${set.length > 1 ? 'require' : 'requires'} ${f('AUTO_CONVERGE')}` : undefined;
    },
  },
  {
    id: 'parallel-connections-need-flag',
    code: 'invalid_arg',
    description: `${pd('parallel.connections')} requires ${fd('PARALLEL')}.`,
    check: (input) =>
      given(input, 'parallel.connections') && !has(input, 'PARALLEL') ? `${p('parallel.connections')} requires ${f('PARALLEL')}` : undefined,
  },
  {
    id: 'postcopy-bandwidth-needs-postcopy',
    code: 'invalid_arg',
    description: `${pd('bandwidth.postcopy')} requires ${fd('POSTCOPY')}.`,
    check: (input) =>
      given(input, 'bandwidth.postcopy') && !has(input, 'POSTCOPY') ? `${p('bandwidth.postcopy')} requires ${f('POSTCOPY')}` : undefined,
  },
  {
    id: 'tls-destination-needs-tls',
    code: 'invalid_arg',
    description: `${pd('tls.destination')} requires ${fd('TLS')}.`,
    check: (input) =>
      given(input, 'tls.destination') && !has(input, 'TLS') ? `${p('tls.destination')} requires ${f('TLS')}` : undefined,
  },
  {
    id: 'destination-name-valid',
    code: 'invalid_arg',
    description: `${pd('destination_name')} is a valid domain name (see Name rules in docs/domain-xml.md).`,
    check: (input) => {
      const name = input.params.destination_name;
      const problem = name === undefined ? undefined : domainNameProblem(name);
      return problem === undefined ? undefined : `invalid domain name ${showValue(name)} in ${p('destination_name')}: ${problem}`;
    },
  },
  {
    id: 'domain-running',
    code: 'operation_invalid',
    needs: ['active'],
    description: `The guest is running or paused, unless ${fd('OFFLINE')} is set.`,
    check: (input) =>
      input.ctx.active === false && !has(input, 'OFFLINE')
        ? `${guest(input)} is not running: only ${f('OFFLINE')} with ${f('PERSIST_DEST')} migrates a shut-off guest (its definition only)`
        : undefined,
  },
  {
    id: 'domain-not-io-error',
    code: 'operation_invalid',
    needs: ['pausedByIoError'],
    description: `The guest is not paused after a disk I/O error, unless ${fd('OFFLINE')} is set.`,
    check: (input) =>
      input.ctx.pausedByIoError === true && !has(input, 'OFFLINE')
        ? `${guest(input)} is paused after a disk I/O error: resolve the error and resume it before migrating`
        : undefined,
  },
  {
    id: 'domain-holds-its-memory',
    code: 'operation_invalid',
    needs: ['postcopy'],
    description: `The guest holds all of its memory: not a source copy left behind by a broken post-copy (only ${fd('POSTCOPY_RESUME')} moves it on), nor a destination copy still receiving its memory by post-copy.`,
    check: (input) => {
      if (input.ctx.postcopy === 'stale' && !has(input, 'POSTCOPY_RESUME')) {
        return `the post-copy migration of ${guest(input)} broke after the switch and is paused; resume it with ${f('POSTCOPY_RESUME')}`;
      }
      if (input.ctx.postcopy === 'incomplete') return `${guest(input)} is still receiving its memory by post-copy from another host; it can migrate once it holds all of it`;
      return undefined;
    },
  },
  {
    id: 'offline-needs-persistent-guest',
    code: 'operation_invalid',
    needs: ['persistent'],
    description: `${fd('OFFLINE')} requires a persistent guest.`,
    check: (input) =>
      input.ctx.persistent === false && has(input, 'OFFLINE')
        ? `cannot migrate transient ${guest(input)} offline: ${f('OFFLINE')} requires a persistent guest, and a transient guest has no definition to move without its running state`
        : undefined,
  },
  {
    id: 'rdma-needs-hard-limit',
    code: 'operation_invalid',
    needs: ['hardLimitKiB'],
    description: `An \`rdma://\` ${pd('migrate_uri')} requires a memory hard limit (\`<memtune><hard_limit>\`) in the guest definition.`,
    check: (input) => {
      const uri = input.params.migrate_uri;
      if (uri === undefined || uriScheme(uri) !== 'rdma' || input.ctx.hardLimitKiB !== undefined) return undefined;
      const pin = has(input, 'RDMA_PIN_ALL') ? ` (and ${f('RDMA_PIN_ALL')} locks all of it)` : '';
      return `cannot start RDMA migration with no memory hard limit set: RDMA locks guest memory in host RAM${pin}; add <memtune><hard_limit> to the guest definition`;
    },
  },
  {
    id: 'migrate-disks-exist',
    code: 'invalid_arg',
    needs: ['disks'],
    description: `Every disk named in ${pd('migrate_disks')} is a disk of the guest.`,
    check: (input) => {
      const wanted = input.params.migrate_disks;
      if (input.ctx.disks === undefined || wanted === undefined) return undefined;
      const targets = new Set(input.ctx.disks.map((d) => d.targetDev));
      const missing = wanted.filter((t) => !targets.has(t));
      return missing.length > 0 ? `${p('migrate_disks')} names disk target ${listed(missing)}, which the guest does not have` : undefined;
    },
  },
  {
    id: 'migrate-disks-writable',
    code: 'operation_unsupported',
    needs: ['disks'],
    description: 'Every disk a storage copy would copy has a source and is writable.',
    check: (input) => {
      const disks = input.ctx.disks;
      if (disks === undefined || !copiesStorage(input)) return undefined;
      const bad = selectedDisks(disks, input.params).filter((t) => {
        const disk = disks.find((d) => d.targetDev === t);
        return disk !== undefined && (disk.readonly || disk.sourcePath === undefined);
      });
      return bad.length > 0 ? `cannot copy empty or read-only disk ${listed(bad)}: leave it out of ${p('migrate_disks')}` : undefined;
    },
  },
  {
    id: 'same-host',
    code: 'operation_invalid',
    needs: ['sourceHostUuid', 'destHostUuid'],
    description: 'The destination is another host than the source (their host UUIDs differ).',
    check: (input) => {
      const { sourceHostUuid, destHostUuid, destHostName } = input.ctx;
      if (sourceHostUuid === undefined || destHostUuid === undefined) return undefined;
      return sameHostProblem(sourceHostUuid, destHostUuid, destHostName ?? destHostUuid);
    },
  },
];

/** libvirt's refusal of a migration to the host it comes from; any spelling of one UUID matches. */
function sameHostProblem(sourceHostUuid: string, destHostUuid: string, hostName: string): string | undefined {
  if (!sameUuid(sourceHostUuid, destHostUuid)) return undefined;
  const uuid = canonicalUuid(sourceHostUuid) ?? plainText(sourceHostUuid.toLowerCase());
  return `Attempt to migrate guest to the same host ${plainText(hostName)} (host UUID ${uuid}): source and destination are one host`;
}

/**
 * Checks a migration request against {@link MIGRATION_RULES}, in order,
 * before any host is touched, and returns it normalised: parameters as
 * {@link parseParams} returns them; `bandwidth` 0 and `disks_port` 0 (which
 * mean "choose for me") dropped; with COMPRESSED but neither PARALLEL nor a
 * method, `compression` set to `['xbzrle']`, the default.
 *
 * @throws FerryError with the code of the first rule broken and a sentence naming the flags (by virsh option and name) and parameters involved.
 */
export function validateMigrationRequest(
  req: MigrationRequestInput,
  ctx: MigrationContext = {},
  options: ValidateOptions = {},
): ValidatedMigrationRequest {
  const input: RuleInput = { flags: req.flags, params: req.params, ctx, options };
  for (const rule of MIGRATION_RULES) {
    if (rule.needs !== undefined && !rule.needs.every((key) => key in ctx)) continue;
    const message = rule.check(input);
    if (message !== undefined) throw new FerryError(rule.code, message);
    // From the parameter rule on, later rules see checked, normalised parameters.
    if (rule.id === 'known-params') input.params = parseParams(req.params);
  }
  const params: MigrationParams = { ...input.params };
  if (params.bandwidth === 0) delete params.bandwidth;
  if (params.disks_port === 0) delete params.disks_port;
  if (hasFlag(req.flags, 'COMPRESSED') && !hasFlag(req.flags, 'PARALLEL') && params.compression === undefined) {
    params.compression = ['xbzrle'];
  }
  return { flags: req.flags, flagNames: namesFromFlags(req.flags), params };
}
