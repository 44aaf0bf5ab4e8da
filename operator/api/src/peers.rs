//! BootstrapPeers: where a cluster's sidecars find each other.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::shared::default_cluster;

/// The seeds a cluster's sidecars join through: fixed addresses, ready
/// members picked by the operator, or both.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gossamer.dev",
    version = "v1alpha1",
    kind = "BootstrapPeers",
    plural = "bootstrappeers",
    namespaced,
    status = "BootstrapPeersStatus",
    shortname = "gpeers",
    category = "gossamer",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.cluster"}"#,
    printcolumn = r#"{"name":"Peers","type":"string","jsonPath":".status.peers"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("(has(self.static) && size(self.static) > 0) || has(self.fromMembers)").message("name at least one source of peers: spec.static (host:port list) or spec.fromMembers"))]
#[serde(rename_all = "camelCase")]
pub struct BootstrapPeersSpec {
    /// The gossip cluster these peers seed. Immutable.
    #[serde(default = "default_cluster")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.cluster is immutable: create a new BootstrapPeers in the other cluster instead"))]
    pub cluster: String,
    /// Fixed seeds as `host:port`; DNS names are re-resolved by the
    /// sidecars at every join attempt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(
            length(min = 3, max = 259),
            regex(
                pattern = r"^(\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?):[0-9]{1,5}$"
            )
        )
    )]
    pub r#static: Vec<String>,
    /// Let the operator pick ready, longest-lived members as seeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_members: Option<FromMembers>,
}

/// Seeds picked from the cluster's own members.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FromMembers {
    /// How many members to pick.
    #[schemars(range(min = 1, max = 16))]
    pub count: u8,
}

/// What the operator resolved.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapPeersStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The seeds the sidecars are told, static ones first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// Ready, Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
