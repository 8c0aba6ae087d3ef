// Builds the dashboard page into dist/web: one minified script and one style
// sheet (esbuild), and index.html. Prints the sizes, raw and gzipped, and
// keeps them in dist/web/size.json (docs/dashboard.md quotes them).
import { build } from 'esbuild';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';

const out = 'dist/web';
await mkdir(`${out}/assets`, { recursive: true });
await build({
  entryPoints: { app: 'web/src/app.ts' },
  bundle: true,
  minify: true,
  sourcemap: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022', 'chrome110', 'firefox115'],
  outdir: `${out}/assets`,
  logLevel: 'warning',
});
await copyFile('web/index.html', `${out}/index.html`);
const size = {};
for (const f of ['index.html', 'assets/app.js', 'assets/app.css']) {
  const b = await readFile(`${out}/${f}`);
  size[f] = { bytes: b.length, gzip: gzipSync(b).length };
}
await writeFile(`${out}/size.json`, `${JSON.stringify(size, null, 2)}\n`);
const total = Object.values(size).reduce((a, s) => ({ bytes: a.bytes + s.bytes, gzip: a.gzip + s.gzip }), { bytes: 0, gzip: 0 });
console.log(`dashboard: ${(total.bytes / 1024).toFixed(1)} KiB (${(total.gzip / 1024).toFixed(1)} KiB gzipped) in ${out}`);
