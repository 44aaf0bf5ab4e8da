//! Pieces every resource shares.

/// The gossip cluster a resource belongs to when `spec.cluster` is not set.
pub const DEFAULT_CLUSTER: &str = "default";

/// The memberlist label of a gossip cluster: `<namespace>/<cluster>`, so
/// two clusters never merge, even when Pod IPs are reused.
pub fn cluster_label(namespace: &str, cluster: &str) -> String {
    format!("{namespace}/{cluster}")
}

pub(crate) fn default_cluster() -> String {
    DEFAULT_CLUSTER.to_string()
}
