/** The QEMU layer: command line, QMP, accelerator choice, process supervision and status files. */
export {
  buildQemuArgs,
  buildQemuCommand,
  cpuModeNote,
  cpuOption,
  diskNodeNames,
  type Accel,
  type DiskNodeNames,
  type QemuCommand,
  type QemuLaunchOptions,
} from './command-line.js';
export { DEFAULT_QEMU_BINARY, defaultQemuVersion, resolveQemuBinary } from './binary.js';
export { VNC_AUTOPORT_RANGE, channelSocketPath, peripheralArgs, vncOption } from './peripheral-args.js';
export { escapeLegacyValue, jsonOption, legacyOption } from './option-syntax.js';
export {
  QmpClient,
  QmpCommandError,
  eventTimeMs,
  type QmpClientEvents,
  type QmpConnectOptions,
  type QmpEvent,
  type QmpExecuteOptions,
  type QmpGreeting,
} from './qmp-client.js';
export {
  checkKvmDevice,
  resolveAccel,
  runAccelProbe,
  type AccelDecision,
  type AccelProbeOptions,
  type AccelSetting,
  type ProbeRun,
} from './accel.js';
export {
  QemuProcess,
  QemuStartError,
  type ExitReason,
  type QemuAttachOptions,
  type QemuHandle,
  type QemuKillOptions,
  type QemuStartOptions,
} from './process.js';
export { cpuSecondsOf, isProcessAlive, parseProcStat, readProcStat, type ProcStat } from './proc-stat.js';
export { guestRamResidentKiB, parseGuestRamResidentKiB } from './guest-ram.js';
export {
  STATUS_FILE_SUFFIX,
  STATUS_FILE_VERSION,
  parseStatus,
  readAllStatusFiles,
  readStatusFile,
  removeStatusFile,
  statusFilePath,
  writeStatusFile,
  type QemuStatus,
  type StatusFileEntry,
} from './status-file.js';
export { readLogTail, shellQuote } from './log-file.js';
export { tetherToDaemon, type Tether } from './tether.js';
export {
  checkGuestCpu,
  compareHostCpus,
  cpuRefusal,
  cpuShortfall,
  hostCpuFeatures,
  hostPassthroughRefusal,
  parseCapabilities,
  probeCpuCapabilities,
  type CpuCapabilities,
  type CpuShortfall,
} from './cpu-check.js';
