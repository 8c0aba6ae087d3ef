/**
 * Job procedures: statistics (`domjobinfo`, also of the completed job),
 * abort, maximum downtime, speed and the switch to post-copy, mapped onto
 * the host's migration job controls.
 */
import { FerryError } from '../../errors/index.js';
import type { JobStats, JobType } from '../../host/job-stats.js';
import type { Migrations } from '../../migration/host-migrations.js';
import type { ProcedureHandlers } from '../connection.js';
import type { TypedParam } from '../wire-types.js';
import { checkFlags, lookupKey } from './refs.js';

/** `virDomainJobType`. */
const JOB_TYPES: Record<JobType, number> = { None: 0, Unbounded: 2, Completed: 3, Failed: 4, Cancelled: 5 };
/** `virDomainJobOperation`. */
const OPERATIONS: Record<JobStats['operation'], number> = { 'Incoming migration': 4, 'Outgoing migration': 5 };
/** Statistics libvirt types as int rather than unsigned long long. */
const INT_FIELDS = new Set(['auto_converge_throttle']);
/** `virDomainGetJobStatsFlags`: COMPLETED, KEEP_COMPLETED. */
const STATS_COMPLETED = 1;
const STATS_KNOWN = 1 | 2;
/** `virDomainAbortJobFlagsValues`: POSTCOPY (pause a post-copy migration; not supported yet). */
const ABORT_POSTCOPY = 1;
/** `virDomainMigrateMaxSpeedFlags`: POSTCOPY. */
const SPEED_POSTCOPY = 1;

/** Job statistics as libvirt's typed parameters (`virDomainGetJobStats`). */
export function jobStatsParams(s: JobStats): TypedParam[] {
  const out: TypedParam[] = [{ field: 'operation', value: { type: 'int', value: OPERATIONS[s.operation] } }];
  for (const [field, v] of Object.entries(s)) {
    if (field === 'type' || field === 'operation' || v === undefined) continue;
    if (typeof v === 'string') out.push({ field, value: { type: 'string', value: v } });
    else if (typeof v === 'number') out.push({ field, value: INT_FIELDS.has(field) ? { type: 'int', value: Math.round(v) } : { type: 'ullong', value: Math.max(0, Math.round(v)) } });
  }
  if (s.type === 'Completed' || s.type === 'Failed' || s.type === 'Cancelled') out.push({ field: 'success', value: { type: 'boolean', value: s.type === 'Completed' } });
  return out;
}

/** Handlers of the job procedures. */
export function jobHandlers(m: Migrations): ProcedureHandlers {
  const info = (key: string, completed: boolean) => m.jobControl.jobInfo(key, completed, (uuid) => m.incoming.runningJobInfo(uuid));
  return {
    DOMAIN_GET_JOB_INFO: async (a) => {
      const s = info(lookupKey(a.dom), false);
      return {
        type: JOB_TYPES[s.type],
        timeElapsed: s.time_elapsed,
        timeRemaining: s.time_remaining ?? 0,
        dataTotal: s.data_total ?? 0,
        dataProcessed: s.data_processed ?? 0,
        dataRemaining: s.data_remaining ?? 0,
        memTotal: s.memory_total ?? 0,
        memProcessed: s.memory_processed ?? 0,
        memRemaining: s.memory_remaining ?? 0,
        fileTotal: s.disk_total ?? 0,
        fileProcessed: s.disk_processed ?? 0,
        fileRemaining: s.disk_remaining ?? 0,
      };
    },
    DOMAIN_GET_JOB_STATS: async (a) => {
      checkFlags(a.flags, STATS_KNOWN, 'virDomainGetJobStats');
      const s = info(lookupKey(a.dom), (a.flags & STATS_COMPLETED) !== 0);
      return { type: JOB_TYPES[s.type], params: s.type === 'None' ? [] : jobStatsParams(s) };
    },
    DOMAIN_ABORT_JOB: async (a) => {
      await m.jobControl.abort(lookupKey(a.dom));
      return {};
    },
    DOMAIN_ABORT_JOB_FLAGS: async (a) => {
      checkFlags(a.flags, ABORT_POSTCOPY, 'virDomainAbortJobFlags');
      await m.jobControl.abort(lookupKey(a.dom), { postcopy: (a.flags & ABORT_POSTCOPY) !== 0 });
      return {};
    },
    DOMAIN_MIGRATE_SET_MAX_DOWNTIME: async (a) => {
      checkFlags(a.flags, 0, 'virDomainMigrateSetMaxDowntime');
      await m.jobControl.setMaxDowntime(lookupKey(a.dom), a.downtime);
      return {};
    },
    DOMAIN_MIGRATE_GET_MAX_DOWNTIME: async (a) => {
      checkFlags(a.flags, 0, 'virDomainMigrateGetMaxDowntime');
      return { downtime: await m.jobControl.getMaxDowntime(lookupKey(a.dom)) };
    },
    DOMAIN_MIGRATE_SET_MAX_SPEED: async (a) => {
      checkFlags(a.flags, SPEED_POSTCOPY, 'virDomainMigrateSetMaxSpeed');
      if (a.flags & SPEED_POSTCOPY) await m.jobControl.setPostcopySpeed(lookupKey(a.dom), a.bandwidth);
      else await m.jobControl.setSpeed(lookupKey(a.dom), a.bandwidth);
      return {};
    },
    DOMAIN_MIGRATE_GET_MAX_SPEED: async (a) => {
      checkFlags(a.flags, SPEED_POSTCOPY, 'virDomainMigrateGetMaxSpeed');
      return { bandwidth: a.flags & SPEED_POSTCOPY ? await m.jobControl.getPostcopySpeed(lookupKey(a.dom)) : m.jobControl.getSpeed(lookupKey(a.dom)) };
    },
    DOMAIN_MIGRATE_START_POST_COPY: async (a) => {
      checkFlags(a.flags, 0, 'virDomainMigrateStartPostCopy');
      await m.jobControl.startPostcopy(lookupKey(a.dom));
      return {};
    },
  };
}
