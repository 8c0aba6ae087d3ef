/**
 * A domain XML as virt-install writes it (issue 14, item 6): q35 machine,
 * pcie-root-port controllers, qemu-xhci USB with a tablet, ps2 inputs,
 * VNC graphics, virtio video, memballoon, virtio rng, a guest-agent
 * channel, pty serial and console, libosinfo metadata, clock timers, `pm`
 * and `features` (examples/virt-install-guest.xml, with the test guest's
 * kernel), on two namespaced ferryd hosts:
 *
 * - it defines without an error and dumps back with every element kept;
 *   what Ferry keeps without acting on is listed once at define (a CLI
 *   warning) and in `dominfo`, never dropped silently;
 * - it starts, and QEMU (asked over QMP through `qemu-monitor-command`)
 *   really has each honoured device and machine option (no vmport, no
 *   HPET, a slewing RTC, S3/S4 off; also after ferryd restarts and
 *   re-attaches): the xHCI, virtio-serial, balloon,
 *   rng and virtio-vga on PCI, the usb-tablet and the guest-agent port,
 *   the channel's socket chardev under ferryd's run directory (the live
 *   XML shows it, and the socket exists), a VNC server on 127.0.0.1 only
 *   at the port the live XML shows;
 * - it migrates live to B, whose port 5900 is taken: B chooses its own VNC
 *   port (5901) and channel socket, the devices are the same, and the
 *   guest's heartbeat carries on at A's last count + 1 with no CORRUPT.
 *
 * Needs `npm run build` and `make -C guest`; at most two QEMUs at a time.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectCliError, expectCliOk, domainNames } from '../support/cli-result.js';
import { createCluster, type Cluster, type ClusterHost } from '../support/cluster.js';
import { REPO_ROOT, makeTempDir, parseFields, restartIfDied, useDaemonCleanup, waitFor, type CliResult } from '../support/daemon.js';
import { GUEST_KERNEL } from '../support/guest-xml.js';
import { expectContinuity, waitHeartbeats, type HeartbeatHost } from '../support/heartbeat.js';
import { netnsAvailable, inNetns } from '../support/netns.js';

const NAME = 'deb12';
let cluster: Cluster | undefined;
let A: ClusterHost;
let B: ClusterHost;
let file: string;
/** Holds 127.0.0.1:5900 in B's namespace, so that B's QEMU must take another port. */
let portHolder: ChildProcess | undefined;

// The tests follow one guest from define to migration, so the daemons keep their domains between tests; one that died is restarted (and the test fails).
const restartA = restartIfDied(() => A?.d);
const restartB = restartIfDied(() => B?.d);
useDaemonCleanup(async () => {
  const results = await Promise.allSettled([restartA(), restartB()]);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
});

beforeAll(async () => {
  if (!netnsAvailable()) return;
  cluster = await createCluster({ prefix: `frw${process.pid % 10000}`, subnet: 171, hosts: 2 });
  [A, B] = cluster.hosts as [ClusterHost, ClusterHost];
  file = join(makeTempDir('ferry-virt-install-'), 'deb12.xml');
  writeFileSync(file, readFileSync(join(REPO_ROOT, 'examples', 'virt-install-guest.xml'), 'utf8').replace('KERNEL', GUEST_KERNEL));
});

afterAll(async () => {
  portHolder?.kill('SIGKILL');
  await cluster?.destroy();
  cluster = undefined;
});

/**
 * The elements of the example Ferry keeps without acting on (docs/domain-xml.md, "Kept but ignored");
 * the USB, virtio-serial, channel, inputs, VNC, video, balloon and rng are honoured, and so are
 * vmport, the timers and `<pm>` (machine options).
 */
const IGNORED = ['controller (pcie-root-port)'];

const hb = (h: ClusterHost): HeartbeatHost => ({ label: h.name, d: h.d });

/** Runs `ferry ARGS` on a host and expects it to succeed (expectCliOk); its result. */
async function ok(h: ClusterHost, args: string[], opts: { json?: boolean; timeoutMs?: number } = {}): Promise<CliResult> {
  const r = await h.ferry(args, opts);
  expectCliOk(r, `ferry ${args.join(' ')} on ${h.name}`);
  return r;
}

/** A QMP command through `ferry qemu-monitor-command`; its `return`. */
async function qmp<T>(h: ClusterHost, execute: string, args?: Record<string, unknown>): Promise<T> {
  const r = await ok(h, ['qemu-monitor-command', NAME, JSON.stringify({ execute, ...(args && { arguments: args }) })], { json: true });
  return (r.json as { return: T }).return;
}

interface PciDevice {
  qdev_id: string;
  class_info: { desc?: string };
  pci_bridge?: { devices?: PciDevice[] };
}

/** qdev ids of every PCI device, bridges' children included. */
async function pciIds(h: ClusterHost): Promise<string[]> {
  const buses = await qmp<Array<{ devices: PciDevice[] }>>(h, 'query-pci');
  const out: string[] = [];
  const walk = (devs: PciDevice[]): void => {
    for (const d of devs) {
      if (d.qdev_id !== '') out.push(d.qdev_id);
      walk(d.pci_bridge?.devices ?? []);
    }
  };
  for (const b of buses) walk(b.devices);
  return out;
}

/** The `<graphics port>` and channel `<source path>` of the live XML. */
async function liveChoices(h: ClusterHost): Promise<{ port: number; socket: string; xml: string }> {
  const xml = (await ok(h, ['dumpxml', NAME])).stdout;
  const port = /<graphics type='vnc' port='(\d+)' autoport='yes'/.exec(xml)?.[1];
  const socket = /<channel type='unix'><source mode='bind' path='([^']+)'\/><target type='virtio' name='org\.qemu\.guest_agent\.0'\/>/.exec(xml)?.[1];
  expect(port, `live graphics port on ${h.name}:\n${xml}`).toBeDefined();
  expect(socket, `live channel socket on ${h.name}:\n${xml}`).toBeDefined();
  return { port: Number(port), socket: socket!, xml };
}

/** TCP listeners of a host's namespace on `port`, as `address:port`. */
function listenersOn(h: ClusterHost, port: number): string[] {
  const cmd = inNetns(h.ns, ['ss', '-Hltn', `sport = :${port}`]);
  const out = execFileSync(cmd.file, cmd.args, { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.trim() !== '').map((l) => l.trim().split(/\s+/)[3]!);
}

/** Every honoured device is in the QEMU of `h`, and the per-host choices are what the live XML says. */
async function expectDevices(h: ClusterHost, vncPort: number): Promise<void> {
  const ids = await pciIds(h);
  for (const id of ['usb', 'virtio-serial0', 'balloon0', 'rng0', 'video0']) expect(ids, `PCI devices on ${h.name}`).toContain(id);
  const peripherals = await qmp<Array<{ name: string; type: string }>>(h, 'qom-list', { path: '/machine/peripheral' });
  const types = Object.fromEntries(peripherals.map((p) => [p.name, p.type]));
  expect(types).toMatchObject({
    usb: 'child<qemu-xhci>',
    input0: 'child<usb-tablet>',
    'virtio-serial0': 'child<virtio-serial-pci>',
    channel0: 'child<virtserialport>',
    balloon0: 'child<virtio-balloon-pci>',
    rng0: 'child<virtio-rng-pci>',
    video0: 'child<virtio-vga>',
  });
  expect(await qmp<string>(h, 'qom-get', { path: '/machine/peripheral/channel0', property: 'name' })).toBe('org.qemu.guest_agent.0');
  // The tablet, and the ps2 mouse of the machine's built-in i8042 (honoured implicitly).
  const mice = (await qmp<Array<{ name: string }>>(h, 'query-mice')).map((m) => m.name);
  expect(mice).toEqual(expect.arrayContaining(['QEMU HID Tablet', 'QEMU PS/2 Mouse']));
  expect(await qmp<string>(h, 'qom-get', { path: '/objects/objrng0', property: 'filename' })).toBe('/dev/urandom');
  // Machine options: no vmport and no HPET, the RTC slews lost ticks, S3 and S4 off (<pm> enabled='no').
  const machine = await qmp<Array<{ name: string; type: string }>>(h, 'qom-list', { path: '/machine/unattached' });
  const machineTypes = machine.map((m) => m.type);
  expect(machineTypes).not.toContain('child<hpet>');
  expect(machineTypes).not.toContain('child<vmport>');
  const child = (type: string): string => `/machine/unattached/${machine.find((m) => m.type === `child<${type}>`)!.name}`;
  expect(await qmp<string>(h, 'qom-get', { path: child('mc146818rtc'), property: 'lost_tick_policy' })).toBe('slew');
  expect(await qmp<number>(h, 'qom-get', { path: child('ICH9-LPC'), property: 'disable_s3' })).toBe(1);
  expect(await qmp<number>(h, 'qom-get', { path: child('ICH9-LPC'), property: 'disable_s4' })).toBe(1);
  // The balloon reports the guest's whole RAM (QEMU rounds the 262148 KiB up to 8 KiB).
  expect((await qmp<{ actual: number }>(h, 'query-balloon')).actual).toBe(Math.ceil((262148 * 1024) / 8192) * 8192);

  const live = await liveChoices(h);
  // The channel: ferryd's socket under this host's run directory, which exists and is QEMU's chardev.
  expect(live.socket.startsWith(join(h.d.runDir, 'qemu') + '/'), `${live.socket} under ${h.d.runDir}`).toBe(true);
  expect(statSync(live.socket).isSocket(), `${live.socket} is a socket`).toBe(true);
  const chardevs = await qmp<Array<{ label: string; filename: string }>>(h, 'query-chardev');
  expect(chardevs.find((c) => c.label === 'charchannel0')?.filename).toContain(live.socket);

  // VNC: on 127.0.0.1 only, at the port the live XML shows.
  const vnc = await qmp<{ enabled: boolean; host: string; service: string; family: string }>(h, 'query-vnc');
  expect(vnc).toMatchObject({ enabled: true, host: '127.0.0.1', family: 'ipv4', service: String(vncPort) });
  expect(live.port).toBe(vncPort);
  expect(listenersOn(h, vncPort)).toEqual([`127.0.0.1:${vncPort}`]);
  expect((await ok(h, ['vncdisplay', NAME])).stdout.trim()).toBe(`127.0.0.1:${vncPort - 5900}`);
}

/** Starts a listener on 127.0.0.1:`port` inside `h`'s namespace; resolves once it listens. */
async function holdPort(h: ClusterHost, port: number): Promise<ChildProcess> {
  const script = `require('net').createServer().listen(${port}, '127.0.0.1', () => console.log('ready'))`;
  const cmd = inNetns(h.ns, [process.execPath, '-e', script]);
  const child = spawn(cmd.file, cmd.args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  let ready = false;
  lines.on('line', (l) => {
    if (l === 'ready') ready = true;
  });
  await waitFor(`a listener on 127.0.0.1:${port} in ${h.ns}`, () => ready, 10_000, 50);
  return child;
}

describe.skipIf(!netnsAvailable())('a virt-install-style domain XML', () => {
  it('defines without an error, warning once about what is kept without effect', async () => {
    const r = await ok(A, ['define', file]);
    expect(r.stdout).toContain("Domain 'deb12' defined");
    const warning = r.stderr.split('\n').filter((l) => l.startsWith('warning:'));
    expect(warning, r.stderr).toHaveLength(1);
    for (const e of IGNORED) expect(warning[0]).toContain(e);
    // What Ferry runs the guest with is not in the list.
    for (const honoured of ['serial (pty)', 'console (pty)', 'metadata', 'cpu', 'controller (usb)', 'controller (virtio-serial)', 'channel', 'input', 'graphics', 'video', 'memballoon', 'rng', 'pcie-root)', 'vmport', 'timer', 'pm']) {
      expect(warning[0]).not.toContain(honoured);
    }
    expect(A.d.stderr()).toMatch(/domain 'deb12': kept in its XML with no effect on the guest/);
  });

  it('dumps back with every element kept, and dominfo lists the ignored ones', async () => {
    const xml = (await ok(A, ['dumpxml', '--inactive', NAME])).stdout;
    for (const needle of ["machine='pc-q35-7.2'", 'libosinfo:os', "model='pcie-root-port'", "model='qemu-xhci'", "<input type='tablet' bus='usb'>", "<graphics type='vnc' port='-1'", "<memballoon model='virtio'", "<rng model='virtio'", "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/>", "<timer name='hpet' present='no'", '<suspend-to-mem', "<vmport state='off'"]) {
      expect(xml, needle).toContain(needle);
    }
    const info = parseFields((await ok(A, ['dominfo', NAME])).stdout);
    expect(info.Ignored?.split(', ')).toEqual(IGNORED);
  });

  it('starts on q35 with every honoured device in QEMU, VNC on 127.0.0.1 only, the channel socket in its run directory', async () => {
    await ok(A, ['start', NAME]);
    expect(parseFields((await ok(A, ['dominfo', NAME])).stdout).State).toBe('running');
    await waitHeartbeats(hb(A), NAME);
    await expectDevices(A, 5900);
    // A restarted ferryd re-attaches to the QEMU and shows the same choices (from its status file's live XML).
    const before = await liveChoices(A);
    await A.d.restart();
    expect((await liveChoices(A)).xml).toBe(before.xml);
    await expectDevices(A, 5900);
    // The definition keeps what the user wrote: the port and socket are the running guest's.
    expect((await ok(A, ['dumpxml', '--inactive', NAME])).stdout).toContain("<graphics type='vnc' port='-1' autoport='yes'");
  });

  it('migrates live to a host whose port 5900 is taken: B chooses its own VNC port and socket, the guest beats on', async () => {
    portHolder = await holdPort(B, 5900);
    const before = await liveChoices(A);
    await ok(A, ['migrate', '--live', '--p2p', '--persistent', '--undefinesource', NAME, B.tcpUri], { json: true, timeoutMs: 120_000 });
    await expectContinuity(NAME, hb(A), hb(B));
    await expectDevices(B, 5901);
    const after = await liveChoices(B);
    expect(after.socket).not.toBe(before.socket);
    // A's QEMU is gone, and with it its channel socket.
    await waitFor(`A's channel socket ${before.socket} gone`, () => !existsSync(before.socket), 10_000, 100);
    // Nothing of A's choices travelled as configuration.
    expect(after.xml).not.toContain(A.d.runDir);
    expect(await domainNames(A)).toEqual([]);
    expect(parseFields((await ok(B, ['dominfo', NAME])).stdout).Ignored?.split(', ')).toEqual(IGNORED);
    await ok(B, ['destroy', NAME]);
    // Shut off: no display; the definition keeps autoport.
    expect(expectCliError(await B.ferry(['vncdisplay', NAME], { json: true }), 'operation_invalid', 55, 'vncdisplay of a shut-off domain')).toContain('is not running');
    expect((await ok(B, ['dumpxml', NAME])).stdout).toContain("<graphics type='vnc' port='-1' autoport='yes'");
    await ok(B, ['undefine', NAME]);
  });
});
