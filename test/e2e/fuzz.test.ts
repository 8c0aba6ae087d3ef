/**
 * Hostile input against a real ferryd: protocol frames (random, truncated,
 * oversized, unknown kinds, deep nesting, huge strings, too many calls,
 * fuzzed parameters of every method) and domain XML (malformed, enormous,
 * entity expansion, awkward names and paths, absurd sizes). Every answer
 * must carry a code from the error table; afterwards the daemon must still
 * answer, its running guest must still run, its definitions must be intact
 * and its memory bounded. FERRY_FUZZ_CASES / FERRY_FUZZ_SEED run longer or
 * replay (also `npx tsx test/fuzz/run.ts`).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ferryOk, makeTempDir, startDaemon, useDaemonCleanup } from '../support/daemon.js';
import { waitForHeartbeat, writeGuestXml } from '../support/guest-xml.js';
import { fuzzProtocol, fuzzXml } from '../fuzz/drive.js';
import { fuzzLibvirt, libvirtHealthCheck } from '../fuzz/libvirt.js';

useDaemonCleanup();

const CASES = Number(process.env.FERRY_FUZZ_CASES ?? 600);
const SEED = Number(process.env.FERRY_FUZZ_SEED ?? 20261126);
const LIBVIRT_CASES = Number(process.env.FERRY_FUZZ_LIBVIRT_CASES ?? CASES * 2);

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
}

describe('fuzzing the daemon', () => {
  it(`answers ${CASES} hostile protocol cases and ${Math.ceil(CASES / 3)} hostile XML documents with coded errors, and loses nothing`, async () => {
    const d = await startDaemon({ hostName: 'fuzz-host' });
    const dir = makeTempDir('ferry-fuzz-');
    await ferryOk(['define', writeGuestXml(dir, { name: 'sentinel', cmdline: 'ws=8 rate=2 hb=200' })], { uri: d.uri });
    await ferryOk(['start', 'sentinel'], { uri: d.uri });
    await waitForHeartbeat(d.uri, 'sentinel', (log) => (log.lastHeartbeat?.counter ?? 0) >= 2, 30_000);
    const before = (await ferryOk(['dumpxml', '--inactive', 'sentinel'], { uri: d.uri })).stdout;
    const rssBefore = rssKiB(d.pid);

    const proto = await fuzzProtocol(d.socketPath, SEED, CASES);
    const xml = await fuzzXml(d.uri, SEED, Math.ceil(CASES / 3));
    expect(proto.findings).toEqual([]);
    expect(xml.findings).toEqual([]);
    expect(proto.cases).toBe(CASES);
    // The framing errors, unknown methods and bad arguments were all seen and coded.
    expect(Object.keys(proto.codes)).toEqual(expect.arrayContaining(['rpc', 'no_support', 'invalid_arg']));
    expect(Object.keys(xml.codes)).toEqual(expect.arrayContaining(['xml_error']));

    expect(d.alive()).toBe(true);
    expect((await ferryOk(['list', '--all', '--name'], { uri: d.uri })).stdout.trim()).toBe('sentinel');
    expect((await ferryOk(['domstate', 'sentinel'], { uri: d.uri })).stdout.trim()).toBe('running');
    expect((await ferryOk(['dumpxml', '--inactive', 'sentinel'], { uri: d.uri })).stdout).toBe(before);
    // Bounded: 15 MiB strings and 16 MiB frames came and went.
    const grown = rssKiB(d.pid) - rssBefore;
    expect(grown, `ferryd grew by ${grown} KiB`).toBeLessThan(200 * 1024);
    console.log(`fuzz: ${proto.cases} protocol cases, codes ${JSON.stringify(proto.codes)}; ${xml.cases} XML cases (${xml.accepted} accepted), codes ${JSON.stringify(xml.codes)}; RSS ${rssBefore} -> ${rssKiB(d.pid)} KiB`);
  }, 600_000);

  it(`answers ${LIBVIRT_CASES} hostile libvirt-protocol cases with well-formed replies and coded errors, and still serves libvirt clients`, async () => {
    const d = await startDaemon({ hostName: 'fuzz-libvirt', libvirtSocket: true });
    const socket = d.libvirtSocketPath;
    expect(socket, 'ferryd did not report its libvirt socket').toBeDefined();
    const dir = makeTempDir('ferry-fuzz-libvirt-');
    // Defined through the native API; listed through libvirt's protocol before and after.
    await ferryOk(['define', writeGuestXml(dir, { name: 'lv-sentinel' })], { uri: d.uri });
    const before = await libvirtHealthCheck(socket!);
    expect(before.map((x) => x.name)).toEqual(['lv-sentinel']);
    const rssBefore = rssKiB(d.pid);

    const report = await fuzzLibvirt(socket!, SEED, LIBVIRT_CASES);
    expect(report.findings).toEqual([]);
    expect(report.cases).toBe(LIBVIRT_CASES);
    // Framing errors, unknown procedures, calls before open and too many calls in flight were all seen and coded.
    expect(Object.keys(report.codes)).toEqual(expect.arrayContaining(['rpc', 'no_support', 'operation_invalid', 'resource_busy']));
    expect(report.okReplies).toBeGreaterThan(0);
    // Hostile arguments are refused for what they are, not by a handler tripping over them.
    expect(report.internal).toEqual([]);

    expect(d.alive()).toBe(true);
    expect(await libvirtHealthCheck(socket!)).toEqual(before);
    expect((await ferryOk(['list', '--all', '--name'], { uri: d.uri })).stdout.trim()).toBe('lv-sentinel');
    expect(d.stderr()).not.toMatch(/uncaught|unhandled|RangeError|TypeError/i);
    const grown = rssKiB(d.pid) - rssBefore;
    expect(grown, `ferryd grew by ${grown} KiB`).toBeLessThan(200 * 1024);
    console.log(`libvirt fuzz: ${report.cases} cases, ${report.okReplies} successful replies, codes ${JSON.stringify(report.codes)}; RSS ${rssBefore} -> ${rssKiB(d.pid)} KiB`);
  }, 120_000);
});
