#!/usr/bin/env bash
# The demo: a local cluster of sidecar processes on loopback from the
# embedded default config; shows convergence, an entry written on one node
# appearing on all and its delete propagating (gRPC table API), crash
# detection and a leave.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/setup.sh
cargo build --release -q -p gossamer-sidecar --bin gossamer-sidecar
exec "$CARGO_TARGET_DIR/release/gossamer-sidecar" demo --nodes "${NODES:-5}"
