#!/usr/bin/env bash
# Installs everything calico-rs needs to build, test and run on Debian 12.
# Idempotent: packages already present are skipped; safe to run repeatedly.
set -euo pipefail

# Debian packages the build, the tests and the lab use (real peers included).
PACKAGES=(
  build-essential pkg-config protobuf-compiler libprotobuf-dev
  iproute2 nftables iptables tcpdump conntrack busybox-static iperf3
  etcd-server etcd-client
  containernetworking-plugins
  containerd runc podman catatonit
  bird2 gobgpd frr
  openssl
  linux-image-amd64 qemu-system-x86
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Rust toolchain with rustfmt and clippy.
if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: no Rust toolchain found (install rustup's stable toolchain)" >&2
  exit 1
fi
if command -v rustup >/dev/null 2>&1; then
  for comp in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$comp" || rustup component add "$comp"
  done
fi
