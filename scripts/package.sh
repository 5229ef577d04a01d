#!/usr/bin/env bash
# Builds ocinet's Debian package: every binary, the man pages and shell
# completions (generated from the clap definitions by the xtask crate), then
# `cargo deb`. Prints the path of the .deb.
#
#   ./scripts/package.sh                      # release profile (fat LTO), target/debian/
#   PROFILE=dev ./scripts/package.sh          # the debug build (what the tests package)
#   OUT=DIR DEB_VERSION=0.1.0~rc1 ./scripts/package.sh
#   NO_BUILD=1 ./scripts/package.sh           # package what is built already
#   FAST=1 ...                                # quicker compression, a larger .deb
#
# Needs cargo-deb (`cargo install cargo-deb --locked`, which
# scripts/install-deps.sh does) and, for the package's own checks, lintian.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${PROFILE:-release}
OUT=${OUT:-target/debian}
# cargo names the dev profile's directory `debug`.
case "$PROFILE" in
dev) DIR=target/debug ;;
*) DIR=target/$PROFILE ;;
esac

if [ -z "${NO_BUILD:-}" ]; then
    cargo build --profile "$PROFILE" --locked \
        -p ocinet -p ocinet-dns -p ocinet-proxy -p ocinet-exporter -p xtask --bins >&2
fi

GEN=$DIR/package
rm -rf "$GEN"
"$DIR/xtask" gen "$GEN" >&2
# Debian wants man pages compressed at -9, without a timestamp (-n), so two
# builds of one tree give the same bytes.
gzip -9nf "$GEN"/man/*.1

mkdir -p "$OUT"
args=(--package ocinet --no-build --profile "$PROFILE" --output "$OUT" --locked)
# Strip what the dev profile leaves (its symbols are most of its size).
args+=(--strip)
[ -n "${DEB_VERSION:-}" ] && args+=(--deb-version "$DEB_VERSION")
# The tests: gzip at a low level rather than xz (seconds, not tens of them).
[ -n "${FAST:-}" ] && args+=(--fast)
cargo deb "${args[@]}"
