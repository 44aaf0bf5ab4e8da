//! GossipKey: one AES-GCM key of a cluster's keyring.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::shared::default_cluster;

/// One AES-GCM key of a gossip cluster's keyring. The newest key that every
/// live member holds is the primary; deleting a GossipKey removes the key
/// from every keyring once no member encrypts with it any more.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gossamer.dev",
    version = "v1alpha1",
    kind = "GossipKey",
    namespaced,
    status = "GossipKeyStatus",
    shortname = "gkey",
    category = "gossamer",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.cluster"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Fingerprint","type":"string","jsonPath":".status.fingerprint"}"#,
    printcolumn = r#"{"name":"Holders","type":"integer","jsonPath":".status.holders"}"#,
    printcolumn = r#"{"name":"Members","type":"integer","jsonPath":".status.members"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("has(self.secretRef) == has(oldSelf.secretRef) && (!has(self.secretRef) || self.secretRef == oldSelf.secretRef)").message("spec.secretRef is immutable: a key's bytes are its identity; to rotate, create a new GossipKey and delete this one"))]
#[serde(rename_all = "camelCase")]
pub struct GossipKeySpec {
    /// The gossip cluster whose keyring holds this key. Immutable.
    #[serde(default = "default_cluster")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.cluster is immutable: create a new GossipKey in the other cluster instead"))]
    pub cluster: String,
    /// The Secret holding the raw key (16, 24 or 32 bytes). Omitted: the
    /// operator generates 32 random bytes into a Secret it owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// Create a successor key this long after this one was created (a Go
    /// duration such as `720h`, at least `1m`); omitted: never. The
    /// successor is a generated key with the same `rotateAfter`, named
    /// `<first key>-r<n>`; once it is primary this key is deleted and
    /// retires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(h|m|s))+$"))]
    pub rotate_after: Option<String>,
}

/// Where a key's bytes are: one key of a Secret in the GossipKey's own
/// namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("has(self.name) && has(self.key)").message("secretRef must name both the Secret (name) and the key inside it (key)"))]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub name: Option<String>,
    /// The key of the Secret's `data` that holds the raw key bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: Option<String>,
    /// The Secret's namespace. Only the GossipKey's own namespace is
    /// allowed (the reconciler refuses another); it may be left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Where a key is in its life.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyPhase {
    /// Its bytes are not usable yet (Secret missing or invalid).
    Pending,
    /// Being installed in the members' keyrings.
    Distributing,
    /// Every live member holds it; it decrypts, another key encrypts.
    Installed,
    /// Every member encrypts with it.
    Primary,
    /// Deleted: it leaves the keyrings once no member encrypts with it.
    Retiring,
}

impl KeyPhase {
    /// The phase as status and Events show it.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyPhase::Pending => "Pending",
            KeyPhase::Distributing => "Distributing",
            KeyPhase::Installed => "Installed",
            KeyPhase::Primary => "Primary",
            KeyPhase::Retiring => "Retiring",
        }
    }
}

/// What the operator observed of a key. Never the key itself.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GossipKeyStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `sha256:` and the first 8 hex digits of the SHA-256 of the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Where the key is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<KeyPhase>,
    /// Members whose keyring holds the key.
    #[serde(default)]
    pub holders: u32,
    /// Members of the cluster.
    #[serde(default)]
    pub members: u32,
    /// The Secret the key's bytes are read from (the generated one when
    /// `spec.secretRef` is omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// When `spec.rotateAfter` makes its successor, until the successor
    /// exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation: Option<Time>,
    /// The GossipKey `spec.rotateAfter` made to replace it; this key is
    /// deleted once that one is primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor: Option<String>,
    /// Ready, Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
