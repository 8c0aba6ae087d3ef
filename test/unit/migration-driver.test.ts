/**
 * The migration driver (src/migration/driver.ts) with fake endpoints that
 * record every call. The rule checked throughout is the driver's own: a
 * failed migration leaves the guest with exactly one owner; the source
 * takes the guest back (confirm cancelled, no outcomeUnknown) only when the
 * destination has not resumed it and never will.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FerryError } from '../../src/errors/index.js';
import * as driverModule from '../../src/migration/driver.js';
import { UNKNOWN_OUTCOME_WAIT_MS, phaseLogLine, phasesFromLog, runMigration, type DestinationEndpoint, type SourceEndpoint } from '../../src/migration/driver.js';
import * as flagsModule from '../../src/flags/index.js';
import type {
  BeginResult,
  ConfirmArgs,
  FinishArgs,
  FinishResult,
  IncomingJobState,
  NbdTarget,
  PerformArgs,
  PerformResult,
  PrepareArgs,
  PrepareResult,
} from '../../src/migration/phase-messages.js';

/**
 * chooseDataUri and resolveNbdTarget are exported by driver.ts, or (after
 * they move) by src/flags: the tests take them from whichever has them.
 */
interface UriHelpers {
  chooseDataUri(explicit: unknown, prepared: string, destAddress: string): string;
  resolveNbdTarget(nbd: NbdTarget, dataUri: string, destAddress: string): NbdTarget;
}
const uriHelpers = (typeof (driverModule as Partial<UriHelpers>).chooseDataUri === 'function' ? driverModule : flagsModule) as unknown as UriHelpers;
const { chooseDataUri, resolveNbdTarget } = uriHelpers;

type Call =
  | { op: 'begin'; domain: string }
  | { op: 'prepare'; args: PrepareArgs }
  | { op: 'perform'; args: PerformArgs }
  | { op: 'cancel'; jobId: string; why: string }
  | { op: 'finish'; args: FinishArgs }
  | { op: 'abortUnlessFinished'; jobId: string; domainUuid: string | undefined }
  | { op: 'confirm'; args: ConfirmArgs };

const DOMAIN_UUID = '6f1b3c9e-0d2a-4c55-9a51-3b1e2f4a5d60';
const STATS = { type: 'Completed', operation: 'Outgoing migration', time_elapsed: 1234 } as const;

const BEGIN: BeginResult = {
  jobId: 'src-job-1',
  xml: '<domain type="kvm"><name>web1</name></domain>',
  cookie: {
    version: 1,
    source: { hostName: 'src-host', hostUuid: '11111111-1111-4111-8111-111111111111' },
    jobId: 'src-job-1',
    domain: { name: 'web1', uuid: DOMAIN_UUID },
    wasRunning: true,
  },
};

const PREPARE: PrepareResult = {
  jobId: 'dst-job-7',
  migrateUri: 'tcp:*:49152',
  destination: { hostName: 'dst-host', hostUuid: '22222222-2222-4222-8222-222222222222' },
  domainName: 'web1',
};

const FINISH: FinishResult = { downtimeMs: 42, domainName: 'web1', state: 'running', reason: 'migrated', persistent: false };

interface Overrides {
  prepare?: (args: PrepareArgs) => Promise<PrepareResult>;
  perform?: (args: PerformArgs) => Promise<PerformResult>;
  finish?: (args: FinishArgs) => Promise<FinishResult>;
  confirm?: (args: ConfirmArgs) => Promise<void>;
  abortUnlessFinished?: (jobId: string, domainUuid?: string) => Promise<IncomingJobState>;
  connectionLost?: () => boolean;
  addressForData?: string;
}

/** A source and a destination that record their calls into one log, in order. */
function fakes(o: Overrides = {}) {
  const log: Call[] = [];
  let loseConnection!: (why: Error) => void;
  const lostPromise = new Promise<Error>((r) => (loseConnection = r));
  let lost = false;
  /** Rejects a pending perform, as a real source does when its job is cancelled. */
  let abortPerform: ((err: Error) => void) | undefined;
  const src: SourceEndpoint = {
    begin: async (domain) => {
      log.push({ op: 'begin', domain });
      return BEGIN;
    },
    perform: (args) => {
      log.push({ op: 'perform', args });
      if (o.perform) return o.perform(args);
      return Promise.resolve({ stats: { ...STATS }, sourceStoppedAt: 1_700_000_000_000 });
    },
    confirm: async (args) => {
      log.push({ op: 'confirm', args });
      if (o.confirm) await o.confirm(args);
    },
    cancel: async (jobId, why) => {
      log.push({ op: 'cancel', jobId, why });
      abortPerform?.(new FerryError('operation_aborted', `migration job ${jobId} cancelled: ${why}`));
    },
  };
  const dst: DestinationEndpoint = {
    addressForData: o.addressForData ?? '10.0.0.2',
    prepare: async (args) => {
      log.push({ op: 'prepare', args });
      return o.prepare ? o.prepare(args) : PREPARE;
    },
    finish: async (args) => {
      log.push({ op: 'finish', args });
      if (args.cancelled) throw new FerryError('operation_aborted', 'incoming migration was cancelled by the source');
      return o.finish ? o.finish(args) : FINISH;
    },
    abortUnlessFinished: (jobId, domainUuid) => {
      log.push({ op: 'abortUnlessFinished', jobId, domainUuid });
      return o.abortUnlessFinished ? o.abortUnlessFinished(jobId, domainUuid) : Promise.resolve('aborted');
    },
    connectionLost: () => (o.connectionLost ? o.connectionLost() : lost),
    whenLost: () => lostPromise,
  };
  const ops = () => log.map((c) => c.op);
  const confirms = () => log.flatMap((c) => (c.op === 'confirm' ? [c.args] : []));
  return {
    src,
    dst,
    log,
    ops,
    confirms,
    lose(why: Error) {
      lost = true;
      loseConnection(why);
    },
    /** A perform that runs until the source cancels it. */
    performUntilCancelled(): Promise<PerformResult> {
      return new Promise<PerformResult>((_, reject) => (abortPerform = reject));
    },
  };
}

const REQ = { flags: 0, params: {} };

/** Lets pending promise callbacks run (no timers involved). */
const flush = () => new Promise<void>((r) => setImmediate(r));

/** The source took the guest back: confirm cancelled, with no unknown outcome. */
function tookBack(c: ConfirmArgs): boolean {
  return c.cancelled && c.outcomeUnknown === undefined;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('runMigration: success', () => {
  it('runs begin, prepare, perform, finish, confirm in order and passes downtime to confirm', async () => {
    const f = fakes();
    const out = await runMigration(f.src, f.dst, 'web1', { flags: 3, params: { bandwidth: 100 } });
    expect(f.ops()).toEqual(['begin', 'prepare', 'perform', 'finish', 'confirm']);
    const [prep] = f.log.flatMap((c) => (c.op === 'prepare' ? [c.args] : []));
    expect(prep).toEqual({ xml: BEGIN.xml, cookie: BEGIN.cookie, flags: 3, params: { bandwidth: 100 } });
    const [perf] = f.log.flatMap((c) => (c.op === 'perform' ? [c.args] : []));
    expect(perf).toEqual({ jobId: 'src-job-1', migrateUri: 'tcp:10.0.0.2:49152' });
    const [fin] = f.log.flatMap((c) => (c.op === 'finish' ? [c.args] : []));
    expect(fin).toEqual({ jobId: 'dst-job-7', cancelled: false, sourceStats: STATS, sourceStoppedAt: 1_700_000_000_000 });
    expect(f.confirms()).toEqual([{ jobId: 'src-job-1', cancelled: false, downtimeMs: 42 }]);
    expect(out).toEqual({ begin: BEGIN, prepare: PREPARE, perform: { stats: STATS, sourceStoppedAt: 1_700_000_000_000 }, finish: FINISH, phaseMs: expect.any(Object) });
    // Each phase's time is recorded, for the trace of where a migration's fixed cost goes.
    expect(Object.keys(out.phaseMs)).toEqual(['begin', 'prepare', 'perform', 'finish', 'confirm']);
    for (const ms of Object.values(out.phaseMs)) expect(ms).toBeGreaterThanOrEqual(0);
    // The line ferryd logs reads back as the same times (benchmarks parse it).
    const line = phaseLogLine('web-1', 'ferry+tcp://b/system', 12.4, { begin: 3, prepare: 30.2, perform: 170, finish: 5, confirm: 2.6 });
    expect(phasesFromLog(`noise\n${line}\n`, 'web-1')).toEqual({ connect: 12, begin: 3, prepare: 30, perform: 170, finish: 5, confirm: 3 });
    expect(phasesFromLog(line, 'web-2')).toBeUndefined();
    expect(out.confirmWarning).toBeUndefined();
  });

  it('omits downtimeMs from confirm when finish measured none', async () => {
    const { downtimeMs: _, ...noDowntime } = FINISH;
    const f = fakes({ finish: async () => noDowntime });
    await runMigration(f.src, f.dst, 'web1', REQ);
    expect(f.confirms()).toEqual([{ jobId: 'src-job-1', cancelled: false }]);
  });

  it('offline (empty migrateUri): no perform, finish without source stats', async () => {
    const f = fakes({ prepare: async () => ({ ...PREPARE, migrateUri: '' }) });
    const out = await runMigration(f.src, f.dst, 'web1', REQ);
    expect(f.ops()).toEqual(['begin', 'prepare', 'finish', 'confirm']);
    expect(out.perform).toBeNull();
    expect(f.log.find((c) => c.op === 'finish')).toEqual({ op: 'finish', args: { jobId: 'dst-job-7', cancelled: false } });
    expect(f.confirms()[0]!.cancelled).toBe(false);
  });

  it('hands perform a wildcard NBD target resolved to the data stream host', async () => {
    const nbd: NbdTarget = { transport: 'tcp', host: '*', port: 10809, exports: { vda: 'drive-vda' }, tls: false };
    const f = fakes({ prepare: async () => ({ ...PREPARE, nbd }) });
    await runMigration(f.src, f.dst, 'web1', REQ);
    const [perf] = f.log.flatMap((c) => (c.op === 'perform' ? [c.args] : []));
    expect(perf!.nbd).toEqual({ ...nbd, host: '10.0.0.2' });
  });

  it('a confirm that fails after success becomes confirmWarning, not an error', async () => {
    const f = fakes({ confirm: async () => Promise.reject(new FerryError('no_connect', 'connection to src closed')) });
    const out = await runMigration(f.src, f.dst, 'web1', REQ);
    expect(out.finish).toEqual(FINISH);
    expect(out.confirmWarning).toMatch(/guest runs on the destination/);
    expect(out.confirmWarning).toMatch(/connection to src closed/);
    expect(f.confirms()).toEqual([{ jobId: 'src-job-1', cancelled: false, downtimeMs: 42 }]);
  });

  it('after a post-copy perform, confirm waits for the rest of the stream: its failure (a paused post-copy) is the migration\'s error', async () => {
    const paused = new FerryError('operation_failed', "post-copy migration of 'web1' paused: the stream broke");
    const f = fakes({
      perform: async () => ({ stats: { ...STATS }, sourceStoppedAt: 1_700_000_000_000, postcopy: true }),
      confirm: async () => Promise.reject(paused),
    });
    await expect(runMigration(f.src, f.dst, 'web1', REQ)).rejects.toBe(paused);
    // One confirm, as a success: the source never takes a post-copy guest back.
    expect(f.confirms()).toEqual([{ jobId: 'src-job-1', cancelled: false, downtimeMs: 42 }]);
  });
});

describe('runMigration: prepare or perform fails (destination never resumed)', () => {
  it('prepare fails: the source takes the guest back, the error is rethrown, perform never runs', async () => {
    const boom = new FerryError('operation_failed', 'no free port in the migration range');
    const f = fakes({ prepare: async () => Promise.reject(boom) });
    await expect(runMigration(f.src, f.dst, 'web1', REQ)).rejects.toBe(boom);
    expect(f.ops()).toEqual(['begin', 'prepare', 'confirm']);
    expect(f.confirms()).toEqual([{ jobId: 'src-job-1', cancelled: true }]);
  });

  it('prepare fails and confirm fails too: still the prepare error', async () => {
    const boom = new FerryError('operation_failed', 'prepare refused');
    const f = fakes({ prepare: async () => Promise.reject(boom), confirm: async () => Promise.reject(new Error('src gone')) });
    await expect(runMigration(f.src, f.dst, 'web1', REQ)).rejects.toBe(boom);
  });

  it('perform fails: destination finish cancelled, then source confirm cancelled, original error', async () => {
    const boom = new FerryError('operation_failed', 'migration failed: Unable to write to socket');
    const f = fakes({ perform: async () => Promise.reject(boom) });
    await expect(runMigration(f.src, f.dst, 'web1', REQ)).rejects.toBe(boom);
    expect(f.ops()).toEqual(['begin', 'prepare', 'perform', 'finish', 'confirm']);
    expect(f.log[3]).toEqual({ op: 'finish', args: { jobId: 'dst-job-7', cancelled: true } });
    expect(f.confirms()).toEqual([{ jobId: 'src-job-1', cancelled: true }]);
    expect(f.ops()).not.toContain('cancel');
    expect(f.ops()).not.toContain('abortUnlessFinished');
  });
});

describe('runMigration: destination control connection lost while perform runs', () => {
  it('cancels perform, takes the guest back, and says the guest keeps running on the source', async () => {
    const f = fakes({ perform: () => f.performUntilCancelled() });
    const run = runMigration(f.src, f.dst, 'web1', REQ);
    const settled = run.then(
      () => null,
      (e: unknown) => e,
    );
    await flush();
    expect(f.ops()).toEqual(['begin', 'prepare', 'perform']);
    f.lose(new FerryError('no_connect', 'lost the connection to ferry+tcp://dst: no answer for 25 s'));
    const err = await settled;
    const cancels = f.log.flatMap((c) => (c.op === 'cancel' ? [c] : []));
    expect(cancels).toHaveLength(1);
    expect(cancels[0]).toMatchObject({ jobId: 'src-job-1' });
    expect(cancels[0]!.why).toMatch(/lost the connection to the destination host/);
    expect(cancels[0]!.why).toMatch(/no answer for 25 s/);
    expect(err).toBeInstanceOf(FerryError);
    expect(err).toMatchObject({ code: 'operation_failed' });
    const msg = (err as FerryError).message;
    expect(msg).toMatch(/lost the connection to the destination host/);
    expect(msg).toMatch(/no answer for 25 s/);
    expect(msg).toMatch(/'web1'/);
    expect(msg).toMatch(/guest keeps running on the source/);
    // Never resumed there: the source takes it back; finish is only a clean-up.
    expect(f.log.filter((c) => c.op === 'finish')).toEqual([{ op: 'finish', args: { jobId: 'dst-job-7', cancelled: true } }]);
    expect(f.confirms()).toEqual([{ jobId: 'src-job-1', cancelled: true }]);
    expect(f.ops()).not.toContain('abortUnlessFinished');
  });

  it('a connection already lost when perform starts still cancels it', async () => {
    const f = fakes({ perform: () => f.performUntilCancelled() });
    f.lose(new FerryError('no_connect', 'connection to ferry+tcp://dst closed'));
    await expect(runMigration(f.src, f.dst, 'web1', REQ)).rejects.toMatchObject({
      code: 'operation_failed',
      message: expect.stringMatching(/lost the connection to the destination host.*keeps running on the source/),
    });
    expect(f.ops().indexOf('cancel')).toBeGreaterThan(f.ops().indexOf('perform'));
    expect(f.confirms()).toEqual([{ jobId: 'src-job-1', cancelled: true }]);
  });

  it('a loss after perform returned does not cancel anything', async () => {
    let releaseFinish!: () => void;
    const finishGate = new Promise<void>((r) => (releaseFinish = r));
    const f = fakes({
      finish: async () => {
        await finishGate;
        return FINISH;
      },
      // The loss is noticed while finish is pending; finish itself still answers.
      connectionLost: () => false,
    });
    const run = runMigration(f.src, f.dst, 'web1', REQ);
    await flush();
    expect(f.ops()).toEqual(['begin', 'prepare', 'perform', 'finish']);
    f.lose(new FerryError('no_connect', 'connection closed'));
    await flush();
    releaseFinish();
    const out = await run;
    expect(f.ops()).not.toContain('cancel');
    expect(out.finish).toEqual(FINISH);
    expect(f.confirms()).toEqual([{ jobId: 'src-job-1', cancelled: false, downtimeMs: 42 }]);
  });
});

describe('runMigration: finish answer lost', () => {
  for (const code of ['no_connect', 'rpc', 'operation_timeout'] as const) {
    it(`${code}, destination says finished: success, confirm not cancelled`, async () => {
      vi.useFakeTimers();
      const f = fakes({
        finish: async () => Promise.reject(new FerryError(code, 'finish: answer lost')),
        abortUnlessFinished: async () => 'finished',
      });
      const run = runMigration(f.src, f.dst, 'web1', REQ);
      await vi.advanceTimersByTimeAsync(0);
      const out = await run;
      expect(f.ops()).toEqual(['begin', 'prepare', 'perform', 'finish', 'abortUnlessFinished', 'confirm']);
      expect(f.log[4]).toEqual({ op: 'abortUnlessFinished', jobId: 'dst-job-7', domainUuid: DOMAIN_UUID });
      expect(f.confirms()).toEqual([{ jobId: 'src-job-1', cancelled: false }]);
      expect(out.finish).toMatchObject({ domainName: 'web1', state: 'running' });
    });

    it(`${code}, destination says aborted: the source takes the guest back, error thrown`, async () => {
      vi.useFakeTimers();
      const lostErr = new FerryError(code, 'finish: answer lost');
      const f = fakes({ finish: async () => Promise.reject(lostErr), abortUnlessFinished: async () => 'aborted' });
      const run = runMigration(f.src, f.dst, 'web1', REQ);
      const settled = run.then(() => null, (e: unknown) => e);
      await vi.advanceTimersByTimeAsync(0);
      expect(await settled).toBe(lostErr);
      expect(f.confirms()).toEqual([{ jobId: 'src-job-1', cancelled: true }]);
    });
  }

  it("a destination that no longer knows the job ('unknown') counts as aborted", async () => {
    vi.useFakeTimers();
    const f = fakes({
      finish: async () => Promise.reject(new FerryError('no_connect', 'closed')),
      abortUnlessFinished: async () => 'unknown',
    });
    const settled = runMigration(f.src, f.dst, 'web1', REQ).then(() => null, (e: unknown) => e);
    await vi.advanceTimersByTimeAsync(0);
    expect(await settled).toMatchObject({ code: 'no_connect' });
    expect(f.confirms()).toEqual([{ jobId: 'src-job-1', cancelled: true }]);
  });

  it("keeps asking while the destination is still 'finishing', then follows its final answer", async () => {
    vi.useFakeTimers();
    const answers: IncomingJobState[] = ['finishing', 'finishing', 'finished'];
    const f = fakes({
      finish: async () => Promise.reject(new FerryError('operation_timeout', 'finish got no answer')),
      abortUnlessFinished: async () => answers.shift()!,
    });
    const run = runMigration(f.src, f.dst, 'web1', REQ);
    await vi.advanceTimersByTimeAsync(5_000);
    await run;
    expect(f.ops().filter((o) => o === 'abortUnlessFinished')).toHaveLength(3);
    expect(f.confirms()).toEqual([{ jobId: 'src-job-1', cancelled: false }]);
  });

  it('an unreachable destination is retried; an answer before the deadline still counts', async () => {
    vi.useFakeTimers();
    let n = 0;
    const f = fakes({
      finish: async () => Promise.reject(new FerryError('no_connect', 'closed')),
      abortUnlessFinished: async () => {
        if (++n < 10) throw new FerryError('no_connect', 'cannot connect');
        return 'finished';
      },
    });
    const run = runMigration(f.src, f.dst, 'web1', REQ);
    await vi.advanceTimersByTimeAsync(20_000);
    const out = await run;
    expect(n).toBe(10);
    expect(out.finish.state).toBe('running');
    expect(f.confirms()).toEqual([{ jobId: 'src-job-1', cancelled: false }]);
  });

  const unreachable = {
    rejects: () => Promise.reject(new FerryError('no_connect', 'cannot connect to ferry+tcp://dst')),
    hangs: () => new Promise<IncomingJobState>(() => undefined),
  };
  for (const [how, abortUnlessFinished] of Object.entries(unreachable)) {
    it(`destination unreachable (abortUnlessFinished ${how}): after ${UNKNOWN_OUTCOME_WAIT_MS} ms the guest stays paused, outcome unknown`, async () => {
      vi.useFakeTimers();
      const f = fakes({
        finish: async () => Promise.reject(new FerryError('no_connect', 'connection to ferry+tcp://dst closed')),
        abortUnlessFinished,
      });
      const settled = runMigration(f.src, f.dst, 'web1', REQ).then(() => null, (e: unknown) => e);
      await vi.advanceTimersByTimeAsync(UNKNOWN_OUTCOME_WAIT_MS - 100);
      // Still asking: no confirm yet.
      expect(f.ops()).not.toContain('confirm');
      expect(f.ops()).toContain('abortUnlessFinished');
      await vi.advanceTimersByTimeAsync(200);
      const err = await settled;
      const confirms = f.confirms();
      expect(confirms).toHaveLength(1);
      expect(confirms[0]).toMatchObject({ jobId: 'src-job-1', cancelled: true });
      const why = confirms[0]!.outcomeUnknown;
      expect(typeof why).toBe('string');
      expect(tookBack(confirms[0]!)).toBe(false);
      expect(err).toBeInstanceOf(FerryError);
      expect(err).toMatchObject({ code: 'operation_failed', message: why });
      expect(why).toMatch(/outcome of migrating 'web1' is unknown/);
      expect(why).toMatch(/connection to ferry\+tcp:\/\/dst closed/);
      expect(why).toMatch(/paused on the source/);
      expect(why).toMatch(/ferry list/);
      expect(why).toMatch(/ferry destroy/);
      expect(why).toMatch(/ferry resume/);
    });
  }
});

describe('runMigration: connection already lost before finish', () => {
  it('finish is not sent; an unreachable destination means aborted: the source takes the guest back', async () => {
    vi.useFakeTimers();
    const f = fakes({
      connectionLost: () => true,
      abortUnlessFinished: () => Promise.reject(new FerryError('no_connect', 'cannot connect')),
    });
    const settled = runMigration(f.src, f.dst, 'web1', REQ).then(() => null, (e: unknown) => e);
    await vi.advanceTimersByTimeAsync(UNKNOWN_OUTCOME_WAIT_MS + 1_000);
    const err = await settled;
    expect(f.ops()).not.toContain('finish');
    expect(f.ops()).toContain('abortUnlessFinished');
    // Said as for a loss during perform: the destination is gone, the guest keeps running on the source.
    expect(err).toMatchObject({ code: 'operation_failed' });
    expect((err as FerryError).message).toMatch(/lost the connection to the destination host .*keeps running on the source/);
    expect(f.confirms()).toEqual([{ jobId: 'src-job-1', cancelled: true }]);
  });

  it('finish is not sent; a destination that says finished anyway is followed', async () => {
    vi.useFakeTimers();
    const f = fakes({ connectionLost: () => true, abortUnlessFinished: async () => 'finished' });
    const run = runMigration(f.src, f.dst, 'web1', REQ);
    await vi.advanceTimersByTimeAsync(0);
    await run;
    expect(f.ops()).not.toContain('finish');
    expect(f.confirms()).toEqual([{ jobId: 'src-job-1', cancelled: false }]);
  });
});

describe('runMigration: finish fails with another code', () => {
  it('operation_failed from a destination that aborted: the source takes the guest back after asking once', async () => {
    const boom = new FerryError('operation_failed', 'incoming migration failed: load of migration failed');
    const f = fakes({ finish: async () => Promise.reject(boom), abortUnlessFinished: async () => 'aborted' });
    await expect(runMigration(f.src, f.dst, 'web1', REQ)).rejects.toBe(boom);
    expect(f.ops()).toEqual(['begin', 'prepare', 'perform', 'finish', 'abortUnlessFinished', 'confirm']);
    expect(f.confirms()).toEqual([{ jobId: 'src-job-1', cancelled: true }]);
  });

  // The destination's finish (src/migration/incoming.ts) rethrows errors raised after it resumed
  // the guest ("Never kill a guest that was already handed over"), e.g. a post-copy stream that
  // broke after the switch: "the guest keeps running here". The driver must find out first
  // (abortUnlessFinished answers 'finished') and never tell the source to take the guest back.
  it('a finish that fails after the destination resumed the guest does not make the source take it back', async () => {
    vi.useFakeTimers();
    let resumedOnDestination = false;
    const f = fakes({
      finish: async () => {
        resumedOnDestination = true;
        throw new FerryError('operation_failed', "post-copy migration of 'web1' broke after the switch: failed; the guest keeps running here but may stall on pages it never received");
      },
      abortUnlessFinished: async () => (resumedOnDestination ? 'finished' : 'aborted'),
    });
    const settled = runMigration(f.src, f.dst, 'web1', REQ).then(() => null, (e: unknown) => e as FerryError);
    await vi.advanceTimersByTimeAsync(UNKNOWN_OUTCOME_WAIT_MS + 1_000);
    const err = await settled;
    expect(resumedOnDestination).toBe(true);
    expect(f.confirms().some(tookBack)).toBe(false);
    expect(f.confirms()).toEqual([{ jobId: 'src-job-1', cancelled: false }]);
    expect(err?.code).toBe('operation_failed');
    expect(err?.message).toMatch(/runs on the destination/);
  });
});

describe('chooseDataUri', () => {
  it('replaces a wildcard tcp host with the destination address', () => {
    expect(chooseDataUri(undefined, 'tcp:*:49152', '10.0.0.2')).toBe('tcp:10.0.0.2:49152');
    expect(chooseDataUri('', 'tcp:*:49152', 'dst.example')).toBe('tcp:dst.example:49152');
  });

  it('brackets an IPv6 destination address, once', () => {
    expect(chooseDataUri(undefined, 'tcp:*:49152', 'fd00::2')).toBe('tcp:[fd00::2]:49152');
    expect(chooseDataUri(undefined, 'tcp:*:49152', '[fd00::2]')).toBe('tcp:[fd00::2]:49152');
  });

  it('keeps a concrete prepared host', () => {
    expect(chooseDataUri(undefined, 'tcp:192.168.1.5:49152', '10.0.0.2')).toBe('tcp:192.168.1.5:49152');
  });

  it('an explicit tcp://HOST keeps the port the destination prepared', () => {
    expect(chooseDataUri('tcp://192.168.7.9', 'tcp:*:49153', '10.0.0.2')).toBe('tcp:192.168.7.9:49153');
    expect(chooseDataUri('tcp://192.168.7.9/', 'tcp:10.0.0.2:49153', '10.0.0.2')).toBe('tcp:192.168.7.9:49153');
    expect(chooseDataUri('tcp://[fd00::9]', 'tcp:*:49153', '10.0.0.2')).toBe('tcp:[fd00::9]:49153');
  });

  it('an explicit tcp://HOST:PORT is put into QEMU spelling', () => {
    expect(chooseDataUri('tcp://192.168.7.9:50000', 'tcp:*:50000', '10.0.0.2')).toBe('tcp:192.168.7.9:50000');
    expect(chooseDataUri('tcp://[fd00::9]:50000', 'tcp:*:50000', '10.0.0.2')).toBe('tcp:[fd00::9]:50000');
  });

  it('unix: the prepared socket path wins', () => {
    expect(chooseDataUri('unix:///run/ferry/mig.sock', 'unix:/run/ferry/mig.sock', '10.0.0.2')).toBe('unix:/run/ferry/mig.sock');
  });

  it('rdma://HOST:PORT takes the explicit host for a wildcard prepared rdma URI', () => {
    expect(chooseDataUri('rdma://192.168.9.9:4000', 'rdma:*:4000', '10.0.0.2')).toBe('rdma:192.168.9.9:4000');
  });
});

describe('resolveNbdTarget', () => {
  const base: NbdTarget = { transport: 'tcp', host: '*', port: 10809, exports: { vda: 'drive-vda' }, tls: true };

  it('a wildcard host becomes the data stream host', () => {
    expect(resolveNbdTarget(base, 'tcp:192.168.7.9:49152', '10.0.0.2')).toEqual({ ...base, host: '192.168.7.9' });
    expect(resolveNbdTarget(base, 'rdma:192.168.9.9:4000', '10.0.0.2')).toEqual({ ...base, host: '192.168.9.9' });
  });

  it('an IPv6 data host loses its brackets', () => {
    expect(resolveNbdTarget(base, 'tcp:[fd00::2]:49152', '10.0.0.2')).toEqual({ ...base, host: 'fd00::2' });
  });

  it('a missing host is treated as a wildcard', () => {
    const { host: _, ...noHost } = base;
    expect(resolveNbdTarget(noHost, 'tcp:10.0.0.3:49152', '10.0.0.2')).toEqual({ ...base, host: '10.0.0.3' });
  });

  it('a data stream not over TCP falls back to the destination address, without brackets', () => {
    expect(resolveNbdTarget(base, 'unix:/run/ferry/mig.sock', '10.0.0.2')).toEqual({ ...base, host: '10.0.0.2' });
    expect(resolveNbdTarget(base, 'unix:/run/ferry/mig.sock', '[fd00::2]')).toEqual({ ...base, host: 'fd00::2' });
  });

  it('a concrete host, a unix target and a tunnel are left alone', () => {
    const concrete = { ...base, host: '172.16.0.1' };
    expect(resolveNbdTarget(concrete, 'tcp:10.0.0.2:49152', '10.0.0.2')).toBe(concrete);
    const unix: NbdTarget = { transport: 'unix', path: '/run/ferry/nbd.sock', exports: { vda: 'drive-vda' }, tls: false };
    expect(resolveNbdTarget(unix, 'tcp:10.0.0.2:49152', '10.0.0.2')).toBe(unix);
    const tunnel: NbdTarget = { transport: 'tunnel', exports: { vda: 'drive-vda' }, tls: false };
    expect(resolveNbdTarget(tunnel, 'unix:/x', '10.0.0.2')).toBe(tunnel);
  });
});
