#!/usr/bin/env bash
# Everything a test node (tests/harness/kube/node.rs) runs, idempotently:
#   - Debian packages containerd, runc, containernetworking-plugins and
#     iptables (skipped when installed; non-interactive, needs root or sudo);
#   - the control plane and kubelet, kube-scheduler, kube-proxy and coredns,
#     built by tests/kube/install.sh from the Go module proxy (cached; a cold
#     build of the four node parts takes minutes on 2 cores).
# Prints the folder of Kubernetes binaries on its last line, as install.sh
# does (export it as GOSSAMER_KUBE_BIN).
#
# Usage: bash tests/kube/node-install.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf '[node-install] %s\n' "$*" >&2; }

packages=(containerd runc containernetworking-plugins iptables)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { log "installing ${missing[*]} needs root (or sudo)"; exit 1; }
    sudo="sudo"
  fi
  log "installing Debian packages: ${missing[*]}"
  start=$SECONDS
  $sudo apt-get update -qq </dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
  log "installed in $((SECONDS - start)) s"
fi
# Debian's containerd package may start a system containerd where systemd
# runs; the test node runs its own and needs none.
for f in /usr/bin/containerd /usr/bin/ctr /usr/sbin/runc /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback /usr/sbin/iptables; do
  [ -x "$f" ] || { log "missing $f after installing ${packages[*]}"; exit 1; }
done

extra="kubelet kube-scheduler kube-proxy coredns"
for e in ${KUBE_EXTRA:-}; do
  case " $extra " in *" $e "*) ;; *) extra+=" $e" ;; esac
done
KUBE_EXTRA="$extra" bash "$here/install.sh"
