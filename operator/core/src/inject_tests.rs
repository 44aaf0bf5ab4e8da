use super::*;

fn ctx() -> InjectContext {
    InjectContext {
        operator_namespace: "gossamer-system".into(),
        gossip_port: 7946,
        audience: "gossamer".into(),
        default_endpoint: "https://gossamer-operator.gossamer-system.svc:8443".into(),
        ca_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
    }
}

fn pod(v: Value) -> Pod {
    serde_json::from_value(v).unwrap()
}

fn annotated(extra: Value) -> Value {
    let mut p = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"annotations": {INJECT_ANNOTATION: "true"}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
    });
    json_patch::merge(&mut p, &extra);
    p
}

/// Applies the decision's operations to the Pod's JSON, as the API server
/// does with the webhook's answer.
fn mutated(p: &Value) -> (String, Value) {
    match inject(&pod(p.clone()), "apps", &InjectConfig::default(), &ctx()).unwrap() {
        Injection::Patch { cluster, ops } => {
            let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops)).unwrap();
            let mut out = p.clone();
            json_patch::patch(&mut out, &patch).unwrap();
            (cluster, out)
        }
        other => panic!("expected a patch, got {other:?}"),
    }
}

fn decide(p: Value) -> Result<Injection, InjectError> {
    inject(&pod(p), "apps", &InjectConfig::default(), &ctx())
}

#[test]
fn pods_that_do_not_ask_are_left_alone() {
    let plain = json!({"spec": {"containers": [{"name": "app"}]}});
    assert_eq!(
        decide(plain).unwrap(),
        Injection::Unchanged(Skip::NotRequested)
    );
    let off = annotated(json!({"metadata": {"annotations": {INJECT_ANNOTATION: "false"}}}));
    assert_eq!(
        decide(off).unwrap(),
        Injection::Unchanged(Skip::NotRequested)
    );
}

#[test]
fn the_sidecar_is_a_native_sidecar_first_among_init_containers() {
    let p = annotated(json!({"spec": {"initContainers": [{"name": "migrate", "image": "m:1"}]}}));
    let (cluster, out) = mutated(&p);
    assert_eq!(cluster, "default");
    let init = out["spec"]["initContainers"].as_array().unwrap();
    assert_eq!(init.len(), 2);
    assert_eq!(init[0]["name"], SIDECAR_CONTAINER);
    assert_eq!(init[0]["restartPolicy"], "Always");
    assert_eq!(
        init[1]["name"], "migrate",
        "the user's init container is kept"
    );
    let env = init[0]["env"].as_array().unwrap();
    let value = |n: &str| {
        env.iter()
            .find(|e| e["name"] == n)
            .unwrap_or_else(|| panic!("no {n} in {env:?}"))
            .clone()
    };
    assert_eq!(value("GOSSAMER_CLUSTER")["value"], "default");
    assert_eq!(
        value("GOSSAMER_CONTROL_ENDPOINT")["value"],
        "https://gossamer-operator.gossamer-system.svc:8443"
    );
    assert_eq!(
        value("GOSSAMER_CONTROL_CA_PEM")["value"],
        json!(ctx().ca_pem)
    );
    assert_eq!(
        value("POD_IP")["valueFrom"]["fieldRef"]["fieldPath"],
        "status.podIP"
    );
    assert_eq!(out["metadata"]["labels"][CLUSTER_LABEL], "default");
    // The typed Pod reads back: the patch made a valid Pod.
    let typed = pod(out.clone());
    let spec = typed.spec.unwrap();
    let vols: Vec<_> = spec.volumes.unwrap().into_iter().map(|v| v.name).collect();
    assert_eq!(vols, vec![TOKEN_VOLUME, API_VOLUME]);
    let app = &spec.containers[0];
    assert_eq!(app.env.as_ref().unwrap()[0].name, API_ENV);
    assert_eq!(
        app.env.as_ref().unwrap()[0].value.as_deref(),
        Some("unix:/var/run/gossamer/api.sock")
    );
    assert_eq!(
        app.volume_mounts.as_ref().unwrap()[0].mount_path,
        "/var/run/gossamer"
    );
}

#[test]
fn what_the_user_wrote_is_appended_to_never_replaced() {
    let p = annotated(json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "volumes": [{"name": "data", "emptyDir": {}}],
            "containers": [
                {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}],
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                {"name": "second", "image": "s:1"},
            ],
        },
    }));
    let (_, out) = mutated(&p);
    assert_eq!(out["metadata"]["labels"]["app"], "web");
    assert_eq!(out["metadata"]["labels"][CLUSTER_LABEL], "default");
    assert_eq!(out["spec"]["volumes"].as_array().unwrap().len(), 3);
    assert_eq!(out["spec"]["volumes"][0]["name"], "data");
    let app = &out["spec"]["containers"][0];
    assert_eq!(app["env"][0]["name"], "A");
    assert_eq!(app["env"][1]["name"], API_ENV);
    assert_eq!(app["volumeMounts"][0]["name"], "data");
    assert_eq!(app["volumeMounts"][1]["name"], API_VOLUME);
    assert_eq!(out["spec"]["containers"][1]["env"][0]["name"], API_ENV);
    // Every operation adds.
    let Injection::Patch { ops, .. } = decide(p).unwrap() else {
        panic!()
    };
    assert!(ops.iter().all(|o| o["op"] == "add"), "{ops:?}");
}

#[test]
fn injecting_twice_changes_nothing() {
    let (_, once) = mutated(&annotated(json!({})));
    assert_eq!(
        decide(once).unwrap(),
        Injection::Unchanged(Skip::AlreadyInjected)
    );
}

#[test]
fn the_cluster_comes_from_the_annotation_or_the_label() {
    let (c, out) = mutated(&annotated(
        json!({"metadata": {"annotations": {CLUSTER_ANNOTATION: "payments"}}}),
    ));
    assert_eq!(c, "payments");
    assert_eq!(out["metadata"]["labels"][CLUSTER_LABEL], "payments");
    let (c, _) = mutated(&annotated(
        json!({"metadata": {"labels": {CLUSTER_LABEL: "orders"}}}),
    ));
    assert_eq!(c, "orders");
    let same = annotated(json!({"metadata": {
        "labels": {CLUSTER_LABEL: "orders"},
        "annotations": {CLUSTER_ANNOTATION: "orders"}}}));
    assert_eq!(mutated(&same).0, "orders");
}

#[test]
fn the_operator_namespace_is_never_injected() {
    let p = pod(annotated(json!({})));
    assert_eq!(
        inject(&p, "gossamer-system", &InjectConfig::default(), &ctx()).unwrap(),
        Injection::Unchanged(Skip::OperatorNamespace)
    );
}

#[test]
fn bad_pods_are_refused_with_what_to_do() {
    let cases = [
        (
            annotated(json!({"metadata": {"annotations": {INJECT_ANNOTATION: "yes"}}})),
            "annotation gossamer.dev/inject is \"yes\"; use \"true\" or \"false\"",
        ),
        (
            annotated(json!({"metadata": {"annotations": {CLUSTER_ANNOTATION: "Pay_ments"}}})),
            "gossip cluster name \"Pay_ments\" (from annotation) is invalid",
        ),
        (
            annotated(json!({"metadata": {
                "annotations": {CLUSTER_ANNOTATION: "a"}, "labels": {CLUSTER_LABEL: "b"}}})),
            "annotation gossamer.dev/cluster is \"a\" but label gossamer.dev/cluster is \"b\"",
        ),
        (
            annotated(json!({"spec": {"volumes": [{"name": API_VOLUME, "emptyDir": {}}]}})),
            "a volume named \"gossamer-api\"",
        ),
        (
            annotated(json!({"spec": {"containers": [
                {"name": "app", "ports": [{"containerPort": 7946}]}]}})),
            "container \"app\" uses port 7946",
        ),
        (
            annotated(json!({"spec": {"containers": [
                {"name": "app", "env": [{"name": API_ENV, "value": "x"}]}]}})),
            "container \"app\" already sets GOSSAMER_API",
        ),
        (
            annotated(json!({"spec": {"hostNetwork": true}})),
            "the Pod uses hostNetwork",
        ),
    ];
    for (p, want) in cases {
        let err = decide(p.clone()).expect_err(&p.to_string()).to_string();
        assert!(err.contains(want), "{err}\nwanted: {want}");
    }
}

#[test]
fn the_config_is_checked_field_by_field() {
    assert_eq!(InjectConfig::default().validate(), Ok(()));
    let cases: [(Value, &str); 6] = [
        (json!({"image": " "}), "image"),
        (json!({"imagePullPolicy": "Sometimes"}), "imagePullPolicy"),
        (
            json!({"controlEndpoint": "http://op:8443"}),
            "controlEndpoint",
        ),
        (json!({"defaultCluster": "Bad Name"}), "defaultCluster"),
        (
            json!({"tokenExpirationSeconds": 60}),
            "tokenExpirationSeconds",
        ),
        (json!({"probePeriodSeconds": 0}), "probePeriodSeconds"),
    ];
    for (v, field) in cases {
        let cfg: InjectConfig = serde_json::from_value(v.clone()).unwrap();
        let err = cfg.validate().expect_err(&v.to_string()).to_string();
        assert!(
            err.starts_with(&format!("inject config: {field} is ")),
            "{err}"
        );
    }
    let unknown = serde_json::from_value::<InjectConfig>(json!({"imag": "x"}));
    assert!(unknown
        .unwrap_err()
        .to_string()
        .contains("unknown field `imag`"));
}

#[test]
fn the_configured_resources_and_endpoint_are_used() {
    let cfg: InjectConfig = serde_json::from_value(json!({
        "image": "registry.example/gossamer/sidecar:1.2.3",
        "controlEndpoint": "https://op.example:9443",
        "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}},
    }))
    .unwrap();
    let Injection::Patch { ops, .. } =
        inject(&pod(annotated(json!({}))), "apps", &cfg, &ctx()).unwrap()
    else {
        panic!()
    };
    let sidecar = &ops
        .iter()
        .find(|o| o["path"] == "/spec/initContainers")
        .unwrap()["value"][0];
    assert_eq!(sidecar["image"], "registry.example/gossamer/sidecar:1.2.3");
    assert_eq!(sidecar["resources"]["requests"]["memory"], "32Mi");
    assert!(sidecar["env"].as_array().unwrap().contains(
        &json!({"name": "GOSSAMER_CONTROL_ENDPOINT", "value": "https://op.example:9443"})
    ));
}
