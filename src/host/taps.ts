/**
 * Host taps for `<interface type='bridge'>` and `type='ethernet'`: checked
 * bridges, taps created before a guest's QEMU starts (and enslaved to the
 * bridge), and removed when that QEMU goes.
 *
 * Why persistent taps opened by name rather than a file descriptor handed
 * to QEMU: a tap file descriptor comes from `ioctl(TUNSETIFF)` on
 * /dev/net/tun, and Node has no ioctl (nor a way to pass descriptors over
 * QMP, see docs/qemu-layer.md) without a native addon. So ferryd creates a
 * persistent tap with `ip tuntap add` (which fails when the name is taken:
 * an atomic claim), and QEMU attaches to it by `ifname` with no scripts.
 * A persistent tap outlives QEMU, which is why every way a QEMU can end
 * leads to {@link removeTaps}. Every `ip` call is an argument array, never a
 * shell line, and bounded in time.
 */
import { execFile } from 'node:child_process';
import type { DomainDef, DomainDocument } from '../domain/index.js';
import { AUTO_TAP_PREFIX, isAutoTapName } from '../domain/index.js';
import { FerryError } from '../errors/index.js';

/** The longest any one `ip` call may take. */
const IP_TIMEOUT_MS = 10_000;
/** How many `vnetN` names are tried before giving up. */
const MAX_AUTO_TAPS = 4096;

interface IpResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/** Runs `ip ARGS...` (no shell); never throws. */
function ip(args: string[]): Promise<IpResult> {
  return new Promise((resolve) => {
    execFile('ip', args, { timeout: IP_TIMEOUT_MS, encoding: 'utf8' }, (err, stdout, stderr) => {
      const text = stderr.trim() || (err !== null ? err.message : '');
      resolve({ ok: err === null, stdout, stderr: text });
    });
  });
}

async function ipOrThrow(args: string[], what: string): Promise<void> {
  const r = await ip(args);
  if (!r.ok) throw new FerryError('system_error', `${what}: ${r.stderr}`);
}

/** The interfaces of `def` that have a tap, with their index among all interfaces. */
function tapInterfaces(def: Pick<DomainDef, 'interfaces'>): Array<{ index: number; nic: DomainDef['interfaces'][number] }> {
  return def.interfaces.flatMap((nic, index) => (nic.type === 'bridge' || nic.type === 'ethernet' ? [{ index, nic }] : []));
}

/** The bridges `def` needs, each once, in interface order. */
export function bridgesOf(def: Pick<DomainDef, 'interfaces'>): string[] {
  return [...new Set(tapInterfaces(def).flatMap(({ nic }) => (nic.bridge !== undefined ? [nic.bridge] : [])))];
}

/** The taps a live definition names: those ferryd created for it. */
export function tapsOf(def: Pick<DomainDef, 'interfaces'>): string[] {
  return tapInterfaces(def).flatMap(({ nic }) => (nic.targetDev !== undefined ? [nic.targetDev] : []));
}

/**
 * Checks that every bridge the guest needs exists on this host and is a
 * Linux bridge, changing nothing. A missing bridge is refused as libvirt
 * refuses it when it starts the guest (its first look at the bridge is
 * `virNetDevGetMTU`): `system_error` (38), "Cannot get interface MTU on
 * 'NAME': No such device".
 *
 * @throws FerryError `system_error` for a missing bridge or a device that is not a bridge.
 */
export async function checkBridges(def: Pick<DomainDef, 'interfaces'>): Promise<void> {
  for (const bridge of bridgesOf(def)) {
    const r = await ip(['-d', '-j', 'link', 'show', 'dev', bridge]);
    if (!r.ok) {
      const missing = /does not exist|cannot find device/i.test(r.stderr);
      throw new FerryError('system_error', `Cannot get interface MTU on '${bridge}': ${missing ? 'No such device' : r.stderr}`);
    }
    const kind = linkKind(r.stdout);
    if (kind !== 'bridge') {
      throw new FerryError('system_error', `Unable to add a port to bridge '${bridge}': '${bridge}' is ${kind === undefined ? 'not a bridge' : `a ${kind} device, not a bridge`}`);
    }
  }
}

function linkKind(json: string): string | undefined {
  try {
    const links = JSON.parse(json) as Array<{ linkinfo?: { info_kind?: string } }>;
    return links[0]?.linkinfo?.info_kind;
  } catch {
    return undefined;
  }
}

/** The MTU of link `name`, or undefined when `ip` cannot tell. */
async function linkMtu(name: string): Promise<number | undefined> {
  const r = await ip(['-j', 'link', 'show', 'dev', name]);
  if (!r.ok) return undefined;
  try {
    const mtu = (JSON.parse(r.stdout) as Array<{ mtu?: unknown }>)[0]?.mtu;
    return typeof mtu === 'number' && Number.isSafeInteger(mtu) && mtu > 0 ? mtu : undefined;
  } catch {
    return undefined;
  }
}

/** The lowest `vnetN` not in `taken` (libvirt's naming of taps it makes up). */
export function nextAutoTapName(taken: ReadonlySet<string>): string {
  for (let n = 0; n < MAX_AUTO_TAPS; n++) {
    const name = `${AUTO_TAP_PREFIX}${n}`;
    if (!taken.has(name)) return name;
  }
  throw new FerryError('system_error', `no free tap name: ${AUTO_TAP_PREFIX}0 to ${AUTO_TAP_PREFIX}${MAX_AUTO_TAPS - 1} are all in use`);
}

/**
 * The tap's own MAC: the guest's with the first byte 0xfe, as libvirt sets
 * it, so that a bridge (which takes the lowest MAC of its ports) never takes
 * the tap's address and the guest's own address stays unique on the LAN.
 */
export function tapMac(guestMac: string | undefined): string | undefined {
  return guestMac === undefined ? undefined : `fe${guestMac.slice(2)}`;
}

async function linkNames(): Promise<Set<string>> {
  const r = await ip(['-j', 'link', 'show']);
  if (!r.ok) return new Set();
  try {
    return new Set((JSON.parse(r.stdout) as Array<{ ifname?: string }>).flatMap((l) => (l.ifname !== undefined ? [l.ifname] : [])));
  } catch {
    return new Set();
  }
}

/** Creates one persistent tap; false when the name is taken (ip tuntap add refuses it). */
async function claimTap(name: string): Promise<IpResult> {
  return ip(['tuntap', 'add', 'dev', name, 'mode', 'tap']);
}

// Tap names are claimed one guest at a time, so two guests starting together do not race for vnetN.
let claiming: Promise<unknown> = Promise.resolve();

/** What {@link createTaps} made: the live definition naming each tap, and the taps. */
export interface CreatedTaps {
  doc: DomainDocument;
  taps: string[];
}

/**
 * Creates a tap for each bridge or ethernet interface of `doc` and returns
 * the definition with each tap's name in `<target dev>`. The name is the
 * interface's `<target dev>` when it is given, is not an auto name
 * (`vnetN`) and is free; otherwise the lowest free `vnetN`. A bridged tap
 * joins its bridge with the bridge's MTU (`ip link set TAP mtu N master BRIDGE
 * up`); an ethernet one is only brought up. On any failure the taps created so far are removed.
 *
 * @throws FerryError `system_error` with `ip`'s message when a tap cannot be created or attached.
 */
export async function createTaps(doc: DomainDocument, log: (msg: string) => void): Promise<CreatedTaps> {
  if (tapInterfaces(doc.def).length === 0) return { doc, taps: [] };
  const run = claiming.then(() => createTapsNow(doc, log));
  claiming = run.catch(() => undefined);
  return run;
}

async function createTapsNow(doc: DomainDocument, log: (msg: string) => void): Promise<CreatedTaps> {
  const created: string[] = [];
  let live = doc;
  try {
    const taken = await linkNames();
    for (const { index, nic } of tapInterfaces(doc.def)) {
      let name: string | undefined;
      const wish = nic.targetDev;
      if (wish !== undefined && !isAutoTapName(wish)) {
        const r = await claimTap(wish);
        if (r.ok) name = wish;
        else log(`domain '${doc.def.name}': tap '${wish}' of interface ${index} cannot be created (${r.stderr}); using a vnetN name instead`);
      }
      while (name === undefined) {
        const candidate = nextAutoTapName(taken);
        taken.add(candidate);
        const r = await claimTap(candidate);
        if (r.ok) name = candidate;
        else if (!/busy|exists/i.test(r.stderr)) throw new FerryError('system_error', `Unable to create tap device ${candidate}: ${r.stderr}`);
      }
      created.push(name);
      taken.add(name);
      const mac = tapMac(nic.mac);
      // As libvirt does: the tap takes its bridge's MTU, so joining never lowers the bridge's (a jumbo-frame LAN stays one).
      const mtu = nic.bridge !== undefined ? await linkMtu(nic.bridge) : undefined;
      const attach = nic.bridge !== undefined ? ['master', nic.bridge] : [];
      const settings = [...(mac !== undefined ? ['address', mac] : []), ...(mtu !== undefined ? ['mtu', String(mtu)] : []), ...attach, 'up'];
      await ipOrThrow(['link', 'set', 'dev', name, ...settings], nic.bridge !== undefined ? `Unable to add bridge ${nic.bridge} port ${name}` : `Unable to bring up tap device ${name}`);
      live = live.withInterfaceTarget(index, name);
    }
  } catch (err) {
    await removeTaps(created, log);
    throw err;
  }
  if (created.length > 0) log(`domain '${doc.def.name}': created tap${created.length > 1 ? 's' : ''} ${created.join(', ')}`);
  return { doc: live, taps: created };
}

/**
 * Removes taps ferryd created (`ip link delete`). A tap that is already gone
 * is fine; any other failure is logged, never thrown: this runs on the way
 * out of a guest, where nothing could act on it.
 */
export async function removeTaps(taps: readonly string[], log: (msg: string) => void): Promise<void> {
  for (const tap of taps) {
    const r = await ip(['link', 'delete', 'dev', tap]);
    if (!r.ok && !/cannot find device|does not exist/i.test(r.stderr)) log(`cannot remove tap '${tap}': ${r.stderr}`);
  }
}
