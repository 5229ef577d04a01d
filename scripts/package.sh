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
    PROFILE="$PROFILE" ./scripts/build.sh
fi

GEN=$DIR/package
rm -rf "$GEN"
"$DIR/xtask" gen "$GEN" >&2
# Debian wants man pages compressed at -9, without a timestamp (-n), so two
# builds of one tree give the same bytes.
gzip -9nf "$GEN"/man/*.1
# The overrides, and those of what this build's binaries are: an override of
# what the package does not contain would itself be reported.
cp packaging/lintian-overrides "$GEN/lintian-overrides"
if ! readelf -lW "$DIR/ocinet" | grep "program interpreter" >/dev/null; then
    cat >>"$GEN/lintian-overrides" <<'OVERRIDES'
# The hook is linked as a static PIE (scripts/build.sh: it starts ~0.8 ms
# sooner, and runc and crun start it twice per container), which lintian
# takes for a shared library without its libraries.
ocinet: shared-library-lacks-prerequisites [usr/bin/ocinet]
OVERRIDES
fi
# The release build's code compares a string four bytes at a time, and one
# immediate operand reads as the word "ment".
if strings -n 4 "$DIR/ocinet" | grep -x ment >/dev/null; then
    cat >>"$GEN/lintian-overrides" <<'OVERRIDES'
# Not text: an immediate operand of the machine code ("ele" + "ment").
ocinet: spelling-error-in-binary ment meant [usr/bin/ocinet]
OVERRIDES
fi

mkdir -p "$OUT"
args=(--package ocinet --no-build --profile "$PROFILE" --output "$OUT" --locked)
# Strip what the dev profile leaves (its symbols are most of its size).
args+=(--strip)
[ -n "${DEB_VERSION:-}" ] && args+=(--deb-version "$DEB_VERSION")
# The tests: gzip at a low level rather than xz (seconds, not tens of them).
[ -n "${FAST:-}" ] && args+=(--fast)
cargo deb "${args[@]}"
