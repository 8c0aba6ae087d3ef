/**
 * Ports of the migration range: picking a free one for an incoming memory
 * stream or disk copy server, and holding it while a job uses it.
 */
import { createServer } from 'node:net';
import { FerryError, toFerryError } from '../errors/index.js';
import { qemuInetUri } from '../flags/index.js';
import type { QmpClient } from '../qemu/index.js';

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

/**
 * The ports of the migration range that this host's incoming jobs hold.
 * A port stays reserved from the moment a listener takes it until the job
 * releases it, so two jobs never pick the same one even before QEMU binds.
 */
export class PortReservations {
  private readonly used = new Set<number>();

  /** `range` is read at each pick (the host's configured range). */
  constructor(private readonly range: () => { min: number; max: number }) {}

  /**
   * Starts QEMU's incoming listener (`migrate-incoming`) on `fixedPort`, or
   * on a free port of the range, retrying if another process took it first.
   * Returns the port, which stays reserved until {@link release}.
   */
  async listen(qmp: QmpClient, host: string, transport: 'tcp' | 'rdma', fixedPort?: number): Promise<number> {
    let chosen = 0;
    // Only a port clash is worth another try; QEMU's refusal of the transport itself is final.
    await this.onFreePort(host, fixedPort, transport === 'tcp', (port) => qmp.execute('migrate-incoming', { uri: qemuInetUri(transport, host, port) }), (port) => {
      chosen = port;
    });
    return chosen;
  }

  /**
   * Runs `attempt` on `fixed`, or on a free port of the migration range,
   * trying another port (up to 5 times) when the failure is a port clash and
   * `retry` allows it. The port stays reserved on success (`taken` learns it)
   * and is released on failure.
   */
  async onFreePort<T>(host: string, fixed: number | undefined, retry: boolean, attempt: (port: number) => Promise<T>, taken: (port: number) => void): Promise<T> {
    let lastErr: unknown;
    for (let i = 0; i < 5; i++) {
      const port = fixed ?? (await findFreePort(host, this.range(), this.used));
      this.used.add(port);
      try {
        const out = await attempt(port);
        taken(port);
        return out;
      } catch (err) {
        lastErr = err;
        this.used.delete(port);
        if (!retry || fixed !== undefined || !/in use|bind/i.test((err as Error).message)) break;
      }
    }
    throw toFerryError(lastErr, 'operation_failed');
  }

  /** Gives a port back once its job has ended. */
  release(port: number): void {
    this.used.delete(port);
  }
}
