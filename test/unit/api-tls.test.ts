import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { copyFile, mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiServer, type Handler } from '../../src/api/server.js';
import { ApiClient } from '../../src/api/client.js';
import { createTestPki } from '../../src/api/pki-setup.js';
import { PKI_FILES, loadTlsCredentials } from '../../src/api/tls.js';
import { FrameDecoder, FrameKind, encodeJsonFrame } from '../../src/api/framing.js';
import { rejection } from '../support/refusal.js';

const handlers = new Map<string, Handler>([
  ['echo', async (p) => p],
  ['whoami', async (_p, conn) => ({ transport: conn.transport, peer: conn.peer })],
]);

let root: string;
let pkiA: string; // the server's CA, a client cert from it
let pkiB: string; // a different CA altogether
let pkiMixed: string; // trusts CA A, but presents a client cert from CA B
let server: ApiServer;
let port: number;
let port2: number; // same server credentials, on an address the certificate does not name

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ferry-tls-'));
  pkiA = join(root, 'a');
  pkiB = join(root, 'b');
  pkiMixed = join(root, 'mixed');
  await Promise.all([
    createTestPki(pkiA, { hosts: ['ferry-a.test'], days: 2, reuseCa: false, clientName: 'client-a' }),
    createTestPki(pkiB, { hosts: ['ferry-b.test'], days: 2, reuseCa: false, clientName: 'client-b' }),
  ]);
  await mkdir(pkiMixed);
  await copyFile(join(pkiA, PKI_FILES.ca), join(pkiMixed, PKI_FILES.ca));
  await copyFile(join(pkiB, PKI_FILES.clientCert), join(pkiMixed, PKI_FILES.clientCert));
  await copyFile(join(pkiB, PKI_FILES.clientKey), join(pkiMixed, PKI_FILES.clientKey));

  server = new ApiServer(handlers);
  const creds = await loadTlsCredentials(pkiA, 'server');
  port = await server.listenTls('127.0.0.1', 0, creds);
  port2 = await server.listenTls('127.0.0.2', 0, creds);
}, 30_000);

afterAll(async () => {
  await server?.close();
  await rm(root, { recursive: true, force: true });
});

describe('createTestPki', () => {
  it('writes the libvirt-style layout with private keys readable by the owner only', async () => {
    const files = (await readdir(pkiA)).sort();
    expect(files).toEqual(['cacert.pem', 'cakey.pem', 'clientcert.pem', 'clientkey.pem', 'servercert.pem', 'serverkey.pem']);
    for (const f of files) {
      const mode = (await stat(join(pkiA, f))).mode & 0o777;
      expect(mode, f).toBe(f.endsWith('key.pem') ? 0o600 : 0o644);
    }
  });

  it('refuses a host name that could inject into the openssl subject', async () => {
    const err = await rejection(createTestPki(join(root, 'bad'), { hosts: ['a/CN=evil'], days: 1, reuseCa: false, clientName: 'c' }));
    expect(err.code).toBe('invalid_arg');
  });
});

describe('mutual TLS listener', () => {
  it('serves a client whose certificate is signed by the same CA', async () => {
    const c = await ApiClient.connect(`ferry+tls://127.0.0.1:${port}/system?pkipath=${pkiA}`);
    try {
      expect(await c.callRaw('echo', { over: 'tls' })).toEqual({ over: 'tls' });
      const who = (await c.callRaw('whoami', {})) as { transport: string; peer: string };
      expect(who.transport).toBe('tls');
      expect(who.peer).toContain('CN=client-a');
    } finally {
      c.close();
    }
  });

  it('the client refuses a server whose certificate is from another CA', async () => {
    const err = await rejection(ApiClient.connect(`ferry+tls://127.0.0.1:${port}/system?pkipath=${pkiB}`));
    expect(err.code).toBe('auth_failed');
  });

  it('the server refuses a client certificate from another CA (no call succeeds)', async () => {
    const err = await rejection(
      (async () => {
        const c = await ApiClient.connect(`ferry+tls://127.0.0.1:${port}/system?pkipath=${pkiMixed}`);
        try {
          return await c.callRaw('echo', { should: 'fail' }, { timeoutMs: 5000 });
        } finally {
          c.close();
        }
      })(),
    );
    expect(err.code).toBe('no_connect');
  });

  it('the server requires a client certificate: a raw TLS client without one gets no reply', async () => {
    const ca = (await loadTlsCredentials(pkiA, 'client')).ca;
    const frames: unknown[] = [];
    const outcome = await new Promise<string>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca, minVersion: 'TLSv1.2' });
      const dec = new FrameDecoder();
      s.on('secureConnect', () => s.write(encodeJsonFrame({ type: 'call', id: 1, method: 'echo', params: { x: 1 } })));
      s.on('data', (c: Buffer) => {
        for (const f of dec.push(c)) if (f.kind === FrameKind.json) frames.push(f.message);
      });
      s.on('error', (e) => resolve(`error: ${e.message}`));
      s.on('close', () => resolve('closed'));
      setTimeout(() => {
        s.destroy();
        resolve('timeout');
      }, 5000).unref();
    });
    expect(outcome).not.toBe('timeout');
    expect(frames).toEqual([]);
  });

  it('checks the server name unless no_verify=1 (the CA is checked either way)', async () => {
    // 127.0.0.2 is not in the server certificate's subjectAltName.
    const err = await rejection(ApiClient.connect(`ferry+tls://127.0.0.2:${port2}/system?pkipath=${pkiA}`));
    expect(err.code).toBe('auth_failed');

    const c = await ApiClient.connect(`ferry+tls://127.0.0.2:${port2}/system?pkipath=${pkiA}&no_verify=1`);
    try {
      expect(await c.callRaw('echo', { relaxed: true })).toEqual({ relaxed: true });
    } finally {
      c.close();
    }

    const wrongCa = await rejection(ApiClient.connect(`ferry+tls://127.0.0.2:${port2}/system?pkipath=${pkiB}&no_verify=1`));
    expect(wrongCa.code).toBe('auth_failed');
  });
});
