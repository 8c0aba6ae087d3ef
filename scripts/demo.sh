#!/usr/bin/env bash
# Ferry's main job: two hosts (network namespaces joined by a veth link, each
# running its own ferryd with mutual TLS), the test guest rewriting 50 MiB/s
# of its memory on host A, a live peer-to-peer migration to host B with
# progress, and the proof: the heartbeat carries on at B from A's last count;
# then back to A with stock virsh, which drives ferryd over libvirt's protocol.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null

# The same programs as `npx ferry` / `npx ferryd`, called directly so each
# command starts fast and ferryd's pid is its own (npx wraps it).
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ferry() { printf '$ ferry %s\n' "$*" >&2; node dist/cli/main.js "$@"; }

work=$(mktemp -d /tmp/ferry-demo.XXXXXX)
ns_a=ferry-demo-a ns_b=ferry-demo-b
pids=()
cleanup() {
  node dist/cli/main.js -c "$uri_b" destroy demo-guest >/dev/null 2>&1 || true
  node dist/cli/main.js -c "$uri_a" destroy demo-guest >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$use_netns" = 1 ]; then ip netns del "$ns_a" 2>/dev/null || true; ip netns del "$ns_b" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

use_netns=0
if ip netns add "$ns_a" 2>/dev/null; then
  use_netns=1
  ip netns del "$ns_b" 2>/dev/null || true
  ip netns add "$ns_b"
  ip link add ferrydemoa netns "$ns_a" type veth peer name ferrydemob netns "$ns_b"
  ip -n "$ns_a" addr add 10.201.0.1/24 dev ferrydemoa; ip -n "$ns_a" link set ferrydemoa up; ip -n "$ns_a" link set lo up
  ip -n "$ns_b" addr add 10.201.0.2/24 dev ferrydemob; ip -n "$ns_b" link set ferrydemob up; ip -n "$ns_b" link set lo up
  addr_a=10.201.0.1 addr_b=10.201.0.2 port_a=16614 port_b=16614 lvport_a=16514 lvport_b=16514
  run_a=(ip netns exec "$ns_a") run_b=(ip netns exec "$ns_b")
else
  echo "(no network namespaces here: both hosts listen on 127.0.0.1)"
  addr_a=127.0.0.1 addr_b=127.0.0.1 port_a=16621 port_b=16622 lvport_a=16631 lvport_b=16632
  run_a=() run_b=()
fi
uri_a="ferry+unix:///system?socket=$work/a/run/ferryd.sock"
uri_b="ferry+unix:///system?socket=$work/b/run/ferryd.sock"

say "a test CA and certificates for mutual TLS between the hosts"
ferry tls-setup "$work/pki" --host "$addr_a" --host "$addr_b" >/dev/null
echo "written to $work/pki"

say "starting ferryd on host A ($addr_a) and host B ($addr_b)"
for h in a b; do
  if [ $h = a ]; then run=("${run_a[@]}") addr=$addr_a port=$port_a lvport=$lvport_a; else run=("${run_b[@]}") addr=$addr_b port=$port_b lvport=$lvport_b; fi
  "${run[@]}" node dist/daemon/main.js --state-dir "$work/$h/state" --run-dir "$work/$h/run" \
    --host-name "host-$h" --listen-tls "$addr:$port" --libvirt-listen-tls "$addr:$lvport" --tls-dir "$work/pki" 2>"$work/ferryd-$h.log" &
  pids+=($!)
done
for h in a b; do
  for _ in $(seq 200); do grep -q 'ready:' "$work/ferryd-$h.log" 2>/dev/null && break; sleep 0.1; done
  grep 'ready:' "$work/ferryd-$h.log" | sed 's/^[^ ]* /  /'
done

say "host A: define and start the test guest (256 MiB + 4 KiB, rewriting 50 MiB/s of a 128 MiB working set)"
sed "s|KERNEL|$PWD/guest/build/guest.elf|" examples/test-guest.xml >"$work/demo-guest.xml"
ferry -c "$uri_a" define "$work/demo-guest.xml"
ferry -c "$uri_a" start demo-guest
sleep 3
echo "heartbeat on host A: $(node dist/cli/main.js -c "$uri_a" console --log --tail 2048 demo-guest | grep '^HB' | tail -1)"

say "live peer-to-peer migration A -> B over mutual TLS"
ferry -c "$uri_a" migrate --live --p2p --persistent --undefinesource --verbose demo-guest "ferry+tls://$addr_b:$port_b/system"

say "afterwards"
echo "host A:"; node dist/cli/main.js -c "$uri_a" list --all
echo "host B:"; node dist/cli/main.js -c "$uri_b" list --all
sleep 2
last_a=$(grep -o '^HB [0-9]*' "$work/a/state/logs/demo-guest.serial.log" | tail -1 | cut -d' ' -f2)
first_b=$(grep -o '^HB [0-9]*' "$work/b/state/logs/demo-guest.serial.log" | head -1 | cut -d' ' -f2)
echo "last heartbeat on A:  HB $last_a"
echo "first heartbeat on B: HB $first_b"
echo "latest on B:          $(grep '^HB' "$work/b/state/logs/demo-guest.serial.log" | tail -1)"
corrupt=$(cat "$work/a/state/logs/demo-guest.serial.log" "$work/b/state/logs/demo-guest.serial.log" | grep -c CORRUPT || true)
say "job statistics (host B, ferry domjobinfo --completed)"
node dist/cli/main.js -c "$uri_b" domjobinfo --completed demo-guest
if [ -n "$last_a" ] && [ "$first_b" = $((last_a + 1)) ] && [ "$corrupt" = 0 ]; then
  say "OK: the guest's heartbeat continued at B with $first_b = $last_a + 1, memory check OK, one running copy"
else
  say "FAILED: heartbeat A=$last_a B=$first_b corrupt lines=$corrupt"
  exit 1
fi

say "and back B -> A with Debian's own virsh, over ferryd's libvirt-protocol TLS listeners"
lv_b="qemu+tls://$addr_b:$lvport_b/system?pkipath=$work/pki"
lv_a="qemu+tls://$addr_a:$lvport_a/system"
echo "virsh -c '$lv_b' migrate --live --p2p --persistent --undefinesource --verbose demo-guest $lv_a"
HOME="$work" "${run_b[@]}" virsh -c "$lv_b" migrate --live --p2p --persistent --undefinesource --verbose demo-guest "$lv_a"
echo "host A (virsh list --all):"; HOME="$work" "${run_a[@]}" virsh -c "qemu+tls://$addr_a:$lvport_a/system?pkipath=$work/pki" list --all
echo "host B (virsh list --all):"; HOME="$work" "${run_b[@]}" virsh -c "$lv_b" list --all
sleep 2
last_b=$(grep -o '^HB [0-9]*' "$work/b/state/logs/demo-guest.serial.log" | tail -1 | cut -d' ' -f2)
corrupt=$(cat "$work/a/state/logs/demo-guest.serial.log" "$work/b/state/logs/demo-guest.serial.log" | grep -c CORRUPT || true)
if grep -q "^HB $((last_b + 1))\b" "$work/a/state/logs/demo-guest.serial.log" && [ "$corrupt" = 0 ]; then
  say "OK: back on A, the heartbeat went on with HB $((last_b + 1)) after B's last HB $last_b, memory check OK"
else
  say "FAILED: after the virsh migration, A has no HB $((last_b + 1)) (B's last was $last_b) or corrupt lines=$corrupt"
  exit 1
fi
