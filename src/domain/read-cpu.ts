/**
 * Reads and checks the `<cpu>` element: mode, match, check, `<model>` and
 * `<feature>`s, with libvirt's meaning. Names end up in QEMU's `-cpu`
 * option, which has no escaping at all (QEMU splits it on every comma), so
 * model and feature names are held to a strict character set here and again
 * where the option is built.
 */
import type { Element } from '@xmldom/xmldom';
import { choose } from './choice.js';
import { showValue } from '../errors/index.js';
import { attr, childElements, optionalChild, refuseStrayText, requiredAttr, textOf } from './dom.js';
import { unsupported, xmlError } from './refuse.js';
import type { CpuDef, CpuFeatureDef, CpuFeaturePolicy } from './types.js';

/**
 * What a CPU model or feature name may be: QEMU's names are letters, digits,
 * `.`, `_` and `-` (`Icelake-Server-v4`, `sse4.2`, `avx512-vpopcntdq`).
 * Anything else (a comma above all) could add options to `-cpu`.
 */
export const CPU_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const NAME_RULE = "letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit";

/** libvirt's feature policies, in its documentation's order. */
export const CPU_FEATURE_POLICIES: readonly CpuFeaturePolicy[] = ['force', 'require', 'optional', 'disable', 'forbid'];

/**
 * Checks a model or feature name. Empty is an XML error (libvirt refuses it
 * too); a name libvirt would store but that cannot be passed to QEMU safely
 * is `config_unsupported`.
 */
function cpuName(value: string, what: string): string {
  if (value === '') throw xmlError(`empty ${what}`);
  if (!CPU_NAME_PATTERN.test(value)) {
    throw unsupported(`unsupported value ${showValue(value)} for ${what}: Ferry passes CPU names to QEMU's -cpu option, which has no escaping, so they must be ${NAME_RULE}`);
  }
  return value;
}

function readFeature(el: Element): CpuFeatureDef {
  const name = cpuName(requiredAttr(el, 'name', '<cpu>'), '<cpu><feature name>');
  const policyAttr = attr(el, 'policy');
  // libvirt: a guest CPU feature without policy is 'require'.
  const policy = policyAttr === undefined ? 'require' : choose(policyAttr, { what: `<feature policy> of CPU feature '${name}'`, supported: CPU_FEATURE_POLICIES });
  return { name, policy };
}

/**
 * Reads `<cpu>`. libvirt's defaults apply: without `mode`, custom; a custom
 * CPU with a model matches `exact`; a model falls back `allow`; a feature's
 * policy is `require`.
 *
 * @throws FerryError `xml_error` for what libvirt refuses too (features
 *   without a model in custom mode, a feature twice, `migratable` outside
 *   host-passthrough and maximum), `config_unsupported` for names Ferry
 *   cannot pass to QEMU.
 */
export function readCpu(cpu: Element): CpuDef {
  refuseStrayText(cpu);
  const modeAttr = attr(cpu, 'mode');
  const mode = modeAttr === undefined ? 'custom' : choose(modeAttr, { what: '<cpu mode>', supported: ['host-passthrough', 'host-model', 'custom', 'maximum'] as const });
  const def: CpuDef = { mode, features: [] };
  const check = attr(cpu, 'check');
  if (check !== undefined) def.check = choose(check, { what: '<cpu check>', supported: ['none', 'partial', 'full'] as const });
  const migratable = attr(cpu, 'migratable');
  if (migratable !== undefined) {
    if (mode !== 'host-passthrough' && mode !== 'maximum') {
      throw xmlError(`<cpu migratable> is only allowed for 'host-passthrough' and 'maximum' CPU mode, not ${showValue(mode)}`);
    }
    def.migratable = choose(migratable, { what: '<cpu migratable>', supported: ['on', 'off'] as const });
  }
  const modelEl = optionalChild(cpu, 'model');
  if (modelEl !== undefined) {
    const text = textOf(modelEl, '<cpu>').trim();
    if (text !== '') def.model = cpuName(text, '<cpu><model>');
    const fallback = attr(modelEl, 'fallback');
    if (fallback !== undefined) def.fallback = choose(fallback, { what: '<cpu><model fallback>', supported: ['allow', 'forbid'] as const });
  }
  if (mode === 'custom') {
    const match = attr(cpu, 'match');
    if (match !== undefined) def.match = choose(match, { what: '<cpu match>', supported: ['exact', 'minimum', 'strict'] as const });
    else if (def.model !== undefined) def.match = 'exact';
  }
  for (const el of childElements(cpu, 'feature')) {
    const feature = readFeature(el);
    if (def.features.some((f) => f.name === feature.name)) throw xmlError(`CPU feature '${feature.name}' is specified more than once in <cpu>`);
    def.features.push(feature);
  }
  if (mode === 'custom' && def.model === undefined && def.features.length > 0) {
    throw xmlError('<cpu> lists features without a <model>: a custom CPU needs a model to add features to');
  }
  return def;
}
