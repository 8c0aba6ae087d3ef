/** MAC addresses for `<interface><mac address=.../>`. */

const MAC = /^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$/;

/** Outcome of {@link canonicalMac}: the lower-case address, or why the input is not usable. */
export type MacResult = { ok: true; mac: string } | { ok: false; problem: string };

/**
 * Checks a MAC address written as six colon-separated hex pairs and returns
 * it in lower case (libvirt's form). Multicast addresses (low bit of the
 * first octet set) are refused: a NIC cannot own one.
 */
export function canonicalMac(text: string): MacResult {
  if (!MAC.test(text)) return { ok: false, problem: 'expected six colon-separated hex pairs such as 52:54:00:12:34:56' };
  const mac = text.toLowerCase();
  if ((Number.parseInt(mac.slice(0, 2), 16) & 1) === 1) {
    return { ok: false, problem: 'a multicast address cannot be assigned to a network interface' };
  }
  return { ok: true, mac };
}
