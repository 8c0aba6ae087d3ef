/**
 * The evacuation as text: the plan `--dry-run` prints, and the final report
 * (guest, destination, time, downtime, result). Tables are Ferry's own
 * (`renderTable` in src/cli/output.ts), so they line up with `ferry list`.
 *
 * It is the CLI's view of the evacuation (src/evacuation/ itself imports
 * nothing of the CLI); the API and the dashboard use the plan and the
 * record as JSON instead.
 */
import { formatMiB, progressOf, type EvacuationPlan, type EvacuationRecord, type GuestEntry } from '../evacuation/index.js';
import { percentDone } from '../host/job-stats.js';
import { renderTable } from './output.js';

/** A host's name for a URI, falling back to the URI. */
function namer(hosts: ReadonlyArray<{ uri: string; name: string }>): (uri: string | undefined) => string {
  const names = new Map(hosts.map((h) => [h.uri, h.name]));
  return (uri) => (uri === undefined ? '-' : names.get(uri) ?? uri);
}

/**
 * The plan as `--dry-run` prints it: a row per guest (placed ones in the
 * order they would start, then those no host can take, then those skipped),
 * each host's reason for a guest no host can take, and a row per
 * destination with its memory and guests before and after.
 */
export function renderPlan(plan: EvacuationPlan): string {
  const name = namer(plan.hosts);
  const rows: string[][] = [
    ...plan.placements.map((p) => [p.guest.name, formatMiB(p.guest.memoryKiB), String(p.guest.vcpus), name(p.destination), `${p.guest.state === 'inactive' ? 'offline; ' : ''}${p.why}`]),
    ...plan.unplaced.map((u) => [u.guest.name, formatMiB(u.guest.memoryKiB), String(u.guest.vcpus), '-', 'no destination, stays (each host\'s reason below)']),
    ...plan.skipped.map((s) => [s.guest.name, formatMiB(s.guest.memoryKiB), String(s.guest.vcpus), '-', `skipped: ${s.reason}`]),
  ];
  const guests = renderTable(['Guest', 'Memory', 'vCPUs', 'Destination', 'Why'], rows);
  const hosts = renderTable(
    ['Host', 'Free now', 'Free after', 'Guests now', 'Guests after'],
    plan.hosts.map((h) => [h.maintenance ? `${h.name} (in maintenance)` : h.name, formatMiB(h.freeBeforeKiB), formatMiB(h.freeAfterKiB), String(h.guestsBefore), String(h.guestsAfter)]),
  );
  const o = plan.options;
  const kept = `${o.headroomPercent} % of each host's memory${o.headroomMiB > 0 ? ` or ${o.headroomMiB} MiB, whichever is more,` : ''} kept free`;
  const summary = `${plan.placements.length} to move, ${plan.unplaced.length} with no destination, ${plan.skipped.length} skipped; ${kept}${o.unsafe ? '; unsafe: host-passthrough CPUs not compared' : ''}`;
  // Each host's reason on a line of its own: the table stays narrow and the numbers line up.
  const reasons = plan.unplaced.map((u) => `${u.guest.name} (${formatMiB(u.guest.memoryKiB)}) fits nowhere:\n${u.refusals.map((r) => `  ${r.message}\n`).join('')}`);
  return `${guests}\n${reasons.length > 0 ? `${reasons.join('')}\n` : ''}${hosts}\n${summary}\n`;
}

/** Seconds with one decimal, or `-`. */
function seconds(ms: number | undefined): string {
  return ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`;
}

/** What became of one guest, in a few words; a failure's or a doubt's reason goes under the table. */
function resultOf(e: GuestEntry, name: (uri: string | undefined) => string): string {
  const tries = e.attempts.filter((a) => a.result !== 'interrupted').length;
  const failedOn = e.excluded.map((x) => name(x.host));
  switch (e.status) {
    case 'done': {
      const how = e.guest.state === 'inactive' ? 'moved offline' : 'migrated';
      return tries > 1 ? `${how} (attempt ${tries}; failed on ${failedOn.join(', ')})` : how;
    }
    case 'failed':
      return 'failed, stays on the source';
    case 'check':
      return 'to check';
    case 'running':
      return 'running';
    case 'retrying':
      return `not started again (failed on ${failedOn.join(', ')})`;
    case 'pending':
      return 'not started';
  }
}

/**
 * The final report: a row per guest with its destination, the time its last
 * migration took, the downtime QEMU reported and the result; under it why
 * each failed guest failed and what is in doubt about each one to check,
 * then the totals and the guests the plan skipped.
 */
export function renderReport(record: EvacuationRecord): string {
  const name = namer([record.source, ...record.destinations]);
  const rows = record.guests.map((e) => {
    const last = e.attempts.at(-1);
    const time = last?.endedAtMs !== undefined ? last.endedAtMs - last.startedAtMs : undefined;
    const downtime = e.status === 'done' && last?.downtimeMs !== undefined ? `${last.downtimeMs} ms` : '-';
    // A failed guest is on the source: no destination to show.
    return [e.guest.name, e.status === 'failed' ? '-' : name(e.destination), e.status === 'done' ? seconds(time) : '-', downtime, resultOf(e, name)];
  });
  const why = record.guests.flatMap((e) => (e.status === 'failed' ? [`${e.guest.name}: ${e.note}\n`] : e.status === 'check' ? [`${e.guest.name}: check where it runs: ${e.note}\n`] : []));
  const n = progressOf(record);
  const parts = [`${n.done} of ${n.total} moved`, `${n.failed} failed`, `${n.check} to check`];
  const left = n.pending + n.retrying + n.running;
  if (left > 0) parts.push(`${left} not finished (run again to continue)`);
  const skipped = record.skipped.map((s) => `skipped ${s.name}: ${s.reason}\n`).join('');
  return `${renderTable(['Guest', 'Destination', 'Time', 'Downtime', 'Result'], rows)}\n${why.join('')}${why.length > 0 ? '\n' : ''}${parts.join(', ')}\n${skipped}`;
}

/** One in-flight migration's percent, or `…` before the source's job has figures. */
function percentOf(f: { dataTotal?: number; dataRemaining?: number }): string {
  const p = percentDone(f.dataTotal, f.dataRemaining);
  return p === undefined ? '…' : `${p} %`;
}

/**
 * The progress line of a running evacuation: the totals, then each
 * migration in flight with its destination and percent.
 */
export function renderEvacuationLine(st: { state: string; record: EvacuationRecord | null; inFlight: ReadonlyArray<{ name: string; destination: string; dataTotal?: number; dataRemaining?: number }> }): string {
  if (st.record === null) return st.state;
  const name = namer([st.record.source, ...st.record.destinations]);
  const n = progressOf(st.record);
  const totals = `[${n.done}/${n.total} moved${n.failed > 0 ? `, ${n.failed} failed` : ''}${n.check > 0 ? `, ${n.check} to check` : ''}${st.state !== 'running' ? `, ${st.state}` : ''}]`;
  return [totals, ...st.inFlight.map((f) => `${f.name}→${name(f.destination)} ${percentOf(f)}`)].join(' ');
}

/**
 * A line for each guest whose evacuation moved on between two records (it
 * started, moved, failed, was re-planned, needs a check); with no earlier
 * record, the migrations under way.
 */
export function renderGuestChanges(before: EvacuationRecord | null, after: EvacuationRecord): string {
  const name = namer([after.source, ...after.destinations]);
  const old = new Map((before?.guests ?? []).map((e) => [e.guest.uuid, e]));
  const lines: string[] = [];
  for (const e of after.guests) {
    const was = old.get(e.guest.uuid);
    if (before === null ? e.status !== 'running' : was !== undefined && was.status === e.status && was.attempts.length === e.attempts.length) continue;
    const last = e.attempts.at(-1);
    switch (e.status) {
      case 'running':
        lines.push(`${e.guest.name}: ${e.guest.state === 'inactive' ? 'moving offline' : 'migrating'} to ${name(last?.destination)}${e.attempts.length > 1 ? ` (attempt ${e.attempts.length})` : ''}`);
        break;
      case 'done': {
        const took = last?.endedAtMs !== undefined ? ` in ${seconds(last.endedAtMs - last.startedAtMs)}` : '';
        lines.push(`${e.guest.name}: ${e.guest.state === 'inactive' ? 'moved offline' : 'migrated'} to ${name(e.destination)}${took}${last?.downtimeMs !== undefined ? `, downtime ${last.downtimeMs} ms` : ''}`);
        break;
      }
      case 'retrying':
        lines.push(`${e.guest.name}: failed on ${name(last?.destination)} (${last?.error ?? '?'}); will try ${name(e.destination)}`);
        break;
      case 'failed':
        lines.push(`${e.guest.name}: failed, stays on the source: ${e.note}`);
        break;
      case 'check':
        lines.push(`${e.guest.name}: to check: ${e.note}`);
        break;
      case 'pending':
        lines.push(`${e.guest.name}: ${e.note}`);
        break;
    }
  }
  return lines.map((l) => `${l}\n`).join('');
}
