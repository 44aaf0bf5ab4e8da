# shellcheck shell=bash disable=SC2034 # sourced; install.sh uses these
# Pinned versions of the Kubernetes parts the real-cluster tests run.
# Sourced by tests/kube/install.sh; a change here rebuilds into a new cache
# folder, the old one stays until removed by hand.
KUBE_VERSION="v1.37.2"
ETCD_VERSION="v3.6.16"
HELM_VERSION="v4.3.2"
# Built only when KUBE_EXTRA names coredns (tests/kube/node-install.sh does);
# the binary lands in the same bin folder, whose name it does not change (a
# stamp there, .coredns.stamp, makes a new version rebuild it).
COREDNS_VERSION="v1.15.0"
