#!/usr/bin/env bash
# Installs what Ferry needs on a fresh Debian 12 machine (run as root):
# QEMU, the guest toolchain, npm packages; then builds the test guest and the code.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v qemu-system-x86_64 >/dev/null || need_apt+=(qemu-system-x86)
command -v qemu-img >/dev/null || need_apt+=(qemu-utils)
command -v make >/dev/null || need_apt+=(make)
command -v gcc >/dev/null || need_apt+=(gcc)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v sysctl >/dev/null || need_apt+=(procps)
command -v prlimit >/dev/null || need_apt+=(util-linux)
# Stock libvirt clients drive ferryd's libvirt protocol listener in the tests.
command -v virsh >/dev/null || need_apt+=(libvirt-clients)
/usr/bin/python3 -c 'import libvirt' 2>/dev/null || need_apt+=(python3-libvirt)
# The dashboard's browser tests drive Debian's Chromium; Prometheus scrapes ferryd in the metrics test.
command -v chromium >/dev/null || need_apt+=(chromium)
command -v prometheus >/dev/null || need_apt+=(prometheus)
# The test guest is a 32-bit kernel: gcc needs its 32-bit support.
echo 'int main(void){return 0;}' | gcc -m32 -x c -o /dev/null - 2>/dev/null || need_apt+=(gcc-multilib)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: these Debian packages are missing and installing them needs root: ${need_apt[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

make -s -C guest
# ferryd's native helper: the byte mover of tunnelled migrations (src/migration/tunnel.ts).
make -s -C native
npm run -s build
echo "setup: ready ($(qemu-system-x86_64 --version | head -1))"
