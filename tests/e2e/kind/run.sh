#!/usr/bin/env bash
# Runs the real-cluster scenarios of tests/e2e/kube_cluster.rs on a kind
# cluster, for any machine with Docker and kind: the same test code as the
# test command's own single-node cluster, pointed at kind through
# GOSSAMER_E2E_KUBECONFIG. It creates the cluster, builds the operator and
# sidecar images with their Dockerfiles, loads them into the kind nodes, and
# runs the test, which installs the chart with helm and plays the seven
# scenarios; the cluster is deleted afterwards (KEEP=1 keeps it).
#
# Needs: docker, kind, kubectl, helm (v3 or v4) and cargo on PATH.
#
#   bash tests/e2e/kind/run.sh
#
# Settings (environment):
#   KIND_CLUSTER     cluster name (default gossamer-e2e)
#   KIND_NODE_IMAGE  node image (default kindest/node:v1.33.1; native
#                    sidecars need Kubernetes 1.29 or later)
#   KEEP=1           keep the cluster afterwards
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
top="$(cd "$here/../../.." && pwd)"

log() { printf '[kind-e2e] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

cluster="${KIND_CLUSTER:-gossamer-e2e}"
node_image="${KIND_NODE_IMAGE:-kindest/node:v1.33.1}"

for tool in docker kind kubectl helm cargo; do
  command -v "$tool" >/dev/null 2>&1 || die "missing $tool on PATH: install it first"
done
docker info >/dev/null 2>&1 || die "docker does not answer: start the Docker engine (and check you may use it)"

kubeconfig="$(mktemp "${TMPDIR:-/tmp}/gossamer-kind.XXXXXX")"
created=""
cleanup() {
  local rc=$?
  if [ -n "$created" ] && [ -z "${KEEP:-}" ]; then
    log "deleting kind cluster $cluster"
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || log "could not delete kind cluster $cluster"
  elif [ -n "$created" ]; then
    log "KEEP=1: kind cluster $cluster stays (kubeconfig: kind get kubeconfig --name $cluster)"
  fi
  rm -f "$kubeconfig"
  exit "$rc"
}
trap cleanup EXIT

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  die "a kind cluster named $cluster exists already: delete it (kind delete cluster --name $cluster) or set KIND_CLUSTER"
fi
log "creating kind cluster $cluster ($node_image)"
kind create cluster --name "$cluster" --image "$node_image" --kubeconfig "$kubeconfig" --wait 180s
created=1

# The names the test installs the chart with (imagePullPolicy Never).
log "building the images"
docker build -f "$top/sidecar/Dockerfile" -t gossamer.dev/sidecar:test "$top"
docker build -f "$top/operator/Dockerfile" -t gossamer.dev/operator:test "$top"
log "loading the images into the kind nodes"
kind load docker-image --name "$cluster" gossamer.dev/sidecar:test gossamer.dev/operator:test

log "running the scenarios"
cd "$top"
GOSSAMER_E2E_KUBECONFIG="$kubeconfig" \
  cargo test -p gossamer-tests --test kube_cluster -- --nocapture
