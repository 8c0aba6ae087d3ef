/**
 * Whether a destination's CPU can run a guest from the evacuated host:
 * the planning form of the checks a migration's prepare makes for real
 * (src/migration/incoming.ts, `checkGuestCpuHere`), so that a plan does not
 * send a guest where prepare would refuse it.
 */
import { compareHostCpus } from '../qemu/cpu-check.js';
import type { GuestCpuNeed, PlacementCpu } from './types.js';

/** QEMU spells feature names with `-` and accepts `_`; compare them one way. */
function canonical(feature: string): string {
  return feature.replace(/_/g, '-');
}

/**
 * Why `destination` cannot give the guest its CPU, or undefined when it can.
 * The sentence follows the host's name in a refusal (`b: ...`).
 *
 * - default (no `<cpu>`): any host;
 * - a host whose CPU is not known (empty fingerprint): none of the others;
 * - host-passthrough: the fingerprints must match, unless `unsafe` (libvirt's
 *   VIR_MIGRATE_UNSAFE; prepare refuses with `migrate_unsafe` otherwise);
 * - host-model and custom: every required feature must be among the
 *   destination's. The model itself is not compared: host facts do not list
 *   models, and prepare still refuses an unknown one (the retry policy then
 *   tries another host).
 */
export function cpuMismatch(need: GuestCpuNeed, source: PlacementCpu, destination: PlacementCpu, unsafe: boolean): string | undefined {
  if (need.mode === 'default') return undefined;
  // An empty fingerprint is a CPU nobody could ask QEMU about (host facts' `cpu.qemu` null): never "the same" as another unknown one.
  if (destination.fingerprint === '') return `CPU not known (its QEMU could not be asked), and the guest's CPU is ${need.mode}`;
  switch (need.mode) {
    case 'host-passthrough': {
      if (source.fingerprint === '' && !unsafe) return "the source's CPU is not known, so it cannot be compared (unsafe would allow it)";
      if (unsafe || source.fingerprint === destination.fingerprint) return undefined;
      const cmp = compareHostCpus(source.features.map(canonical), destination.features.map(canonical));
      const diff = [
        ...(cmp.missing.length > 0 ? [`missing: ${cmp.missing.join(',')}`] : []),
        ...(cmp.extra.length > 0 ? [`extra: ${cmp.extra.join(',')}`] : []),
      ].join('; ');
      const what = destination.model === source.model ? `CPU ${destination.model} offers other features than the source's` : `CPU ${destination.model} differs from the source's ${source.model}`;
      return `${what}${diff ? ` (${diff})` : ''} and the guest is host-passthrough (unsafe would allow it)`;
    }
    case 'host-model':
    case 'custom': {
      const have = new Set(destination.features.map(canonical));
      const missing = [...new Set(need.requiredFeatures.map(canonical))].filter((f) => !have.has(f)).sort();
      if (missing.length === 0) return undefined;
      const model = need.model !== undefined ? ` of model ${need.model}` : '';
      return `CPU ${destination.model} lacks ${missing.join(',')}, required by the guest's ${need.mode} CPU${model}`;
    }
  }
}
