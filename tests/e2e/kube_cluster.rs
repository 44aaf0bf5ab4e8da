//! The user's path on a real single-node cluster, with real Pods: the
//! chart installed by `helm install` exactly as a user would (operator
//! images from `tests/kube/images.sh`, imported without a registry), an
//! app Deployment annotated for injection, and the sidecars the webhook
//! adds joining through the operator's control stream, which they find by
//! its Service name (CoreDNS) and reach over TLS.
//!
//! The table entries go through each Pod's own API socket: the sidecar
//! serves it in the Pod's shared `emptyDir`, which the test reads on the
//! host below the kubelet's root.

#![allow(clippy::disallowed_methods)] // tests wait on the wall clock

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gossamer_proto::tables::v1 as pb;
use gossamer_tests::kube::{ControlPlane, Node, PAUSE_IMAGE, SIDECAR_IMAGE};
use gossamer_tests::wait_until;
use hyper_util::rt::TokioIo;
use pb::tables_client::TablesClient;
use tonic::transport::{Channel, Endpoint};

const RELEASE: &str = "gossamer";
const OPERATOR_NS: &str = "gossamer-system";
const TABLE: &str = "greetings";
const TIMEOUT: Duration = Duration::from_secs(120);

fn cp() -> &'static ControlPlane {
    ControlPlane::shared().expect("the control plane starts")
}

fn kubectl(args: &[&str]) -> gossamer_tests::KubectlOutput {
    cp().kubectl(args).expect("kubectl runs")
}

fn apply(yaml: &str) {
    let out = cp().kubectl_apply_stdin(yaml).expect("kubectl runs");
    assert!(out.success(), "kubectl apply: {}\n{yaml}", out.stderr);
}

fn jsonpath(ns: &str, what: &str, path: &str) -> String {
    let out = kubectl(&["get", what, "-n", ns, "-o", &format!("jsonpath={path}")]);
    if out.success() {
        out.stdout.trim().to_string()
    } else {
        String::new()
    }
}

/// `helm` with the admin's kubeconfig.
fn helm(args: &[&str]) -> gossamer_tests::KubectlOutput {
    let bin = cp().binaries().get("helm").expect("helm is built");
    let out = Command::new(&bin)
        .args(args)
        .arg("--kubeconfig")
        .arg(cp().admin_kubeconfig())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    gossamer_tests::KubectlOutput {
        command: format!("helm {}", args.join(" ")),
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// What the cluster looked like when something did not happen: the Pods,
/// their events and the operator's and sidecars' logs.
fn diagnose(node: &Node, ns: &str) -> String {
    let mut out = String::new();
    for n in [OPERATOR_NS, ns] {
        out += &kubectl(&["get", "pods", "-n", n, "-o", "wide"]).stdout;
        out += &kubectl(&["get", "events", "-n", n, "--sort-by=.lastTimestamp"]).stdout;
    }
    out += &kubectl(&[
        "logs",
        "-n",
        OPERATOR_NS,
        "-l",
        "app.kubernetes.io/component=operator",
        "--tail=30",
        "--prefix",
    ])
    .stdout;
    out += &kubectl(&[
        "logs",
        "-n",
        ns,
        "-l",
        "app=web",
        "-c",
        "gossamer",
        "--tail=20",
        "--prefix",
    ])
    .stdout;
    let kubelet = node.log_dir().join("kubelet.log");
    let text = std::fs::read_to_string(&kubelet).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    out += &format!(
        "\nkubelet log {} ends:\n{}",
        kubelet.display(),
        lines[lines.len().saturating_sub(20)..].join("\n")
    );
    out
}

fn app_yaml(ns: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata:
      labels: {{app: web}}
      annotations: {{gossamer.dev/inject: "true", gossamer.dev/cluster: web}}
    spec:
      terminationGracePeriodSeconds: 5
      securityContext: {{runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}}
      containers:
      - name: app
        image: {PAUSE_IMAGE}
        imagePullPolicy: Never
"#
    )
}

/// The Deployment's Pods that are Ready: (name, uid).
fn ready_pods(ns: &str) -> Vec<(String, String)> {
    let text = jsonpath(
        ns,
        "pods",
        r#"{range .items[*]}{.metadata.name} {.metadata.uid} {.status.conditions[?(@.type=="Ready")].status} {.metadata.deletionTimestamp}{"\n"}{end}"#,
    );
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && f[2] == "True").then(|| (f[0].to_string(), f[1].to_string()))
        })
        .collect()
}

/// `gossamer_members{state="alive"}` of the sidecar at `ip` (its metrics
/// port, across the bridge).
fn alive_members(ip: &str) -> Result<i64, String> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = format!("{ip}:9946").parse().map_err(|e| format!("{e}"))?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET /metrics HTTP/1.0\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|l| l.strip_prefix("gossamer_members{state=\"alive\"} "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "no gossamer_members{state=\"alive\"} line".to_string())
}

/// The API socket of the Pod `uid`, in its `emptyDir` on the host.
fn socket(node: &Node, uid: &str) -> PathBuf {
    node.kubelet_root()
        .join("pods")
        .join(uid)
        .join("volumes/kubernetes.io~empty-dir/gossamer-api/api.sock")
}

/// A client of the socket at `path`. The kubelet's path is longer than a
/// socket address may be, so the client dials it through a short symlink
/// to its folder.
async fn api(path: PathBuf) -> TablesClient<Channel> {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let link = std::env::temp_dir().join(format!(
        "gs-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&link);
    let folder = path.parent().expect("the socket has a folder");
    std::os::unix::fs::symlink(folder, &link).expect("a symlink in the temp folder");
    let short = link.join("api.sock");
    let channel = Endpoint::from_static("http://sidecar.invalid")
        .connect_with_connector(tower::service_fn(move |_| {
            let short = short.clone();
            async move {
                tokio::net::UnixStream::connect(short)
                    .await
                    .map(TokioIo::new)
            }
        }))
        .await;
    // The connection stays up after the link is gone.
    let _ = std::fs::remove_file(&link);
    TablesClient::new(channel.expect("the sidecar's API socket answers"))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn keys(node: &Node, uid: &str, network: &str) -> Result<BTreeSet<String>, String> {
    rt().block_on(async {
        let mut c = api(socket(node, uid)).await;
        c.list_table(pb::ListTableRequest {
            network: network.into(),
            table: TABLE.into(),
        })
        .await
        .map(|r| r.into_inner().entries.into_iter().map(|e| e.key).collect())
        .map_err(|s| s.to_string())
    })
}

#[test]
fn helm_install_then_annotated_pods_get_sidecars_that_converge_and_share_entries() {
    let node = Node::start(cp()).expect("the node starts");
    let started = Instant::now();

    // The chart, as a user installs it; the images are the test's own.
    let chart = gossamer_tests::workspace_root().join("charts/gossamer");
    let (repo, tag) = gossamer_tests::kube::OPERATOR_IMAGE
        .rsplit_once(':')
        .expect("the operator image has a tag");
    let out = helm(&[
        "install",
        RELEASE,
        &chart.to_string_lossy(),
        "--namespace",
        OPERATOR_NS,
        "--create-namespace",
        "--set",
        &format!("operator.image.repository={repo},operator.image.tag={tag}"),
        "--set",
        "operator.image.pullPolicy=Never,operator.logFormat=text,operator.gossip.profile=local",
        "--set",
        &format!("sidecar.image={SIDECAR_IMAGE},sidecar.imagePullPolicy=Never"),
        "--wait",
        "--timeout=180s",
    ]);
    assert!(
        out.success(),
        "helm install: {}{}\n{}",
        out.stdout,
        out.stderr,
        diagnose(&node, OPERATOR_NS)
    );
    let installed = started.elapsed();
    eprintln!("helm install --wait: both operator replicas Ready in {installed:?}");

    // One replica leads.
    wait_until(
        Duration::from_secs(60),
        "an operator replica holds the Lease",
        || {
            let holder = jsonpath(
                OPERATOR_NS,
                "lease/gossamer-operator",
                "{.spec.holderIdentity}",
            );
            if holder.starts_with("gossamer-operator-") {
                Ok(())
            } else {
                Err(holder)
            }
        },
    );

    // The app: a GossipNetwork and a Deployment annotated for injection.
    let ns = cp().namespace("shop").unwrap();
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipNetwork\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  cluster: web\n  memberSelector: {{matchLabels: {{app: web}}}}\n  tables: [{{name: {TABLE}}}]\n"
    ));
    // Seeds: the two longest-lived ready members.
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: BootstrapPeers\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  cluster: web\n  fromMembers: {{count: 2}}\n"
    ));
    let t0 = Instant::now();
    apply(&app_yaml(&ns, 3));
    let rollout = kubectl(&[
        "rollout",
        "status",
        "deployment/web",
        "-n",
        &ns,
        &format!("--timeout={}s", TIMEOUT.as_secs()),
    ]);
    assert!(
        rollout.success(),
        "the app's rollout: {}\n{}",
        rollout.stderr,
        diagnose(&node, &ns)
    );
    let pods = ready_pods(&ns);
    assert_eq!(pods.len(), 3, "{pods:?}");
    for (name, _) in &pods {
        let first = jsonpath(
            &ns,
            &format!("pod/{name}"),
            "{.spec.initContainers[0].name}",
        );
        assert_eq!(first, "gossamer", "pod {name} has no injected sidecar");
        let policy = jsonpath(
            &ns,
            &format!("pod/{name}"),
            "{.spec.initContainers[0].restartPolicy}",
        );
        assert_eq!(
            policy, "Always",
            "pod {name}'s sidecar is not a native sidecar"
        );
    }

    // The operator sees three members, all running its snapshot.
    let converged = r#"{.status.conditions[?(@.type=="Converged")].status}"#;
    let wait_status = |what: &str, path: &str, want: &str| {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let got = jsonpath(&ns, "gossipnetwork/web", path);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {path} is {got:?}, not {want:?}\n{}",
                diagnose(&node, &ns)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    wait_status("members", "{.status.members}", "3");
    wait_status("converged", converged, "True");
    // Every sidecar sees the three members alive (gossip crossed the Pod
    // network; the seeds came from the operator).
    for (name, _) in &pods {
        let ip = jsonpath(&ns, &format!("pod/{name}"), "{.status.podIP}");
        wait_until(
            TIMEOUT,
            &format!("pod {name}'s sidecar sees 3 alive members"),
            || match alive_members(&ip) {
                Ok(3) => Ok(()),
                other => Err(other),
            },
        );
    }
    let to_converge = t0.elapsed();
    let network = jsonpath(&ns, "gossipnetwork/web", "{.status.networkId}");
    assert_eq!(network.len(), 12, "networkId {network:?}");

    // An entry written through one Pod's socket is read through every
    // Pod's.
    let (writer, writer_uid) = &pods[0];
    rt().block_on(async {
        let mut c = api(socket(&node, writer_uid)).await;
        c.create_entry(pb::WriteEntryRequest {
            network: network.clone(),
            table: TABLE.into(),
            key: format!("hello-from-{writer}"),
            value: b"hi".to_vec(),
        })
        .await
        .expect("the write through the socket succeeds");
    });
    let t1 = Instant::now();
    for (name, uid) in &pods {
        wait_until(
            Duration::from_secs(30),
            &format!("pod {name} reads the entry"),
            || match keys(&node, uid, &network) {
                Ok(k) if k.contains(&format!("hello-from-{writer}")) => Ok(()),
                other => Err(other),
            },
        );
    }
    eprintln!(
        "figures: helm install {installed:?}; 3 injected Pods Ready and Converged {to_converge:?} after the apply; an entry on all 3 in {:?}",
        t1.elapsed()
    );

    helm_uninstall_and_stop(node, &ns);
}

fn helm_uninstall_and_stop(node: Node, ns: &str) {
    kubectl(&["delete", "namespace", ns, "--wait=true", "--timeout=60s"]);
    let out = helm(&[
        "uninstall",
        RELEASE,
        "--namespace",
        OPERATOR_NS,
        "--wait",
        "--timeout=60s",
    ]);
    assert!(out.success(), "helm uninstall: {}", out.stderr);
    node.check_running().unwrap();
    node.stop().unwrap();
}
