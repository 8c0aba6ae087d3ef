/**
 * A tether that ties a QEMU's life to this daemon's, until it is released.
 *
 * QEMU runs detached so that guests outlive ferryd. A destination QEMU that
 * waits for (or holds, paused) an incoming migration is different: only
 * its daemon can ever hand it the guest, and a restarted daemon removes it
 * anyway. If that daemon dies, the QEMU should go at once rather than wait
 * for a stream nobody will finish. The tether is a tiny shell that reads
 * one line from a pipe whose other end only this daemon holds: `release`
 * lets the QEMU live on (the guest was handed over); end of file (the
 * daemon exited, however it died) kills the QEMU, if that pid is still a
 * QEMU.
 */
import { spawn } from 'node:child_process';

/** Reads one word; anything but `release` (end of file included) kills pid $1 if it is still a QEMU. */
const TETHER_SCRIPT = 'read -r word; [ "$word" = release ] && exit 0; case "$(cat /proc/$1/comm 2>/dev/null)" in qemu*) kill -9 "$1";; esac';

/** A QEMU tied to this daemon. */
export interface Tether {
  /** Unties it: the QEMU outlives the daemon from now on. Idempotent. */
  release(): void;
}

/** Ties QEMU `pid` to this process: when this process exits, the QEMU is killed, unless released first. */
export function tetherToDaemon(pid: number): Tether {
  const child = spawn('/bin/sh', ['-c', TETHER_SCRIPT, 'ferry-tether', String(pid)], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
  child.on('error', () => undefined);
  child.stdin!.on('error', () => undefined);
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      child.stdin!.end('release\n');
    },
  };
}
