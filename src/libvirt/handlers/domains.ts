/**
 * Domain procedures: listing with libvirt's filter flags, lookups, info and
 * state, XML, define and undefine, start, stop, pause, autostart. Each maps
 * onto the host's lifecycle operations, the same ones the native API calls.
 */
import { FerryError } from '../../errors/index.js';
import { DOMAIN_STATES, reasonNumber, type DomainStatus } from '../../domain/lifecycle-state.js';
import type { Host } from '../../host/host.js';
import type { DomainSummary } from '../../host/views.js';
import type { ProcedureHandlers } from '../connection.js';
import { checkFlags, lookupKey, refOf, uuidString } from './refs.js';

/** `virConnectListAllDomainsFlags`, grouped as libvirt groups them: within a group the bits are alternatives. */
const LIST_GROUPS: ReadonlyArray<ReadonlyArray<readonly [number, (d: DomainSummary) => boolean]>> = [
  [
    [1, (d) => d.id !== null],
    [2, (d) => d.id === null],
  ],
  [
    [4, (d) => d.persistent],
    [8, (d) => !d.persistent],
  ],
  [
    [16, (d) => d.state === 'running'],
    [32, (d) => d.state === 'paused'],
    [64, (d) => d.state === 'shutoff'],
    [128, (d) => d.state !== 'running' && d.state !== 'paused' && d.state !== 'shutoff'],
  ],
  // No managed-save images exist on a ferryd host: every domain has none.
  [
    [256, () => false],
    [512, () => true],
  ],
  [
    [1024, (d) => d.autostart],
    [2048, (d) => !d.autostart],
  ],
  // Nor snapshots, nor checkpoints.
  [
    [4096, () => false],
    [8192, () => true],
  ],
  [
    [16384, () => false],
    [32768, () => true],
  ],
];
const LIST_KNOWN = 0xffff;

/** Keeps the domains matching every group whose bits are set in `flags`. */
export function filterDomains(all: readonly DomainSummary[], flags: number): DomainSummary[] {
  checkFlags(flags, LIST_KNOWN, 'virConnectListAllDomains');
  return all.filter((d) => LIST_GROUPS.every((group) => {
    const wanted = group.filter(([bit]) => (flags & bit) !== 0);
    return wanted.length === 0 || wanted.some(([, test]) => test(d));
  }));
}

/** `virDomainXMLFlags`: SECURE, INACTIVE, UPDATE_CPU, MIGRATABLE. */
const XML_INACTIVE = 2;
const XML_KNOWN = 1 | 2 | 4 | 8;
/** `virDomainCreateFlags` / `virDomainCreateXML` flags: START_PAUSED, AUTODESTROY, BYPASS_CACHE, FORCE_BOOT, VALIDATE, RESET_NVRAM. */
const START_PAUSED = 1;
const START_AUTODESTROY = 2;
const START_KNOWN = 1 | 2 | 4 | 8 | 16 | 32;
/** `virDomainDefineFlags`: VALIDATE (Ferry always validates). */
const DEFINE_KNOWN = 1;
/** `virDomainUndefineFlagsValues`: none of these leave anything behind on a ferryd host (no managed save, snapshots, NVRAM or TPM state). */
const UNDEFINE_KNOWN = 1 | 2 | 4 | 8 | 16 | 32 | 64;
/** `virDomainDestroyFlagsValues`: GRACEFUL. */
const DESTROY_GRACEFUL = 1;
/** `virDomainShutdownFlagValues`: every mode Ferry has is ACPI. */
const SHUTDOWN_KNOWN = 1 | 2 | 4 | 8 | 16;

/** Handlers of the domain procedures. */
export function domainHandlers(host: Host): ProcedureHandlers {
  const l = host.lifecycle;
  return {
    CONNECT_LIST_ALL_DOMAINS: async (a) => {
      const found = filterDomains(l.list({ all: true }), a.flags);
      return { domains: a.needResults ? found.map(refOf) : [], ret: found.length };
    },
    CONNECT_NUM_OF_DOMAINS: async () => ({ num: l.list({}).length }),
    CONNECT_LIST_DOMAINS: async (a) => ({ ids: l.list({}).map((d) => d.id!).slice(0, Math.max(0, a.maxids)) }),
    CONNECT_NUM_OF_DEFINED_DOMAINS: async () => ({ num: l.list({ inactive: true }).length }),
    CONNECT_LIST_DEFINED_DOMAINS: async (a) => ({ names: l.list({ inactive: true }).map((d) => d.name).slice(0, Math.max(0, a.maxnames)) }),
    DOMAIN_LOOKUP_BY_NAME: async (a) => {
      const d = l.list({ all: true }).find((x) => x.name === a.name);
      if (!d) throw new FerryError('no_domain', `no domain with matching name '${a.name}'`);
      return { dom: refOf(d) };
    },
    DOMAIN_LOOKUP_BY_UUID: async (a) => {
      const uuid = uuidString(a.uuid);
      const d = l.list({ all: true }).find((x) => x.uuid === uuid);
      if (!d) throw new FerryError('no_domain', `no domain with matching uuid '${uuid}'`);
      return { dom: refOf(d) };
    },
    DOMAIN_LOOKUP_BY_ID: async (a) => {
      const d = l.list({}).find((x) => x.id === a.id);
      if (!d) throw new FerryError('no_domain', `no domain with matching id ${a.id}`);
      return { dom: refOf(d) };
    },
    DOMAIN_GET_INFO: async (a) => {
      const i = await l.info(lookupKey(a.dom));
      return { state: DOMAIN_STATES[i.state].number, maxMem: i.maxMemoryKiB, memory: i.usedMemoryKiB, nrVirtCpu: i.vcpus, cpuTime: Math.round((i.cpuTimeSeconds ?? 0) * 1e9) };
    },
    DOMAIN_GET_STATE: async (a) => {
      checkFlags(a.flags, 0, 'virDomainGetState');
      const s = l.state(lookupKey(a.dom)) as DomainStatus;
      return { state: DOMAIN_STATES[s.state].number, reason: reasonNumber(s) };
    },
    DOMAIN_GET_CONTROL_INFO: async (a) => {
      host.registry.lookup(lookupKey(a.dom));
      // 0 = VIR_DOMAIN_CONTROL_OK: ferryd answers for its QEMU monitors itself.
      return { state: 0, details: 0, stateTime: 0 };
    },
    DOMAIN_GET_XML_DESC: async (a) => {
      checkFlags(a.flags, XML_KNOWN, 'virDomainGetXMLDesc');
      return l.xml(lookupKey(a.dom), (a.flags & XML_INACTIVE) !== 0);
    },
    DOMAIN_GET_OS_TYPE: async (a) => {
      host.registry.lookup(lookupKey(a.dom));
      return { type: 'hvm' };
    },
    DOMAIN_GET_MAX_MEMORY: async (a) => ({ memory: (await l.info(lookupKey(a.dom))).maxMemoryKiB }),
    DOMAIN_GET_VCPUS_FLAGS: async (a) => ({ num: (await l.info(lookupKey(a.dom))).vcpus }),
    DOMAIN_IS_ACTIVE: async (a) => ({ active: host.registry.lookup(lookupKey(a.dom)).active ? 1 : 0 }),
    DOMAIN_IS_PERSISTENT: async (a) => ({ persistent: host.registry.lookup(lookupKey(a.dom)).persistent ? 1 : 0 }),
    DOMAIN_IS_UPDATED: async (a) => {
      host.registry.lookup(lookupKey(a.dom));
      return { updated: 0 };
    },
    DOMAIN_HAS_MANAGED_SAVE_IMAGE: async (a) => {
      host.registry.lookup(lookupKey(a.dom));
      return { result: 0 };
    },
    DOMAIN_GET_AUTOSTART: async (a) => ({ autostart: host.registry.lookup(lookupKey(a.dom)).autostart ? 1 : 0 }),
    DOMAIN_SET_AUTOSTART: async (a) => {
      await l.setAutostart(lookupKey(a.dom), a.autostart !== 0);
      return {};
    },
    DOMAIN_DEFINE_XML: async (a) => ({ dom: refOf(await l.define(a.xml)) }),
    DOMAIN_DEFINE_XML_FLAGS: async (a) => {
      checkFlags(a.flags, DEFINE_KNOWN, 'virDomainDefineXMLFlags');
      return { dom: refOf(await l.define(a.xml)) };
    },
    DOMAIN_UNDEFINE: async (a) => {
      await l.undefine(lookupKey(a.dom));
      return {};
    },
    DOMAIN_UNDEFINE_FLAGS: async (a) => {
      checkFlags(a.flags, UNDEFINE_KNOWN, 'virDomainUndefineFlags');
      await l.undefine(lookupKey(a.dom));
      return {};
    },
    DOMAIN_CREATE: async (a) => {
      await l.start(lookupKey(a.dom), false);
      return {};
    },
    DOMAIN_CREATE_WITH_FLAGS: async (a) => {
      checkFlags(a.flags, START_KNOWN, 'virDomainCreateWithFlags');
      if (a.flags & START_AUTODESTROY) throw new FerryError('argument_unsupported', 'ferryd does not destroy domains when the starting connection closes (VIR_DOMAIN_START_AUTODESTROY)');
      return { dom: refOf(await l.start(lookupKey(a.dom), (a.flags & START_PAUSED) !== 0)) };
    },
    DOMAIN_CREATE_XML: async (a) => {
      checkFlags(a.flags, START_KNOWN, 'virDomainCreateXML');
      if (a.flags & START_AUTODESTROY) throw new FerryError('argument_unsupported', 'ferryd does not destroy domains when the starting connection closes (VIR_DOMAIN_START_AUTODESTROY)');
      return { dom: refOf(await l.create(a.xmlDesc, (a.flags & START_PAUSED) !== 0)) };
    },
    DOMAIN_DESTROY: async (a) => {
      await l.destroy(lookupKey(a.dom), false);
      return {};
    },
    DOMAIN_DESTROY_FLAGS: async (a) => {
      checkFlags(a.flags, DESTROY_GRACEFUL, 'virDomainDestroyFlags');
      await l.destroy(lookupKey(a.dom), (a.flags & DESTROY_GRACEFUL) !== 0);
      return {};
    },
    DOMAIN_SUSPEND: async (a) => {
      await l.suspend(lookupKey(a.dom));
      return {};
    },
    DOMAIN_RESUME: async (a) => {
      await l.resume(lookupKey(a.dom));
      return {};
    },
    DOMAIN_SHUTDOWN: async (a) => {
      await l.shutdown(lookupKey(a.dom));
      return {};
    },
    DOMAIN_SHUTDOWN_FLAGS: async (a) => {
      checkFlags(a.flags, SHUTDOWN_KNOWN, 'virDomainShutdownFlags');
      await l.shutdown(lookupKey(a.dom));
      return {};
    },
  };
}
