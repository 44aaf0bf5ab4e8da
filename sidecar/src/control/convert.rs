//! A snapshot from the operator, checked and turned into the configuration
//! this node should run. Every check here refuses the whole snapshot with
//! an error that says which value is wrong; the node keeps what it runs.

use std::collections::BTreeSet;

use gossamer_proto::control::v1 as pb;

use crate::desired::Desired;
use crate::keyring::{Fingerprint, Key};

/// Who this sidecar is, as it tells the operator in its Hello.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The gossip cluster (the Pod's `gossamer.dev/cluster` label).
    pub cluster: String,
    /// The Pod's (and the cluster's) namespace.
    pub namespace: String,
    /// The Pod's name; also this node's memberlist name.
    pub pod_name: String,
    /// This node's memberlist name (the Pod's name unless set otherwise).
    pub node_name: String,
    /// The gossip address this node advertises.
    pub advertise: String,
}

impl Identity {
    /// The memberlist label that keeps clusters apart: `<namespace>/<cluster>`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.namespace, self.cluster)
    }
}

/// Why a snapshot was refused. Variant names fit metric labels; texts name
/// the value (keys by name and fingerprint, never bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// The snapshot is for another cluster.
    #[error("the snapshot is for cluster {got:?}, this sidecar belongs to {want:?}")]
    WrongCluster {
        /// The snapshot's `namespace/cluster`.
        got: String,
        /// This sidecar's.
        want: String,
    },
    /// The snapshot's label differs from the one this node gossips with;
    /// the label is fixed at start.
    #[error("the snapshot's memberlist label is {got:?} but this node runs with {running:?}; the label is fixed at start: restart the Pod")]
    LabelChanged {
        /// The snapshot's label.
        got: String,
        /// The running label.
        running: String,
    },
    /// A key that is not 16, 24 or 32 bytes long.
    #[error("key {name:?} ({fingerprint}) is {len} bytes long; AES-GCM keys are 16, 24 or 32 bytes: fix the GossipKey's Secret")]
    KeyLength {
        /// The GossipKey's name.
        name: String,
        /// The fingerprint the snapshot gives.
        fingerprint: String,
        /// Its length.
        len: usize,
    },
    /// A key whose bytes do not match the fingerprint sent with it.
    #[error("key {name:?}: the snapshot says fingerprint {claimed} but the bytes give {actual}")]
    FingerprintMismatch {
        /// The GossipKey's name.
        name: String,
        /// The fingerprint in the snapshot.
        claimed: String,
        /// The fingerprint of the bytes.
        actual: Fingerprint,
    },
    /// A key without a state.
    #[error("key {name:?} ({fingerprint}) has no state; the operator must send PRIMARY, SECONDARY or RETIRING")]
    KeyStateUnspecified {
        /// The GossipKey's name.
        name: String,
        /// Its fingerprint.
        fingerprint: Fingerprint,
    },
    /// The primary fingerprint names no key, or another key is marked
    /// primary.
    #[error("the primary fingerprint {named:?} does not match the keys: {detail}")]
    PrimaryMismatch {
        /// The `primary_fingerprint` field.
        named: String,
        /// What disagrees.
        detail: String,
    },
}

impl ConvertError {
    /// A short, stable name for metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            ConvertError::WrongCluster { .. } => "wrong_cluster",
            ConvertError::LabelChanged { .. } => "label_changed",
            ConvertError::KeyLength { .. } => "key_length",
            ConvertError::FingerprintMismatch { .. } => "fingerprint_mismatch",
            ConvertError::KeyStateUnspecified { .. } => "key_state_unspecified",
            ConvertError::PrimaryMismatch { .. } => "primary_mismatch",
        }
    }
}

/// Checks `snap` and turns it into this node's desired configuration:
/// every key, the primary, the networks whose member list names this Pod,
/// the bootstrap peers and the departed members. `running_label` is the
/// label the node gossips with.
///
/// # Errors
/// A [`ConvertError`] naming the first wrong value; nothing is applied.
pub fn desired(
    snap: &pb::ConfigSnapshot,
    me: &Identity,
    running_label: &str,
) -> Result<Desired, ConvertError> {
    if snap.cluster != me.cluster || snap.namespace != me.namespace {
        return Err(ConvertError::WrongCluster {
            got: format!("{}/{}", snap.namespace, snap.cluster),
            want: me.label(),
        });
    }
    if !snap.label.is_empty() && snap.label != running_label {
        return Err(ConvertError::LabelChanged {
            got: snap.label.clone(),
            running: running_label.to_string(),
        });
    }
    let mut keys = Vec::with_capacity(snap.keys.len());
    let mut marked_primary = Vec::new();
    for k in &snap.keys {
        let key = Key::new(&k.bytes).map_err(|_| ConvertError::KeyLength {
            name: k.name.clone(),
            fingerprint: k.fingerprint.clone(),
            len: k.bytes.len(),
        })?;
        let fp = key.fingerprint();
        if fp.to_string() != k.fingerprint {
            return Err(ConvertError::FingerprintMismatch {
                name: k.name.clone(),
                claimed: k.fingerprint.clone(),
                actual: fp,
            });
        }
        match pb::KeyState::try_from(k.state) {
            Ok(pb::KeyState::Primary) => marked_primary.push(fp),
            Ok(pb::KeyState::Secondary | pb::KeyState::Retiring) => {}
            Ok(pb::KeyState::Unspecified) | Err(_) => {
                return Err(ConvertError::KeyStateUnspecified {
                    name: k.name.clone(),
                    fingerprint: fp,
                })
            }
        }
        keys.push(key);
    }
    let primary = match (snap.primary_fingerprint.as_str(), marked_primary.as_slice()) {
        ("", []) => None,
        (named, [one]) if one.to_string() == named => Some(*one),
        (named, marked) => {
            return Err(ConvertError::PrimaryMismatch {
                named: named.to_string(),
                detail: format!(
                    "keys marked PRIMARY: [{}]",
                    marked
                        .iter()
                        .map(Fingerprint::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
        }
    };
    let networks = snap
        .networks
        .iter()
        .filter(|n| n.members.contains(&me.pod_name))
        .map(|n| n.id.clone())
        .collect();
    Ok(Desired {
        keys,
        primary,
        networks,
        peers: snap.bootstrap_peers.clone(),
        departed: snap
            .departed_members
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Identity {
        Identity {
            cluster: "demo".into(),
            namespace: "apps".into(),
            pod_name: "web-0".into(),
            ..Identity::default()
        }
    }

    fn key(byte: u8, state: pb::KeyState) -> pb::Key {
        let bytes = vec![byte; 32];
        pb::Key {
            fingerprint: Key::new(&bytes).unwrap().fingerprint().to_string(),
            bytes,
            state: state as i32,
            name: format!("k{byte}"),
        }
    }

    fn snap() -> pb::ConfigSnapshot {
        let keys = vec![
            key(1, pb::KeyState::Primary),
            key(2, pb::KeyState::Secondary),
        ];
        pb::ConfigSnapshot {
            version: 3,
            nonce: "n".into(),
            cluster: "demo".into(),
            namespace: "apps".into(),
            label: "apps/demo".into(),
            primary_fingerprint: keys[0].fingerprint.clone(),
            keys,
            networks: vec![
                pb::Network {
                    id: "aaa".into(),
                    name: "mine".into(),
                    tables: vec![],
                    members: vec!["web-0".into(), "web-1".into()],
                },
                pb::Network {
                    id: "bbb".into(),
                    name: "theirs".into(),
                    tables: vec![],
                    members: vec!["web-1".into()],
                },
            ],
            bootstrap_peers: vec!["web-1.demo:7946".into()],
            gossip: None,
            departed_members: vec!["web-9".into()],
        }
    }

    #[test]
    fn a_good_snapshot_becomes_this_pods_configuration() {
        let d = desired(&snap(), &me(), "apps/demo").unwrap();
        assert_eq!(d.keys.len(), 2);
        assert_eq!(d.primary, Some(d.keys[0].fingerprint()));
        assert_eq!(d.networks, ["aaa".to_string()].into());
        assert_eq!(d.peers, ["web-1.demo:7946"]);
        assert_eq!(d.departed, ["web-9".to_string()].into());
    }

    #[test]
    fn bad_snapshots_are_refused_with_the_value_and_no_key_bytes() {
        let mut short = snap();
        short.keys[1].bytes = vec![7; 10];
        let mut forged = snap();
        forged.keys[1].fingerprint = "sha256:00000000".into();
        let mut stateless = snap();
        stateless.keys[1].state = 0;
        let mut two_primaries = snap();
        two_primaries.keys[1].state = pb::KeyState::Primary as i32;
        let mut no_primary = snap();
        no_primary.primary_fingerprint.clear();
        let mut other = snap();
        other.cluster = "other".into();
        let mut relabelled = snap();
        relabelled.label = "apps/other".into();
        let cases = [
            (short, "key_length", "10 bytes"),
            (forged, "fingerprint_mismatch", "sha256:00000000"),
            (stateless, "key_state_unspecified", "\"k2\""),
            (two_primaries, "primary_mismatch", "PRIMARY"),
            (no_primary, "primary_mismatch", "PRIMARY"),
            (other, "wrong_cluster", "apps/other"),
            (relabelled, "label_changed", "restart the Pod"),
        ];
        for (s, label, text) in cases {
            let e = desired(&s, &me(), "apps/demo").unwrap_err();
            assert_eq!(e.label(), label, "{e}");
            let msg = e.to_string();
            assert!(msg.contains(text), "{msg}");
            for k in &s.keys {
                assert!(!msg.contains(&hex::encode(&k.bytes)), "key bytes in {msg}");
            }
        }
    }
}
