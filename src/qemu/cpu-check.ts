/**
 * Can this host's QEMU give a guest the CPU its definition asks for? The
 * answer comes from QEMU itself (`query-cpu-definitions`: each model's
 * `unavailable-features` under this accelerator; `query-cpu-model-expansion`
 * of `max`: every feature the accelerator can provide), asked once per
 * binary and accelerator by a QEMU started with `-machine none`, before any
 * guest QEMU runs. The rules are pure functions of that answer, so that the
 * refusals (at start and in a migration's prepare) can be unit-tested.
 */
import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import type { CpuDef, DomainDef } from '../domain/types.js';
import { FerryError, showValue } from '../errors/index.js';
import type { Accel } from './command-line.js';
import { LineSplitter } from './line-splitter.js';

/** What one QEMU binary under one accelerator can provide. */
export interface CpuCapabilities {
  accel: Accel;
  /** Every CPU model (and alias) by name, with the features this accelerator cannot give it. */
  models: ReadonlyMap<string, readonly string[]>;
  /** Every feature property of the `max` model: true when the accelerator provides it. */
  features: ReadonlyMap<string, boolean>;
}

/** Why a host cannot give a guest its CPU, as lists of names (empty when it can). */
export interface CpuShortfall {
  /** The custom model, when QEMU does not know it. */
  unknownModel?: string;
  /** Feature names QEMU does not know at all. */
  unknownFeatures: string[];
  /** Features the definition needs that this accelerator cannot provide. */
  missing: string[];
  /** Features with policy `forbid` that this host does provide. */
  forbidden: string[];
}

/** A feature's entry in {@link CpuCapabilities.features}, trying QEMU's `-` spelling of an `_` name as `-cpu` itself does. */
function featureState(caps: CpuCapabilities, name: string): boolean | undefined {
  return caps.features.get(name) ?? caps.features.get(name.replace(/_/g, '-'));
}

/**
 * What `cpu` needs that `caps` lacks. libvirt's rules:
 *
 * - custom with a model (any `match`: `minimum` and `strict` ask at least as
 *   much as `exact`): the model must exist and every feature QEMU reports
 *   unavailable for it must be one the definition disables or forbids;
 * - every mode: `require` features must be available, `forbid` features must
 *   not be (libvirt: "guest creation will fail if the feature is supported
 *   by host CPU"); `force`, `optional` and `disable` ask nothing;
 * - `check='none'` asks nothing at all, as in libvirt.
 */
export function cpuShortfall(cpu: CpuDef | undefined, caps: CpuCapabilities): CpuShortfall {
  const out: CpuShortfall = { unknownFeatures: [], missing: [], forbidden: [] };
  if (cpu === undefined || cpu.check === 'none') return out;
  const off = new Set(cpu.features.filter((f) => f.policy === 'disable' || f.policy === 'forbid').map((f) => f.name.replace(/_/g, '-')));
  if (cpu.mode === 'custom' && cpu.model !== undefined) {
    const unavailable = caps.models.get(cpu.model);
    if (unavailable === undefined) out.unknownModel = cpu.model;
    else for (const name of unavailable) if (!off.has(name.replace(/_/g, '-'))) out.missing.push(name);
  }
  for (const f of cpu.features) {
    const state = featureState(caps, f.name);
    if (state === undefined) {
      out.unknownFeatures.push(f.name);
      continue;
    }
    if (f.policy === 'require' && !state && !out.missing.includes(f.name)) out.missing.push(f.name);
    if (f.policy === 'forbid' && state) out.forbidden.push(f.name);
  }
  return out;
}

/**
 * The refusal for a shortfall, with libvirt's wording and error numbers:
 * an unknown model or feature is `config_unsupported` ("CPU model X is not
 * supported by hypervisor", "unknown CPU feature: X"); missing features are
 * `operation_failed` ("guest CPU doesn't match specification: missing
 * features: ...", libvirt's VIR_ERR_OPERATION_FAILED). Undefined when there
 * is nothing to refuse.
 *
 * @param where e.g. `on host B` or `under TCG`, appended so the user knows which host said no
 */
export function cpuRefusal(name: string, shortfall: CpuShortfall, where: string): FerryError | undefined {
  const lead = `cannot run domain '${name}' ${where}`;
  if (shortfall.unknownModel !== undefined) {
    return new FerryError('config_unsupported', `${lead}: CPU model ${showValue(shortfall.unknownModel)} is not supported by hypervisor (QEMU's query-cpu-definitions does not list it; 'qemu-system-x86_64 -cpu help' shows the models)`);
  }
  if (shortfall.unknownFeatures.length > 0) {
    return new FerryError('config_unsupported', `${lead}: unknown CPU feature: ${shortfall.unknownFeatures.join(',')}`);
  }
  const parts: string[] = [];
  if (shortfall.missing.length > 0) parts.push(`missing features: ${shortfall.missing.join(',')}`);
  if (shortfall.forbidden.length > 0) parts.push(`forbidden features present: ${shortfall.forbidden.join(',')}`);
  if (parts.length === 0) return undefined;
  const advice = shortfall.missing.length > 0 ? "; disable them with <feature policy='disable' name='...'/>, choose an older <model>, or set <cpu check='none'> to let QEMU drop them" : '';
  return new FerryError('operation_failed', `${lead}: guest CPU doesn't match specification: ${parts.join(', ')}${advice}`);
}

/**
 * The pure comparison behind host-passthrough's migration rule: a guest
 * that sees the host's own CPU may only move to a host whose CPU looks the
 * same, feature for feature. `source` and `destination` are the feature
 * names each host's QEMU reports enabled for its host CPU (`max` under TCG,
 * `host` under KVM; see {@link hostCpuFeatures}).
 */
export function compareHostCpus(source: readonly string[], destination: readonly string[]): { same: boolean; missing: string[]; extra: string[] } {
  const dest = new Set(destination);
  const src = new Set(source);
  const missing = [...src].filter((f) => !dest.has(f)).sort();
  const extra = [...dest].filter((f) => !src.has(f)).sort();
  return { same: missing.length === 0 && extra.length === 0, missing, extra };
}

/** The features the host CPU model offers a guest here, sorted: what host-passthrough passes through. */
export function hostCpuFeatures(caps: CpuCapabilities): string[] {
  return [...caps.features].filter(([, on]) => on).map(([name]) => name).sort();
}

// ---------------------------------------------------------------- probing QEMU

const PROBE_TIMEOUT_MS = 15_000;
const cache = new Map<string, Promise<CpuCapabilities>>();

/**
 * Asks `binary` under `accel` what it can provide: a QEMU with `-machine
 * none` (no guest, no devices) answers three QMP commands on stdio and quits.
 * Cached per binary, modification time and accelerator for the life of the
 * daemon; a failed probe is not cached.
 *
 * @throws FerryError `operation_failed` when QEMU cannot be asked
 */
export async function probeCpuCapabilities(binary: string, accel: Accel): Promise<CpuCapabilities> {
  const mtime = await stat(binary).then((s) => s.mtimeMs, () => 0);
  const key = `${binary}\0${mtime}\0${accel}`;
  let p = cache.get(key);
  if (p === undefined) {
    p = runProbe(binary, accel);
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

function runProbe(binary: string, accel: Accel): Promise<CpuCapabilities> {
  const args = ['-machine', 'none', '-accel', accel, '-nodefaults', '-no-user-config', '-display', 'none', '-qmp', 'stdio'];
  return new Promise<CpuCapabilities>((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const replies: unknown[] = [];
    let stderr = '';
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new FerryError('operation_failed', `cannot ask ${binary} (-accel ${accel}) which CPUs it provides: ${why}`));
    };
    const timer = setTimeout(() => fail(`no answer within ${PROBE_TIMEOUT_MS} ms`), PROBE_TIMEOUT_MS);
    const splitter = new LineSplitter(16 * 1024 * 1024);
    const onLine = (line: string): void => {
      let msg: { return?: unknown; error?: { desc?: string } };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        return;
      }
      if (msg.error !== undefined) fail(msg.error.desc ?? 'QMP error');
      else if ('return' in msg) replies.push(msg.return);
      if (replies.length === 3 && !settled) {
        settled = true;
        clearTimeout(timer);
        child.stdin.end('{"execute":"quit"}\n');
        try {
          resolve(parseCapabilities(accel, replies[1], replies[2]));
        } catch (err) {
          reject(err);
        }
      }
    };
    child.stdout.on('data', (d: Buffer) => {
      try {
        for (const line of splitter.push(d)) onLine(line);
      } catch (err) {
        fail((err as Error).message);
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString('utf8')).slice(-2048);
    });
    child.stdin.on('error', () => undefined);
    child.on('error', (err) => fail(err.message));
    child.on('exit', (code, signal) => fail(stderr.trim().split('\n').pop() || `QEMU exited (${signal ?? code})`));
    child.stdin.write(
      '{"execute":"qmp_capabilities"}\n{"execute":"query-cpu-definitions"}\n' +
        '{"execute":"query-cpu-model-expansion","arguments":{"type":"full","model":{"name":"max"}}}\n',
    );
  });
}

/**
 * Builds {@link CpuCapabilities} from the replies of `query-cpu-definitions`
 * and of `query-cpu-model-expansion` (type full) of `max`. Pure.
 *
 * @throws FerryError `operation_failed` for replies of another shape
 */
export function parseCapabilities(accel: Accel, definitions: unknown, maxExpansion: unknown): CpuCapabilities {
  const bad = (what: string) => new FerryError('operation_failed', `QEMU's ${what} reply has an unexpected shape`);
  if (!Array.isArray(definitions)) throw bad('query-cpu-definitions');
  const models = new Map<string, string[]>();
  for (const d of definitions as Array<{ name?: unknown; 'unavailable-features'?: unknown }>) {
    if (typeof d?.name !== 'string') throw bad('query-cpu-definitions');
    const unavailable = Array.isArray(d['unavailable-features']) ? d['unavailable-features'].filter((x): x is string => typeof x === 'string') : [];
    models.set(d.name, unavailable);
  }
  const props = (maxExpansion as { model?: { props?: unknown } } | undefined)?.model?.props;
  if (props === null || typeof props !== 'object') throw bad('query-cpu-model-expansion');
  const features = new Map<string, boolean>();
  for (const [name, value] of Object.entries(props as Record<string, unknown>)) {
    if (typeof value === 'boolean') features.set(name, value);
  }
  return { accel, models, features };
}

/**
 * Refuses to start `def` where this host's QEMU cannot give it its CPU
 * (see {@link cpuShortfall}). Asks QEMU only when the definition has
 * something to check.
 *
 * @param where how the refusal names the host, e.g. `on this host`
 * @throws FerryError `config_unsupported` or `operation_failed` as {@link cpuRefusal} says
 */
export async function checkGuestCpu(def: Pick<DomainDef, 'name' | 'cpu'>, accel: Accel, binary: string, where = 'on this host'): Promise<void> {
  const cpu = def.cpu;
  if (cpu === undefined || cpu.check === 'none') return;
  if (cpu.features.length === 0 && (cpu.mode !== 'custom' || cpu.model === undefined)) return;
  const caps = await probeCpuCapabilities(binary, accel);
  const refusal = cpuRefusal(def.name, cpuShortfall(cpu, caps), `${where} (-accel ${accel})`);
  if (refusal !== undefined) throw refusal;
}

/**
 * host-passthrough's migration rule: refused with `migrate_unsafe` (libvirt's
 * VIR_ERR_MIGRATE_UNSAFE) when the two hosts' CPUs differ, unless the
 * request carries UNSAFE. Undefined when the migration may go ahead.
 */
export function hostPassthroughRefusal(name: string, source: readonly string[], destination: readonly string[], unsafe: boolean, where: string): FerryError | undefined {
  const cmp = compareHostCpus(source, destination);
  if (cmp.same || unsafe) return undefined;
  const diff = [
    ...(cmp.missing.length > 0 ? [`missing here: ${cmp.missing.join(',')}`] : []),
    ...(cmp.extra.length > 0 ? [`only here: ${cmp.extra.join(',')}`] : []),
  ].join('; ');
  return new FerryError(
    'migrate_unsafe',
    `cannot migrate domain '${name}' ${where}: its CPU is host-passthrough and this host's CPU differs from the source's (${diff}); the guest would see its CPU change under it. Use a custom <cpu> model both hosts provide, or --unsafe to migrate anyway`,
  );
}
