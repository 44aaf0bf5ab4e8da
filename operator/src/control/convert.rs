//! Between the decisions' types and the wire's.

use gossamer_operator_core::{HelloClaim, KeyState, StatusSummary};
use gossamer_proto::control::v1 as pb;

use super::hub::Published;

/// The wire form of a stored snapshot, with this send's nonce.
pub fn snapshot(p: &Published, nonce: &str) -> pb::ConfigSnapshot {
    let s = &p.snapshot;
    let primary = s
        .keys
        .iter()
        .find(|k| k.state == KeyState::Primary)
        .map(|k| k.fingerprint.clone())
        .unwrap_or_default();
    pb::ConfigSnapshot {
        version: p.stamp.version,
        nonce: nonce.to_string(),
        cluster: s.cluster.clone(),
        namespace: s.namespace.clone(),
        label: s.label.clone(),
        keys: s
            .keys
            .iter()
            .map(|k| pb::Key {
                bytes: k.bytes.0.clone(),
                fingerprint: k.fingerprint.clone(),
                state: match k.state {
                    KeyState::Primary => pb::KeyState::Primary,
                    KeyState::Secondary => pb::KeyState::Secondary,
                    KeyState::Retiring => pb::KeyState::Retiring,
                } as i32,
                name: k.name.clone(),
            })
            .collect(),
        primary_fingerprint: primary,
        networks: s
            .networks
            .iter()
            .map(|n| pb::Network {
                id: n.id.clone(),
                name: n.name.clone(),
                tables: n.tables.clone(),
                members: n.members.clone(),
            })
            .collect(),
        bootstrap_peers: s.peers.clone(),
        gossip: Some(pb::GossipSettings {
            port: u32::from(s.gossip.port),
            profile: s.gossip.profile.clone(),
        }),
        departed_members: p.departed.clone(),
    }
}

/// What the decisions need of a hello.
pub fn hello(h: &pb::Hello) -> HelloClaim {
    HelloClaim {
        cluster: h.cluster.clone(),
        cluster_namespace: h.cluster_namespace.clone(),
        pod_namespace: h.pod_namespace.clone(),
        pod_name: h.pod_name.clone(),
    }
}

/// What the decisions need of a status report. Entries are keyed by
/// network name (statuses are per GossipNetwork).
pub fn status(r: &pb::StatusReport) -> StatusSummary {
    let mut entries = std::collections::BTreeMap::new();
    for n in &r.networks {
        *entries.entry(n.name.clone()).or_insert(0) += n.entries;
    }
    StatusSummary {
        applied_version: r.applied_version,
        key_fingerprints: r.key_fingerprints.clone(),
        primary_fingerprint: r.primary_fingerprint.clone(),
        entries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gossamer_operator_core::{KeyBytes, Snapshot, SnapshotKey, Stamp};

    #[test]
    fn the_wire_snapshot_names_the_primary_by_fingerprint() {
        let p = Published {
            stamp: Stamp {
                version: 9,
                hash: "h".into(),
            },
            snapshot: Snapshot {
                namespace: "shop".into(),
                cluster: "default".into(),
                label: "shop/default".into(),
                keys: vec![
                    SnapshotKey {
                        name: "old".into(),
                        fingerprint: "sha256:00000000".into(),
                        state: KeyState::Retiring,
                        bytes: KeyBytes(vec![0; 16]),
                    },
                    SnapshotKey {
                        name: "new".into(),
                        fingerprint: "sha256:11111111".into(),
                        state: KeyState::Primary,
                        bytes: KeyBytes(vec![1; 32]),
                    },
                ],
                networks: vec![],
                peers: vec!["10.0.0.1:7946".into()],
                gossip: Default::default(),
            },
            departed: vec!["web-3".into()],
        };
        let w = snapshot(&p, "n1");
        assert_eq!((w.version, w.nonce.as_str()), (9, "n1"));
        assert_eq!(w.primary_fingerprint, "sha256:11111111");
        assert_eq!(w.keys[0].state, pb::KeyState::Retiring as i32);
        assert_eq!(w.keys[1].bytes.len(), 32);
        assert_eq!(w.departed_members, ["web-3"]);
        assert_eq!(w.gossip.unwrap().port, 7946);
    }
}
