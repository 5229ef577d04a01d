#!/usr/bin/env bash
# The whole test suite: unit tests and the end-to-end tests that drive real
# runc and crun against the real kernel, each inside throwaway network
# namespaces. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: the tests create network namespaces" >&2; exit 1; }
./scripts/install-deps.sh
cargo build --workspace --bins
cargo fmt --all --check
cargo test --workspace -- --test-threads "${OCINET_TEST_THREADS:-4}"
# The hook as shipped (scripts/build.sh links it statically against musl):
# the end-to-end tests of runc and crun, teardown's paths, the kill points,
# the CNI front end, podman and an overlay network through etcd once more
# with that binary. It sits in a directory of its own beside links to the
# other binaries, which the hook (the resolver, the port proxy) and the
# tests (the exporter) look for next to it.
MUSL=x86_64-unknown-linux-musl
CC_x86_64_unknown_linux_musl=${CC_x86_64_unknown_linux_musl:-musl-gcc} \
    cargo build --locked --target "$MUSL" -p ocinet --bin ocinet
if readelf -lW "target/$MUSL/debug/ocinet" | grep "program interpreter" >/dev/null; then
    echo "target/$MUSL/debug/ocinet is not linked statically" >&2
    exit 1
fi
SHIPPED=$PWD/target/musl-hook
rm -rf "$SHIPPED"
mkdir -p "$SHIPPED"
install -m 0755 "target/$MUSL/debug/ocinet" "$SHIPPED/ocinet"
for b in ocinet-dns ocinet-proxy ocinet-exporter; do
    ln -s "../debug/$b" "$SHIPPED/$b"
done
OCINET_BIN="$SHIPPED/ocinet" cargo test -p ocinet-integration \
    --test bridge --test teardown --test crash --test cni --test podman --test overlay \
    -- --test-threads "${OCINET_TEST_THREADS:-4}"
# A short fuzz run of each parser over the committed corpus.
./scripts/fuzz.sh "${OCINET_FUZZ_SECONDS:-30}"
