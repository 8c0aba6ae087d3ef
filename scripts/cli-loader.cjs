#!/usr/bin/env node
// `ferry`'s entry point, installed as dist/cli/main.js by scripts/build-cli.mjs:
// runs the bundle dist/cli/ferry.js (CommonJS) compiled from the V8 code
// cache the build wrote next to it (dist/cli/ferry.js.cache), as Node 22's
// module.enableCompileCache() would: compiling the bundle from source
// costs every command ~5 ms (docs/performance.md, "CLI start"). V8 checks
// the cache against the source and the Node version, and compiles from
// source when it does not fit. FERRY_WRITE_CODE_CACHE=1 (the build)
// writes the cache when the process exits, with the functions that ran.
'use strict';
const { readFileSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { Script } = require('node:vm');

const file = join(__dirname, 'ferry.js');
const cacheFile = `${file}.cache`;
const writeCache = process.env.FERRY_WRITE_CODE_CACHE === '1';
let cachedData;
if (!writeCache) {
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    // No cache: compile from source.
  }
}
// The wrapper's first line is not counted (lineOffset), so positions in stacks match the bundle and its source map.
const script = new Script(`(function (exports, require, module, __filename, __dirname) {\n${readFileSync(file, 'utf8')}\n})`, { filename: file, lineOffset: -1, cachedData });
if (writeCache) process.once('exit', () => writeFileSync(cacheFile, script.createCachedData()));
script.runInThisContext().call(module.exports, exports, require, module, file, __dirname);
