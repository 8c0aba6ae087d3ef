/**
 * xdr-codec: Ferry's own XDR codec (src/libvirt/xdr.ts) against
 * `@stellar/js-xdr`, the maintained general XDR library the issue names,
 * on two real replies of libvirt's protocol: CONNECT_LIST_ALL_DOMAINS with
 * 100 domains (strings, fixed opaque, ints, a list) and DOMAIN_GET_JOB_STATS
 * with 20 typed parameters (the union). Both must produce the same bytes
 * (checked first). js-xdr is installed into a temporary directory for the
 * run only: it is not a dependency of Ferry.
 *
 *   npx tsx bench/xdr-codec.ts [--ops 20000] [--rounds 5]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROCEDURES } from '../src/libvirt/procedures.js';
import { decode, encode } from '../src/libvirt/xdr.js';
import type { TypedParam } from '../src/libvirt/wire-types.js';
import { argInt, markdownTable, median, onCleanup, rmTree, runMain, writeResults } from './lib.js';

const JS_XDR_VERSION = '3.1.2';
const OPS = argInt('ops', 20000);
const ROUNDS = argInt('rounds', 5);

/* eslint-disable @typescript-eslint/no-explicit-any */
runMain(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-xdr-'));
  onCleanup('js-xdr dir', () => rmTree(dir));
  execFileSync('npm', ['install', '--prefix', dir, '--no-audit', '--no-fund', '--loglevel=error', `@stellar/js-xdr@${JS_XDR_VERSION}`], { stdio: 'inherit' });
  const js: any = createRequire(join(dir, 'package.json'))('@stellar/js-xdr');
  const XDR = js.config ? js : js.default;
  const lx: any = XDR.config((x: any) => {
    x.struct('Dom', [['name', x.string(1048576)], ['uuid', x.opaque(16)], ['id', x.int()]]);
    x.struct('ListRet', [['domains', x.varArray(x.lookup('Dom'), 16384)], ['ret', x.uint()]]);
    x.union('TpVal', { switchOn: x.int(), switches: [[1, 'i'], [2, 'ui'], [3, 'l'], [4, 'ul'], [5, 'd'], [6, 'b'], [7, 's']], arms: { i: x.int(), ui: x.uint(), l: x.hyper(), ul: x.uhyper(), d: x.double(), b: x.int(), s: x.string(1048576) } });
    x.struct('Tp', [['field', x.string(80)], ['value', x.lookup('TpVal')]]);
    x.struct('StatsRet', [['type', x.int()], ['params', x.varArray(x.lookup('Tp'), 64)]]);
  });

  const doms = Array.from({ length: 100 }, (_, i) => ({ name: `guest-${i}`, uuid: Buffer.alloc(16, i), id: i % 2 ? i : -1 }));
  const stats: TypedParam[] = Array.from({ length: 20 }, (_, i) => ({ field: `memory_field_${i}`, value: { type: 'ullong', value: 1234567890 + i } }));
  const list = PROCEDURES.CONNECT_LIST_ALL_DOMAINS.ret;
  const jobStats = PROCEDURES.DOMAIN_GET_JOB_STATS.ret;
  const jsList = () => new lx.ListRet({ domains: doms.map((d) => new lx.Dom(d)), ret: 100 });
  const jsStats = () => new lx.StatsRet({ type: 2, params: stats.map((p) => new lx.Tp({ field: p.field, value: new lx.TpVal(4, XDR.UnsignedHyper.fromString(String(p.value.value))) })) });

  const listBytes = encode(list, { domains: doms, ret: 100 });
  const statsBytes = encode(jobStats, { type: 2, params: stats });
  if (!listBytes.equals(jsList().toXDR()) || !statsBytes.equals(jsStats().toXDR())) throw new Error('the two codecs disagree on the bytes');

  const cases: Record<string, () => unknown> = {
    'list-all-domains (100) encode, ours': () => encode(list, { domains: doms, ret: 100 }),
    'list-all-domains (100) encode, js-xdr': () => jsList().toXDR(),
    'list-all-domains (100) decode, ours': () => decode(list, listBytes),
    'list-all-domains (100) decode, js-xdr': () => lx.ListRet.fromXDR(listBytes),
    'job-stats (20 typed params) encode, ours': () => encode(jobStats, { type: 2, params: stats }),
    'job-stats (20 typed params) encode, js-xdr': () => jsStats().toXDR(),
    'job-stats (20 typed params) decode, ours': () => decode(jobStats, statsBytes),
    'job-stats (20 typed params) decode, js-xdr': () => lx.StatsRet.fromXDR(statsBytes),
  };
  const us: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [k, fn] of Object.entries(cases)) {
      for (let i = 0; i < 500; i++) fn();
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < OPS; i++) fn();
      us[k]!.push(Number(process.hrtime.bigint() - t0) / 1000 / OPS);
    }
  }
  const rows = Object.entries(us).map(([k, xs]) => [k, median(xs).toFixed(2), `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`]);
  console.log(markdownTable(['case', 'µs per op (median)', 'range over rounds'], rows));
  console.log(writeResults('xdr-codec', { jsXdrVersion: JS_XDR_VERSION, ops: OPS, rounds: ROUNDS, us }));
});
