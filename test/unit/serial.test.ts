import { describe, it, expect } from 'vitest';
import {
  checkMigrationContinuity,
  diskWriteRate,
  findCounterAnomalies,
  parseSerialLine,
  parseSerialLog,
  rewriteRateMiBps,
  type HeartbeatEvent,
} from '../support/serial.js';

// A real boot as printed by QEMU 7.2 (SeaBIOS output first, no newline before the kernel's).
const BOOT_LOG = [
  '\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2-debian-1.16.2-1)\r',
  '',
  'Booting from ROM..',
  'FERRY-GUEST boot ws_mib=64 rate_pages=12800 hb_ms=500 verify=sample',
  'FERRY-GUEST info clock=acpi-pm clock_hz=3579545 mem_upper_kib=261000 mem_end=0x0ffe2000 ws_base=0x00210000 full_every=10 acpi=piix4 pmbase=0x00000600',
  'FERRY-GUEST ready pages=16384',
  'HB 1 gen=1 rewrites=6399 check=OK full=0',
  'HB 2 gen=1 rewrites=12800 check=OK full=0',
  'HB 3 gen=2 rewrites=19199 check=OK full=0',
  '',
].join('\n');

function hb(counter: number, rewrites = 0, check: HeartbeatEvent['check'] = 'OK'): string {
  return `HB ${counter} gen=0 rewrites=${rewrites} check=${check} full=0\n`;
}

describe('parseSerialLine', () => {
  it('parses a heartbeat', () => {
    expect(parseSerialLine('HB 42 gen=7 rewrites=123456 check=OK full=1')).toEqual({
      kind: 'heartbeat',
      counter: 42,
      gen: 7,
      rewrites: 123456,
      check: 'OK',
      full: true,
    });
  });

  it('accepts CORRUPT and SKIP heartbeats and a trailing \\r', () => {
    expect(parseSerialLine('HB 3 gen=0 rewrites=0 check=CORRUPT full=0\r')).toMatchObject({ check: 'CORRUPT', full: false });
    expect(parseSerialLine('HB 3 gen=0 rewrites=0 check=SKIP full=0\n')).toMatchObject({ check: 'SKIP' });
  });

  it('parses the boot line', () => {
    expect(parseSerialLine('FERRY-GUEST boot ws_mib=200 rate_pages=102400 hb_ms=500 verify=full')).toEqual({
      kind: 'boot',
      wsMib: 200,
      ratePages: 102400,
      hbMs: 500,
      verify: 'full',
    });
  });

  it('parses ready, poweroff, poweroff-failed, no-acpi and fault', () => {
    expect(parseSerialLine('FERRY-GUEST ready pages=51200')).toEqual({ kind: 'ready', pages: 51200 });
    expect(parseSerialLine('FERRY-GUEST poweroff')).toEqual({ kind: 'poweroff' });
    expect(parseSerialLine('FERRY-GUEST poweroff-failed')).toEqual({ kind: 'poweroff-failed' });
    expect(parseSerialLine('FERRY-GUEST no-acpi')).toEqual({ kind: 'no-acpi' });
    expect(parseSerialLine('FERRY-GUEST fault vec=13')).toEqual({ kind: 'fault', vector: 13 });
  });

  it('parses a corruption report with hex values', () => {
    expect(parseSerialLine('CORRUPT page=1323 word=0 want=0x1d0d3740 got=0xffffffff')).toEqual({
      kind: 'corrupt',
      page: 1323,
      word: 0,
      want: 0x1d0d3740,
      got: 0xffffffff,
    });
  });

  it('parses warn and info lines', () => {
    expect(parseSerialLine('FERRY-GUEST warn ws-clamped requested_mib=4000 ws_mib=253')).toEqual({
      kind: 'warn',
      text: 'ws-clamped requested_mib=4000 ws_mib=253',
    });
    const info = parseSerialLine('FERRY-GUEST info clock=acpi-pm clock_hz=3579545 acpi=ich9 pmbase=0x00000600');
    expect(info).toEqual({
      kind: 'info',
      fields: { clock: 'acpi-pm', clock_hz: '3579545', acpi: 'ich9', pmbase: '0x00000600' },
    });
  });

  it('parses the optional disk= field of a heartbeat', () => {
    expect(parseSerialLine('HB 7 gen=0 rewrites=0 check=OK full=0 disk=1399')).toEqual({
      kind: 'heartbeat',
      counter: 7,
      gen: 0,
      rewrites: 0,
      check: 'OK',
      full: false,
      diskWrites: 1399,
    });
    expect(parseSerialLine('HB 7 gen=0 rewrites=0 check=OK full=0 disk=0')).toMatchObject({ diskWrites: 0 });
    // Without the field (writer off) the property is absent, not undefined-valued.
    expect(parseSerialLine('HB 7 gen=0 rewrites=0 check=OK full=0')).not.toHaveProperty('diskWrites');
    // A later field after disk= is still tolerated.
    expect(parseSerialLine('HB 7 gen=0 rewrites=0 check=OK full=0 disk=5 extra=1')).toMatchObject({ diskWrites: 5 });
  });

  it('parses the disk lines', () => {
    expect(parseSerialLine('FERRY-GUEST disk ready sectors=131072 rate=200 disk_start=2048 disk_sectors=65536')).toEqual({
      kind: 'disk-ready',
      sectors: 131072,
      rate: 200,
      diskStart: 2048,
      diskSectors: 65536,
    });
    expect(parseSerialLine('FERRY-GUEST disk ready sectors=131072')).toEqual({ kind: 'disk-ready', sectors: 131072 });
    expect(parseSerialLine('FERRY-GUEST disk none')).toEqual({ kind: 'disk-none' });
    expect(parseSerialLine('FERRY-GUEST disk error lba=3072 status=0x00000041 errors=1')).toEqual({
      kind: 'disk-error',
      lba: 3072,
      status: 0x41,
      errors: 1,
    });
    expect(parseSerialLine('FERRY-GUEST disk timeout lba=2050 status=0x000000d0 errors=3')).toEqual({
      kind: 'disk-timeout',
      lba: 2050,
      status: 0xd0,
      errors: 3,
    });
  });

  it('tolerates extra key=value fields appended later', () => {
    expect(parseSerialLine('HB 5 gen=1 rewrites=9 check=OK full=0 extra=1')).toMatchObject({ counter: 5 });
    expect(parseSerialLine('FERRY-GUEST ready pages=7 more=yes')).toEqual({ kind: 'ready', pages: 7 });
  });

  it.each([
    '',
    'Booting from ROM..',
    'HB',
    'HB 1',
    'HB 12 gen=3 rew',
    'HB 12 gen=3 rewrites=10 check=OK',
    'HB 12 gen=3 rewrites=10 check=MAYBE full=0',
    'HB 12 gen=3 rewrites=10 check=OK full=2',
    'HB 12 gen=3 rewrites=10 check=OK full=0 disk=',
    'HB 12 gen=3 rewrites=10 check=OK full=0 disk=x',
    'HB 12 gen=3 rewrites=10 check=OK full=0 disk=-1',
    'FERRY-GUEST disk',
    'FERRY-GUEST disk ready',
    'FERRY-GUEST disk ready sectors=0x10',
    'FERRY-GUEST disk ready sectors=10 rate=fast',
    'FERRY-GUEST disk none now',
    'FERRY-GUEST disk error lba=3072 status=0x00000041',
    'FERRY-GUEST disk error lba=3072 status=65 errors=1',
    'FERRY-GUEST disk error lba=3072',
    'FERRY-GUEST disk exploded lba=1',
    'HB x gen=3 rewrites=10 check=OK full=0',
    'HB -1 gen=3 rewrites=10 check=OK full=0',
    ' HB 1 gen=0 rewrites=0 check=OK full=0',
    'HB  1 gen=0 rewrites=0 check=OK full=0',
    '=0 rewrites=44793 check=OK full=0',
    'CORRUPT page=1 word=2 want=0x12',
    'CORRUPT page=1 word=2 want=12 got=0x1',
    'FERRY-GUEST boot ws_mib=1 rate_pages=0 hb_ms=500 verify=maybe',
    'FERRY-GUEST ready',
    'FERRY-GUEST poweroff now',
    'FERRY-GUEST something-new x=1',
    'FERRY-GUEST',
  ])('rejects %j', (line) => {
    expect(parseSerialLine(line)).toBeNull();
  });
});

describe('parseSerialLog', () => {
  it('parses a real boot log with firmware noise', () => {
    const log = parseSerialLog(BOOT_LOG);
    expect(log.boot).toEqual({ kind: 'boot', wsMib: 64, ratePages: 12800, hbMs: 500, verify: 'sample' });
    expect(log.ready).toEqual({ kind: 'ready', pages: 16384 });
    expect(log.heartbeats.map((h) => h.counter)).toEqual([1, 2, 3]);
    expect(log.lastHeartbeat?.rewrites).toBe(19199);
    expect(log.corrupt).toBe(false);
    expect(log.poweroff).toBe(false);
    expect(log.partial).toBe('');
    expect(log.events.map((e) => e.kind)).toEqual(['boot', 'info', 'ready', 'heartbeat', 'heartbeat', 'heartbeat']);
  });

  it('leaves an unterminated last line alone unless asked', () => {
    const text = hb(1) + 'HB 2 gen=0 rewrites=0 check=OK full=0';
    const log = parseSerialLog(text);
    expect(log.heartbeats).toHaveLength(1);
    expect(log.partial).toBe('HB 2 gen=0 rewrites=0 check=OK full=0');
    const withPartial = parseSerialLog(text, { includePartial: true });
    expect(withPartial.heartbeats.map((h) => h.counter)).toEqual([1, 2]);
    expect(withPartial.partial).toBe('');
  });

  it('flags corruption from a CORRUPT line or a CORRUPT heartbeat', () => {
    expect(parseSerialLog('CORRUPT page=1 word=0 want=0x00000001 got=0x00000000\n').corrupt).toBe(true);
    expect(parseSerialLog(hb(1) + hb(2, 0, 'CORRUPT')).corrupt).toBe(true);
    expect(parseSerialLog(hb(1) + hb(2, 0, 'SKIP')).corrupt).toBe(false);
  });

  it('records poweroff', () => {
    const log = parseSerialLog(hb(1) + 'FERRY-GUEST poweroff\n');
    expect(log.poweroff).toBe(true);
    expect(log.lastHeartbeat?.counter).toBe(1);
  });

  it('collects the disk writer events', () => {
    const text = [
      'FERRY-GUEST boot ws_mib=16 rate_pages=0 hb_ms=200 verify=sample',
      'FERRY-GUEST disk ready sectors=131072 rate=400 disk_start=2048 disk_sectors=65536',
      'FERRY-GUEST ready pages=4096',
      'HB 1 gen=0 rewrites=0 check=OK full=0 disk=79',
      'FERRY-GUEST disk error lba=3072 status=0x00000041 errors=1',
      'HB 2 gen=0 rewrites=0 check=OK full=0 disk=100',
      'FERRY-GUEST disk error lba=3473 status=0x00000041 errors=402',
      '',
    ].join('\n');
    const log = parseSerialLog(text);
    expect(log.diskReady).toEqual({ kind: 'disk-ready', sectors: 131072, rate: 400, diskStart: 2048, diskSectors: 65536 });
    expect(log.diskNone).toBe(false);
    expect(log.diskErrors.map((e) => [e.lba, e.errors])).toEqual([
      [3072, 1],
      [3473, 402],
    ]);
    expect(log.heartbeats.map((h) => h.diskWrites)).toEqual([79, 100]);
    expect(log.corrupt).toBe(false);

    const none = parseSerialLog('FERRY-GUEST disk none\n' + hb(1));
    expect(none.diskNone).toBe(true);
    expect(none.diskReady).toBeUndefined();
    expect(none.diskErrors).toEqual([]);
    expect(none.lastHeartbeat).not.toHaveProperty('diskWrites');
  });

  it('handles CRLF line endings', () => {
    expect(parseSerialLog('HB 1 gen=0 rewrites=0 check=OK full=0\r\n').heartbeats).toHaveLength(1);
  });

  it('returns empty results for empty input', () => {
    const log = parseSerialLog('');
    expect(log.events).toEqual([]);
    expect(log.lastHeartbeat).toBeUndefined();
    expect(log.boot).toBeUndefined();
    expect(log.corrupt).toBe(false);
    expect(log.diskReady).toBeUndefined();
    expect(log.diskNone).toBe(false);
    expect(log.diskErrors).toEqual([]);
  });
});

describe('findCounterAnomalies', () => {
  const beats = (...counters: number[]): HeartbeatEvent[] =>
    counters.map((counter) => ({ kind: 'heartbeat', counter, gen: 0, rewrites: 0, check: 'OK', full: false }));

  it('accepts a continuous sequence', () => {
    expect(findCounterAnomalies(beats(1, 2, 3, 4), 1)).toEqual([]);
    expect(findCounterAnomalies(beats(7, 8, 9))).toEqual([]);
    expect(findCounterAnomalies([])).toEqual([]);
  });

  it('reports skips, repeats and regressions', () => {
    expect(findCounterAnomalies(beats(1, 2, 4, 4, 3))).toEqual([
      { index: 2, previous: 2, counter: 4 },
      { index: 3, previous: 4, counter: 4 },
      { index: 4, previous: 4, counter: 3 },
    ]);
  });

  it('checks the first counter when asked', () => {
    expect(findCounterAnomalies(beats(2, 3), 1)).toEqual([{ index: 0, previous: 0, counter: 2 }]);
  });
});

describe('checkMigrationContinuity', () => {
  const source = 'FERRY-GUEST ready pages=10\n' + hb(1, 10) + hb(2, 20) + hb(3, 30);

  it('passes when the destination continues with last + 1', () => {
    const r = checkMigrationContinuity(source, hb(4, 40) + hb(5, 50));
    expect(r.ok).toBe(true);
    expect(r.problems).toEqual([]);
    expect(r.sourceLast?.counter).toBe(3);
    expect(r.destinationFirst?.counter).toBe(4);
  });

  it('joins a heartbeat split across the two logs', () => {
    const line = hb(4, 40);
    const r = checkMigrationContinuity(source + line.slice(0, 9), line.slice(9) + hb(5, 50));
    expect(r.ok).toBe(true);
    expect(r.sourceLast?.counter).toBe(3);
    expect(r.destinationFirst).toMatchObject({ counter: 4, rewrites: 40 });
  });

  it('fails on a repeated or skipped counter', () => {
    const repeated = checkMigrationContinuity(source, hb(3, 30) + hb(4, 40));
    expect(repeated.ok).toBe(false);
    expect(repeated.problems).toContain('first heartbeat after migration is 3, expected 4');
    const skipped = checkMigrationContinuity(source, hb(5, 50));
    expect(skipped.ok).toBe(false);
    expect(skipped.problems).toContain('heartbeat counter 5 follows 3');
  });

  it('fails when the destination reports corruption', () => {
    const r = checkMigrationContinuity(source, 'CORRUPT page=1 word=0 want=0x00000001 got=0x00000002\n' + hb(4, 40, 'CORRUPT'));
    expect(r.ok).toBe(false);
    expect(r.problems).toContain('first heartbeat after migration has check=CORRUPT');
    expect(r.problems).toContain('guest reported memory corruption');
  });

  it('fails when there is nothing after the migration', () => {
    const r = checkMigrationContinuity(source, '');
    expect(r.ok).toBe(false);
    expect(r.destinationFirst).toBeUndefined();
    expect(r.problems).toContain('no heartbeat after the migration');
  });
});

describe('rewriteRateMiBps', () => {
  const at = (counter: number, rewrites: number): HeartbeatEvent => ({
    kind: 'heartbeat',
    counter,
    gen: 0,
    rewrites,
    check: 'OK',
    full: false,
  });

  it('computes MiB/s from the nominal interval', () => {
    // 12800 pages = 50 MiB per 500 ms heartbeat = 100 MiB/s
    expect(rewriteRateMiBps(at(2, 12800), at(4, 38400), 500)).toBeCloseTo(100, 6);
  });

  it('returns NaN for heartbeats out of order', () => {
    expect(rewriteRateMiBps(at(4, 0), at(4, 10), 500)).toBeNaN();
    expect(rewriteRateMiBps(at(5, 0), at(4, 10), 500)).toBeNaN();
  });
});

describe('diskWriteRate', () => {
  const at = (counter: number, diskWrites?: number): HeartbeatEvent => ({
    kind: 'heartbeat',
    counter,
    gen: 0,
    rewrites: 0,
    check: 'OK',
    full: false,
    ...(diskWrites !== undefined && { diskWrites }),
  });

  it('computes sectors per second from the nominal interval', () => {
    // 80 sectors per 200 ms heartbeat = 400 sectors/s (as measured with disk=400 hb=200)
    expect(diskWriteRate(at(13, 1039), at(27, 2159), 200)).toBeCloseTo(400, 6);
  });

  it('returns NaN without disk= fields or for heartbeats out of order', () => {
    expect(diskWriteRate(at(1), at(2), 500)).toBeNaN();
    expect(diskWriteRate(at(1, 10), at(2), 500)).toBeNaN();
    expect(diskWriteRate(at(2, 10), at(2, 20), 500)).toBeNaN();
  });
});
