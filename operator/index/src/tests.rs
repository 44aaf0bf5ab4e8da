use super::*;

fn pod(ns: &str, name: &str, cluster: Option<&str>, app: &str) -> Pod {
    let mut labels = serde_json::json!({"app": app});
    if let Some(c) = cluster {
        labels[CLUSTER_LABEL] = c.into();
    }
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "status": {"podIP": "10.0.0.9", "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap()
}

fn network(ns: &str, name: &str, cluster: &str) -> GossipNetwork {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "gossamer.dev/v1alpha1", "kind": "GossipNetwork",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}")},
        "spec": {"cluster": cluster, "memberSelector": {"matchLabels": {"app": "a"}}, "tables": [{"name": "t"}]}
    }))
    .unwrap()
}

fn c(ns: &str, name: &str) -> ClusterRef {
    ClusterRef {
        namespace: ns.into(),
        name: name.into(),
    }
}

#[test]
fn pods_are_filed_under_their_cluster_label_only() {
    let mut ix = Index::new();
    ix.apply_pod(&pod("shop", "p0", Some("default"), "a"));
    ix.apply_pod(&pod("shop", "p1", None, "a"));
    ix.apply_pod(&pod("shop", "p2", Some("blue"), "a"));
    assert_eq!(ix.cluster(&c("shop", "default")).members.len(), 1);
    assert_eq!(ix.cluster(&c("shop", "blue")).members.len(), 1);
    assert_eq!(ix.member_count(), 2);
    let m = &ix.cluster(&c("shop", "default")).members[0];
    assert!(m.ready);
    assert_eq!(m.ip.as_deref(), Some("10.0.0.9"));
}

#[test]
fn a_relabelled_pod_moves_and_a_terminating_pod_leaves() {
    let mut ix = Index::new();
    ix.apply_pod(&pod("shop", "p0", Some("default"), "a"));
    ix.apply_pod(&pod("shop", "p0", Some("blue"), "a"));
    assert!(ix.cluster(&c("shop", "default")).members.is_empty());
    assert_eq!(ix.cluster(&c("shop", "blue")).members.len(), 1);
    let mut p = pod("shop", "p0", Some("blue"), "a");
    p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Default::default(),
    ));
    ix.apply_pod(&p);
    assert!(ix.cluster(&c("shop", "blue")).members.is_empty());
    assert!(ix.clusters().is_empty(), "empty clusters are pruned");
}

#[test]
fn only_real_changes_mark_a_cluster_dirty() {
    let mut ix = Index::new();
    let n = network("shop", "endpoints", "default");
    ix.apply_network(&n);
    assert_eq!(ix.take_dirty(), [c("shop", "default")]);
    ix.apply_network(&n);
    assert!(
        ix.take_dirty().is_empty(),
        "an unchanged object is not a change"
    );
    let p = pod("shop", "p0", Some("default"), "a");
    ix.apply_pod(&p);
    assert_eq!(ix.take_dirty().len(), 1);
    ix.apply_pod(&p);
    assert!(ix.take_dirty().is_empty());
    ix.delete_network("shop", "endpoints");
    ix.delete_pod("shop", "p0");
    assert_eq!(ix.take_dirty(), [c("shop", "default")]);
    assert!(ix.clusters().is_empty());
}

#[test]
fn clusters_of_other_namespaces_never_mix() {
    let mut ix = Index::new();
    ix.apply_network(&network("shop", "endpoints", "default"));
    ix.apply_network(&network("bank", "endpoints", "default"));
    assert_eq!(ix.clusters(), [c("bank", "default"), c("shop", "default")]);
    assert_eq!(ix.objects_of(&c("shop", "default")).networks, ["endpoints"]);
}

#[test]
fn an_unchanged_object_keeps_a_pending_change_of_its_cluster() {
    let mut ix = Index::new();
    ix.apply_network(&network("shop", "n", "default"));
    assert_eq!(ix.take_dirty(), [c("shop", "default")]);
    // Something else changed the cluster (a key's bytes, a report) ...
    ix.mark_dirty(c("shop", "default"));
    // ... and an unchanged object arrives before the rebuild.
    ix.apply_network(&network("shop", "n", "default"));
    assert_eq!(ix.take_dirty(), [c("shop", "default")]);
    // With nothing pending, an unchanged object changes nothing.
    ix.apply_network(&network("shop", "n", "default"));
    assert!(ix.take_dirty().is_empty());
}
