/** How the CLI picks and opens its connection: `-c URI`, else FERRY_DEFAULT_URI, else the local socket. */
import type { ApiClient, ConnectOptions } from '../api/client.js';
import { type KeepaliveSettings } from '../api/keepalive.js';

/** The default URI, like virsh's qemu:///system. */
export const DEFAULT_URI = 'ferry:///system';

/** The URI the CLI will use. */
export function resolveUri(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env.FERRY_DEFAULT_URI ?? DEFAULT_URI;
}

/** How the CLI connects: TLS credentials default to FERRY_PKI_DIR when set; keepalive from -k/-K. */
export function connectOptions(keepalive: KeepaliveSettings | undefined, env: NodeJS.ProcessEnv = process.env): ConnectOptions {
  return { ...(env.FERRY_PKI_DIR ? { pkiDir: env.FERRY_PKI_DIR } : {}), ...(keepalive ? { keepalive } : {}) };
}

/** Opens a client for `uri`. */
export async function openConnection(uri: string, opts: ConnectOptions): Promise<ApiClient> {
  // The client (node:net, the framing) is initialized on first use: `uri`, `--help` and usage errors start without it.
  const { ApiClient } = await import('../api/client.js');
  return ApiClient.connect(uri, opts);
}
