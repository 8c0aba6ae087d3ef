/**
 * A domain XML as virt-install writes it (issue 14, item 6): q35 machine,
 * pcie-root-port controllers, qemu-xhci USB with a tablet, ps2 inputs,
 * VNC graphics, virtio video, memballoon, virtio rng, a guest-agent
 * channel, pty serial and console, libosinfo metadata, clock timers, `pm`
 * and `features` (examples/virt-install-guest.xml, with the test guest's
 * kernel). It defines without an error, dumps back with every element
 * kept, starts and runs; what Ferry keeps without acting on is listed once
 * at define (a CLI warning) and in `dominfo`, never dropped silently.
 *
 * Needs `npm run build` and `make -C guest`; one QEMU.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, ferry, ferryOk, makeTempDir, parseFields, restartIfDied, startDaemon, useDaemonCleanup, waitFor, type FerrydHandle } from '../support/daemon.js';
import { GUEST_KERNEL, consoleLog } from '../support/guest-xml.js';

let d: FerrydHandle;
let file: string;

useDaemonCleanup(restartIfDied(() => d));

beforeAll(async () => {
  d = await startDaemon({ hostName: 'virt-install-host' });
  file = join(makeTempDir('ferry-virt-install-'), 'deb12.xml');
  writeFileSync(file, readFileSync(join(REPO_ROOT, 'examples', 'virt-install-guest.xml'), 'utf8').replace('KERNEL', GUEST_KERNEL));
});

/** The elements of the example Ferry keeps without acting on (docs/domain-xml.md, "Kept but ignored"). */
const IGNORED = ['pm', 'controller (usb)', 'controller (pci)', 'controller (virtio-serial)', 'channel (unix)', 'input (tablet)', 'input (mouse)', 'input (keyboard)', 'graphics (vnc)', 'video', 'memballoon (virtio)', 'rng (virtio)'];

describe('a virt-install-style domain XML', () => {
  it('defines without an error, warning once about what is kept without effect', async () => {
    const r = await ferry(['define', file], { uri: d.uri });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("Domain 'deb12' defined");
    const warning = r.stderr.split('\n').filter((l) => l.startsWith('warning:'));
    expect(warning, r.stderr).toHaveLength(1);
    for (const e of IGNORED) expect(warning[0]).toContain(e);
    // What Ferry runs the guest with is not in the list.
    for (const honoured of ['serial (pty)', 'console (pty)', 'metadata', 'cpu', 'clock']) expect(warning[0]).not.toContain(honoured);
    expect(d.stderr()).toMatch(/domain 'deb12': kept in its XML with no effect on the guest/);
  });

  it('dumps back with every element kept, and dominfo lists the ignored ones', async () => {
    const xml = (await ferryOk(['dumpxml', '--inactive', 'deb12'], { uri: d.uri })).stdout;
    for (const needle of ["machine='pc-q35-7.2'", 'libosinfo:os', "model='pcie-root-port'", "model='qemu-xhci'", "<input type='tablet' bus='usb'>", "<graphics type='vnc'", "<memballoon model='virtio'", "<rng model='virtio'", 'org.qemu.guest_agent.0', "<timer name='hpet' present='no'", '<suspend-to-mem', "<vmport state='off'"]) {
      expect(xml, needle).toContain(needle);
    }
    const info = parseFields((await ferryOk(['dominfo', 'deb12'], { uri: d.uri })).stdout);
    expect(info.Ignored?.split(', ')).toEqual(IGNORED);
  });

  it('starts on the q35 machine and runs: the guest prints its heartbeat', async () => {
    await ferryOk(['start', 'deb12'], { uri: d.uri });
    expect(parseFields((await ferryOk(['dominfo', 'deb12'], { uri: d.uri })).stdout).State).toBe('running');
    await waitFor('heartbeats of deb12', async () => ((await consoleLog(d.uri, 'deb12')).log.heartbeats.length >= 3 ? true : undefined), 30_000, 200);
    await ferryOk(['destroy', 'deb12'], { uri: d.uri });
  });
});
