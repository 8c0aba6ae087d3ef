/**
 * A multi-host harness: N hosts as network namespaces plugged into one
 * bridge (a "switch" namespace), each link optionally shaped with tc's
 * token bucket (tbf), each host running its own ferryd with its own state
 * and run dirs. Helpers break things the way the fault matrix needs: cut or
 * restore a host's link, kill a process, fill a host's state filesystem,
 * read a guest's heartbeat. Used by the e2e tests and by test/matrix.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { emptyDaemon, ferry, makeTempDir, qemuPidsMentioning, startDaemon, type CliResult, type FerrydHandle } from './daemon.js';

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** One host of the cluster. */
export interface ClusterHost {
  name: string;
  ns: string;
  address: string;
  /** The host's end of its link (inside `ns`). */
  dev: string;
  d: FerrydHandle;
  /** `ferry+tcp://ADDRESS:16609/system`: how other hosts reach this daemon. */
  tcpUri: string;
  /** Its state dir sits on a tmpfs of this size (MiB), so that it can be filled. */
  stateMiB: number;
  /** Runs the CLI on this host (inside its namespace, on its unix socket). */
  ferry(args: string[], opts?: { json?: boolean; timeoutMs?: number }): Promise<CliResult>;
}

/** Options of {@link createCluster}. */
export interface ClusterOptions {
  /** Unique per process, short (namespace and device names derive from it). */
  prefix: string;
  /** The third octet of 10.202.X.0/24. */
  subnet: number;
  hosts: number;
  /** tbf rate of every link, e.g. '1gbit'; unshaped when omitted. */
  rate?: string;
  /** Size of each host's state tmpfs in MiB. Default 256. */
  stateMiB?: number;
  /** Extra ferryd environment (e.g. FERRY_TEST_HOOKS=1). */
  env?: Record<string, string>;
  /** Extra ferryd arguments for every host. */
  extraArgs?: string[];
}

/** The running cluster. */
export interface Cluster {
  hosts: ClusterHost[];
  /** Takes a host's link down (its packets go nowhere) or back up. */
  setLink(h: ClusterHost, up: boolean): void;
  /** Fills the host's state filesystem, leaving about `leaveKiB` free; returns a function that frees it again. */
  fillState(h: ClusterHost, leaveKiB?: number): () => void;
  destroy(): Promise<void>;
}

/** Creates the namespaces, the bridge, the links and one ferryd per host. */
export async function createCluster(o: ClusterOptions): Promise<Cluster> {
  const sw = `${o.prefix}-sw`;
  const names = Array.from({ length: o.hosts }, (_, i) => `h${i + 1}`);
  const cleanupNs = () => {
    for (const ns of [sw, ...names.map((n) => `${o.prefix}-${n}`)]) {
      try {
        run('ip', ['netns', 'del', ns]);
      } catch {
        // Not there.
      }
    }
  };
  cleanupNs();
  run('ip', ['netns', 'add', sw]);
  run('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
  run('ip', ['-n', sw, 'link', 'set', 'br0', 'up']);
  const base = makeTempDir('ferry-cluster-');
  const mounts: string[] = [];
  const hosts: ClusterHost[] = [];
  for (const [i, name] of names.entries()) {
    const ns = `${o.prefix}-${name}`;
    const dev = `${o.prefix.slice(0, 8)}${name}`;
    const peer = `${o.prefix.slice(0, 8)}${name}s`;
    const address = `10.202.${o.subnet}.${i + 1}`;
    run('ip', ['netns', 'add', ns]);
    run('ip', ['link', 'add', dev, 'netns', ns, 'type', 'veth', 'peer', 'name', peer, 'netns', sw]);
    run('ip', ['-n', sw, 'link', 'set', peer, 'master', 'br0']);
    run('ip', ['-n', sw, 'link', 'set', peer, 'up']);
    run('ip', ['-n', ns, 'addr', 'add', `${address}/24`, 'dev', dev]);
    run('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    if (o.rate) {
      // Shape both directions: the host's egress, and the switch port's egress towards the host.
      run('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', o.rate, 'burst', '256kb', 'latency', '50ms']);
      run('ip', ['netns', 'exec', sw, 'tc', 'qdisc', 'add', 'dev', peer, 'root', 'tbf', 'rate', o.rate, 'burst', '256kb', 'latency', '50ms']);
    }
    const stateMiB = o.stateMiB ?? 256;
    const stateDir = join(base, name, 'state');
    mkdirSync(stateDir, { recursive: true });
    run('mount', ['-t', 'tmpfs', '-o', `size=${stateMiB}m,mode=0700`, 'tmpfs', stateDir]);
    mounts.push(stateDir);
    const d = await startDaemon({
      hostName: `${o.prefix}-${name}`,
      listenTcp: `${address}:16609`,
      netns: ns,
      stateDir,
      runDir: join(base, name, 'run'),
      ...(o.env ? { env: o.env } : {}),
      ...(o.extraArgs ? { extraArgs: o.extraArgs } : {}),
    });
    hosts.push({
      name,
      ns,
      address,
      dev,
      d,
      stateMiB,
      tcpUri: `ferry+tcp://${address}:16609/system`,
      ferry: (args, opts = {}) => ferry(args, { uri: d.uri, netns: ns, ...opts }),
    });
  }
  return {
    hosts,
    setLink(h, up) {
      run('ip', ['-n', h.ns, 'link', 'set', h.dev, up ? 'up' : 'down']);
    },
    fillState(h, leaveKiB = 64) {
      const filler = join(h.d.stateDir, 'filler');
      // Fill with a file sized to what is free now (tmpfs allocates as written: fallocate is exact).
      const free = Number(execFileSync('df', ['--output=avail', '-k', h.d.stateDir], { encoding: 'utf8' }).split('\n')[1]!.trim());
      const size = Math.max(0, free - leaveKiB);
      writeFileSync(filler, '');
      if (size > 0) run('fallocate', ['-l', `${size}k`, filler]);
      return () => rmSync(filler, { force: true });
    },
    async destroy() {
      for (const h of hosts) await h.d.stop().catch(() => undefined);
      for (const m of mounts) {
        try {
          run('umount', ['-l', m]);
        } catch {
          // Already gone.
        }
      }
      cleanupNs();
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/**
 * After a test of one guest: every host's daemon is running again and
 * holds no domain, and no QEMU of the guest (`uuid`) is left anywhere.
 */
export async function tidyCluster(cluster: Cluster, uuid: string): Promise<void> {
  for (const h of cluster.hosts) {
    if (!h.d.alive()) await h.d.restart();
    await emptyDaemon(h.d.uri).catch(() => undefined);
  }
  for (const pid of qemuPidsMentioning(uuid)) process.kill(pid, 'SIGKILL');
}
