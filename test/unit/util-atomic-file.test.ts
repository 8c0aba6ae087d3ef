import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeFileDurable, writeFileAtomic } from '../../src/util/atomic-file.js';
import { rejection } from '../support/refusal.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-atomic-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeFileAtomic', () => {
  it('creates a file with the given content, and its missing parent directories', async () => {
    const p = join(dir, 'a', 'b', 'c.txt');
    await writeFileAtomic(p, 'hello\n');
    expect(await readFile(p, 'utf8')).toBe('hello\n');
  });

  it('replaces existing content completely (no leftover tail from a longer old file)', async () => {
    const p = join(dir, 'f');
    await writeFile(p, 'a much longer old content that must disappear');
    await writeFileAtomic(p, 'short');
    expect(await readFile(p, 'utf8')).toBe('short');
  });

  it('writes binary data unchanged', async () => {
    const p = join(dir, 'bin');
    const data = new Uint8Array([0, 255, 10, 13, 0x80]);
    await writeFileAtomic(p, data);
    expect([...(await readFile(p))]).toEqual([...data]);
  });

  it('leaves no temp files behind', async () => {
    const p = join(dir, 'f');
    await writeFileAtomic(p, 'one');
    await writeFileAtomic(p, 'two');
    await Promise.all([writeFileAtomic(p, 'x'), writeFileAtomic(p, 'y'), writeFileAtomic(join(dir, 'g'), 'z')]);
    expect((await readdir(dir)).sort()).toEqual(['f', 'g']);
    expect(['x', 'y']).toContain(await readFile(p, 'utf8'));
  });

  it('sets the mode, 0600 by default, also when replacing a file with another mode', async () => {
    const p = join(dir, 'f');
    await writeFileAtomic(p, 'x');
    expect((await stat(p)).mode & 0o777).toBe(0o600);
    await writeFileAtomic(p, 'y', 0o644);
    expect((await stat(p)).mode & 0o777).toBe(0o644);
    await writeFileAtomic(p, 'z', 0o640);
    expect((await stat(p)).mode & 0o777).toBe(0o640);
  });

  it('a failed write throws write_failed, keeps the old content and removes its temp file', async () => {
    const p = join(dir, 'f');
    await writeFile(p, 'old content');
    // Data of a type the file handle cannot write makes the write itself fail.
    const err = await rejection(writeFileAtomic(p, 42 as unknown as string));
    expect(err.code).toBe('write_failed');
    expect(err.message).toContain(p);
    expect(await readFile(p, 'utf8')).toBe('old content');
    expect(await readdir(dir)).toEqual(['f']);
  });

  it('a path that is a directory throws write_failed and leaves the directory and its content intact', async () => {
    const p = join(dir, 'd');
    await mkdir(p);
    await writeFile(join(p, 'inside'), 'keep me');
    const err = await rejection(writeFileAtomic(p, 'new'));
    expect(err.code).toBe('write_failed');
    expect((await stat(p)).isDirectory()).toBe(true);
    expect(await readFile(join(p, 'inside'), 'utf8')).toBe('keep me');
    expect(await readdir(dir)).toEqual(['d']);
  });

  it('a parent that is a file throws write_failed', async () => {
    await writeFile(join(dir, 'plain'), 'x');
    const err = await rejection(writeFileAtomic(join(dir, 'plain', 'child'), 'y'));
    expect(err.code).toBe('write_failed');
    expect(await readFile(join(dir, 'plain'), 'utf8')).toBe('x');
  });

  it('a directory that cannot be written throws write_failed and leaves the old content', async () => {
    // /proc refuses new files even for root, so this also runs where chmod would not stop us.
    const before = await readFile('/proc/version', 'utf8');
    const err = await rejection(writeFileAtomic('/proc/version', 'replaced'));
    expect(err.code).toBe('write_failed');
    expect(await readFile('/proc/version', 'utf8')).toBe(before);
  });

  it.skipIf(process.getuid?.() === 0)('a read-only directory throws write_failed and leaves the old content (non-root)', async () => {
    const { chmod } = await import('node:fs/promises');
    const p = join(dir, 'f');
    await writeFile(p, 'old');
    await chmod(dir, 0o500);
    try {
      expect((await rejection(writeFileAtomic(p, 'new'))).code).toBe('write_failed');
      expect(await readFile(p, 'utf8')).toBe('old');
    } finally {
      await chmod(dir, 0o700);
    }
  });
});

describe('removeFileDurable', () => {
  it('removes a file', async () => {
    const p = join(dir, 'f');
    await writeFile(p, 'x');
    await removeFileDurable(p);
    expect(existsSync(p)).toBe(false);
  });

  it('is fine with a missing file (and a missing directory)', async () => {
    await expect(removeFileDurable(join(dir, 'nope'))).resolves.toBeUndefined();
    await expect(removeFileDurable(join(dir, 'no-dir', 'nope'))).resolves.toBeUndefined();
  });

  it('throws write_failed when the path cannot be removed (a directory)', async () => {
    await mkdir(join(dir, 'd'));
    expect((await rejection(removeFileDurable(join(dir, 'd')))).code).toBe('write_failed');
    expect(existsSync(join(dir, 'd'))).toBe(true);
  });
});
