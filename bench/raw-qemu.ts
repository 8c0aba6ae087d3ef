/**
 * The floor of the comparison: one live migration driven straight over QMP
 * by this process, no daemon. It starts the source QEMU (the command line
 * Ferry builds, so that the guest is the same), boots the guest, then does
 * what any tool has to do for a migration and nothing else:
 *
 *   destination QEMU `-incoming defer` -> capabilities and parameters on
 *   both -> `migrate-incoming` -> `migrate` -> wait for completion (or for
 *   post-copy, switching after the first pass) -> `cont` on the destination
 *   -> `quit` the source.
 *
 * A recipe names the QEMU features a Ferry/libvirt mode turns on (xbzrle,
 * mt compression, multifd with or without compression, auto-converge,
 * post-copy, TLS), so that each mode has the floor it should be held to.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DomainDef } from '../src/domain/index.js';
import { QmpClient, buildQemuCommand, type QmpEvent } from '../src/qemu/index.js';
import { inNetns } from '../test/support/netns.js';
import { killIf, onCleanup, sleep } from './lib.js';
import { now } from './wire.js';

const UNLIMITED_BANDWIDTH_BYTES = 2 ** 53 - 1;

/** QEMU features one migration mode uses. */
export interface RawRecipe {
  /** Capabilities set on both QEMUs (besides `events`). */
  caps?: string[];
  /** `migrate-set-parameters` on both QEMUs (besides unlimited `max-bandwidth` on the source). */
  params?: Record<string, unknown>;
  /** Switch to post-copy once QEMU starts its second pass (MIGRATION_PASS 2), as `--postcopy-after-precopy` does. */
  postcopyAfterFirstPass?: boolean;
  /** QEMU's own TLS: a directory with QEMU's file names (ca-cert.pem, server-*.pem, client-*.pem). */
  tlsDir?: string;
}

export interface RawHost {
  ns: string;
  address: string;
}

export interface RawMigration {
  name: string;
  def: DomainDef;
  /** Where sockets, serial and QEMU logs go. */
  dir: string;
  src: RawHost;
  dst: RawHost;
  port: number;
  recipe: RawRecipe;
  /** Cancel a migration still running after this long (ms after `migrate`). */
  capMs: number;
  /** Resolves once the booted guest is warm (given the source's serial log path). */
  warm(serialLog: string): Promise<void>;
  /** Called right before `migrate` and right after the destination's `cont` (wire monitor). */
  onStreamStart?(srcPid: number | undefined, dstPid: number | undefined): void;
  onStreamEnd?(): void;
}

export interface RawOutcome {
  srcSerial: string;
  dstSerial: string;
  /** Destination QEMU spawned -> source QEMU exited: everything a tool has to do. */
  wallMs: number;
  /** Source STOP event -> destination `cont` returned. */
  downtimeMs?: number;
  /** QEMU's own figures from the source's final `query-migrate`. */
  qemuDowntimeMs?: number;
  setupMs?: number;
  totalMs?: number;
  bytes?: number;
  throughputBps?: number;
  iterations?: number;
  /** false: still running at the cap and cancelled (the guest stays on the source). */
  finished: boolean;
  /**
   * Where the whole sequence's time went, ms: destination QEMU start (spawn
   * to QMP ready), tuning both and `migrate-incoming`, the stream (`migrate`
   * to `completed` seen), the destination's completion and `cont`, the
   * source's `quit` to its exit.
   */
  steps?: { dstStart: number; setUp: number; stream: number; cont: number; quit: number };
}

/** The part of `query-migrate`'s answer the benchmarks read. */
export interface MigrateInfo {
  status?: string;
  'total-time'?: number;
  downtime?: number;
  'setup-time'?: number;
  'error-desc'?: string;
  ram?: { transferred?: number; mbps?: number; 'dirty-sync-count'?: number };
}

/** Connects to a QEMU's QMP socket once it appears; fails at once if that QEMU exits (with the end of its log). */
export async function connectQmp(path: string, child: ChildProcess, logPath: string, timeoutMs = 20_000): Promise<QmpClient> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`QEMU exited at start: ${readTail(logPath)}`);
    if (existsSync(path)) {
      try {
        return await QmpClient.connect(path, { timeoutMs: 5000 });
      } catch (err) {
        last = err;
      }
    }
    await sleep(5);
  }
  throw new Error(`no QMP at ${path}: ${(last as Error | undefined)?.message ?? 'no socket'}`);
}

function readTail(path: string): string {
  try {
    return readFileSync(path, 'utf8').slice(-1500);
  } catch {
    return '';
  }
}

/** Resolves once the child process has exited. */
export const exited = (c: ChildProcess) => new Promise<void>((res) => (c.exitCode !== null || c.signalCode !== null ? res() : c.once('exit', () => res())));

/**
 * Starts one QEMU for `def` with the command line Ferry builds (paused;
 * `-incoming defer` for a destination) inside network namespace `ns`, its
 * output in `qemuLog`, and connects to its QMP socket.
 */
export async function launchRawQemu(o: { def: DomainDef; ns: string | undefined; dir: string; qmpPath: string; serialLog: string; qemuLog: string; incoming: boolean }): Promise<{ child: ChildProcess; qmp: QmpClient }> {
  const cmd = buildQemuCommand(o.def, {
    accel: 'tcg',
    qmpSocketPath: o.qmpPath,
    serialLogPath: o.serialLog,
    paused: true,
    runDir: o.dir,
    ...(o.incoming ? { incoming: 'defer' } : {}),
  });
  const { file, args } = inNetns(o.ns, [cmd.binary, ...cmd.args]);
  const fd = openSync(o.qemuLog, 'w');
  const child = spawn(file, args, { stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  try {
    return { child, qmp: await connectQmp(o.qmpPath, child, o.qemuLog) };
  } catch (err) {
    if (child.pid) killIf(child.pid, 'qemu', 'SIGKILL');
    throw err;
  }
}

/** Polls `query-migrate` (100 ms, and at once on MIGRATION events) until `status` is one of `until`, failed or cancelled. */
async function waitStatus(qmp: QmpClient, until: string[], timeoutMs: number): Promise<MigrateInfo> {
  const end = Date.now() + timeoutMs;
  let wake: (() => void) | undefined;
  const onEvent = (ev: QmpEvent) => {
    if (ev.event === 'MIGRATION') wake?.();
  };
  qmp.on('event', onEvent);
  try {
    for (;;) {
      const info = await qmp.execute<MigrateInfo>('query-migrate', undefined, { timeoutMs: 10_000 });
      if (info.status && until.includes(info.status)) return info;
      if (info.status === 'failed' || info.status === 'cancelled') throw new Error(`migration ${info.status}: ${info['error-desc'] ?? ''}`);
      if (Date.now() >= end) return info;
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 100);
      });
    }
  } finally {
    qmp.off('event', onEvent);
  }
}

/** Runs one raw migration; throws on an error, returns `finished: false` when it was cancelled at the cap. */
export async function rawMigrate(m: RawMigration): Promise<RawOutcome> {
  const srcSerial = join(m.dir, `${m.name}-src.serial.log`);
  const dstSerial = join(m.dir, `${m.name}-dst.serial.log`);
  const children: ChildProcess[] = [];
  const qmps: QmpClient[] = [];
  const unregister = onCleanup(`raw QEMUs of ${m.name}`, () => {
    for (const c of children) if (c.pid) killIf(c.pid, 'qemu', 'SIGKILL');
  });
  const launch = async (host: RawHost, side: 'src' | 'dst') => {
    const q = await launchRawQemu({
      def: m.def,
      ns: host.ns,
      dir: m.dir,
      qmpPath: join(m.dir, `${m.name}-${side}.qmp`),
      serialLog: side === 'src' ? srcSerial : dstSerial,
      qemuLog: join(m.dir, `${m.name}-${side}.qemu.log`),
      incoming: side === 'dst',
    });
    children.push(q.child);
    qmps.push(q.qmp);
    return q;
  };
  const r = m.recipe;
  const tune = async (q: QmpClient, side: 'src' | 'dst') => {
    const caps = ['events', ...(r.caps ?? [])].map((capability) => ({ capability, state: true }));
    await q.execute('migrate-set-capabilities', { capabilities: caps });
    const params: Record<string, unknown> = { ...(r.params ?? {}) };
    if (side === 'src') params['max-bandwidth'] = UNLIMITED_BANDWIDTH_BYTES;
    if (r.tlsDir) {
      await q.execute('object-add', { 'qom-type': 'tls-creds-x509', id: 'rawtls', dir: r.tlsDir, endpoint: side === 'src' ? 'client' : 'server', 'verify-peer': true });
      params['tls-creds'] = 'rawtls';
      if (side === 'src') params['tls-hostname'] = m.dst.address;
    }
    if (Object.keys(params).length > 0) await q.execute('migrate-set-parameters', params);
  };
  try {
    const src = await launch(m.src, 'src');
    await src.qmp.execute('cont');
    await m.warm(srcSerial);

    const t0 = now();
    const dst = await launch(m.dst, 'dst');
    const tDstUp = now();
    await tune(dst.qmp, 'dst');
    await dst.qmp.execute('migrate-incoming', { uri: `tcp:${m.dst.address}:${m.port}` });
    await tune(src.qmp, 'src');
    let tStop: number | undefined;
    let passTwo = false;
    let postcopyRequested = false;
    src.qmp.on('event', (ev) => {
      if (ev.event === 'STOP' && tStop === undefined) tStop = now();
      if (ev.event === 'MIGRATION_PASS' && Number((ev.data as { pass?: number } | undefined)?.pass) >= 2) passTwo = true;
    });
    m.onStreamStart?.(src.child.pid, dst.child.pid);
    const tMigrate = now();
    await src.qmp.execute('migrate', { uri: `tcp:${m.dst.address}:${m.port}` });
    if (r.postcopyAfterFirstPass) {
      // As virsh does on the migration-iteration event: switch once the second pass begins.
      const end = Date.now() + m.capMs;
      while (!passTwo && Date.now() < end) {
        const st = await src.qmp.execute<MigrateInfo>('query-migrate');
        if (st.status === 'completed' || st.status === 'failed') break;
        await sleep(20);
      }
      if (passTwo) {
        await src.qmp.execute('migrate-start-postcopy');
        postcopyRequested = true;
      }
    }
    const left = () => Math.max(0, m.capMs - (now() - tMigrate));
    let info = await waitStatus(src.qmp, postcopyRequested ? ['postcopy-active', 'completed'] : ['completed'], left());
    const tCompleted = now();
    if (info.status !== 'completed' && info.status !== 'postcopy-active') {
      // Cap reached: cancel, the guest goes on on the source.
      await src.qmp.execute('migrate_cancel').catch(() => undefined);
      await waitStatus(src.qmp, ['cancelled'], 30_000).catch(() => undefined);
      const st = await src.qmp.execute<{ running?: boolean }>('query-status');
      if (!st.running) await src.qmp.execute('cont');
      m.onStreamEnd?.();
      return { srcSerial, dstSerial, wallMs: now() - t0, finished: false };
    }
    if (info.status === 'postcopy-active') {
      // The destination runs the guest from here on; the rest of memory follows on demand.
      await waitStatus(dst.qmp, ['postcopy-active', 'completed'], 30_000);
    } else {
      await waitStatus(dst.qmp, ['completed'], 30_000);
    }
    await dst.qmp.execute('cont');
    const tCont = now();
    if (info.status === 'postcopy-active') info = await waitStatus(src.qmp, ['completed'], 120_000);
    m.onStreamEnd?.();
    // QEMU 7.2 may say `completed` before its final figures are computed: ask again.
    for (let i = 0; i < 20 && !info['total-time']; i++) {
      await sleep(50);
      info = await src.qmp.execute<MigrateInfo>('query-migrate');
    }
    const tQuit = now();
    await src.qmp.execute('quit').catch(() => undefined);
    await exited(src.child);
    const tEnd = now();
    const out: RawOutcome = { srcSerial, dstSerial, wallMs: tEnd - t0, finished: true };
    out.steps = { dstStart: tDstUp - t0, setUp: tMigrate - tDstUp, stream: tCompleted - tMigrate, cont: tCont - tCompleted, quit: tEnd - tQuit };
    if (tStop !== undefined) out.downtimeMs = tCont - tStop;
    if (info.downtime !== undefined) out.qemuDowntimeMs = info.downtime;
    if (info['setup-time'] !== undefined) out.setupMs = info['setup-time'];
    if (info['total-time'] !== undefined) out.totalMs = info['total-time'];
    if (info.ram?.transferred !== undefined) out.bytes = info.ram.transferred;
    if (info.ram?.mbps !== undefined) out.throughputBps = (info.ram.mbps * 1e6) / 8;
    if (info.ram?.['dirty-sync-count'] !== undefined) out.iterations = info.ram['dirty-sync-count'];
    return out;
  } finally {
    for (const q of qmps) q.close();
    // The destination keeps running for the guest check; the caller calls the returned stop.
    pendingStops.set(m.name, async () => {
      for (const c of children) if (c.pid) killIf(c.pid, 'qemu', 'SIGKILL');
      await Promise.all(children.map(exited));
      unregister();
    });
  }
}

const pendingStops = new Map<string, () => Promise<void>>();

/** Kills whatever QEMU of raw migration `name` still runs (after the guest check). */
export async function rawCleanup(name: string): Promise<void> {
  const stop = pendingStops.get(name);
  pendingStops.delete(name);
  await stop?.();
}
