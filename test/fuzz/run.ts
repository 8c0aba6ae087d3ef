/**
 * Longer fuzz runs on request: `npx tsx test/fuzz/run.ts [CASES] [SEED]`
 * starts a ferryd of its own and runs the protocol, XML and libvirt-protocol fuzzers.
 */
import { cleanupAll, startDaemon } from '../support/daemon.js';
import { fuzzProtocol, fuzzXml } from './drive.js';
import { fuzzLibvirt, libvirtHealthCheck } from './libvirt.js';

const cases = Number(process.argv[2] ?? 20000);
const seed = Number(process.argv[3] ?? Date.now() % 1e9);
const d = await startDaemon({ hostName: 'fuzz-run', libvirtSocket: true });
try {
  const p = await fuzzProtocol(d.socketPath, seed, cases);
  const x = await fuzzXml(d.uri, seed, Math.ceil(cases / 3));
  const l = await fuzzLibvirt(d.libvirtSocketPath!, seed, cases);
  // A fresh libvirt connection still opens and lists (throws with the reason otherwise).
  const listed = d.alive() ? await libvirtHealthCheck(d.libvirtSocketPath!).then((ds) => ds.length, (err: Error) => `failed: ${err.message}`) : 'daemon gone';
  console.log(JSON.stringify({ seed, protocol: { cases: p.cases, codes: p.codes }, xml: { cases: x.cases, accepted: x.accepted, codes: x.codes }, libvirt: { cases: l.cases, okReplies: l.okReplies, codes: l.codes, internalErrors: l.internal, listedAfter: listed }, daemonAlive: d.alive() }, null, 1));
  for (const f of [...p.findings, ...x.findings, ...l.findings]) console.log(`FINDING ${f}`);
  process.exitCode = p.findings.length + x.findings.length + l.findings.length > 0 || typeof listed !== 'number' || !d.alive() ? 1 : 0;
} finally {
  await cleanupAll();
}
