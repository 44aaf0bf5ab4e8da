//! What the index knows of one gossip cluster: the input of every decision.

use std::collections::{BTreeMap, HashMap};

use gossamer_core::keyring::Key;
use gossamer_operator_api::FromMembers;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::Problem;

/// A gossip cluster: the sidecars of one namespace that share one
/// membership and keyring.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterRef {
    /// The namespace of the cluster's objects and Pods.
    pub namespace: String,
    /// The cluster's name (`spec.cluster`, the Pods' cluster label).
    pub name: String,
}

impl std::fmt::Display for ClusterRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Everything the operator knows of one cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    /// GossipNetworks of the cluster.
    pub networks: Vec<NetworkInput>,
    /// GossipKeys of the cluster.
    pub keys: Vec<KeyInput>,
    /// BootstrapPeers of the cluster.
    pub peers: Vec<PeersInput>,
    /// Pods that carry a sidecar of the cluster.
    pub members: Vec<Member>,
    /// What the sidecars report of their keyrings (empty until they report).
    pub key_reports: KeyReports,
    /// The primary key's name in the last published snapshot.
    pub last_primary: Option<String>,
    /// The key names of the last published snapshot, when known.
    pub last_keys: Option<Vec<String>>,
}

/// A GossipNetwork as the decisions need it.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkInput {
    /// Object name.
    pub name: String,
    /// Object uid (the wire id derives from it).
    pub uid: String,
    /// `spec.memberSelector`.
    pub selector: LabelSelector,
    /// Table names, in spec order.
    pub tables: Vec<String>,
}

/// A GossipKey as the decisions need it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyInput {
    /// Object name.
    pub name: String,
    /// Creation time as RFC 3339 text (orders keys; ties break by name).
    pub created: String,
    /// Whether deletion was requested.
    pub deleting: bool,
    /// The key's bytes, or why there are none.
    pub material: Result<KeyMaterial, Problem>,
}

/// A usable key: 16, 24 or 32 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    bytes: Vec<u8>,
    fingerprint: String,
}

impl KeyMaterial {
    /// Checks the length; `describe` names the source in the error
    /// (namespace, Secret name, data key).
    pub fn new(bytes: Vec<u8>, namespace: &str, name: &str, key: &str) -> Result<Self, Problem> {
        // The sidecar's own key type checks the length and names the key,
        // so the operator's fingerprints are the sidecars' by construction.
        let fingerprint = match Key::new(&bytes) {
            Ok(k) => k.fingerprint().to_string(),
            Err(_) => {
                return Err(Problem::KeyLength {
                    namespace: namespace.into(),
                    name: name.into(),
                    key: key.into(),
                    len: bytes.len(),
                })
            }
        };
        Ok(KeyMaterial { bytes, fingerprint })
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The raw bytes; they go only into the snapshot sent over TLS.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyMaterial({}, {} bytes)",
            self.fingerprint,
            self.bytes.len()
        )
    }
}

/// A BootstrapPeers as the decisions need it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeersInput {
    /// Object name.
    pub name: String,
    /// `spec.static`.
    pub static_peers: Vec<String>,
    /// `spec.fromMembers`.
    pub from_members: Option<FromMembers>,
}

/// A Pod that carries a sidecar of the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Pod name.
    pub name: String,
    /// Pod labels (networks select on them).
    pub labels: BTreeMap<String, String>,
    /// Pod IP, once it has one.
    pub ip: Option<String>,
    /// Whether the Pod's Ready condition is True.
    pub ready: bool,
    /// Pod start time as RFC 3339 text (the longest-lived seed first).
    pub started: Option<String>,
}

/// What the sidecars say of their keyrings, by key fingerprint, counting
/// only members that acknowledged the current snapshot. Filled from the
/// control stream's status reports; empty until sidecars report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyReports {
    /// Members that have reported their keyring.
    pub reporting: u32,
    /// Members whose keyring holds each key.
    pub holders: HashMap<String, u32>,
    /// Members that encrypt with each key (their primary).
    pub encrypting: HashMap<String, u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_fingerprints_are_the_sidecars() {
        // SHA-256 of sixteen zero bytes starts 374708ff (the keyring's own
        // test vector).
        let m = KeyMaterial::new(vec![0; 16], "shop", "gossip-key", "key").unwrap();
        assert_eq!(m.fingerprint(), "sha256:374708ff");
        assert_eq!(format!("{m:?}"), "KeyMaterial(sha256:374708ff, 16 bytes)");
    }

    #[test]
    fn a_key_of_the_wrong_length_is_a_problem_naming_its_source() {
        let e = KeyMaterial::new(vec![0; 15], "shop", "gossip-key", "key").unwrap_err();
        assert_eq!(
            e,
            Problem::KeyLength {
                namespace: "shop".into(),
                name: "gossip-key".into(),
                key: "key".into(),
                len: 15,
            }
        );
    }
}
