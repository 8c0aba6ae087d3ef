/**
 * How a migration request becomes QEMU settings on each side: which
 * migration capabilities to turn on and which parameters to set, from the
 * flags and libvirt-named parameters. Pure: the QMP calls are in
 * qemu-migration.ts. Both sides must agree on multifd, post-copy and
 * compression, so they are derived here from one request.
 */
import { hasFlag, type MigrationParams } from '../flags/index.js';

/** QEMU's "no limit" for max-bandwidth (bytes/s). */
export const UNLIMITED_BANDWIDTH_BYTES = 2 ** 53 - 1;
/** MiB in bytes. */
export const MIB = 1024 * 1024;
/** multifd channels when PARALLEL is given without parallel.connections (QEMU's and libvirt's default). */
export const DEFAULT_PARALLEL_CONNECTIONS = 2;

/** QEMU settings for one side of a migration. */
export interface QemuMigrationSetup {
  /** `migrate-set-capabilities` entries. */
  capabilities: Record<string, boolean>;
  /** `migrate-set-parameters` arguments. */
  parameters: Record<string, unknown>;
}

/** Per-job values that do not come from the request itself. */
export interface TuningContext {
  /** Bandwidth in MiB/s from `migrate-setspeed`, used when the request has none. */
  speedMiB?: number;
  /** Id of the `tls-creds-x509` object when TLS is requested. */
  tlsCredsId?: string;
  /** Host name the source checks the destination's certificate against. */
  tlsHostname?: string;
}

/** The settings for `side`. */
export function migrationSetup(flags: number, params: MigrationParams, side: 'source' | 'destination', ctx: TuningContext = {}): QemuMigrationSetup {
  // Every capability Ferry manages is set each time, on or off: a QEMU that received one migration
  // keeps that migration's capabilities, and a stale one (compress) would clash with the next (multifd).
  const caps: Record<string, boolean> = { events: true, xbzrle: false, compress: false, multifd: false, 'auto-converge': false, 'postcopy-ram': false };
  const p: Record<string, unknown> = { 'multifd-compression': 'none', 'tls-creds': '' };
  const source = side === 'source';

  if (source) {
    const mib = params.bandwidth ?? ctx.speedMiB;
    p['max-bandwidth'] = mib !== undefined && mib * MIB < UNLIMITED_BANDWIDTH_BYTES ? mib * MIB : UNLIMITED_BANDWIDTH_BYTES;
  }
  const parallel = hasFlag(flags, 'PARALLEL');
  if (parallel) {
    caps.multifd = true;
    p['multifd-channels'] = params['parallel.connections'] ?? DEFAULT_PARALLEL_CONNECTIONS;
  }
  if (hasFlag(flags, 'COMPRESSED')) {
    const methods = params.compression ?? (parallel ? [] : ['xbzrle']);
    if (methods.includes('xbzrle')) {
      caps.xbzrle = true;
      if (source && params['compression.xbzrle.cache'] !== undefined) p['xbzrle-cache-size'] = params['compression.xbzrle.cache'];
    }
    if (methods.includes('mt')) {
      caps.compress = true;
      if (source) {
        if (params['compression.mt.level'] !== undefined) p['compress-level'] = params['compression.mt.level'];
        if (params['compression.mt.threads'] !== undefined) p['compress-threads'] = params['compression.mt.threads'];
      } else if (params['compression.mt.dthreads'] !== undefined) {
        p['decompress-threads'] = params['compression.mt.dthreads'];
      }
    }
    for (const m of ['zlib', 'zstd'] as const) {
      if (!methods.includes(m)) continue;
      // Both ends must name the same multifd compression, or the stream cannot be read.
      p['multifd-compression'] = m;
      const level = params[`compression.${m}.level`];
      if (source && level !== undefined) p[`multifd-${m}-level`] = level;
    }
  }
  if (hasFlag(flags, 'AUTO_CONVERGE') && source) {
    caps['auto-converge'] = true;
    if (params['auto_converge.initial'] !== undefined) p['cpu-throttle-initial'] = params['auto_converge.initial'];
    if (params['auto_converge.increment'] !== undefined) p['cpu-throttle-increment'] = params['auto_converge.increment'];
  }
  if (hasFlag(flags, 'POSTCOPY')) {
    caps['postcopy-ram'] = true;
    if (source && params['bandwidth.postcopy'] !== undefined) p['max-postcopy-bandwidth'] = params['bandwidth.postcopy'] * MIB;
  }
  // Zero-copy sending is the source's alone (the destination receives as usual). Set off otherwise: a QEMU
  // that sent one migration with it keeps it, and QEMU refuses it next to a migration without multifd.
  if (source) caps['zero-copy-send'] = hasFlag(flags, 'ZEROCOPY');
  // rdma-pin-all is only set when asked: QEMU builds without RDMA reject the capability name.
  if (hasFlag(flags, 'RDMA_PIN_ALL')) caps['rdma-pin-all'] = true;
  // The destination's QEMU announces the guest's MACs once it runs the guest: the announce parameters are its own.
  if (!source) {
    if (params.announce_initial !== undefined) p['announce-initial'] = params.announce_initial;
    if (params.announce_max !== undefined) p['announce-max'] = params.announce_max;
    if (params.announce_rounds !== undefined) p['announce-rounds'] = params.announce_rounds;
    if (params.announce_step !== undefined) p['announce-step'] = params.announce_step;
  }
  if (hasFlag(flags, 'TLS') && ctx.tlsCredsId) {
    p['tls-creds'] = ctx.tlsCredsId;
    if (source && ctx.tlsHostname) p['tls-hostname'] = ctx.tlsHostname;
  }
  return { capabilities: caps, parameters: p };
}
