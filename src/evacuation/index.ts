/** Evacuation planning (pure): hosts and guests from host.facts and domain definitions, placement, the plan, the record and its reconciliation, the scheduler, and the text the CLI prints. */
export type { EvacuationGuest, EvacuationPlan, GuestCpuNeed, HostOutlook, Placement, PlacementCpu, PlacementHost, PlacementOptions, Refusal, ResolvedPlacementOptions, Unplaced } from './types.js';
export { cpuMismatch } from './cpu-fit.js';
export { cpuNeedOf, evacuationGuestFromDomain, placementHostFromFacts } from './from-facts.js';
export { DEFAULT_PLACEMENT_OPTIONS, capacityKiB, chooseDestination, formatMiB, headroomKiB, refusalOf, resolvePlacementOptions, type Choice, type PlannedLoad } from './placement.js';
export { placementOrder, planEvacuation } from './plan.js';
export {
  DEFAULT_RETRY_POLICY,
  EVACUATION_RECORD_VERSION,
  createRecord,
  failuresOf,
  hostNameOf,
  isSettled,
  markEnded,
  markStarted,
  openAttempt,
  parseRecord,
  plannedLoads,
  progressOf,
  type Attempt,
  type EvacuationRecord,
  type GuestEntry,
  type GuestStatus,
  type MigrationOutcome,
  type RetryPolicy,
} from './record.js';
export { reconcile, type GuestObservation, type Observation } from './reconcile.js';
export { inFlight, nextMigrations, type HostLimits, type MigrationStart, type SchedulerState } from './scheduler.js';
export { EvacuationRun, type ExecutorOps, type RunOptions, type RunState } from './execute.js';
