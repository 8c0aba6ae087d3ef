import { describe, expect, it } from 'vitest';
import {
  advertisedHost,
  chooseDataUri,
  disksUriProblem,
  qemuInetAddress,
  qemuInetHost,
  qemuInetUri,
  qemuUnixUri,
  resolveNbdTarget,
  tunnelJobId,
  tunnelUri,
  unixPath,
  uriHost,
  uriPort,
} from '../../src/flags/index.js';

describe('chooseDataUri: what the source QEMU connects to', () => {
  it.each<[string, unknown, string, string, string]>([
    ['a wildcard host becomes the destination address', undefined, 'tcp:*:49152', '10.0.0.2', 'tcp:10.0.0.2:49152'],
    ['an IPv6 destination address in brackets', undefined, 'tcp:*:49152', 'fd00::2', 'tcp:[fd00::2]:49152'],
    ['a concrete prepared host stays', '', 'tcp:10.0.0.9:49152', '10.0.0.2', 'tcp:10.0.0.9:49152'],
    ['tcp://HOST takes the prepared port', 'tcp://10.1.1.1', 'tcp:*:49153', '10.0.0.2', 'tcp:10.1.1.1:49153'],
    ['tcp://[v6]/ takes the prepared port', 'tcp://[fd00::9]/', 'tcp:*:49153', '10.0.0.2', 'tcp:[fd00::9]:49153'],
    ['tcp://HOST:PORT in QEMU spelling', 'tcp://10.1.1.1:4444', 'tcp:*:4444', '10.0.0.2', 'tcp:10.1.1.1:4444'],
    ['rdma://HOST:PORT fills a wildcard rdma listener', 'rdma://10.1.1.1:4444', 'rdma:*:4444', '10.0.0.2', 'rdma:10.1.1.1:4444'],
    ['unix:///PATH: the path as the destination prepared it', 'unix:///run/m.sock', 'unix:/run/m.sock', '10.0.0.2', 'unix:/run/m.sock'],
  ])('%s', (_what, explicit, prepared, dest, expected) => {
    expect(chooseDataUri(explicit, prepared, dest)).toBe(expected);
  });
});

describe('resolveNbdTarget: where the disk mirrors connect', () => {
  const nbd = { transport: 'tcp' as const, host: '*', port: 49200, exports: {}, tls: false };

  it('takes the memory stream host for a wildcard', () => {
    expect(resolveNbdTarget(nbd, 'tcp:10.1.1.1:49152', '10.0.0.2').host).toBe('10.1.1.1');
    expect(resolveNbdTarget(nbd, 'tcp:[fd00::9]:49152', '10.0.0.2').host).toBe('fd00::9');
  });

  it('falls back to the destination address when the stream is not inet', () => {
    expect(resolveNbdTarget(nbd, 'unix:/run/m.sock', '[fd00::2]').host).toBe('fd00::2');
  });

  it('leaves a concrete host and other transports alone', () => {
    const fixed = { ...nbd, host: '10.5.5.5' };
    expect(resolveNbdTarget(fixed, 'tcp:10.1.1.1:1', 'x')).toBe(fixed);
    const unix = { transport: 'unix' as const, path: '/s', exports: {}, tls: false };
    expect(resolveNbdTarget(unix, 'tcp:10.1.1.1:1', 'x')).toBe(unix);
  });
});

describe('spellings', () => {
  it('reads hosts and ports of libvirt-style URIs', () => {
    expect(uriHost('rdma://[fd00::1]:4444')).toBe('fd00::1');
    expect(uriHost('tcp://h.example:1')).toBe('h.example');
    expect(uriHost('unix:///run/x')).toBeUndefined();
    expect(uriPort('tcp://h:4444')).toBe(4444);
    expect(uriPort('tcp://h')).toBeUndefined();
    expect(uriPort('tcp:h:4444')).toBeUndefined(); // QEMU's spelling has no authority
  });

  it("reads QEMU's inet URIs back", () => {
    expect(qemuInetHost('tcp:10.0.0.2:49152')).toBe('10.0.0.2');
    expect(qemuInetHost('rdma:[fd00::2]:4444')).toBe('fd00::2');
    expect(qemuInetHost('unix:/run/m.sock')).toBeUndefined();
    expect(qemuInetAddress('tcp:[fd00::2]:49152')).toEqual({ transport: 'tcp', host: 'fd00::2', port: 49152 });
    expect(qemuInetAddress('tcp://h:1')).toBeUndefined();
  });

  it("writes QEMU's URIs, a listener on every address as *", () => {
    expect(qemuInetUri('tcp', advertisedHost('0.0.0.0'), 49152)).toBe('tcp:*:49152');
    expect(qemuInetUri('rdma', advertisedHost('::'), 1)).toBe('rdma:*:1');
    expect(qemuInetUri('tcp', advertisedHost('fd00::2'), 1)).toBe('tcp:[fd00::2]:1');
    expect(qemuUnixUri('/run/m.sock')).toBe('unix:/run/m.sock');
  });

  it('round-trips the tunnel URI of a job', () => {
    expect(tunnelJobId(tunnelUri('job-1'))).toBe('job-1');
    expect(tunnelJobId('tcp:h:1')).toBeUndefined();
  });

  it('reads unix socket paths and checks disks URIs', () => {
    expect(unixPath('unix:///run/a%20b.sock')).toBe('/run/a b.sock');
    expect(unixPath('unix://host/x')).toBeUndefined();
    expect(disksUriProblem('tcp://h:5000')).toBeUndefined();
    expect(disksUriProblem('unix:///run/n.sock')).toBeUndefined();
    expect(disksUriProblem('nbd://h')).toContain('expected a tcp:// or unix:// URI');
  });
});
