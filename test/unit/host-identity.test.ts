import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadHostIdentity } from '../../src/host/identity.js';
import { rejection } from '../support/refusal.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let dir: string;
const stored = async () => (await readFile(join(dir, 'host-uuid'), 'utf8')).trim();

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-id-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadHostIdentity', () => {
  it('generates a UUID at first start, stores it, and reuses it on the next start', async () => {
    const first = await loadHostIdentity(dir, {});
    expect(first.hostUuid).toMatch(UUID);
    expect(await stored()).toBe(first.hostUuid);
    expect((await stat(join(dir, 'host-uuid'))).mode & 0o777).toBe(0o644);
    const second = await loadHostIdentity(dir, {});
    expect(second.hostUuid).toBe(first.hostUuid);
  });

  it('two state directories are two hosts', async () => {
    const other = await mkdtemp(join(tmpdir(), 'ferry-id2-'));
    try {
      expect((await loadHostIdentity(dir, {})).hostUuid).not.toBe((await loadHostIdentity(other, {})).hostUuid);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it('reads a stored UUID written by hand in upper case', async () => {
    await writeFile(join(dir, 'host-uuid'), '5C4E7A63-8F27-4B6E-9C1D-3A2F0E8B7D14\n');
    expect((await loadHostIdentity(dir, {})).hostUuid).toBe('5c4e7a63-8f27-4b6e-9c1d-3a2f0e8b7d14');
  });

  it('--host-uuid wins over the stored one, is lower-cased and stored for later starts', async () => {
    const before = await loadHostIdentity(dir, {});
    const given = '0F8FAD5B-D9CB-469F-A165-70867728950E';
    const id = await loadHostIdentity(dir, { hostUuid: given });
    expect(id.hostUuid).toBe(given.toLowerCase());
    expect(id.hostUuid).not.toBe(before.hostUuid);
    expect(await stored()).toBe(given.toLowerCase());
    expect((await loadHostIdentity(dir, {})).hostUuid).toBe(given.toLowerCase());
  });

  it('accepts a --host-uuid of 32 bare hex digits and stores it dashed', async () => {
    const id = await loadHostIdentity(dir, { hostUuid: '0F8FAD5BD9CB469FA16570867728950E' });
    expect(id.hostUuid).toBe('0f8fad5b-d9cb-469f-a165-70867728950e');
    expect(await stored()).toBe(id.hostUuid);
  });

  it.each(['not-a-uuid', '', '0f8fad5b-d9cb-469f-a165-70867728950e0', '0f8fad5b-d9cb-469f-a165-70867728950g'])(
    'refuses --host-uuid %j with invalid_arg and leaves the stored UUID alone',
    async (bad) => {
      const before = await loadHostIdentity(dir, {});
      const err = await rejection(loadHostIdentity(dir, { hostUuid: bad }));
      expect(err.code).toBe('invalid_arg');
      expect(err.message).toContain('--host-uuid');
      expect(await stored()).toBe(before.hostUuid);
    },
  );

  it('uses the machine host name by default and an explicit one when given', async () => {
    expect((await loadHostIdentity(dir, {})).hostName).toBe(hostname());
    expect((await loadHostIdentity(dir, { hostName: 'node-2.lab_a' })).hostName).toBe('node-2.lab_a');
  });

  it.each(['bad name', '-leading-dash', '.dot', 'a/b', 'x'.repeat(255), 'tab\there', 'ünïcode'])('refuses host name %j with invalid_arg', async (bad) => {
    const err = await rejection(loadHostIdentity(dir, { hostName: bad }));
    expect(err.code).toBe('invalid_arg');
  });

  // BUG (src/host/identity.ts:40-44): the UUID file is written before the host
  // name is checked, so a start that fails on a bad --host-name has already
  // replaced the stored host UUID with --host-uuid.
  it('a refused host name leaves the stored UUID alone', async () => {
    const before = await loadHostIdentity(dir, {});
    await rejection(loadHostIdentity(dir, { hostUuid: '0f8fad5b-d9cb-469f-a165-70867728950e', hostName: 'bad name' }));
    expect(await stored()).toBe(before.hostUuid);
  });
});
