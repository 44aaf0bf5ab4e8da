//! GossipNetwork: one NetworkDB network and its tables.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::shared::default_cluster;

/// A NetworkDB network: the sidecars of the Pods that `memberSelector`
/// picks join it, and replicate its tables among themselves.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gossamer.dev",
    version = "v1alpha1",
    kind = "GossipNetwork",
    namespaced,
    status = "GossipNetworkStatus",
    shortname = "gnet",
    category = "gossamer",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.cluster"}"#,
    printcolumn = r#"{"name":"Network","type":"string","jsonPath":".status.networkId"}"#,
    printcolumn = r#"{"name":"Members","type":"integer","jsonPath":".status.members"}"#,
    printcolumn = r#"{"name":"Acknowledged","type":"integer","jsonPath":".status.acknowledged"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GossipNetworkSpec {
    /// The gossip cluster (one memberlist membership and keyring) this
    /// network lives in. Immutable.
    #[serde(default = "default_cluster")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.cluster is immutable: create a new object in the other cluster instead"))]
    pub cluster: String,
    /// Pods whose sidecars join this network. An empty selector selects
    /// every Pod of the namespace that carries a sidecar of the cluster.
    #[serde(default)]
    pub member_selector: LabelSelector,
    /// The tables of the network. Names are unique.
    #[serde(default)]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("self.all(t, self.exists_one(u, u.name == t.name))").message("table names must be unique within a network"))]
    pub tables: Vec<TableSpec>,
}

/// One table of a network.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    /// The table's name, as applications name it in the local API.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$")
    )]
    pub name: String,
}

/// What the operator observed of a network.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GossipNetworkStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The network's stable wire id, derived from the object's uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_id: Option<String>,
    /// Pods selected that carry a sidecar of the cluster.
    #[serde(default)]
    pub members: u32,
    /// Members running the cluster's current config snapshot.
    #[serde(default)]
    pub acknowledged: u32,
    /// Table entries the members report (0 until they report).
    #[serde(default)]
    pub entries: u64,
    /// Ready, Converged, Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
