/** Finds the QEMU binary to run: the domain's `<emulator>` or `qemu-system-x86_64` on PATH. */
import { execFile } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { FerryError, showValue } from '../errors/index.js';
import { assertPlainString } from './option-syntax.js';

/** The binary used when the domain names no `<emulator>`. */
export const DEFAULT_QEMU_BINARY = 'qemu-system-x86_64';

/**
 * Returns the absolute path of the QEMU binary for a domain.
 *
 * Resolved to an absolute path up front (rather than letting `spawn` search
 * PATH) so that a missing QEMU is a clear configuration error at start time,
 * not an ENOENT from the child, and so the status file and log record exactly
 * which binary ran — a migration destination must run a compatible one.
 *
 * @param emulator the domain's `<emulator>`, if any; must be absolute
 * @param pathEnv the PATH to search, `process.env.PATH` by default
 * @throws FerryError `config_unsupported` for a relative or non-executable `<emulator>`,
 *   `operation_failed` when no QEMU is found on PATH
 */
export function resolveQemuBinary(emulator: string | undefined, pathEnv: string | undefined = process.env.PATH): string {
  if (emulator !== undefined) {
    assertPlainString(emulator, 'emulator path');
    if (!isAbsolute(emulator)) {
      throw new FerryError('config_unsupported', `emulator ${showValue(emulator)} must be an absolute path`);
    }
    if (!isExecutableFile(emulator)) {
      throw new FerryError('config_unsupported', `emulator ${showValue(emulator)} is not an executable file`);
    }
    return emulator;
  }
  for (const dir of (pathEnv ?? '').split(delimiter)) {
    // An empty PATH entry means the current directory; a daemon must never
    // pick up a binary from wherever it happens to run, so skip those.
    if (dir === '' || !isAbsolute(dir)) continue;
    const candidate = join(dir, DEFAULT_QEMU_BINARY);
    if (isExecutableFile(candidate)) return candidate;
  }
  throw new FerryError(
    'operation_failed',
    `${DEFAULT_QEMU_BINARY} was not found on PATH; install QEMU (Debian: qemu-system-x86) or set <emulator> in the domain`,
  );
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

let versionCache: Promise<string> | undefined;

/**
 * The version of the default QEMU binary (`7.2.19`), asked once: what
 * `virsh version` reports as the running hypervisor. `0.0.0` when QEMU
 * cannot be run or does not answer within 10 s.
 */
export function defaultQemuVersion(): Promise<string> {
  versionCache ??= new Promise<string>((resolve) => {
    let binary: string;
    try {
      binary = resolveQemuBinary(undefined);
    } catch {
      resolve('0.0.0');
      return;
    }
    execFile(binary, ['--version'], { timeout: 10_000 }, (err, stdout) => {
      const m = /version (\d+\.\d+(?:\.\d+)?)/.exec(String(stdout));
      resolve(!err && m ? m[1]! : '0.0.0');
    });
  });
  return versionCache;
}
