/**
 * The dashboard (issue 16) in real headless Chromium, against two ferryd
 * hosts (network namespaces) with real QEMU guests:
 *
 * - the page opened with `ferry dashboard`'s address starts a live
 *   migration of the writing test guest A -> B from the migrate form; the
 *   chart gains points while it runs; the bandwidth raised from the page
 *   mid-way makes the throughput follow; the migration completes, the
 *   guest shows on B and its heartbeat carried on;
 * - a migration started from the page is aborted from it: the job ends
 *   Cancelled and the guest runs on A;
 * - a refused flag combination is explained before anything is sent;
 * - security: from another machine nothing is served without the token;
 *   from this one reading needs nothing but a change does, a page of
 *   another origin or another Host name gets nothing, the token file is
 *   mode 0600.
 *
 * Screenshots go to test-artifacts/dashboard/. Needs `npm run build` (the
 * page is built into dist/web), `make -C guest`, Chromium; two QEMUs at most.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { artifactPath, chromiumAvailable, httpFrom, launchChromium } from '../support/browser.js';
import { domainNames, expectCliOk } from '../support/cli-result.js';
import { ferry, makeTempDir, resetDaemons, startDaemon, useDaemonCleanup, waitFor, type FerrydHandle } from '../support/daemon.js';
import { writeGuestXml } from '../support/guest-xml.js';
import { expectContinuity, waitHeartbeats, type HeartbeatHost } from '../support/heartbeat.js';
import { createHostPair, netnsAvailable, type HostPair } from '../support/netns.js';

const HTTP_PORT = 18080;
let pair: HostPair | undefined;
let A: FerrydHandle;
let B: FerrydHandle;
let browser: Browser | undefined;
let dir: string;
let pageUrl: string;
let token: string;

const hbA = (): HeartbeatHost => ({ label: 'A', d: A });
const hbB = (): HeartbeatHost => ({ label: 'B', d: B });
const onA = (args: string[], json = false) => ferry(args, { uri: A.uri, netns: pair!.a.ns, json });
const onB = (args: string[], json = false) => ferry(args, { uri: B.uri, netns: pair!.b.ns, json });
const destUri = () => `ferry+tcp://${pair!.b.address}:16609/system`;

useDaemonCleanup(() => resetDaemons([A, B]));

beforeAll(async () => {
  if (!netnsAvailable() || !chromiumAvailable()) return;
  dir = makeTempDir('ferry-dashboard-');
  pair = createHostPair(`fdb${process.pid % 10000}`, 171);
  [A, B] = await Promise.all(
    [pair.a, pair.b].map((h, i) => startDaemon({ hostName: `dash-${'ab'[i]}`, netns: h.ns, listenTcp: `${h.address}:16609`, extraArgs: ['--http', `0.0.0.0:${HTTP_PORT}`] })),
  ) as [FerrydHandle, FerrydHandle];
  const dash = await onA(['dashboard'], true);
  expectCliOk(dash, 'ferry dashboard');
  pageUrl = dash.json.url as string;
  token = /#token=([0-9a-f]{64})$/.exec(pageUrl)![1]!;
  browser = await launchChromium(pair.a.ns);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  pair?.destroy();
});

/** A guest defined and started on A, rewriting memory, up and printing heartbeats. */
async function startGuest(name: string): Promise<void> {
  expectCliOk(await onA(['define', writeGuestXml(dir, { name, memoryKiB: 262148, cmdline: 'ws=48 rate=20 hb=200' })]), `define ${name}`);
  expectCliOk(await onA(['start', name]), `start ${name}`);
  await waitHeartbeats(hbA(), name);
}

/** The page, opened with the token, the guest's detail and migrate form shown. */
async function openMigrateForm(name: string): Promise<Page> {
  const page = await browser!.newPage({ viewport: { width: 1280, height: 1100 } });
  await page.goto(pageUrl);
  await page.locator(`#guest-table tr[data-domain="${name}"] button`).click();
  await page.locator('form.migrate').waitFor();
  await page.click('form.migrate details > summary');
  return page;
}

/** The throughput the migration panel shows now, MiB/s. */
async function shownThroughput(page: Page, name: string): Promise<number> {
  const text = await page.locator(`article.migration[data-domain="${name}"] .figures`).innerText();
  const m = /throughput ([\d.]+) (MiB|GiB)\/s/.exec(text);
  return m ? Number(m[1]) * (m[2] === 'GiB' ? 1024 : 1) : NaN;
}

async function chartPoints(page: Page, name: string): Promise<number> {
  return Number((await page.locator(`article.migration[data-domain="${name}"] .chart`).getAttribute('data-points')) ?? 0);
}

describe.skipIf(!netnsAvailable() || !chromiumAvailable())('the dashboard', () => {
  it('starts a live migration from the form, charts it as it runs, follows a bandwidth change, and shows it complete with the guest on the destination', async () => {
    const name = 'dash-live';
    await startGuest(name);
    const page = await openMigrateForm(name);
    expect(await page.locator('#auth').innerText()).toContain('signed in');
    await page.fill('form.migrate input[name=destUri]', destUri());
    await page.fill('form.migrate input[name=bandwidth]', '4');
    await expect.poll(() => page.locator('#migrate-verdict').innerText()).toBe('ready to send');
    await page.locator('form.migrate button[type=submit]').click();

    // The chart gains points while it runs (pushed every 500 ms).
    await waitFor('the chart to have 6 points', async () => (await chartPoints(page, name)) >= 6, 60_000, 200);
    const first = await chartPoints(page, name);
    await waitFor('more points', async () => (await chartPoints(page, name)) >= first + 4, 30_000, 200);
    const slow = await shownThroughput(page, name);
    expect(slow, 'throughput under --bandwidth 4').toBeGreaterThan(0);
    expect(slow).toBeLessThanOrEqual(5);
    await page.screenshot({ path: artifactPath('dashboard', '1-migration-running.png'), fullPage: true });

    // Raise the bandwidth from the page: the throughput follows.
    const panel = page.locator(`article.migration[data-domain="${name}"]`);
    await panel.locator('input[aria-label="bandwidth MiB/s"]').fill('64');
    await panel.locator('button.set-speed').click();
    await waitFor('the throughput to follow the new bandwidth', async () => (await shownThroughput(page, name).catch(() => NaN)) > 2 * slow || (await panel.getAttribute('class'))!.includes('completed'), 60_000, 200);
    await page.screenshot({ path: artifactPath('dashboard', '2-bandwidth-raised.png'), fullPage: true });

    await waitFor('the migration to complete on the page', async () => (await panel.getAttribute('class'))!.includes('completed'), 120_000, 200);
    expect(await panel.locator('.result').innerText()).toMatch(/Outgoing migration completed in [\d.]+ s/);
    await expect.poll(() => page.locator('#migrate-outcome').innerText(), { timeout: 30_000 }).toContain(`migrated to ${destUri()}`);
    await page.screenshot({ path: artifactPath('dashboard', '3-migration-completed.png'), fullPage: true });

    expect(await domainNames({ name: 'B', ferry: (a) => onB(a) })).toContain(name);
    await expectContinuity(name, hbA(), hbB());
    // B's own dashboard (a browser on B, with B's token) lists it running.
    const bDash = await onB(['dashboard'], true);
    expectCliOk(bDash, 'ferry dashboard on B');
    const bBrowser = await launchChromium(pair!.b.ns);
    const bPage = await bBrowser.newPage({ viewport: { width: 1280, height: 800 } });
    await bPage.goto(bDash.json.url as string);
    await waitFor('the guest on B\'s page', async () => ((await bPage.locator(`#guest-table tr[data-domain="${name}"]`).innerText().catch(() => '')) as string).includes('running'), 20_000, 200);
    await bPage.screenshot({ path: artifactPath('dashboard', '3b-guest-on-destination.png') });
    await bBrowser.close();
    // The page's guest list follows (lifecycle events): A no longer runs it.
    await waitFor('the guest row on A to show it gone or shut off', async () => {
      const row = page.locator(`#guest-table tr[data-domain="${name}"]`);
      return (await row.count()) === 0 || (await row.innerText()).includes('shutoff');
    }, 20_000, 200);
    await page.close();
  }, 300_000);

  it('aborts a running migration from the page: the job ends Cancelled and the guest runs on the source', async () => {
    const name = 'dash-abort';
    await startGuest(name);
    const page = await openMigrateForm(name);
    await page.fill('form.migrate input[name=destUri]', destUri());
    await page.fill('form.migrate input[name=bandwidth]', '2');
    await page.locator('form.migrate button[type=submit]').click();
    await waitFor('the chart to have 3 points', async () => (await chartPoints(page, name)) >= 3, 60_000, 200);
    const panel = page.locator(`article.migration[data-domain="${name}"]`);
    await panel.getByRole('button', { name: 'Abort' }).click();
    await waitFor('the panel to show the job failed', async () => (await panel.getAttribute('class'))!.includes('failed'), 60_000, 200);
    expect(await panel.locator('.result').innerText()).toMatch(/Outgoing migration Cancelled/);
    await expect.poll(() => page.locator('#migrate-outcome').innerText(), { timeout: 30_000 }).toMatch(/^failed: /);
    await page.screenshot({ path: artifactPath('dashboard', '4-migration-aborted.png'), fullPage: true });
    const state = await onA(['domstate', name]);
    expect(state.stdout.trim()).toBe('running');
    expect(await domainNames({ name: 'B', ferry: (a) => onB(a) })).not.toContain(name);
    await waitHeartbeats(hbA(), name, 3);
    await page.close();
  }, 180_000);

  it('explains a refused flag combination before sending anything', async () => {
    const name = 'dash-refuse';
    await startGuest(name);
    const page = await openMigrateForm(name);
    await page.fill('form.migrate input[name=destUri]', destUri());
    await page.selectOption('form.migrate select[name=mode]', 'tunnelled');
    await page.uncheck('form.migrate input[name=LIVE]');
    await page.check('form.migrate input[name=OFFLINE]');
    await page.check('form.migrate input[name=PERSIST_DEST]');
    const verdict = page.locator('#migrate-verdict');
    await expect.poll(() => verdict.innerText()).toContain('--offline (OFFLINE) excludes --tunnelled (TUNNELLED)');
    expect(await verdict.getAttribute('class')).toContain('refused');
    expect(await page.locator('form.migrate button[type=submit]').isDisabled()).toBe(true);
    await page.screenshot({ path: artifactPath('dashboard', '5-refused-combination.png'), fullPage: true });
    expect((await onA(['domjobinfo', name, '--completed'], true)).json?.type ?? 'None').toBe('None');
    await page.close();
  }, 120_000);

  it('serves nothing to another machine without the token; here reading is free and a change needs it; other origins and names get nothing', async () => {
    const remote = `http://${pair!.a.address}:${HTTP_PORT}`;
    const local = `http://127.0.0.1:${HTTP_PORT}`;
    const fromB = (path: string, init = {}) => httpFrom(pair!.b.ns, `${remote}${path}`, init);
    const here = (path: string, init = {}) => httpFrom(pair!.a.ns, `${local}${path}`, init);
    const bearer = { Authorization: `Bearer ${token}` };

    for (const path of ['/', '/metrics', '/api/call/domain.list', '/api/events', '/assets/app.js']) {
      const r = await fromB(path);
      expect(r.status, `${path} from another machine without the token`).toBe(403);
      expect(r.body).not.toContain('ferry_');
    }
    expect((await fromB('/metrics', { headers: bearer })).status).toBe(200);
    expect((await fromB('/api/call/host.facts', { headers: { Authorization: `Bearer ${'0'.repeat(64)}` } })).status).toBe(403);

    expect((await here('/')).status).toBe(200);
    const metrics = await here('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('ferry_migrations_started_total');
    const change = { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ reason: 'test' }) };
    const denied = await here('/api/call/host.maintenance.enable', change);
    expect(denied.status).toBe(401);
    expect(JSON.parse(denied.body).error.code).toBe('auth_failed');
    const forged = await here('/api/call/host.maintenance.enable', { ...change, headers: { ...change.headers, ...bearer, Origin: 'http://evil.example' } });
    expect(forged.status).toBe(403);
    const rebound = await here('/api/call/host.facts', { headers: { Host: `evil.example:${HTTP_PORT}` } });
    expect(rebound.status).toBe(403);
    // Bad input through the page's door gets the same checks as the CLI's.
    const bad = await here('/api/call/domain.migrateSetSpeed', { method: 'POST', headers: { ...bearer, 'Content-Type': 'application/json' }, body: '{"domain":"../x","bandwidth":-1}' });
    expect(bad.status).toBeGreaterThanOrEqual(400);
    expect(JSON.parse(bad.body).error.code).toMatch(/^(no_domain|invalid_arg)$/);
    expect((await here('/api/call/host.maintenance.status')).status).toBe(200);
    expect(JSON.parse((await here('/api/call/host.maintenance.status')).body).result.enabled).toBe(false);

    expect(statSync(join(A.runDir, 'http-token')).mode & 0o777).toBe(0o600);
  }, 120_000);
});
