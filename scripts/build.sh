#!/usr/bin/env bash
# Builds ocinet's binaries, with the hook linked as a static PIE.
#
#   ./scripts/build.sh                  # release profile (fat LTO): target/release/
#   PROFILE=dev ./scripts/build.sh      # the debug build: target/debug/
#   STATIC_HOOK=0 ./scripts/build.sh    # the hook linked dynamically, as `cargo build` does
#
# Why the hook is static: runc and crun start `ocinet` twice per container
# and wait for it, and most of a hook's time is starting a process. Linked
# statically (still position-independent, so still under ASLR) it skips
# loading libgcc_s, libm and libc and libgcc_s's CPU probe: 0.35 ms of every
# start and ~0.6 ms of every setup and teardown on this kind of machine
# (BENCHMARKS.md, "Where the time goes"). glibc's static name lookup reads
# /etc/hosts and DNS itself (`hosts: files dns`; a module such as
# libnss_resolve is not loaded), which is all the hook looks names up for:
# a cluster store's address. The daemons (resolver, exporter, port proxy)
# start once and stay dynamic. The price: a glibc fix reaches the hook only
# with a rebuild, as a fix in any crate it uses does (`STATIC_HOOK=0` for a
# hook that follows the system's libc). The target feature goes to the hook's final
# compile only (`cargo rustc`): given to every crate (RUSTFLAGS), it would
# break the proc-macro crates, which must be shared objects.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${PROFILE:-release}
cargo build --profile "$PROFILE" --locked --workspace --exclude ocinet --bins >&2
if [ "${STATIC_HOOK:-1}" = 0 ]; then
    cargo build --profile "$PROFILE" --locked -p ocinet --bins >&2
else
    cargo rustc --profile "$PROFILE" --locked -p ocinet --bin ocinet -- -C target-feature=+crt-static >&2
fi
