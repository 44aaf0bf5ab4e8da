#!/usr/bin/env bash
# Runs every cargo-fuzz target briefly from the seed corpus; fails on any
# crash. cargo-fuzz needs -Z flags: RUSTC_BOOTSTRAP=1 allows them on the
# stable toolchain (no nightly is reachable from CI).
set -euo pipefail
cd "$(dirname "$0")/../sidecar/fuzz"
secs="${FUZZ_SECS:-15}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "[fuzz] installing cargo-fuzz" >&2
  cargo install -q --locked cargo-fuzz --version 0.13.2
fi
# Its own target dir: sanitizer flags would invalidate the main build cache.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/gossamer/fuzz-target}"
export RUSTC_BOOTSTRAP=1
cargo run -q --bin seed_corpus
for t in $(cargo fuzz list | grep -v "^seed_corpus$"); do
  echo "[fuzz] $t for ${secs}s" >&2
  cargo fuzz run "$t" --target-dir "$CARGO_TARGET_DIR" -- \
    -max_total_time="$secs" -print_final_stats=1 2>&1 | tail -n 4
done
