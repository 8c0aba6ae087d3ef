/** Why a cell does not hold, by `mode/victim/moment`, when the reason is understood (shown in docs/fault-matrix.md). */
const POSTCOPY_SOURCE_LOST =
  'Inherent to post-copy (libvirt behaves the same): after the switch the source QEMU holds the pages the destination has not ' +
  'received yet, so killing it loses them. The destination guest is resumed and QEMU reports it running, but it stalls at the ' +
  'first page it never got: no heartbeat follows. Both definitions are kept. Ferry reports the migration as failed ' +
  '(operation_failed, "post-copy ... broke after the switch"). Use post-copy only where losing the source during the copy is acceptable.';

export const EXPLANATIONS: Record<string, string> = {
  'postcopy/source-qemu/switch-over': POSTCOPY_SOURCE_LOST,
  'postcopy/source-qemu/finish': POSTCOPY_SOURCE_LOST,
  'postcopy/source-qemu/confirm': POSTCOPY_SOURCE_LOST,
  'postcopy/link/switch-over': 'Inherent to post-copy: a link that breaks after the switch leaves the source paused and the destination running, both "post-copy failed" (see docs/migration.md); without post-copy recovery the guest cannot be made whole.',
  'postcopy/link/finish': 'Inherent to post-copy: a link that breaks after the switch leaves the source paused and the destination running, both "post-copy failed" (see docs/migration.md); without post-copy recovery the guest cannot be made whole.',
};
