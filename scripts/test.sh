#!/usr/bin/env bash
# Runs every test: unit tests, then end-to-end tests with real ferryd and QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.json --noEmit
# Tests and benchmarks are type-checked too (vitest and tsx only strip types).
npx tsc -p tsconfig.test.json
npx tsc -p web/tsconfig.json
npx vitest run --project unit
npx vitest run --project e2e
