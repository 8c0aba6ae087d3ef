/**
 * The domain state changes of migrations (src/host/migration-states.ts),
 * against a real registry, definition store, lifecycle and status files,
 * with QEMU faked: what each named operation leaves in the domain's state,
 * its definition, the registry and the lifecycle events.
 */
import { EventEmitter } from 'node:events';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { DomainDocument } from '../../src/domain/index.js';
import { status } from '../../src/domain/lifecycle-state.js';
import { FerryError } from '../../src/errors/index.js';
import { DefinitionStore } from '../../src/host/definition-store.js';
import { EventBus, type LifecycleEvent } from '../../src/host/events.js';
import { GuestRunner, hostPaths } from '../../src/host/guest-runner.js';
import { HostedDomain, type DomainRuntime } from '../../src/host/hosted-domain.js';
import { Lifecycle } from '../../src/host/lifecycle.js';
import { MigrationStates } from '../../src/host/migration-states.js';
import { DomainRegistry } from '../../src/host/registry.js';
import type { ExitReason, QmpClient } from '../../src/qemu/index.js';

const UUID = '5c4e7a63-8f27-4b6e-9c1d-3a2f0e8b7d14';

function doc(name = 'web1', uuid = UUID): DomainDocument {
  return DomainDocument.parse(`<domain type='kvm'><name>${name}</name><uuid>${uuid}</uuid><memory>65536</memory><os><type>hvm</type></os></domain>`);
}

/** A QEMU that answers every QMP command, emits STOP/RESUME for stop/cont as QEMU does, and records what it was asked. */
class FakeQemu {
  readonly commands: string[] = [];
  readonly qmp = Object.assign(new EventEmitter(), {
    execute: async (cmd: string): Promise<unknown> => {
      this.commands.push(cmd);
      if (cmd === 'stop') this.qmp.emit('event', { event: 'STOP' });
      if (cmd === 'cont') this.qmp.emit('event', { event: 'RESUME' });
      return {};
    },
  });
  killedWith: unknown;
  private exit!: (r: ExitReason) => void;
  readonly exited = new Promise<ExitReason>((resolve) => (this.exit = resolve));

  runtime(d: DomainDocument, incoming = false): DomainRuntime {
    return {
      id: 7,
      liveDoc: d,
      accel: 'tcg',
      startedAt: new Date().toISOString(),
      stopRequested: null,
      ...(incoming ? { incoming: true } : {}),
      qemu: {
        pid: process.pid,
        startTime: 0,
        qmp: this.qmp as unknown as QmpClient,
        exited: this.exited,
        exitReason: undefined,
        isChild: false,
        kill: async (opts?: unknown) => {
          this.killedWith = opts ?? {};
          this.exit({ kind: 'destroyed' });
          return { kind: 'destroyed' };
        },
        detach: () => undefined,
      },
    };
  }
}

/** A guest runner whose launch hands out a fake QEMU instead of starting one. */
class FakeLaunchRunner extends GuestRunner {
  readonly launched: FakeQemu[] = [];
  override async launch(_d: HostedDomain, liveDoc: DomainDocument, opts: { paused: boolean; incoming?: boolean }): Promise<DomainRuntime> {
    const q = new FakeQemu();
    this.launched.push(q);
    return q.runtime(liveDoc, opts.incoming === true);
  }
}

let registry: DomainRegistry;
let store: DefinitionStore;
let runner: FakeLaunchRunner;
let events: LifecycleEvent[];
let states: MigrationStates;
let stateDir: string;

beforeEach(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'ferry-migstates-'));
  const runDir = mkdtempSync(join(tmpdir(), 'ferry-migstates-run-'));
  const bus = new EventBus();
  events = [];
  bus.subscribe((e) => {
    if (e.name === 'domain.lifecycle') events.push(e.data);
  });
  registry = new DomainRegistry();
  store = new DefinitionStore(stateDir, () => undefined);
  await store.init();
  runner = new FakeLaunchRunner(hostPaths(stateDir, runDir), 'tcg', bus, () => undefined);
  await runner.init();
  const lifecycle = new Lifecycle({ registry, store, runner, events: bus, log: () => undefined });
  states = new MigrationStates({ registry, runner, events: bus, lifecycle, hostName: 'hostA' });
});

/** A running domain on this host with a watched fake QEMU. */
async function runningDomain(opts: { persistent: boolean }): Promise<{ d: HostedDomain; rt: DomainRuntime; qemu: FakeQemu }> {
  const dd = doc();
  if (opts.persistent) await store.save(dd);
  const d = new HostedDomain(UUID, 'web1', opts.persistent ? dd : null);
  registry.add(d);
  const qemu = new FakeQemu();
  const rt = qemu.runtime(dd);
  d.runtime = rt;
  d.setStatus(status('running', 'booted'));
  runner.watch(d, rt, () => undefined);
  return { d, rt, qemu };
}

const shown = (d: HostedDomain) => `${d.status.state} (${d.status.reason})`;
const seen = () => events.map((e) => `${e.kind} ${e.detail}`);

describe('source side', () => {
  it('pauseForMigration: stop, one "paused (migrating)" and one suspended event even when the STOP event records it first', async () => {
    const { d, rt, qemu } = await runningDomain({ persistent: true });
    await states.pauseForMigration(d, rt);
    expect(qemu.commands).toEqual(['stop']);
    expect(shown(d)).toBe('paused (migrating)');
    expect(seen()).toEqual(['suspended migrated']);
  });

  it('the switch-over pause is recorded as migrating when expected, as unknown once dropped', async () => {
    const { d, rt, qemu } = await runningDomain({ persistent: true });
    states.expectSwitchoverPause(rt);
    states.dropSwitchoverPause(rt);
    await qemu.qmp.execute('stop');
    expect(shown(d)).toBe('paused (unknown)');
    d.setStatus(status('running', 'unpaused'));
    states.expectSwitchoverPause(rt);
    await qemu.qmp.execute('stop');
    expect(shown(d)).toBe('paused (migrating)');
  });

  it('takeBack: a stopped QEMU gets cont and the guest runs as "running (migration canceled)"', async () => {
    const { d, rt, qemu } = await runningDomain({ persistent: true });
    await states.pauseForMigration(d, rt);
    events.length = 0;
    await states.takeBack(d, rt, false);
    expect(qemu.commands).toEqual(['stop', 'cont']);
    expect(shown(d)).toBe('running (migration canceled)');
    expect(seen()).toEqual(['resumed migration canceled']);
  });

  it('takeBack: a QEMU that already runs only has its state recorded', async () => {
    const { d, rt, qemu } = await runningDomain({ persistent: true });
    d.setStatus(status('paused', 'migrating'));
    await states.takeBack(d, rt, true);
    expect(qemu.commands).toEqual([]);
    expect(shown(d)).toBe('running (migration canceled)');
  });

  it('markPostcopyFailed on the source: "paused (post-copy failed)", recorded once', async () => {
    const { d, rt } = await runningDomain({ persistent: true });
    d.setStatus(status('paused', 'migrating'));
    await states.markPostcopyFailed(d, rt, 'source');
    await states.markPostcopyFailed(d, rt, 'source');
    expect(shown(d)).toBe('paused (post-copy failed)');
    expect(seen()).toEqual(['suspended postcopy failed']);
  });

  it('stopAfterMigration then undefineAfterMigration: shut off (migrated), definition gone from disk and host', async () => {
    const { d, rt, qemu } = await runningDomain({ persistent: true });
    await store.setAutostart('web1', true);
    d.autostart = true;
    await states.stopAfterMigration(d, rt);
    expect(rt.stopRequested).toBe('migrated');
    expect(qemu.killedWith).toMatchObject({ graceful: true });
    expect(shown(d)).toBe('shutoff (migrated)');
    expect(d.runtime).toBeNull();
    expect(registry.getByUuid(UUID)).toBe(d);
    await states.undefineAfterMigration(d);
    expect(d.persistent).toBe(false);
    expect(d.autostart).toBe(false);
    expect(existsSync(join(stateDir, 'domains', 'web1.xml'))).toBe(false);
    expect(existsSync(join(stateDir, 'autostart', 'web1'))).toBe(false);
    expect(registry.getByUuid(UUID)).toBeUndefined();
    expect(seen()).toEqual(['stopped migrated', 'undefined removed']);
  });

  it('stopAfterMigration of a transient domain removes it; undefineAfterMigration then does nothing', async () => {
    const { d, rt } = await runningDomain({ persistent: false });
    await states.stopAfterMigration(d, rt);
    expect(registry.getByUuid(UUID)).toBeUndefined();
    await states.undefineAfterMigration(d);
    expect(seen()).toEqual(['stopped migrated']);
  });
});

describe('destination side', () => {
  it('adoptIncoming adds a new domain, reuses an inactive one with the same name and UUID', () => {
    const fresh = states.adoptIncoming(UUID, 'web1');
    expect(fresh.existedBefore).toBe(false);
    expect(registry.getByName('web1')).toBe(fresh.domain);
    const again = states.adoptIncoming(UUID, 'web1');
    expect(again).toEqual({ domain: fresh.domain, existedBefore: true });
  });

  it('adoptIncoming refuses an active domain and a name or UUID held by another domain', async () => {
    await runningDomain({ persistent: true });
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        expect(err).toBeInstanceOf(FerryError);
        return (err as FerryError).code;
      }
      return 'no error';
    };
    expect(code(() => states.adoptIncoming(UUID, 'web1'))).toBe('operation_invalid');
    registry.add(new HostedDomain('0f8fad5b-d9cb-469f-a165-70867728950e', 'db', doc('db', '0f8fad5b-d9cb-469f-a165-70867728950e')));
    expect(code(() => states.adoptIncoming('7c9e6679-7425-40de-944b-e07fc1f90ae7', 'db'))).toBe('dom_exist');
  });

  it('startIncoming: "paused (migrating)" with an incoming QEMU; handOver makes it "running (migrated)", started and resumed', async () => {
    const { domain: d } = states.adoptIncoming(UUID, 'web1');
    const rt = await states.startIncoming(d, doc());
    expect(d.runtime).toBe(rt);
    expect(rt.incoming).toBe(true);
    expect(shown(d)).toBe('paused (migrating)');
    const before = Date.now();
    const resumedAt = await states.handOver(d, rt, { paused: false, postcopy: false });
    expect(resumedAt).toBeGreaterThanOrEqual(before);
    expect(rt.incoming).toBe(false);
    expect(runner.launched[0]!.commands).toEqual(['cont']);
    expect(shown(d)).toBe('running (migrated)');
    expect(seen()).toEqual(['started migrated', 'resumed migrated']);
  });

  it('handOver with paused: the guest stays "paused (user)" and no cont is sent', async () => {
    const { domain: d } = states.adoptIncoming(UUID, 'web1');
    const rt = await states.startIncoming(d, doc());
    expect(await states.handOver(d, rt, { paused: true, postcopy: false })).toBeUndefined();
    expect(runner.launched[0]!.commands).toEqual([]);
    expect(shown(d)).toBe('paused (user)');
    expect(seen()).toEqual(['started migrated', 'suspended paused']);
  });

  it('a post-copy hand-over runs as "running (post-copy)", then "running (migrated)" or "running (post-copy failed)"', async () => {
    const { domain: d } = states.adoptIncoming(UUID, 'web1');
    const rt = await states.startIncoming(d, doc());
    await states.handOver(d, rt, { paused: false, postcopy: true });
    expect(shown(d)).toBe('running (post-copy)');
    await states.markPostcopyCompleted(d, rt);
    expect(shown(d)).toBe('running (migrated)');
    await states.markPostcopyCompleted(d, rt);
    await states.markPostcopyFailed(d, rt, 'destination');
    expect(shown(d)).toBe('running (post-copy failed)');
    expect(seen()).toEqual(['started migrated', 'resumed postcopy', 'resumed migrated', 'resumed postcopy failed']);
  });

  it('persistAfterMigration stores the definition as define does', async () => {
    const { domain: d } = states.adoptIncoming(UUID, 'web1');
    await states.persistAfterMigration(d, doc());
    expect(d.persistent).toBe(true);
    expect(existsSync(join(stateDir, 'domains', 'web1.xml'))).toBe(true);
    expect(seen()).toEqual(['defined added']);
  });

  it('dropIncoming kills the QEMU, leaves "shut off (failed)" and removes a domain adopted for the job', async () => {
    const { domain: d, existedBefore } = states.adoptIncoming(UUID, 'web1');
    const rt = await states.startIncoming(d, doc());
    await states.dropIncoming(d, existedBefore);
    expect(rt.stopRequested).toBe('destroy');
    expect(runner.launched[0]!.killedWith).toMatchObject({ graceful: false });
    expect(d.runtime).toBeNull();
    expect(shown(d)).toBe('shutoff (failed)');
    expect(registry.getByUuid(UUID)).toBeUndefined();
  });

  it('dropIncoming keeps a domain that existed before the migration', async () => {
    registry.add(new HostedDomain(UUID, 'web1', doc()));
    const { domain: d, existedBefore } = states.adoptIncoming(UUID, 'web1');
    await states.startIncoming(d, doc());
    await states.dropIncoming(d, existedBefore);
    expect(registry.getByUuid(UUID)).toBe(d);
    expect(d.persistent).toBe(true);
  });
});
