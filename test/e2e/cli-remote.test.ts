/**
 * ferry against ferryd over the network and over a hostile local socket:
 * mutual TLS with a test PKI from `ferry tls-setup`, the insecure TCP
 * listener, and garbage on the unix socket. No guests are started here.
 *
 * Needs `npm run build`.
 */
import { copyFileSync, existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { FrameDecoder, FrameKind, MAX_FRAME_BYTES, encodeJsonFrame, type Frame } from '../../src/api/framing.js';
import { ferry, ferryOk, makeTempDir, runDaemonToExit, startDaemon, useDaemonCleanup, waitFor, type FerrydHandle } from '../support/daemon.js';

useDaemonCleanup();

const tlsUri = (port: number, pki: string, extra = '') => `ferry+tls://127.0.0.1:${port}/system?pkipath=${encodeURIComponent(pki)}${extra}`;

describe('mutual TLS', () => {
  let pki: string;
  let otherPki: string;
  let d: FerrydHandle;

  beforeAll(async () => {
    pki = join(makeTempDir('ferry-pki-'), 'pki');
    otherPki = join(makeTempDir('ferry-pki2-'), 'pki');
    const r = await ferryOk(['tls-setup', pki, '--host', '127.0.0.1']);
    expect(r.stdout).toContain(pki);
    await ferryOk(['tls-setup', otherPki, '--host', '127.0.0.1']);
    d = await startDaemon({ hostName: 'e2e-tls-host', listenTls: '127.0.0.1:0', tlsDir: pki });
  });

  it('tls-setup writes a CA, server and client credentials; private keys are private', () => {
    for (const f of ['cacert.pem', 'servercert.pem', 'serverkey.pem', 'clientcert.pem', 'clientkey.pem']) {
      expect(existsSync(join(pki, f)), f).toBe(true);
    }
    expect(statSync(join(pki, 'serverkey.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(join(pki, 'clientkey.pem')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(pki, 'cacert.pem'), 'utf8')).not.toBe(readFileSync(join(otherPki, 'cacert.pem'), 'utf8'));
  });

  it('the ready line names the real TLS port and ferry+tls:// works with the matching PKI', async () => {
    expect(d.stderr()).toMatch(/ready: .*tls 127\.0\.0\.1:\d+/);
    expect(d.tlsPort).toBeGreaterThan(0);
    const r = await ferry(['list', '--all'], { uri: tlsUri(d.tlsPort!, pki) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Id\s+Name\s+State/);
    const h = await ferryOk(['hostname'], { uri: tlsUri(d.tlsPort!, pki) });
    expect(h.stdout.trim()).toBe('e2e-tls-host');
    // `localhost` is in the certificate too.
    const l = await ferry(['hostname'], { uri: `ferry+tls://localhost:${d.tlsPort}/system?pkipath=${encodeURIComponent(pki)}` });
    expect(l.code, l.stderr).toBe(0);
    expect((await ferryOk(['uri'], { uri: tlsUri(d.tlsPort!, pki) })).stdout.trim()).toBe(tlsUri(d.tlsPort!, pki));
  });

  it('a client of another CA is refused', async () => {
    const r = await ferry(['list', '--all'], { uri: tlsUri(d.tlsPort!, otherPki), json: true });
    expect(r.code).toBe(1);
    expect(r.json?.error?.code).toEqual(expect.any(String));
    expect(r.json.error.message).toMatch(/certificate|self[- ]signed|verify/i);
    const t = await ferry(['list', '--all'], { uri: tlsUri(d.tlsPort!, otherPki) });
    expect(t.code).toBe(1);
    expect(t.stderr).toMatch(/^error: /m);
    expect(t.stdout).toBe('');
  });

  it('a client certificate of another CA is refused by the server even when the client trusts the server', async () => {
    // Our CA (so the client accepts the server), but a client certificate the server's CA did not sign.
    const mixed = join(makeTempDir('ferry-pki-mixed-'), 'pki');
    await ferryOk(['tls-setup', mixed]);
    copyFileSync(join(pki, 'cacert.pem'), join(mixed, 'cacert.pem'));
    const r = await ferry(['list', '--all'], { uri: tlsUri(d.tlsPort!, mixed), json: true, timeoutMs: 30_000 });
    expect(r.code, r.stdout).toBe(1);
    expect(r.json?.error?.code).toEqual(expect.any(String));
    await waitForLog(d, /TLS handshake from .* refused/);
    expect(d.alive()).toBe(true);
  });

  it('a client dir without clientcert.pem is refused with a message naming the file', async () => {
    const partial = join(makeTempDir('ferry-pki-partial-'), 'pki');
    await ferryOk(['tls-setup', partial, '--host', '127.0.0.1']);
    rmSync(join(partial, 'clientcert.pem'));
    const r = await ferry(['list'], { uri: tlsUri(d.tlsPort!, partial), json: true });
    expect(r.code).toBe(1);
    expect(r.json?.error?.message).toContain(join(partial, 'clientcert.pem'));
    expect(r.json.error.message).toMatch(/tls-setup/);
    const t = await ferry(['list'], { uri: tlsUri(d.tlsPort!, partial) });
    expect(t.code).toBe(1);
    expect(t.stderr).toMatch(/^error: .*clientcert\.pem/m);
  });

  it('an expired client certificate from the right CA is refused', async () => {
    const expired = join(makeTempDir('ferry-pki-expired-'), 'pki');
    await ferryOk(['tls-setup', expired, '--host', '127.0.0.1']);
    copyFileSync(join(pki, 'cacert.pem'), join(expired, 'cacert.pem'));
    const csr = join(expired, 'client.csr');
    execFileSync('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(expired, 'clientkey.pem'), '-out', csr, '-subj', '/CN=expired-client'], { stdio: 'ignore' });
    // Signed by the server's CA, but valid until yesterday.
    execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', join(pki, 'cacert.pem'), '-CAkey', join(pki, 'cakey.pem'), '-CAcreateserial', '-out', join(expired, 'clientcert.pem'), '-days', '-1'], { stdio: 'ignore' });
    // The CLI says so itself, before the server would refuse it.
    const r = await ferry(['list', '--all'], { uri: tlsUri(d.tlsPort!, expired), json: true, timeoutMs: 30_000 });
    expect(r.code, r.stdout).toBe(1);
    expect(r.json?.error?.code).toBe('auth_failed');
    expect(r.json?.error?.message).toMatch(/clientcert\.pem expired on/);
    // And the server refuses it when a client presents it anyway.
    const outcome = await new Promise<string>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port: d.tlsPort!, ca: readFileSync(join(pki, 'cacert.pem')), cert: readFileSync(join(expired, 'clientcert.pem')), key: readFileSync(join(expired, 'clientkey.pem')), servername: 'localhost' });
      s.once('secureConnect', () => s.write(encodeJsonFrame({ type: 'call', id: 1, method: 'domain.list', params: {} })));
      s.on('data', () => resolve('answered'));
      s.once('error', (e) => resolve(`error: ${e.message}`));
      s.once('close', () => resolve('closed'));
    });
    expect(outcome).not.toBe('answered');
    expect(outcome).toMatch(/expired|closed|alert/i);
    expect(d.alive()).toBe(true);
  });

  it('a TLS client that offers no certificate at all is refused', async () => {
    const outcome = await new Promise<string>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port: d.tlsPort!, ca: readFileSync(join(pki, 'cacert.pem')), servername: 'localhost' });
      s.once('secureConnect', () => {
        // TLS 1.3 finishes the client side before the server checks: the server then closes.
        s.write(encodeJsonFrame({ type: 'call', id: 1, method: 'domain.list', params: {} }));
      });
      s.on('data', () => resolve('answered'));
      s.once('error', (e) => resolve(`error: ${e.message}`));
      s.once('close', () => resolve('closed'));
    });
    expect(outcome).not.toBe('answered');
    await waitForLog(d, /TLS handshake from .* refused: .*(certificate|peer did not return)/i);
  });

  it('no private key material reaches the daemon log', () => {
    expect(d.stderr()).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);
    for (const f of ['serverkey.pem', 'clientkey.pem']) {
      const body = readFileSync(join(pki, f), 'utf8').split('\n').filter((l) => l && !l.startsWith('-----')).join('');
      expect(d.stderr()).not.toContain(body.slice(0, 40));
    }
  });

  it('the daemon still answers over TLS and the unix socket after the refusals', async () => {
    expect((await ferry(['list'], { uri: tlsUri(d.tlsPort!, pki) })).code).toBe(0);
    expect((await ferry(['list'], { uri: d.uri })).code).toBe(0);
  });
});

describe('listeners', () => {
  it('ferryd refuses --listen-tcp without --insecure', async () => {
    const dir = makeTempDir('ferryd-refuse-');
    const r = await runDaemonToExit(['--state-dir', join(dir, 'state'), '--run-dir', join(dir, 'run'), '--accel', 'tcg', '--listen-tcp', '127.0.0.1:0']);
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stderr).toContain('--insecure');
    expect(r.stderr).not.toMatch(/ready:/);
    expect(existsSync(join(dir, 'run', 'ferryd.sock'))).toBe(false);
  });

  it('ferryd refuses --listen-tls without --tls-dir', async () => {
    const dir = makeTempDir('ferryd-refuse-');
    const r = await runDaemonToExit(['--state-dir', join(dir, 'state'), '--run-dir', join(dir, 'run'), '--accel', 'tcg', '--listen-tls', '127.0.0.1:0']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('--tls-dir');
  });

  it('--listen-tcp with --insecure warns and ferry+tcp:// works (accelerator auto)', async () => {
    const d = await startDaemon({ hostName: 'e2e-tcp-host', listenTcp: '127.0.0.1:0', accel: 'auto' });
    expect(d.stderr()).toMatch(/WARNING: .*NO authentication/);
    expect(d.stderr()).toMatch(/accelerator (tcg|kvm)/);
    expect(d.tcpPort).toBeGreaterThan(0);
    const uri = `ferry+tcp://127.0.0.1:${d.tcpPort}/system`;
    const r = await ferry(['list', '--all'], { uri, json: true });
    expect(r.code, r.stderr).toBe(0);
    expect(r.json).toEqual([]);
    expect((await ferryOk(['hostname'], { uri })).stdout.trim()).toBe('e2e-tcp-host');
    const sys = await ferryOk(['sysinfo'], { uri, json: true });
    expect(sys.json).toMatchObject({ hostName: 'e2e-tcp-host', hostUuid: expect.stringMatching(/^[0-9a-f-]{36}$/), protocolVersion: expect.any(Number) });
  });

  it('the unix socket is a socket of mode 0600, also after a restart', async () => {
    const d = await startDaemon();
    const mode = () => statSync(d.socketPath).mode;
    expect(statSync(d.socketPath).isSocket()).toBe(true);
    expect(mode() & 0o777).toBe(0o600);
    await d.kill9();
    await d.restart();
    expect(mode() & 0o777).toBe(0o600);
  });

  it('host UUID and name are kept in the state dir across restarts', async () => {
    const uuid = '3f0c1a52-7a4e-4b1f-9b0e-5d6c7e8f9012';
    const d = await startDaemon({ hostName: 'e2e-ident', hostUuid: uuid });
    const first = (await ferryOk(['sysinfo'], { uri: d.uri, json: true })).json;
    expect(first).toMatchObject({ hostName: 'e2e-ident', hostUuid: uuid });
    await d.stop();
    const d2 = await startDaemon({ stateDir: d.stateDir, hostName: 'e2e-ident' });
    expect((await ferryOk(['sysinfo'], { uri: d2.uri, json: true })).json.hostUuid).toBe(uuid);
  });
});

// ------------------------------------------------------------ raw protocol

interface RawResult {
  frames: Frame[];
  /** The daemon closed the connection. */
  closed: boolean;
  /** Bytes that could not be decoded. */
  decodeError?: string;
}

/**
 * Sends `bytes` on a fresh unix-socket connection and collects what comes
 * back for up to `waitMs`, until the daemon closes, or until `want` frames
 * arrived (then 200 ms more, to see a close that would follow them).
 */
function rawExchange(socketPath: string, bytes: Buffer[], waitMs = 3000, endAfter = false, want = Infinity): Promise<RawResult> {
  return new Promise((resolve) => {
    const s = createConnection({ path: socketPath });
    const decoder = new FrameDecoder();
    const res: RawResult = { frames: [], closed: false };
    const finish = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(res);
    };
    const timer = setTimeout(finish, waitMs);
    s.on('connect', () => {
      for (const b of bytes) s.write(b);
      if (endAfter) s.end();
    });
    s.on('data', (chunk: Buffer) => {
      try {
        res.frames.push(...decoder.push(chunk));
        if (res.frames.length >= want) setTimeout(finish, 200);
      } catch (err) {
        res.decodeError = (err as Error).message;
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      res.closed = true;
      finish();
    });
  });
}

function frame(kind: number, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length + 1, 0);
  head.writeUInt8(kind, 4);
  return Buffer.concat([head, body]);
}

function errorsOf(r: RawResult): Array<{ id: number; code: string; number: number; message: string }> {
  return r.frames
    .filter((f): f is Extract<Frame, { kind: 1 }> => f.kind === FrameKind.json)
    .map((f) => f.message as { id: number; error?: { code: string; number: number; message: string } })
    .filter((m) => m.error)
    .map((m) => ({ id: m.id, ...m.error! }));
}

async function waitForLog(d: FerrydHandle, re: RegExp, timeoutMs = 10_000): Promise<void> {
  await waitFor(`ferryd to log ${re}`, () => re.test(d.stderr()), timeoutMs, 50);
}

describe('garbage on the unix socket', () => {
  let d: FerrydHandle;
  beforeAll(async () => {
    d = await startDaemon({ hostName: 'e2e-garbage' });
  });

  /** After each abuse: the daemon process lives, answers `list`, and logged no internal error. */
  async function stillServes(): Promise<void> {
    expect(d.alive(), 'ferryd died').toBe(true);
    const r = await ferry(['list', '--all'], { uri: d.uri });
    expect(r.code, r.stderr).toBe(0);
    expect(d.stderr()).not.toMatch(/internal error/);
  }

  it('an HTTP request (a huge length prefix) gets an rpc error and a close', async () => {
    const r = await rawExchange(d.socketPath, [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]);
    expect(r.closed).toBe(true);
    expect(errorsOf(r)).toEqual([expect.objectContaining({ id: 0, code: 'rpc', number: 39 })]);
    await stillServes();
  });

  it('random bytes get an error or a close, never a hang of the daemon', async () => {
    for (let i = 0; i < 5; i++) {
      const junk = randomBytes(4096);
      junk[0] = 0xff; // length prefix beyond the limit: the daemon must not wait for 4 GiB
      const r = await rawExchange(d.socketPath, [junk]);
      expect(r.closed || errorsOf(r).length > 0, `attempt ${i}`).toBe(true);
    }
    // Random bytes with a plausible length: the daemon waits for the rest; ending the connection must not upset it.
    const small = Buffer.concat([Buffer.from([0, 0, 0, 200, 1]), randomBytes(50)]);
    await rawExchange(d.socketPath, [small], 500, true);
    await stillServes();
  });

  it('an oversized length prefix is refused at once, without buffering', async () => {
    const head = Buffer.alloc(5);
    head.writeUInt32BE(MAX_FRAME_BYTES + 1, 0);
    head.writeUInt8(FrameKind.json, 4);
    const r = await rawExchange(d.socketPath, [head, Buffer.alloc(1024, 0x41)]);
    expect(r.closed).toBe(true);
    const errs = errorsOf(r);
    expect(errs).toHaveLength(1);
    expect(errs[0]).toMatchObject({ id: 0, code: 'rpc' });
    expect(errs[0]!.message).toContain(String(MAX_FRAME_BYTES + 1));
    await stillServes();
  });

  it('a frame of length 0 and a frame of an unknown kind are refused', async () => {
    const zero = await rawExchange(d.socketPath, [Buffer.from([0, 0, 0, 0, 1])]);
    expect(zero.closed).toBe(true);
    expect(errorsOf(zero)[0]).toMatchObject({ code: 'rpc' });
    const kind = await rawExchange(d.socketPath, [frame(7, Buffer.from('{}'))]);
    expect(kind.closed).toBe(true);
    expect(errorsOf(kind)[0]).toMatchObject({ code: 'rpc' });
    await stillServes();
  });

  it('a valid frame holding non-JSON gets an rpc error', async () => {
    const r = await rawExchange(d.socketPath, [frame(FrameKind.json, Buffer.from('{"type":"call","id":1,"method":'))]);
    expect(errorsOf(r)).toEqual([expect.objectContaining({ id: 0, code: 'rpc', number: 39 })]);
    expect(r.closed).toBe(true);
    await stillServes();
  });

  it('well-formed JSON that is not a call, or has bad params, gets a coded error and the connection stays usable', async () => {
    const r = await rawExchange(
      d.socketPath,
      [
        encodeJsonFrame({ type: 'call', id: 1, method: 'no.such.method', params: {} }),
        encodeJsonFrame({ hello: 'world' }),
        encodeJsonFrame([1, 2, 3]),
        encodeJsonFrame({ type: 'call', id: 2, method: 'domain.list', params: [1] }),
        encodeJsonFrame({ type: 'call', id: 3, method: 'domain.info', params: { domain: { $gt: '' } } }),
        encodeJsonFrame({ type: 'call', id: 4, method: 'domain.define', params: { xml: 42 } }),
        encodeJsonFrame({ type: 'call', id: 5, method: 'domain.list', params: { state: ['running', 'evil'] } }),
        encodeJsonFrame({ type: 'call', id: 6, method: 'domain.consoleLog', params: { domain: 'x', maxBytes: -1 } }),
        encodeJsonFrame({ type: 'call', id: 7, method: '__proto__', params: {} }),
        encodeJsonFrame({ type: 'call', id: 8, method: 'constructor', params: {} }),
        encodeJsonFrame({ type: 'call', id: 9, method: 'domain.list', params: { all: true } }),
      ],
      5000,
      false,
      11,
    );
    expect(r.closed, 'a well-framed bad call must not close the connection').toBe(false);
    const byId = new Map(r.frames.map((f) => [(f as { message: { id: number } }).message.id, (f as { message: Record<string, unknown> }).message]));
    expect((byId.get(1)?.error as { code: string })?.code).toBe('no_support');
    expect((byId.get(1)?.error as { message: string })?.message).toContain('no.such.method');
    expect((byId.get(2)?.error as { code: string })?.code).toBe('invalid_arg');
    expect((byId.get(3)?.error as { code: string })?.code).toBe('invalid_arg');
    expect((byId.get(4)?.error as { code: string })?.code).toBe('xml_error');
    expect((byId.get(5)?.error as { code: string })?.code).toBe('invalid_arg');
    expect((byId.get(6)?.error as { code: string })?.code).toBe('no_domain');
    expect((byId.get(7)?.error as { code: string })?.code).toBe('no_support');
    expect((byId.get(8)?.error as { code: string })?.code).toBe('no_support');
    expect(byId.get(9)?.result).toEqual([]);
    // The two non-calls are answered with id 0.
    expect(errorsOf(r).filter((e) => e.id === 0 && e.code === 'rpc')).toHaveLength(2);
    await stillServes();
  });

  it('a peer that stops mid-frame or floods calls does not hurt other clients', async () => {
    await rawExchange(d.socketPath, [Buffer.from([0, 0, 1])], 300, true);
    const flood = Array.from({ length: 200 }, (_, i) => encodeJsonFrame({ type: 'call', id: i + 1, method: 'domain.list', params: {} }));
    const r = await rawExchange(d.socketPath, [Buffer.concat(flood)], 10_000, false, 200);
    const replies = r.frames.length;
    expect(replies).toBe(200);
    await stillServes();
  });
});
