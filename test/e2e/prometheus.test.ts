/**
 * `/metrics` (issue 16) scraped by a real Prometheus (Debian's package)
 * during a migration between two ferryd hosts (network namespaces):
 * Prometheus runs on host A and scrapes A over loopback (reading needs no
 * credential there) and B over the network with B's token (from another
 * machine everything needs it). Its query API then has the migration's
 * data-remaining series with more than one point, and A's counter of
 * succeeded peer-to-peer migrations went up by one. `promtool check
 * metrics` finds nothing to say about either daemon's output.
 *
 * Needs `npm run build`, `make -C guest`, prometheus; two QEMUs at most.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpFrom } from '../support/browser.js';
import { expectCliOk } from '../support/cli-result.js';
import { ferry, makeTempDir, startDaemon, waitFor, type FerrydHandle } from '../support/daemon.js';
import { writeGuestXml } from '../support/guest-xml.js';
import { expectContinuity, waitHeartbeats, type HeartbeatHost } from '../support/heartbeat.js';
import { createHostPair, netnsAvailable, type HostPair } from '../support/netns.js';

const HTTP_PORT = 18081;
const PROM_PORT = 19090;
const prometheusAvailable = existsSync('/usr/bin/prometheus') && existsSync('/usr/bin/promtool');

let pair: HostPair | undefined;
let A: FerrydHandle;
let B: FerrydHandle;
let prom: ChildProcess | undefined;
let dir: string;

beforeAll(async () => {
  if (!netnsAvailable() || !prometheusAvailable) return;
  dir = makeTempDir('ferry-prometheus-');
  pair = createHostPair(`fpm${process.pid % 10000}`, 172);
  [A, B] = (await Promise.all(
    [pair.a, pair.b].map((h, i) => startDaemon({ hostName: `prom-${'ab'[i]}`, netns: h.ns, listenTcp: `${h.address}:16609`, extraArgs: ['--http', `0.0.0.0:${HTTP_PORT}`] })),
  )) as [FerrydHandle, FerrydHandle];
  const tokenFile = join(dir, 'b-token');
  writeFileSync(tokenFile, readFileSync(join(B.runDir, 'http-token'), 'utf8').trim(), { mode: 0o600 });
  const config = join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    [
      'global: { scrape_interval: 1s, scrape_timeout: 900ms }',
      'scrape_configs:',
      '  - job_name: ferry-a',
      `    static_configs: [{ targets: ['127.0.0.1:${HTTP_PORT}'] }]`,
      '  - job_name: ferry-b',
      `    authorization: { type: Bearer, credentials_file: ${tokenFile} }`,
      `    static_configs: [{ targets: ['${pair.b.address}:${HTTP_PORT}'] }]`,
      '',
    ].join('\n'),
  );
  prom = spawn('ip', ['netns', 'exec', pair.a.ns, '/usr/bin/prometheus', `--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${PROM_PORT}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  prom.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  await waitFor(`Prometheus to be ready (${log.slice(-500)})`, async () => (await httpFrom(pair!.a.ns, `http://127.0.0.1:${PROM_PORT}/-/ready`).catch(() => ({ status: 0 }))).status === 200, 60_000, 250);
}, 120_000);

afterAll(async () => {
  prom?.kill('SIGTERM');
  await Promise.all([A?.stop(), B?.stop()].filter(Boolean));
  pair?.destroy();
});

/** A PromQL query's result, from inside A's namespace. */
async function query(path: string): Promise<Array<{ metric: Record<string, string>; value?: [number, string]; values?: Array<[number, string]> }>> {
  const r = await httpFrom(pair!.a.ns, `http://127.0.0.1:${PROM_PORT}${path}`);
  expect(r.status, r.body).toBe(200);
  return JSON.parse(r.body).data.result;
}

/** promtool's verdict on what `url` serves. */
function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = execFile('/usr/bin/promtool', ['check', 'metrics'], { timeout: 20_000, encoding: 'utf8' }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, output: `${stdout}${stderr}` }),
    );
    child.stdin!.end(text);
  });
}

describe.skipIf(!netnsAvailable() || !prometheusAvailable)('Prometheus scraping two ferryds', () => {
  it('records the data-remaining series of a running migration and the succeeded counter after it; promtool finds nothing wrong', async () => {
    const name = 'prom-guest';
    const hbA: HeartbeatHost = { label: 'A', d: A };
    const hbB: HeartbeatHost = { label: 'B', d: B };
    expectCliOk(await ferry(['define', writeGuestXml(dir, { name, memoryKiB: 262148, cmdline: 'ws=32 rate=2 hb=200' })], { uri: A.uri, netns: pair!.a.ns }), 'define');
    expectCliOk(await ferry(['start', name], { uri: A.uri, netns: pair!.a.ns }), 'start');
    await waitHeartbeats(hbA, name);
    // Both targets are up before the migration starts (the targets' own account in the message if not).
    let targets = '';
    await waitFor(
      'both ferryds scraped',
      async () => {
        const r = await httpFrom(pair!.a.ns, `http://127.0.0.1:${PROM_PORT}/api/v1/targets`);
        const active = JSON.parse(r.body).data.activeTargets as Array<{ health: string; lastError: string; scrapeUrl: string }>;
        targets = JSON.stringify(active.map((t) => [t.scrapeUrl, t.health, t.lastError]));
        return active.length === 2 && active.every((t) => t.health === 'up');
      },
      30_000,
      500,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; targets: ${targets}`);
    });
    const t0 = Date.now() / 1000;
    // 8 MiB/s against 2 MiB/s of rewrites: a few seconds, several scrapes.
    const migrated = await ferry(['migrate', '--live', '--p2p', '--bandwidth', '8', name, `ferry+tcp://${pair!.b.address}:16609/system`], { uri: A.uri, netns: pair!.a.ns, json: true, timeoutMs: 180_000 });
    expectCliOk(migrated, 'migrate at 8 MiB/s');
    await expectContinuity(name, hbA, hbB);
    // Let Prometheus take a scrape after the end.
    await waitFor('the succeeded counter on A', async () => (await query(`/api/v1/query?query=${encodeURIComponent('ferry_migrations_succeeded_total{job="ferry-a",mode="p2p"}')}`))[0]?.value?.[1] === '1', 30_000, 500);
    const t1 = Date.now() / 1000;

    const remaining = await query(`/api/v1/query_range?query=${encodeURIComponent(`ferry_migration_data_remaining_bytes{domain="${name}",job="ferry-a"}`)}&start=${t0}&end=${t1}&step=1`);
    expect(remaining).toHaveLength(1);
    const points = remaining[0]!.values!.map(([, v]) => Number(v));
    expect(points.length, JSON.stringify(points)).toBeGreaterThan(1);
    expect(Math.max(...points)).toBeGreaterThan(Math.min(...points));
    // The destination reported its side too (an incoming job), scraped over the network with the token.
    const incoming = await query(`/api/v1/query_range?query=${encodeURIComponent(`ferry_migration_elapsed_seconds{domain="${name}",job="ferry-b",direction="incoming"}`)}&start=${t0}&end=${t1}&step=1`);
    expect(incoming.length).toBe(1);
    expect((await query(`/api/v1/query?query=${encodeURIComponent('ferry_migrations_started_total{job="ferry-a",mode="p2p"}')}`))[0]?.value?.[1]).toBe('1');
    expect((await query(`/api/v1/query?query=${encodeURIComponent('ferry_migrations_failed_total{job="ferry-a",mode="p2p"}')}`))[0]?.value?.[1]).toBe('0');
    expect((await query(`/api/v1/query?query=${encodeURIComponent(`ferry_domain_info_state{domain="${name}",job="ferry-b"}`)}`))[0]?.value?.[1]).toBe('1');

    for (const [h, ns] of [[A, pair!.a.ns], [B, pair!.b.ns]] as const) {
      const text = (await httpFrom(ns, `http://127.0.0.1:${HTTP_PORT}/metrics`)).body;
      expect(text).toContain('process_resident_memory_bytes');
      const check = await promtoolCheck(text);
      expect(check, `promtool on ${h.stateDir}`).toEqual({ code: 0, output: '' });
    }
  }, 300_000);
});
