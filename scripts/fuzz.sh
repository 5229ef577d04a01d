#!/usr/bin/env bash
# Fuzz the parsers of untrusted input (port specs, annotations, the OCI
# state and state files, the resolver's queries) for SECONDS each (default 30), starting from the
# committed corpus in fuzz/corpus. New inputs go to a scratch directory, so
# a short run never dirties the tree; `cargo fuzz cmin` them into the corpus
# by hand after a long run.
#
# cargo fuzz needs nightly-only rustc flags; this machine has stable only,
# so RUSTC_BOOTSTRAP=1 lets stable take them. No sanitizer (-s none): the
# parsers are safe Rust, and what is hunted is panics and broken
# invariants (the targets assert round trips and validity).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-30}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in port_spec annotations state_file dns_query cluster_value; do
  mkdir -p "$scratch/$t"
  echo "fuzz $t for ${secs}s"
  cargo fuzz run -s none "$t" "$scratch/$t" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=1 2>&1 | grep -E "^(Done|stat::number_of_executed_units)|panicked|ERROR|SUMMARY|Test unit written" || true
  # A crash leaves an artifact and a non-zero exit: the pipeline above
  # hides the exit status, so look for the artifact.
  if compgen -G "artifacts/$t/*" >/dev/null; then
    echo "fuzz $t found a failing input:" artifacts/"$t"/* >&2
    exit 1
  fi
done
