/**
 * A stand-in for a starting ferryd, for the instance-lock tests: a separate
 * process that takes RUN_DIR's instance lock when told to. Its file name
 * contains "ferryd" on purpose: the lock tells a live ferryd from a stale
 * pid by the process's command line, and this process must count as one.
 *
 * Usage: node --import tsx ferryd-lock-contender.ts RUN_DIR
 * Reads lines on stdin: `acquire` answers `won` or `lost CODE: MESSAGE`,
 * `release` answers `released`.
 */
import { createInterface } from 'node:readline';
import { acquireInstanceLock } from '../../src/daemon/instance-lock.js';

const runDir = process.argv[2];
if (!runDir) throw new Error('usage: ferryd-lock-contender.ts RUN_DIR');
let release: (() => Promise<void>) | undefined;
const say = (line: string) => process.stdout.write(`${line}\n`);

for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'acquire') {
    try {
      release = await acquireInstanceLock(runDir);
      say('won');
    } catch (err) {
      say(`lost ${(err as { code?: string }).code ?? 'error'}: ${(err as Error).message}`);
    }
  } else if (line === 'release') {
    await release?.();
    release = undefined;
    say('released');
  }
}
