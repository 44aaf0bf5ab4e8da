#!/usr/bin/env bash
# The whole test suite and the gates, as CI runs it. The last lines are
# cargo test's own summary.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/setup.sh

step() { printf '\n=== %s (at %d s)\n' "$*" "$SECONDS" >&2; }

# The real-cluster tests run the Kubernetes binaries built from the Go
# module proxy (seconds when cached, about 20 minutes cold) and, for the
# test node, Debian's containerd, runc and CNI plugins. Built before the
# cargo steps so a failure shows here, not as a test failure.
step "Kubernetes binaries and node parts"
kube_bin="$(bash tests/kube/node-install.sh | tail -n 1)"
[ -x "$kube_bin/kubelet" ] || { echo "tests/kube/node-install.sh printed no usable folder: $kube_bin" >&2; exit 1; }
export GOSSAMER_KUBE_BIN="$kube_bin"

step "format"
cargo fmt --all --check
step "clippy"
cargo clippy --workspace --all-targets -- -D warnings
step "the pure crates stay sans-IO (no tokio, tonic, hyper or sockets in their dependencies)"
bash tests/core-deps.sh
step "CRDs match the Rust types (crds/ is generated, never hand-edited)"
cargo run -q -p gossamer-operator -- crd | diff -u crds/gossamer.dev.yaml - || {
  echo "crds/gossamer.dev.yaml drifted from operator/api; regenerate: cargo run -p gossamer-operator -- crd > crds/gossamer.dev.yaml" >&2
  exit 1
}
step "the Helm chart's CRDs are the generated ones"
diff -u crds/gossamer.dev.yaml charts/gossamer/crds/gossamer.dev.yaml || {
  echo "charts/gossamer/crds/gossamer.dev.yaml differs from crds/gossamer.dev.yaml; copy it: cp crds/gossamer.dev.yaml charts/gossamer/crds/" >&2
  exit 1
}
step "helm lint (defaults, and every optional part on)"
"$GOSSAMER_KUBE_BIN/helm" lint --strict charts/gossamer
"$GOSSAMER_KUBE_BIN/helm" lint --strict charts/gossamer -f charts/gossamer/ci/all-on-values.yaml
step "shellcheck (the test bed's scripts and the kind runner)"
shellcheck tests/*.sh tests/kube/*.sh tests/e2e/kind/run.sh .ci/run
step "benches compile"
cargo bench --workspace --no-run -q
step "fuzz smoke run (each target ${FUZZ_SECS:-15} s)"
bash tests/fuzz-smoke.sh
# The test node's images (sidecar, operator, pause) as OCI archives, from
# this checkout's binaries; seconds when the binaries did not change.
step "node images"
images="$(bash tests/kube/images.sh "$CARGO_TARGET_DIR/images" | tail -n 1)"
export GOSSAMER_IMAGES="$images"
step "tests"
cargo test --workspace --no-fail-fast
