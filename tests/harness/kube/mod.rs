//! A real Kubernetes control plane for tests of what crosses the Kubernetes
//! API: etcd, kube-apiserver and kube-controller-manager built from the Go
//! module proxy by `tests/kube/install.sh`, on 127.0.0.1 with free ports.
//!
//! ```no_run
//! use gossamer_tests::kube::ControlPlane;
//!
//! let cp = ControlPlane::shared().unwrap();
//! let ns = cp.namespace("demo").unwrap();
//! let out = cp.kubectl(&["get", "serviceaccounts", "-n", &ns]).unwrap();
//! assert!(out.ok().unwrap().contains("default"));
//! ```
//!
//! # Life of the processes
//!
//! Each process is started by a small `sh` watcher that `exec`s it (so the
//! PID the harness reports is the program's) after forking a subshell that
//! reads a pipe only this test process can write to. When the test process
//! ends — tests done, a panic, or SIGKILL — the kernel closes the pipe, and
//! the subshell stops its program (SIGTERM, then SIGKILL after 2 s) if the
//! program is still its parent, which rules out a reused PID. etcd's
//! watcher then removes the state folder (PKI, etcd data, kubeconfigs).
//! Logs stay under [`test_temp_dir`](crate::test_temp_dir)`/kube-<n>/`.
//!
//! # Binaries
//!
//! [`KubeBinaries::find`] uses `$GOSSAMER_KUBE_BIN` or runs
//! `bash tests/kube/install.sh`; a missing binary is an error that says how
//! to build it. Tests fail on it; they never skip.
//!
//! # A node
//!
//! [`Node::start`] adds containerd (with runc), a CNI bridge, kube-scheduler,
//! kubelet and kube-proxy to a control plane, so real Pods run; the images
//! are OCI archives ([`NodeImages`]) imported without a registry. See the
//! `node` module for what it changes on the host and how that is undone.
//! Pods reach the API server through the `kubernetes` Service: the server
//! listens on every address and advertises the host's. CoreDNS on the host
//! answers for `cluster.local` on the bridge's address.

mod binaries;
mod block_on;
mod builder;
mod control_plane;
mod host;
mod images;
mod kubeconfig;
mod kubectl;
mod node;
mod pki;
mod ready;
mod supervised;

pub use binaries::{KubeBinaries, KubeVersions, KUBE_BIN_ENV};
pub use builder::{
    ControlPlaneBuilder, DEFAULT_READY_TIMEOUT, DEFAULT_SERVICE_CIDR, GOSSAMER_AUDIENCE, ISSUER,
};
pub use control_plane::{ControlPlane, ProcessInfo};
pub use images::{NodeImages, IMAGES_ENV, OPERATOR_IMAGE, PAUSE_IMAGE, SIDECAR_IMAGE};
pub use kubectl::KubectlOutput;
pub use node::{
    Node, BRIDGE, CLUSTER_DNS, CLUSTER_DOMAIN, NODE_NAME, NODE_READY_TIMEOUT, POD_CIDR,
};
pub use pki::{CertFiles, CertRequest, Pki, Usage};
/// For other harness parts that run processes (kubelet, the operator): the
/// same supervision and log helpers.
pub(crate) use supervised::{create_dir, log_tail, Supervised};
