/**
 * Migration parameters between libvirt's typed parameters and Ferry's
 * parameter object, both ways, read from the one parameter table
 * (`src/flags/migration-params.ts`): a list parameter is its field given
 * once per item; numbers keep libvirt's int or unsigned long long type.
 * Whether a value is allowed is decided by that table's checks, not here.
 */
import { FerryError } from '../errors/index.js';
import { isParamName, paramSpec } from '../flags/index.js';
import type { TypedParam } from './wire-types.js';

/** Typed parameters as the parameter object `parseParams` checks; an unknown field is passed on for it to refuse. */
export function paramsFromTyped(list: readonly TypedParam[]): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const { field, value } of list) {
    if (isParamName(field) && paramSpec(field).type === 'string-list') {
      if (value.type !== 'string') throw new FerryError('invalid_arg', `migration parameter '${field}' must be a string`);
      const prev = out[field];
      out[field] = Array.isArray(prev) ? [...prev, value.value] : [value.value];
      continue;
    }
    if (Object.hasOwn(out, field)) throw new FerryError('invalid_arg', `migration parameter '${field}' is given more than once`);
    out[field] = value.value;
  }
  return out;
}

/** Ferry's parameter object as typed parameters, for a destination that speaks libvirt's protocol. */
export function typedFromParams(params: Record<string, unknown>): TypedParam[] {
  const out: TypedParam[] = [];
  for (const [field, v] of Object.entries(params)) {
    if (v === undefined || !isParamName(field)) continue;
    switch (paramSpec(field).type) {
      case 'string':
        out.push({ field, value: { type: 'string', value: String(v) } });
        break;
      case 'string-list':
        for (const item of Array.isArray(v) ? v : [v]) out.push({ field, value: { type: 'string', value: String(item) } });
        break;
      case 'int':
        out.push({ field, value: { type: 'int', value: Number(v) } });
        break;
      case 'ullong':
        out.push({ field, value: { type: 'ullong', value: Number(v) } });
        break;
    }
  }
  return out;
}
