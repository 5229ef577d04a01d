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
# The hook as shipped, built by scripts/build.sh itself (statically
# against musl; installed as target/debug/ocinet, beside the resolver, the
# port proxy and the exporter it and the tests look for next to it): the
# end-to-end tests of runc and crun, teardown's paths, the kill points, the
# CNI front end, podman and an overlay network through etcd once more with
# that binary. (The next `cargo build` puts cargo's own build back.)
PROFILE=dev ./scripts/build.sh
if readelf -lW target/debug/ocinet | grep "program interpreter" >/dev/null; then
    echo "target/debug/ocinet is not linked statically" >&2
    exit 1
fi
OCINET_BIN="$PWD/target/debug/ocinet" cargo test -p ocinet-integration \
    --test bridge --test teardown --test crash --test cni --test podman --test overlay \
    -- --test-threads "${OCINET_TEST_THREADS:-4}"
# A short fuzz run of each parser over the committed corpus.
./scripts/fuzz.sh "${OCINET_FUZZ_SECONDS:-30}"
