/**
 * The dashboard page: the host (its facts and maintenance), its guests,
 * each running migration live (a chart and the job's figures, pushed by
 * the daemon), the actions on a migration, a guest's definition, serial
 * output and last job, and the host's evacuation. Every call goes through
 * api.ts; every action is a method of the native API.
 */
import './style.css';
import { CallError, call, followEvents, read, token } from './api.js';
import { MigrationChart, type JobSample } from './chart.js';
import { bytes, fill, h, secs } from './dom.js';
import { migrateForm } from './migrate-form.js';
import { percentDone } from '../../src/host/job-stats.js';

interface Domain {
  id: number | null;
  name: string;
  uuid: string;
  state: string;
  reason: string;
  persistent: boolean;
}
interface Facts {
  hostName: string;
  cpu: { count: number; model: string };
  memory: { totalKiB: number; availableKiB: number; committedKiB: number };
  guests: { running: number; defined: number };
  maintenance: { enabled: boolean; since: string | null; reason: string | null };
  migrations: { outgoing: { running: number; queued: number; limit: number }; incoming: { running: number; queued: number; limit: number } };
}
type Stats = JobSample & Record<string, unknown> & { type: string; operation: string; phase?: string; errmsg?: string };

/** A running (or just ended) migration's panel. */
interface Panel {
  el: HTMLElement;
  chart: MigrationChart;
  figures: HTMLElement;
  ended: boolean;
  /** The job's phase at the last sample, to mark the switch to post-copy. */
  phase?: string;
}

const panels = new Map<string, Panel>();
let domains: Domain[] = [];

function showError(where: string, err: unknown): void {
  const e = err instanceof CallError ? `${err.message} (${err.code})` : String(err);
  fill('conn', `${where}: ${e}`).className = 'conn down';
}

/** A button that runs `act`, showing its error next to it; disabled without the token. */
function action(label: string, act: () => Promise<unknown>, attrs: Record<string, unknown> = {}): HTMLElement {
  const msg = h('span', { className: 'msg' });
  const b = h('button', {
    type: 'button',
    disabled: token === null,
    title: token === null ? 'read-only: open the page with ferry dashboard to act' : undefined,
    ...attrs,
    onclick: () => {
      msg.textContent = '…';
      act().then(
        () => (msg.textContent = ''),
        (err: Error) => {
          msg.textContent = err.message;
          msg.className = 'msg refused';
        },
      );
    },
  }, label);
  return h('span', { className: 'action' }, b, msg);
}

async function loadHost(): Promise<void> {
  const f = await read<Facts>('host.facts');
  fill('host-name', f.hostName);
  const m = f.maintenance;
  fill(
    'host',
    h('h2', {}, 'Host'),
    h('dl', { className: 'facts' },
      h('dt', {}, 'CPU'), h('dd', {}, `${f.cpu.count} × ${f.cpu.model}`),
      h('dt', {}, 'Memory'), h('dd', {}, `${bytes(f.memory.totalKiB * 1024)} total, ${bytes(f.memory.availableKiB * 1024)} available, ${bytes(f.memory.committedKiB * 1024)} committed to guests`),
      h('dt', {}, 'Guests'), h('dd', {}, `${f.guests.running} running, ${f.guests.defined} defined`),
      h('dt', {}, 'Migrations'), h('dd', {}, `out ${f.migrations.outgoing.running}/${f.migrations.outgoing.limit} (+${f.migrations.outgoing.queued} queued), in ${f.migrations.incoming.running}/${f.migrations.incoming.limit} (+${f.migrations.incoming.queued} queued)`),
      h('dt', {}, 'Maintenance'), h('dd', { id: 'maintenance' }, m.enabled ? `on since ${m.since ?? '?'}${m.reason ? ` (${m.reason})` : ''} ` : 'off ',
        m.enabled ? action('Leave maintenance', async () => { await call('host.maintenance.disable'); await loadHost(); }) : action('Enter maintenance', async () => { await call('host.maintenance.enable', { reason: 'from the dashboard' }); await loadHost(); })),
    ),
  );
}

async function loadGuests(): Promise<void> {
  domains = await read<Domain[]>('domain.list', { all: true });
  fill(
    'guests',
    h('h2', {}, 'Guests'),
    h('table', { id: 'guest-table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Id'), h('th', {}, 'Name'), h('th', {}, 'State'), h('th', {}, ''))),
      h('tbody', {}, ...domains.map((d) => h('tr', { 'data-domain': d.name },
        h('td', {}, d.id ?? '-'),
        h('td', {}, d.name),
        h('td', { className: `state ${d.state}` }, `${d.state} (${d.reason})`),
        h('td', {}, h('button', { type: 'button', onclick: () => void showDetail(d.name) }, 'Details'))))),
    ),
  );
}

async function showDetail(name: string): Promise<void> {
  const [xml, log, last] = await Promise.all([
    read<{ xml: string }>('domain.xml', { domain: name }),
    read<{ text: string }>('domain.consoleLog', { domain: name, maxBytes: 4096 }).catch(() => ({ text: '(no serial output)' })),
    read<Stats>('domain.jobInfo', { domain: name, completed: true }).catch(() => undefined),
  ]);
  const d = domains.find((x) => x.name === name);
  fill(
    'detail',
    h('h2', {}, `Guest ${name}`),
    d?.id !== null && d !== undefined ? migrateForm(name, async (req) => { await call('domain.migrate', { domain: name, ...req }); }) : h('p', {}, 'not running: nothing to migrate live'),
    last && last.type !== 'None' ? h('div', { className: 'last-job' }, h('h3', {}, `Last job: ${last.operation} ${last.type}`), statsTable(last)) : null,
    h('h3', {}, 'Serial output (last 4 KiB)'),
    h('pre', { className: 'serial' }, log.text),
    h('h3', {}, 'Definition'),
    h('pre', { className: 'xml' }, xml.xml),
  );
}

function statsTable(s: Record<string, unknown>): HTMLElement {
  return h('table', { className: 'stats' }, h('tbody', {}, ...Object.entries(s).map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', { className: k === 'errmsg' ? 'refused' : undefined }, String(v))))));
}

/** The panel of `domain`'s migration, made on its first figures. */
function panelOf(domain: string, uuid: string): Panel {
  let p = panels.get(uuid);
  if (p && !p.ended) return p;
  p?.chart.destroy();
  p?.el.remove();
  const chartEl = h('div', { className: 'chart', 'data-domain': domain });
  const figures = h('div', { className: 'figures' });
  const speed = h('input', { type: 'number', min: 0, step: 1, size: 6, placeholder: 'MiB/s', 'aria-label': 'bandwidth MiB/s' });
  const downtime = h('input', { type: 'number', min: 1, step: 1, size: 6, placeholder: 'ms', 'aria-label': 'maximum downtime ms' });
  const el = h('article', { className: 'migration', 'data-domain': domain },
    h('h3', {}, `Migration of ${domain}`),
    chartEl,
    figures,
    h('div', { className: 'controls' },
      action('Abort', () => call('domain.jobAbort', { domain })),
      action('Switch to post-copy', () => call('domain.migrateStartPostcopy', { domain })),
      h('label', {}, ' Bandwidth ', speed), action('Set', () => call('domain.migrateSetSpeed', { domain, bandwidth: Number(speed.value) }), { className: 'set-speed' }),
      h('label', {}, ' Max downtime ', downtime), action('Set', () => call('domain.migrateSetMaxDowntime', { domain, downtime: Number(downtime.value) }), { className: 'set-downtime' }),
    ),
  );
  // The newest panel first, under the section's heading.
  const section = document.getElementById('migrations')!;
  section.insertBefore(el, section.querySelector('h2')?.nextSibling ?? null);
  p = { el, chart: new MigrationChart(chartEl), figures, ended: false };
  // The host's slot counts changed with it.
  refreshHost();
  panels.set(uuid, p);
  return p;
}

function onJob(data: { domain: string; uuid: string; stats: Stats }): void {
  const s = data.stats;
  if (s.queue_position !== undefined) return;
  const p = panelOf(data.domain, data.uuid);
  p.chart.add(s);
  if (s.phase === 'post-copy' && p.phase !== 'post-copy') p.chart.markLatest('post-copy');
  p.phase = s.phase;
  const pct = percentDone(s.data_total as number | undefined, s.data_remaining);
  const parts: Array<HTMLElement | null> = [
    h('span', { className: 'phase' }, `${s.operation}, ${s.phase ?? ''}`),
    h('span', {}, ` ${pct ?? '–'} %`),
    h('span', {}, ` remaining ${bytes(s.data_remaining)}`),
    h('span', {}, ` throughput ${bytes(s.memory_bps)}/s`),
    s.time_remaining !== undefined ? h('span', {}, ` ETA ${secs(s.time_remaining as number)}`) : h('span', {}, s.convergence === 'not converging' ? ' not converging: no ETA' : ''),
    s.downtime !== undefined ? h('span', {}, ` expected downtime ${String(s.downtime)} ms`) : null,
    s.auto_converge_throttle !== undefined ? h('span', {}, ` throttle ${String(s.auto_converge_throttle)} %`) : null,
    s.memory_postcopy_requests !== undefined ? h('span', {}, ` post-copy requests ${String(s.memory_postcopy_requests)}`) : null,
    s.disk_total !== undefined ? h('span', {}, ` disks ${bytes(s.disk_processed as number)} of ${bytes(s.disk_total as number)}`) : null,
  ];
  p.figures.replaceChildren(...parts.filter((x): x is HTMLElement => x !== null));
}

function onCompleted(data: { domain: string; uuid: string; stats: Stats }): void {
  const p = panels.get(data.uuid);
  const s = data.stats;
  if (!p || p.ended) return;
  p.ended = true;
  p.el.classList.add(s.type === 'Completed' ? 'completed' : 'failed');
  p.el.querySelector('.controls')?.remove();
  p.figures.replaceChildren(
    h('p', { className: 'result' }, s.type === 'Completed' ? `${s.operation} completed in ${secs(s.time_elapsed)}${s.downtime !== undefined ? `, downtime ${String(s.downtime)} ms` : ''}` : `${s.operation} ${s.type}: ${s.errmsg ?? ''}`),
    h('details', {}, h('summary', {}, 'Statistics'), statsTable(s)),
  );
}

async function loadEvacuation(): Promise<void> {
  const st = await read<{ state: string; record: { guests: Array<{ guest: { name: string }; status: string; destination?: string; note: string; attempts: Array<{ downtimeMs?: number; startedAtMs: number; endedAtMs?: number }> }> } | null }>('host.evacuate.status');
  const to = h('textarea', { rows: 2, cols: 40, placeholder: 'one destination URI per line', 'aria-label': 'destinations' });
  const inactive = h('input', { type: 'checkbox' });
  const out = h('div', { className: 'plan' });
  const request = () => ({ to: to.value.split(/\s+/).filter(Boolean), includeInactive: inactive.checked });
  const running = st.state === 'running' || st.state === 'stopping' || st.state === 'aborting';
  fill(
    'evacuation',
    h('h2', {}, 'Evacuation'),
    h('p', {}, `state: ${st.state}`),
    running ? h('div', {}, action('Stop starting migrations', () => call('host.evacuate.stop', {})), action('Abort running', () => call('host.evacuate.stop', { abort: true }))) : h('div', {}, h('label', {}, 'To ', to), h('label', {}, ' include inactive ', inactive),
      action('Plan', async () => {
        const plan = await call<{ placements: Array<{ guest: { name: string }; destination: string; why: string }>; unplaced: Array<{ guest: { name: string }; refusals: Array<{ message: string }> }> }>('host.evacuate.plan', request());
        out.replaceChildren(h('table', {}, h('tbody', {}, ...plan.placements.map((p) => h('tr', {}, h('td', {}, p.guest.name), h('td', {}, p.destination), h('td', {}, p.why))), ...plan.unplaced.map((u) => h('tr', {}, h('td', {}, u.guest.name), h('td', {}, '-'), h('td', { className: 'refused' }, u.refusals.map((r) => r.message).join('; ')))))));
      }),
      action('Evacuate', () => call('host.evacuate.start', request()))),
    out,
    st.record ? h('table', { className: 'evacuation-record' }, h('tbody', {}, ...st.record.guests.map((e) => {
      const a = e.attempts.at(-1);
      return h('tr', {}, h('td', {}, e.guest.name), h('td', {}, e.status), h('td', {}, e.destination ?? '-'), h('td', {}, a?.endedAtMs !== undefined ? secs(a.endedAtMs - a.startedAtMs) : '–'), h('td', {}, a?.downtimeMs !== undefined ? `${a.downtimeMs} ms` : '–'), h('td', {}, e.note));
    }))) : null,
  );
}

/** Calls `fn` at most every 300 ms for a burst of events. */
function debounce(fn: () => Promise<void>): () => void {
  let t: number | undefined;
  return () => {
    if (t !== undefined) return;
    t = window.setTimeout(() => {
      t = undefined;
      fn().catch((err) => showError('refresh', err));
    }, 300);
  };
}
const refreshGuests = debounce(loadGuests);
const refreshHost = debounce(loadHost);
const refreshEvacuation = debounce(loadEvacuation);

function start(): void {
  fill('auth', token === null ? 'read-only (open with ferry dashboard to act)' : 'signed in with the token').className = token === null ? 'auth ro' : 'auth rw';
  fill('migrations', h('h2', {}, 'Migrations'));
  Promise.all([loadHost(), loadGuests(), loadEvacuation()]).catch((err) => showError('load', err));
  followEvents(
    (name, data) => {
      const d = data as { domain: string; uuid: string; stats: Stats; step?: string; message?: string; iteration?: number };
      switch (name) {
        case 'job':
          onJob(d);
          break;
        case 'domain.job-completed':
          onCompleted(d);
          refreshHost();
          break;
        case 'domain.migration-policy': {
          const p = panels.get(d.uuid);
          if (p && !p.ended) p.chart.markLatest(d.step ?? 'policy');
          break;
        }
        case 'domain.lifecycle':
          refreshGuests();
          refreshHost();
          break;
        case 'host.maintenance':
          refreshHost();
          break;
        case 'host.evacuation':
          refreshEvacuation();
          break;
      }
    },
    (open) => {
      const c = fill('conn', open ? 'live' : 'reconnecting…');
      c.className = open ? 'conn up' : 'conn down';
    },
  );
}

start();
