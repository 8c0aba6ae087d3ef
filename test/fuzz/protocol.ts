/**
 * Hostile inputs for the native protocol: what a fuzz case sends on one
 * fresh connection. Each case is bytes to write (possibly in pieces), and
 * whether the daemon is expected to hang up (after a framing error).
 */
import { Rng } from './rng.js';
import { MAX_FRAME_BYTES } from '../../src/api/framing.js';

export interface ProtocolCase {
  kind: string;
  /** Pieces written one after the other. */
  pieces: Buffer[];
  /** Close our side right after writing (a truncated frame, say). */
  endEarly: boolean;
}

function frame(kind: number, body: Buffer, lengthOverride?: number): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(lengthOverride ?? body.length + 1, 0);
  head.writeUInt8(kind, 4);
  return Buffer.concat([head, body]);
}

const json = (v: unknown) => frame(1, Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)));

/** Methods whose parameters get fuzzed; none can harm a guest whose name the fuzzer never uses. */
const METHODS = [
  'connect.hello', 'domain.list', 'domain.define', 'domain.undefine', 'domain.suspend', 'domain.create', 'migration.begin', 'domain.jobAbort', 'domain.info', 'domain.state', 'domain.xml', 'domain.start', 'domain.destroy',
  'domain.consoleLog', 'domain.jobInfo', 'domain.autostart', 'domain.qemuMonitorCommand', 'migration.prepare', 'migration.finish', 'migration.perform',
  'migration.confirm', 'migration.tunnelAttach', 'migration.abortIncoming', 'domain.migrateSetSpeed', 'domain.migrateSetMaxDowntime', 'events.subscribe',
  'no.such.method', '', '__proto__', 'constructor',
];

function randomValue(rng: Rng, depth = 0): unknown {
  switch (rng.int(0, depth > 3 ? 5 : 8)) {
    case 0: return null;
    case 1: return rng.int(-2, 2) * 10 ** rng.int(0, 20);
    case 2: return rng.next() < 0.5;
    case 3: return rng.nasty(40);
    case 4: return 'fuzz-' + rng.nasty(10);
    case 5: return rng.pick([NaN, -0, 1e308, -1, 0, 2 ** 53]);
    case 6: return Array.from({ length: rng.int(0, 4) }, () => randomValue(rng, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = rng.int(0, 4); i > 0; i--) o[rng.pick(['domain', 'name', 'xml', 'jobId', 'flags', 'params', 'cookie', 'nbd', 'channel', 'command', 'hmp', '__proto__', 'uuid', rng.nasty(6)])] = randomValue(rng, depth + 1);
      return o;
    }
  }
}

/** The fuzz case number `i` of seed `seed`. */
export function protocolCase(seed: number, i: number): ProtocolCase {
  const rng = new Rng(seed * 1_000_003 + i);
  const k = rng.int(0, 13);
  switch (k) {
    case 0: return { kind: 'random bytes', pieces: [rng.bytes(rng.int(0, 2048))], endEarly: rng.next() < 0.5 };
    case 1: return { kind: 'oversized length', pieces: [frame(1, Buffer.from('{}'), MAX_FRAME_BYTES + rng.int(1, 1 << 30))], endEarly: false };
    case 2: return { kind: 'zero length', pieces: [frame(1, Buffer.alloc(0), 0)], endEarly: false };
    case 3: {
      const whole = json({ type: 'call', id: 1, method: 'domain.list', params: {} });
      return { kind: 'truncated frame', pieces: [whole.subarray(0, rng.int(1, whole.length - 1))], endEarly: true };
    }
    case 4: return { kind: 'unknown frame kind', pieces: [frame(rng.int(3, 255), rng.bytes(rng.int(0, 64)))], endEarly: false };
    case 5: return { kind: 'stream frame without a stream', pieces: [frame(2, rng.bytes(rng.int(0, 64)))], endEarly: false };
    case 6: return { kind: 'bad JSON', pieces: [frame(1, Buffer.from(rng.nasty(200)))], endEarly: false };
    case 7: return { kind: 'wrong envelope', pieces: [json(randomValue(rng))], endEarly: false };
    case 8: {
      const n = rng.int(1000, 200_000);
      return { kind: 'deep nesting', pieces: [frame(1, Buffer.from('{"type":"call","id":1,"method":"domain.list","params":{"a":' + '['.repeat(n) + ']'.repeat(n) + '}}'))], endEarly: false };
    }
    case 9: {
      const big = 'x'.repeat(rng.int(1, 15) * 1024 * 1024);
      return { kind: 'huge string', pieces: [json({ type: 'call', id: 1, method: rng.pick(['domain.define', 'domain.lookup', 'domain.info']), params: { xml: big, domain: big } })], endEarly: false };
    }
    case 10: {
      // The frames in many small pieces, out of step with frame boundaries.
      const all = Buffer.concat(Array.from({ length: rng.int(1, 5) }, (_, id) => json({ type: 'call', id: id + 1, method: rng.pick(METHODS), params: randomValue(rng) })));
      const pieces: Buffer[] = [];
      for (let at = 0; at < all.length; ) {
        const n = rng.int(1, 50);
        pieces.push(all.subarray(at, at + n));
        at += n;
      }
      return { kind: 'split frames', pieces, endEarly: false };
    }
    case 11: {
      const calls = Array.from({ length: rng.int(65, 200) }, (_, id) => json({ type: 'call', id: id + 1, method: 'domain.list', params: {} }));
      return { kind: 'too many calls in flight', pieces: [Buffer.concat(calls)], endEarly: false };
    }
    case 12: return { kind: 'reply sent to the daemon', pieces: [json({ type: 'reply', id: rng.int(-5, 5), result: randomValue(rng) })], endEarly: false };
    default: {
      const params = randomValue(rng);
      return { kind: 'fuzzed call', pieces: [json({ type: 'call', id: rng.int(1, 1e9), method: rng.pick(METHODS), params: typeof params === 'object' && params !== null && !Array.isArray(params) ? params : { domain: params } })], endEarly: false };
    }
  }
}
