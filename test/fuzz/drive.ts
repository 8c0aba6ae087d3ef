/**
 * Runs fuzz cases against a live ferryd: each protocol case on a fresh
 * connection to its unix socket, each XML case through `domain.define`.
 * Every answer must be a well-formed reply whose error, if any, carries a
 * code from the error table; anything else is recorded as a finding.
 */
import { createConnection } from 'node:net';
import { ERROR_CODES } from '../../src/errors/index.js';
import { ApiClient } from '../../src/api/client.js';
import { FerryError } from '../../src/errors/index.js';
import { FrameDecoder } from '../../src/api/framing.js';
import { protocolCase, type ProtocolCase } from './protocol.js';
import { xmlCase } from './xml.js';

export interface FuzzReport {
  cases: number;
  findings: string[];
  /** Codes seen, with counts. */
  codes: Record<string, number>;
}

const isCode = (c: unknown) => typeof c === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CODES, c);

/** Sends one protocol case and checks every frame the daemon answers with. */
function sendCase(socketPath: string, c: ProtocolCase, report: FuzzReport, label: string): Promise<void> {
  return new Promise((resolve) => {
    const s = createConnection({ path: socketPath });
    const dec = new FrameDecoder();
    let idle: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(idle);
      s.destroy();
      resolve();
    };
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(done, 400);
    };
    s.on('error', () => done());
    s.on('close', () => done());
    s.on('data', (chunk: Buffer) => {
      arm();
      try {
        for (const f of dec.push(chunk)) {
          if (f.kind !== 1) {
            report.findings.push(`${label}: the daemon sent a non-JSON frame`);
            continue;
          }
          const m = f.message as { type?: string; error?: { code?: unknown } };
          if (m.type !== 'reply' && m.type !== 'event') report.findings.push(`${label}: unexpected message ${JSON.stringify(m).slice(0, 200)}`);
          if (m.error) {
            if (!isCode(m.error.code)) report.findings.push(`${label}: error without a known code: ${JSON.stringify(m.error).slice(0, 200)}`);
            else report.codes[m.error.code as string] = (report.codes[m.error.code as string] ?? 0) + 1;
          }
        }
      } catch (err) {
        report.findings.push(`${label}: the daemon's answer does not decode: ${(err as Error).message}`);
      }
    });
    s.once('connect', async () => {
      for (const p of c.pieces) {
        if (s.destroyed) break;
        s.write(p);
        if (c.pieces.length > 1) await new Promise((r) => setImmediate(r));
      }
      if (c.endEarly) s.end();
      arm();
    });
  });
}

/** Runs `count` protocol cases of `seed`, `parallel` connections at a time. */
export async function fuzzProtocol(socketPath: string, seed: number, count: number, parallel = 8): Promise<FuzzReport> {
  const report: FuzzReport = { cases: 0, findings: [], codes: {} };
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const c = protocolCase(seed, i);
      await sendCase(socketPath, c, report, `protocol case ${seed}/${i} (${c.kind})`);
      report.cases++;
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return report;
}

/** Runs `count` XML cases of `seed` through define (and undefines what was accepted). */
export async function fuzzXml(uri: string, seed: number, count: number): Promise<FuzzReport & { accepted: number }> {
  const report = { cases: 0, findings: [] as string[], codes: {} as Record<string, number>, accepted: 0 };
  const c = await ApiClient.connect(uri);
  try {
    for (let i = 0; i < count; i++) {
      const x = xmlCase(seed, i);
      const label = `XML case ${seed}/${i} (${x.kind})`;
      try {
        const r = (await c.callRaw('domain.define', { xml: x.xml }, { timeoutMs: 30_000 })) as { name?: string; uuid?: string };
        report.accepted++;
        // Accepted: it must read back and go away cleanly.
        await c.callRaw('domain.xml', { domain: r.uuid ?? r.name }, { timeoutMs: 30_000 });
        await c.callRaw('domain.undefine', { domain: r.uuid ?? r.name }, { timeoutMs: 30_000 });
      } catch (err) {
        if (!(err instanceof FerryError) || !isCode(err.code)) report.findings.push(`${label}: ${(err as Error).message.slice(0, 200)}`);
        else report.codes[err.code] = (report.codes[err.code] ?? 0) + 1;
      }
      report.cases++;
    }
  } finally {
    c.close();
  }
  return report;
}
