#!/usr/bin/env bash
# Builds ocinet's binaries, with the hook linked statically against musl.
#
#   ./scripts/build.sh                  # release profile (fat LTO): target/release/
#   PROFILE=dev ./scripts/build.sh      # the debug build: target/debug/
#   HOOK_LIBC=glibc ./scripts/build.sh  # the hook a static PIE with glibc
#   STATIC_HOOK=0 ./scripts/build.sh    # the hook linked dynamically, as `cargo build` does
#
# Why the hook is static: runc and crun start `ocinet` twice per container
# and wait for it, and most of a hook's time is starting a process. Linked
# statically (still position-independent, so still under ASLR) it skips
# loading libgcc_s, libm and libc: 0.35 ms of every start on this kind of
# machine. Why musl (the x86_64-unknown-linux-musl target, its libc
# bundled by Rust): glibc's start probes the CPU's caches with 68 CPUID
# instructions, which a VM traps, 0.46 ms of every start here; musl's makes
# none. As runc and crun run it, a setup takes 2.4-2.7 ms instead of
# 2.6-3.3 and a teardown 1.4-1.6 instead of 1.8-2.5 (BENCHMARKS.md, "Where
# the time goes", sixth session). musl's name lookup reads /etc/hosts and DNS
# (no nsswitch modules), which is all the hook looks names up for: a
# cluster store's address. The daemons (resolver, exporter, port proxy)
# start once and stay dynamic, with glibc. The price: a libc fix reaches
# the hook only with a rebuild, as a fix in any crate it uses does
# (`STATIC_HOOK=0` for a hook that follows the system's libc). musl-gcc
# (Debian's musl-tools) compiles the C of the TLS crate the cluster store's
# client uses (ring); scripts/install-deps.sh installs it and the target.
# The hook's binary is installed where cargo puts the others
# (target/<profile>/ocinet), replacing the file, never writing through
# cargo's hard link to its own copy.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${PROFILE:-release}
case "$PROFILE" in
dev) DIR=debug ;;
*) DIR=$PROFILE ;;
esac
MUSL=x86_64-unknown-linux-musl

cargo build --profile "$PROFILE" --locked --workspace --exclude ocinet --bins >&2
if [ "${STATIC_HOOK:-1}" = 0 ]; then
    cargo build --profile "$PROFILE" --locked -p ocinet --bins >&2
elif [ "${HOOK_LIBC:-musl}" = glibc ]; then
    # The target feature goes to the hook's final compile only (`cargo
    # rustc`): given to every crate (RUSTFLAGS), it would break the
    # proc-macro crates, which must be shared objects.
    cargo rustc --profile "$PROFILE" --locked -p ocinet --bin ocinet -- -C target-feature=+crt-static >&2
elif [ "${HOOK_LIBC:-musl}" = musl ]; then
    if ! rustup target list --installed 2>/dev/null | grep -qx "$MUSL"; then
        echo "the Rust target $MUSL is missing: scripts/install-deps.sh adds it (or HOOK_LIBC=glibc)" >&2
        exit 1
    fi
    command -v musl-gcc >/dev/null || {
        echo "musl-gcc is missing: scripts/install-deps.sh installs musl-tools (or HOOK_LIBC=glibc)" >&2
        exit 1
    }
    export CC_x86_64_unknown_linux_musl=${CC_x86_64_unknown_linux_musl:-musl-gcc}
    cargo build --profile "$PROFILE" --locked --target "$MUSL" -p ocinet --bin ocinet >&2
    install -m 0755 "target/$MUSL/$DIR/ocinet" "target/$DIR/ocinet"
else
    echo "HOOK_LIBC must be musl or glibc, not '${HOOK_LIBC}'" >&2
    exit 1
fi
