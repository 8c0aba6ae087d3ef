/**
 * A stand-in for ferryd in the tether tests: ties the process `PID` to
 * itself (src/qemu/tether.ts), optionally releases it, says `tied`, then
 * waits to be killed.
 *
 * Usage: node --import tsx tether-holder.ts PID [release]
 */
import { tetherToDaemon } from '../../src/qemu/tether.js';

const pid = Number(process.argv[2]);
const tether = tetherToDaemon(pid);
if (process.argv[3] === 'release') tether.release();
process.stdout.write('tied\n');
setInterval(() => undefined, 60_000);
