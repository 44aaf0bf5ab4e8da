//! End-to-end test harness for Gossamer.
//!
//! Starts peers — real hashicorp/memberlist nodes (`tests/interop/peer`) and
//! Gossamer sidecars (`gossamer-sidecar run --stdio`) — on loopback and
//! drives them through the stdio JSON-lines protocol of
//! `tests/interop/README.md`, so one test can mix both and assert on what
//! each one sees.
//!
//! ```no_run
//! use std::time::Duration;
//! use gossamer_tests::{Cluster, Flags, Kind, MemberState};
//!
//! let mut c = Cluster::start(&[Kind::Go, Kind::Go, Kind::Go], Flags::fast()).unwrap();
//! c.wait_all_see(3, Duration::from_secs(20)).unwrap();
//! c.peers[2].kill();
//! c.wait_all_mark("n2", MemberState::Dead, Duration::from_secs(20)).unwrap();
//! ```
//!
//! [`kube`] runs a real Kubernetes control plane (etcd, kube-apiserver,
//! kube-controller-manager) for tests of what crosses the Kubernetes API.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
// The clock ban of clippy.toml is for the sans-IO core; this crate drives
// real processes and its timeouts are wall-clock by nature.
#![allow(clippy::disallowed_methods)]

mod binaries;
mod cluster;
pub mod control;
mod error;
mod flags;
mod keys;
pub mod kube;
pub mod leak;
pub mod netns;
pub mod networkdb;
pub mod operator;
mod peer;
mod ports;
mod view;
mod wait;

pub use binaries::{
    go_peer_binary, golden_tool_binary, networkdb_golden_binary, networkdb_peer_binary,
    operator_binary, sidecar_binary, static_release_sidecar_binary, target_dir, test_temp_dir,
    workspace_root,
};
pub use cluster::Cluster;
pub use error::{Error, Result};
pub use flags::Flags;
pub use keys::{fingerprint, Keys};
pub use kube::{ControlPlane, KubeBinaries, KubectlOutput};
pub use netns::Netns;
pub use peer::{Kind, Peer, CMD_TIMEOUT, READY_TIMEOUT};
pub use ports::free_ports;
pub use view::{CmdError, Conflict, Member, MemberState, RemoteState, Stats, View};
pub use wait::{wait_until, POLL};
