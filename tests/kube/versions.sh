# Pinned versions of the Kubernetes parts the real-cluster tests run.
# Sourced by tests/kube/install.sh; a change here rebuilds into a new cache
# folder, the old one stays until removed by hand.
KUBE_VERSION="v1.37.2"
ETCD_VERSION="v3.6.16"
HELM_VERSION="v4.3.2"
