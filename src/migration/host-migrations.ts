/**
 * A host's migrations, as ferryd wires them: the source side (with its job
 * controls and restart recovery) and the destination side, the outcome
 * queries to a peer, and the peer-to-peer mode in which this daemon drives
 * the destination itself (directly or TUNNELLED through the daemons).
 */
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import { FerryError } from '../errors/index.js';
import { hasFlag, qemuUnixUri, tunnelJobId } from '../flags/index.js';
import { openRelay } from './tunnel.js';
import type { Host } from '../host/host.js';
import type { JobStats } from '../host/job-stats.js';
import { phaseLogLine, runMigration, type DestinationEndpoint, type DriverOutcome, type SourceEndpoint } from './driver.js';
import { admitBetweenHosts, admitOnSource } from './admission.js';
import type { ProbeResult } from './bandwidth-probe.js';
import { forecastMigration } from './forecast.js';
import { DEFAULT_POLICY, type MigrationPolicy } from './convergence.js';
import { measureForecastInputs, type MigrationForecast } from './forecast-inputs.js';
import { IncomingMigrations } from './incoming.js';
import type { OutgoingJobControl } from './job-control.js';
import { OutgoingMigrations } from './outgoing.js';
import { MigrationRecovery } from './recovery.js';
import type { MigrationRequest } from './phase-messages.js';

/** A connection to another host's daemon, seen as a migration destination. */
export interface PeerDestination extends DestinationEndpoint {
  /** The peer's identity. */
  identity(): Promise<{ hostName: string; hostUuid: string }>;
  /** Opens a connection to the peer that carries the migration stream (or with `nbd` one disk-copy connection) of incoming job `destJobId` (TUNNELLED). */
  openTunnel(destJobId: string, channel?: 'migration' | 'nbd'): Promise<Duplex>;
  /** Measures the path a migration stream to the peer would take (see bandwidth-probe.ts). */
  probeBandwidth(): Promise<ProbeResult>;
  close(): void;
}

/** Opens daemon-to-daemon connections (mutual TLS in production); injected by ferryd. */
export type PeerConnector = (uri: string) => Promise<PeerDestination>;

/** Both sides of migration on one host. */
export class Migrations {
  readonly outgoing: OutgoingMigrations;
  readonly incoming: IncomingMigrations;
  /** The controls of running outgoing jobs (domjobinfo, domjobabort, post-copy, speed, downtime). */
  readonly jobControl: OutgoingJobControl;
  /** Restart recovery of the outgoing jobs in the journal. */
  readonly recovery: MigrationRecovery;

  constructor(
    private readonly host: Host,
    private readonly connectPeer: PeerConnector,
    private readonly log: (msg: string) => void,
    /** QEMU-style TLS credentials directory (see qemu-tls.ts), when ferryd has --tls-dir. */
    qemuTlsDir?: string,
    /** The host's convergence policy, for requests that name none (ferryd --migration-policy). */
    defaultPolicy: MigrationPolicy = DEFAULT_POLICY,
    /** How long a post-copy stream may send nothing before it is paused (ms; see outgoing.ts). */
    postcopyStallMs?: number,
  ) {
    this.outgoing = new OutgoingMigrations(host, log, (uri, uuid) => this.askOutcome(uri, uuid), qemuTlsDir, defaultPolicy, postcopyStallMs);
    this.incoming = new IncomingMigrations(host, log, qemuTlsDir);
    this.jobControl = this.outgoing.control;
    this.recovery = new MigrationRecovery(host, log, (uri, uuid) => this.askOutcome(uri, uuid));
  }

  /**
   * Asks the destination at `destUri` whether it runs the guest `domainUuid`
   * after a migration whose outcome this host lost; a destination that has
   * not resumed it aborts its side first, so the answer is final.
   */
  readonly askOutcome = async (destUri: string, domainUuid: string): Promise<'finished' | 'aborted' | 'unreachable'> => {
    try {
      const peer = await this.connectPeer(destUri);
      try {
        const st = await peer.abortUnlessFinished('', domainUuid);
        return st === 'finished' ? 'finished' : st === 'aborted' || st === 'unknown' ? 'aborted' : 'unreachable';
      } finally {
        peer.close();
      }
    } catch (err) {
      this.log(`cannot reach ${destUri} to settle a migration of ${domainUuid}: ${(err as Error).message}`);
      return 'unreachable';
    }
  };

  /**
   * After a restart: takes the job lock of every domain the outgoing
   * journal lists, then settles them in the background. Call before serving
   * the sockets, so that no client can act on such a domain first.
   */
  async recover(): Promise<void> {
    await this.recovery.recover();
    await this.incoming.recoverPostcopy().catch((err: Error) => this.log(`post-copy recovery failed: ${err.message}`));
  }

  /** Every migration job on this host now, outgoing or incoming (queued ones too, with their place), with its statistics. */
  runningJobs(): Array<{ domain: string; uuid: string; stats: JobStats }> {
    const jobs: Array<{ domain: string; uuid: string; stats: JobStats }> = [];
    for (const d of this.host.registry.all()) {
      let stats: JobStats;
      try {
        stats = this.jobControl.jobInfo(d.uuid, false, (uuid) => this.incoming.runningJobInfo(uuid));
      } catch {
        continue;
      }
      if (stats.type !== 'None') jobs.push({ domain: d.name, uuid: d.uuid, stats });
    }
    return jobs;
  }

  /** This host's source side, as the driver calls it in peer-to-peer mode. */
  get localSource(): SourceEndpoint {
    return {
      begin: (domain, req) => this.outgoing.begin(domain, req),
      perform: (args) => this.outgoing.perform(args),
      confirm: (args) => this.outgoing.confirm(args),
      cancel: (jobId, why) => this.jobControl.cancel(jobId, why),
    };
  }

  /**
   * The source side of a TUNNELLED migration: QEMU writes its stream to a
   * unix socket of this daemon, which relays it over a connection to the
   * destination daemon (mutual TLS when the peer URI is TLS). Piping gives
   * back-pressure end to end with bounded buffers, and the relay has its
   * own connection, so control calls never queue behind the data.
   */
  private tunnelledSource(peer: PeerDestination): SourceEndpoint {
    const local = this.localSource;
    return {
      ...local,
      perform: async (args) => {
        const destJobId = tunnelJobId(args.migrateUri);
        if (!destJobId) throw new FerryError('operation_failed', `the destination did not prepare a tunnel (URI '${args.migrateUri}')`);
        const tunnel = await openRelay(join(this.host.paths.qemuDir, `${args.jobId}.tunnel.sock`), () => peer.openTunnel(destJobId), this.log);
        // A storage copy takes the same way: each NBD connection of the source QEMU gets a daemon connection of its own.
        const nbdRelay = args.nbd?.transport === 'tunnel' ? await openRelay(join(this.host.paths.qemuDir, `${args.jobId}.nbd-tunnel.sock`), () => peer.openTunnel(destJobId, 'nbd'), this.log).catch((err) => {
          tunnel.close();
          throw err;
        }) : undefined;
        try {
          return await local.perform({
            jobId: args.jobId,
            migrateUri: qemuUnixUri(tunnel.path),
            ...(args.nbd ? { nbd: nbdRelay ? { ...args.nbd, transport: 'unix' as const, path: nbdRelay.path } : args.nbd } : {}),
          });
        } finally {
          tunnel.close();
          nbdRelay?.close();
        }
      },
    };
  }

  /**
   * `migrate --dry-run`: checks the request as begin would, measures the
   * guest (dirty rate, touched memory) and, without a bandwidth set, the
   * path to `destUri`, and forecasts the migration. Migrates nothing and
   * takes no lock: the guest runs on undisturbed.
   */
  async forecast(domain: unknown, destUri: unknown, req: MigrationRequest): Promise<MigrationForecast> {
    const d = this.host.registry.lookup(domain);
    const request = admitOnSource(req, d);
    let peer: PeerDestination | undefined;
    try {
      if (typeof destUri === 'string' && destUri !== '') {
        peer = await this.connectPeer(destUri);
        admitBetweenHosts(req, this.host.config.identity, await peer.identity());
      }
      const p = peer;
      const measured = await measureForecastInputs(this.host, d, request, this.jobControl.speedOf(d.uuid), p ? () => p.probeBandwidth() : undefined);
      return { domain: d.name, forecast: forecastMigration(measured.input), inputs: measured.input, sources: measured.sources };
    } finally {
      peer?.close();
    }
  }

  /**
   * Peer-to-peer: this daemon connects to `destUri` and runs all five
   * phases itself. The client only waits for the answer (and may poll the
   * job's statistics or abort it meanwhile).
   */
  async migratePeerToPeer(domain: unknown, destUri: unknown, req: MigrationRequest): Promise<DriverOutcome> {
    if (typeof destUri !== 'string' || destUri === '') throw new FerryError('invalid_arg', 'a destination URI is required, e.g. ferry+tls://host/system');
    if (typeof domain !== 'string') throw new FerryError('invalid_arg', 'a domain name, id or UUID is required');
    const t0 = performance.now();
    const peer = await this.connectPeer(destUri);
    try {
      // The rule table's same-host rule, now that the peer said who it is.
      admitBetweenHosts(req, this.host.config.identity, await peer.identity());
      const connectMs = performance.now() - t0;
      const source = hasFlag(req.flags, 'TUNNELLED') ? this.tunnelledSource(peer) : this.localSource;
      const outcome = await runMigration(source, peer, domain, { ...req, destUri });
      if (outcome.confirmWarning) this.log(outcome.confirmWarning);
      this.log(phaseLogLine(outcome.begin.cookie.domain.name, destUri, connectMs, outcome.phaseMs));
      return outcome;
    } finally {
      peer.close();
    }
  }
}
