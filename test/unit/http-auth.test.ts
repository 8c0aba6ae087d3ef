/**
 * Who may do what on the HTTP listener (src/http/auth.ts): requests are
 * plain objects with the headers and the peer address a socket would give.
 */
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { accessOf, allowedHosts, isLoopback, loadOrCreateToken } from '../../src/http/auth.js';

const TOKEN = 'a'.repeat(64);
const hosts = allowedHosts('127.0.0.1', 8080);

function req(headers: Record<string, string>, remoteAddress = '127.0.0.1', tls?: { authorized: boolean }, arrivedAt = { localAddress: '127.0.0.1', localPort: 8080 }): IncomingMessage {
  return { headers, socket: { remoteAddress, ...arrivedAt, ...(tls ? { encrypted: true, authorized: tls.authorized } : {}) } } as unknown as IncomingMessage;
}

describe('HTTP access', () => {
  it('lets this machine read without a credential, and change only with the token', () => {
    expect(accessOf(req({ host: '127.0.0.1:8080' }), TOKEN, hosts, 'http')).toMatchObject({ read: true, write: false });
    expect(accessOf(req({ host: 'localhost:8080', authorization: `Bearer ${TOKEN}` }), TOKEN, hosts, 'http')).toEqual({ read: true, write: true });
    expect(accessOf(req({ host: '127.0.0.1:8080', authorization: `Bearer ${'b'.repeat(64)}` }), TOKEN, hosts, 'http')).toMatchObject({ read: true, write: false });
    expect(accessOf(req({ host: '127.0.0.1:8080', authorization: 'Bearer ' }), TOKEN, hosts, 'http').write).toBe(false);
  });

  it('gives another machine nothing without a credential, everything with the token or a client certificate of the CA', () => {
    const wide = allowedHosts('0.0.0.0', 8080);
    expect(accessOf(req({ host: '127.0.0.1:8080' }, '10.0.0.2'), TOKEN, wide, 'http')).toMatchObject({ read: false, write: false });
    expect(accessOf(req({ host: '127.0.0.1:8080', authorization: `Bearer ${TOKEN}` }, '10.0.0.2'), TOKEN, wide, 'http')).toEqual({ read: true, write: true });
    expect(accessOf(req({ host: '127.0.0.1:8080' }, '10.0.0.2', { authorized: true }), TOKEN, wide, 'https')).toEqual({ read: true, write: true });
    expect(accessOf(req({ host: '127.0.0.1:8080' }, '10.0.0.2', { authorized: false }), TOKEN, wide, 'https').read).toBe(false);
  });

  it('answers nothing to another Host name (DNS rebinding) or to a page of another origin, even with the token', () => {
    expect(accessOf(req({ host: 'evil.example:8080', authorization: `Bearer ${TOKEN}` }), TOKEN, hosts, 'http')).toMatchObject({ read: false, write: false });
    expect(accessOf(req({ host: '127.0.0.1:8080', origin: 'http://evil.example', authorization: `Bearer ${TOKEN}` }), TOKEN, hosts, 'http')).toMatchObject({ read: false, write: false });
    expect(accessOf(req({ host: '127.0.0.1:8080', origin: 'https://127.0.0.1:8080' }), TOKEN, hosts, 'http').read).toBe(false);
    expect(accessOf(req({ host: '127.0.0.1:8080', origin: 'http://127.0.0.1:8080', authorization: `Bearer ${TOKEN}` }), TOKEN, hosts, 'http').write).toBe(true);
    expect(accessOf(req({ host: '[::1]:8080', origin: 'http://[::1]:8080' }, '::1'), TOKEN, hosts, 'http').read).toBe(true);
  });

  it('answers to the address a request arrived at, on a wildcard listener, whatever the interfaces were at start', () => {
    const wide = allowedHosts('0.0.0.0', 8080);
    const at = { localAddress: '10.0.0.1', localPort: 8080 };
    expect(accessOf(req({ host: '10.0.0.1:8080', authorization: `Bearer ${TOKEN}` }, '10.0.0.2', undefined, at), TOKEN, wide, 'http').read).toBe(true);
    expect(accessOf(req({ host: '10.0.0.1:8080', origin: 'http://10.0.0.1:8080', authorization: `Bearer ${TOKEN}` }, '10.0.0.2', undefined, at), TOKEN, wide, 'http').write).toBe(true);
    expect(accessOf(req({ host: '10.0.0.3:8080', authorization: `Bearer ${TOKEN}` }, '10.0.0.2', undefined, at), TOKEN, wide, 'http').read).toBe(false);
    expect(accessOf(req({ host: '[fe80::1]:8080', authorization: `Bearer ${TOKEN}` }, 'fe80::2', undefined, { localAddress: 'fe80::1', localPort: 8080 }), TOKEN, wide, 'http').read).toBe(true);
  });

  it('counts only loopback addresses as this machine', () => {
    expect(['127.0.0.1', '127.8.9.1', '::1', '::ffff:127.0.0.1'].map(isLoopback)).toEqual([true, true, true, true]);
    expect(['10.0.0.1', '::ffff:10.0.0.1', 'fe80::1', undefined].map(isLoopback)).toEqual([false, false, false, false]);
  });

  it('keeps one token, 256 bits, in a file only its owner reads', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'ferry-token-')), 'http-token');
    const t = await loadOrCreateToken(path);
    expect(t).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(await loadOrCreateToken(path)).toBe(t);
    expect(readFileSync(path, 'utf8').trim()).toBe(t);
  });
});
