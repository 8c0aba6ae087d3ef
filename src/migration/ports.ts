/** Picks a free TCP port for an incoming migration stream. */
import { createServer } from 'node:net';
import { FerryError } from '../errors/index.js';

/** libvirt's default migration port range (qemu.conf migration_port_min/max). */
export const DEFAULT_MIGRATION_PORTS = { min: 49152, max: 49215 } as const;

/**
 * Finds a port in `range` that `host` can bind now, skipping `exclude`.
 * Another process may take it before QEMU does; the caller retries then.
 */
export async function findFreePort(host: string, range: { min: number; max: number }, exclude: ReadonlySet<number> = new Set()): Promise<number> {
  for (let port = range.min; port <= range.max; port++) {
    if (exclude.has(port)) continue;
    if (await canBind(host, port)) return port;
  }
  throw new FerryError('operation_failed', `no free migration port in ${range.min}-${range.max} on ${host}`);
}

function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}
