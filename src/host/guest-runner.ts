/**
 * Runs QEMU for domains: launches it from a definition, re-attaches to it
 * after a daemon restart, keeps the status file current, and turns QMP
 * events and process exits into domain state changes and lifecycle events.
 */
import { mkdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DomainDocument, withLiveDevices } from '../domain/index.js';
import { STATE_REASONS, status as mkStatus, type DomainStatus } from '../domain/lifecycle-state.js';
import { FerryError } from '../errors/index.js';
import {
  tetherToDaemon,
  QemuProcess,
  isProcessAlive,
  buildQemuCommand,
  resolveQemuBinary,
  checkGuestCpu,
  channelSocketPath,
  cpuModeNote,
  readAllStatusFiles,
  removeStatusFile,
  statusFilePath,
  writeStatusFile,
  type ExitReason,
  type QemuStatus,
  type QmpEvent,
} from '../qemu/index.js';
import type { EventBus } from './events.js';
import { checkBridges, createTaps, removeTaps, tapsOf } from './taps.js';
import type { DomainRuntime, HostedDomain } from './hosted-domain.js';

/** Where a host keeps its files. */
export interface HostPaths {
  stateDir: string;
  runDir: string;
  /** Serial and QEMU logs, kept across restarts: STATE_DIR/logs. */
  logDir: string;
  /** QMP sockets and status files: RUN_DIR/qemu. */
  qemuDir: string;
}

/** Derives {@link HostPaths} from the two directories ferryd is given. */
export function hostPaths(stateDir: string, runDir: string): HostPaths {
  return { stateDir, runDir, logDir: join(stateDir, 'logs'), qemuDir: join(runDir, 'qemu') };
}

/** A QEMU found running at start-up, with what its status file says. */
export interface ReattachedGuest {
  status: QemuStatus;
  liveDoc: DomainDocument;
  qemu: QemuProcess;
  domainStatus: DomainStatus;
  id: number;
}

/** Callback when a domain's QEMU has ended; the host decides what happens to the domain. */
export type ExitHandler = (d: HostedDomain, runtime: DomainRuntime, reason: ExitReason) => void;

/** Launches and watches QEMU processes. */
export class GuestRunner {
  private nextId = 1;

  constructor(
    private readonly paths: HostPaths,
    private readonly accel: 'kvm' | 'tcg',
    private readonly events: EventBus,
    private readonly log: (msg: string) => void,
  ) {}

  /** Creates the directories. */
  async init(): Promise<void> {
    await mkdir(this.paths.logDir, { recursive: true, mode: 0o700 });
    await mkdir(this.paths.qemuDir, { recursive: true, mode: 0o700 });
  }

  /** ferryd's copy of a domain's first serial port. */
  serialLogPath(name: string): string {
    return join(this.paths.logDir, `${name}.serial.log`);
  }

  /** QEMU's own stdout/stderr log of a domain. */
  qemuLogPath(name: string): string {
    return join(this.paths.logDir, `${name}.qemu.log`);
  }

  /**
   * Starts QEMU for `d` from `liveDoc` and returns its runtime. The serial
   * log starts empty for a fresh boot. The caller holds the domain's job lock.
   */
  async launch(d: HostedDomain, liveDoc: DomainDocument, opts: { paused: boolean; incoming?: boolean }): Promise<DomainRuntime> {
    const def = liveDoc.def;
    // Before anything changes: a CPU this host cannot provide is refused with libvirt's error, not found out from QEMU's log.
    await checkGuestCpu(def, this.accel, resolveQemuBinary(def.emulator));
    // Likewise a bridge this host lacks: refused with libvirt's error before a tap exists.
    await checkBridges(def);
    const note = cpuModeNote(def, this.accel);
    if (note !== undefined) this.log(`domain '${def.name}': ${note}`);
    // From here on the guest has taps (bridge and ethernet interfaces), named in the live definition.
    const net = await createTaps(liveDoc, this.log);
    try {
      return await this.launchWithTaps(d, net.doc, opts);
    } catch (err) {
      await removeTaps(net.taps, this.log);
      throw err;
    }
  }

  private async launchWithTaps(d: HostedDomain, liveDoc: DomainDocument, opts: { paused: boolean; incoming?: boolean }): Promise<DomainRuntime> {
    const def = liveDoc.def;
    const serialLog = this.serialLogPath(def.name);
    await writeFile(serialLog, '', { flag: 'a', mode: 0o600 });
    await truncate(serialLog, 0);
    const qmpSocketPath = join(this.paths.qemuDir, `${def.uuid}.qmp`);
    const cmd = buildQemuCommand(def, {
      accel: this.accel,
      qmpSocketPath,
      serialLogPath: serialLog,
      paused: true,
      runDir: this.paths.qemuDir,
      // An incoming migration listens only once the migration layer has tuned QEMU and chosen the port.
      ...(opts.incoming ? { incoming: 'defer' } : {}),
    });
    const qemu = await QemuProcess.start({ binary: cmd.binary, args: cmd.args, qmpSocketPath, logPath: this.qemuLogPath(def.name), name: def.name });
    const runtime: DomainRuntime = {
      id: this.nextId++,
      liveDoc,
      qemu,
      accel: this.accel,
      startedAt: new Date().toISOString(),
      stopRequested: null,
      // Only this ferryd can ever hand an incoming QEMU the guest: if it dies first, the QEMU goes too.
      ...(opts.incoming ? { incoming: true, tether: tetherToDaemon(qemu.pid) } : {}),
    };
    try {
      // What this host chose for the guest (VNC port, channel sockets) shows in its live XML, as in libvirt's.
      runtime.liveDoc = await this.withLiveDevices(qemu, liveDoc);
      // Started with -S so that the status file exists before the guest runs a single instruction.
      const initial = opts.incoming ? mkStatus('paused', 'migrating') : opts.paused ? mkStatus('paused', 'user') : mkStatus('running', 'booted');
      await this.writeStatus(d, runtime, initial, qemu.startTime);
      if (!opts.paused && !opts.incoming) await qemu.qmp.execute('cont');
    } catch (err) {
      await qemu.kill({ graceful: false }).catch(() => undefined);
      runtime.tether?.release();
      await removeStatusFile(statusFilePath(this.paths.qemuDir, def.uuid)).catch(() => undefined);
      throw err;
    }
    return runtime;
  }

  /**
   * Finds QEMUs left running by an earlier ferryd and re-attaches to them.
   * Status files of QEMUs that are gone are removed and reported via `gone`.
   */
  async reattachAll(reportGone: (status: QemuStatus) => void): Promise<ReattachedGuest[]> {
    const found: ReattachedGuest[] = [];
    // A QEMU that is gone (or stopped here) leaves its taps behind: remove those its live definition names.
    const gone = (st: QemuStatus): void => {
      void this.removeTapsOf(st);
      reportGone(st);
    };
    for (const entry of await readAllStatusFiles(this.paths.qemuDir)) {
      if ('error' in entry) {
        this.log(`ignoring status file ${entry.path}: ${entry.error.message}`);
        continue;
      }
      const st = entry.status;
      let qemu: QemuProcess;
      try {
        qemu = await QemuProcess.attach(st);
      } catch (err) {
        if (err instanceof FerryError && err.code === 'no_domain') {
          this.log(`QEMU of '${st.name}' (pid ${st.pid}) is gone: ${err.message}`);
        } else {
          // Alive but unmanageable: leaving it would let a later start run the guest twice.
          this.log(`QEMU of '${st.name}' (pid ${st.pid}) runs but cannot be re-attached (${(err as Error).message}); killing it so the guest cannot end up running twice`);
          if (await isProcessAlive(st.pid, st.pidStartTime)) {
            try {
              process.kill(st.pid, 'SIGKILL');
            } catch {
              // Gone meanwhile.
            }
          }
        }
        await removeStatusFile(entry.path).catch(() => undefined);
        gone(st);
        continue;
      }
      try {
        const liveDoc = DomainDocument.parse(st.liveXml ?? '');
        const id = typeof st.extra?.id === 'number' ? st.extra.id : this.nextId;
        this.nextId = Math.max(this.nextId, id + 1);
        const domainStatus = await this.currentStatus(qemu, st);
        if (st.extra?.incoming === true && domainStatus.state === 'paused' && domainStatus.reason !== 'post-copy' && !(await inPostcopy(qemu))) {
          // An incoming migration whose finish never resumed the guest: the source still holds the
          // guest (or takes it back), so this copy must never run. Remove it.
          this.log(`'${st.name}' (pid ${st.pid}) was an unfinished incoming migration; stopping it`);
          await qemu.kill({ graceful: false }).catch(() => undefined);
          await removeStatusFile(entry.path).catch(() => undefined);
          gone(st);
          continue;
        }
        found.push({ status: st, liveDoc, qemu, id, domainStatus });
      } catch (err) {
        // Without a readable definition the guest cannot be managed, and leaving it would risk a second copy.
        this.log(`cannot manage re-attached QEMU of '${st.name}': ${(err as Error).message}; stopping it`);
        await qemu.kill({ graceful: false }).catch(() => undefined);
        await removeStatusFile(entry.path).catch(() => undefined);
        gone(st);
      }
    }
    return found;
  }

  /**
   * Follows QMP events of a runtime so that pauses and resumes not asked
   * through ferryd (an I/O error, a monitor command) show in the state.
   */
  watch(d: HostedDomain, runtime: DomainRuntime, onExit: ExitHandler): void {
    let ioErrorSeen = false;
    runtime.qemu.qmp.on('event', (ev: QmpEvent) => {
      if (d.runtime !== runtime) return;
      switch (ev.event) {
        case 'BLOCK_IO_ERROR':
          if ((ev.data as { action?: string } | undefined)?.action === 'stop') ioErrorSeen = true;
          break;
        case 'STOP':
          if (d.status.state !== 'paused') {
            const reason = ioErrorSeen ? 'I/O error' : runtime.pendingPause ?? 'unknown';
            void this.transition(d, runtime, mkStatus('paused', reason), 'suspended', reason === 'I/O error' ? 'ioerror' : reason === 'migrating' ? 'migrated' : 'paused');
          }
          runtime.pendingPause = undefined;
          break;
        case 'RESUME':
          ioErrorSeen = false;
          if (d.status.state !== 'running') void this.transition(d, runtime, mkStatus('running', 'unpaused'), 'resumed', 'unpaused');
          break;
        case 'SHUTDOWN':
          // Only a shutdown the guest asked for is a lifecycle 'shutdown'; ferryd's own quit (destroy, migration) is not.
          if ((ev.data as { guest?: boolean } | undefined)?.guest === true) this.events.lifecycle(d, 'shutdown', 'finished');
          break;
      }
    });
    void runtime.qemu.exited.then((reason) => {
      // The pid is free now: the tether must not kill whatever takes it later.
      runtime.tether?.release();
      // Persistent taps outlive QEMU: whatever ended it, its taps go with it.
      void removeTaps(tapsOf(runtime.liveDoc.def), this.log);
      if (d.runtime === runtime) onExit(d, runtime, reason);
    });
  }

  /**
   * Sets a new state, records it in the status file and publishes the
   * event. Callers that acknowledge the change to a client await the
   * returned promise first, so that an acknowledged state survives a crash.
   */
  transition(d: HostedDomain, runtime: DomainRuntime, next: DomainStatus, kind: 'suspended' | 'resumed', detail: string): Promise<void> {
    d.setStatus(next);
    this.events.lifecycle(d, kind, detail);
    return this.writeStatus(d, runtime, next, runtime.qemu.startTime).catch((err) => this.log(`cannot update status file of '${d.name}': ${(err as Error).message}`));
  }

  /** Removes the taps named in a status file's live definition (of a QEMU that is gone). */
  private async removeTapsOf(st: QemuStatus): Promise<void> {
    let taps: string[];
    try {
      taps = tapsOf(DomainDocument.parse(st.liveXml ?? '').def);
    } catch {
      return;
    }
    await removeTaps(taps, this.log);
  }

  /**
   * `liveDoc` showing the VNC port QEMU took (asked with `query-vnc`: an
   * autoport server takes the first free port itself) and the channel
   * sockets under this host's run directory (see qemu/peripheral-args.ts).
   */
  private async withLiveDevices(qemu: QemuProcess, liveDoc: DomainDocument): Promise<DomainDocument> {
    const def = liveDoc.def;
    const channelPaths = (def.channels ?? []).map((_, i) => channelSocketPath(this.paths.qemuDir, def.uuid, i));
    let vncPort: number | undefined;
    if (def.graphics !== undefined) {
      const vnc = await qemu.qmp.execute<{ enabled: boolean; service?: string }>('query-vnc');
      vncPort = vnc.enabled && vnc.service !== undefined ? Number(vnc.service) : NaN;
      if (!Number.isInteger(vncPort)) throw new FerryError('internal_error', `QEMU of '${def.name}' reports no VNC port (query-vnc: ${JSON.stringify(vnc)})`);
    }
    return withLiveDevices(liveDoc, { vncPort, channelPaths });
  }

  /** Removes the status file of a domain whose QEMU ended. */
  async forget(uuid: string): Promise<void> {
    await removeStatusFile(statusFilePath(this.paths.qemuDir, uuid)).catch(() => undefined);
  }

  /** Writes the status file of an active domain. */
  async writeStatus(d: HostedDomain, runtime: DomainRuntime, st: DomainStatus, pidStartTime: number): Promise<void> {
    const def = runtime.liveDoc.def;
    await writeStatusFile(statusFilePath(this.paths.qemuDir, def.uuid), {
      version: 1,
      name: def.name,
      uuid: def.uuid,
      pid: runtime.qemu.pid,
      pidStartTime,
      qmpSocket: join(this.paths.qemuDir, `${def.uuid}.qmp`),
      serialLog: this.serialLogPath(def.name),
      stderrLog: this.qemuLogPath(def.name),
      accel: runtime.accel,
      startedAt: runtime.startedAt,
      liveXml: runtime.liveDoc.toXml(),
      state: `${st.state}:${st.reason}`,
      extra: { id: runtime.id, persistent: d.persistent, incoming: runtime.incoming === true },
    });
  }

  /** The state of a re-attached QEMU: QEMU's run state, refined by the reason recorded before the restart. */
  private async currentStatus(qemu: QemuProcess, st: QemuStatus): Promise<DomainStatus> {
    const q = await qemu.qmp.execute<{ running: boolean; status: string }>('query-status');
    // The recorded reason stands when QEMU agrees with the recorded state: a running guest's, and a
    // paused one's that no restart changes (the user's pause, a post-copy's). A pause for a migration
    // that the restart interrupted is the recovery's to settle: 'unknown' until then.
    const [recordedState, recordedReason = ''] = (st.state ?? '').split(':', 2);
    if (q.running) return recordedState === 'running' && (STATE_REASONS.running as readonly string[]).includes(recordedReason) ? ({ state: 'running', reason: recordedReason } as DomainStatus) : mkStatus('running', 'unpaused');
    if (q.status === 'io-error') return mkStatus('paused', 'I/O error');
    return recordedState === 'paused' && ['user', 'post-copy', 'post-copy failed'].includes(recordedReason) ? ({ state: 'paused', reason: recordedReason } as DomainStatus) : mkStatus('paused', 'unknown');
  }
}

/**
 * Whether a QEMU's migration has entered the post-copy phase: an incoming
 * one then holds the guest's device state (the source stopped for good), so
 * it is kept even before it was handed over, to be resumed.
 */
async function inPostcopy(qemu: QemuProcess): Promise<boolean> {
  const m = await qemu.qmp.execute<{ status?: string }>('query-migrate').catch(() => ({ status: 'unknown' }));
  return m.status === 'postcopy-active' || m.status === 'postcopy-paused' || m.status === 'postcopy-recover';
}

/** Sentence for an exit, for logs and errors. */
export function describeExit(r: ExitReason): string {
  switch (r.kind) {
    case 'shutdown':
      return r.guest ? 'the guest shut down' : 'QEMU was asked to quit';
    case 'destroyed':
      return 'destroyed';
    case 'crashed':
      return `QEMU ended unexpectedly${r.signal ? ` (signal ${r.signal})` : r.code !== null ? ` (exit code ${r.code})` : ''}`;
    case 'failed-to-start':
      return `QEMU failed to start: ${r.stderrTail}`;
  }
}

/** Guard for code paths that need an active domain. */
export function requireRuntime(d: HostedDomain): DomainRuntime {
  if (!d.runtime || !d.active) throw new FerryError('operation_invalid', `domain '${d.name}' is not running`);
  return d.runtime;
}
