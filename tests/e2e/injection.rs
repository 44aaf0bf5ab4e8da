//! The sidecar injector against a real API server: the operator runs as a
//! process with its own ServiceAccount's RBAC, fills the caBundle of the
//! MutatingWebhookConfiguration, and the API server calls it over TLS for
//! every Pod created in the selected namespaces. The Pods need no node:
//! what is checked is what the API server stores.

#![allow(clippy::disallowed_methods)] // tests wait on the wall clock

use std::time::Duration;

use gossamer_tests::kube::ControlPlane;
use gossamer_tests::operator::{
    Operator, OperatorOptions, CA_BUNDLE_CONFIGMAP, INJECTOR_CONFIGURATION, OPERATOR_NAMESPACE,
};
use gossamer_tests::{test_temp_dir, wait_until};
use serde_json::Value;

fn cp() -> &'static ControlPlane {
    ControlPlane::shared().expect("the control plane starts")
}

fn kubectl(args: &[&str]) -> gossamer_tests::KubectlOutput {
    cp().kubectl(args).expect("kubectl runs")
}

/// The webhook configuration a user's chart would install, pointing at
/// the operator process by URL and selecting `namespaces` only (so the
/// other tests' Pods on this control plane never reach it).
fn webhook_yaml(port: u16, namespaces: &[&str]) -> String {
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: {INJECTOR_CONFIGURATION}
webhooks:
- name: inject.gossamer.dev
  clientConfig:
    url: https://127.0.0.1:{port}/inject
  rules:
  - operations: [CREATE]
    apiGroups: [""]
    apiVersions: [v1]
    resources: [pods]
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  reinvocationPolicy: IfNeeded
  timeoutSeconds: 5
  namespaceSelector:
    matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: In
      values: [{}]
"#,
        namespaces.join(", ")
    )
}

fn pod_yaml(ns: &str, name: &str, annotations: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {ns}
  annotations: {{{annotations}}}
spec:
  containers:
  - name: app
    image: example.invalid/app:1
    env: [{{name: GREETING, value: hello}}]
"#
    )
}

fn pod_json(ns: &str, name: &str) -> Value {
    let out = kubectl(&["get", "pod", name, "-n", ns, "-o", "json"]);
    assert!(out.success(), "get pod {ns}/{name}: {}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

/// Starts the operator with an inject config, installs the webhook
/// configuration, and waits until the operator has set its caBundle.
fn injector(namespaces: &[&str]) -> Operator {
    let config = test_temp_dir().join("inject.yaml");
    std::fs::write(
        &config,
        "image: registry.example/gossamer/sidecar:9.9.9\n\
         imagePullPolicy: IfNotPresent\n\
         resources: {requests: {cpu: 10m, memory: 24Mi}, limits: {memory: 96Mi}}\n\
         probePeriodSeconds: 3\n",
    )
    .unwrap();
    let mut opts = OperatorOptions::new("injector");
    opts.inject_config = Some(config);
    let op = Operator::start(cp(), opts).expect("the operator starts");
    cp().kubectl_apply_stdin(&webhook_yaml(op.webhook_port(), namespaces))
        .unwrap()
        .ok()
        .unwrap();
    let ca = ca_bundle();
    wait_until(
        Duration::from_secs(30),
        "the operator sets the webhook's caBundle to its CA",
        || {
            let got = kubectl(&[
                "get",
                "mutatingwebhookconfiguration",
                INJECTOR_CONFIGURATION,
                "-o",
                "jsonpath={.webhooks[0].clientConfig.caBundle}",
            ]);
            if decode_base64(got.stdout.trim()) == ca {
                Ok(())
            } else {
                Err(got.stdout)
            }
        },
    );
    op
}

fn ca_bundle() -> String {
    let out = kubectl(&[
        "get",
        "configmap",
        CA_BUNDLE_CONFIGMAP,
        "-n",
        OPERATOR_NAMESPACE,
        "-o",
        "jsonpath={.data.ca\\.crt}",
    ]);
    assert!(out.success(), "{}", out.stderr);
    out.stdout
}

fn decode_base64(text: &str) -> String {
    let out = std::process::Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .expect("base64 runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn env_of(container: &Value, name: &str) -> Value {
    container["env"]
        .as_array()
        .and_then(|e| e.iter().find(|v| v["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no env {name} in {container}"))
}

/// One operator and one webhook configuration serve every case, in order:
/// they share the cluster-scoped configuration.
#[test]
fn annotated_pods_get_the_sidecar_and_bad_ones_are_refused() {
    let ns = cp().namespace("inject").unwrap();
    let op = injector(&[&ns, OPERATOR_NAMESPACE]);

    // An annotated Pod gets the native sidecar, its volumes, the label and
    // the API socket in the app container.
    let annotations = r#""gossamer.dev/inject": "true", "gossamer.dev/cluster": "payments""#;
    cp().kubectl_apply_stdin(&pod_yaml(&ns, "web", annotations))
        .unwrap()
        .ok()
        .unwrap();
    let pod = pod_json(&ns, "web");
    assert_eq!(
        pod["metadata"]["labels"]["gossamer.dev/cluster"],
        "payments"
    );
    let sidecar = &pod["spec"]["initContainers"][0];
    assert_eq!(sidecar["name"], "gossamer");
    assert_eq!(sidecar["restartPolicy"], "Always", "not a native sidecar");
    assert_eq!(sidecar["image"], "registry.example/gossamer/sidecar:9.9.9");
    assert_eq!(sidecar["resources"]["limits"]["memory"], "96Mi");
    assert_eq!(sidecar["readinessProbe"]["periodSeconds"], 3);
    assert_eq!(env_of(sidecar, "GOSSAMER_CLUSTER")["value"], "payments");
    assert_eq!(
        env_of(sidecar, "GOSSAMER_CONTROL_CA_PEM")["value"],
        ca_bundle()
    );
    // The operator's Service, on the control stream's port.
    assert_eq!(
        env_of(sidecar, "GOSSAMER_CONTROL_ENDPOINT")["value"],
        format!(
            "https://gossamer-operator.gossamer-system.svc:{}",
            op.control_port()
        )
    );
    let ports: Vec<_> = sidecar["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["containerPort"].clone(), p["protocol"].clone()))
        .collect();
    assert!(ports.contains(&(7946.into(), "UDP".into())), "{ports:?}");
    assert!(ports.contains(&(7946.into(), "TCP".into())), "{ports:?}");
    let token = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "gossamer-token")
        .expect("the projected token volume");
    assert_eq!(
        token["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "gossamer"
    );
    let app = &pod["spec"]["containers"][0];
    assert_eq!(
        env_of(app, "GREETING")["value"],
        "hello",
        "the user's env is kept"
    );
    assert_eq!(
        env_of(app, "GOSSAMER_API")["value"],
        "unix:/var/run/gossamer/api.sock"
    );
    // After the ServiceAccount admission plugin's own mount.
    let mount = app["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "gossamer-api")
        .unwrap_or_else(|| panic!("no gossamer-api mount in {app}"));
    assert_eq!(mount["mountPath"], "/var/run/gossamer");

    // A Pod without the annotation is stored as written.
    cp().kubectl_apply_stdin(&pod_yaml(&ns, "plain", ""))
        .unwrap()
        .ok()
        .unwrap();
    let plain = pod_json(&ns, "plain");
    assert!(plain["spec"]["initContainers"].is_null(), "{plain}");
    assert!(plain["metadata"]["labels"].is_null(), "{plain}");

    // Without a cluster annotation, the default cluster.
    cp().kubectl_apply_stdin(&pod_yaml(&ns, "dflt", r#""gossamer.dev/inject": "true""#))
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(
        pod_json(&ns, "dflt")["metadata"]["labels"]["gossamer.dev/cluster"],
        "default"
    );

    // A server-side dry run shows the injected Pod and stores nothing.
    let dry = kubectl(&[
        "create",
        "--dry-run=server",
        "-o",
        "json",
        "-f",
        &write_temp("dry.yaml", &pod_yaml(&ns, "dry", annotations)),
    ]);
    assert!(dry.success(), "{}", dry.stderr);
    let dry: Value = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!(dry["spec"]["initContainers"][0]["name"], "gossamer");
    assert!(!kubectl(&["get", "pod", "dry", "-n", &ns]).success());

    // Bad annotations are refused with what to do, and nothing is stored.
    for (name, annotations, want) in [
        (
            "bad-value",
            r#""gossamer.dev/inject": "yes""#,
            r#"annotation gossamer.dev/inject is "yes"; use "true" or "false""#,
        ),
        (
            "bad-cluster",
            r#""gossamer.dev/inject": "true", "gossamer.dev/cluster": "Not_A_Label""#,
            r#"gossip cluster name "Not_A_Label" (from annotation) is invalid"#,
        ),
    ] {
        let out = cp()
            .kubectl_apply_stdin(&pod_yaml(&ns, name, annotations))
            .unwrap();
        assert!(!out.success(), "{name} was admitted");
        assert!(
            out.stderr.contains("denied the request") && out.stderr.contains(want),
            "{name}: {}",
            out.stderr
        );
        assert!(!kubectl(&["get", "pod", name, "-n", &ns]).success());
    }

    // The operator's own namespace is never injected, even when selected.
    cp().kubectl_apply_stdin(&pod_yaml(OPERATOR_NAMESPACE, "own", annotations))
        .unwrap()
        .ok()
        .unwrap();
    assert!(pod_json(OPERATOR_NAMESPACE, "own")["spec"]["initContainers"].is_null());
    kubectl(&[
        "delete",
        "pod",
        "own",
        "-n",
        OPERATOR_NAMESPACE,
        "--wait=false",
    ]);

    // A cleared caBundle is put back.
    kubectl(&[
        "patch",
        "mutatingwebhookconfiguration",
        INJECTOR_CONFIGURATION,
        "--type=json",
        "-p",
        r#"[{"op": "remove", "path": "/webhooks/0/clientConfig/caBundle"}]"#,
    ]);
    let ca = ca_bundle();
    wait_until(
        Duration::from_secs(20),
        "the operator restores the cleared caBundle",
        || {
            let got = kubectl(&[
                "get",
                "mutatingwebhookconfiguration",
                INJECTOR_CONFIGURATION,
                "-o",
                "jsonpath={.webhooks[0].clientConfig.caBundle}",
            ]);
            if decode_base64(got.stdout.trim()) == ca {
                Ok(())
            } else {
                Err(got.stdout)
            }
        },
    );

    // Every outcome is counted.
    for series in [
        r#"gossamer_operator_injections_total{outcome="injected",reason="Injected"}"#,
        r#"gossamer_operator_injections_total{outcome="skipped",reason="NotRequested"}"#,
        r#"gossamer_operator_injections_total{outcome="skipped",reason="OperatorNamespace"}"#,
        r#"gossamer_operator_injections_total{outcome="refused",reason="BadInjectValue"}"#,
        r#"gossamer_operator_injections_total{outcome="refused",reason="BadCluster"}"#,
    ] {
        let v = op.metric(series);
        assert!(v.is_some_and(|v| v >= 1.0), "{series} is {v:?}");
    }
    // Three injections: web, dflt and the dry run.
    assert_eq!(
        op.metric(r#"gossamer_operator_injections_total{outcome="injected",reason="Injected"}"#),
        Some(3.0)
    );
    kubectl(&[
        "delete",
        "mutatingwebhookconfiguration",
        INJECTOR_CONFIGURATION,
    ]);
    op.check_running().unwrap();
}

fn write_temp(name: &str, text: &str) -> String {
    let path = test_temp_dir().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}
