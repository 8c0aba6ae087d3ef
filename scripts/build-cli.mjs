// Bundles the `ferry` CLI into one file, dist/cli/main.js (esbuild), in
// place of tsc's output under dist/cli/ (the CLI's modules are reached
// only through it). Start-up time is most of what a short command costs
// (docs/performance.md, "CLI start"), so:
// - CommonJS, one file: Node's ES module loader costs ~0.5 ms per module
//   file (resolve, compile, link) and ~1 ms to start; a CommonJS file costs
//   only its compile. dist/cli/package.json says "commonjs" for it;
// - every command's action, and its heavy modules, are initialized only
//   when the command runs (the sources use `await import()`; esbuild turns
//   that into a lazy initializer); main.ts answers `--version` before
//   commander loads; program.ts registers only the command named;
// - @xmldom/xmldom (a quarter of the bundle, needed by `vncdisplay` only)
//   stays outside, loaded from node_modules on first use;
// - commander gets a stand-in for node:child_process (below).
// A source map next to it: `node --enable-source-maps dist/cli/main.js`,
// or FERRY_DEBUG=1 for the stack of an internal error.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { chmod, copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Script } from 'node:vm';

/**
 * commander requires node:child_process at load, for executable
 * subcommands (`spawn`), which Ferry has none of; loading it (and node:net
 * under it) costs every command ~2 ms. commander gets a stand-in that
 * loads the real module on its first call.
 */
const lazyChildProcessForCommander = {
  name: 'lazy-child-process-for-commander',
  setup(b) {
    b.onResolve({ filter: /^node:child_process$/ }, (args) => (/[\\/]commander[\\/]/.test(args.importer) ? { path: 'lazy-child-process', namespace: 'ferry-lazy' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'ferry-lazy' }, () => ({
      contents: "module.exports = { spawn: (...args) => require('node:child_process').spawn(...args) };",
      loader: 'js',
    }));
  },
};

/**
 * `await import('node:tls')` and the like: a require() when the code runs
 * (the bundle is CommonJS, and code compiled by node:vm cannot import()).
 */
const dynamicBuiltinsAsRequire = {
  name: 'dynamic-builtins-as-require',
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) => (args.kind === 'dynamic-import' ? { path: args.path, namespace: 'ferry-require' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'ferry-require' }, (args) => ({ contents: `module.exports = require(${JSON.stringify(args.path)});`, loader: 'js' }));
  },
};

const out = 'dist/cli';
await rm(out, { recursive: true, force: true });
await build({
  entryPoints: { ferry: 'src/cli/main.ts' },
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  packages: 'bundle',
  external: ['@xmldom/xmldom'],
  minify: true,
  sourcemap: true,
  outdir: out,
  plugins: [lazyChildProcessForCommander, dynamicBuiltinsAsRequire],
  logLevel: 'warning',
});
const bundle = await readFile(`${out}/ferry.js`, 'utf8');
if (/\bimport\(/.test(bundle)) throw new Error(`${out}/ferry.js calls import(), which code compiled by node:vm cannot`);
await writeFile(`${out}/package.json`, '{ "type": "commonjs" }\n');
await copyFile('scripts/cli-loader.cjs', `${out}/main.js`);
await chmod(`${out}/main.js`, 0o755);
// The code cache: written by one `ferry list --all` (against no daemon:
// it fails to connect), so that the functions a command runs (commander's
// parsing, a registration, the client's connect) are in it compiled, not
// only the top level. Then checked as the loader will use it.
const warm = spawnSync(process.execPath, [`${out}/main.js`, '-c', `ferry+unix:///system?socket=${join(tmpdir(), `ferry-build-${process.pid}.sock`)}`, 'list', '--all'], {
  env: { ...process.env, FERRY_WRITE_CODE_CACHE: '1' },
  encoding: 'utf8',
  timeout: 30_000,
});
if (warm.status !== 1 || !warm.stderr.startsWith('error: cannot connect')) throw new Error(`the bundle does not run: ${warm.error ?? ''}${warm.stderr}`);
const cache = await readFile(`${out}/ferry.js.cache`);
const check = new Script(`(function (exports, require, module, __filename, __dirname) {\n${bundle}\n})`, { filename: `${out}/ferry.js`, lineOffset: -1, cachedData: cache });
if (check.cachedDataRejected) throw new Error(`V8 rejects the code cache just written (${out}/ferry.js.cache)`);
console.log(`cli: ${out}/ferry.js ${(bundle.length / 1024).toFixed(1)} KiB, its code cache ${(cache.length / 1024).toFixed(1)} KiB, entry ${out}/main.js`);
