/**
 * Memory dirty-rate measurement (issue 13, "Measure") with one ferryd and
 * the writing test guest under TCG: `ferry domdirtyrate-calc` then `ferry
 * domstats --dirtyrate`, and the same through Debian's stock virsh against
 * ferryd's libvirt listener; a guest rewriting 30 MiB/s measures above
 * zero and above an idle guest (page sampling, the only mode under TCG);
 * and the refusals (inactive domain, seconds 0 and 61, dirty-bitmap and
 * dirty-ring under TCG) in both front ends. One guest runs at a time (2
 * cores). Nothing here asserts a time or an exact rate.
 *
 * Needs `npm run build`, `make -C guest` and libvirt-clients.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emptyDaemon, ferry, ferryOk, makeTempDir, startDaemon, restartIfDied, useDaemonCleanup, waitFor, type FerrydHandle } from '../support/daemon.js';
import { heartbeats, waitForHeartbeat, writeGuestXml } from '../support/guest-xml.js';
import { libvirtUnixUri, virsh, virshOk } from '../support/virsh.js';

const WRITER = 'dr-writer';
const IDLE = 'dr-idle';
const OFF = 'dr-off';
/** 64 MiB working set rewritten at 30 MiB/s; the idle guest fills the same working set once and then only prints heartbeats. */
const WRITER_CMDLINE = 'ws=64 rate=30 hb=200';
const IDLE_CMDLINE = 'ws=64 rate=0 hb=200';

let d: FerrydHandle;
let xmlDir: string;
const measured: Record<string, number> = {};

useDaemonCleanup(restartIfDied(() => d));

beforeAll(async () => {
  xmlDir = makeTempDir('ferry-dirty-rate-xml-');
  d = await startDaemon({ hostName: 'dirty-rate-host', libvirtSocket: true });
});

afterAll(async () => {
  if (d?.alive()) await emptyDaemon(d.uri);
});

const vUri = (): string => libvirtUnixUri(d.libvirtSocketPath!);

/** virsh's `domstats` text as `{domain: {field: value}}`. */
function parseDomstats(text: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  let cur: Record<string, string> | undefined;
  for (const line of text.split('\n')) {
    const head = /^Domain: '(.*)'$/.exec(line);
    if (head) out[head[1]!] = cur = {};
    const field = /^ {2}([\w.]+)=(.*)$/.exec(line);
    if (field && cur) cur[field[1]!] = field[2]!;
  }
  return out;
}

/** `ferry domstats --dirtyrate NAME` (text), until the calculation is measured; its fields. */
async function ferryMeasured(name: string, seconds: number): Promise<Record<string, string>> {
  return waitFor(
    `calc_status=2 for ${name}`,
    async () => {
      const r = await ferryOk(['domstats', '--dirtyrate', name], { uri: d.uri });
      const f = parseDomstats(r.stdout)[name];
      return f?.['dirtyrate.calc_status'] === '2' ? f : undefined;
    },
    seconds * 1000 + 15_000,
    250,
  );
}

/** Starts `name` from `cmdline` as a transient guest and waits until it writes heartbeats. */
async function startGuest(name: string, cmdline: string): Promise<void> {
  await ferryOk(['create', writeGuestXml(xmlDir, { name, cmdline })], { uri: d.uri });
  await waitForHeartbeat(d.uri, name, heartbeats(3), 60_000);
}

describe('ferry domdirtyrate-calc and domstats --dirtyrate', () => {
  it('a guest rewriting 30 MiB/s: the sentence, then calc_status=2 and a rate above 0 (page-sampling, 1 s)', async () => {
    await startGuest(WRITER, WRITER_CMDLINE);
    const before = await ferryOk(['domstats', '--dirtyrate', WRITER], { uri: d.uri });
    expect(parseDomstats(before.stdout)[WRITER]?.['dirtyrate.calc_status'], before.stdout).toBe('0');

    const r = await ferryOk(['domdirtyrate-calc', WRITER], { uri: d.uri });
    expect(r.stdout.trim()).toBe("Start to calculate domain's memory dirty rate successfully.");
    const f = await ferryMeasured(WRITER, 1);
    expect(f).toMatchObject({ 'dirtyrate.calc_status': '2', 'dirtyrate.calc_period': '1', 'dirtyrate.calc_mode': 'page-sampling' });
    expect(Number(f['dirtyrate.calc_start_time'])).toBeGreaterThan(0);
    measured.writerSampling = Number(f['dirtyrate.megabytes_per_second']);
    expect(measured.writerSampling, JSON.stringify(f)).toBeGreaterThan(0);
  });

  it('--seconds 2 --wait --json: the result in one call', async () => {
    const r = await ferryOk(['domdirtyrate-calc', WRITER, '--seconds', '2', '--wait'], { uri: d.uri, json: true });
    expect(r.json).toMatchObject({ domain: WRITER, seconds: 2, mode: 'page-sampling', stats: { 'dirtyrate.calc_status': 2, 'dirtyrate.calc_period': 2, 'dirtyrate.calc_mode': 'page-sampling' } });
    measured.writerTwoSeconds = r.json.stats['dirtyrate.megabytes_per_second'] as number;
    expect(measured.writerTwoSeconds).toBeGreaterThan(0);
  });

  it('domstats --json without a group: state and dirtyrate fields, libvirt names', async () => {
    const r = await ferryOk(['domstats', WRITER], { uri: d.uri, json: true });
    expect(r.json).toHaveLength(1);
    expect(r.json[0]).toMatchObject({ domain: WRITER, stats: { 'state.state': 1, 'state.reason': 1, 'dirtyrate.calc_status': 2, 'dirtyrate.calc_period': 2, 'dirtyrate.calc_mode': 'page-sampling' } });
  });

  it('errors: seconds 0 and 61 (invalid_arg), dirty-ring and dirty-bitmap under TCG (operation_unsupported), an inactive domain (operation_invalid)', async () => {
    for (const s of ['0', '61']) {
      const r = await ferry(['domdirtyrate-calc', WRITER, '--seconds', s], { uri: d.uri });
      expect(r.code, r.stdout).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^error: seconds=${s} is invalid.*1 to 60`, 'm'));
      const j = await ferry(['domdirtyrate-calc', WRITER, '--seconds', s], { uri: d.uri, json: true });
      expect(j.json?.error).toMatchObject({ code: 'invalid_arg', number: 8 });
    }
    for (const mode of ['dirty-ring', 'dirty-bitmap']) {
      const r = await ferry(['domdirtyrate-calc', WRITER, '--mode', mode], { uri: d.uri, json: true });
      expect(r.code).toBe(1);
      expect(r.json?.error).toMatchObject({ code: 'operation_unsupported', number: 84 });
      expect(r.json?.error.message).toMatch(new RegExp(`^${mode} calculation needs KVM.*TCG.*use page-sampling`));
    }
    const bad = await ferry(['domdirtyrate-calc', WRITER, '--mode', 'bitmap'], { uri: d.uri });
    expect(bad.stderr).toMatch(/^error: unknown dirty-rate mode 'bitmap': use page-sampling, dirty-bitmap, dirty-ring/m);
    // The guest was not touched by any of these: it still runs and its check holds.
    const st = parseDomstats((await ferryOk(['domstats', '--state', WRITER], { uri: d.uri })).stdout)[WRITER];
    expect(st).toEqual({ 'state.state': '1', 'state.reason': '1' });
    await waitForHeartbeat(d.uri, WRITER, heartbeats(5), 30_000);

    await ferryOk(['define', writeGuestXml(xmlDir, { name: OFF })], { uri: d.uri });
    const off = await ferry(['domdirtyrate-calc', OFF], { uri: d.uri });
    expect(off.code).toBe(1);
    expect(off.stderr).toMatch(/^error: domain 'dr-off' is not running/m);
    const offJson = await ferry(['domdirtyrate-calc', OFF], { uri: d.uri, json: true });
    expect(offJson.json?.error).toMatchObject({ code: 'operation_invalid', number: 55 });
    // An inactive domain has state fields and no dirtyrate fields.
    const stats = parseDomstats((await ferryOk(['domstats', OFF], { uri: d.uri })).stdout)[OFF];
    expect(stats).toEqual({ 'state.state': '5', 'state.reason': '0' });
  });
});

describe('virsh against the libvirt listener', () => {
  it('domdirtyrate-calc --seconds 1, then domstats --dirtyrate: measured, above 0', async () => {
    const r = await virshOk(vUri(), ['domdirtyrate-calc', WRITER, '--seconds', '1']);
    expect(r.stdout).toContain("Start to calculate domain's memory dirty rate successfully.");
    const f = await waitFor(
      'virsh domstats --dirtyrate: calc_status=2, page-sampling',
      async () => {
        const s = parseDomstats((await virshOk(vUri(), ['domstats', '--dirtyrate', WRITER])).stdout)[WRITER];
        return s?.['dirtyrate.calc_status'] === '2' && s['dirtyrate.calc_mode'] === 'page-sampling' ? s : undefined;
      },
      20_000,
      250,
    );
    expect(Object.keys(f)).toEqual(['dirtyrate.calc_status', 'dirtyrate.calc_start_time', 'dirtyrate.calc_period', 'dirtyrate.megabytes_per_second', 'dirtyrate.calc_mode']);
    expect(f['dirtyrate.calc_period']).toBe('1');
    expect(Number(f['dirtyrate.megabytes_per_second'])).toBeGreaterThan(0);
  });

  it('domstats of all domains with --state --dirtyrate, and with no group at all', async () => {
    await virshOk(vUri(), ['domdirtyrate-calc', WRITER, '--seconds', '2', '--mode', 'page-sampling']);
    const all = await waitFor(
      'virsh domstats: measured over 2 s',
      async () => {
        const s = parseDomstats((await virshOk(vUri(), ['domstats', '--state', '--dirtyrate'])).stdout);
        return s[WRITER]?.['dirtyrate.calc_status'] === '2' && s[WRITER]['dirtyrate.calc_period'] === '2' ? s : undefined;
      },
      20_000,
      250,
    );
    expect(all[WRITER]).toMatchObject({ 'state.state': '1', 'state.reason': '1', 'dirtyrate.calc_mode': 'page-sampling' });
    expect(Number(all[WRITER]!['dirtyrate.megabytes_per_second'])).toBeGreaterThan(0);
    expect(all[OFF], 'the inactive domain: state only').toEqual({ 'state.state': '5', 'state.reason': '0' });
    const plain = parseDomstats((await virshOk(vUri(), ['domstats', WRITER])).stdout);
    expect(Object.keys(plain[WRITER]!)).toEqual(['state.state', 'state.reason', 'dirtyrate.calc_status', 'dirtyrate.calc_start_time', 'dirtyrate.calc_period', 'dirtyrate.megabytes_per_second', 'dirtyrate.calc_mode']);
    // The list flags: --list-inactive keeps the shut-off domain only.
    expect(Object.keys(parseDomstats((await virshOk(vUri(), ['domstats', '--state', '--list-inactive'])).stdout))).toEqual([OFF]);
  });

  it('errors as virsh prints them: seconds 0 and 61, dirty-ring and dirty-bitmap, an inactive domain, a read-only connection; --enforce of a group ferryd lacks', async () => {
    for (const s of ['0', '61']) {
      const r = await virsh(vUri(), ['domdirtyrate-calc', WRITER, '--seconds', s]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`error: invalid argument: seconds=${s} is invalid`));
    }
    for (const mode of ['dirty-ring', 'dirty-bitmap']) {
      const r = await virsh(vUri(), ['domdirtyrate-calc', WRITER, '--mode', mode]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`error: Operation not supported: ${mode} calculation needs KVM`));
    }
    const off = await virsh(vUri(), ['domdirtyrate-calc', OFF]);
    expect(off.code).toBe(1);
    expect(off.stderr).toMatch(/error: Requested operation is not valid: domain 'dr-off' is not running/);
    const enforce = await virsh(vUri(), ['domstats', '--block', '--enforce', WRITER]);
    expect(enforce.code).toBe(1);
    expect(enforce.stderr).toMatch(/error: argument unsupported: Stats types bits 0x20 are not supported/);
    // A read-only connection (virsh -r) reads the statistics but may not start a measurement.
    const ro = await virsh(vUri(), ['-r', 'domdirtyrate-calc', WRITER]);
    expect(ro.code).toBe(1);
    expect(ro.stderr).toMatch(/error: operation forbidden/);
    expect(parseDomstats((await virshOk(vUri(), ['-r', 'domstats', '--state', WRITER])).stdout)[WRITER]).toEqual({ 'state.state': '1', 'state.reason': '1' });
    // Without --enforce, a group ferryd lacks is left out.
    const lax = await virshOk(vUri(), ['domstats', '--block', WRITER]);
    expect(parseDomstats(lax.stdout)).toEqual({ [WRITER]: {} });
  });
});

describe('a writer against an idle guest', () => {
  it('the idle guest measures lower than the writer (page-sampling, 1 s and 2 s)', async () => {
    expect(measured.writerSampling, 'the writer was measured above').toBeGreaterThan(0);
    await ferryOk(['destroy', WRITER], { uri: d.uri });
    await startGuest(IDLE, IDLE_CMDLINE);
    await ferryOk(['domdirtyrate-calc', IDLE, '--seconds', '1'], { uri: d.uri });
    const idleOne = Number((await ferryMeasured(IDLE, 1))['dirtyrate.megabytes_per_second']);
    const two = await ferryOk(['domdirtyrate-calc', IDLE, '--seconds', '2', '--wait'], { uri: d.uri, json: true });
    const idleTwo = two.json.stats['dirtyrate.megabytes_per_second'] as number;
    expect(idleOne, `idle ${idleOne} vs writer ${measured.writerSampling} MiB/s over 1 s`).toBeLessThan(measured.writerSampling!);
    expect(idleTwo, `idle ${idleTwo} vs writer ${measured.writerTwoSeconds} MiB/s over 2 s`).toBeLessThan(measured.writerTwoSeconds!);
  });
});
