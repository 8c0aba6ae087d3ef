/**
 * The guest CPU (issue 14, item 5): `<cpu>` read with libvirt's meaning and
 * kept losslessly, its refusals, QEMU's `-cpu` built from it, and the pure
 * rules that decide whether a host can provide it (cpu-check.ts), fed with
 * replies shaped like QEMU 7.2's under TCG.
 */
import { describe, expect, it } from 'vitest';
import { DomainDocument } from '../../src/domain/index.js';
import type { CpuDef } from '../../src/domain/types.js';
import { cpuModeNote, cpuOption } from '../../src/qemu/command-line.js';
import { compareHostCpus, cpuRefusal, cpuShortfall, hostCpuFeatures, hostPassthroughRefusal, parseCapabilities, type CpuCapabilities } from '../../src/qemu/cpu-check.js';
import { expectRefused, refusal } from '../support/refusal.js';

function xml(cpu: string): string {
  return [
    "<domain type='kvm'>",
    '  <name>cpu-guest</name>',
    '  <uuid>0f8fad5b-d9cb-469f-a165-70867728950e</uuid>',
    "  <memory unit='KiB'>262148</memory>",
    "  <currentMemory unit='KiB'>262148</currentMemory>",
    "  <os><type arch='x86_64' machine='pc'>hvm</type></os>",
    `  ${cpu}`,
    '</domain>',
    '',
  ].join('\n');
}

const parse = (cpu: string) => DomainDocument.parse(xml(cpu));
const cpuOf = (cpu: string): CpuDef | undefined => parse(cpu).def.cpu;

describe('<cpu> in the domain model', () => {
  it('reads a custom model with match, fallback and features of every policy', () => {
    const cpu = cpuOf(
      "<cpu mode='custom' match='minimum' check='partial'><model fallback='forbid'>Icelake-Server</model>" +
        "<feature policy='require' name='sse4.2'/><feature policy='optional' name='avx2'/><feature policy='disable' name='avx512f'/>" +
        "<feature policy='forbid' name='svm'/><feature policy='force' name='x2apic'/><feature name='tsc_adjust'/></cpu>",
    );
    expect(cpu).toEqual({
      mode: 'custom',
      match: 'minimum',
      check: 'partial',
      model: 'Icelake-Server',
      fallback: 'forbid',
      features: [
        { name: 'sse4.2', policy: 'require' },
        { name: 'avx2', policy: 'optional' },
        { name: 'avx512f', policy: 'disable' },
        { name: 'svm', policy: 'forbid' },
        { name: 'x2apic', policy: 'force' },
        // libvirt: a feature without a policy is required.
        { name: 'tsc_adjust', policy: 'require' },
      ],
    });
  });

  it("applies libvirt's defaults: no mode is custom, a model matches exact", () => {
    expect(cpuOf('<cpu><model>qemu64</model></cpu>')).toEqual({ mode: 'custom', match: 'exact', model: 'qemu64', features: [] });
    expect(cpuOf("<cpu><topology sockets='1' cores='1' threads='1'/></cpu>")).toEqual({ mode: 'custom', features: [] });
    expect(cpuOf("<cpu mode='host-model'/>")).toEqual({ mode: 'host-model', features: [] });
    expect(cpuOf("<cpu mode='host-passthrough' migratable='off'/>")).toEqual({ mode: 'host-passthrough', migratable: 'off', features: [] });
    expect(parse("<cpu mode='host-passthrough' migratable='off'/>").def.cpuMode).toBe('host-passthrough');
    expect(parse('').def.cpu).toBeUndefined();
  });

  it('dumps every form back byte for byte', () => {
    for (const cpu of [
      "<cpu mode='custom' match='exact' check='full'>\n    <model fallback='allow'>Cascadelake-Server</model>\n    <vendor>Intel</vendor>\n    <feature policy='require' name='avx2'/>\n    <!-- a comment -->\n    <feature policy=\"disable\" name='avx512f'/>\n    <topology sockets='1' dies='1' cores='2' threads='1'/>\n  </cpu>",
      "<cpu mode='host-model'>\n    <model fallback='forbid'/>\n  </cpu>",
      "<cpu mode='host-passthrough' migratable='on' check='none'/>",
      "<cpu mode='maximum' migratable='off'/>",
    ]) {
      expect(parse(cpu).toXml()).toBe(xml(cpu));
    }
  });

  it('refuses names that could reach past -cpu, and what libvirt refuses', () => {
    expectRefused(() => parse('<cpu><model>qemu64,+svm</model></cpu>'), 'config_unsupported', "'qemu64,+svm'", '<cpu><model>', 'no escaping');
    expectRefused(() => parse("<cpu><model>qemu64</model><feature policy='require' name='avx2,enforce=off'/></cpu>"), 'config_unsupported', '<cpu><feature name>');
    expectRefused(() => parse("<cpu><model>qemu64</model><feature name='a b'/></cpu>"), 'config_unsupported');
    expectRefused(() => parse("<cpu><model>qemu64</model><feature name='-svm'/></cpu>"), 'config_unsupported');
    expectRefused(() => parse("<cpu><model>qemu64</model><feature name=''/></cpu>"), 'xml_error');
    expectRefused(() => parse("<cpu><model>qemu64</model><feature policy='maybe' name='avx2'/></cpu>"), 'xml_error', "'maybe'", 'require');
    expectRefused(() => parse("<cpu><model>qemu64</model><feature name='avx2'/><feature policy='disable' name='avx2'/></cpu>"), 'xml_error', "'avx2'", 'more than once');
    expectRefused(() => parse("<cpu mode='custom'><feature name='avx2'/></cpu>"), 'xml_error', 'without a <model>');
    expectRefused(() => parse("<cpu mode='custom' match='loose'><model>qemu64</model></cpu>"), 'xml_error', '<cpu match>');
    expectRefused(() => parse("<cpu mode='custom' migratable='on'><model>qemu64</model></cpu>"), 'xml_error', 'migratable');
    expectRefused(() => parse("<cpu mode='host-passthrough' migratable='yes'/>"), 'xml_error');
    expectRefused(() => parse("<cpu mode='host-copy'/>"), 'xml_error', '<cpu mode>');
    expectRefused(() => parse("<cpu><model fallback='maybe'>qemu64</model></cpu>"), 'xml_error', 'fallback');
    expectRefused(() => parse('<cpu>text</cpu>'), 'xml_error');
  });
});

describe('QEMU -cpu', () => {
  const opt = (cpu: string, accel: 'kvm' | 'tcg' = 'tcg') => cpuOption(parse(cpu).def, accel);

  it('a custom model with +/- flags by policy', () => {
    expect(
      opt(
        "<cpu mode='custom' match='exact'><model>Cascadelake-Server</model><feature policy='require' name='sse4.2'/><feature policy='force' name='x2apic'/>" +
          "<feature policy='optional' name='avx2'/><feature policy='disable' name='avx512f'/><feature policy='forbid' name='svm'/></cpu>",
      ),
    ).toBe('Cascadelake-Server,+sse4.2,+x2apic,+avx2,-avx512f,-svm');
    expect(opt('<cpu><model>qemu64</model></cpu>')).toBe('qemu64');
    expect(opt("<cpu><topology sockets='1' cores='1' threads='1'/></cpu>")).toBe('qemu64');
    expect(cpuOption(parse('').def, 'tcg')).toBe('qemu64');
  });

  it('host-passthrough and host-model are host under KVM and max under TCG, said in a note', () => {
    expect(opt("<cpu mode='host-passthrough'/>", 'kvm')).toBe('host');
    expect(opt("<cpu mode='host-passthrough'/>", 'tcg')).toBe('max');
    expect(opt("<cpu mode='host-model'/>", 'kvm')).toBe('host');
    expect(opt("<cpu mode='host-model'/>", 'tcg')).toBe('max');
    expect(opt("<cpu mode='host-passthrough' migratable='off'><feature policy='disable' name='svm'/></cpu>", 'tcg')).toBe('max,migratable=off,-svm');
    expect(opt("<cpu mode='maximum' migratable='off'/>", 'kvm')).toBe('max,migratable=off');
    expect(cpuModeNote(parse("<cpu mode='host-passthrough'/>").def, 'tcg')).toContain("'max'");
    expect(cpuModeNote(parse("<cpu mode='host-passthrough'/>").def, 'kvm')).toBeUndefined();
    expect(cpuModeNote(parse('<cpu><model>qemu64</model></cpu>').def, 'tcg')).toBeUndefined();
  });

  it('refuses a name built some other way instead of escaping it', () => {
    const def = { cpu: { mode: 'custom' as const, model: 'qemu64', features: [{ name: 'svm,enforce', policy: 'require' as const }] } };
    expectRefused(() => cpuOption(def, 'tcg'), 'config_unsupported', 'svm,enforce');
    expectRefused(() => cpuOption({ cpu: { mode: 'custom', model: 'qemu64,x', features: [] } }, 'tcg'), 'config_unsupported');
  });
});

/** A reduced but true-to-shape answer of QEMU 7.2 under TCG (measured: `-machine none -accel tcg -qmp stdio`). */
function tcgCaps(): CpuCapabilities {
  return parseCapabilities(
    'tcg',
    [
      { name: 'qemu64', 'unavailable-features': [], 'alias-of': 'qemu64-v1' },
      { name: 'max', 'unavailable-features': [] },
      { name: 'Cascadelake-Server', 'unavailable-features': ['pcid', 'x2apic', 'tsc-deadline', 'avx512f', 'xsavec'] },
    ],
    { model: { name: 'max', props: { sse: true, 'sse4.2': true, 'sse4-2': true, avx2: true, svm: true, pcid: false, x2apic: false, 'tsc-deadline': false, avx512f: false, xsavec: false, 'tsc-adjust': false, 'model-id': 'QEMU TCG CPU', level: 13 } } },
  );
}

describe('can this host provide the CPU', () => {
  const shortfall = (cpu: string) => cpuShortfall(cpuOf(cpu), tcgCaps());
  const refuse = (cpu: string) => cpuRefusal('g', shortfall(cpu), 'on B (-accel tcg)');

  it('a model TCG lacks features for: missing features, operation_failed with libvirt\'s words', () => {
    expect(shortfall("<cpu mode='custom' match='exact'><model>Cascadelake-Server</model></cpu>").missing).toEqual(['pcid', 'x2apic', 'tsc-deadline', 'avx512f', 'xsavec']);
    const err = refuse("<cpu mode='custom' match='exact'><model>Cascadelake-Server</model></cpu>")!;
    expect(err.code).toBe('operation_failed');
    expect(err.message).toContain("guest CPU doesn't match specification: missing features: pcid,x2apic,tsc-deadline,avx512f,xsavec");
    expect(err.message).toContain('on B');
    // Disabling what is missing makes it fit; forbid counts as disabled for the model.
    const fixed = "<cpu><model>Cascadelake-Server</model><feature policy='disable' name='pcid'/><feature policy='disable' name='x2apic'/><feature policy='disable' name='tsc-deadline'/><feature policy='forbid' name='avx512f'/><feature policy='disable' name='xsavec'/></cpu>";
    expect(refuse(fixed)).toBeUndefined();
    expect(refuse("<cpu match='minimum'><model>Cascadelake-Server</model></cpu>")?.code).toBe('operation_failed');
    expect(refuse("<cpu match='strict'><model>Cascadelake-Server</model></cpu>")?.code).toBe('operation_failed');
  });

  it('require: a feature the accelerator lacks is missing, one it has is fine; force, optional, disable ask nothing', () => {
    expect(refuse("<cpu><model>qemu64</model><feature policy='require' name='sse4.2'/></cpu>")).toBeUndefined();
    expect(refuse("<cpu><model>qemu64</model><feature policy='require' name='avx512f'/></cpu>")?.message).toContain('missing features: avx512f');
    // libvirt's underscore spelling is QEMU's dash.
    expect(shortfall("<cpu><model>qemu64</model><feature name='tsc_adjust'/></cpu>").missing).toEqual(['tsc_adjust']);
    expect(refuse("<cpu><model>qemu64</model><feature policy='force' name='avx512f'/><feature policy='optional' name='x2apic'/><feature policy='disable' name='pcid'/></cpu>")).toBeUndefined();
    expect(refuse("<cpu mode='host-passthrough'><feature policy='require' name='avx512f'/></cpu>")?.message).toContain('missing features: avx512f');
  });

  it('forbid: refused where the host has the feature', () => {
    expect(refuse("<cpu><model>qemu64</model><feature policy='forbid' name='svm'/></cpu>")?.message).toContain('forbidden features present: svm');
    expect(refuse("<cpu><model>qemu64</model><feature policy='forbid' name='avx512f'/></cpu>")).toBeUndefined();
  });

  it('unknown model or feature: config_unsupported; check=none asks nothing', () => {
    const model = refuse("<cpu><model fallback='forbid'>Pentium9000</model></cpu>")!;
    expect(model.code).toBe('config_unsupported');
    expect(model.message).toContain("CPU model 'Pentium9000' is not supported by hypervisor");
    expect(refuse('<cpu><model>Pentium9000</model></cpu>')?.code).toBe('config_unsupported');
    const feat = refuse("<cpu><model>qemu64</model><feature name='warp-drive'/></cpu>")!;
    expect(feat.code).toBe('config_unsupported');
    expect(feat.message).toContain('unknown CPU feature: warp-drive');
    expect(refuse("<cpu check='none'><model>Cascadelake-Server</model><feature name='warp-drive'/></cpu>")).toBeUndefined();
    expect(refuse("<cpu mode='host-model'/>")).toBeUndefined();
  });

  it('reads QEMU\'s replies and refuses other shapes', () => {
    const caps = tcgCaps();
    expect(caps.models.get('Cascadelake-Server')).toContain('avx512f');
    expect(caps.features.get('model-id')).toBeUndefined();
    expect(hostCpuFeatures(caps)).toEqual(['avx2', 'sse', 'sse4-2', 'sse4.2', 'svm']);
    expect(refusal(() => parseCapabilities('tcg', {}, { model: { props: {} } })).code).toBe('operation_failed');
    expect(refusal(() => parseCapabilities('tcg', [], {})).code).toBe('operation_failed');
  });
});

describe('host-passthrough between hosts', () => {
  it('compares the two host CPUs feature for feature', () => {
    expect(compareHostCpus(['sse', 'avx2'], ['avx2', 'sse'])).toEqual({ same: true, missing: [], extra: [] });
    expect(compareHostCpus(['sse', 'avx2', 'avx512f'], ['sse', 'avx2', 'svm'])).toEqual({ same: false, missing: ['avx512f'], extra: ['svm'] });
  });

  it('refuses hosts that differ with migrate_unsafe unless UNSAFE', () => {
    expect(hostPassthroughRefusal('g', ['sse', 'avx2'], ['avx2', 'sse'], false, 'to B')).toBeUndefined();
    const err = hostPassthroughRefusal('g', ['sse', 'avx512f'], ['sse'], false, 'to B')!;
    expect(err.code).toBe('migrate_unsafe');
    expect(err.message).toContain('missing here: avx512f');
    expect(err.message).toContain('--unsafe');
    expect(hostPassthroughRefusal('g', ['sse', 'avx512f'], ['sse'], true, 'to B')).toBeUndefined();
  });
});
