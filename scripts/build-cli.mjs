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
import { chmod, rm, stat, writeFile } from 'node:fs/promises';

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

const out = 'dist/cli';
await rm(out, { recursive: true, force: true });
await build({
  entryPoints: { main: 'src/cli/main.ts' },
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  packages: 'bundle',
  external: ['@xmldom/xmldom'],
  minify: true,
  sourcemap: true,
  outdir: out,
  plugins: [lazyChildProcessForCommander],
  logLevel: 'warning',
});
await writeFile(`${out}/package.json`, '{ "type": "commonjs" }\n');
await chmod(`${out}/main.js`, 0o755);
const { size } = await stat(`${out}/main.js`);
console.log(`cli: ${out}/main.js ${(size / 1024).toFixed(1)} KiB`);
