//! Whether a sidecar's hello may open a control stream.
//!
//! The runtime authenticates the token (TokenReview) and looks the Pod up
//! in the index; this decides, from those facts alone, whether the stream
//! is accepted and for which cluster.

use crate::ClusterRef;

/// What a sidecar says of itself in its hello.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelloClaim {
    /// Cluster name.
    pub cluster: String,
    /// Cluster namespace.
    pub cluster_namespace: String,
    /// Pod namespace.
    pub pod_namespace: String,
    /// Pod name.
    pub pod_name: String,
}

/// The Pod a verified token is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentity {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for PodIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why a hello is refused. The message names the offending values (never
/// the token, which this never sees).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelloRefusal {
    /// A required field is empty.
    #[error("hello field {0} is empty; a sidecar MUST name its cluster, namespaces and Pod")]
    Missing(&'static str),
    /// The hello names another Pod than the token's.
    #[error("the hello claims Pod {claimed}, but the token is bound to Pod {token}")]
    OtherPod {
        /// What the hello says.
        claimed: String,
        /// What the token says.
        token: String,
    },
    /// The cluster is in another namespace than the Pod.
    #[error(
        "Pod {pod} cannot join cluster {cluster}: a cluster's members are Pods of its own namespace"
    )]
    OtherNamespace {
        /// The Pod.
        pod: String,
        /// The cluster asked for.
        cluster: String,
    },
    /// The Pod is not a member of the cluster.
    #[error("Pod {pod} is not a member of cluster {cluster}: {why}")]
    NotMember {
        /// The Pod.
        pod: String,
        /// The cluster asked for.
        cluster: String,
        /// What the index knows of the Pod.
        why: String,
    },
}

impl HelloRefusal {
    /// Whether the refusal is about who the caller is (gRPC
    /// `UNAUTHENTICATED`) rather than what it may do (`PERMISSION_DENIED`)
    /// or a malformed hello (`INVALID_ARGUMENT`).
    pub fn kind(&self) -> RefusalKind {
        match self {
            HelloRefusal::Missing(_) => RefusalKind::Invalid,
            HelloRefusal::OtherPod { .. } => RefusalKind::Unauthenticated,
            HelloRefusal::OtherNamespace { .. } | HelloRefusal::NotMember { .. } => {
                RefusalKind::PermissionDenied
            }
        }
    }

    /// A short reason for metric labels and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            HelloRefusal::Missing(_) => "InvalidHello",
            HelloRefusal::OtherPod { .. } => "OtherPod",
            HelloRefusal::OtherNamespace { .. } => "OtherNamespace",
            HelloRefusal::NotMember { .. } => "NotMember",
        }
    }
}

/// The class of a refusal, which the runtime maps to a gRPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// `INVALID_ARGUMENT`.
    Invalid,
    /// `UNAUTHENTICATED`.
    Unauthenticated,
    /// `PERMISSION_DENIED`.
    PermissionDenied,
}

/// Decides a hello. `identity` is the Pod the token is bound to, or `None`
/// in development mode (no token checked: the hello's Pod is taken as is);
/// `filed_under` is the cluster the index files that Pod under, if any.
pub fn check_hello(
    hello: &HelloClaim,
    identity: Option<&PodIdentity>,
    filed_under: Option<&ClusterRef>,
) -> Result<ClusterRef, HelloRefusal> {
    for (field, v) in [
        ("cluster", &hello.cluster),
        ("cluster_namespace", &hello.cluster_namespace),
        ("pod_namespace", &hello.pod_namespace),
        ("pod_name", &hello.pod_name),
    ] {
        if v.is_empty() {
            return Err(HelloRefusal::Missing(field));
        }
    }
    let claimed = PodIdentity {
        namespace: hello.pod_namespace.clone(),
        name: hello.pod_name.clone(),
    };
    if let Some(id) = identity {
        if *id != claimed {
            return Err(HelloRefusal::OtherPod {
                claimed: claimed.to_string(),
                token: id.to_string(),
            });
        }
    }
    let wanted = ClusterRef {
        namespace: hello.cluster_namespace.clone(),
        name: hello.cluster.clone(),
    };
    if wanted.namespace != claimed.namespace {
        return Err(HelloRefusal::OtherNamespace {
            pod: claimed.to_string(),
            cluster: wanted.to_string(),
        });
    }
    match filed_under {
        Some(c) if *c == wanted => Ok(wanted),
        Some(c) => Err(HelloRefusal::NotMember {
            pod: claimed.to_string(),
            cluster: wanted.to_string(),
            why: format!("it is labelled for cluster {c}"),
        }),
        None => Err(HelloRefusal::NotMember {
            pod: claimed.to_string(),
            cluster: wanted.to_string(),
            why: format!(
                "no such Pod with label {}={} (or it is terminating or finished)",
                gossamer_operator_api::CLUSTER_LABEL,
                wanted.name
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> HelloClaim {
        HelloClaim {
            cluster: "default".into(),
            cluster_namespace: "shop".into(),
            pod_namespace: "shop".into(),
            pod_name: "web-0".into(),
        }
    }

    fn pod(ns: &str, name: &str) -> PodIdentity {
        PodIdentity {
            namespace: ns.into(),
            name: name.into(),
        }
    }

    fn cluster(ns: &str, name: &str) -> ClusterRef {
        ClusterRef {
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_member_with_its_own_token_is_accepted() {
        let c = check_hello(
            &hello(),
            Some(&pod("shop", "web-0")),
            Some(&cluster("shop", "default")),
        );
        assert_eq!(c, Ok(cluster("shop", "default")));
    }

    #[test]
    fn a_hello_for_another_pod_is_unauthenticated() {
        let e = check_hello(
            &hello(),
            Some(&pod("shop", "web-1")),
            Some(&cluster("shop", "default")),
        )
        .unwrap_err();
        assert_eq!(e.kind(), RefusalKind::Unauthenticated);
        assert_eq!(
            e.to_string(),
            "the hello claims Pod shop/web-0, but the token is bound to Pod shop/web-1"
        );
    }

    #[test]
    fn a_pod_outside_the_cluster_is_denied() {
        let e = check_hello(&hello(), Some(&pod("shop", "web-0")), None).unwrap_err();
        assert_eq!(e.kind(), RefusalKind::PermissionDenied);
        assert!(
            e.to_string().contains("gossamer.dev/cluster=default"),
            "{e}"
        );
        let e = check_hello(
            &hello(),
            Some(&pod("shop", "web-0")),
            Some(&cluster("shop", "other")),
        )
        .unwrap_err();
        assert_eq!(e.reason(), "NotMember");
        assert!(e.to_string().contains("shop/other"), "{e}");
    }

    #[test]
    fn a_cluster_of_another_namespace_is_denied() {
        let mut h = hello();
        h.cluster_namespace = "bank".into();
        let e = check_hello(
            &h,
            Some(&pod("shop", "web-0")),
            Some(&cluster("bank", "default")),
        )
        .unwrap_err();
        assert_eq!(e.kind(), RefusalKind::PermissionDenied);
        assert_eq!(e.reason(), "OtherNamespace");
    }

    #[test]
    fn an_empty_field_is_invalid() {
        let mut h = hello();
        h.pod_name.clear();
        let e = check_hello(&h, None, None).unwrap_err();
        assert_eq!(e, HelloRefusal::Missing("pod_name"));
        assert_eq!(e.kind(), RefusalKind::Invalid);
    }

    #[test]
    fn without_a_token_the_hello_names_the_pod_but_membership_still_counts() {
        assert_eq!(
            check_hello(&hello(), None, Some(&cluster("shop", "default"))),
            Ok(cluster("shop", "default"))
        );
        assert!(check_hello(&hello(), None, None).is_err());
    }
}
