/**
 * The "migrate" form, built from the flag and parameter tables
 * (src/flags/): a box per flag and a field per parameter, each with its
 * documentation, and the request checked by the same rules the daemon
 * applies (`validateMigrationRequest`, `parseCliValue`) before it is sent,
 * so that a refused combination is explained at once. The daemon checks
 * again, with what only it knows (the guest, the destination).
 */
import { MIGRATION_FLAGS, MIGRATION_PARAMS, flagsFromNames, parseCliValue, validateMigrationRequest, type MigrationParamName } from '../../src/flags/index.js';
import { h } from './dom.js';

/** Flags the form's mode chooses rather than a box. */
const BY_MODE = new Set(['PEER2PEER', 'TUNNELLED']);

/** What the form asks to send. */
export interface MigrateRequest {
  destUri: string;
  flags: number;
  params: Record<string, unknown>;
}

/** Builds the form for `domain`; `send` is called with a request that passed the rules. */
export function migrateForm(domain: string, send: (req: MigrateRequest) => Promise<void>): HTMLElement {
  const dest = h('input', { type: 'text', name: 'destUri', placeholder: 'ferry+tls://host/system', size: 40, required: true });
  const mode = h('select', { name: 'mode' }, h('option', { value: 'p2p' }, 'peer-to-peer, data sent directly by QEMU'), h('option', { value: 'tunnelled' }, 'peer-to-peer, tunnelled through the daemons'));
  const boxes = MIGRATION_FLAGS.filter((f) => f.availability === 'supported' && !BY_MODE.has(f.name)).map((f) => ({
    name: f.name,
    input: h('input', { type: 'checkbox', name: f.name, checked: f.name === 'LIVE' }),
    spec: f,
  }));
  const fields = MIGRATION_PARAMS.filter((p) => p.availability === 'supported').map((p) => ({
    name: p.name as MigrationParamName,
    input: 'cliInput' in p && p.cliInput === 'file' ? h('textarea', { name: p.name, rows: 2, cols: 40 }) : h('input', { type: 'text', name: p.name, placeholder: p.valueName, size: 18 }),
    spec: p,
  }));
  const verdict = h('p', { className: 'verdict', id: 'migrate-verdict', role: 'status' });
  const submit = h('button', { type: 'submit' }, 'Migrate');
  const outcome = h('p', { className: 'outcome', id: 'migrate-outcome' });

  /** The request as the form stands, or the first reason it would be refused. */
  const current = (): { req?: MigrateRequest; problem?: string } => {
    const names = boxes.filter((b) => b.input.checked).map((b) => b.name);
    names.push('PEER2PEER');
    if (mode.value === 'tunnelled') names.push('TUNNELLED');
    const params: Record<string, unknown> = {};
    try {
      for (const f of fields) {
        const text = f.input.value.trim();
        if (text !== '') params[f.name] = parseCliValue(f.name, text);
      }
      const flags = flagsFromNames(names);
      validateMigrationRequest({ flags, params });
      if (dest.value.trim() === '') return { problem: 'give the destination URI' };
      return { req: { destUri: dest.value.trim(), flags, params } };
    } catch (err) {
      return { problem: (err as Error).message };
    }
  };
  const check = () => {
    const c = current();
    verdict.textContent = c.problem ?? 'ready to send';
    verdict.classList.toggle('refused', c.problem !== undefined);
    submit.disabled = c.problem !== undefined;
  };
  const form = h(
    'form',
    {
      className: 'migrate',
      oninput: check,
      onchange: check,
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        const c = current();
        if (!c.req) return;
        outcome.textContent = `migrating ${domain}…`;
        submit.disabled = true;
        send(c.req).then(
          () => (outcome.textContent = `${domain} migrated to ${c.req!.destUri}`),
          (err: Error) => {
            outcome.textContent = `failed: ${err.message}`;
            outcome.classList.add('refused');
          },
        ).finally(check);
      },
    },
    h('h3', {}, `Migrate ${domain}`),
    h('label', {}, 'Destination ', dest),
    h('label', {}, ' Mode ', mode),
    h('fieldset', {}, h('legend', {}, 'Flags'), ...boxes.map((b) => h('label', { className: 'flag', title: b.spec.doc }, b.input, ` ${b.spec.option} `, h('small', {}, b.spec.summary)))),
    h('details', {}, h('summary', {}, 'Parameters'), ...fields.map((f) => h('label', { className: 'param', title: f.spec.doc }, `${f.spec.option} `, f.input, h('small', {}, ` ${f.spec.summary}`)))),
    verdict,
    submit,
    outcome,
  );
  check();
  return form;
}
