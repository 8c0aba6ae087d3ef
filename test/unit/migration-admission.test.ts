import { describe, expect, it } from 'vitest';
import { DomainDocument } from '../../src/domain/index.js';
import { status, type DomainStatus } from '../../src/domain/lifecycle-state.js';
import type { FerryError } from '../../src/errors/index.js';
import { MIGRATION_RULES, flagsFromNames, type MigrationFlagName, type MigrationParams } from '../../src/flags/index.js';
import { HostedDomain, type DomainRuntime } from '../../src/host/hosted-domain.js';
import { admitBetweenHosts, admitOnSource, guestContext } from '../../src/migration/admission.js';
import { refusal } from '../support/refusal.js';

const UUID = '5c4e7a63-8f27-4b6e-9c1d-3a2f0e8b7d14';
const HOST_A = { hostName: 'host-a', hostUuid: '0f8fad5b-d9cb-469f-a165-70867728950e' };
const HOST_B = { hostName: 'host-b', hostUuid: '1f8fad5b-d9cb-469f-a165-70867728950e' };

function doc(extra = ''): DomainDocument {
  return DomainDocument.parse(`<domain type='kvm'><name>web1</name><uuid>${UUID}</uuid><memory>65536</memory>${extra}<os><type>hvm</type></os></domain>`);
}

/** A guest as the source's registry holds it: running with a QEMU (`st`), or shut off; persistent unless said. */
function guest(o: { st?: DomainStatus; persistent?: boolean; extra?: string } = {}): HostedDomain {
  const d = doc(o.extra);
  const h = new HostedDomain(d.def.uuid, d.def.name, o.persistent === false ? null : d);
  if (o.st) {
    h.runtime = { id: 1, liveDoc: d, stopRequested: null } as unknown as DomainRuntime;
    h.setStatus(o.st);
  }
  return h;
}

const req = (flags: MigrationFlagName[], params: Record<string, unknown> = {}) => ({ flags: flagsFromNames(flags), params: params as MigrationParams });

/** The refusal of `fn`, which must come from rule `id` of the table: its code, and exactly the sentence the rule's check gives. */
function refusedBy(id: string, fn: () => unknown, input: Parameters<(typeof MIGRATION_RULES)[number]['check']>[0]): FerryError {
  const rule = MIGRATION_RULES.find((r) => r.id === id);
  expect(rule, `rule ${id} in the table`).toBeDefined();
  const e = refusal(fn);
  expect({ code: e.code, message: e.message }).toEqual({ code: rule!.code, message: rule!.check(input) });
  return e;
}

describe('the source at begin (admitOnSource)', () => {
  it('refuses a shut-off guest with the domain-running rule of the table', () => {
    const d = guest();
    const r = req(['LIVE']);
    const err = refusedBy('domain-running', () => admitOnSource(r, d), { ...r, ctx: guestContext(d), options: {} });
    expect(err.message).toContain("domain 'web1' is not running");
  });

  it('refuses a transient guest offline with the offline-needs-persistent-guest rule', () => {
    const d = guest({ st: status('running', 'booted'), persistent: false });
    const r = req(['OFFLINE', 'PERSIST_DEST']);
    const err = refusedBy('offline-needs-persistent-guest', () => admitOnSource(r, d), { ...r, ctx: guestContext(d), options: {} });
    expect(err.message).toContain("transient domain 'web1'");
  });

  it('refuses a guest paused by a disk I/O error with the domain-not-io-error rule', () => {
    const d = guest({ st: status('paused', 'I/O error') });
    const r = req(['LIVE']);
    refusedBy('domain-not-io-error', () => admitOnSource(r, d), { ...r, ctx: guestContext(d), options: {} });
  });

  it('refuses RDMA without a hard limit, from the live definition', () => {
    const d = guest({ st: status('running', 'booted') });
    const r = req(['LIVE'], { migrate_uri: 'rdma://h:4444' });
    refusedBy('rdma-needs-hard-limit', () => admitOnSource(r, d), { ...r, ctx: guestContext(d), options: {} });
  });

  it('admits a running guest, a paused one, and a shut-off persistent one offline', () => {
    expect(admitOnSource(req(['LIVE']), guest({ st: status('running', 'booted') })).flagNames).toEqual(['LIVE']);
    expect(() => admitOnSource(req(['LIVE']), guest({ st: status('paused', 'user') }))).not.toThrow();
    expect(() => admitOnSource(req(['OFFLINE', 'PERSIST_DEST']), guest())).not.toThrow();
  });

  it('tells the table every guest fact it has rules for', () => {
    expect(guestContext(guest({ st: status('paused', 'I/O error'), persistent: false }))).toMatchObject({
      domainName: 'web1',
      active: true,
      pausedByIoError: true,
      persistent: false,
      hardLimitKiB: undefined,
      disks: [],
    });
    expect(guestContext(guest())).toMatchObject({ active: false, pausedByIoError: false, persistent: true });
  });
});

describe('whoever knows both hosts (admitBetweenHosts)', () => {
  it('refuses one host with the same-host rule (operation_invalid), however its UUID is spelt', () => {
    const r = req(['LIVE']);
    const dest = { hostName: 'host-a', hostUuid: HOST_A.hostUuid.toUpperCase() };
    const ctx = { sourceHostUuid: HOST_A.hostUuid, destHostUuid: dest.hostUuid, destHostName: 'host-a' };
    const err = refusedBy('same-host', () => admitBetweenHosts(r, HOST_A, dest), { ...r, ctx, options: {} });
    expect(err.code).toBe('operation_invalid');
    expect(err.message).toContain('Attempt to migrate guest to the same host host-a');
  });

  it('admits two hosts and still checks the request itself', () => {
    expect(() => admitBetweenHosts(req(['LIVE']), HOST_A, HOST_B)).not.toThrow();
    expect(() => admitBetweenHosts(req(['TUNNELLED']), HOST_A, HOST_B)).toThrow(/requires --p2p/);
  });
});
