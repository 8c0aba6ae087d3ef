/**
 * Debian's stock `virsh` against one ferryd speaking libvirt's own wire
 * protocol (issue 12): over qemu+unix and qemu+tcp the domain lifecycle,
 * list filters, dominfo/domstate/dumpxml, autostart, errors, job and
 * migration tuning queries and lifecycle events, each checked as a virsh
 * user reads them; qemu+tls with mutual TLS; and hostile bytes on the
 * libvirt TCP port. No migrations here (libvirt-migrate*.test.ts).
 *
 * Needs `npm run build`, `make -C guest`, libvirt-clients and
 * python3-libvirt (scripts/setup.sh installs them).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emptyDaemon, ferryOk, makeTempDir, runDaemonToExit, startDaemon, restartIfDied, useDaemonCleanup, waitFor, type FerrydHandle, type ListRow } from '../support/daemon.js';
import { counterAbove, heartbeats, waitForHeartbeat, writeGuestXml } from '../support/guest-xml.js';
import {
  KEEPALIVE_PING,
  KEEPALIVE_PONG,
  KEEPALIVE_PROGRAM,
  MsgStatus,
  MsgType,
  REMOTE_PROGRAM,
  VirErr,
  decodeRemoteError,
  encodeWire,
  wireExchange,
  type WireTarget,
} from '../support/libvirt-wire.js';
import { libvirtClientEnv, libvirtTcpUri, libvirtTlsUri, libvirtUnixUri, parseVirshFields, startVirshEventLoop, virsh, virshList, virshListNames, virshOk } from '../support/virsh.js';

const HOST_NAME = 'virsh-host';

let d: FerrydHandle;
let xmlDir: string;

/**
 * Between tests: a test that killed the shared ferryd fails with its log
 * tail, and the daemon is started again so that the other tests still say
 * something about the server.
 */
useDaemonCleanup(restartIfDied(() => d));

beforeAll(async () => {
  xmlDir = makeTempDir('ferry-virsh-xml-');
  d = await startDaemon({ hostName: HOST_NAME, libvirtSocket: true, libvirtTcp: '127.0.0.1:0' });
});

const unixUri = (): string => libvirtUnixUri(d.libvirtSocketPath!);
const tcpUri = (): string => libvirtTcpUri('127.0.0.1', d.libvirtTcpPort!);

function rowOf(rows: ListRow[], name: string): ListRow | undefined {
  return rows.find((r) => r.name === name);
}

/** `virsh domstate --reason NAME`, trimmed. */
async function domstate(uri: string, name: string): Promise<string> {
  return (await virshOk(uri, ['domstate', '--reason', name])).stdout.trim();
}

/** `virsh dominfo NAME` as fields. */
async function dominfo(uri: string, name: string): Promise<Record<string, string>> {
  return parseVirshFields((await virshOk(uri, ['dominfo', name])).stdout);
}

/** After an error or abuse: the daemon process runs and virsh still lists over `uri`. */
async function stillServes(uri: string): Promise<void> {
  expect(d.alive(), `ferryd died; log tail:\n${d.stderr().slice(-2000)}`).toBe(true);
  const r = await virsh(uri, ['list', '--all']);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/Id\s+Name\s+State/);
  expect(d.stderr()).not.toMatch(/internal error|TypeError|RangeError|unhandled/i);
}

describe('the libvirt listeners', () => {
  it('the ready line names the libvirt socket (mode 0600) and TCP port, with a warning for the unauthenticated one', () => {
    expect(d.libvirtSocketPath).toBe(join(d.runDir, 'libvirt-sock'));
    const st = statSync(d.libvirtSocketPath!);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(d.libvirtTcpPort).toBeGreaterThan(0);
    expect(d.stderr()).toMatch(/ready: .*libvirt-unix \S+/);
    expect(d.stderr()).toMatch(/ready: .*libvirt-tcp 127\.0\.0\.1:\d+/);
    expect(d.stderr()).toMatch(/WARNING/);
  });

  it('--libvirt-listen-tcp without --insecure and --libvirt-listen-tls without --tls-dir are refused at start-up', async () => {
    const dir = makeTempDir('ferryd-libvirt-refuse-');
    const base = ['--state-dir', join(dir, 'state'), '--run-dir', join(dir, 'run'), '--accel', 'tcg'];
    const tcp = await runDaemonToExit([...base, '--libvirt-listen-tcp', '127.0.0.1:0']);
    expect(tcp.code).not.toBe(0);
    expect(tcp.code).not.toBeNull();
    expect(tcp.stderr).toContain('--insecure');
    expect(tcp.stderr).not.toMatch(/ready:/);
    const tls = await runDaemonToExit([...base, '--libvirt-listen-tls', '127.0.0.1:0']);
    expect(tls.code).not.toBe(0);
    expect(tls.code).not.toBeNull();
    expect(tls.stderr).toContain('--tls-dir');
  });
});

for (const transport of ['unix', 'tcp'] as const) {
  describe(`virsh over qemu+${transport}`, () => {
    const uri = (): string => (transport === 'unix' ? unixUri() : tcpUri());
    const P = `${transport}-pers`;
    const T = `${transport}-trans`;
    const O = `${transport}-off`;
    let pFile: string;
    let tFile: string;
    let oFile: string;
    let uuid: string;

    beforeAll(() => {
      pFile = writeGuestXml(xmlDir, { name: P });
      tFile = writeGuestXml(xmlDir, { name: T });
      oFile = writeGuestXml(xmlDir, { name: O });
    });
    afterAll(async () => {
      if (d.alive()) await emptyDaemon(d.uri);
    });

    it('uri, hostname, version and nodeinfo', async () => {
      expect((await virshOk(uri(), ['uri'])).stdout.trim()).toBe(uri());
      expect((await virshOk(uri(), ['hostname'])).stdout.trim()).toBe(HOST_NAME);

      const v = await virshOk(uri(), ['version']);
      const ver = parseVirshFields(v.stdout);
      expect(ver['Using library'], v.stdout).toMatch(/^libvirt \d+\.\d+\.\d+$/);
      expect(ver['Using API'], v.stdout).toMatch(/^\S+ \d+\.\d+\.\d+$/);
      expect(ver['Running hypervisor'], v.stdout).toMatch(/^\S+ \d+\.\d+\.\d+$/);

      const n = await virshOk(uri(), ['nodeinfo']);
      const node = parseVirshFields(n.stdout);
      expect(Number(node['CPU(s)']), n.stdout).toBeGreaterThan(0);
      const memKiB = Number(/^(\d+) KiB$/.exec(node['Memory size'] ?? '')?.[1]);
      expect(memKiB, n.stdout).toBeGreaterThan(0);
      expect(memKiB, n.stdout).toBeLessThanOrEqual(Math.ceil(totalmem() / 1024));
      expect(node['CPU model'], n.stdout).toBeTruthy();
    });

    it('define, then start: list, domstate --reason, dominfo, domid/domuuid/domname, dumpxml', async () => {
      const def = await virshOk(uri(), ['define', pFile]);
      expect(def.stdout).toContain(`Domain '${P}' defined from ${pFile}`);
      expect(rowOf(await virshList(uri(), ['--all']), P)).toEqual({ id: '-', name: P, state: 'shut off' });
      expect(rowOf(await virshList(uri(), []), P), 'list without --all shows only active domains').toBeUndefined();
      expect(await domstate(uri(), P)).toMatch(/^shut off/);
      expect((await virshOk(uri(), ['domid', P])).stdout.trim(), 'a shut-off domain has no Id').toBe('-');
      uuid = (await virshOk(uri(), ['domuuid', P])).stdout.trim();
      expect(uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect((await ferryOk(['domuuid', P], { uri: d.uri })).stdout.trim(), 'the UUID ferry shows').toBe(uuid);
      expect(await dominfo(uri(), P)).toMatchObject({ Id: '-', Name: P, UUID: uuid, State: 'shut off', Persistent: 'yes', Autostart: 'disable' });

      expect((await virshOk(uri(), ['start', P])).stdout).toContain(`Domain '${P}' started`);
      await waitForHeartbeat(d.uri, P, heartbeats(2), 30_000);
      expect(await domstate(uri(), P)).toBe('running (booted)');
      const row = rowOf(await virshList(uri(), []), P);
      expect(row?.state).toBe('running');
      expect(row?.id).toMatch(/^[1-9]\d*$/);
      expect((await virshOk(uri(), ['domid', P])).stdout.trim()).toBe(row!.id);
      expect((await virshOk(uri(), ['domname', row!.id])).stdout.trim()).toBe(P);
      expect((await virshOk(uri(), ['domname', uuid])).stdout.trim()).toBe(P);
      expect((await virshOk(uri(), ['domuuid', row!.id])).stdout.trim()).toBe(uuid);

      expect(await dominfo(uri(), P)).toMatchObject({
        Id: row!.id,
        Name: P,
        UUID: uuid,
        'OS Type': 'hvm',
        State: 'running',
        'CPU(s)': '1',
        'Max memory': '262148 KiB',
        'Used memory': '262148 KiB',
        Persistent: 'yes',
        Autostart: 'disable',
      });

      const live = (await virshOk(uri(), ['dumpxml', P])).stdout;
      expect(live).toContain(`<name>${P}</name>`);
      expect(live).toContain(`<uuid>${uuid}</uuid>`);
      const inactive = (await virshOk(uri(), ['dumpxml', '--inactive', P])).stdout;
      expect(inactive).toContain(`<name>${P}</name>`);
      expect(inactive).toContain(`<uuid>${uuid}</uuid>`);
      expect(inactive, 'the inactive definition has no domain id').not.toMatch(/<domain[^>]*\sid=/);
      // The same document ferry's own dumpxml shows.
      expect(inactive.trim()).toBe((await ferryOk(['dumpxml', '--inactive', P], { uri: d.uri })).stdout.trim());
    });

    it('suspend and resume: paused (user), then running (unpaused) with the heartbeat going on', async () => {
      expect((await virshOk(uri(), ['suspend', P])).stdout).toContain(`Domain '${P}' suspended`);
      expect(await domstate(uri(), P)).toBe('paused (user)');
      expect(rowOf(await virshList(uri(), []), P)?.state).toBe('paused');
      expect((await dominfo(uri(), P)).State).toBe('paused');

      const before = await waitForHeartbeat(d.uri, P, heartbeats(1), 10_000);
      expect((await virshOk(uri(), ['resume', P])).stdout).toContain(`Domain '${P}' resumed`);
      expect(await domstate(uri(), P)).toBe('running (unpaused)');
      await waitForHeartbeat(d.uri, P, counterAbove(before.lastHeartbeat!.counter), 20_000);
    });

    it('create makes a transient domain; list --all, --inactive, --state-*, --persistent, --transient, --autostart', async () => {
      expect((await virshOk(uri(), ['create', tFile])).stdout).toContain(`Domain '${T}' created from ${tFile}`);
      await virshOk(uri(), ['define', oFile]);
      expect((await virshOk(uri(), ['autostart', O])).stdout).toContain(`Domain '${O}' marked as autostarted`);
      expect(await domstate(uri(), T)).toBe('running (booted)');
      expect((await dominfo(uri(), T)).Persistent).toBe('no');

      expect(await virshListNames(uri(), [])).toEqual([P, T].sort());
      expect(await virshListNames(uri(), ['--all'])).toEqual([P, T, O].sort());
      expect(await virshListNames(uri(), ['--inactive'])).toEqual([O]);
      expect(await virshListNames(uri(), ['--all', '--state-running'])).toEqual([P, T].sort());
      expect(await virshListNames(uri(), ['--all', '--state-paused'])).toEqual([]);
      expect(await virshListNames(uri(), ['--all', '--state-shutoff'])).toEqual([O]);
      expect(await virshListNames(uri(), ['--all', '--persistent'])).toEqual([P, O].sort());
      expect(await virshListNames(uri(), ['--all', '--transient'])).toEqual([T]);
      expect(await virshListNames(uri(), ['--all', '--autostart'])).toEqual([O]);
      expect(await virshListNames(uri(), ['--all', '--no-autostart'])).toEqual([P, T].sort());

      await virshOk(uri(), ['suspend', P]);
      expect(await virshListNames(uri(), ['--all', '--state-paused'])).toEqual([P]);
      expect(await virshListNames(uri(), ['--state-running'])).toEqual([T]);
      expect(rowOf(await virshList(uri(), ['--all']), P)?.state).toBe('paused');
      await virshOk(uri(), ['resume', P]);
      expect(await virshListNames(uri(), ['--all', '--state-paused'])).toEqual([]);
    });

    it('autostart and autostart --disable show in dominfo and list --autostart', async () => {
      expect((await dominfo(uri(), O)).Autostart).toBe('enable');
      expect((await virshOk(uri(), ['autostart', '--disable', O])).stdout).toContain(`Domain '${O}' unmarked as autostarted`);
      expect((await dominfo(uri(), O)).Autostart).toBe('disable');
      expect(await virshListNames(uri(), ['--all', '--autostart'])).toEqual([]);
      await virshOk(uri(), ['autostart', P]);
      expect((await dominfo(uri(), P)).Autostart).toBe('enable');
      expect(await virshListNames(uri(), ['--all', '--autostart'])).toEqual([P]);
      await virshOk(uri(), ['autostart', '--disable', P]);
      expect(await virshListNames(uri(), ['--all', '--autostart'])).toEqual([]);
    });

    it('destroy and undefine: shut off (destroyed), a transient domain vanishes, an undefined one is gone', async () => {
      expect((await virshOk(uri(), ['destroy', P])).stdout).toContain(`Domain '${P}' destroyed`);
      expect(await domstate(uri(), P)).toBe('shut off (destroyed)');
      expect(rowOf(await virshList(uri(), ['--all']), P)).toEqual({ id: '-', name: P, state: 'shut off' });
      expect((await dominfo(uri(), P)).State).toBe('shut off');

      expect((await virshOk(uri(), ['destroy', T])).stdout).toContain(`Domain '${T}' destroyed`);
      expect(rowOf(await virshList(uri(), ['--all']), T), 'a destroyed transient domain is gone').toBeUndefined();

      expect((await virshOk(uri(), ['undefine', P])).stdout).toContain(`Domain '${P}' has been undefined`);
      expect((await virshOk(uri(), ['undefine', O])).stdout).toContain(`Domain '${O}' has been undefined`);
      expect(await virshListNames(uri(), ['--all'])).toEqual([]);
      const gone = await virsh(uri(), ['dominfo', P]);
      expect(gone.code).toBe(1);
      expect(gone.stderr).toContain(`error: failed to get domain '${P}'`);
    });
  });
}

describe('errors as virsh shows them', () => {
  const RUN = 'err-run';
  const OFF = 'err-off';

  beforeAll(async () => {
    await virshOk(unixUri(), ['create', writeGuestXml(xmlDir, { name: RUN })]);
    await virshOk(unixUri(), ['define', writeGuestXml(xmlDir, { name: OFF })]);
  });
  afterAll(async () => {
    if (d.alive()) await emptyDaemon(d.uri);
  });

  it('an unknown domain: failed to get domain, and libvirt reports VIR_ERR_NO_DOMAIN', async () => {
    const r = await virsh(unixUri(), ['dominfo', 'nosuch']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error: failed to get domain 'nosuch'");
    expect(r.stdout.trim()).toBe('');
    // virsh hides the lookup's own error; the library's caller sees it.
    const py = await pythonLibvirt(
      unixUri(),
      `
try:
    conn.lookupByName('nosuch')
    print('found')
except libvirt.libvirtError as e:
    print(e.get_error_code())
    print(e.get_error_message())
`,
    );
    expect(py.code, py.stderr).toBe(0);
    const [code, message] = py.stdout.trim().split('\n');
    expect(Number(code)).toBe(VirErr.noDomain);
    expect(message).toMatch(/^Domain not found\b/);
    expect(message).toContain('nosuch');
    await stillServes(unixUri());
  });

  it('operations not valid in the domain state: Requested operation is not valid', async () => {
    // virsh itself refuses to start an active domain, after asking the daemon for its id.
    const start = await virsh(unixUri(), ['start', RUN]);
    expect(start.code).toBe(1);
    expect(start.stderr).toMatch(/error: Domain '?[\w-]*'? ?is already active/);

    const suspend = await virsh(unixUri(), ['suspend', OFF]);
    expect(suspend.code).toBe(1);
    expect(suspend.stderr).toContain(`error: Failed to suspend domain '${OFF}'`);
    expect(suspend.stderr).toContain('error: Requested operation is not valid');

    const destroy = await virsh(unixUri(), ['destroy', OFF]);
    expect(destroy.code).toBe(1);
    expect(destroy.stderr).toContain('error: Requested operation is not valid');

    const undefine = await virsh(unixUri(), ['undefine', RUN]);
    expect(undefine.code).toBe(1);
    expect(undefine.stderr).toContain('error: Requested operation is not valid');
    expect(await domstate(unixUri(), RUN)).toMatch(/^running/);
    await stillServes(unixUri());
  });

  it.each([
    ['domblkstat', RUN],
    ['snapshot-list', RUN],
    ['net-list'],
  ])('an unsupported command (virsh %s) is not supported by the connection driver', async (...args: string[]) => {
    const r = await virsh(unixUri(), args);
    expect(r.code, r.stdout).toBe(1);
    expect(r.stderr).toContain('this function is not supported by the connection driver');
    await stillServes(unixUri());
  });

  it('malformed XML to define is an XML error and defines nothing', async () => {
    const bad = join(xmlDir, 'malformed.xml');
    writeFileSync(bad, "<domain type='qemu'><name>half</name><memory unit='KiB'>1024</memory>\n");
    const r = await virsh(unixUri(), ['define', bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error: Failed to define domain from ${bad}`);
    expect(r.stderr).toMatch(/XML/);
    expect(await virshListNames(unixUri(), ['--all'])).toEqual([OFF, RUN].sort());
    await stillServes(unixUri());
  });
});

describe('jobs and migration tuning on a running domain', () => {
  const G = 'jobs';
  beforeAll(async () => {
    await virshOk(tcpUri(), ['create', writeGuestXml(xmlDir, { name: G })]);
  });
  afterAll(async () => {
    if (d.alive()) await emptyDaemon(d.uri);
  });

  it('domjobinfo with no job shows Job type None', async () => {
    const r = await virshOk(tcpUri(), ['domjobinfo', G]);
    expect(r.stdout).toMatch(/^Job type:\s+None\s*$/m);
    expect(parseVirshFields(r.stdout)['Job type']).toBe('None');
  });

  it('migrate-setmaxdowntime/getmaxdowntime and migrate-setspeed/getspeed: set, then get returns the value (ferry sees it too)', async () => {
    await virshOk(tcpUri(), ['migrate-setmaxdowntime', G, '500']);
    expect((await virshOk(tcpUri(), ['migrate-getmaxdowntime', G])).stdout.trim()).toBe('500');
    expect((await ferryOk(['migrate-getmaxdowntime', G], { uri: d.uri })).stdout.trim()).toBe('500');

    await virshOk(tcpUri(), ['migrate-setspeed', G, '25']);
    expect((await virshOk(tcpUri(), ['migrate-getspeed', G])).stdout.trim()).toBe('25');
    expect((await ferryOk(['migrate-getspeed', G], { uri: d.uri })).stdout.trim()).toBe('25');
    await virshOk(tcpUri(), ['migrate-setspeed', G, '--bandwidth', '40']);
    expect((await virshOk(tcpUri(), ['migrate-getspeed', G])).stdout.trim()).toBe('40');
  });
});

describe('virsh event --loop --all', () => {
  const G = 'ev';
  const PROBE = 'ev-probe';
  let loop: ReturnType<typeof startVirshEventLoop>;

  beforeAll(async () => {
    loop = startVirshEventLoop(unixUri());
    // virsh says nothing once it listens: define a probe domain until its event comes through.
    const probeFile = writeGuestXml(xmlDir, { name: PROBE });
    await waitFor(
      'virsh event --loop to see a definition',
      async () => {
        if (loop.exited()) throw new Error(`virsh event exited: ${loop.stderr()}`);
        if (loop.lines().some((l) => l.startsWith(`event 'lifecycle' for domain '${PROBE}': Defined`))) return true;
        await virshOk(unixUri(), ['define', probeFile]);
        return false;
      },
      30_000,
      500,
    );
    await virshOk(unixUri(), ['undefine', PROBE]);
  });
  afterAll(async () => {
    await loop?.stop();
    if (d.alive()) await emptyDaemon(d.uri);
  });

  const eventLine = (what: string) => `event 'lifecycle' for domain '${G}': ${what}`;
  const seen = async (what: string): Promise<void> => {
    try {
      await waitFor(`virsh event to print "${eventLine(what)}"`, () => loop.lines().includes(eventLine(what)), 20_000, 50);
    } catch (err) {
      throw new Error(`${(err as Error).message}\nvirsh event printed:\n${loop.lines().join('\n')}\nstderr: ${loop.stderr()}`);
    }
  };

  it('prints Defined, Started, Suspended, Resumed, Stopped and Undefined lifecycle events in order', async () => {
    await virshOk(unixUri(), ['define', writeGuestXml(xmlDir, { name: G })]);
    await seen('Defined Added');
    await virshOk(unixUri(), ['start', G]);
    await seen('Started Booted');
    await virshOk(unixUri(), ['suspend', G]);
    await seen('Suspended Paused');
    await virshOk(unixUri(), ['resume', G]);
    await seen('Resumed Unpaused');
    await virshOk(unixUri(), ['destroy', G]);
    await seen('Stopped Destroyed');
    await virshOk(unixUri(), ['undefine', G]);
    await seen('Undefined Removed');

    const mine = loop.lines().filter((l) => l.startsWith(`event 'lifecycle' for domain '${G}': `));
    const order = ['Defined Added', 'Started Booted', 'Suspended Paused', 'Resumed Unpaused', 'Stopped Destroyed', 'Undefined Removed'].map(eventLine);
    let at = -1;
    for (const line of order) {
      const next = mine.indexOf(line, at + 1);
      expect(next, `"${line}" after the earlier events in:\n${mine.join('\n')}`).toBeGreaterThan(at);
      at = next;
    }
    expect(loop.exited(), loop.stderr()).toBe(false);
    expect(loop.stderr()).toBe('');
  });
});

describe('virsh over qemu+tls (mutual TLS)', () => {
  let pki: string;
  let otherPki: string;
  let t: FerrydHandle;

  beforeAll(async () => {
    pki = join(makeTempDir('ferry-virsh-pki-'), 'pki');
    otherPki = join(makeTempDir('ferry-virsh-pki2-'), 'pki');
    await ferryOk(['tls-setup', pki, '--host', '127.0.0.1']);
    await ferryOk(['tls-setup', otherPki, '--host', '127.0.0.1']);
    t = await startDaemon({ hostName: 'virsh-tls-host', libvirtTls: '127.0.0.1:0', tlsDir: pki });
  });

  it('virsh list --all and hostname work with the PKI from tls-setup', async () => {
    expect(t.stderr()).toMatch(/ready: .*libvirt-tls 127\.0\.0\.1:\d+/);
    expect(t.libvirtTlsPort).toBeGreaterThan(0);
    const uri = libvirtTlsUri('127.0.0.1', t.libvirtTlsPort!, pki);
    const r = await virsh(uri, ['list', '--all']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Id\s+Name\s+State/);
    expect((await virshOk(uri, ['hostname'])).stdout.trim()).toBe('virsh-tls-host');
  });

  it('a PKI from another tls-setup is refused and the daemon stays up', async () => {
    const r = await virsh(libvirtTlsUri('127.0.0.1', t.libvirtTlsPort!, otherPki), ['list', '--all']);
    expect(r.code, r.stdout).not.toBe(0);
    expect(r.stderr).toMatch(/^error: /m);
    // virsh checks the server's certificate against its own CA and finds another issuer.
    expect(r.stderr).toMatch(/certificate/i);
    expect(r.stdout).not.toMatch(/Id\s+Name\s+State/);
    expect(t.alive()).toBe(true);
    const again = await virsh(libvirtTlsUri('127.0.0.1', t.libvirtTlsPort!, pki), ['list', '--all']);
    expect(again.code, again.stderr).toBe(0);
  });

  it('the server itself refuses a client certificate of another CA, and a client without one', async () => {
    // virsh refuses to present a certificate its own CA did not sign, so a raw TLS client does.
    const ca = readFileSync(join(pki, 'cacert.pem'));
    const foreign = { cert: readFileSync(join(otherPki, 'clientcert.pem')), key: readFileSync(join(otherPki, 'clientkey.pem')) };
    for (const creds of [foreign, {}]) {
      const outcome = await new Promise<string>((resolve) => {
        const s = tlsConnect({ host: '127.0.0.1', port: t.libvirtTlsPort!, ca, servername: 'localhost', ...creds });
        const done = (what: string) => {
          clearTimeout(timer);
          s.destroy();
          resolve(what);
        };
        const timer = setTimeout(() => done('no answer within 10 s'), 10_000);
        // libvirt's server confirms an accepted client with one byte (1) after the handshake; a refused one gets nothing.
        s.on('data', (b: Buffer) => done(`answered ${b.toString('hex')}`));
        s.once('error', (e) => done(`error: ${e.message}`));
        s.once('close', () => done('closed'));
      });
      expect(outcome, 'cert' in creds ? 'foreign client certificate' : 'no client certificate').toMatch(/^(error|closed)/);
    }
    expect(t.alive()).toBe(true);
    expect((await virsh(libvirtTlsUri('127.0.0.1', t.libvirtTlsPort!, pki), ['list', '--all'])).code).toBe(0);
  });
});

describe('hostile bytes on the libvirt TCP port', () => {
  const target = (): WireTarget => ({ host: '127.0.0.1', port: d.libvirtTcpPort! });

  it('garbage bytes (an HTTP request, random bytes with a huge length) are dropped with a close', async () => {
    const http = await wireExchange(target(), [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]);
    expect(http.closed, 'an HTTP request claims a length of 1.2 GB: the daemon closes').toBe(true);
    for (let i = 0; i < 3; i++) {
      const junk = randomBytes(4096);
      junk[0] = 0x7f;
      const r = await wireExchange(target(), [junk]);
      expect(r.closed, `random bytes, attempt ${i}`).toBe(true);
    }
    await stillServes(tcpUri());
  });

  it('a truncated frame followed by a close does not upset the daemon', async () => {
    const whole = encodeWire({ program: REMOTE_PROGRAM, procedure: 66, serial: 1 }, Buffer.alloc(72));
    await wireExchange(target(), [whole.subarray(0, 40)], { waitMs: 500, endAfter: true });
    await wireExchange(target(), [whole.subarray(0, 3)], { waitMs: 500, endAfter: true });
    await stillServes(tcpUri());
  });

  it('a frame claiming 1 GiB is refused at once with a close, without waiting for the bytes', async () => {
    const head = encodeWire({ program: REMOTE_PROGRAM, procedure: 1, serial: 1 });
    head.writeUInt32BE(1024 * 1024 * 1024, 0);
    const r = await wireExchange(target(), [head, Buffer.alloc(1024, 0x41)], { waitMs: 5_000 });
    expect(r.closed).toBe(true);
    await stillServes(tcpUri());
  });

  it('a valid header of an unknown program gets an error reply or a close', async () => {
    const r = await wireExchange(target(), [encodeWire({ program: 0x12345678, procedure: 1, serial: 5 })], { want: 1 });
    const answered = r.messages.some((m) => m.header.type === MsgType.reply && m.header.status === MsgStatus.error);
    expect(r.closed || answered, JSON.stringify(r.messages.map((m) => m.header))).toBe(true);
    await stillServes(tcpUri());
  });

  it('a call to an unknown procedure of the remote program gets a VIR_ERR_NO_SUPPORT reply, and the connection stays usable', async () => {
    const r = await wireExchange(target(), [encodeWire({ program: REMOTE_PROGRAM, procedure: 99_999, serial: 7 })], { want: 1 });
    expect(r.readError).toBeUndefined();
    expect(r.messages).toHaveLength(1);
    expect(r.messages[0]!.header).toEqual({ program: REMOTE_PROGRAM, version: 1, procedure: 99_999, type: MsgType.reply, serial: 7, status: MsgStatus.error });
    const err = decodeRemoteError(r.messages[0]!.body);
    expect(err.code).toBe(VirErr.noSupport);
    expect(err.message ?? '').toContain('this function is not supported by the connection driver');
    expect(r.closed, 'an unknown procedure must not close the connection').toBe(false);

    // Pipelined: one reply per call, each with its own serial.
    const calls = Array.from({ length: 50 }, (_, i) => encodeWire({ program: REMOTE_PROGRAM, procedure: 90_000 + i, serial: 100 + i }));
    const many = await wireExchange(target(), [Buffer.concat(calls)], { want: 50, waitMs: 10_000 });
    expect(many.messages.map((m) => m.header.serial).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => 100 + i));
    expect(many.messages.every((m) => m.header.status === MsgStatus.error && decodeRemoteError(m.body).code === VirErr.noSupport)).toBe(true);
    await stillServes(tcpUri());
  });

  it('a known procedure whose arguments do not decode gets an error reply', async () => {
    // REMOTE_PROC_CONNECT_OPEN takes a remote_string and a flags word; three bytes are neither.
    const r = await wireExchange(target(), [encodeWire({ program: REMOTE_PROGRAM, procedure: 1, serial: 9 }, Buffer.from([1, 2, 3]))], { want: 1 });
    const reply = r.messages.find((m) => m.header.serial === 9);
    if (reply) {
      expect(reply.header).toMatchObject({ program: REMOTE_PROGRAM, type: MsgType.reply, status: MsgStatus.error });
      expect(decodeRemoteError(reply.body).code).toBeGreaterThan(0);
    } else {
      expect(r.closed, 'neither an error reply nor a close').toBe(true);
    }
    await stillServes(tcpUri());
  });

  it('a keepalive PING is answered with a PONG', async () => {
    const r = await wireExchange(target(), [encodeWire({ program: KEEPALIVE_PROGRAM, procedure: KEEPALIVE_PING, type: MsgType.message, serial: 0 })], { want: 1 });
    expect(r.messages.map((m) => m.header)).toContainEqual(expect.objectContaining({ program: KEEPALIVE_PROGRAM, procedure: KEEPALIVE_PONG, type: MsgType.message }));
    await stillServes(tcpUri());
  });
});

/** Runs a python3-libvirt snippet with `conn = libvirt.open(URI)` already done. */
function pythonLibvirt(uri: string, body: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const script = `import sys, libvirt\nconn = libvirt.open(sys.argv[1])\n${body}\nconn.close()\n`;
  return new Promise((resolve, reject) => {
    execFile('/usr/bin/python3', ['-c', script, uri], { env: libvirtClientEnv(), timeout: 30_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: unknown; killed?: boolean }) | null;
      if (e && typeof e.code !== 'number') return reject(new Error(`python3-libvirt failed to run (${e.killed ? 'timed out' : e.message})\nstderr: ${stderr}`));
      resolve({ code: e ? (e.code as unknown as number) : 0, stdout, stderr });
    });
  });
}
