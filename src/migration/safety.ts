/**
 * Checks that decide whether a domain may start migrating: the UNSAFE
 * rule on disk cache modes and storage, and the I/O-error pause rule of
 * ABORT_ON_ERROR.
 */
import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { DomainDef } from '../domain/index.js';
import { FerryError } from '../errors/index.js';

/** statfs magic numbers of filesystems whose images may be shared safely whatever the cache mode. */
export const CLUSTER_FS_MAGIC: Record<string, number> = {
  nfs: 0x6969,
  gfs2: 0x01161970,
  gpfs: 0x47504653,
  ocfs2: 0x7461636f,
  cephfs: 0x00c36400,
};

/** The filesystem name of `path` if it is one of {@link CLUSTER_FS_MAGIC}, else undefined. */
export async function clusterFsOf(path: string): Promise<string | undefined> {
  let p = path;
  for (let i = 0; i < 64; i++) {
    try {
      const st = await statfs(p);
      const type = Number(st.type) >>> 0;
      return Object.entries(CLUSTER_FS_MAGIC).find(([, magic]) => magic >>> 0 === type)?.[0];
    } catch {
      const up = dirname(p);
      if (up === p) return undefined;
      p = up;
    }
  }
  return undefined;
}

/**
 * Refuses (`migrate_unsafe`) when a writable, non-shareable disk that is
 * not being copied uses a cache mode other than none or directsync on
 * storage that is not a cluster filesystem: the destination could read
 * stale data that the source still holds in its page cache.
 */
export async function checkMigrationSafe(def: DomainDef, copiedDisks: ReadonlySet<string>): Promise<void> {
  for (const disk of def.disks) {
    if (disk.readonly || disk.shareable || disk.device === 'cdrom' || !disk.sourcePath) continue;
    if (copiedDisks.has(disk.targetDev)) continue;
    const cache = disk.cache ?? 'default';
    if (cache === 'none' || cache === 'directsync') continue;
    if (await clusterFsOf(disk.sourcePath)) continue;
    throw new FerryError(
      'migrate_unsafe',
      `Unsafe migration: disk ${disk.targetDev} (${disk.sourcePath}) uses cache mode '${cache}' on storage that is not a cluster filesystem; set <driver cache='none'/> or 'directsync', copy the disk (--copy-storage-all), or pass --unsafe (UNSAFE) to migrate anyway`,
    );
  }
}
