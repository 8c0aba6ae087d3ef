/** The rules for host network interface names (`<source bridge>`, `<target dev>`): Linux's, a little stricter. */

/** Longest interface name Linux accepts: IFNAMSIZ (16) less the terminating NUL. */
export const MAX_IFNAME_LENGTH = 15;

/** Prefix of the tap names Ferry (like libvirt) makes up itself: `vnet0`, `vnet1`, ... */
export const AUTO_TAP_PREFIX = 'vnet';

/**
 * Why `name` cannot be a host network interface name, or undefined when it
 * can. Linux (`dev_valid_name`) refuses the empty name, names of 16 bytes or
 * more, `.` and `..`, and names with `/`, `:` or whitespace. Ferry also
 * refuses anything but printable ASCII (such names cannot be typed back
 * reliably) and a leading `-`, which `ip` would read as an option.
 */
export function ifnameProblem(name: string): string | undefined {
  if (name.length === 0) return 'the name is empty';
  if (name.length > MAX_IFNAME_LENGTH) return `Linux interface names have at most ${MAX_IFNAME_LENGTH} characters`;
  if (name === '.' || name === '..') return "'.' and '..' are not interface names";
  if (/\s/.test(name)) return 'interface names cannot contain whitespace';
  if (name.includes('/')) return "interface names cannot contain '/'";
  if (name.includes(':')) return "interface names cannot contain ':' (the old alias syntax)";
  if (!/^[\x21-\x7e]+$/.test(name)) return 'Ferry accepts only printable ASCII in interface names';
  if (name.startsWith('-')) return "an interface name cannot start with '-'";
  return undefined;
}

/**
 * Whether a `<target dev>` is a name Ferry (or libvirt) made up, `vnet`
 * followed by digits: such a name in a definition or a migrated live XML is
 * not a request for that tap, and a free `vnetN` is chosen again on each
 * start, as libvirt does.
 */
export function isAutoTapName(name: string): boolean {
  return name.startsWith(AUTO_TAP_PREFIX) && /^[0-9]+$/.test(name.slice(AUTO_TAP_PREFIX.length));
}
