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
# A short fuzz run of each parser over the committed corpus.
./scripts/fuzz.sh "${OCINET_FUZZ_SECONDS:-30}"
