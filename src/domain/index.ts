/** Public API of the domain layer: libvirt domain XML in, a checked model and faithful XML out. */
export { DomainDocument, type DiskSourceOptions } from './document.js';
export type {
  BackingStoreDef,
  BootDevice,
  ChannelDef,
  CharDevDef,
  CpuDef,
  CpuFeatureDef,
  CpuFeaturePolicy,
  CpuMatch,
  CpuMode,
  DiskCache,
  DiskDef,
  DiskErrorPolicy,
  DiskFormat,
  DomainDef,
  GraphicsDef,
  InputDef,
  InterfaceDef,
  LifecycleAction,
  MemballoonDef,
  RngDef,
  UsbControllerDef,
  VideoDef,
  VirtioSerialDef,
} from './types.js';
export { withLiveDevices, type LiveDeviceChoices } from './live-devices.js';
export { VNC_LOCAL_ADDRESSES, VNC_PORT_MIN } from './read-peripherals.js';
export { DEFAULT_MEMORY_UNIT, MEMORY_UNITS, memoryToKiB, parseMemoryToKiB, type MemorySizeResult } from './units.js';
export { MEMORY_LIMIT_KIB, MIN_MEMORY_KIB } from './memory.js';
export { MAX_DOMAIN_NAME_LENGTH, domainNameProblem, validateDomainName } from './validate-name.js';
export { UUID_EXPECTED, canonicalUuid, isCanonicalUuid, newUuid, normaliseUuid, sameUuid } from './uuid.js';
export { hostPathProblem } from './paths.js';
export { MAX_XML_BYTES, MAX_XML_DEPTH } from './xml-limits.js';
export { DISK_TARGET_PATTERN } from './read-disk.js';
export { NIC_MODELS } from './read-interface.js';
export { AUTO_TAP_PREFIX, MAX_IFNAME_LENGTH, ifnameProblem, isAutoTapName } from './ifname.js';
export { MAX_VCPUS } from './read-domain.js';
export { CPU_FEATURE_POLICIES, CPU_NAME_PATTERN } from './read-cpu.js';
