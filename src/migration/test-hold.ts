/**
 * Hold points for fault-injection tests: with `FERRY_TEST_HOOKS=1` in
 * ferryd's environment, a migration stops at a named point when that name
 * is a line of `RUN_DIR/test-hold`, creates `RUN_DIR/held-NAME`, and goes
 * on once a test has removed that file (or after two minutes). This lets a
 * test break something at an exact phase. Without the variable every hold
 * point is a no-op; production never sets it.
 */
import { readFile, writeFile, access, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/** The points a migration can be held at. */
export type HoldPoint =
  | 'source-begun' // source: begin done, nothing changed yet
  | 'dest-prepared' // destination: its QEMU runs and listens
  | 'source-performing' // source: tuned, about to start QEMU's migration (and mirrors)
  | 'source-switched' // source: QEMU finished sending, source paused, destination not resumed
  | 'dest-finishing' // destination: stream complete, guest not resumed yet
  | 'source-confirming'; // source: destination runs the guest, source not yet cleaned up

const enabled = process.env.FERRY_TEST_HOOKS === '1';

/** Waits at `point` if a test asked for it (see the module comment). */
export async function holdPoint(runDir: string, point: HoldPoint, log: (m: string) => void): Promise<void> {
  if (!enabled) return;
  const wanted = await readFile(join(runDir, 'test-hold'), 'utf8').catch(() => '');
  if (!wanted.split('\n').map((l) => l.trim()).includes(point)) return;
  const marker = join(runDir, `held-${point}`);
  await writeFile(marker, String(process.pid));
  log(`test hook: holding at ${point}`);
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    try {
      await access(marker);
    } catch {
      log(`test hook: released at ${point}`);
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await unlink(marker).catch(() => undefined);
  log(`test hook: hold at ${point} timed out`);
}
