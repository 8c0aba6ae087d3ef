/**
 * ferryd's libvirt-protocol server: the listeners (`--libvirt-socket`,
 * `--libvirt-listen-tcp`, `--libvirt-listen-tls`), the connections and the
 * fan-out of host events to the clients that registered for them.
 */
import type { Server, Socket } from 'node:net';
import { FerryError } from '../errors/index.js';
import type { HostEvent } from '../host/events.js';
import type { KeepaliveSettings } from '../api/keepalive.js';
import { addressPort, closeServer, listenMutualTls, listenPlainTcp, listenUnixOwnerOnly, type Transport } from '../api/listeners.js';
import type { TlsCredentials } from '../api/tls.js';
import { LibvirtConnection, type PendingAccount, type ProcedureHandlers } from './connection.js';
import { deliverEvent } from './handlers/events.js';
import { encodeMessage, MessageStatus, MessageType } from './rpc.js';
import { REMOTE_PROGRAM, REMOTE_VERSION } from './procedures.js';
import { remoteErrorOf } from './errors.js';
import { encode } from './xdr.js';
import { remoteError } from './wire-types.js';

/** Connections served at once; more are refused with an error. */
export const MAX_LIBVIRT_CONNECTIONS = 256;
/** Bytes of unfinished messages all connections together may hold. */
const PENDING_LIMIT = 128 * 1024 * 1024;

/** Serves the libvirt protocol on any number of listeners. */
export class LibvirtServer {
  private readonly servers: Server[] = [];
  private readonly connections = new Set<LibvirtConnection>();
  private readonly pending: PendingAccount = { used: 0, limit: PENDING_LIMIT };

  constructor(
    private readonly handlers: ProcedureHandlers,
    private readonly log: (msg: string) => void,
    private readonly keepalive: KeepaliveSettings,
    /** The runtime id of a domain, for event messages. */
    private readonly idOf: (uuid: string) => number | null,
  ) {}

  /** Sends a host event to every connection that registered for it. */
  /** Connections open now. */
  get connectionCount(): number {
    return this.connections.size;
  }

  publish(e: HostEvent): void {
    for (const c of this.connections) deliverEvent(c, e, this.idOf);
  }

  async listenUnix(path: string): Promise<void> {
    this.servers.push(await listenUnixOwnerOnly(path, this.accept));
  }

  async listenTcp(host: string, port: number): Promise<number> {
    const s = await listenPlainTcp(host, port, this.accept);
    this.servers.push(s);
    return addressPort(s);
  }

  async listenTls(host: string, port: number, creds: TlsCredentials): Promise<number> {
    const s = await listenMutualTls(host, port, creds, this.accept, this.log);
    this.servers.push(s);
    return addressPort(s);
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.close();
    await Promise.all(this.servers.map(closeServer));
  }

  private readonly accept = (socket: Socket, transport: Transport, peer: string): void => {
    if (this.connections.size >= MAX_LIBVIRT_CONNECTIONS) {
      this.log(`refusing a libvirt connection from ${peer}: ${MAX_LIBVIRT_CONNECTIONS} connections are open`);
      socket.on('error', () => undefined);
      const err = new FerryError('resource_busy', `ferryd serves at most ${MAX_LIBVIRT_CONNECTIONS} libvirt connections at once`);
      socket.end(encodeMessage({ program: REMOTE_PROGRAM, version: REMOTE_VERSION, procedure: 0, type: MessageType.reply, serial: 0, status: MessageStatus.error }, encode(remoteError, remoteErrorOf(err))));
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    const conn = new LibvirtConnection(socket, transport, peer, this.handlers, this.log, this.pending, this.keepalive);
    this.connections.add(conn);
    conn.once('close', () => this.connections.delete(conn));
  };
}
