/** `tls-setup DIR`: make a test CA with server and client certificates for mutual TLS. */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { printResult } from '../output.js';
import { parsePositiveInt } from './console.js';

/** Registers `tls-setup`. */
export function registerTlsCommands(program: Command, ctx: CliContext): void {
  program
    .command('tls-setup')
    .description('create a test PKI (CA, server and client certificates) for ferryd --listen-tls and ferry+tls:// URIs')
    .argument('<dir>', 'directory to write cacert.pem, servercert.pem, serverkey.pem, clientcert.pem, clientkey.pem')
    .option('--host <name>', 'a host name or IP address the server certificate must be valid for (repeatable)', (v, acc: string[]) => [...acc, v], [] as string[])
    .option('--days <n>', 'validity in days', (v) => parsePositiveInt(v, '--days'), 365)
    .option('--reuse-ca', 'issue new certificates from the CA already in DIR')
    .option('--client-name <cn>', 'common name of the client certificate', 'ferry-client')
    .action(async (dir: string, opts: { host: string[]; days: number; reuseCa?: boolean; clientName: string }) => {
      const { createTestPki } = await import('../../api/pki-setup.js');
      const files = await createTestPki(dir, { hosts: opts.host, days: opts.days, reuseCa: !!opts.reuseCa, clientName: opts.clientName });
      printResult(ctx.output, { dir, files }, () => `Test PKI written to ${dir}:\n${files.map((f) => `  ${f}`).join('\n')}`);
    });
}
