/**
 * The shapes libvirt's remote protocol shares between procedures: strings
 * and their limits, the domain reference, typed parameters and the error
 * structure. Field orders and limits are facts of the interface.
 */
import { FerryError } from '../errors/index.js';
import { array, double, fixedOpaque, hyper, int, optional, opaque, string, struct, uhyper, uint, type Xdr, type XdrReader, type XdrValue, type XdrWriter } from './xdr.js';

/** Longest string the protocol carries (1 MiB). */
export const STRING_MAX = 1048576;
/** Longest migration cookie. */
export const COOKIE_MAX = 4194304;
/** Most domains in one list. */
export const DOMAIN_LIST_MAX = 16384;
/** Most typed parameters in a migration call. */
export const MIGRATE_PARAMS_MAX = 64;
/** Most typed parameters in one domain's record of CONNECT_GET_ALL_DOMAIN_STATS. */
export const DOMAIN_STATS_MAX = 262144;
/** Most typed parameters in job statistics. */
export const JOB_STATS_MAX = 64;

export const nonnullString = string(STRING_MAX);
export const optString = optional(nonnullString);
export const uuid = fixedOpaque(16);

/** A reference to a domain: name, UUID and runtime id (-1 when inactive). */
export const domainRef = struct({ name: nonnullString, uuid, id: int });
export type DomainRef = XdrValue<typeof domainRef>;
export const optDomainRef = optional(domainRef);

/** A typed parameter's value, after `virTypedParameterType`. */
export type TypedValue =
  | { type: 'int'; value: number }
  | { type: 'uint'; value: number }
  | { type: 'llong'; value: number }
  | { type: 'ullong'; value: number }
  | { type: 'double'; value: number }
  | { type: 'boolean'; value: boolean }
  | { type: 'string'; value: string };

/** One typed parameter: a field name and its value. */
export interface TypedParam {
  field: string;
  value: TypedValue;
}

const TYPE_NUMBERS = { int: 1, uint: 2, llong: 3, ullong: 4, double: 5, boolean: 6, string: 7 } as const;

/** The discriminated union `remote_typed_param_value`, keyed by libvirt's type number. */
const typedValue: Xdr<TypedValue> = {
  kind: 'typed param value',
  read: (r: XdrReader): TypedValue => {
    const t = r.int();
    switch (t) {
      case 1:
        return { type: 'int', value: r.int() };
      case 2:
        return { type: 'uint', value: r.uint() };
      case 3:
        return { type: 'llong', value: r.hyper() };
      case 4:
        return { type: 'ullong', value: r.uhyper() };
      case 5:
        return { type: 'double', value: r.double() };
      case 6:
        return { type: 'boolean', value: r.int() !== 0 };
      case 7:
        return { type: 'string', value: nonnullString.read(r) };
      default:
        throw new FerryError('rpc', `unknown typed parameter type ${t}`);
    }
  },
  write: (w: XdrWriter, v: TypedValue): void => {
    w.int(TYPE_NUMBERS[v.type]);
    switch (v.type) {
      case 'int':
        return int.write(w, v.value);
      case 'uint':
        return uint.write(w, v.value);
      case 'llong':
        return hyper.write(w, v.value);
      case 'ullong':
        return uhyper.write(w, v.value);
      case 'double':
        return double.write(w, v.value);
      case 'boolean':
        return int.write(w, v.value ? 1 : 0);
      case 'string':
        return nonnullString.write(w, v.value);
    }
  },
};

export const typedParam: Xdr<TypedParam> = struct({ field: string(80), value: typedValue });

/** A list of typed parameters of at most `max` entries. */
export function typedParams(max: number): Xdr<TypedParam[]> {
  return array(typedParam, max);
}

/** A migration cookie: opaque to every client, Ferry's own JSON between ferryds. */
export const cookie = opaque(COOKIE_MAX);

/** `remote_error`: what a failed call answers. */
export const remoteError = struct({
  code: int,
  domain: int,
  message: optString,
  level: int,
  dom: optDomainRef,
  str1: optString,
  str2: optString,
  str3: optString,
  int1: int,
  int2: int,
  net: optional(struct({ name: nonnullString, uuid })),
});
export type RemoteError = XdrValue<typeof remoteError>;
