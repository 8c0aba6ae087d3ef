/**
 * The destination side of a storage copy: target images (checked, and
 * created when missing) before the destination QEMU starts, then an NBD
 * server in that QEMU exporting them writable for the source's mirrors.
 * Every check runs before anything is created, so a refusal leaves the
 * destination as it was; images created here are deleted again if the
 * migration fails.
 */
import { lstat, stat, unlink } from 'node:fs/promises';
import type { DomainDocument } from '../domain/index.js';
import { FerryError } from '../errors/index.js';
import { advertisedHost, hasFlag, unixPath, uriHost, uriPort, uriScheme, type MigrationParams } from '../flags/index.js';
import { diskNodeNames, type QmpClient } from '../qemu/index.js';
import { createImage, imageInfo } from '../qemu/qemu-img.js';
import type { NbdTarget, StorageCookie } from './phase-messages.js';
import type { PortReservations } from './ports.js';
import { bootId } from './storage-copy.js';

/** What {@link prepareTargetImages} did. */
export interface PreparedImages {
  /** The definition to start the destination with (fully copied disks that got a new image lose their backing chain). */
  doc: DomainDocument;
  /** Targets whose backing chain was dropped from the definition. */
  flattened: string[];
  /** Images created here, to delete if the migration fails. */
  created: string[];
}

type Plan = { target: string; path: string; create?: { format: 'raw' | 'qcow2'; size: number; backing?: { path: string; format: string } }; flatten: boolean };

/**
 * Checks (and creates where missing) the destination image of every disk
 * the source will copy.
 *
 * @throws FerryError `operation_invalid` for an image that cannot take the copy, `no_storage_vol` for a missing backing image
 */
export async function prepareTargetImages(doc: DomainDocument, storage: StorageCookie, log: (m: string) => void): Promise<PreparedImages> {
  const myBoot = await bootId();
  const plans: Plan[] = [];
  for (const src of storage.disks) {
    const disk = doc.def.disks.find((d) => d.targetDev === src.target);
    if (!disk || !disk.sourcePath) {
      throw new FerryError('invalid_arg', `the destination definition has no disk ${src.target} with a source to copy into`);
    }
    const path = disk.sourcePath;
    if (src.file && src.file.bootId !== '' && src.file.bootId === myBoot) {
      const st = await stat(path).catch(() => undefined);
      if (st && st.dev === src.file.dev && st.ino === src.file.ino) {
        throw new FerryError(
          'operation_invalid',
          `the destination image of disk ${src.target} (${path}) is the very file the source runs from: the two hosts share this storage, so use a migration without --copy-storage-all/--copy-storage-inc, or give the destination another path with --xml`,
        );
      }
    }
    const info = await imageInfo(path);
    if (info) {
      if (info.virtualSize !== src.capacity) {
        throw new FerryError('operation_invalid', `the destination image of disk ${src.target} (${path}) has ${info.virtualSize} bytes, the source disk ${src.capacity}: a copy needs the same virtual size`);
      }
      plans.push({ target: src.target, path, flatten: false });
      continue;
    }
    if (disk.type === 'block') {
      throw new FerryError('operation_invalid', `the destination block device of disk ${src.target} (${path}) does not exist, and Ferry creates only image files`);
    }
    if (storage.sync === 'top' && src.backing) {
      const bpath = disk.backingStore?.sourcePath ?? src.backing.path;
      const bformat = disk.backingStore?.format ?? src.backing.format;
      if (disk.format !== 'qcow2') throw new FerryError('operation_invalid', `disk ${src.target} is ${disk.format} on the destination, which cannot sit on the backing image ${bpath}`);
      const binfo = await imageInfo(bpath);
      if (!binfo) {
        throw new FerryError('no_storage_vol', `an incremental copy of disk ${src.target} needs its backing image ${bpath} on the destination, and it is not there: copy it first, or use --copy-storage-all`);
      }
      if (binfo.format !== src.backing.format || binfo.virtualSize !== src.backing.capacity || bformat !== src.backing.format) {
        throw new FerryError(
          'operation_invalid',
          `the backing image ${bpath} of disk ${src.target} on the destination (${binfo.format}, ${binfo.virtualSize} bytes) does not match the source's (${src.backing.format}, ${src.backing.capacity} bytes)`,
        );
      }
      plans.push({ target: src.target, path, create: { format: 'qcow2', size: src.capacity, backing: { path: bpath, format: bformat } }, flatten: false });
    } else {
      plans.push({ target: src.target, path, create: { format: disk.format, size: src.capacity }, flatten: storage.sync === 'full' && disk.backingStore !== undefined });
    }
  }
  const created: string[] = [];
  let out = doc;
  const flattened: string[] = [];
  try {
    for (const plan of plans) {
      if (plan.create) {
        await createImage(plan.path, plan.create.format, plan.create.size, plan.create.backing);
        created.push(plan.path);
        log(`created ${plan.create.format} image ${plan.path} (${plan.create.size} bytes${plan.create.backing ? `, on ${plan.create.backing.path}` : ''}) for disk ${plan.target}`);
      }
      if (plan.flatten) {
        out = out.withDiskSource(plan.target, plan.path, { removeBackingStore: true });
        flattened.push(plan.target);
      }
    }
  } catch (err) {
    await removeImages(created);
    throw err;
  }
  return { doc: out, flattened, created };
}

/** Deletes images this host created for a migration that failed. */
export async function removeImages(paths: readonly string[]): Promise<void> {
  for (const p of paths) await unlink(p).catch(() => undefined);
}

/** Where the NBD server listens. */
export type NbdListen = { type: 'inet'; host: string; port: number } | { type: 'unix'; path: string };

/**
 * Refuses a unix socket path that names something other than a socket:
 * QEMU removes whatever is at the path before it binds.
 */
export async function checkSocketPath(path: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (st && !st.isSocket()) throw new FerryError('invalid_arg', `the disk socket path ${path} exists and is not a socket; name a free path`);
}

/**
 * Starts the NBD server of the destination QEMU and exports each disk in
 * `targets` writable. Returns the export names by target.
 */
export async function startNbdExports(qmp: QmpClient, listen: NbdListen, targets: readonly string[], tlsCredsId?: string): Promise<Record<string, string>> {
  const addr = listen.type === 'inet' ? { type: 'inet', data: { host: listen.host, port: String(listen.port) } } : { type: 'unix', data: { path: listen.path } };
  await qmp.execute('nbd-server-start', { addr, ...(tlsCredsId ? { 'tls-creds': tlsCredsId } : {}) });
  const exports: Record<string, string> = {};
  for (const target of targets) {
    const name = `drive-${target}`;
    await qmp.execute('block-export-add', { type: 'nbd', id: `export-${target}`, 'node-name': diskNodeNames(target).format, name, writable: true });
    exports[target] = name;
  }
  return exports;
}

/** What {@link startNbdServer} needs to know of the incoming job. */
export interface NbdServerRequest {
  flags: number;
  params: MigrationParams;
  /** The disks to export, by target. */
  targets: readonly string[];
  tlsCredsId?: string;
  /** TUNNELLED: the unix socket the server listens on (the daemon relays it). */
  tunnelPath: string;
  /** The job, as log lines name it, e.g. `'web1' (job ID)`. */
  label: string;
}

/** The NBD server {@link startNbdServer} started. */
export interface StartedNbdServer {
  /** Where the source mirrors to, as prepare answers it. */
  target: NbdTarget;
  /** tcp: the reserved port (give it back to `ports` when the job ends). */
  port?: number;
}

/**
 * Starts the destination QEMU's NBD server for a storage copy: on the
 * tunnel's unix socket (TUNNELLED), at disks_uri, or on disks_port / a
 * free port of the migration range at listen_address.
 */
export async function startNbdServer(qmp: QmpClient, request: NbdServerRequest, ports: PortReservations, log: (m: string) => void): Promise<StartedNbdServer> {
  const { targets, tlsCredsId } = request;
  const tls = tlsCredsId !== undefined;
  if (hasFlag(request.flags, 'TUNNELLED')) {
    const exports = await startNbdExports(qmp, { type: 'unix', path: request.tunnelPath }, targets, tlsCredsId);
    return { target: { transport: 'tunnel', exports, tls } };
  }
  const uri = request.params.disks_uri;
  if (uri !== undefined && uriScheme(uri) === 'unix') {
    const path = unixPath(uri)!;
    await checkSocketPath(path);
    const exports = await startNbdExports(qmp, { type: 'unix', path }, targets, tlsCredsId);
    return { target: { transport: 'unix', path, exports, tls } };
  }
  const host = uri !== undefined ? (uriHost(uri) ?? '') : (request.params.listen_address ?? '0.0.0.0');
  const fixed = (uri !== undefined ? uriPort(uri) : undefined) ?? request.params.disks_port;
  let nbdPort: number | undefined;
  const exports = await ports.onFreePort(host, fixed, true, async (port) => {
    try {
      return await startNbdExports(qmp, { type: 'inet', host, port }, targets, tlsCredsId);
    } catch (err) {
      await qmp.execute('nbd-server-stop').catch(() => undefined);
      throw err;
    }
  }, (port) => {
    nbdPort = port;
  });
  const shown = advertisedHost(host);
  log(`disk copy server of ${request.label} listening on ${host}:${nbdPort}`);
  return { target: { transport: 'tcp', host: shown, port: nbdPort!, exports, tls }, port: nbdPort! };
}

/** Stops the NBD server (and with it the exports) before the guest runs on the destination. */
export async function stopNbdServer(qmp: QmpClient): Promise<void> {
  await qmp.execute('nbd-server-stop');
}
