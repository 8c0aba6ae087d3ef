/** What every CLI command receives: its output and a lazily opened connection. */
import type { Command } from 'commander';
import type { ApiClient, ConnectOptions } from '../api/client.js';
import { parseKeepalive } from '../api/keepalive.js';
import { connectOptions, openConnection, resolveUri } from './connection.js';
import { stdOutput, type Output } from './output.js';

/** Shared state of one CLI invocation. */
export class CliContext {
  private clientPromise: Promise<ApiClient> | null = null;
  /** Set by `main` once options are parsed. */
  output: Output = stdOutput(false);

  constructor(private readonly program: Command) {}

  /** The connection URI in force (from -c, FERRY_DEFAULT_URI or the default). */
  get uri(): string {
    return resolveUri(this.program.opts<{ connect?: string }>().connect);
  }

  /** How this invocation connects to any daemon (the one of -c, or a migration's destination). */
  get connectOptions(): ConnectOptions {
    const o = this.program.opts<{ keepaliveInterval?: string; keepaliveCount?: string }>();
    return connectOptions(o.keepaliveInterval === undefined && o.keepaliveCount === undefined ? undefined : parseKeepalive(o.keepaliveInterval, o.keepaliveCount));
  }

  /** Connects on first use; later calls share the connection. */
  client(): Promise<ApiClient> {
    this.clientPromise ??= Promise.resolve().then(() => openConnection(this.uri, this.connectOptions));
    return this.clientPromise;
  }

  /** Closes the connection if one was opened. */
  async close(): Promise<void> {
    if (!this.clientPromise) return;
    try {
      (await this.clientPromise).close();
    } catch {
      // Connecting failed: nothing to close.
    }
  }
}
