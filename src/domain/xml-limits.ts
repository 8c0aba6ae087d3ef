/** Hard limits on untrusted domain XML, chosen far above any real libvirt definition. */

/** Largest document accepted, in UTF-8 bytes. Real definitions are a few KiB. */
export const MAX_XML_BYTES = 1024 * 1024;

/**
 * Deepest element nesting accepted (`<domain>` is depth 1). Real definitions
 * stay under 10; a 50-layer `<backingStore>` chain still fits.
 */
export const MAX_XML_DEPTH = 64;
