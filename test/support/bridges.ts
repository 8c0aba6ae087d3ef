/**
 * Host networking inside a namespaced test host: Linux bridges a test
 * creates, what `ip` says about a link (does the tap exist, which bridge is
 * it enslaved to), and a raw-socket frame capture on an interface (Debian's
 * /usr/bin/python3 with an AF_PACKET socket: nothing to install).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { waitFor } from './daemon.js';
import { inNetns } from './netns.js';

function ip(ns: string, args: string[]): string {
  return execFileSync('ip', ['-n', ns, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Creates bridge `name` in `ns` and brings it up (STP off, so a new port forwards at once). */
export function addBridge(ns: string, name: string): void {
  ip(ns, ['link', 'add', name, 'type', 'bridge', 'stp_state', '0']);
  ip(ns, ['link', 'set', name, 'up']);
}

/** Sets the MTU of link `name` in `ns`. */
export function setMtu(ns: string, name: string, mtu: number): void {
  ip(ns, ['link', 'set', 'dev', name, 'mtu', String(mtu)]);
}

/** Removes link `name` from `ns` if it is there. */
export function deleteLink(ns: string, name: string): void {
  try {
    ip(ns, ['link', 'delete', 'dev', name]);
  } catch {
    // Not there.
  }
}

/** What `ip -d -j link show` says about one link. */
export interface LinkInfo {
  ifname: string;
  /** The bridge it is a port of, if any. */
  master?: string;
  operstate?: string;
  mtu?: number;
  flags?: string[];
  address?: string;
  linkinfo?: { info_kind?: string; info_data?: { type?: string; persist?: boolean } };
}

/** The link `name` in `ns`, or undefined when there is none. */
export function linkInfo(ns: string, name: string): LinkInfo | undefined {
  try {
    return (JSON.parse(ip(ns, ['-d', '-j', 'link', 'show', 'dev', name])) as LinkInfo[])[0];
  } catch {
    return undefined;
  }
}

/** Names of the tap devices in `ns`. */
export function tapsIn(ns: string): string[] {
  const links = JSON.parse(ip(ns, ['-d', '-j', 'link', 'show'])) as LinkInfo[];
  return links.filter((l) => l.linkinfo?.info_kind === 'tun' && l.linkinfo.info_data?.type === 'tap').map((l) => l.ifname);
}

/** One captured Ethernet frame. */
export interface CapturedFrame {
  dst: string;
  src: string;
  /** The ethertype, four hex digits, e.g. `8035` (RARP). */
  type: string;
  /** RARP/ARP only: the sender hardware address in the payload. */
  sha?: string;
  /** Capture time, seconds since the epoch (for intervals between frames, never asserted as a wall time). */
  t: number;
}

/** A running capture: the frames so far, a bounded wait, and stop. */
export interface FrameCapture {
  readonly frames: CapturedFrame[];
  /** Resolves once `pred` holds for the frames seen (bounded by `timeoutMs`). */
  waitUntil(what: string, pred: (frames: CapturedFrame[]) => boolean, timeoutMs?: number): Promise<void>;
  stop(): void;
}

// Prints one JSON line per frame of the given ethertype seen on the interface; "ready" once bound.
// It ends itself after the given seconds, so an interrupted test leaves no capture behind.
const CAPTURE_PY = `
import json, signal, socket, sys, time
iface, etype, limit = sys.argv[1], int(sys.argv[2], 16), int(sys.argv[3])
signal.alarm(limit)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(etype))
s.bind((iface, 0))
print(json.dumps({"ready": True}), flush=True)
while True:
    data = s.recv(65535)
    frame = {"dst": data[0:6].hex(":"), "src": data[6:12].hex(":"), "type": data[12:14].hex(), "t": time.time()}
    if len(data) >= 28:
        frame["sha"] = data[22:28].hex(":")
    print(json.dumps(frame), flush=True)
`;

/**
 * Captures frames of ethertype `etherType` (hex, e.g. '8035' for RARP) on
 * interface `iface` in `ns`. Resolves once the socket is bound, so nothing
 * sent afterwards is missed. Stop it when done; it ends itself after
 * `maxSeconds` in any case.
 */
export async function captureFrames(ns: string, iface: string, etherType: string, maxSeconds = 300): Promise<FrameCapture> {
  const argv = inNetns(ns, ['/usr/bin/python3', '-u', '-c', CAPTURE_PY, iface, etherType, String(maxSeconds)]);
  const child: ChildProcess = spawn(argv.file, argv.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const frames: CapturedFrame[] = [];
  let ready = false;
  let stderr = '';
  let rest = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    rest += chunk;
    let nl: number;
    while ((nl = rest.indexOf('\n')) >= 0) {
      const line = rest.slice(0, nl);
      rest = rest.slice(nl + 1);
      const msg = JSON.parse(line) as CapturedFrame & { ready?: boolean };
      if (msg.ready === true) ready = true;
      else frames.push(msg);
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const stop = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  try {
    await waitFor(`frame capture on ${iface} in ${ns} to start`, () => {
      if (child.exitCode !== null) throw new Error(`frame capture exited: ${stderr}`);
      return ready;
    }, 10_000, 50);
  } catch (err) {
    stop();
    throw err;
  }
  return {
    frames,
    waitUntil: (what, pred, timeoutMs = 20_000) => waitFor(what, () => pred(frames), timeoutMs, 50).then(() => undefined),
    stop,
  };
}
