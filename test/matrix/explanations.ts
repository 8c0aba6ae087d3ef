/** Why a cell does not hold, by `mode/victim/moment`, when the reason is understood (shown in docs/fault-matrix.md). */
const POSTCOPY_SOURCE_LOST =
  'Inherent to post-copy (libvirt behaves the same): after the switch the source QEMU holds the pages the destination has not ' +
  'received yet, so killing it loses them; --postcopy-resume has nothing to resume from. The destination guest is resumed and ' +
  'QEMU reports it running, but it stalls at the first page it never got: no heartbeat follows. Both definitions are kept. ' +
  'Ferry reports the migration as failed (operation_failed, "post-copy ... failed after the switch"). Use post-copy only where ' +
  'losing the source during the copy is acceptable.';

const POSTCOPY_DEST_LOST =
  'Inherent to post-copy: once the destination runs the guest, its QEMU holds the newest state, so killing it loses the guest; ' +
  "the source's copy is stale and stays paused (post-copy failed), never resumed, and both definitions are kept for the user to " +
  'decide. The command fails with operation_failed.';

export const EXPLANATIONS: Record<string, string> = {
  'postcopy/dest-qemu/confirm': POSTCOPY_DEST_LOST,
  'postcopy/source-qemu/switch-over': POSTCOPY_SOURCE_LOST,
  'postcopy/source-qemu/finish': POSTCOPY_SOURCE_LOST,
  'postcopy/source-qemu/confirm': POSTCOPY_SOURCE_LOST,
};
