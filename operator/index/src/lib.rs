//! The index: what the operator knows of every gossip cluster, folded from
//! watch events into plain state.
//!
//! It does not talk to the API server and decides nothing: the runtime feeds
//! it objects (`apply_*`, `delete_*`) and key bytes it read from Secrets
//! (`set_key_material`), and reads a cluster's [`ClusterState`] back for the
//! pure decisions of `gossamer-operator-core`. Every change marks its
//! cluster dirty, so the snapshot loop rebuilds only what changed.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};

use gossamer_operator_api::{BootstrapPeers, GossipKey, GossipNetwork, CLUSTER_LABEL};
use gossamer_operator_core::{
    ClusterRef, ClusterState, KeyInput, KeyMaterial, KeyReports, Member, NetworkInput, PeersInput,
    Problem,
};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

#[derive(Debug, Default)]
struct Objects {
    networks: BTreeMap<String, NetworkInput>,
    keys: BTreeMap<String, KeyInput>,
    peers: BTreeMap<String, PeersInput>,
    members: BTreeMap<String, Member>,
    key_reports: KeyReports,
}

impl Objects {
    fn is_empty(&self) -> bool {
        self.networks.is_empty()
            && self.keys.is_empty()
            && self.peers.is_empty()
            && self.members.is_empty()
    }
}

/// Names of a cluster's custom resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterObjects {
    /// GossipNetwork names.
    pub networks: Vec<String>,
    /// GossipKey names.
    pub keys: Vec<String>,
    /// BootstrapPeers names.
    pub peers: Vec<String>,
}

/// Every cluster's objects.
#[derive(Debug, Default)]
pub struct Index {
    clusters: BTreeMap<ClusterRef, Objects>,
    /// Which cluster each Pod (namespace, name) was last filed under, so a
    /// relabelled Pod leaves its old cluster.
    pod_cluster: BTreeMap<(String, String), ClusterRef>,
    dirty: BTreeSet<ClusterRef>,
}

fn cluster_of(namespace: Option<String>, cluster: &str) -> ClusterRef {
    ClusterRef {
        namespace: namespace.unwrap_or_default(),
        name: cluster.to_string(),
    }
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    fn objects(&mut self, c: &ClusterRef) -> &mut Objects {
        self.dirty.insert(c.clone());
        self.clusters.entry(c.clone()).or_default()
    }

    fn prune(&mut self, c: &ClusterRef) {
        if self.clusters.get(c).is_some_and(Objects::is_empty) {
            self.clusters.remove(c);
        }
    }

    /// Files a GossipNetwork (created or changed).
    pub fn apply_network(&mut self, n: &GossipNetwork) {
        let c = cluster_of(n.namespace(), &n.spec.cluster);
        let input = NetworkInput {
            name: n.name_any(),
            uid: n.uid().unwrap_or_default(),
            selector: n.spec.member_selector.clone(),
            tables: n.spec.tables.iter().map(|t| t.name.clone()).collect(),
        };
        // An unchanged object leaves the cluster as dirty as it was: a
        // change filed before (a key's bytes, a report) must not be lost.
        let was_dirty = self.dirty.contains(&c);
        let objs = self.objects(&c);
        if objs.networks.get(&input.name) != Some(&input) {
            objs.networks.insert(input.name.clone(), input);
        } else {
            if !was_dirty {
                self.dirty.remove(&c);
            }
        }
    }

    /// Forgets a GossipNetwork.
    pub fn delete_network(&mut self, namespace: &str, name: &str) {
        self.forget(namespace, |o| o.networks.remove(name).is_some());
    }

    /// Removes an object from whichever cluster of `namespace` holds it
    /// (`remove` says whether it held it), marking that cluster dirty.
    fn forget(&mut self, namespace: &str, mut remove: impl FnMut(&mut Objects) -> bool) {
        let hit = self
            .clusters
            .iter_mut()
            .filter(|(c, _)| c.namespace == namespace)
            .find_map(|(c, o)| remove(o).then(|| c.clone()));
        if let Some(c) = hit {
            self.dirty.insert(c.clone());
            self.prune(&c);
        }
    }

    /// Files a GossipKey. Its bytes come separately
    /// ([`set_key_material`](Self::set_key_material)); until then it is
    /// pending with "Secret not read yet".
    pub fn apply_key(&mut self, k: &GossipKey) {
        let c = cluster_of(k.namespace(), &k.spec.cluster);
        let name = k.name_any();
        let created = k
            .creation_timestamp()
            .map(|t| t.0.to_string())
            .unwrap_or_default();
        let deleting = k.metadata.deletion_timestamp.is_some();
        let ns = c.namespace.clone();
        // An unchanged object leaves the cluster as dirty as it was: a
        // change filed before (a key's bytes, a report) must not be lost.
        let was_dirty = self.dirty.contains(&c);
        let objs = self.objects(&c);
        match objs.keys.get_mut(&name) {
            Some(entry) if entry.created == created && entry.deleting == deleting => {
                if !was_dirty {
                    self.dirty.remove(&c);
                }
            }
            Some(entry) if entry.created == created => entry.deleting = deleting,
            _ => {
                objs.keys.insert(
                    name.clone(),
                    KeyInput {
                        name: name.clone(),
                        created,
                        deleting,
                        material: Err(Problem::SecretMissing {
                            namespace: ns,
                            name: name.clone(),
                            key: String::new(),
                        }),
                    },
                );
            }
        }
    }

    /// Records a key's bytes (or why it has none), read from its Secret.
    pub fn set_key_material(
        &mut self,
        cluster: &ClusterRef,
        name: &str,
        material: Result<KeyMaterial, Problem>,
    ) {
        let Some(objs) = self.clusters.get_mut(cluster) else {
            return;
        };
        if let Some(k) = objs.keys.get_mut(name) {
            if k.material != material {
                k.material = material;
                self.dirty.insert(cluster.clone());
            }
        }
    }

    /// Forgets a GossipKey.
    pub fn delete_key(&mut self, namespace: &str, name: &str) {
        self.forget(namespace, |o| o.keys.remove(name).is_some());
    }

    /// Files a BootstrapPeers.
    pub fn apply_peers(&mut self, p: &BootstrapPeers) {
        let c = cluster_of(p.namespace(), &p.spec.cluster);
        let input = PeersInput {
            name: p.name_any(),
            static_peers: p.spec.r#static.clone(),
            from_members: p.spec.from_members.clone(),
        };
        // An unchanged object leaves the cluster as dirty as it was: a
        // change filed before (a key's bytes, a report) must not be lost.
        let was_dirty = self.dirty.contains(&c);
        let objs = self.objects(&c);
        if objs.peers.get(&input.name) != Some(&input) {
            objs.peers.insert(input.name.clone(), input);
        } else {
            if !was_dirty {
                self.dirty.remove(&c);
            }
        }
    }

    /// Forgets a BootstrapPeers.
    pub fn delete_peers(&mut self, namespace: &str, name: &str) {
        self.forget(namespace, |o| o.peers.remove(name).is_some());
    }

    /// Files a Pod. Pods without the cluster label, terminating Pods and
    /// Pods that have finished are not members.
    pub fn apply_pod(&mut self, pod: &Pod) {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let gone = pod.metadata.deletion_timestamp.is_some()
            || matches!(phase, Some("Succeeded" | "Failed"));
        let cluster = pod
            .labels()
            .get(CLUSTER_LABEL)
            .filter(|_| !gone)
            .map(|c| cluster_of(Some(ns.clone()), c));
        let key = (ns, name.clone());
        if let Some(old) = self.pod_cluster.get(&key).cloned() {
            if Some(&old) != cluster.as_ref() {
                self.objects(&old).members.remove(&name);
                self.pod_cluster.remove(&key);
                self.prune(&old);
            }
        }
        let Some(c) = cluster else { return };
        let status = pod.status.as_ref();
        let member = Member {
            name: name.clone(),
            labels: pod.labels().clone(),
            ip: status
                .and_then(|s| s.pod_ip.clone())
                .filter(|ip| !ip.is_empty()),
            ready: status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
            started: status
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0.to_string()),
        };
        self.pod_cluster.insert(key, c.clone());
        // An unchanged object leaves the cluster as dirty as it was: a
        // change filed before (a key's bytes, a report) must not be lost.
        let was_dirty = self.dirty.contains(&c);
        let objs = self.objects(&c);
        if objs.members.get(&name) != Some(&member) {
            objs.members.insert(name, member);
        } else {
            if !was_dirty {
                self.dirty.remove(&c);
            }
        }
    }

    /// Forgets a Pod.
    pub fn delete_pod(&mut self, namespace: &str, name: &str) {
        if let Some(c) = self
            .pod_cluster
            .remove(&(namespace.to_string(), name.to_string()))
        {
            self.objects(&c).members.remove(name);
            self.prune(&c);
        }
    }

    /// The cluster a Pod is filed under.
    pub fn cluster_of_pod(&self, namespace: &str, name: &str) -> Option<ClusterRef> {
        self.pod_cluster
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// What the index knows of a cluster (empty when nothing).
    pub fn cluster(&self, c: &ClusterRef) -> ClusterState {
        let Some(o) = self.clusters.get(c) else {
            return ClusterState::default();
        };
        ClusterState {
            networks: o.networks.values().cloned().collect(),
            keys: o.keys.values().cloned().collect(),
            peers: o.peers.values().cloned().collect(),
            members: o.members.values().cloned().collect(),
            key_reports: o.key_reports.clone(),
            last_primary: None,
            last_keys: None,
        }
    }

    /// The names of a cluster's custom resources.
    pub fn objects_of(&self, c: &ClusterRef) -> ClusterObjects {
        let Some(o) = self.clusters.get(c) else {
            return ClusterObjects::default();
        };
        ClusterObjects {
            networks: o.networks.keys().cloned().collect(),
            keys: o.keys.keys().cloned().collect(),
            peers: o.peers.keys().cloned().collect(),
        }
    }

    /// Every cluster with at least one object or member.
    pub fn clusters(&self) -> Vec<ClusterRef> {
        self.clusters.keys().cloned().collect()
    }

    /// Clusters changed since the last call (including clusters that
    /// became empty, whose snapshot then has nothing in it).
    pub fn take_dirty(&mut self) -> Vec<ClusterRef> {
        std::mem::take(&mut self.dirty).into_iter().collect()
    }

    /// Marks a cluster for a rebuild (a failed write, a cluster known only
    /// from its stored snapshot).
    pub fn mark_dirty(&mut self, c: ClusterRef) {
        self.dirty.insert(c);
    }

    /// Marks every cluster for a rebuild (a new leader starts this way).
    pub fn mark_all_dirty(&mut self) {
        self.dirty.extend(self.clusters.keys().cloned());
    }

    /// Clusters waiting for a rebuild.
    pub fn dirty_count(&self) -> usize {
        self.dirty.len()
    }

    /// Pods filed, over all clusters.
    pub fn member_count(&self) -> usize {
        self.pod_cluster.len()
    }
}

#[cfg(test)]
mod tests;
