//! Sidecar injection: what the admission webhook does to a Pod, as a pure
//! function of the Pod, the injector's configuration and the operator's CA.
//!
//! A Pod annotated `gossamer.dev/inject: "true"` gets:
//! - the sidecar as a native sidecar (first init container, with
//!   `restartPolicy: Always`: it starts before the app and stops after it);
//! - a projected ServiceAccount token for the audience `gossamer`;
//! - the operator's CA certificate (public) and control endpoint;
//! - an `emptyDir` shared with every app container, holding the local
//!   API's Unix socket, and `GOSSAMER_API` in the app containers;
//! - the `gossamer.dev/cluster` label (from the `gossamer.dev/cluster`
//!   annotation, else the label already there, else the default cluster):
//!   the operator selects Pods by it, and the sidecar gossips with the
//!   memberlist label `<namespace>/<cluster>`, so clusters never merge.
//!
//! The answer is a list of RFC 6902 operations that only add: nothing the
//! user wrote is replaced. A Pod that already has the sidecar is left
//! alone, so the webhook is idempotent under reinvocation.

use std::collections::BTreeMap;

use gossamer_operator_api::CLUSTER_LABEL;
use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use serde::Deserialize;
use serde_json::{json, Value};

/// The annotation that asks for the sidecar: `"true"` or `"false"`.
pub const INJECT_ANNOTATION: &str = "gossamer.dev/inject";
/// The annotation that names the gossip cluster.
pub const CLUSTER_ANNOTATION: &str = "gossamer.dev/cluster";
/// The sidecar container's name.
pub const SIDECAR_CONTAINER: &str = "gossamer";
/// The projected token's volume.
pub const TOKEN_VOLUME: &str = "gossamer-token";
/// Where the token is mounted in the sidecar.
pub const TOKEN_DIR: &str = "/var/run/secrets/gossamer";
/// The volume shared with the app containers (the API socket).
pub const API_VOLUME: &str = "gossamer-api";
/// The environment variable that tells app containers where the API is.
pub const API_ENV: &str = "GOSSAMER_API";
/// The memberlist gossip port's names in the Pod.
const PORT_NAMES: [&str; 3] = ["gossip-udp", "gossip-tcp", "gossip-metrics"];

/// The injector's settings: the chart renders them into a file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct InjectConfig {
    /// The sidecar image.
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never`.
    pub image_pull_policy: String,
    /// The operator's control stream, `https://HOST:PORT`; empty: the
    /// operator's Service in its namespace.
    pub control_endpoint: String,
    /// Where the sidecar serves /healthz, /readyz and /metrics.
    pub metrics_port: u16,
    /// Folder of the local API's Unix socket, in every container.
    pub api_dir: String,
    /// The sidecar's resources.
    pub resources: Option<ResourceRequirements>,
    /// The cluster of a Pod that names none.
    pub default_cluster: String,
    /// Lifetime of the projected token; the kubelet renews it.
    pub token_expiration_seconds: i64,
    /// Period of the readiness and liveness probes.
    pub probe_period_seconds: i32,
}

impl Default for InjectConfig {
    fn default() -> Self {
        InjectConfig {
            image: format!("gossamer.dev/sidecar:{}", env!("CARGO_PKG_VERSION")),
            image_pull_policy: "IfNotPresent".into(),
            control_endpoint: String::new(),
            metrics_port: 9946,
            api_dir: "/var/run/gossamer".into(),
            resources: None,
            default_cluster: "default".into(),
            token_expiration_seconds: 3600,
            probe_period_seconds: 5,
        }
    }
}

/// A configuration the injector cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A field is out of range or empty.
    #[error("inject config: {field} is {value:?}: {what}")]
    Field {
        /// The field's name, as in the file.
        field: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        what: &'static str,
    },
}

impl InjectConfig {
    /// Checks every field; the operator refuses to start on an error.
    ///
    /// # Errors
    /// The first bad field, with what it must be.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, value: &dyn ToString, what| {
            Err(ConfigError::Field {
                field,
                value: value.to_string(),
                what,
            })
        };
        if self.image.trim().is_empty() {
            return bad("image", &self.image, "an image reference");
        }
        if !["Always", "IfNotPresent", "Never"].contains(&self.image_pull_policy.as_str()) {
            return bad(
                "imagePullPolicy",
                &self.image_pull_policy,
                "Always, IfNotPresent or Never",
            );
        }
        if !self.control_endpoint.is_empty() && !self.control_endpoint.starts_with("https://") {
            return bad(
                "controlEndpoint",
                &self.control_endpoint,
                "https://HOST:PORT (key material travels only over TLS)",
            );
        }
        if self.metrics_port == 0 {
            return bad("metricsPort", &self.metrics_port, "a port from 1 to 65535");
        }
        if !self.api_dir.starts_with('/') || self.api_dir.len() < 2 {
            return bad("apiDir", &self.api_dir, "an absolute folder path");
        }
        if let Err(e) = check_cluster_name(&self.default_cluster) {
            return bad("defaultCluster", &self.default_cluster, e);
        }
        if !(600..=86_400).contains(&self.token_expiration_seconds) {
            return bad(
                "tokenExpirationSeconds",
                &self.token_expiration_seconds,
                "600 to 86400 (the API server's limits for projected tokens)",
            );
        }
        if !(1..=300).contains(&self.probe_period_seconds) {
            return bad("probePeriodSeconds", &self.probe_period_seconds, "1 to 300");
        }
        Ok(())
    }
}

/// What the operator knows that the file does not say.
#[derive(Debug, Clone)]
pub struct InjectContext {
    /// The operator's namespace: never injected.
    pub operator_namespace: String,
    /// The gossip port every sidecar binds (the operator's `--gossip-port`).
    pub gossip_port: u16,
    /// The audience of the projected token.
    pub audience: String,
    /// The control endpoint when the file names none.
    pub default_endpoint: String,
    /// The operator's CA certificate, PEM.
    pub ca_pem: String,
}

/// What the webhook answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Injection {
    /// Admit the Pod as it is; the reason is logged and counted.
    Unchanged(Skip),
    /// Admit the Pod with these JSON Patch operations.
    Patch {
        /// The gossip cluster the Pod joins.
        cluster: String,
        /// RFC 6902 operations, all `add`.
        ops: Vec<Value>,
    },
}

/// Why a Pod is admitted unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// No `gossamer.dev/inject: "true"`.
    NotRequested,
    /// The sidecar is there already (reinvocation, or a re-created Pod).
    AlreadyInjected,
    /// The Pod is in the operator's own namespace.
    OperatorNamespace,
}

impl Skip {
    /// A short reason for metric labels and logs.
    pub fn reason(self) -> &'static str {
        match self {
            Skip::NotRequested => "NotRequested",
            Skip::AlreadyInjected => "AlreadyInjected",
            Skip::OperatorNamespace => "OperatorNamespace",
        }
    }
}

/// Why a Pod that asks for the sidecar is refused: the message goes back
/// to whoever created it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InjectError {
    /// The inject annotation is neither "true" nor "false".
    #[error("annotation {INJECT_ANNOTATION} is {0:?}; use \"true\" or \"false\"")]
    BadInjectValue(String),
    /// The cluster name is not a DNS label.
    #[error("gossip cluster name {name:?} (from {from}) is invalid: {why}")]
    BadCluster {
        /// The name.
        name: String,
        /// Where it came from.
        from: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// The annotation and the label name different clusters.
    #[error("annotation {CLUSTER_ANNOTATION} is {annotation:?} but label {CLUSTER_LABEL} is {label:?}; remove one or make them equal")]
    ClusterConflict {
        /// The annotation's value.
        annotation: String,
        /// The label's value.
        label: String,
    },
    /// The Pod already uses a name the sidecar needs.
    #[error(
        "the Pod already has a {kind} named {name:?}, which the Gossamer sidecar needs; rename it"
    )]
    NameTaken {
        /// volume or port.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// An app container already sets the API's environment variable.
    #[error("container {0:?} already sets {API_ENV}, which the injector sets to the sidecar's socket; remove it")]
    EnvTaken(String),
    /// An app container already uses a port the sidecar binds.
    #[error("container {container:?} uses port {port}, which the Gossamer sidecar binds; move it or change the operator's --gossip-port")]
    PortTaken {
        /// The container.
        container: String,
        /// The port.
        port: i32,
    },
    /// The Pod runs in the host's network namespace.
    #[error("the Pod uses hostNetwork: its sidecar would gossip on the node's address and clash with the node's other Pods; run it without hostNetwork or without {INJECT_ANNOTATION}")]
    HostNetwork,
}

/// A cluster name is a DNS label: at most 63 lowercase letters, digits and
/// '-', starting and ending alphanumeric.
fn check_cluster_name(name: &str) -> Result<(), &'static str> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if name.is_empty() || name.len() > 63 {
        Err("must be 1 to 63 characters")
    } else if !name.chars().all(ok_char) {
        Err("only lowercase letters, digits and '-' are allowed")
    } else if name.starts_with('-') || name.ends_with('-') {
        Err("must start and end with a letter or digit")
    } else {
        Ok(())
    }
}

/// Decides what to do with `pod`, created in `namespace`.
///
/// # Errors
/// When the Pod asks for the sidecar but cannot take it as written.
pub fn inject(
    pod: &Pod,
    namespace: &str,
    cfg: &InjectConfig,
    ctx: &InjectContext,
) -> Result<Injection, InjectError> {
    let empty = BTreeMap::new();
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    match annotations.get(INJECT_ANNOTATION).map(String::as_str) {
        None | Some("false") => return Ok(Injection::Unchanged(Skip::NotRequested)),
        Some("true") => {}
        Some(other) => return Err(InjectError::BadInjectValue(other.to_string())),
    }
    if namespace == ctx.operator_namespace {
        return Ok(Injection::Unchanged(Skip::OperatorNamespace));
    }
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(Injection::Unchanged(Skip::NotRequested));
    };
    let init = spec.init_containers.as_deref().unwrap_or_default();
    if init
        .iter()
        .chain(&spec.containers)
        .any(|c| c.name == SIDECAR_CONTAINER)
    {
        return Ok(Injection::Unchanged(Skip::AlreadyInjected));
    }
    if spec.host_network == Some(true) {
        return Err(InjectError::HostNetwork);
    }

    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    let label = labels.get(CLUSTER_LABEL);
    let (cluster, from) = match (annotations.get(CLUSTER_ANNOTATION), label) {
        (Some(a), Some(l)) if a != l => {
            return Err(InjectError::ClusterConflict {
                annotation: a.clone(),
                label: l.clone(),
            })
        }
        (Some(a), _) => (a.clone(), "annotation"),
        (None, Some(l)) => (l.clone(), "label"),
        (None, None) => (cfg.default_cluster.clone(), "the injector's defaultCluster"),
    };
    check_cluster_name(&cluster).map_err(|why| InjectError::BadCluster {
        name: cluster.clone(),
        from,
        why,
    })?;
    check_names(
        spec.volumes.iter().flatten().map(|v| v.name.as_str()),
        "volume",
    )?;
    check_ports(init.iter().chain(&spec.containers), ctx.gossip_port, cfg)?;

    let mut ops = Vec::new();
    if label.is_none() {
        if pod.metadata.labels.is_none() {
            ops.push(add("/metadata/labels", json!({ CLUSTER_LABEL: cluster })));
        } else {
            ops.push(add(
                &format!("/metadata/labels/{}", escape(CLUSTER_LABEL)),
                json!(cluster),
            ));
        }
    }
    let sidecar = sidecar(&cluster, cfg, ctx);
    if spec.init_containers.is_none() {
        ops.push(add("/spec/initContainers", json!([sidecar])));
    } else {
        // First, so it is up before the Pod's other init containers.
        ops.push(add("/spec/initContainers/0", sidecar));
    }
    let volumes = volumes(cfg, ctx);
    if spec.volumes.is_none() {
        ops.push(add("/spec/volumes", Value::Array(volumes)));
    } else {
        ops.extend(volumes.into_iter().map(|v| add("/spec/volumes/-", v)));
    }
    for (i, c) in spec.containers.iter().enumerate() {
        ops.extend(app_container_ops(i, c, cfg)?);
    }
    Ok(Injection::Patch { cluster, ops })
}

fn check_names<'a>(
    mut names: impl Iterator<Item = &'a str>,
    kind: &'static str,
) -> Result<(), InjectError> {
    match names.find(|n| *n == TOKEN_VOLUME || *n == API_VOLUME) {
        Some(n) => Err(InjectError::NameTaken {
            kind,
            name: n.to_string(),
        }),
        None => Ok(()),
    }
}

fn check_ports<'a>(
    containers: impl Iterator<Item = &'a Container>,
    gossip_port: u16,
    cfg: &InjectConfig,
) -> Result<(), InjectError> {
    for c in containers {
        for p in c.ports.iter().flatten() {
            if p.container_port == i32::from(gossip_port)
                || p.container_port == i32::from(cfg.metrics_port)
            {
                return Err(InjectError::PortTaken {
                    container: c.name.clone(),
                    port: p.container_port,
                });
            }
            if let Some(name) = p.name.as_deref().filter(|n| PORT_NAMES.contains(n)) {
                return Err(InjectError::NameTaken {
                    kind: "port",
                    name: name.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// The app container `i` gets the API folder and `GOSSAMER_API`.
fn app_container_ops(
    i: usize,
    c: &Container,
    cfg: &InjectConfig,
) -> Result<Vec<Value>, InjectError> {
    if c.env.iter().flatten().any(|e| e.name == API_ENV) {
        return Err(InjectError::EnvTaken(c.name.clone()));
    }
    let mount = json!({"name": API_VOLUME, "mountPath": cfg.api_dir});
    let env = json!({"name": API_ENV, "value": format!("unix:{}", socket(cfg))});
    let base = format!("/spec/containers/{i}");
    let mut ops = Vec::new();
    match &c.volume_mounts {
        None => ops.push(add(&format!("{base}/volumeMounts"), json!([mount]))),
        Some(_) => ops.push(add(&format!("{base}/volumeMounts/-"), mount)),
    }
    match &c.env {
        None => ops.push(add(&format!("{base}/env"), json!([env]))),
        Some(_) => ops.push(add(&format!("{base}/env/-"), env)),
    }
    Ok(ops)
}

fn socket(cfg: &InjectConfig) -> String {
    format!("{}/api.sock", cfg.api_dir.trim_end_matches('/'))
}

fn sidecar(cluster: &str, cfg: &InjectConfig, ctx: &InjectContext) -> Value {
    let endpoint = if cfg.control_endpoint.is_empty() {
        &ctx.default_endpoint
    } else {
        &cfg.control_endpoint
    };
    let field = |path: &str| json!({"valueFrom": {"fieldRef": {"fieldPath": path}}});
    let mut env = vec![
        with_name("POD_IP", field("status.podIP")),
        with_name("POD_NAME", field("metadata.name")),
        with_name("POD_NAMESPACE", field("metadata.namespace")),
    ];
    env.extend([
        json!({"name": "GOSSAMER_CLUSTER", "value": cluster}),
        json!({"name": "GOSSAMER_CONTROL_ENDPOINT", "value": endpoint}),
        json!({"name": "GOSSAMER_CONTROL_CA_PEM", "value": ctx.ca_pem}),
        json!({"name": "GOSSAMER_CONTROL_TOKEN", "value": format!("{TOKEN_DIR}/token")}),
    ]);
    let gossip = ctx.gossip_port;
    let metrics = cfg.metrics_port;
    let probe = |path: &str| {
        json!({
            "httpGet": {"path": path, "port": metrics},
            "periodSeconds": cfg.probe_period_seconds,
        })
    };
    let mut c = json!({
        "name": SIDECAR_CONTAINER,
        "image": cfg.image,
        "imagePullPolicy": cfg.image_pull_policy,
        "restartPolicy": "Always",
        "args": [
            "run",
            "--bind", format!("0.0.0.0:{gossip}"),
            "--advertise", format!("$(POD_IP):{gossip}"),
            "--metrics-listen", format!("0.0.0.0:{metrics}"),
            "--api-listen", format!("unix:{}", socket(cfg)),
        ],
        "env": env,
        "ports": [
            {"name": PORT_NAMES[0], "containerPort": gossip, "protocol": "UDP"},
            {"name": PORT_NAMES[1], "containerPort": gossip, "protocol": "TCP"},
            {"name": PORT_NAMES[2], "containerPort": metrics, "protocol": "TCP"},
        ],
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": metrics},
            "periodSeconds": 1,
            "failureThreshold": 60,
        },
        "readinessProbe": probe("/readyz"),
        "livenessProbe": probe("/healthz"),
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": true},
            {"name": API_VOLUME, "mountPath": cfg.api_dir},
        ],
    });
    if let (Some(r), Some(obj)) = (&cfg.resources, c.as_object_mut()) {
        obj.insert(
            "resources".into(),
            serde_json::to_value(r).unwrap_or(Value::Null),
        );
    }
    c
}

fn volumes(cfg: &InjectConfig, ctx: &InjectContext) -> Vec<Value> {
    vec![
        json!({
            "name": TOKEN_VOLUME,
            "projected": {"sources": [{"serviceAccountToken": {
                "audience": ctx.audience,
                "expirationSeconds": cfg.token_expiration_seconds,
                "path": "token",
            }}]},
        }),
        json!({"name": API_VOLUME, "emptyDir": {}}),
    ]
}

fn with_name(name: &str, mut v: Value) -> Value {
    if let Some(obj) = v.as_object_mut() {
        obj.insert("name".into(), json!(name));
    }
    v
}

fn add(path: &str, value: Value) -> Value {
    json!({"op": "add", "path": path, "value": value})
}

/// A JSON Pointer token (RFC 6901): `~` and `/` escaped.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
#[path = "inject_tests.rs"]
mod tests;
