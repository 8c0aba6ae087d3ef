/**
 * The destination's phases: prepare (start QEMU waiting for the stream) and
 * finish (wait for the stream to complete, persist if asked, resume unless
 * PAUSED). Until finish resumes the guest, killing the destination QEMU is
 * always safe: the source still holds the only runnable copy. That is why
 * every failure here, and a controlling client that goes away before
 * finish, ends in the same clean-up.
 */
import { randomUUID } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-file.js';
import { DomainDocument } from '../domain/index.js';
import { FerryError, toFerryError } from '../errors/index.js';
import type { Host } from '../host/host.js';
import type { DomainSummary } from '../host/views.js';
import { listenForProbe } from './bandwidth-probe.js';
import type { HostedDomain } from '../host/hosted-domain.js';
import { checkBridges } from '../host/taps.js';
import type { AsyncJob } from '../host/job-lock.js';
import { advertisedHost, hasFlag, qemuInetUri, qemuUnixUri, tunnelUri, unixPath, uriHost, uriPort, uriScheme, type MigrationParams } from '../flags/index.js';
import { checkGuestCpu, hostCpuFeatures, hostPassthroughRefusal, probeCpuCapabilities, resolveQemuBinary, type QmpClient, type QmpEvent } from '../qemu/index.js';
import type { DomainDef } from '../domain/index.js';
import { admitBetweenHosts } from './admission.js';
import { raiseMemlock } from './memlock.js';
import { migrationSetup } from './tuning.js';
import { addTlsCreds } from './qemu-tls.js';
import { statsFromQemu, type JobStats } from '../host/job-stats.js';
import { requireKnownCookie, type MigrationCookie, type FinishArgs, type FinishResult, type IncomingJobState, type PrepareArgs, type PrepareResult } from './phase-messages.js';
import { DEFAULT_MIGRATION_PORTS, PortReservations } from './ports.js';
import { followMigration, pausePostcopy, prepareQemuForMigration, waitForMigrationStatus } from './qemu-migration.js';
import { checkSocketPath, prepareTargetImages, removeImages, startNbdServer, stopNbdServer } from './storage-target.js';
import type { NbdTarget, StorageCookie } from './phase-messages.js';
import { holdPoint } from './test-hold.js';
import { MigrationSlots, defaultMigrationLimit, type SlotTicket } from './slots.js';

/** One incoming migration on the destination. */
interface IncomingJob {
  id: string;
  domain: HostedDomain;
  /** The domain existed (inactive, persistent) before prepare and must stay afterwards. */
  existedBefore: boolean;
  flags: number;
  persistentXml?: string;
  asyncJob: AsyncJob;
  state: IncomingJobState;
  startedAt: number;
  port: number;
  stats?: JobStats;
  downtimeMs?: number;
  /** From the cookie: whether the guest ran on the source when the job began. */
  wasRunning: boolean;
  /** TUNNELLED: the unix socket the destination QEMU listens on. */
  tunnelPath?: string;
  /** Storage copy: images created for this job (deleted if it fails). */
  createdImages: string[];
  /** Storage copy: the NBD server is running in the destination QEMU. */
  nbdRunning?: boolean;
  /** Storage copy over a tunnel: the NBD server's unix socket. */
  nbdTunnelPath?: string;
  nbdPort?: number;
  /** This job's incoming migration slot. */
  ticket?: SlotTicket;
  /** finish is resuming the guest here: from this moment the job can no longer be aborted. */
  resuming?: boolean;
  /** POSTCOPY_RESUME: the guest already runs here; the job only reconnects its paused post-copy stream. */
  resume?: boolean;
  /** Stops watching the incoming QEMU for the switch to post-copy. */
  unwatchSwitch?: () => void;
}

/** The destination side of migrations on one host. */
export class IncomingMigrations {
  private readonly jobs = new Map<string, IncomingJob>();
  /** Ports of the migration range held by this host's incoming jobs. */
  private readonly portsInUse = new PortReservations(() => this.ports);

  /** At most this many incoming migrations run at once; the others wait in prepare. */
  readonly slots: MigrationSlots;

  constructor(
    private readonly host: Host,
    private readonly log: (msg: string) => void,
    private readonly qemuTlsDir?: string,
  ) {
    this.slots = new MigrationSlots('incoming', host.config.migrationLimits?.incoming ?? defaultMigrationLimit(), log);
  }

  /** Ports for incoming memory streams and disk copies. */
  private get ports(): { min: number; max: number } {
    return this.host.config.migrationPorts ?? DEFAULT_MIGRATION_PORTS;
  }

  /** prepare: start the destination QEMU with `-incoming defer` and open the stream. */
  async prepare(args: PrepareArgs): Promise<PrepareResult> {
    // Before reading anything else from the cookie: another format may mean other things.
    requireKnownCookie(args.cookie);
    const me = this.host.config.identity;
    // The destination checks the request too, with both hosts known: it may come from a peer that checks less.
    const request = admitBetweenHosts(args, args.cookie.source, me);
    if (hasFlag(request.flags, 'POSTCOPY_RESUME')) return this.prepareResume(args, request.params);
    // A host in maintenance takes no new guests (a post-copy resume above only reconnects one already here).
    this.host.maintenance.refuse({ kind: 'incoming', domain: args.cookie.domain.name });
    let doc = DomainDocument.parse(args.xml);
    const dname = request.params.destination_name;
    if (typeof dname === 'string' && dname !== doc.def.name) doc = doc.withName(dname);
    if (doc.def.uuid !== args.cookie.domain.uuid) {
      throw new FerryError('invalid_arg', `the destination XML has uuid ${doc.def.uuid}, but the migrating domain is ${args.cookie.domain.uuid}`);
    }
    // Before this host changes anything: can it give the guest its CPU?
    if (!hasFlag(args.flags, 'OFFLINE')) await this.checkGuestCpuHere(doc.def, args.cookie, request.flags);
    if (!hasFlag(args.flags, 'OFFLINE')) await checkBridges(doc.def); // and every bridge the guest joins (libvirt's error when one is missing)
    const persistentXml = args.cookie.persistentXml !== undefined && typeof dname === 'string' ? DomainDocument.parse(args.cookie.persistentXml).withName(dname).toXml() : args.cookie.persistentXml;
    if (persistentXml !== undefined) DomainDocument.parse(persistentXml);

    const { domain: d, existedBefore } = this.host.migrationStates.adoptIncoming(doc.def.uuid, doc.def.name);
    const asyncJob = await d.jobs.beginAsync({ kind: 'migration-in', allowed: new Set(['destroy', 'migration']), reason: 'an incoming migration owns the domain until it finishes' });
    if (d.active || d.runtime) {
      // Started while this job waited for the domain's modify job to end.
      d.jobs.endAsync(asyncJob);
      throw new FerryError('operation_invalid', `domain '${d.name}' is already active on ${me.hostName}`);
    }
    const job: IncomingJob = {
      id: randomUUID(),
      domain: d,
      existedBefore,
      flags: args.flags,
      ...(persistentXml !== undefined ? { persistentXml } : {}),
      asyncJob,
      state: 'prepared',
      startedAt: Date.now(),
      port: 0,
      wasRunning: args.cookie.wasRunning !== false,
      createdImages: [],
    };
    this.jobs.set(job.id, job);
    try {
      if (hasFlag(args.flags, 'OFFLINE')) {
        return { jobId: job.id, migrateUri: '', destination: me, domainName: d.name };
      }
      job.ticket = this.slots.claim();
      if (job.ticket.position() > 0) this.log(`incoming migration of '${d.name}' queued at position ${job.ticket.position()}: ${this.slots.limit} incoming migrations already run`);
      await job.ticket.granted;
      if (job.state !== 'prepared') throw new FerryError('operation_aborted', `incoming migration of '${d.name}' was aborted while it waited for a slot`);
      const copies = hasFlag(request.flags, 'NON_SHARED_DISK') || hasFlag(request.flags, 'NON_SHARED_INC');
      const storage = copies && args.cookie.storage ? checkStorageCookie(args.cookie.storage) : undefined;
      if (storage) {
        const prepared = await prepareTargetImages(doc, storage, this.log);
        job.createdImages = prepared.created;
        doc = prepared.doc;
        if (prepared.flattened.length > 0 && job.persistentXml !== undefined) {
          let pdoc = DomainDocument.parse(job.persistentXml);
          for (const t of prepared.flattened) {
            const path = pdoc.def.disks.find((x) => x.targetDev === t)?.sourcePath;
            if (path !== undefined) pdoc = pdoc.withDiskSource(t, path, { removeBackingStore: true });
          }
          job.persistentXml = pdoc.toXml();
        }
      }
      const launchDoc = doc;
      // Written down for a restarted daemon that must take over a guest switched to post-copy (see takeOverByDomain).
      if (hasFlag(request.flags, 'PERSIST_DEST') && job.persistentXml !== undefined) await writeFileAtomic(this.pendingPersistPath(d.uuid), job.persistentXml);
      const runtime = await d.jobs.run('migration', () => this.host.migrationStates.startIncoming(d, launchDoc));
      if (hasFlag(request.flags, 'POSTCOPY')) {
        // From the switch on, this QEMU holds the guest's device state: it must outlive this daemon at once, not from finish.
        const onEvent = (ev: QmpEvent) => {
          if (ev.event === 'MIGRATION' && (ev.data as { status?: string } | undefined)?.status === 'postcopy-active' && runtime.incoming) {
            void this.host.migrationStates.keepSwitchedIncoming(d, runtime).catch((err: Error) => this.log(`cannot record the switch to post-copy of '${d.name}': ${err.message}`));
          }
        };
        runtime.qemu.qmp.on('event', onEvent);
        job.unwatchSwitch = () => runtime.qemu.qmp.off('event', onEvent);
      }
      const tls = hasFlag(request.flags, 'TLS') ? { tlsCredsId: await addTlsCreds(runtime.qemu.qmp, this.qemuTlsDir, 'server') } : {};
      await prepareQemuForMigration(runtime.qemu.qmp, migrationSetup(request.flags, request.params, 'destination', tls));
      const nbd = storage ? await this.startNbd(job, runtime.qemu.qmp, request, storage.disks.map((x) => x.target), tls.tlsCredsId) : undefined;
      const withNbd = nbd ? { nbd } : {};
      if (hasFlag(request.flags, 'TUNNELLED')) {
        // The stream comes through this daemon: QEMU listens on a unix socket only ferryd can reach.
        job.tunnelPath = join(this.host.paths.qemuDir, `${job.id}.tunnel-in.sock`);
        await runtime.qemu.qmp.execute('migrate-incoming', { uri: qemuUnixUri(job.tunnelPath) });
        this.log(`incoming tunnelled migration of '${d.name}' (job ${job.id}) waiting on ${job.tunnelPath}`);
        await holdPoint(this.host.config.runDir, 'dest-prepared', this.log);
        return { jobId: job.id, migrateUri: tunnelUri(job.id), destination: me, domainName: d.name, ...withNbd };
      }
      if (request.params.migrate_uri !== undefined && uriScheme(request.params.migrate_uri) === 'unix') {
        // A socket path both QEMUs can reach (a shared directory, or hosts that share a machine).
        const path = unixPath(request.params.migrate_uri)!;
        await checkSocketPath(path);
        await runtime.qemu.qmp.execute('migrate-incoming', { uri: qemuUnixUri(path) });
        this.log(`incoming migration of '${d.name}' (job ${job.id}) listening on unix:${path}`);
        await holdPoint(this.host.config.runDir, 'dest-prepared', this.log);
        return { jobId: job.id, migrateUri: qemuUnixUri(path), destination: me, domainName: d.name, ...withNbd };
      }
      if (hasFlag(request.flags, 'RDMA_PIN_ALL')) await raiseMemlock(runtime.qemu.pid, doc.def.hardLimitKiB ?? doc.def.memoryKiB, this.log);
      // The stream's transport follows the source's migrate_uri: RDMA needs the listener on RDMA too.
      const transport = request.params.migrate_uri !== undefined && uriScheme(request.params.migrate_uri) === 'rdma' ? 'rdma' : 'tcp';
      const listen = request.params.listen_address ?? (transport === 'rdma' ? (uriHost(request.params.migrate_uri!) ?? '0.0.0.0') : '0.0.0.0');
      // A port in migrate_uri is where the source will connect (a firewall rule, say): listen exactly there.
      const asked = request.params.migrate_uri !== undefined ? (uriPort(request.params.migrate_uri) ?? 0) : 0;
      job.port = await this.portsInUse.listen(runtime.qemu.qmp, listen, transport, asked || undefined);
      this.log(`incoming migration of '${d.name}' (job ${job.id}) listening on ${transport}:${listen}:${job.port}`);
      await holdPoint(this.host.config.runDir, 'dest-prepared', this.log);
      return { jobId: job.id, migrateUri: qemuInetUri(transport, advertisedHost(listen), job.port), destination: me, domainName: d.name, ...withNbd };
    } catch (err) {
      await this.abort(job.id, `prepare failed: ${toFerryError(err).message}`);
      throw err;
    }
  }

  /** finish: complete (or, when `cancelled`, clean up) an incoming migration. */
  async finish(args: FinishArgs): Promise<FinishResult> {
    const job = this.get(args.jobId);
    if (args.cancelled) {
      await this.abort(job.id, 'the source reported failure');
      throw new FerryError('operation_aborted', `incoming migration of '${job.domain.name}' was cancelled by the source`);
    }
    if (job.state !== 'prepared') throw new FerryError('operation_invalid', `incoming migration job ${job.id} is ${job.state}, not prepared`);
    job.state = 'finishing';
    const d = job.domain;
    let postcopy = false;
    try {
      const offline = hasFlag(job.flags, 'OFFLINE');
      if (!offline) {
        const rt = d.runtime;
        if (!rt) throw new FerryError('operation_failed', `the destination QEMU of '${d.name}' is gone`);
        if (job.resume) return await this.finishResume(job, rt);
        const end = await followMigration(rt.qemu.qmp, { pollMs: 200, stopAtPostcopy: hasFlag(job.flags, 'POSTCOPY') });
        if (end.status === 'failed' || end.status === 'cancelled') throw new FerryError('operation_failed', `incoming migration ${end.status}: ${end.error}`);
        // (A post-copy already paused still switched: the guest is handed over and waits for a resume.)
        postcopy = end.status === 'postcopy-active' || end.status === 'postcopy-paused';
        if (postcopy && d.status.reason !== 'post-copy') await this.host.migrationStates.keepSwitchedIncoming(d, rt);
        await holdPoint(this.host.config.runDir, 'dest-finishing', this.log);
        if (d.runtime !== rt || rt.qemu.exitReason) throw new FerryError('operation_failed', `the destination QEMU of '${d.name}' exited before the guest could be resumed there`);
        job.stats = statsFromQemu(args.sourceStats ? {} : end.info, { operation: 'Incoming migration', elapsedMs: Date.now() - job.startedAt, type: 'Completed' });
      }
      if (hasFlag(job.flags, 'PERSIST_DEST') && job.persistentXml !== undefined) {
        await this.host.migrationStates.persistAfterMigration(d, DomainDocument.parse(job.persistentXml));
      }
      if (!offline && !d.runtime) throw new FerryError('operation_failed', `the destination QEMU of '${d.name}' exited before the guest could be resumed there`);
      if (!offline && job.nbdRunning) {
        // The source completed its disk copies before finish: nobody may write the images but the guest from now on.
        await stopNbdServer(d.runtime!.qemu.qmp);
        job.nbdRunning = false;
      }
      if (!offline) {
        const rt = d.runtime!;
        // The controlling connection may have been lost meanwhile, and the job aborted: then the source keeps the guest.
        if (stateOf(job) === 'aborted') throw new FerryError('operation_aborted', `incoming migration of '${d.name}' was aborted before the guest could be resumed here`);
        if (job.resuming) throw new FerryError('operation_invalid', `incoming migration of '${d.name}' was already taken over here`);
        job.resuming = true;
        // From here the guest is this host's: a restarted ferryd must keep it, not clean it up.
        // A guest that was paused on the source stays paused, as with PAUSED (libvirt does the same).
        const resumedAt = await this.host.migrationStates.handOver(d, rt, { paused: hasFlag(job.flags, 'PAUSED') || !job.wasRunning, postcopy });
        if (resumedAt !== undefined && args.sourceStoppedAt !== undefined) job.downtimeMs = Math.max(0, resumedAt - args.sourceStoppedAt);
        // The guest now runs here: for outcome checks the job is done, whatever the rest of a post-copy stream does.
        job.state = 'finished';
        if (postcopy) {
          // The rest of the memory follows while the guest runs; the source's confirm waits for its end. The
          // completed job then carries the source's figures, as a pre-copy finish's does.
          if (args.sourceStats) job.stats = args.sourceStats;
          this.followPostcopyRest(job, rt);
          return { ...(job.downtimeMs !== undefined ? { downtimeMs: job.downtimeMs } : {}), domainName: d.name, state: d.status.state, reason: d.status.reason, persistent: d.persistent };
        }
      }
      job.state = 'finished';
      d.completedJob = {
        ...(args.sourceStats ?? job.stats ?? { type: 'Completed', operation: 'Incoming migration', time_elapsed: Date.now() - job.startedAt }),
        operation: 'Incoming migration',
        type: 'Completed',
        ...(job.downtimeMs !== undefined ? { downtime: job.downtimeMs } : {}),
      };
      this.release(job);
      this.host.events.jobCompleted(d, d.completedJob);
      return { ...(job.downtimeMs !== undefined ? { downtimeMs: job.downtimeMs } : {}), domainName: d.name, state: d.status.state, reason: d.status.reason, persistent: d.persistent };
    } catch (err) {
      // Never kill a guest that was already handed over (resumed here): the source no longer has it.
      if (job.resume || (d.runtime && d.runtime.incoming === false)) {
        // (A resume that failed changed nothing: the guest ran here before it and still does.)
        if (job.resume) job.state = 'aborted';
        this.release(job);
        throw err;
      }
      await this.abort(job.id, `finish failed: ${toFerryError(err).message}`, true);
      throw err;
    }
  }

  /**
   * prepare of a POSTCOPY_RESUME job: the guest runs here since the switch,
   * and its QEMU waits for the rest of its memory. A QEMU still stuck on the
   * dead stream (a link that went silent sends no error) is paused first:
   * the source checked in begin that its side is paused, so nothing flows
   * (and its job that followed the stream ends).
   * Then QEMU listens for the source again (`migrate-recover`). Nothing
   * here stops the guest: a failure leaves both sides paused as they were.
   */
  private async prepareResume(args: PrepareArgs, params: MigrationParams): Promise<PrepareResult> {
    const me = this.host.config.identity;
    const uuid = args.cookie.domain.uuid;
    const d = this.host.registry.getByUuid(uuid);
    const rt = d?.runtime;
    // A copy never handed over (finish was lost after the switch) qualifies too: it is resumed here at the end.
    const handedOver = !!rt && !rt.incoming;
    if (!d || !rt || rt.qemu.exitReason || (handedOver && d.status.reason !== 'post-copy failed' && d.status.reason !== 'post-copy') || (!handedOver && !(await switchedToPostcopy(d)))) {
      throw new FerryError('operation_invalid', `there is no post-copy migration of '${args.cookie.domain.name}' to resume on ${me.hostName}${d ? ` (the domain is ${d.status.state} (${d.status.reason}))` : ''}`);
    }
    const qmp = rt.qemu.qmp;
    let status = (await qmp.execute<{ status?: string }>('query-migrate')).status ?? 'none';
    if (status === 'postcopy-active') {
      this.log(`the post-copy stream of '${d.name}' is silent but still open here: pausing it before resuming`);
      await pausePostcopy(qmp);
      status = await waitForMigrationStatus(qmp, ['postcopy-paused'], 10_000);
    }
    if (status !== 'postcopy-paused') throw new FerryError('operation_invalid', `the post-copy migration of '${d.name}' cannot be resumed on ${me.hostName}: its QEMU's migration status is ${status}, not postcopy-paused`);
    // The job that followed the broken stream ends by itself once it sees the pause (it polls every 200 ms).
    const until = Date.now() + 10_000;
    while (d.jobs.currentAsync?.kind === 'migration-in' && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    const asyncJob = await d.jobs.beginAsync({ kind: 'migration-in', allowed: new Set(['destroy', 'migration']), reason: 'a post-copy migration is being resumed' });
    const persistentXml = args.cookie.persistentXml;
    if (persistentXml !== undefined) DomainDocument.parse(persistentXml);
    const job: IncomingJob = { id: randomUUID(), domain: d, existedBefore: true, flags: args.flags, asyncJob, state: 'prepared', startedAt: Date.now(), port: 0, wasRunning: true, createdImages: [], resume: true, ...(persistentXml !== undefined ? { persistentXml } : {}) };
    this.jobs.set(job.id, job);
    try {
      if (handedOver) await this.host.migrationStates.markPostcopyFailed(d, rt, 'destination');
      const listen = params.listen_address ?? '0.0.0.0';
      const asked = params.migrate_uri !== undefined ? uriPort(params.migrate_uri) : undefined;
      await this.portsInUse.onFreePort(listen, asked, true, (port) => qmp.execute('migrate-recover', { uri: qemuInetUri('tcp', listen, port) }), (port) => {
        job.port = port;
      });
      this.log(`post-copy migration of '${d.name}' (job ${job.id}) waits to be resumed on tcp:${listen}:${job.port}`);
      await holdPoint(this.host.config.runDir, 'dest-prepared', this.log);
      return { jobId: job.id, migrateUri: qemuInetUri('tcp', advertisedHost(listen), job.port), destination: me, domainName: d.name };
    } catch (err) {
      await this.abort(job.id, `prepare failed: ${toFerryError(err).message}`);
      throw err;
    }
  }

  /**
   * finish of a POSTCOPY_RESUME job: waits until the source has reconnected
   * and QEMU is back in the post-copy phase (or done); the rest then
   * follows in the background as in any post-copy.
   */
  private async finishResume(job: IncomingJob, rt: NonNullable<HostedDomain['runtime']>): Promise<FinishResult> {
    const d = job.domain;
    const end = await followMigration(rt.qemu.qmp, { pollMs: 200, stopAtPostcopy: true });
    if (end.status !== 'postcopy-active' && end.status !== 'completed') {
      throw new FerryError('operation_failed', `resuming the post-copy migration of '${d.name}' failed here: ${'error' in end ? end.error : end.status}; the guest keeps running here and waits for the rest of its memory`);
    }
    // As any finish: PERSIST_DEST makes the definition persistent here (the first attempt's finish may never have).
    if (hasFlag(job.flags, 'PERSIST_DEST') && job.persistentXml !== undefined) await this.host.migrationStates.persistAfterMigration(d, DomainDocument.parse(job.persistentXml));
    if (rt.incoming) {
      // The first attempt's finish never resumed the guest here: hand it over now.
      job.resuming = true;
      await this.host.migrationStates.handOver(d, rt, { paused: false, postcopy: end.status !== 'completed' });
    } else {
      await this.host.migrationStates.markPostcopyResumed(d, rt, 'destination');
    }
    job.state = 'finished';
    this.followPostcopyRest(job, rt, end.status === 'completed' ? Promise.resolve(end) : undefined);
    return { domainName: d.name, state: d.status.state, reason: d.status.reason, persistent: d.persistent };
  }

  /**
   * The post-copy phase on the destination, after finish handed the guest
   * over: the rest of the memory arrives while the guest runs. When it is
   * all here the guest is `running (migrated)`; when the stream breaks,
   * QEMU waits in `postcopy-paused` and the guest is `running (post-copy
   * failed)` until the migration is resumed (POSTCOPY_RESUME). The job
   * ends either way.
   */
  private followPostcopyRest(job: IncomingJob, rt: NonNullable<HostedDomain['runtime']>, ended?: Promise<Awaited<ReturnType<typeof followMigration>>>): void {
    void this.watchPostcopyRest(job.domain, rt, { startedAt: job.startedAt, ...(job.downtimeMs !== undefined ? { downtimeMs: job.downtimeMs } : {}), ...(job.stats ? { stats: job.stats } : {}) }, `job ${job.id}`, ended).finally(() => this.release(job));
  }

  /**
   * After a restart: a guest that runs here while the rest of its memory
   * arrives by post-copy has lost the daemon that followed the stream.
   * Follow it again, so that its state says how the stream ended.
   */
  async recoverPostcopy(): Promise<void> {
    for (const d of this.host.registry.all()) {
      const rt = d.runtime;
      if (rt && !rt.qemu.exitReason && rt.incoming && d.status.state === 'paused' && d.status.reason === 'post-copy') {
        // Switched to post-copy, never handed over, and its finish died with the daemon: this copy is the guest.
        await this.takeOverByDomain(d, rt, 'found switched to post-copy after a restart').catch((err: Error) => this.log(`cannot take over '${d.name}': ${err.message}`));
        continue;
      }
      if (!rt || rt.qemu.exitReason || d.status.state !== 'running' || (d.status.reason !== 'post-copy' && d.status.reason !== 'post-copy failed')) continue;
      const status = (await rt.qemu.qmp.execute<{ status?: string }>('query-migrate').catch(() => ({ status: 'unknown' }))).status;
      this.log(`after the restart, '${d.name}' runs here in post-copy; its stream is ${status ?? 'none'}`);
      if (status === 'completed') await this.host.migrationStates.markPostcopyCompleted(d, rt);
      else if (status === 'postcopy-paused') await this.host.migrationStates.markPostcopyFailed(d, rt, 'destination');
      else if (status === 'postcopy-active' || status === 'postcopy-recover') void this.watchPostcopyRest(d, rt, { startedAt: Date.now() }, 'after a restart');
    }
  }

  private async watchPostcopyRest(
    d: HostedDomain,
    rt: NonNullable<HostedDomain['runtime']>,
    job: { startedAt: number; downtimeMs?: number; stats?: JobStats },
    what: string,
    ended?: Promise<Awaited<ReturnType<typeof followMigration>>>,
  ): Promise<void> {
    const { startedAt, downtimeMs } = job;
    const done = async (): Promise<void> => {
      const rest = await (ended ?? followMigration(rt.qemu.qmp, { pollMs: 200 }));
      const elapsed = Date.now() - startedAt;
      if (rest.status === 'completed') {
        await this.host.migrationStates.markPostcopyCompleted(d, rt);
        d.completedJob = { ...(job.stats ?? {}), type: 'Completed', operation: 'Incoming migration', time_elapsed: elapsed, ...(downtimeMs !== undefined ? { downtime: downtimeMs } : {}) };
      } else {
        const why = 'error' in rest ? rest.error : rest.status;
        if (!rt.qemu.exitReason) await this.host.migrationStates.markPostcopyFailed(d, rt, 'destination');
        this.log(`post-copy migration of '${d.name}' (${what}) ${rest.status === 'postcopy-paused' ? 'paused' : 'failed'} after the switch: ${why}`);
        d.completedJob = { type: 'Failed', operation: 'Incoming migration', time_elapsed: elapsed, errmsg: rest.status === 'postcopy-paused' ? `post-copy paused: ${why}; the guest runs here and waits for the pages it has not received yet until the migration is resumed (--postcopy-resume)` : `post-copy failed: ${why}` };
      }
      this.host.events.jobCompleted(d, d.completedJob);
    };
    await done().catch((err: unknown) => this.log(`following the post-copy migration of '${d.name}' failed: ${toFerryError(err).message}`));
  }

  /** The unix socket the destination QEMU of tunnelled job `jobId` listens on: the migration stream's, or with `nbd` its NBD server's. */
  tunnelPathOf(jobId: string, channel: 'migration' | 'nbd' = 'migration'): string {
    const job = this.get(jobId);
    const path = channel === 'nbd' ? job.nbdTunnelPath : job.tunnelPath;
    if (job.state !== 'prepared' || !path) throw new FerryError('operation_invalid', `incoming migration job ${jobId} is not waiting for a ${channel === 'nbd' ? 'disk ' : ''}tunnel`);
    return path;
  }

  /**
   * prepare's CPU check, made before this host changes anything (no domain
   * adopted, no image created, no QEMU started): this host's QEMU must
   * provide the guest's CPU model and required features (libvirt's
   * "guest CPU doesn't match specification: missing features: ...",
   * `operation_failed`), and a host-passthrough guest may only come from a
   * host whose CPU looks the same unless the request is UNSAFE. The source's
   * host CPU travels as `hostCpu` (sorted feature names, see
   * `hostCpuFeatures`) in the cookie; a source that sends none cannot be
   * compared, and the migration goes ahead as libvirt's would.
   */
  private async checkGuestCpuHere(def: DomainDef, cookie: MigrationCookie, flags: number): Promise<void> {
    const me = this.host.config.identity.hostName;
    const accel = this.host.config.accel;
    const binary = resolveQemuBinary(def.emulator);
    await checkGuestCpu(def, accel, binary, `on ${me}`);
    if (def.cpu?.mode !== 'host-passthrough') return;
    const sourceCpu = (cookie as { hostCpu?: unknown }).hostCpu;
    if (!Array.isArray(sourceCpu) || !sourceCpu.every((x) => typeof x === 'string')) {
      this.log(`incoming host-passthrough guest '${def.name}': the source sent no description of its CPU, so it cannot be compared with this host's`);
      return;
    }
    const mine = hostCpuFeatures(await probeCpuCapabilities(binary, accel));
    const refusal = hostPassthroughRefusal(def.name, sourceCpu as string[], mine, hasFlag(flags, 'UNSAFE'), `to ${me}`);
    if (refusal !== undefined) throw refusal;
  }

  /** Starts the destination QEMU's NBD server for a storage copy (see {@link startNbdServer}) and records it in the job. */
  private async startNbd(job: IncomingJob, qmp: QmpClient, request: { flags: number; params: MigrationParams }, targets: string[], tlsCredsId?: string): Promise<NbdTarget> {
    const tunnelPath = join(this.host.paths.qemuDir, `${job.id}.nbd.sock`);
    if (hasFlag(request.flags, 'TUNNELLED')) job.nbdTunnelPath = tunnelPath;
    const started = await startNbdServer(qmp, { flags: request.flags, params: request.params, targets, ...(tlsCredsId !== undefined ? { tlsCredsId } : {}), tunnelPath, label: `'${job.domain.name}' (job ${job.id})` }, this.portsInUse, this.log);
    if (started.port !== undefined) job.nbdPort = started.port;
    job.nbdRunning = true;
    return started.target;
  }

  /** Statistics of a domain's running incoming job, if it has one (`domjobinfo` on the destination). */
  runningJobInfo(uuid: string): JobStats | undefined {
    for (const j of this.jobs.values()) {
      if (j.domain.uuid === uuid && (j.state === 'prepared' || j.state === 'finishing')) {
        const position = j.ticket?.position() ?? 0;
        return { type: 'Unbounded', operation: 'Incoming migration', time_elapsed: Date.now() - j.startedAt, ...(position > 0 ? { queue_position: position } : {}) };
      }
    }
    const d = this.host.registry.getByUuid(uuid);
    if (d?.status.state === 'running' && (d.status.reason === 'post-copy' || d.status.reason === 'post-copy failed')) {
      // The guest runs here while the rest of its memory arrives, or waits for a paused stream to be resumed.
      return { type: 'Unbounded', operation: 'Incoming migration', time_elapsed: 0, phase: d.status.reason === 'post-copy' ? 'postcopy' : 'postcopy-paused' };
    }
    return undefined;
  }

  /** Listens once on a port of the migration range for a source's measurement of the path (see bandwidth-probe.ts). */
  openBandwidthProbe(): Promise<number> {
    return listenForProbe(this.portsInUse, '0.0.0.0', this.log);
  }

  /** The domain of incoming job `jobId` as `list` shows it (a libvirt client's finish answers with it). */
  domainOf(jobId: string): DomainSummary {
    return this.get(jobId).domain.summary();
  }

  /** The state of an incoming job, for a source that lost sight of the outcome. */
  state(jobId: string): IncomingJobState {
    return this.jobs.get(jobId)?.state ?? 'unknown';
  }

  /**
   * The connection that prepared job `jobId` (the source daemon, or the
   * managing client) is gone: nobody will ever call finish, or the answer
   * to a finish in progress cannot be delivered. The job is aborted unless
   * finish has already begun resuming the guest here; the source keeps (or
   * takes back) the guest, so killing the copy here is always safe.
   */
  async controllerGone(jobId: string): Promise<IncomingJobState> {
    const job = this.jobs.get(jobId);
    if (!job || job.resuming) return job?.state ?? 'unknown';
    // A finish under way after the switch to post-copy hands the guest over by itself.
    if (job.state === 'finishing' && job.domain.runtime && (await switchedToPostcopy(job.domain))) return job.state;
    return this.abort(jobId, 'the controlling connection closed before the guest was resumed here', true);
  }

  /**
   * Aborts an incoming job unless it has finished: kills the destination
   * QEMU and restores the domain as it was. Returns the job's final state.
   */
  async abort(jobId: string, why: string, force = false, domainUuid?: string): Promise<IncomingJobState> {
    const job = this.jobs.get(jobId) ?? (domainUuid ? this.latestJobOf(domainUuid) : undefined);
    if (!job) return domainUuid ? this.abortByDomain(domainUuid, why) : 'unknown';
    if (job.state === 'finished' || job.state === 'aborted') return job.state;
    if (job.state === 'finishing' && !force) return job.state;
    const d = job.domain;
    if (!job.resume && d.runtime && (await switchedToPostcopy(d))) {
      if (job.state === 'finishing' && !force) return job.state;
      return this.takeOver(job, why);
    }
    job.state = 'aborted';
    if (job.resume) {
      // The guest runs here since the first switch-over: only the reconnection is given up; QEMU stays paused.
      this.log(`resuming the post-copy migration of '${d.name}' (job ${job.id}) was given up: ${why}`);
      this.release(job);
      return 'aborted';
    }
    this.log(`incoming migration of '${d.name}' (job ${job.id}) aborted: ${why}`);
    await this.host.migrationStates.dropIncoming(d, job.existedBefore);
    if (job.createdImages.length > 0) {
      await removeImages(job.createdImages);
      this.log(`removed the images created for the failed copy: ${job.createdImages.join(', ')}`);
    }
    this.release(job);
    return 'aborted';
  }

  /**
   * The source switched to post-copy, but finish never resumed the guest
   * here (its call was lost, or failed after the switch): the source never
   * runs the guest again and this QEMU holds its device state, so killing
   * it would lose the guest. It is handed over here instead, as finish
   * would have done (persisted with PERSIST_DEST), and runs while the rest
   * of its memory arrives, or waits for it if the stream broke.
   */
  private async takeOver(job: IncomingJob, why: string): Promise<IncomingJobState> {
    if (job.resuming) return job.state;
    job.resuming = true;
    const d = job.domain;
    const rt = d.runtime!;
    this.log(`incoming migration of '${d.name}' (job ${job.id}) is not aborted (${why}): the source switched to post-copy, so the guest is handed over here`);
    if (hasFlag(job.flags, 'PERSIST_DEST') && job.persistentXml !== undefined) await this.host.migrationStates.persistAfterMigration(d, DomainDocument.parse(job.persistentXml));
    await this.host.migrationStates.handOver(d, rt, { paused: !job.wasRunning, postcopy: true });
    job.state = 'finished';
    this.followPostcopyRest(job, rt);
    return 'finished';
  }

  /** Where prepare writes a PERSIST_DEST definition down until the job ends (see {@link takeOverByDomain}). */
  private pendingPersistPath(uuid: string): string {
    return join(this.host.paths.qemuDir, `${uuid}.persist-after-migration.xml`);
  }

  /**
   * {@link takeOver} after a restart, when the job is forgotten: the
   * definition to persist is the one prepare wrote down.
   */
  private async takeOverByDomain(d: HostedDomain, rt: NonNullable<HostedDomain['runtime']>, why: string): Promise<IncomingJobState> {
    this.log(`incoming copy of '${d.name}' without a job is not removed (${why}): the source switched to post-copy, so the guest is handed over here`);
    const pending = await readFile(this.pendingPersistPath(d.uuid), 'utf8').catch(() => undefined);
    if (pending !== undefined) await this.host.migrationStates.persistAfterMigration(d, DomainDocument.parse(pending));
    await rm(this.pendingPersistPath(d.uuid), { force: true });
    await this.host.migrationStates.handOver(d, rt, { paused: false, postcopy: true });
    void this.watchPostcopyRest(d, rt, { startedAt: Date.now() }, 'taken over after a restart');
    return 'finished';
  }

  /** The most recent job of a domain (a source that knows only the domain asks by UUID). */
  private latestJobOf(uuid: string): IncomingJob | undefined {
    let latest: IncomingJob | undefined;
    for (const j of this.jobs.values()) if (j.domain.uuid === uuid && (!latest || j.startedAt >= latest.startedAt)) latest = j;
    return latest;
  }

  /**
   * The job is not known (this daemon restarted since prepare): decide from
   * the domain itself. A guest that runs here was handed over; a copy still
   * waiting for the stream is removed.
   */
  private async abortByDomain(uuid: string, why: string): Promise<IncomingJobState> {
    const d = this.host.registry.getByUuid(uuid);
    const rt = d?.runtime;
    if (!d || !rt) return 'aborted';
    if (!rt.incoming) return 'finished';
    // Switched to post-copy: the source never runs the guest again; this copy is the guest.
    if (await switchedToPostcopy(d)) return this.takeOverByDomain(d, rt, why);
    this.log(`incoming copy of '${d.name}' without a job removed: ${why}`);
    await rm(this.pendingPersistPath(d.uuid), { force: true });
    await this.host.migrationStates.killIncoming(rt);
    return 'aborted';
  }

  private release(job: IncomingJob): void {
    job.unwatchSwitch?.();
    void rm(this.pendingPersistPath(job.domain.uuid), { force: true }).catch(() => undefined);
    job.domain.jobs.endAsync(job.asyncJob);
    job.ticket?.release();
    this.portsInUse.release(job.port);
    if (job.nbdPort !== undefined) this.portsInUse.release(job.nbdPort);
    // Keep finished/aborted jobs a while so late outcome queries get an answer.
    setTimeout(() => this.jobs.delete(job.id), 10 * 60_000).unref();
  }

  private get(jobId: string): IncomingJob {
    const job = this.jobs.get(jobId);
    if (!job) throw new FerryError('operation_invalid', `no incoming migration job ${jobId} on this host`);
    return job;
  }
}

/** The storage part of a cookie, checked for shape (it comes from another host); undefined when it lists no disk. */
function checkStorageCookie(raw: unknown): StorageCookie | undefined {
  const bad = (why: string) => new FerryError('invalid_arg', `malformed storage description in the migration cookie: ${why}`);
  if (!raw || typeof raw !== 'object') throw bad('not an object');
  const st = raw as Partial<StorageCookie>;
  if (st.sync !== 'full' && st.sync !== 'top') throw bad('sync is neither full nor top');
  if (!Array.isArray(st.disks) || st.disks.length > 256) throw bad('disks is not a list of at most 256');
  const size = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  for (const d of st.disks) {
    if (!d || typeof d !== 'object' || typeof d.target !== 'string' || typeof d.format !== 'string' || !size(d.capacity)) throw bad('a disk lacks target, format or capacity');
    if (d.backing !== undefined && (typeof d.backing.path !== 'string' || !d.backing.path.startsWith('/') || typeof d.backing.format !== 'string' || !size(d.backing.capacity))) throw bad(`the backing image of ${d.target} is malformed`);
  }
  return st.disks.length > 0 ? (st as StorageCookie) : undefined;
}

/**
 * Whether an incoming QEMU has entered the post-copy phase (the source sent
 * its device state and stopped for good): then it holds the guest, even
 * before finish resumed it here.
 */
async function switchedToPostcopy(d: HostedDomain): Promise<boolean> {
  const qmp = d.runtime?.qemu.qmp;
  if (!qmp || qmp.closed) return false;
  // Recorded when finish saw the switch: it stands even once the whole stream has arrived.
  if (d.status.state === 'paused' && d.status.reason === 'post-copy') return true;
  const status = (await qmp.execute<{ status?: string }>('query-migrate').catch(() => ({ status: 'unknown' }))).status;
  return status === 'postcopy-active' || status === 'postcopy-paused' || status === 'postcopy-recover';
}

/** A job's state, read through a call so that TypeScript does not carry a narrowing across an await. */
function stateOf(job: { state: IncomingJobState }): IncomingJobState {
  return job.state;
}
