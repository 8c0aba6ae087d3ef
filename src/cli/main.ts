/**
 * `ferry`'s entry point. Start-up time is most of what a short command
 * costs (docs/performance.md, "CLI start"), so this module loads nothing:
 * `ferry --version` is answered here, and the program (commander and every
 * command's registration, program.ts) is imported only for the other
 * commands; each command's heavy modules load only when it runs.
 */
import { FERRY_VERSION } from '../version.js';

process.on('SIGPIPE', () => process.exit(0));
const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
  process.stdout.write(`${FERRY_VERSION}\n`);
} else {
  void import('./program.js').then(async ({ main }) => {
    process.exitCode = await main(process.argv);
  });
}
