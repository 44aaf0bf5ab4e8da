//! The config snapshot of a cluster: what every sidecar of it should run.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{plan_keys_after, resolve_peers, ClusterRef, ClusterState, Selector};

/// Gossip settings every sidecar of a cluster shares (set once per cluster
/// by the operator's configuration, not per network).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GossipSettings {
    /// The gossip port (TCP and UDP) sidecars bind and seeds are dialled on.
    pub port: u16,
    /// memberlist's profile: `lan`, `wan` or `local`.
    pub profile: String,
}

impl Default for GossipSettings {
    fn default() -> Self {
        GossipSettings {
            port: 7946,
            profile: "lan".into(),
        }
    }
}

/// How a key sits in the keyrings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KeyState {
    /// Encrypts (and decrypts).
    Primary,
    /// Decrypts only.
    Secondary,
    /// Decrypts only, on its way out.
    Retiring,
}

/// Raw key bytes. `Debug` shows the length only; they are left out of the
/// content hash and of every serialization but the TLS control stream.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct KeyBytes(pub Vec<u8>);

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} key bytes>", self.0.len())
    }
}

/// One key of the keyring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotKey {
    /// GossipKey name.
    pub name: String,
    /// Its fingerprint (the bytes' identity in the content hash).
    pub fingerprint: String,
    /// Primary, secondary or retiring.
    pub state: KeyState,
    /// The bytes.
    #[serde(skip)]
    pub bytes: KeyBytes,
}

/// One network: its wire id, tables, and the members that join it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotNetwork {
    /// GossipNetwork name.
    pub name: String,
    /// Stable wire id.
    pub id: String,
    /// Table names.
    pub tables: Vec<String>,
    /// Pod names whose sidecars join it, sorted.
    pub members: Vec<String>,
}

/// The desired config of one cluster. Its version lives beside it (see
/// [`Versioner`](crate::Versioner)); identical content has an identical
/// [`content_hash`](Snapshot::content_hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// Namespace of the cluster.
    pub namespace: String,
    /// Cluster name.
    pub cluster: String,
    /// memberlist label, `<namespace>/<cluster>`.
    pub label: String,
    /// Keyring, oldest key first.
    pub keys: Vec<SnapshotKey>,
    /// Networks, by name.
    pub networks: Vec<SnapshotNetwork>,
    /// Bootstrap peers, `host:port`.
    pub peers: Vec<String>,
    /// Shared gossip settings.
    pub gossip: GossipSettings,
}

impl Snapshot {
    /// The primary key's name, if the keyring has one.
    pub fn primary(&self) -> Option<&str> {
        self.keys
            .iter()
            .find(|k| k.state == KeyState::Primary)
            .map(|k| k.name.as_str())
    }

    /// SHA-256 (hex) of the content: key fingerprints stand for key bytes,
    /// so the hash can be stored in the API without revealing a key.
    pub fn content_hash(&self) -> String {
        // Serializing plain strings, numbers and vectors cannot fail.
        let json = serde_json::to_vec(self).expect("a snapshot serializes");
        hex::encode(Sha256::digest(json))
    }
}

/// The keys the members keep once they have `snap`: its own, and the keys
/// they held (`state.last_keys`, `state.last_primary`) whose bytes are
/// unusable now. The snapshot cannot list those; it then has no primary,
/// every member refuses it and keeps its keyring.
pub fn kept_keys(snap: &Snapshot, state: &ClusterState) -> Vec<String> {
    let mut kept: Vec<String> = snap.keys.iter().map(|k| k.name.clone()).collect();
    for k in state.keys.iter().filter(|k| k.material.is_err()) {
        let held = state.last_primary.as_deref() == Some(k.name.as_str())
            || state
                .last_keys
                .as_ref()
                .is_some_and(|ks| ks.contains(&k.name));
        if held && !kept.contains(&k.name) {
            kept.push(k.name.clone());
        }
    }
    kept
}

/// Builds the cluster's snapshot from what the index knows. Objects with a
/// problem (an invalid selector, an unusable key) are left out; the rest of
/// the cluster is unaffected.
pub fn build_snapshot(
    cluster: &ClusterRef,
    state: &ClusterState,
    gossip: &GossipSettings,
) -> Snapshot {
    let plan = plan_keys_after(
        &state.keys,
        state.members.len() as u32,
        &state.key_reports,
        state.last_primary.as_deref(),
        state.last_keys.as_deref(),
    );
    let mut keyed: Vec<(&str, &str, SnapshotKey)> = Vec::new();
    for (input, decision) in state.keys.iter().zip(&plan.decisions) {
        if let (Ok(m), Some(st)) = (&input.material, decision.state) {
            keyed.push((
                &input.created,
                &input.name,
                SnapshotKey {
                    name: input.name.clone(),
                    fingerprint: m.fingerprint().to_string(),
                    state: st,
                    bytes: KeyBytes(m.bytes().to_vec()),
                },
            ));
        }
    }
    keyed.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));

    let mut networks: Vec<SnapshotNetwork> = state
        .networks
        .iter()
        .filter_map(|n| {
            let sel = Selector::parse(&n.selector).ok()?;
            let mut members: Vec<String> = state
                .members
                .iter()
                .filter(|m| sel.matches(&m.labels))
                .map(|m| m.name.clone())
                .collect();
            members.sort();
            Some(SnapshotNetwork {
                name: n.name.clone(),
                id: crate::network_id(&n.uid),
                tables: n.tables.clone(),
                members,
            })
        })
        .collect();
    networks.sort_by(|a, b| a.name.cmp(&b.name));

    let mut peers = Vec::new();
    let mut inputs: Vec<_> = state.peers.iter().collect();
    inputs.sort_by(|a, b| a.name.cmp(&b.name));
    for p in inputs {
        for addr in resolve_peers(p, &state.members, gossip.port) {
            if !peers.contains(&addr) {
                peers.push(addr);
            }
        }
    }

    Snapshot {
        namespace: cluster.namespace.clone(),
        cluster: cluster.name.clone(),
        label: gossamer_operator_api::cluster_label(&cluster.namespace, &cluster.name),
        keys: keyed.into_iter().map(|(_, _, k)| k).collect(),
        networks,
        peers,
        gossip: gossip.clone(),
    }
}
