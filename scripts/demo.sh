#!/usr/bin/env bash
# Ferry's main job, for now on one host: start ferryd, define and start the
# test guest (rewriting 50 MiB/s of its memory), watch its heartbeat, stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null

# The same programs as `npx ferry` / `npx ferryd`, called directly so that
# each command starts fast and ferryd's pid is its own (npx wraps it).
ferry() { echo "\$ ferry $*" >&2; node dist/cli/main.js "$@"; }

work=$(mktemp -d /tmp/ferry-demo.XXXXXX)
ferryd_pid=""
cleanup() {
  node dist/cli/main.js destroy demo-guest >/dev/null 2>&1 || true
  [ -n "$ferryd_pid" ] && kill "$ferryd_pid" 2>/dev/null && wait "$ferryd_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

export FERRY_DEFAULT_URI="ferry+unix:///system?socket=$work/run/ferryd.sock"
echo "== starting ferryd (state $work/state, run $work/run)"
node dist/daemon/main.js --state-dir "$work/state" --run-dir "$work/run" --host-name demo-host 2>"$work/ferryd.log" &
ferryd_pid=$!
for _ in $(seq 100); do [ -S "$work/run/ferryd.sock" ] && break; sleep 0.1; done
ferry sysinfo

sed "s|KERNEL|$PWD/guest/build/guest.elf|" examples/test-guest.xml >"$work/demo-guest.xml"
echo "== ferry define / start"
ferry define "$work/demo-guest.xml"
ferry start demo-guest
ferry list --all

echo "== heartbeat on the guest's serial console (ferry console --log demo-guest)"
for _ in 1 2 3 4 5; do
  sleep 1
  node dist/cli/main.js console --log --tail 4096 demo-guest | grep '^HB' | tail -1
done
ferry dominfo demo-guest

echo "== ferry suspend / resume"
ferry suspend demo-guest
ferry domstate --reason demo-guest
ferry resume demo-guest
ferry domstate --reason demo-guest

echo "== ferry destroy / undefine"
ferry destroy demo-guest
ferry undefine demo-guest
ferry list --all
echo "== done"
