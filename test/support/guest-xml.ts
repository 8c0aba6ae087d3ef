/**
 * Domain XML for the Ferry test guest (guest/build/guest.elf) and helpers
 * that read its serial heartbeat through `ferry console --log`.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ferry, REPO_ROOT, sleep } from './daemon.js';
import { parseSerialLog, type SerialLog } from './serial.js';

/** Absolute path of the test guest kernel (build it with `make -C guest`). */
export const GUEST_KERNEL = join(REPO_ROOT, 'guest', 'build', 'guest.elf');

/** Options of {@link testGuestXml}. */
export interface GuestXmlOptions {
  name: string;
  /** Omitted from the XML when undefined, so ferryd generates one. */
  uuid?: string;
  /** Default 262148 KiB (256 MiB + 4 KiB: an odd size, safe for memory-rewriting guests under TCG). */
  memoryKiB?: number;
  /** Guest kernel command line. Default `ws=8 rate=5 hb=200`. */
  cmdline?: string;
  /** Raw XML put inside `<devices>` after the serial port (e.g. a `<disk>`). */
  extraDevices?: string;
  /** Machine type. Default 'pc'. */
  machine?: string;
  /** Kernel path. Default {@link GUEST_KERNEL}. */
  kernel?: string;
}

/** Escapes text for an XML attribute value or element content. */
export function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** libvirt domain XML for the test guest: one vCPU, ACPI (for the power button), serial port 0 as a pty. */
export function testGuestXml(o: GuestXmlOptions): string {
  const kernel = o.kernel ?? GUEST_KERNEL;
  if (o.kernel === undefined && !existsSync(kernel)) throw new Error(`${kernel} is missing: run 'make -C guest'`);
  const mem = o.memoryKiB ?? 262148;
  return [
    `<domain type='qemu'>`,
    `  <name>${xmlEscape(o.name)}</name>`,
    ...(o.uuid !== undefined ? [`  <uuid>${xmlEscape(o.uuid)}</uuid>`] : []),
    `  <title>Ferry e2e test guest</title>`,
    `  <memory unit='KiB'>${mem}</memory>`,
    `  <currentMemory unit='KiB'>${mem}</currentMemory>`,
    `  <vcpu placement='static'>1</vcpu>`,
    `  <os>`,
    `    <type arch='x86_64' machine='${xmlEscape(o.machine ?? 'pc')}'>hvm</type>`,
    `    <kernel>${xmlEscape(kernel)}</kernel>`,
    `    <cmdline>${xmlEscape(o.cmdline ?? 'ws=8 rate=5 hb=200')}</cmdline>`,
    `  </os>`,
    `  <features><acpi/></features>`,
    `  <on_poweroff>destroy</on_poweroff>`,
    `  <on_reboot>restart</on_reboot>`,
    `  <on_crash>destroy</on_crash>`,
    `  <devices>`,
    `    <serial type='pty'><target port='0'/></serial>`,
    `    <console type='pty'><target type='serial' port='0'/></console>`,
    ...(o.extraDevices ? [o.extraDevices] : []),
    `  </devices>`,
    `</domain>`,
    '',
  ].join('\n');
}

/** Writes {@link testGuestXml} to `dir/<file or name.xml>` and returns the path (the CLI takes files). */
export function writeGuestXml(dir: string, o: GuestXmlOptions, file?: string): string {
  const path = join(dir, file ?? `${o.name.replace(/[^A-Za-z0-9._-]/g, '_')}.xml`);
  writeFileSync(path, testGuestXml(o));
  return path;
}

/** The serial log as `ferry console --log NAME` shows it, parsed. */
export async function consoleLog(uri: string, name: string): Promise<{ text: string; log: SerialLog }> {
  const r = await ferry(['console', '--log', name], { uri, json: true });
  if (r.code !== 0 || typeof r.json?.text !== 'string') {
    throw new Error(`ferry console --log ${name} failed (exit ${r.code}): ${r.stdout}${r.stderr}`);
  }
  return { text: r.json.text as string, log: parseSerialLog(r.json.text as string) };
}

/** The serial log file ferryd keeps for `name` (STATE_DIR/logs/NAME.serial.log), parsed; empty if missing. */
export function serialLogFile(stateDir: string, name: string): { text: string; log: SerialLog } {
  const path = join(stateDir, 'logs', `${name}.serial.log`);
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
  return { text, log: parseSerialLog(text) };
}

/**
 * Polls `ferry console --log NAME` until `predicate(parsed log)` holds;
 * returns the parsed log. Throws after `timeoutMs` with the log's tail.
 */
export async function waitForHeartbeat(
  uri: string,
  name: string,
  predicate: (log: SerialLog) => boolean,
  timeoutMs = 30_000,
): Promise<SerialLog> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  let lastErr: unknown;
  for (;;) {
    try {
      const { text, log } = await consoleLog(uri, name);
      last = text;
      if (predicate(log)) return log;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for the heartbeat of '${name}'` +
          `${lastErr ? ` (last error: ${(lastErr as Error).message})` : ''}; log tail:\n${last.slice(-600)}`,
      );
    }
    await sleep(150);
  }
}

/**
 * Polls a serial log file (ferryd's STATE_DIR/logs/NAME.serial.log, or the
 * file a file-backed serial port writes) until `predicate(parsed log)`
 * holds; returns the parsed log. A missing file reads as empty. Throws at
 * once when the guest reported CORRUPT, and after `timeoutMs` with the log's
 * tail. For benchmarks and tests that have the file rather than a daemon.
 */
export async function waitForSerialFile(path: string, predicate: (log: SerialLog) => boolean, timeoutMs = 60_000): Promise<SerialLog> {
  const deadline = Date.now() + timeoutMs;
  const read = () => (existsSync(path) ? readFileSync(path, 'utf8') : '');
  for (;;) {
    const log = parseSerialLog(read());
    if (log.corrupt) throw new Error(`the guest reported CORRUPT in ${path}:\n${read().slice(-600)}`);
    if (predicate(log)) return log;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for the heartbeat in ${path}; log tail:\n${read().slice(-600)}`);
    await sleep(100);
  }
}

/** Predicate: at least `n` heartbeats, whatever their check. */
export const heartbeatCount =
  (n: number) =>
  (log: SerialLog): boolean =>
    log.heartbeats.length >= n;

/** Predicate: at least `n` heartbeats, the last one with check=OK. */
export const heartbeats =
  (n: number) =>
  (log: SerialLog): boolean =>
    log.heartbeats.length >= n && log.lastHeartbeat?.check === 'OK';

/** Predicate: the last heartbeat counter is above `counter`. */
export const counterAbove =
  (counter: number) =>
  (log: SerialLog): boolean =>
    (log.lastHeartbeat?.counter ?? 0) > counter;
