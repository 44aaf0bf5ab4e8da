//! What every reconcile and loop shares.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use gossamer_operator_core::{Acks, Aggregate};
use gossamer_operator_core::{ClusterRef, GossipSettings};
use gossamer_operator_index::Index;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::Client;
use tokio::sync::{broadcast, watch, Notify};

use crate::control::Hub;
use crate::metrics::Metrics;

/// The field manager of every status and object the operator applies.
pub const FIELD_MANAGER: &str = "gossamer-operator";

/// The labels of an object the operator creates: `extra`, and
/// `app.kubernetes.io/managed-by` naming the operator.
pub fn managed_labels<'a>(
    extra: impl IntoIterator<Item = (&'a str, String)>,
) -> std::collections::BTreeMap<String, String> {
    extra
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain([(
            "app.kubernetes.io/managed-by".to_string(),
            FIELD_MANAGER.to_string(),
        )])
        .collect()
}

/// Which watches have delivered their first full list.
#[derive(Default)]
pub struct Synced {
    pub networks: AtomicBool,
    pub keys: AtomicBool,
    pub peers: AtomicBool,
    pub pods: AtomicBool,
}

pub struct Context {
    pub client: Client,
    pub index: Mutex<Index>,
    pub metrics: Metrics,
    pub recorder: Recorder,
    pub gossip: GossipSettings,
    pub resync: Duration,
    pub synced: Synced,
    /// The primary key of each cluster's last stored snapshot: it stays
    /// primary until a successor is on every member.
    pub primaries: Mutex<HashMap<ClusterRef, String>>,
    /// The key names of each cluster's last stored snapshot: a deleted key
    /// that left them never comes back.
    pub published_keys: Mutex<HashMap<ClusterRef, Vec<String>>>,
    /// Wakes the snapshot loop: the index has dirty clusters.
    pub snapshot_wake: Notify,
    /// Fired for every Pod event: member counts and seeds may change.
    /// Also fired when sidecars' reports change what statuses show.
    pub pod_events: broadcast::Sender<()>,
    /// Each cluster's latest snapshot for the control streams, and what
    /// the sidecars said.
    pub hub: Hub,
    /// Whether this replica leads (only the leader serves streams).
    pub leading: watch::Sender<bool>,
}

impl Context {
    pub fn new(
        client: Client,
        recorder: Recorder,
        gossip: GossipSettings,
        resync: Duration,
    ) -> Self {
        Context {
            client,
            index: Mutex::new(Index::new()),
            metrics: Metrics::new(),
            recorder,
            gossip,
            resync,
            synced: Synced::default(),
            primaries: Mutex::new(HashMap::new()),
            published_keys: Mutex::new(HashMap::new()),
            snapshot_wake: Notify::new(),
            // A lagging receiver loses ticks, not information: any tick
            // reconciles everything, and the debounce folds bursts.
            pod_events: broadcast::channel(16).0,
            hub: Hub::default(),
            leading: watch::channel(false).0,
        }
    }

    /// The index. A panic while holding it cannot leave it half-updated in
    /// a way later readers could not use (every update is one map insert
    /// or removal), so a poisoned lock is taken over.
    pub fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the sidecars of a cluster report, folded for the current
    /// version over the cluster's members now.
    fn reports(&self, c: &ClusterRef) -> Aggregate {
        let members: Vec<String> = self
            .index()
            .cluster(c)
            .members
            .into_iter()
            .map(|m| m.name)
            .collect();
        self.hub.aggregate(c, &members)
    }

    /// What the statuses show of the sidecars: who runs the current
    /// version, entries, refusals.
    pub fn acks(&self, c: &ClusterRef) -> Acks {
        self.reports(c).acks
    }

    /// A sidecar said something, or a new version went out: when that
    /// changes what the decisions see, rebuild the cluster's snapshot and
    /// reconcile the statuses.
    pub fn reports_changed(&self, c: &ClusterRef) {
        if self.hub.note_seen(c, self.reports(c)) {
            self.index().mark_dirty(c.clone());
            self.snapshot_wake.notify_one();
            // No receiver (not the leader) is fine.
            let _ = self.pod_events.send(());
        }
    }

    /// What the decisions need of a cluster: the index's state, the
    /// sidecars' key reports and the last published primary.
    pub fn cluster_state(&self, c: &ClusterRef) -> gossamer_operator_core::ClusterState {
        let mut state = self.index().cluster(c);
        let members: Vec<String> = state.members.iter().map(|m| m.name.clone()).collect();
        state.key_reports = self.hub.aggregate(c, &members).key_reports;
        state.last_keys = self
            .published_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(c)
            .cloned();
        state.last_primary = self
            .primaries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(c)
            .cloned();
        state
    }

    /// The first watch that has not listed yet, if any.
    pub fn unsynced(&self) -> Option<&'static str> {
        let s = &self.synced;
        [
            (&s.networks, "GossipNetworks"),
            (&s.keys, "GossipKeys"),
            (&s.peers, "BootstrapPeers"),
            (&s.pods, "Pods"),
        ]
        .into_iter()
        .find(|(flag, _)| !flag.load(Ordering::Acquire))
        .map(|(_, what)| what)
    }

    /// Publishes an Event; failing to is logged, never fatal.
    pub async fn event(
        &self,
        reference: &k8s_openapi::api::core::v1::ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(note),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, reference).await {
            tracing::warn!(error = %e, reason, "cannot publish an Event");
        }
    }

    pub fn refresh_gauges(&self) {
        let ix = self.index();
        self.metrics.index_members.set(ix.member_count() as i64);
        self.metrics.index_clusters.set(ix.clusters().len() as i64);
    }
}
