//! The fanout: one watch channel per cluster holding its latest stored
//! snapshot, and what each member last said on the stream.
//!
//! The snapshot loop offers every stored version; every stream of the
//! cluster holds a receiver and sends what it sees. A subscriber gets the
//! current version at once, and only the latest if several pass while it is
//! busy (state of the world: the latest version says it all).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use gossamer_operator_core::{
    aggregate, Aggregate, ClusterRef, Departed, MemberReport, Snapshot, Stamp,
};
use tokio::sync::watch;

/// A stored snapshot as streams send it.
#[derive(Debug)]
pub struct Published {
    /// Its version.
    pub stamp: Stamp,
    /// Its content, key bytes included.
    pub snapshot: Snapshot,
    /// Pods that left the cluster (bounded).
    pub departed: Vec<String>,
}

/// The latest snapshot of a cluster, `None` until one is stored.
pub type Latest = watch::Receiver<Option<Arc<Published>>>;

struct Cluster {
    tx: watch::Sender<Option<Arc<Published>>>,
    departed: Departed,
    reports: BTreeMap<String, MemberReport>,
    /// The aggregate the decisions last saw.
    seen: Aggregate,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            tx: watch::channel(None).0,
            departed: Departed::default(),
            reports: BTreeMap::new(),
            seen: Aggregate::default(),
        }
    }
}

impl Cluster {
    fn version(&self) -> Option<u64> {
        self.tx.borrow().as_ref().map(|p| p.stamp.version)
    }
}

/// Every cluster's channel and member reports.
#[derive(Default)]
pub struct Hub {
    clusters: Mutex<HashMap<ClusterRef, Cluster>>,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, HashMap<ClusterRef, Cluster>> {
        // Every update is a single field write: a panic cannot leave a
        // half-made state behind.
        self.clusters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Offers the cluster's latest stored snapshot; subscribers get it when
    /// its version is not the one they have. `members` are the cluster's
    /// Pod names now (for departed members, and to forget reports of Pods
    /// that left). Returns whether a new version went out.
    pub fn offer(
        &self,
        c: &ClusterRef,
        stamp: Stamp,
        snapshot: Snapshot,
        members: &[String],
    ) -> bool {
        let mut clusters = self.lock();
        let entry = clusters.entry(c.clone()).or_default();
        entry.departed.update(members);
        entry.reports.retain(|name, _| members.contains(name));
        if entry.version() == Some(stamp.version) {
            return false;
        }
        let p = Published {
            stamp,
            snapshot,
            departed: entry.departed.names().to_vec(),
        };
        entry.tx.send_replace(Some(Arc::new(p)));
        true
    }

    /// Resumes the cluster's departed record from what a previous leader
    /// stored, unless this process already keeps one.
    pub fn resume_departed(&self, c: &ClusterRef, members: Vec<String>, gone: Vec<String>) {
        let mut clusters = self.lock();
        let entry = clusters.entry(c.clone()).or_default();
        if entry.departed.members().is_none() {
            entry.departed = Departed::resume(members, gone);
        }
    }

    /// The departed names the cluster's next offer with `members` would
    /// carry, without changing anything (what gets stored beside the
    /// snapshot).
    pub fn departed_after(&self, c: &ClusterRef, members: &[String]) -> Vec<String> {
        let clusters = self.lock();
        let mut d = clusters
            .get(c)
            .map(|e| e.departed.clone())
            .unwrap_or_default();
        d.update(members);
        d.names().to_vec()
    }

    /// A receiver of the cluster's latest snapshot.
    pub fn subscribe(&self, c: &ClusterRef) -> Latest {
        self.lock().entry(c.clone()).or_default().tx.subscribe()
    }

    /// Updates what a member said.
    pub fn record(&self, c: &ClusterRef, member: &str, f: impl FnOnce(&mut MemberReport)) {
        let mut clusters = self.lock();
        let entry = clusters.entry(c.clone()).or_default();
        f(entry.reports.entry(member.to_string()).or_default());
    }

    /// The reports of a cluster whose members are `members`, folded for the
    /// current version (nothing counts before a version is stored).
    pub fn aggregate(&self, c: &ClusterRef, members: &[String]) -> Aggregate {
        let clusters = self.lock();
        match clusters.get(c) {
            Some(entry) => match entry.version() {
                Some(v) => aggregate(v, members, &entry.reports),
                None => Aggregate::default(),
            },
            None => Aggregate::default(),
        }
    }

    /// Records `now` as what the decisions see; returns whether it differs
    /// from what they saw before.
    pub fn note_seen(&self, c: &ClusterRef, now: Aggregate) -> bool {
        let mut clusters = self.lock();
        let entry = clusters.entry(c.clone()).or_default();
        if entry.seen == now {
            return false;
        }
        entry.seen = now;
        true
    }

    /// Forgets everything and closes every channel: every stream ends (this
    /// replica stopped leading, and only the leader serves).
    pub fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        gossamer_operator_core::build_snapshot(&cluster(), &Default::default(), &Default::default())
    }

    fn cluster() -> ClusterRef {
        ClusterRef {
            namespace: "shop".into(),
            name: "default".into(),
        }
    }

    fn stamp(v: u64) -> Stamp {
        Stamp {
            version: v,
            hash: format!("h{v}"),
        }
    }

    #[tokio::test]
    async fn a_subscriber_gets_the_current_version_then_each_new_one() {
        let hub = Hub::default();
        let c = cluster();
        let members = vec!["a".to_string(), "b".to_string()];
        assert!(hub.offer(&c, stamp(3), snap(), &members));
        let mut rx = hub.subscribe(&c);
        assert_eq!(rx.borrow_and_update().as_ref().unwrap().stamp.version, 3);
        // The same version again goes nowhere.
        assert!(!hub.offer(&c, stamp(3), snap(), &members));
        assert!(hub.offer(&c, stamp(4), snap(), &members[..1]));
        rx.changed().await.unwrap();
        let p = rx.borrow_and_update().clone().unwrap();
        assert_eq!(p.stamp.version, 4);
        assert_eq!(p.departed, ["b"]);
        hub.clear();
        assert!(rx.changed().await.is_err(), "clearing ends every stream");
    }

    #[test]
    fn reports_count_for_the_current_version_only() {
        let hub = Hub::default();
        let c = cluster();
        let members = vec!["a".to_string()];
        hub.record(&c, "a", |r| r.ack(1));
        assert!(hub.aggregate(&c, &members).acks.running.is_empty());
        hub.offer(&c, stamp(1), snap(), &members);
        assert_eq!(hub.aggregate(&c, &members).acks.running, ["a"]);
        hub.offer(&c, stamp(2), snap(), &members);
        assert!(hub.aggregate(&c, &members).acks.running.is_empty());
        let now = hub.aggregate(&c, &members);
        assert!(!hub.note_seen(&c, now.clone()));
        hub.record(&c, "a", |r| r.ack(2));
        assert!(hub.note_seen(&c, hub.aggregate(&c, &members)));
        // A member that left is forgotten.
        hub.offer(&c, stamp(2), snap(), &[]);
        assert!(hub.aggregate(&c, &members).acks.running.is_empty());
    }
}
