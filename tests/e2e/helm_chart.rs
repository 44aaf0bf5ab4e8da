//! The Helm chart `charts/gossamer` with the pinned helm and a real API
//! server: lint, rendering, the values schema, server-side validation of
//! every object (under the restricted Pod Security profile), and a release's
//! install, upgrade and uninstall. There is no node, so the operator's Pods
//! stay Pending; nothing here waits for them to run.
//!
//! Each cluster test works in namespaces of its own and under its own
//! release name: cluster-scoped objects (ClusterRole, webhook
//! configuration) are named after the release.

// These tests drive real processes: their deadlines are wall-clock.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use gossamer_tests::kube::{ControlPlane, KubeBinaries};
use gossamer_tests::{test_temp_dir, wait_until, workspace_root};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// The CRDs the chart installs, by name.
const GOSSAMER_CRDS: [&str; 3] = [
    "gossipnetworks.gossamer.dev",
    "gossipkeys.gossamer.dev",
    "bootstrappeers.gossamer.dev",
];

/// Just enough of a Prometheus Operator CRD (ServiceMonitor, PodMonitor)
/// for the API server to accept the chart's object of that kind.
fn monitoring_crd(kind: &str) -> String {
    let singular = kind.to_lowercase();
    format!(
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {singular}s.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names:
    kind: {kind}
    listKind: {kind}List
    plural: {singular}s
    singular: {singular}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"
    )
}

fn cp() -> &'static ControlPlane {
    ControlPlane::shared().expect("the real control plane starts (tests/kube/install.sh builds it)")
}

fn chart() -> PathBuf {
    workspace_root().join("charts/gossamer")
}

fn all_on_values() -> PathBuf {
    chart().join("ci/all-on-values.yaml")
}

/// What one helm or kubectl run printed.
#[derive(Debug)]
struct Run {
    command: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Its stdout; panics with everything it printed when it failed.
    fn ok(self) -> String {
        assert!(
            self.status.success(),
            "`{}` failed ({}):\nstderr: {}\nstdout: {}",
            self.command,
            self.status,
            self.stderr.trim_end(),
            self.stdout.trim_end()
        );
        self.stdout
    }

    /// Its stderr; panics when it succeeded.
    fn refused(self) -> String {
        assert!(
            !self.status.success(),
            "`{}` should have failed but succeeded; stdout:\n{}",
            self.command,
            self.stdout
        );
        self.stderr
    }
}

/// Runs the pinned helm (never one on `PATH`) with its config, cache and
/// data folders under this test's temp folder, and no `$KUBECONFIG`: a
/// command that talks to a cluster passes `--kubeconfig` itself.
fn helm(args: &[&str]) -> Run {
    let bin = KubeBinaries::find()
        .and_then(|b| b.get("helm"))
        .unwrap_or_else(|e| panic!("no helm to test the chart with: {e}"));
    let home = test_temp_dir().join("helm");
    let command = format!("{} {}", bin.display(), args.join(" "));
    let out = Command::new(&bin)
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env("KUBECACHEDIR", home.join("kube-cache"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{command}`: {e}"));
    Run {
        command,
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `helm <args> --kubeconfig <admin> -n <ns>`.
fn helm_in(ns: &str, args: &[&str]) -> Run {
    let kubeconfig = cp().admin_kubeconfig().display().to_string();
    let mut all = args.to_vec();
    all.extend(["--kubeconfig", &kubeconfig, "--namespace", ns]);
    helm(&all)
}

/// `helm template <release> charts/gossamer -n <ns> <extra>`, rendered.
fn render(release: &str, ns: &str, extra: &[&str]) -> String {
    let chart = chart().display().to_string();
    let mut args = vec!["template", release, &chart, "--namespace", ns];
    args.extend(extra);
    helm(&args).ok()
}

fn kubectl(args: &[&str]) -> Run {
    let out = cp().kubectl(args).expect("kubectl runs");
    Run {
        command: out.command,
        status: out.status,
        stdout: out.stdout,
        stderr: out.stderr,
    }
}

/// Writes `text` to a fresh file under this test's temp folder.
fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = test_temp_dir().join("helm-chart");
    fs::create_dir_all(&dir).expect("the test's temp folder can be created");
    let path = dir.join(name);
    fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

/// The documents of a rendered stream, each with its `kind`.
fn documents(rendered: &str) -> Vec<(String, String)> {
    rendered
        .split("\n---\n")
        .filter_map(|doc| {
            let kind = doc
                .lines()
                .find_map(|l| l.strip_prefix("kind: "))?
                .trim()
                .to_string();
            Some((kind, doc.to_string()))
        })
        .collect()
}

fn kinds(rendered: &str) -> Vec<String> {
    documents(rendered).into_iter().map(|(k, _)| k).collect()
}

/// The objects of `kubectl ... -o json` output: one object, several in a
/// row, or Lists of them.
fn objects(json_text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for v in serde_json::Deserializer::from_str(json_text).into_iter::<Value>() {
        let v = v.unwrap_or_else(|e| panic!("kubectl printed no JSON ({e}):\n{json_text}"));
        match v["kind"].as_str() {
            Some("List") => out.extend(v["items"].as_array().cloned().unwrap_or_default()),
            _ => out.push(v),
        }
    }
    out
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| {
            let have: Vec<String> = objs
                .iter()
                .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
                .collect();
            panic!("no {kind}/{name} among {have:?}")
        })
}

/// `kubectl get <what> -o jsonpath=<path>` (add `-n NS` to `what`), or
/// `Err` with kubectl's complaint.
fn jsonpath(what: &[&str], path: &str) -> Result<String, String> {
    let mut args = vec!["get"];
    args.extend(what);
    let jp = format!("jsonpath={path}");
    args.extend(["-o", &jp]);
    let out = kubectl(&args);
    if out.status.success() {
        Ok(out.stdout.trim().to_string())
    } else {
        Err(out.stderr.trim().to_string())
    }
}

/// Waits until every CRD of `names` reports Established.
fn wait_established(names: &[&str]) {
    for crd in names {
        wait_until(WAIT, &format!("CRD {crd} Established"), || {
            match jsonpath(
                &["crd", crd],
                "{.status.conditions[?(@.type==\"Established\")].status}",
            ) {
                Ok(s) if s == "True" => Ok(()),
                other => Err(other),
            }
        });
    }
}

/// Labels `ns` so the API server enforces, and warns about, the restricted
/// Pod Security profile.
fn restricted(ns: &str) {
    kubectl(&[
        "label",
        "namespace",
        ns,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
    ])
    .ok();
}

#[test]
fn lint_is_clean_in_strict_mode_with_defaults_and_with_every_option_on() {
    let chart = chart().display().to_string();
    let all_on = all_on_values().display().to_string();
    for extra in [vec![], vec!["-f", all_on.as_str()]] {
        let mut args = vec!["lint", "--strict", chart.as_str()];
        args.extend(extra);
        let out = helm(&args).ok();
        assert!(
            out.contains("1 chart(s) linted, 0 chart(s) failed"),
            "`helm {}` did not pass:\n{out}",
            args.join(" ")
        );
        assert!(
            !out.contains("[WARNING]") && !out.contains("[ERROR]"),
            "`helm {}` has findings:\n{out}",
            args.join(" ")
        );
    }
}

#[test]
fn the_chart_ships_the_generated_crds_and_the_workspace_version() {
    let generated = fs::read_to_string(workspace_root().join("crds/gossamer.dev.yaml"))
        .expect("crds/gossamer.dev.yaml is readable");
    let chart_path = chart().display().to_string();
    // helm prints each file of crds/ after a `---` line.
    let shipped = helm(&["show", "crds", &chart_path]).ok();
    assert!(
        shipped.strip_prefix("---\n").unwrap_or(&shipped).trim_end() == generated.trim_end(),
        "the chart's CRDs differ from crds/gossamer.dev.yaml; copy them: \
         cp crds/gossamer.dev.yaml charts/gossamer/crds/"
    );

    let cargo = fs::read_to_string(workspace_root().join("Cargo.toml")).expect("Cargo.toml");
    let workspace_version = cargo
        .split("[workspace.package]")
        .nth(1)
        .and_then(|s| s.lines().find_map(|l| l.trim().strip_prefix("version = ")))
        .map(|v| v.trim_matches('"').to_string())
        .expect("Cargo.toml has [workspace.package] version");
    let meta = helm(&["show", "chart", &chart_path]).ok();
    assert!(
        meta.contains(&format!("appVersion: {workspace_version}\n")),
        "Chart.yaml's appVersion is not the workspace version {workspace_version}:\n{meta}"
    );
}

#[test]
fn templates_render_and_the_schema_refuses_bad_values() {
    // Defaults: the operator and the injector, nothing optional.
    let defaults = render("gossamer", "gossamer-system", &[]);
    let have = kinds(&defaults);
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "MutatingWebhookConfiguration",
        "ConfigMap",
    ] {
        assert!(
            have.iter().any(|k| k == kind),
            "defaults render no {kind}: {have:?}"
        );
    }
    for kind in [
        "ServiceMonitor",
        "PodMonitor",
        "NetworkPolicy",
        "GossipNetwork",
        "Namespace",
    ] {
        assert!(
            !have.iter().any(|k| k == kind),
            "defaults render a {kind}: {have:?}"
        );
    }
    // Release "gossamer" keeps the names operator/deploy/rbac.yaml and the
    // operator's flag defaults use.
    assert!(
        defaults.contains("\n  name: gossamer-operator\n"),
        "{defaults}"
    );
    assert!(
        defaults.contains("--control-service=gossamer-operator\n"),
        "{defaults}"
    );
    assert!(
        defaults.contains("--webhook-configuration=gossamer-sidecar-injector\n"),
        "{defaults}"
    );
    assert!(
        defaults.contains("image: gossamer.dev/operator:0.1.0\n"),
        "{defaults}"
    );
    assert!(
        defaults.contains("controlEndpoint: https://gossamer-operator.gossamer-system.svc:8443\n"),
        "{defaults}"
    );
    assert!(
        !defaults.contains("caBundle:"),
        "the template must leave caBundle to the operator"
    );

    // Every option on.
    let all_on_path = all_on_values().display().to_string();
    let all_on = render("gossamer", "gossamer-system", &["-f", &all_on_path]);
    let have = kinds(&all_on);
    for kind in [
        "ServiceMonitor",
        "PodMonitor",
        "NetworkPolicy",
        "GossipNetwork",
        "BootstrapPeers",
        "Namespace",
        "MutatingWebhookConfiguration",
    ] {
        assert!(
            have.iter().any(|k| k == kind),
            "all options on render no {kind}: {have:?}"
        );
    }
    assert!(
        all_on.contains("grafana_dashboard: \"1\""),
        "no dashboard ConfigMap"
    );
    assert!(
        all_on.contains("gossamer_operator_reconciles_total"),
        "the dashboard is empty"
    );

    // The injector off: no webhook, no inject config, no webhook RBAC.
    let off = render(
        "gossamer",
        "gossamer-system",
        &["--set", "webhook.enabled=false"],
    );
    let have = kinds(&off);
    assert!(
        !have.iter().any(|k| k == "MutatingWebhookConfiguration"),
        "{have:?}"
    );
    assert!(off.contains("- --webhook-configuration=\n"), "{off}");
    assert!(!off.contains("mutatingwebhookconfigurations"), "{off}");
    assert!(!off.contains("--inject-config"), "{off}");

    // One replica: no PodDisruptionBudget (it would block every drain).
    let one = render(
        "gossamer",
        "gossamer-system",
        &["--set", "operator.replicas=1"],
    );
    assert!(
        !kinds(&one).iter().any(|k| k == "PodDisruptionBudget"),
        "{one}"
    );

    // The schema refuses wrong types, unknown keys and values out of range,
    // naming the value.
    let chart_path = chart().display().to_string();
    let cases = [
        (
            "wrong-type",
            "operator:\n  replicas: \"two\"\n",
            "/operator/replicas",
        ),
        (
            "unknown-key",
            "operator:\n  replica: 2\n",
            "'replica' not allowed",
        ),
        (
            "unknown-top-level-key",
            "sidecars:\n  image: x\n",
            "'sidecars' not allowed",
        ),
        (
            "bad-enum",
            "webhook:\n  failurePolicy: Sometimes\n",
            "/webhook/failurePolicy",
        ),
        (
            "short-token",
            "sidecar:\n  tokenExpirationSeconds: 60\n",
            "/sidecar/tokenExpirationSeconds",
        ),
    ];
    for (name, values, needle) in cases {
        let file = temp_file(&format!("{name}.yaml"), values);
        let file = file.display().to_string();
        let err = helm(&["template", "gossamer", &chart_path, "-f", &file]).refused();
        assert!(
            err.contains("schema") && err.contains(needle),
            "values {values:?}: the error does not name {needle:?}:\n{err}"
        );
    }

    // The example can never live where the injector does not look.
    let err = helm(&[
        "template",
        "gossamer",
        &chart_path,
        "--namespace",
        "gossamer-system",
        "--set",
        "example.enabled=true,example.namespace=gossamer-system",
    ])
    .refused();
    assert!(err.contains("example.namespace"), "{err}");
}

/// `(exported name, kind)` of every metric a metrics.rs registers, kind
/// being "counter", "gauge" or "histogram": the registry's prefix, the
/// registered name, and `_total` for counters as prometheus-client exports
/// them.
fn registered_metrics(source: &Path) -> BTreeMap<String, &'static str> {
    let text = fs::read_to_string(source)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", source.display()));
    let prefix = text
        .split("with_prefix(\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("{} names no registry prefix", source.display()));
    // Field name -> metric kind, from the struct that holds the metrics.
    let mut fields = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim().trim_start_matches("pub ");
        let Some((name, ty)) = line.split_once(": ") else {
            continue;
        };
        if !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            continue;
        }
        let kind = if ty.contains("Histogram") {
            "histogram"
        } else if ty.contains("Counter") {
            "counter"
        } else if ty.contains("Gauge") {
            "gauge"
        } else {
            continue;
        };
        fields.insert(name.to_string(), kind);
    }
    let mut out = BTreeMap::new();
    for call in text.split("registry.register(").skip(1) {
        // register("name", "help", field.clone())
        let mut quoted = call.split('"');
        let name = quoted.nth(1).expect("a registered name");
        let after_help = call.splitn(5, '"').nth(4).expect("a help text");
        let field = after_help
            .split(".clone()")
            .next()
            .and_then(|expr| expr.rsplit(['.', ' ', '\n', ',']).next())
            .expect("a metric expression");
        let kind = fields.get(field).copied().unwrap_or_else(|| {
            panic!(
                "{}: metric {name:?} registers field {field:?} of unknown type",
                source.display()
            )
        });
        let base = format!("{prefix}_{name}");
        match kind {
            "counter" => {
                out.insert(format!("{base}_total"), kind);
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    out.insert(format!("{base}{suffix}"), kind);
                }
            }
            _ => {
                out.insert(base, kind);
            }
        }
    }
    out
}

#[test]
fn the_dashboard_uses_only_metrics_that_are_exported() {
    let root = workspace_root();
    let mut exported = registered_metrics(&root.join("operator/src/metrics.rs"));
    let operator_count = exported.len();
    exported.extend(registered_metrics(&root.join("sidecar/src/metrics.rs")));
    assert!(
        operator_count >= 10 && exported.len() > operator_count + 20,
        "the metric sources were not understood: {exported:?}"
    );
    let path = chart().join("dashboards/gossamer.json");
    let text = fs::read_to_string(&path).expect("the dashboard is readable");
    let dashboard: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    assert_eq!(dashboard["uid"], "gossamer-overview");
    let mut used = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("gossamer_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        used.push(name);
    }
    let unknown: Vec<&String> = used.iter().filter(|n| !exported.contains_key(*n)).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics nobody exports: {unknown:?}\nexported: {:?}",
        exported.keys().collect::<Vec<_>>()
    );
    assert!(
        used.iter().any(|n| n.starts_with("gossamer_operator_")),
        "no operator panel"
    );
    assert!(
        used.iter().any(|n| !n.starts_with("gossamer_operator_")),
        "no sidecar panel"
    );
}

#[test]
fn every_rendered_object_passes_server_side_validation() {
    let cp = cp();
    // The monitoring CRDs, and the chart's own CRDs (`helm template`
    // leaves those out; the GossipNetwork and BootstrapPeers need them).
    for kind in ["ServiceMonitor", "PodMonitor"] {
        let out = cp
            .kubectl_apply_stdin(&monitoring_crd(kind))
            .expect("kubectl runs");
        assert!(out.success(), "the {kind} CRD was refused: {out:?}");
    }
    let crds = chart().join("crds/gossamer.dev.yaml").display().to_string();
    kubectl(&["apply", "--server-side", "-f", &crds]).ok();
    wait_established(&[
        "servicemonitors.monitoring.coreos.com",
        "podmonitors.monitoring.coreos.com",
    ]);
    wait_established(&GOSSAMER_CRDS);

    let ns = cp.namespace("helm-dry").expect("a fresh namespace");
    let example_ns = cp.namespace("helm-dry-example").expect("a fresh namespace");
    restricted(&ns);
    restricted(&example_ns);
    let all_on = all_on_values().display().to_string();
    let example = format!("example.namespace={example_ns},example.createNamespace=false");
    let rendered = render("dry", &ns, &["-f", &all_on, "--set", &example]);
    let file = temp_file("all-on.yaml", &rendered);
    let file = file.display().to_string();
    let out = kubectl(&["apply", "--dry-run=server", "-o", "json", "-f", &file]);
    let stderr = out.stderr.clone();
    let objs = objects(&out.ok());
    assert!(
        !stderr.contains("PodSecurity"),
        "a Pod template breaks the restricted Pod Security profile:\n{stderr}"
    );
    assert_eq!(
        objs.len(),
        documents(&rendered).len(),
        "the server did not answer for every rendered object"
    );

    // The namespace the example creates when asked to (alone: with it
    // missing, the example's other objects cannot be dry-run).
    let with_ns = render(
        "dry",
        &ns,
        &[
            "--set",
            "example.enabled=true,example.namespace=helm-dry-created",
        ],
    );
    let (_, namespace_doc) = documents(&with_ns)
        .into_iter()
        .find(|(k, _)| k == "Namespace")
        .expect("example.createNamespace renders a Namespace");
    let file = temp_file("namespace.yaml", &namespace_doc);
    kubectl(&[
        "apply",
        "--dry-run=server",
        "-f",
        &file.display().to_string(),
    ])
    .ok();

    // What the server made of it. The operator's Deployment:
    let deployment = find(&objs, "Deployment", "dry-gossamer-operator");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    let sc = &container["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("operator args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in [
        "run",
        "--lease-name=dry-gossamer-operator",
        "--control-service=dry-gossamer-operator",
        "--webhook-configuration=dry-gossamer-sidecar-injector",
        "--inject-config=/etc/gossamer/inject.yaml",
        "--webhook-listen=0.0.0.0:9443",
        "--admin-listen=0.0.0.0:9090",
        "--control-listen=0.0.0.0:8443",
    ] {
        assert!(
            args.contains(&want),
            "operator args lack {want:?}: {args:?}"
        );
    }
    let env: Vec<(&str, &str)> = container["env"]
        .as_array()
        .expect("operator env")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or(""),
                e["valueFrom"]["fieldRef"]["fieldPath"]
                    .as_str()
                    .unwrap_or(""),
            )
        })
        .collect();
    assert!(env.contains(&("POD_NAME", "metadata.name")), "{env:?}");
    assert!(
        env.contains(&("POD_NAMESPACE", "metadata.namespace")),
        "{env:?}"
    );

    // The Service carries the name the certificate is made for, and the
    // three ports.
    let service = find(&objs, "Service", "dry-gossamer-operator");
    let ports: Vec<(String, i64, String)> = service["spec"]["ports"]
        .as_array()
        .expect("service ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").to_string(),
                p["port"].as_i64().unwrap_or(0),
                p["targetPort"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("control".to_string(), 8443, "control".to_string()),
            ("webhook".to_string(), 443, "webhook".to_string()),
            ("metrics".to_string(), 9090, "admin".to_string()),
        ]
    );

    // The webhook calls that Service, and has no caBundle of its own.
    let webhook = find(
        &objs,
        "MutatingWebhookConfiguration",
        "dry-gossamer-sidecar-injector",
    );
    let hook = &webhook["webhooks"][0];
    assert_eq!(hook["name"], "inject.gossamer.dev");
    assert_eq!(
        hook["clientConfig"]["service"],
        json!({"name": "dry-gossamer-operator", "namespace": ns, "path": "/inject", "port": 443})
    );
    assert!(hook["clientConfig"].get("caBundle").is_none(), "{hook:#}");
    assert_eq!(hook["reinvocationPolicy"], "IfNeeded");
    assert_eq!(hook["sideEffects"], "None");
    let excluded = &hook["namespaceSelector"]["matchExpressions"][0];
    assert_eq!(excluded["key"], "kubernetes.io/metadata.name");
    assert_eq!(excluded["operator"], "NotIn");
    assert_eq!(excluded["values"], json!([ns, "kube-system", "monitoring"]));

    // The operator may update its own webhook configuration, no other.
    let rules = find(&objs, "ClusterRole", "dry-gossamer-operator")["rules"]
        .as_array()
        .expect("ClusterRole rules")
        .clone();
    let webhook_rule = rules
        .iter()
        .find(|r| r["apiGroups"] == json!(["admissionregistration.k8s.io"]))
        .expect("a rule for the webhook configuration");
    assert_eq!(
        webhook_rule["resourceNames"],
        json!(["dry-gossamer-sidecar-injector"])
    );
    let binding = find(&objs, "ClusterRoleBinding", "dry-gossamer-operator");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "dry-gossamer-operator", "namespace": ns}])
    );
}

/// `kubectl create --dry-run=client -o json -f <path>`: the objects as
/// kubectl reads them.
fn read_objects(path: &Path) -> Vec<Value> {
    let path = path.display().to_string();
    objects(&kubectl(&["create", "--dry-run=client", "-o", "json", "-f", &path]).ok())
}

#[test]
fn release_gossamer_renders_exactly_the_rbac_of_operator_deploy() {
    // What decides access, object by object.
    fn essence(objs: Vec<Value>) -> Vec<Value> {
        let mut out: Vec<Value> = objs
            .iter()
            .map(|o| {
                json!({
                    "kind": o["kind"],
                    "name": o["metadata"]["name"],
                    "namespace": o["metadata"]["namespace"],
                    "rules": o["rules"],
                    "roleRef": o["roleRef"],
                    "subjects": o["subjects"],
                })
            })
            .collect();
        out.sort_by_key(|o| format!("{}/{}", o["kind"], o["name"]));
        out
    }
    let rendered = render(
        "gossamer",
        "gossamer-system",
        &[
            "--show-only",
            "templates/serviceaccount.yaml",
            "--show-only",
            "templates/rbac.yaml",
        ],
    );
    let chart = essence(read_objects(&temp_file("rbac-gossamer.yaml", &rendered)));
    let reference = essence(read_objects(
        &workspace_root().join("operator/deploy/rbac.yaml"),
    ));
    assert!(
        chart == reference,
        "charts/gossamer/templates/rbac.yaml (release gossamer, namespace gossamer-system) \
         differs from operator/deploy/rbac.yaml; port the change.\nchart:\n{}\nrbac.yaml:\n{}",
        serde_json::to_string_pretty(&chart).unwrap_or_default(),
        serde_json::to_string_pretty(&reference).unwrap_or_default()
    );
}

#[test]
fn a_release_installs_upgrades_and_uninstalls_leaving_the_crds() {
    let cp = cp();
    let ns = cp.namespace("helm-release").expect("a fresh namespace");
    restricted(&ns);
    let chart_path = chart().display().to_string();
    let release = "lifecycle";
    let operator = "lifecycle-gossamer-operator";
    let injector = "lifecycle-gossamer-sidecar-injector";
    let inject_cm = "lifecycle-gossamer-inject";

    // No --wait: without a node the operator's Pods never run.
    let notes = helm_in(&ns, &["install", release, &chart_path, "--timeout", "2m"]).ok();
    assert!(notes.contains("Check the operator"), "no NOTES:\n{notes}");
    assert!(notes.contains("gossamer.dev/inject: \"true\""), "{notes}");

    wait_established(&GOSSAMER_CRDS);
    assert_eq!(
        jsonpath(&["deployment", operator, "-n", &ns], "{.spec.replicas}"),
        Ok("2".to_string())
    );
    // The ReplicaSet controller made both Pods, so they pass the restricted
    // profile the namespace enforces (they stay Pending: there is no node).
    wait_until(WAIT, "two operator Pods created", || {
        let names = jsonpath(
            &[
                "pods",
                "-n",
                &ns,
                "-l",
                "app.kubernetes.io/component=operator",
            ],
            "{.items[*].metadata.name}",
        )?;
        if names.split_whitespace().count() == 2 {
            Ok(())
        } else {
            let events = kubectl(&["get", "events", "-n", &ns]).stdout;
            Err(format!("pods: {names:?}; events:\n{events}"))
        }
    });
    for what in [
        vec!["service", operator, "-n", &ns],
        vec!["serviceaccount", operator, "-n", &ns],
        vec!["poddisruptionbudget", operator, "-n", &ns],
        vec!["role", "lifecycle-gossamer-operator-leader", "-n", &ns],
        vec![
            "rolebinding",
            "lifecycle-gossamer-operator-leader",
            "-n",
            &ns,
        ],
        vec!["configmap", inject_cm, "-n", &ns],
        vec!["clusterrole", operator],
        vec!["clusterrolebinding", operator],
        vec!["mutatingwebhookconfiguration", injector],
    ] {
        assert!(
            jsonpath(&what, "{.metadata.name}").is_ok(),
            "`kubectl get {}` found nothing after install",
            what.join(" ")
        );
    }
    assert_eq!(
        jsonpath(
            &["mutatingwebhookconfiguration", injector],
            "{.webhooks[0].clientConfig.service.name}/{.webhooks[0].clientConfig.service.namespace}"
        ),
        Ok(format!("{operator}/{ns}"))
    );
    let inject_before = jsonpath(
        &["configmap", inject_cm, "-n", &ns],
        "{.data.inject\\.yaml}",
    )
    .expect("the inject ConfigMap");
    for want in [
        "image: gossamer.dev/sidecar:0.1.0\n".to_string(),
        format!("controlEndpoint: https://{operator}.{ns}.svc:8443\n"),
        "apiDir: /var/run/gossamer\n".to_string(),
        "metricsPort: 9946\n".to_string(),
    ] {
        assert!(
            inject_before.contains(&want),
            "inject config lacks {want:?}:\n{inject_before}"
        );
    }
    let checksum = "{.spec.template.metadata.annotations.checksum/inject-config}";
    let checksum_before =
        jsonpath(&["deployment", operator, "-n", &ns], checksum).expect("the checksum annotation");

    // The operator fills in the caBundle; an upgrade must leave it alone.
    let bundle = base64(cp.ca_pem().as_bytes());
    let patch =
        json!([{"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": bundle}]);
    kubectl(&[
        "patch",
        "mutatingwebhookconfiguration",
        injector,
        "--type=json",
        "-p",
        &patch.to_string(),
    ])
    .ok();

    let new_image = "registry.example.com/gossamer/sidecar:next";
    helm_in(
        &ns,
        &[
            "upgrade",
            release,
            &chart_path,
            "--set",
            "operator.replicas=3",
            "--set",
            &format!("sidecar.image={new_image}"),
            "--timeout",
            "2m",
        ],
    )
    .ok();
    assert_eq!(
        jsonpath(&["deployment", operator, "-n", &ns], "{.spec.replicas}"),
        Ok("3".to_string())
    );
    let inject_after = jsonpath(
        &["configmap", inject_cm, "-n", &ns],
        "{.data.inject\\.yaml}",
    )
    .expect("the inject ConfigMap");
    assert!(
        inject_after.contains(&format!("image: {new_image}")),
        "the upgrade did not reach the inject config:\n{inject_after}"
    );
    let checksum_after =
        jsonpath(&["deployment", operator, "-n", &ns], checksum).expect("the checksum annotation");
    assert_ne!(
        checksum_before, checksum_after,
        "a changed inject config must roll the operator"
    );
    assert_eq!(
        jsonpath(
            &["mutatingwebhookconfiguration", injector],
            "{.webhooks[0].clientConfig.caBundle}"
        ),
        Ok(bundle),
        "helm upgrade dropped the caBundle the operator wrote"
    );
    let history = helm_in(&ns, &["history", release]).ok();
    assert!(history.contains("Upgrade complete"), "{history}");

    helm_in(&ns, &["uninstall", release, "--timeout", "2m"]).ok();
    let gone = [
        vec!["deployment", operator, "-n", &ns],
        vec!["service", operator, "-n", &ns],
        vec!["serviceaccount", operator, "-n", &ns],
        vec!["poddisruptionbudget", operator, "-n", &ns],
        vec!["role", "lifecycle-gossamer-operator-leader", "-n", &ns],
        vec![
            "rolebinding",
            "lifecycle-gossamer-operator-leader",
            "-n",
            &ns,
        ],
        vec!["configmap", inject_cm, "-n", &ns],
        vec!["clusterrole", operator],
        vec!["clusterrolebinding", operator],
        vec!["mutatingwebhookconfiguration", injector],
    ];
    for what in gone {
        wait_until(
            WAIT,
            &format!("{} gone after uninstall", what.join(" ")),
            || match jsonpath(&what, "{.metadata.name}") {
                Err(e) if e.contains("NotFound") || e.contains("not found") => Ok(()),
                other => Err(other),
            },
        );
    }
    // The CRDs stay, and with them every user's objects.
    for crd in GOSSAMER_CRDS {
        assert!(
            jsonpath(&["crd", crd], "{.metadata.name}").is_ok(),
            "helm uninstall removed CRD {crd}; charts/gossamer/README.md promises it stays"
        );
    }
}

/// Standard base64 with padding (a caBundle's encoding in JSON).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
