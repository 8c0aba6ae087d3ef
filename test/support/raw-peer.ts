/**
 * A raw native-protocol peer for unit tests: it speaks frames by hand, so a
 * test can be a client (or a server's accepted socket) that misbehaves:
 * silent, garbage-sending, or answering only what it chooses.
 */
import { createConnection, type Socket } from 'node:net';
import { FrameDecoder, FrameKind, encodeJsonFrame } from '../../src/api/framing.js';

/** A socket that records the JSON frames it receives and when it is closed. */
export class RawPeer {
  readonly frames: unknown[] = [];
  readonly closed: Promise<void>;
  private readonly decoder = new FrameDecoder();
  private waiters: Array<() => void> = [];
  constructor(readonly socket: Socket) {
    socket.on('data', (c: Buffer) => {
      for (const f of this.decoder.push(c)) if (f.kind === FrameKind.json) this.frames.push(f.message);
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((r) => socket.once('close', () => r()));
  }

  /** Connects to a unix socket. */
  static connect(path: string): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const s = createConnection({ path });
      s.once('connect', () => resolve(new RawPeer(s)));
      s.once('error', reject);
    });
  }

  /** The next frame after those already received. */
  async nextFrame(): Promise<unknown> {
    const seen = this.frames.length;
    while (this.frames.length === seen) await new Promise<void>((r) => this.waiters.push(r));
    return this.frames[seen];
  }

  /** Waits until `count` frames satisfying `match` have arrived (counting those already here). */
  async framesMatching(match: (f: unknown) => boolean, count = 1): Promise<unknown[]> {
    for (;;) {
      const hits = this.frames.filter(match);
      if (hits.length >= count) return hits;
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  /** Sends one JSON message as a frame. */
  send(message: unknown): void {
    this.socket.write(encodeJsonFrame(message));
  }
}
