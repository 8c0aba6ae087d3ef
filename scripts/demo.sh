#!/usr/bin/env bash
# Ferry's main job, for now on one host: start ferryd, define and start the
# test guest (rewriting 50 MiB/s of its memory), watch its heartbeat, stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null

work=$(mktemp -d /tmp/ferry-demo.XXXXXX)
ferryd_pid=""
cleanup() {
  npx ferry destroy demo-guest >/dev/null 2>&1 || true
  [ -n "$ferryd_pid" ] && kill "$ferryd_pid" 2>/dev/null && wait "$ferryd_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

export FERRY_DEFAULT_URI="ferry+unix:///system?socket=$work/run/ferryd.sock"
echo "== starting ferryd (state $work/state, run $work/run)"
npx ferryd --state-dir "$work/state" --run-dir "$work/run" --host-name demo-host 2>"$work/ferryd.log" &
ferryd_pid=$!
for _ in $(seq 100); do [ -S "$work/run/ferryd.sock" ] && break; sleep 0.1; done
npx ferry sysinfo

sed "s|KERNEL|$PWD/guest/build/guest.elf|" examples/test-guest.xml >"$work/demo-guest.xml"
echo "== ferry define / start"
npx ferry define "$work/demo-guest.xml"
npx ferry start demo-guest
npx ferry list --all

echo "== heartbeat on the guest's serial console (ferry console --log demo-guest)"
for _ in 1 2 3 4 5; do
  sleep 1
  npx ferry console --log --tail 4096 demo-guest | grep '^HB' | tail -1
done
npx ferry dominfo demo-guest

echo "== ferry suspend / resume"
npx ferry suspend demo-guest
npx ferry domstate --reason demo-guest
npx ferry resume demo-guest
npx ferry domstate --reason demo-guest

echo "== ferry destroy / undefine"
npx ferry destroy demo-guest
npx ferry undefine demo-guest
npx ferry list --all
echo "== done"
