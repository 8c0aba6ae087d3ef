/**
 * Hosts as network namespaces: a pair of namespaces joined by a veth link,
 * each with its own address, so that two ferryd processes (and their
 * QEMUs) talk over a real network path. Needs root and iproute2; callers
 * fall back to loopback ports where {@link netnsAvailable} is false.
 */
import { execFileSync } from 'node:child_process';

/** One host: its namespace and address. */
export interface NetnsHost {
  ns: string;
  address: string;
}

/** A pair of hosts on one link. */
export interface HostPair {
  a: NetnsHost;
  b: NetnsHost;
  /** Removes both namespaces (and with them the veth pair). */
  destroy(): void;
}

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

let cached: boolean | undefined;

/** Whether this process can create network namespaces (root with iproute2). */
export function netnsAvailable(): boolean {
  if (cached !== undefined) return cached;
  const probe = `ferry-probe-${process.pid}`;
  try {
    ip(['netns', 'add', probe]);
    ip(['netns', 'del', probe]);
    cached = true;
  } catch {
    cached = false;
  }
  return cached;
}

/**
 * Creates two namespaces `PREFIX-a` and `PREFIX-b` with a veth pair,
 * addresses 10.200.N.1 and 10.200.N.2 (N from `subnet`), loopback up.
 */
export function createHostPair(prefix: string, subnet: number): HostPair {
  const a: NetnsHost = { ns: `${prefix}-a`, address: `10.200.${subnet}.1` };
  const b: NetnsHost = { ns: `${prefix}-b`, address: `10.200.${subnet}.2` };
  for (const h of [a, b]) {
    try {
      ip(['netns', 'del', h.ns]);
    } catch {
      // Not there from an earlier run: fine.
    }
  }
  const va = `${prefix.slice(0, 10)}a`;
  const vb = `${prefix.slice(0, 10)}b`;
  ip(['netns', 'add', a.ns]);
  ip(['netns', 'add', b.ns]);
  ip(['link', 'add', va, 'netns', a.ns, 'type', 'veth', 'peer', 'name', vb, 'netns', b.ns]);
  for (const [h, dev] of [[a, va], [b, vb]] as const) {
    ip(['-n', h.ns, 'addr', 'add', `${h.address}/24`, 'dev', dev]);
    ip(['-n', h.ns, 'link', 'set', dev, 'up']);
    ip(['-n', h.ns, 'link', 'set', 'lo', 'up']);
  }
  return {
    a,
    b,
    destroy() {
      for (const h of [a, b]) {
        try {
          ip(['netns', 'del', h.ns]);
        } catch {
          // Already gone.
        }
      }
    },
  };
}

/** argv prefix that runs a command inside `ns` (none when `ns` is undefined). */
export function inNetns(ns: string | undefined, argv: string[]): { file: string; args: string[] } {
  if (!ns) return { file: argv[0]!, args: argv.slice(1) };
  return { file: 'ip', args: ['netns', 'exec', ns, ...argv] };
}
