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
# The hook as shipped (scripts/build.sh links it as a static PIE: its own
# copy of glibc, name lookups included): the end-to-end tests of runc and
# crun, teardown's paths, the kill points, the CNI front end, podman and an
# overlay network through etcd once more with that binary.
cargo rustc --locked -p ocinet --bin ocinet -- -C target-feature=+crt-static
if readelf -lW target/debug/ocinet | grep "program interpreter" >/dev/null; then
    echo "target/debug/ocinet is not linked statically" >&2
    exit 1
fi
OCINET_BIN="$PWD/target/debug/ocinet" cargo test -p ocinet-integration \
    --test bridge --test teardown --test crash --test cni --test podman --test overlay \
    -- --test-threads "${OCINET_TEST_THREADS:-4}"
# A short fuzz run of each parser over the committed corpus.
./scripts/fuzz.sh "${OCINET_FUZZ_SECONDS:-30}"
