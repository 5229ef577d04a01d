#!/usr/bin/env bash
# Installs what ocinet's demo and tests need on a fresh Debian 12 machine
# (Rust is expected to be there already). Idempotent: skips apt when every
# package is present.
set -euo pipefail

# containernetworking-plugins and iptables: the CNI tests chain Debian's reference
# plugins (tuning, portmap; portmap drives iptables) after ocinet; containerd:
# the CNI test with `ctr run --cni`; etcd-server and etcd-client: the overlay
# tests run a real etcd in their underlay namespace; protobuf-compiler and
# libprotobuf-dev: the etcd-client crate compiles etcd's gRPC API at build time;
# lintian: the package test checks the .deb (scripts/package.sh); logrotate:
# it rotates the hook's log with the packaged rule; musl-tools: musl-gcc
# compiles the C in the hook's dependencies for its musl build
# (scripts/build.sh).
PACKAGES=(runc crun podman nftables conntrack iputils-ping busybox-static iperf3 prometheus curl openssl python3 containernetworking-plugins iptables containerd etcd-server etcd-client protobuf-compiler libprotobuf-dev lintian logrotate musl-tools)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's prometheus package starts a server on install; the tests start
# their own on loopback, so keep the packaged one from holding its port.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus || true
fi
# Debian's etcd-server starts a server on install where systemd runs; the
# overlay tests start their own in a namespace of theirs.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
    systemctl stop etcd || true
fi
for tool in runc crun nft busybox conntrack prometheus promtool curl openssl python3 cargo iptables containerd ctr etcd etcdctl protoc musl-gcc; do
    command -v "$tool" >/dev/null || { echo "missing $tool after install" >&2; exit 1; }
done
# cargo-deb builds the Debian package (scripts/package.sh, the package test);
# pinned, so a later release's refusal of the dev profile the test packages
# cannot break CI. About a minute to build on 2 cores, once.
if ! cargo deb --version 2>/dev/null | grep -q '^cargo-deb 3\.8\.0'; then
    cargo install cargo-deb --version 3.8.0 --locked
fi
# The hook is built for musl (scripts/build.sh says why).
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
    rustup target add x86_64-unknown-linux-musl
fi
[ -x /usr/lib/cni/tuning ] && [ -x /usr/lib/cni/portmap ] || { echo "missing the CNI reference plugins after install" >&2; exit 1; }
