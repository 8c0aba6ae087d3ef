/** How the CLI picks and opens its connection: `-c URI`, else FERRY_DEFAULT_URI, else the local socket. */
import { ApiClient } from '../api/client.js';

/** The default URI, like virsh's qemu:///system. */
export const DEFAULT_URI = 'ferry:///system';

/** The URI the CLI will use. */
export function resolveUri(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env.FERRY_DEFAULT_URI ?? DEFAULT_URI;
}

/** Opens a client for the resolved URI. TLS credentials default to FERRY_PKI_DIR when set. */
export function openConnection(uri: string, env: NodeJS.ProcessEnv = process.env): Promise<ApiClient> {
  return ApiClient.connect(uri, env.FERRY_PKI_DIR ? { pkiDir: env.FERRY_PKI_DIR } : {});
}
