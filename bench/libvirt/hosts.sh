#!/usr/bin/env bash
# Two libvirtd instances on one machine acting as two hosts, for the
# benchmarks that compare Ferry with libvirt (bench/compare.ts and others).
#
#   bash bench/libvirt/hosts.sh start   # install what is missing, start both
#   bash bench/libvirt/hosts.sh stop    # stop both (and their QEMUs), remove the namespaces
#
# FERRY_LIBVIRT_MIGRATE_TLS_DIR=DIR at start: both QEMU drivers use DIR for
# `virsh migrate --tls` (migrate_tls_x509_cert_dir, peers verified).
# FERRY_LIBVIRT_HOSTS=N at start and net (2 to 9, default 2): N hosts instead
# of two (bench/evacuation-scale.ts uses 4). With more than two, the hosts'
# links (still lvbI inside host I) plug into a bridge in a namespace of its
# own, lvb-sw; with two they stay one veth pair, as before. stop removes
# every host there is, whatever N.
#
# Each host is a network namespace (a veth pair: 10.203.0.1 and 10.203.0.2)
# plus a mount namespace in which /etc/libvirt, /run/libvirt,
# /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt are bind-mounted
# from a per-host directory. Each libvirtd has its own host_uuid (libvirt
# refuses to migrate to its own UUID), listens on plain TCP without
# authentication (benchmark only: the namespaces are not reachable from
# outside), and runs QEMU as root with no security driver, cgroups or
# namespaces. It runs under a child subreaper so that destroyed QEMUs are
# reaped at once.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
base="${FERRY_LIBVIRT_DIR:-/tmp/ferry-libvirt}"
addr() { echo "10.203.0.$1"; }
ns() { echo "lvb-h$1"; }
count="${FERRY_LIBVIRT_HOSTS:-2}"
if [[ ! "$count" =~ ^[2-9]$ ]]; then
  echo "FERRY_LIBVIRT_HOSTS must be a number from 2 to 9, not '$count'" >&2
  exit 2
fi

install() {
  local need=()
  command -v libvirtd >/dev/null || need+=(libvirt-daemon libvirt-daemon-driver-qemu)
  command -v virsh >/dev/null || need+=(libvirt-clients)
  if ((${#need[@]})); then
    echo "installing ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  # The QEMU driver will not load without this user, even when qemu.conf says root.
  getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
  getent passwd libvirt-qemu >/dev/null || useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
  if [[ ! -x "$base/subreaper" || "$here/subreaper.c" -nt "$base/subreaper" ]]; then
    mkdir -p "$base"
    gcc -O2 -Wall -o "$base/subreaper" "$here/subreaper.c"
  fi
}

net_up() {
  net_down
  local i
  for i in $(seq 1 "$count"); do ip netns add "$(ns "$i")"; done
  if ((count == 2)); then
    ip link add lvb1 netns "$(ns 1)" type veth peer name lvb2 netns "$(ns 2)"
  else
    ip netns add lvb-sw
    ip -n lvb-sw link add br0 type bridge
    ip -n lvb-sw link set br0 up
    for i in $(seq 1 "$count"); do
      ip link add "lvb$i" netns "$(ns "$i")" type veth peer name "lvb${i}s" netns lvb-sw
      ip -n lvb-sw link set "lvb${i}s" master br0
      ip -n lvb-sw link set "lvb${i}s" up
    done
  fi
  for i in $(seq 1 "$count"); do
    ip -n "$(ns "$i")" addr add "$(addr "$i")/24" dev "lvb$i"
    ip -n "$(ns "$i")" link set "lvb$i" up
    ip -n "$(ns "$i")" link set lo up
  done
}

# Every host namespace there is (up to 9) and the bridge's, whatever the count.
net_down() {
  local i
  for i in $(seq 1 9); do ip netns del "$(ns "$i")" 2>/dev/null || true; done
  ip netns del lvb-sw 2>/dev/null || true
}

host_dirs() {
  local i=$1 d="$base/h$1"
  mkdir -p "$d"/{etc,run,lib,cache,log}
  mkdir -p "$d/lib/qemu" "$d/lib/images" "$d/cache/qemu" "$d/log/qemu"
  cat >"$d/etc/libvirtd.conf" <<CONF
listen_tls = 0
listen_tcp = 1
listen_addr = "$(addr "$i")"
auth_tcp = "none"
auth_unix_rw = "none"
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
host_uuid = "00000000-0000-4000-8000-00000000000$i"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
max_clients = 64
CONF
  cat >"$d/etc/qemu.conf" <<CONF
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
stdio_handler = "file"
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
migration_address = "$(addr "$i")"
migration_host = "$(addr "$i")"
migration_port_min = 49152
migration_port_max = 49215
CONF
  # For `virsh migrate --tls`: QEMU's own TLS with the certificates in this
  # directory (QEMU's file names: ca-cert.pem, server-cert.pem, ...).
  if [[ -n "${FERRY_LIBVIRT_MIGRATE_TLS_DIR:-}" ]]; then
    cat >>"$d/etc/qemu.conf" <<CONF
migrate_tls_x509_cert_dir = "$FERRY_LIBVIRT_MIGRATE_TLS_DIR"
migrate_tls_x509_verify = 1
CONF
  fi
  # The QEMU driver reads these if present; keep the host's network config out.
  : >"$d/etc/libvirt.conf"
}

start_host() {
  local i=$1 d="$base/h$1"
  host_dirs "$i"
  # A private mount namespace inside the host's network namespace; libvirtd
  # then sees only this host's directories.
  mkdir -p /etc/libvirt /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt
  ip netns exec "$(ns "$i")" unshare --mount --propagation private bash -c "
    mount --bind '$d/etc' /etc/libvirt
    mount --bind '$d/run' /run/libvirt
    mount --bind '$d/lib' /var/lib/libvirt
    mount --bind '$d/cache' /var/cache/libvirt
    mount --bind '$d/log' /var/log/libvirt
    exec '$base/subreaper' libvirtd --listen -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid
  " >"$d/libvirtd.out" 2>&1 &
  echo $! >"$d/pid"
  for _ in $(seq 1 100); do
    if virsh -q -c "qemu+tcp://$(addr "$i")/system" version >/dev/null 2>&1; then return 0; fi
    # The client runs outside the namespace: reach it from inside.
    if ip netns exec "$(ns "$i")" virsh -q -c "qemu+tcp://$(addr "$i")/system" uri >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "libvirtd of host $i did not come up; see $d/libvirtd.out and $d/log/libvirtd.log" >&2
  cat "$d/libvirtd.out" >&2 || true
  return 1
}

stop_host() {
  local i=$1 d="$base/h$1"
  if [[ -f "$d/pid" ]]; then
    local pid
    pid=$(cat "$d/pid")
    # Destroy the guests first so that no QEMU outlives its libvirtd.
    for dom in $(ip netns exec "$(ns "$i")" virsh -q -c "qemu+tcp://$(addr "$i")/system" list --name 2>/dev/null || true); do
      ip netns exec "$(ns "$i")" virsh -q -c "qemu+tcp://$(addr "$i")/system" destroy "$dom" >/dev/null 2>&1 || true
    done
    pkill -TERM -P "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$d/pid"
  fi
}

case "${1:-}" in
  start)
    install
    "$0" stop >/dev/null 2>&1 || true
    # Every start is a fresh host: no domains defined by an earlier run.
    for i in $(seq 1 "$count"); do rm -rf "${base:?}/h$i"; done
    net_up
    for i in $(seq 1 "$count"); do start_host "$i"; done
    for i in $(seq 1 "$count"); do echo "host $i: qemu+tcp://$(addr "$i")/system (netns $(ns "$i"))"; done
    ;;
  net)
    # Only the network namespaces (benchmarks that leave libvirt out).
    "$0" stop >/dev/null 2>&1 || true
    net_up
    ;;
  stop)
    for i in $(seq 1 9); do stop_host "$i" || true; done
    net_down
    ;;
  *)
    echo "usage: $0 start|net|stop" >&2
    exit 2
    ;;
esac
