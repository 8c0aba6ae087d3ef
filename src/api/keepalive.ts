/**
 * Keepalive of one native-protocol connection, in libvirt's manner: when the
 * peer has been silent for an interval, send a ping; a peer that stays
 * silent for `interval x count` is declared dead. Anything the peer sends
 * (a reply, an event, a pong) counts as a sign of life, so a busy
 * connection never pings. Both ends run one: a daemon notices a client (or
 * a peer daemon) that vanished without closing its socket (a cut link, a
 * frozen host), and a client notices such a daemon.
 */
import { FerryError } from '../errors/index.js';

/** How a connection checks that its peer is alive. */
export interface KeepaliveSettings {
  /** Seconds of silence before a ping; 0 turns keepalive off. */
  intervalS: number;
  /** Intervals of silence after which the peer is dead (the bound is `intervalS x count` seconds). */
  count: number;
}

/** libvirt's defaults (libvirtd.conf `keepalive_interval = 5`, `keepalive_count = 5`). */
export const DEFAULT_KEEPALIVE: KeepaliveSettings = { intervalS: 5, count: 5 };

/** Largest accepted interval and count: beyond them a dead peer would go unnoticed for hours. */
export const MAX_KEEPALIVE_INTERVAL_S = 3600;
export const MAX_KEEPALIVE_COUNT = 100;

/** The longest a dead peer can go unnoticed under `s`, in ms (Infinity when off). */
export function keepaliveBoundMs(s: KeepaliveSettings): number {
  return s.intervalS > 0 ? s.intervalS * Math.max(1, s.count) * 1000 : Infinity;
}

/** The timer of one connection. */
export class Keepalive {
  private lastHeard = Date.now();
  private timer: NodeJS.Timeout | null = null;

  /**
   * @param ping sends one ping frame
   * @param dead called once when the peer has been silent for the whole bound
   */
  constructor(
    private readonly settings: KeepaliveSettings,
    private readonly ping: () => void,
    private readonly dead: (silentMs: number) => void,
  ) {}

  /** Starts watching (no-op when keepalive is off). */
  start(): this {
    if (this.settings.intervalS <= 0 || this.timer) return this;
    this.lastHeard = Date.now();
    const intervalMs = this.settings.intervalS * 1000;
    // Ticks at a fraction of the interval, so the bound holds to within that fraction.
    const tickMs = Math.max(50, Math.min(1000, Math.floor(intervalMs / 4)));
    let lastPing = 0;
    this.timer = setInterval(() => {
      const now = Date.now();
      const silent = now - this.lastHeard;
      if (silent >= keepaliveBoundMs(this.settings)) {
        this.stop();
        this.dead(silent);
        return;
      }
      if (silent >= intervalMs && now - lastPing >= intervalMs) {
        lastPing = now;
        this.ping();
      }
    }, tickMs);
    this.timer.unref();
    return this;
  }

  /** The peer sent something. */
  heard(): void {
    this.lastHeard = Date.now();
  }

  /** Stops watching (the connection closed or became a raw tunnel). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

/** Checks keepalive settings from a command line or a config; throws a sentence naming the option. */
export function checkKeepalive(intervalS: number, count: number, names = { interval: '--keepalive-interval', count: '--keepalive-count' }): KeepaliveSettings {
  if (!Number.isSafeInteger(intervalS) || intervalS < 0 || intervalS > MAX_KEEPALIVE_INTERVAL_S) {
    throw new FerryError('invalid_arg', `${names.interval} expects whole seconds from 0 (off) to ${MAX_KEEPALIVE_INTERVAL_S}, not '${intervalS}'`);
  }
  if (!Number.isSafeInteger(count) || count < 1 || count > MAX_KEEPALIVE_COUNT) {
    throw new FerryError('invalid_arg', `${names.count} expects a whole number from 1 to ${MAX_KEEPALIVE_COUNT}, not '${count}'`);
  }
  return { intervalS, count };
}

/** Reads `--keepalive-interval` and `--keepalive-count` as given on a command line (either may be absent). */
export function parseKeepalive(interval: string | undefined, count: string | undefined): KeepaliveSettings {
  const whole = (v: string | undefined, dflt: number, option: string, range: string) => {
    if (v === undefined) return dflt;
    if (!/^\d{1,9}$/.test(v)) throw new FerryError('invalid_arg', `${option} expects ${range}, not '${v}'`);
    return Number(v);
  };
  return checkKeepalive(
    whole(interval, DEFAULT_KEEPALIVE.intervalS, '--keepalive-interval', `whole seconds from 0 (off) to ${MAX_KEEPALIVE_INTERVAL_S}`),
    whole(count, DEFAULT_KEEPALIVE.count, '--keepalive-count', `a whole number from 1 to ${MAX_KEEPALIVE_COUNT}`),
  );
}
