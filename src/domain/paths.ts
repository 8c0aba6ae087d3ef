/** Rules for host paths named in domain XML (images, kernels, sockets, logs). */

/** Longest host path accepted, matching Linux's PATH_MAX. */
export const MAX_PATH_LENGTH = 4095;

/**
 * Why `path` cannot be used as a host path, or undefined when it can. Paths
 * must be absolute because the daemon's working directory is meaningless to
 * the user. Commas, quotes, `=` and spaces are fine (Ferry hands paths to
 * QEMU as JSON, never inside a comma-separated option string), but control
 * characters are refused: NUL cannot reach the kernel and newlines break
 * logs and line-based protocols.
 */
export function hostPathProblem(path: string): string | undefined {
  if (path === '') return 'expected an absolute path, got an empty one';
  if (!path.startsWith('/')) return 'expected an absolute path (starting with /)';
  if (path.length > MAX_PATH_LENGTH) return `the path is longer than ${MAX_PATH_LENGTH} characters`;
  const control = /\p{Cc}/u.exec(path);
  if (control !== null) {
    const cp = control[0].codePointAt(0)!;
    if (cp === 0) return 'the path contains a NUL character';
    if (cp === 0x0a || cp === 0x0d) return 'the path contains a line break';
    return `the path contains control character U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  }
  return undefined;
}
