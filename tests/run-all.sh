#!/usr/bin/env bash
# The whole test suite and the gates, as CI runs it. The last lines are
# cargo test's own summary.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/setup.sh

step() { printf '\n=== %s\n' "$*" >&2; }

step "format"
cargo fmt --all --check
step "clippy"
cargo clippy --workspace --all-targets -- -D warnings
step "benches compile"
cargo bench --workspace --no-run -q
step "fuzz smoke run (each target ${FUZZ_SECS:-15} s)"
bash tests/fuzz-smoke.sh
step "tests"
cargo test --workspace --no-fail-fast
