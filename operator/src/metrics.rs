//! The operator's metrics, in OpenMetrics text on /metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: &'static str,
    pub error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    pub namespace: String,
    pub cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InjectionLabels {
    pub outcome: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// Every metric the operator exports.
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Family<KindLabel, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub rejected: Family<ErrorLabels, Counter>,
    pub duration: Family<KindLabel, Histogram>,
    pub in_flight: Family<KindLabel, Gauge>,
    pub snapshot_queue: Gauge,
    pub snapshot_version: Family<ClusterLabels, Gauge>,
    pub snapshots_written: Counter,
    pub leader: Gauge,
    pub index_members: Gauge,
    pub index_clusters: Gauge,
    pub control_streams: Gauge,
    pub control_refused: Family<ReasonLabel, Counter>,
    pub injections: Family<InjectionLabels, Counter>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gossamer_operator");
        let reconciles = Family::<KindLabel, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let rejected = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        let in_flight = Family::<KindLabel, Gauge>::default();
        let snapshot_queue = Gauge::default();
        let snapshot_version = Family::<ClusterLabels, Gauge>::default();
        let snapshots_written = Counter::default();
        let leader = Gauge::default();
        let index_members = Gauge::default();
        let index_clusters = Gauge::default();
        let control_streams = Gauge::default();
        let control_refused = Family::<ReasonLabel, Counter>::default();
        registry.register("reconciles", "Reconciles run, by kind", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed and will be retried, by kind and error variant",
            errors.clone(),
        );
        registry.register(
            "rejected_objects",
            "Reconciles that found an object invalid (it gets a condition and an Event), by kind and reason",
            rejected.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took, by kind",
            duration.clone(),
        );
        registry.register(
            "reconciles_in_flight",
            "Reconciles running now, by kind",
            in_flight.clone(),
        );
        registry.register(
            "snapshot_queue_depth",
            "Clusters changed whose snapshot is not rebuilt yet",
            snapshot_queue.clone(),
        );
        registry.register(
            "snapshot_version",
            "Current config snapshot version, by cluster",
            snapshot_version.clone(),
        );
        registry.register(
            "snapshots_written",
            "New snapshot versions stored",
            snapshots_written.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        registry.register(
            "index_members",
            "Pods with a sidecar in the index",
            index_members.clone(),
        );
        registry.register(
            "index_clusters",
            "Gossip clusters in the index",
            index_clusters.clone(),
        );
        registry.register(
            "control_streams",
            "Open control streams (sidecars subscribed to this replica)",
            control_streams.clone(),
        );
        registry.register(
            "control_refused",
            "Control streams refused, by reason",
            control_refused.clone(),
        );
        let injections = Family::<InjectionLabels, Counter>::default();
        registry.register(
            "injections",
            "Pods seen by the sidecar injector, by outcome (injected, skipped, refused, error) and reason",
            injections.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            rejected,
            duration,
            in_flight,
            snapshot_queue,
            snapshot_version,
            snapshots_written,
            leader,
            index_members,
            index_clusters,
            control_streams,
            control_refused,
            injections,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
