/**
 * Versions two Ferry hosts exchange before a migration, and what happens
 * when they differ: the destination refuses a migration cookie of a format
 * it does not know, and a client (the CLI in managed mode, a source daemon
 * in peer-to-peer mode) refuses a daemon that speaks another native
 * protocol version. Both say which versions met.
 */
import { createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/api/client.js';
import { remoteDestination } from '../../src/api/migration-endpoints.js';
import { PROTOCOL_VERSION, requireProtocolVersion } from '../../src/api/protocol.js';
import { FerryError } from '../../src/errors/index.js';
import type { Host } from '../../src/host/host.js';
import { IncomingMigrations } from '../../src/migration/incoming.js';
import { COOKIE_VERSION, type PrepareArgs } from '../../src/migration/phase-messages.js';
import { RawPeer } from '../support/raw-peer.js';
import { rejection } from '../support/refusal.js';
import { listen, portOf } from '../support/sockets.js';


describe('migration cookie version', () => {
  /** A destination host; prepare must refuse the cookie before it looks at anything else. */
  const host = { config: { identity: { hostName: 'dst', hostUuid: '2f0cbd9c-6e4b-4a53-8a5b-6a0c1f7e7a11' } } } as unknown as Host;
  const prepareWith = (version: unknown): PrepareArgs =>
    ({
      xml: '<domain/>',
      flags: 0,
      params: {},
      cookie: { version, source: { hostName: 'src', hostUuid: '7c9e6679-7425-40de-944b-e07fc1f90ae7' }, jobId: 'j', domain: { name: 'vm', uuid: '0f8fad5b-d9cb-469f-a165-70867728950e' }, wasRunning: true },
    }) as unknown as PrepareArgs;

  it('the destination refuses a cookie of a newer format with operation_unsupported, naming both versions and the source', async () => {
    const err = await rejection(new IncomingMigrations(host, () => undefined).prepare(prepareWith(COOKIE_VERSION + 1)));
    expect(err.code).toBe('operation_unsupported');
    expect(err.message).toContain(`version ${COOKIE_VERSION + 1}`);
    expect(err.message).toContain(`version ${COOKIE_VERSION}`);
    expect(err.message).toContain('src');
  });

  it('the destination refuses a cookie without a version', async () => {
    const err = await rejection(new IncomingMigrations(host, () => undefined).prepare(prepareWith(undefined)));
    expect(err.code).toBe('operation_unsupported');
    expect(err.message).toContain('no version');
  });
});

describe('native protocol version', () => {
  const hello = (protocolVersion: number) => ({ hostName: 'far', hostUuid: '7c9e6679-7425-40de-944b-e07fc1f90ae7', protocolVersion, version: '0.0.1' });

  it('accepts a daemon of the same protocol version', () => {
    expect(() => requireProtocolVersion(hello(PROTOCOL_VERSION), 'the destination daemon')).not.toThrow();
  });

  it('refuses another protocol version with rpc, naming both versions and the daemon', () => {
    let err: unknown;
    try {
      requireProtocolVersion(hello(PROTOCOL_VERSION + 1), 'the destination daemon');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FerryError);
    expect((err as FerryError).code).toBe('rpc');
    expect((err as FerryError).message).toContain(`protocol version ${PROTOCOL_VERSION + 1}`);
    expect((err as FerryError).message).toContain(`version ${PROTOCOL_VERSION}`);
    expect((err as FerryError).message).toContain("'far'");
  });

  it('a source daemon refuses a destination daemon that answers connect.hello with another protocol version', async () => {
    let accepted!: (s: Socket) => void;
    const conn = new Promise<Socket>((r) => (accepted = r));
    const srv = createServer((s) => accepted(s));
    await listen(srv, 0);
    const client = await ApiClient.connect(`ferry+tcp://127.0.0.1:${portOf(srv)}/system`);
    const peer = new RawPeer(await conn);
    const answer = (async () => {
      const call = (await peer.nextFrame()) as { id: number; method: string };
      expect(call.method).toBe('connect.hello');
      peer.send({ type: 'reply', id: call.id, result: hello(PROTOCOL_VERSION + 1) });
    })();
    const err = await rejection(remoteDestination(client).identity());
    await answer;
    expect(err.code).toBe('rpc');
    expect(err.message).toContain(`protocol version ${PROTOCOL_VERSION + 1}`);
    client.close();
    srv.close();
  });
});
