/**
 * Longer fuzz runs on request: `npx tsx test/fuzz/run.ts [CASES] [SEED]`
 * starts a ferryd of its own and runs the protocol and XML fuzzers.
 */
import { cleanupAll, startDaemon } from '../support/daemon.js';
import { fuzzProtocol, fuzzXml } from './drive.js';

const cases = Number(process.argv[2] ?? 20000);
const seed = Number(process.argv[3] ?? Date.now() % 1e9);
const d = await startDaemon({ hostName: 'fuzz-run' });
try {
  const p = await fuzzProtocol(d.socketPath, seed, cases);
  const x = await fuzzXml(d.uri, seed, Math.ceil(cases / 3));
  console.log(JSON.stringify({ seed, protocol: { cases: p.cases, codes: p.codes }, xml: { cases: x.cases, accepted: x.accepted, codes: x.codes }, daemonAlive: d.alive() }, null, 1));
  for (const f of [...p.findings, ...x.findings]) console.log(`FINDING ${f}`);
  process.exitCode = p.findings.length + x.findings.length > 0 || !d.alive() ? 1 : 0;
} finally {
  await cleanupAll();
}
