#!/usr/bin/env bash
# The whole comparison, Ferry against raw QEMU and libvirt 9.0, in one
# command from a fresh clone (as root: network namespaces, apt-get):
#
#   bash bench/run-all.sh            # about 90 minutes on 2 cores
#   bash bench/run-all.sh --quick    # one run of each, 257 MiB only (Scale: every size): about 18 minutes
#
# It installs what is missing (scripts/setup.sh: QEMU, the guest, npm
# packages, the build; bench/libvirt/hosts.sh: libvirt), then runs
#   bench/compare.ts          live migration: raw QEMU, Ferry, libvirt, every mode
#   bench/compare.ts --tools ferry-virsh,libvirt,ferry --modes p2p --verbose-virsh
#                             `virsh migrate --live --p2p --verbose` against two ferryds
#                             (their libvirt-protocol listeners) and against two libvirtds
#   bench/storage-compare.ts  storage copy: raw NBD mirror, Ferry, libvirt
#   bench/list-compare.ts     `ferry list` and `virsh list --all` against ferryd, against
#                             `virsh list --all` against libvirtd, 100 guests; ferryd RSS
# and the targets of issue 17 ("Close to the floor"):
#   bench/profile-tunnel.ts   the tunnel's three byte movers (FERRY_TUNNEL_RELAY=splice,
#                             readwrite, node): throughput against direct, CPU per byte
#                             against libvirtd's
#   bench/compare.ts          257 MiB + 4 KiB, p2p and tunnelled, idle and writing: the fixed
#                             cost over raw QEMU step by step, tunnelled downtime against direct
#   bench/cli-start.ts        `ferry --version`, `ferry list` against `node -e 0`
#   and its section "Scale" (issue 17, "Scale with the work"):
#   bench/compare.ts --tools raw,ferry --sizes 257M+4K,1G+4K,4G+4K[,8G+4K] --out compare-scale
#                             scale with guest size: the ratio to raw QEMU and ferryd's RSS
#                             per size (8G+4K where the machine has 20 GiB or more)
#   bench/concurrent.ts       16 migrations at once (and 1), p2p and tunnelled: batch time,
#                             both ferryds' RSS before / peak / after, every guest checked
# and writes everything they print to bench/results/run-all-DATE.md (their
# JSON goes next to it). docs/performance.md explains the figures.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[[ "${1:-}" == "--quick" ]] && quick=1

bash scripts/setup.sh
# CPU times of the CLI processes come from GNU time when it is there.
command -v /usr/bin/time >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends time >/dev/null || true; }
# Installs libvirt when missing; each benchmark starts and stops the hosts itself.
bash bench/libvirt/hosts.sh start
bash bench/libvirt/hosts.sh stop

mkdir -p bench/results
out="bench/results/run-all-$(date -u +%Y%m%d-%H%M%S).md"
if ((quick)); then
  compare=(--runs 1 --sizes 257M)
  virsh=(--runs 1 --rates 0)
  storage=(--runs 1)
  list=(--runs 5)
  floor=(--runs 3)
  cli=(--runs 20)
  scale=(--runs 1)
  concurrent=(--runs 1)
else
  compare=()
  virsh=(--runs 5)
  storage=()
  list=()
  floor=(--runs 7)
  cli=(--runs 20)
  scale=(--runs 3)
  concurrent=(--runs 1)
fi
# Two QEMUs of 8 GiB (each touching about 3 GiB) fit a machine of 20 GiB or more.
scale_sizes=257M+4K,1G+4K,4G+4K
(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) >= 20 * 1024 * 1024)) && scale_sizes+=,8G+4K

{
  echo "# Ferry benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo
  echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(qemu-system-x86_64 --version | head -1), $(libvirtd --version), Node $(node --version), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "## Live migration: raw QEMU, Ferry, libvirt (bench/compare.ts)"
  echo
  npx tsx bench/compare.ts "${compare[@]}"
  echo
  echo "## virsh against ferryd and against libvirtd (bench/compare.ts --tools ferry-virsh,libvirt,ferry)"
  echo
  npx tsx bench/compare.ts --tools ferry-virsh,libvirt,ferry --modes p2p --sizes 257M --rates 0,100 --verbose-virsh --out compare-virsh "${virsh[@]}"
  echo
  echo "## Storage copy (bench/storage-compare.ts)"
  echo
  npx tsx bench/storage-compare.ts --contenders raw,ferry,ferry-tunnelled,libvirt "${storage[@]}"
  echo
  echo "## Listing 100 guests (bench/list-compare.ts)"
  echo
  npx tsx bench/list-compare.ts "${list[@]}"
  echo
  echo "## Close to the floor (issue 17)"
  echo
  echo "### The tunnel's byte movers (bench/profile-tunnel.ts)"
  echo
  for copy in splice readwrite node; do
    npx tsx bench/profile-tunnel.ts --tools ferry,libvirt --modes tunnelled,p2p --tag "$copy" --ferryd-env "FERRY_TUNNEL_RELAY=$copy" "${floor[@]}"
    echo
  done
  echo "### Fixed cost over raw QEMU, tunnelled downtime (bench/compare.ts, 257 MiB + 4 KiB)"
  echo
  npx tsx bench/compare.ts --tools raw,ferry --modes p2p,tunnelled --sizes 257M+4K --rates 0,100 --out compare-floor "${floor[@]}"
  echo
  echo "### CLI start (bench/cli-start.ts)"
  echo
  npx tsx bench/cli-start.ts "${cli[@]}"
  echo
  echo "## Scale"
  echo
  echo "### Guest size: raw QEMU and Ferry, idle and with a writer (bench/compare.ts --sizes $scale_sizes)"
  echo
  npx tsx bench/compare.ts --tools raw,ferry --modes p2p,tunnelled --sizes "$scale_sizes" --rates 0,100 --out compare-scale "${scale[@]}"
  echo
  echo "### 16 migrations at once (bench/concurrent.ts)"
  echo
  npx tsx bench/concurrent.ts --guests 16 --modes p2p,tunnelled "${concurrent[@]}"
} | tee "$out"
echo "written: $out" >&2
