//! The operator's decisions, as pure functions of the watched objects.
//!
//! Nothing here talks to the API server, reads a clock or draws a random
//! number: the index (`gossamer-operator-index`) folds watch events into a
//! [`ClusterState`], and this crate turns that into a versioned config
//! [`Snapshot`], each key's [`KeyPhase`](gossamer_operator_api::KeyPhase)
//! and every object's status. The runtime writes what it decides. So every
//! decision is tested without an API server.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod hello;
mod inject;
mod keys;
mod network_id;
mod problem;
mod reports;
mod rotation;
mod selector;
mod snapshot;
mod state;
mod status;
mod version;

pub use hello::{check_hello, HelloClaim, HelloRefusal, PodIdentity, RefusalKind};
pub use inject::{
    inject, ConfigError, InjectConfig, InjectContext, InjectError, Injection, Skip, API_ENV,
    CLUSTER_ANNOTATION, INJECT_ANNOTATION, SIDECAR_CONTAINER,
};
pub use keys::{plan_keys, plan_keys_after, KeyDecision, KeyPlan};
pub use network_id::network_id;
pub use problem::Problem;
pub use reports::{
    aggregate, Aggregate, Departed, MemberReport, Rejection, StatusSummary, MAX_NACK_MESSAGE,
};
pub use rotation::{
    parse_rotate_after, rotation, successor, Rotation, Successor, CHAIN_LABEL, INDEX_LABEL,
    MIN_ROTATE_AFTER, PREDECESSOR_LABEL,
};
pub use selector::Selector;
pub use snapshot::{
    build_snapshot, kept_keys, GossipSettings, KeyBytes, KeyState, Snapshot, SnapshotKey,
    SnapshotNetwork,
};
pub use state::{
    ClusterRef, ClusterState, KeyInput, KeyMaterial, KeyReports, Member, NetworkInput, PeersInput,
};
pub use status::{
    key_status, network_status, peers_status, resolve_peers, Acks, KeyFacts, KeyRotation,
};
pub use version::{Stamp, Versioner};
