//! The user's path on a real single-node cluster, with real Pods: the
//! chart installed by `helm install` exactly as a user would (the images
//! are `tests/kube/images.sh`'s, imported without a registry), an app
//! Deployment annotated for injection, and the sidecars the webhook adds
//! joining through the operator's control stream, which they find by its
//! Service name (CoreDNS) and reach over TLS.
//!
//! One test runs the scenarios in order on one install, because a host
//! runs one node at a time: join, scale and restart, operator failover,
//! key rotation under writes, a cut Pod network, a BootstrapPeers change,
//! and refused impostors. Each prints its figures (`figure:` lines).
//!
//! Table entries go through each Pod's own API socket: the sidecar serves
//! it in the Pod's shared `emptyDir`, which the test reaches on the host
//! below the kubelet's root.

#![allow(clippy::disallowed_methods)] // tests wait on the wall clock

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use gossamer_proto::tables::v1 as pb;
use gossamer_tests::kube::{ControlPlane, Node, OPERATOR_IMAGE, PAUSE_IMAGE, SIDECAR_IMAGE};
use gossamer_tests::KubectlOutput;
use hyper_util::rt::TokioIo;
use pb::tables_client::TablesClient;
use tonic::transport::{Channel, Endpoint};

const RELEASE: &str = "gossamer";
const OPERATOR_NS: &str = "gossamer-system";
const LEASE: &str = "lease/gossamer-operator";
const TABLE: &str = "greetings";
const METRICS_PORT: u16 = 9946;
const TIMEOUT: Duration = Duration::from_secs(120);

fn cp() -> &'static ControlPlane {
    ControlPlane::shared().expect("the control plane starts")
}

fn kubectl(args: &[&str]) -> KubectlOutput {
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
fn helm(args: &[&str]) -> KubectlOutput {
    let bin = cp().binaries().get("helm").expect("helm is built");
    let out = Command::new(&bin)
        .args(args)
        .arg("--kubeconfig")
        .arg(cp().admin_kubeconfig())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    KubectlOutput {
        command: format!("helm {}", args.join(" ")),
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `GET path` on `ip:port` over the bridge: the body of a 200.
fn http_get(ip: &str, port: u16, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = format!("{ip}:{port}").parse().map_err(|e| format!("{e}"))?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    match text.split_once("\r\n\r\n") {
        Some((head, body))
            if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") =>
        {
            Ok(body.to_string())
        }
        _ => Err(text.lines().next().unwrap_or_default().to_string()),
    }
}

/// The value of `series` (name and labels, as exported) at `ip:port`.
fn metric(ip: &str, port: u16, series: &str) -> Result<f64, String> {
    let body = http_get(ip, port, "/metrics")?;
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no {series} in /metrics of {ip}"))
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
async fn api(path: PathBuf) -> Result<TablesClient<Channel>, String> {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let link = std::env::temp_dir().join(format!(
        "gs-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&link);
    let folder = path.parent().expect("the socket has a folder");
    std::os::unix::fs::symlink(folder, &link).map_err(|e| format!("symlink: {e}"))?;
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
    channel
        .map(TablesClient::new)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A running app Pod.
#[derive(Clone, Debug)]
struct AppPod {
    name: String,
    uid: String,
    ip: String,
}

/// The installed chart, the node and the app's namespace.
struct Scene {
    node: Node,
    ns: String,
    network: String,
}

impl Scene {
    /// What the cluster looked like when something did not happen.
    fn diagnose(&self) -> String {
        let mut out = String::new();
        for n in [OPERATOR_NS, self.ns.as_str()] {
            out += &kubectl(&["get", "pods", "-n", n, "-o", "wide"]).stdout;
            out += &kubectl(&["get", "events", "-n", n, "--sort-by=.lastTimestamp"]).stdout;
        }
        out += &kubectl(&[
            "get",
            "gossipnetwork,gossipkey,bootstrappeers",
            "-n",
            &self.ns,
            "-o",
            "yaml",
        ])
        .stdout;
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
            &self.ns,
            "-l",
            "app=web",
            "-c",
            "gossamer",
            "--tail=20",
            "--prefix",
        ])
        .stdout;
        let kubelet = self.node.log_dir().join("kubelet.log");
        let text = std::fs::read_to_string(&kubelet).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out += &format!(
            "\nkubelet log {} ends:\n{}",
            kubelet.display(),
            lines[lines.len().saturating_sub(20)..].join("\n")
        );
        out
    }

    fn wait(&self, what: &str, timeout: Duration, mut check: impl FnMut() -> Result<(), String>) {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match check() {
                Ok(()) => return,
                Err(e) => e,
            };
            if Instant::now() > deadline {
                panic!(
                    "not within {timeout:?}: {what}; last: {last}\n{}",
                    self.diagnose()
                );
            }
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// The app's Pods that are Ready and not terminating.
    fn pods(&self) -> Vec<AppPod> {
        let text = jsonpath(
            &self.ns,
            "pods",
            r#"{range .items[*]}{.metadata.name} {.metadata.uid} {.status.podIP} {.status.conditions[?(@.type=="Ready")].status} {.metadata.deletionTimestamp}{"\n"}{end}"#,
        );
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 4 && f[3] == "True" && f[0].starts_with("web-")).then(|| AppPod {
                    name: f[0].to_string(),
                    uid: f[1].to_string(),
                    ip: f[2].to_string(),
                })
            })
            .collect()
    }

    /// Every Pod of the namespace, terminating ones too.
    fn all_pod_names(&self) -> Vec<String> {
        jsonpath(&self.ns, "pods", "{.items[*].metadata.name}")
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    fn status(&self, path: &str) -> String {
        jsonpath(&self.ns, "gossipnetwork/web", path)
    }

    /// The app has `n` Ready Pods and no others, the GossipNetwork counts
    /// `n` members all running the current snapshot, and every sidecar
    /// sees `n` alive members.
    fn wait_converged(&self, n: usize) -> Vec<AppPod> {
        self.wait(
            &format!("{n} Ready app Pods and no others"),
            TIMEOUT,
            || {
                let (ready, all) = (self.pods().len(), self.all_pod_names().len());
                if ready == n && all == n {
                    Ok(())
                } else {
                    Err(format!("{ready} Ready of {all}"))
                }
            },
        );
        let converged = r#"{.status.conditions[?(@.type=="Converged")].status}"#;
        self.wait(
            &format!("GossipNetwork web counts {n} members, Converged"),
            TIMEOUT,
            || {
                let (members, c) = (self.status("{.status.members}"), self.status(converged));
                if members == n.to_string() && c == "True" {
                    Ok(())
                } else {
                    Err(format!("members {members}, Converged {c}"))
                }
            },
        );
        let pods = self.pods();
        for p in &pods {
            self.wait(
                &format!("{} sees {n} alive members", p.name),
                TIMEOUT,
                || match metric(&p.ip, METRICS_PORT, r#"gossamer_members{state="alive"}"#) {
                    Ok(v) if v == n as f64 => Ok(()),
                    other => Err(format!("{other:?}")),
                },
            );
        }
        pods
    }

    fn write(&self, pod: &AppPod, key: &str) -> Result<(), String> {
        rt().block_on(async {
            let mut c = api(socket(&self.node, &pod.uid)).await?;
            c.create_entry(pb::WriteEntryRequest {
                network: self.network.clone(),
                table: TABLE.into(),
                key: key.into(),
                value: pod.name.as_bytes().to_vec(),
            })
            .await
            .map(|_| ())
            .map_err(|s| s.to_string())
        })
    }

    fn keys(&self, pod: &AppPod) -> Result<BTreeSet<String>, String> {
        rt().block_on(async {
            let mut c = api(socket(&self.node, &pod.uid)).await?;
            c.list_table(pb::ListTableRequest {
                network: self.network.clone(),
                table: TABLE.into(),
            })
            .await
            .map(|r| r.into_inner().entries.into_iter().map(|e| e.key).collect())
            .map_err(|s| s.to_string())
        })
    }

    /// Waits until every Pod's table holds `want` (and, with `exact`,
    /// nothing else).
    fn wait_tables(&self, pods: &[AppPod], want: &BTreeSet<String>, exact: bool) {
        for p in pods {
            self.wait(
                &format!("{}'s table holds the {} keys", p.name, want.len()),
                TIMEOUT,
                || {
                    let have = self.keys(p)?;
                    let ok = if exact {
                        have == *want
                    } else {
                        want.is_subset(&have)
                    };
                    if ok {
                        Ok(())
                    } else {
                        let missing: Vec<_> = want.difference(&have).take(5).collect();
                        let extra: Vec<_> = have.difference(want).take(5).collect();
                        Err(format!("missing {missing:?}, extra {extra:?}"))
                    }
                },
            );
        }
    }

    /// `kubectl rollout status` of the app.
    fn rollout(&self) {
        let out = kubectl(&[
            "rollout",
            "status",
            "deployment/web",
            "-n",
            &self.ns,
            &format!("--timeout={}s", TIMEOUT.as_secs()),
        ]);
        assert!(
            out.success(),
            "rollout: {}\n{}",
            out.stderr,
            self.diagnose()
        );
    }

    fn sidecar_log(&self, pod: &str) -> String {
        kubectl(&["logs", pod, "-c", "gossamer", "-n", &self.ns]).stdout
    }

    /// Per Pod, `series` of its sidecar.
    fn sidecar_metric(&self, pods: &[AppPod], series: &str) -> BTreeMap<String, f64> {
        pods.iter()
            .map(|p| {
                let v = metric(&p.ip, METRICS_PORT, series)
                    .unwrap_or_else(|e| panic!("{}: {e}", p.name));
                (p.name.clone(), v)
            })
            .collect()
    }

    /// The operator replica holding the Lease, and its IP.
    fn leader(&self) -> (String, String) {
        let holder = jsonpath(OPERATOR_NS, LEASE, "{.spec.holderIdentity}");
        let ip = jsonpath(OPERATOR_NS, &format!("pod/{holder}"), "{.status.podIP}");
        (holder, ip)
    }

    /// Writes continuously from every Pod (each its own keys, one every
    /// 100 ms, at most 600) while `during` runs; the keys acknowledged.
    fn writing_while(&self, pods: &[AppPod], tag: &str, during: impl FnOnce()) -> BTreeSet<String> {
        let stop = AtomicBool::new(false);
        let acked = Mutex::new(BTreeSet::new());
        thread::scope(|s| {
            for p in pods {
                let (stop, acked) = (&stop, &acked);
                s.spawn(move || {
                    for i in 0..600 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let key = format!("{tag}-{}-{i}", p.name);
                        if self.write(p, &key).is_ok() {
                            acked.lock().unwrap().insert(key);
                        }
                        thread::sleep(Duration::from_millis(100));
                    }
                });
            }
            during();
            stop.store(true, Ordering::Relaxed);
        });
        acked.into_inner().unwrap()
    }
}

fn install(node: Node) -> Scene {
    let started = Instant::now();
    let chart = gossamer_tests::workspace_root().join("charts/gossamer");
    let (repo, tag) = OPERATOR_IMAGE
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
    let scene = Scene {
        node,
        ns: cp().namespace("shop").unwrap(),
        network: String::new(),
    };
    assert!(
        out.success(),
        "helm install: {}{}\n{}",
        out.stdout,
        out.stderr,
        scene.diagnose()
    );
    eprintln!(
        "figure: helm install --wait, both operator replicas Ready: {:?}",
        started.elapsed()
    );
    scene.wait("an operator replica holds the Lease", TIMEOUT, || {
        let (holder, _) = scene.leader();
        if holder.starts_with("gossamer-operator-") {
            Ok(())
        } else {
            Err(holder)
        }
    });
    scene
}

/// 1. A GossipNetwork (with a key and bootstrap peers) and an annotated
///    Deployment of 3: every sidecar joins, status shows 3 members and
///    Converged, an entry written in one Pod is read in all.
fn join(scene: &mut Scene) {
    let ns = scene.ns.clone();
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipKey\nmetadata: {{name: k0, namespace: {ns}}}\nspec: {{cluster: web}}\n"
    ));
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipNetwork\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  cluster: web\n  memberSelector: {{matchLabels: {{app: web}}}}\n  tables: [{{name: {TABLE}}}]\n"
    ));
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: BootstrapPeers\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  cluster: web\n  fromMembers: {{count: 2}}\n"
    ));
    let t0 = Instant::now();
    apply(&format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata:
      labels: {{app: web}}
      annotations: {{gossamer.dev/inject: "true", gossamer.dev/cluster: web}}
    spec:
      terminationGracePeriodSeconds: 10
      securityContext: {{runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}}
      containers:
      - name: app
        image: {PAUSE_IMAGE}
        imagePullPolicy: Never
"#
    ));
    scene.rollout();
    let pods = scene.wait_converged(3);
    eprintln!(
        "figure: 3 injected Pods Ready, joined and Converged {:?} after the apply",
        t0.elapsed()
    );
    for p in &pods {
        let path = |f: &str| jsonpath(&ns, &format!("pod/{}", p.name), f);
        assert_eq!(path("{.spec.initContainers[0].name}"), "gossamer");
        assert_eq!(path("{.spec.initContainers[0].restartPolicy}"), "Always");
    }
    scene.network = scene.status("{.status.networkId}");
    assert_eq!(scene.network.len(), 12, "networkId {:?}", scene.network);

    let key = format!("hello-from-{}", pods[0].name);
    scene
        .write(&pods[0], &key)
        .expect("a write through the socket");
    let t1 = Instant::now();
    scene.wait_tables(&pods, &BTreeSet::from([key.clone()]), true);
    eprintln!(
        "figure: an entry on all 3 Pods {:?} after its write",
        t1.elapsed()
    );
}

/// 3. Scale 3 -> 8 -> 3, then `kubectl rollout restart`: everyone
///    converges, departed Pods are seen as left, no live Pod's entry is
///    lost.
fn scale_and_restart(scene: &Scene) {
    let ns = &scene.ns;
    let t0 = Instant::now();
    kubectl(&["scale", "deployment/web", "--replicas=8", "-n", ns]);
    scene.rollout();
    let eight = scene.wait_converged(8);
    eprintln!("figure: scale 3 -> 8 converged in {:?}", t0.elapsed());
    let mut keys = BTreeSet::new();
    for p in &eight {
        let k = format!("own-{}", p.name);
        scene.write(p, &k).expect("a write");
        keys.insert(k);
    }
    scene.wait_tables(&eight, &keys, false);

    let t1 = Instant::now();
    kubectl(&["scale", "deployment/web", "--replicas=3", "-n", ns]);
    let three = scene.wait_converged(3);
    eprintln!("figure: scale 8 -> 3 converged in {:?}", t1.elapsed());
    let live: BTreeSet<&str> = three.iter().map(|p| p.name.as_str()).collect();
    let departed: Vec<&AppPod> = eight
        .iter()
        .filter(|p| !live.contains(p.name.as_str()))
        .collect();
    assert_eq!(departed.len(), 5);
    // Each survivor saw each departed Pod leave (not fail), and keeps the
    // entries of every live Pod; the departed ones' entries went with them.
    for p in &three {
        scene.wait(
            &format!("{} logs the 5 departures as left", p.name),
            TIMEOUT,
            || {
                let log = scene.sidecar_log(&p.name);
                let missing: Vec<&str> = departed
                    .iter()
                    .filter(|d| {
                        !log.lines().any(|l| {
                            l.contains("member gone")
                                && l.contains(&format!("node={}", d.name))
                                && (l.contains("state=left") || l.contains("state=\"left\""))
                        })
                    })
                    .map(|d| d.name.as_str())
                    .collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "no `member gone ... state=\"left\"` for {missing:?}"
                    ))
                }
            },
        );
    }
    let live_keys: BTreeSet<String> = three.iter().map(|p| format!("own-{}", p.name)).collect();
    scene.wait_tables(&three, &live_keys, false);
    for p in &three {
        scene.wait(
            &format!("{} drops the departed Pods' entries", p.name),
            TIMEOUT,
            || {
                let have = scene.keys(p)?;
                let left: Vec<&str> = departed
                    .iter()
                    .filter(|d| have.contains(&format!("own-{}", d.name)))
                    .map(|d| d.name.as_str())
                    .collect();
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(format!("still holds entries of {left:?}"))
                }
            },
        );
    }

    let t2 = Instant::now();
    kubectl(&["rollout", "restart", "deployment/web", "-n", ns]);
    scene.rollout();
    let fresh = scene.wait_converged(3);
    assert!(
        fresh.iter().all(|p| !live.contains(p.name.as_str())),
        "rollout restart kept a Pod: {fresh:?}"
    );
    eprintln!(
        "figure: rollout restart of 3 converged in {:?}",
        t2.elapsed()
    );
    let mut keys = BTreeSet::new();
    for p in &fresh {
        let k = format!("own-{}", p.name);
        scene.write(p, &k).expect("a write");
        keys.insert(k);
    }
    scene.wait_tables(&fresh, &keys, true);
}

/// 6. Delete the leading operator Pod: the other replica takes the Lease
///    within its duration, sidecars keep gossiping, snapshot versions keep
///    increasing.
fn operator_failover(scene: &Scene) {
    let pods = scene.pods();
    let before = scene.sidecar_metric(&pods, "gossamer_control_applied_version");
    let (old, _) = scene.leader();
    let t0 = Instant::now();
    kubectl(&["delete", "pod", &old, "-n", OPERATOR_NS, "--wait=false"]);
    scene.wait(
        "another replica holds the Lease",
        Duration::from_secs(15),
        || {
            let (holder, _) = scene.leader();
            if holder != old && holder.starts_with("gossamer-operator-") {
                Ok(())
            } else {
                Err(holder)
            }
        },
    );
    let took = t0.elapsed();
    eprintln!("figure: the Lease moved to the other replica {took:?} after the leader's Pod was deleted (lease duration 15 s)");
    // Gossip never stopped: every sidecar still sees all three alive.
    for p in &pods {
        let alive = metric(&p.ip, METRICS_PORT, r#"gossamer_members{state="alive"}"#);
        assert_eq!(alive, Ok(3.0), "{} during the failover", p.name);
    }
    // A change after the failover reaches every sidecar with a higher
    // version, from the new leader.
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipNetwork\nmetadata: {{name: web, namespace: {}}}\nspec:\n  cluster: web\n  memberSelector: {{matchLabels: {{app: web}}}}\n  tables: [{{name: {TABLE}}}, {{name: audit}}]\n",
        scene.ns
    ));
    for p in &pods {
        scene.wait(
            &format!("{} applies a newer snapshot", p.name),
            TIMEOUT,
            || {
                let v = metric(&p.ip, METRICS_PORT, "gossamer_control_applied_version")?;
                if v > before[&p.name] {
                    Ok(())
                } else {
                    Err(format!("version {v}, before {}", before[&p.name]))
                }
            },
        );
    }
    scene.wait_converged(3);
    let out = kubectl(&[
        "rollout",
        "status",
        "deployment/gossamer-operator",
        "-n",
        OPERATOR_NS,
        "--timeout=120s",
    ]);
    assert!(out.success(), "the operator's replacement: {}", out.stderr);
}

/// 2. Key rotation under continuous writes: phases progress in status,
///    the old key is removed, no decrypt failure, no lost write.
fn rotation_under_writes(scene: &Scene) {
    let ns = &scene.ns;
    let pods = scene.pods();
    let phase = |k: &str| jsonpath(ns, &format!("gossipkey/{k}"), "{.status.phase}");
    let mut phases = Vec::new();
    let mut times = Vec::new();
    let acked = scene.writing_while(&pods, "rot", || {
        thread::sleep(Duration::from_secs(2));
        let t0 = Instant::now();
        apply(&format!(
            "apiVersion: gossamer.dev/v1alpha1\nkind: GossipKey\nmetadata: {{name: k1, namespace: {ns}}}\nspec: {{cluster: web}}\n"
        ));
        scene.wait("k1 becomes Primary", TIMEOUT, || {
            let p = phase("k1");
            if phases.last() != Some(&p) && !p.is_empty() {
                phases.push(p.clone());
            }
            if p == "Primary" {
                Ok(())
            } else {
                Err(p)
            }
        });
        times.push(("k1 Primary", t0.elapsed()));
        kubectl(&["delete", "gossipkey", "k0", "-n", ns, "--wait=false"]);
        scene.wait("k0 is removed", TIMEOUT, || {
            let p = phase("k0");
            if kubectl(&["get", "gossipkey", "k0", "-n", ns]).success() {
                Err(p)
            } else {
                Ok(())
            }
        });
        times.push(("k0 removed", t0.elapsed()));
        thread::sleep(Duration::from_secs(2));
    });
    assert_eq!(
        phases.last().map(String::as_str),
        Some("Primary"),
        "k1's phases: {phases:?}"
    );
    // Every phase change is an Event: k1 went through distribution to
    // Primary, and k0 retired.
    let changes = |k: &str| {
        let out = kubectl(&[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            &format!("involvedObject.kind=GossipKey,involvedObject.name={k},reason=PhaseChanged"),
            "-o",
            r#"jsonpath={range .items[*]}{.message}{"\n"}{end}"#,
        ]);
        out.stdout
            .lines()
            .filter_map(|l| l.split_once(": ").map(|(_, change)| change.to_string()))
            .collect::<Vec<_>>()
    };
    let (k1, k0) = (changes("k1"), changes("k0"));
    assert!(
        k1.len() >= 2 && k1.last().is_some_and(|c| c.ends_with("-> Primary")),
        "k1's phase changes: {k1:?}"
    );
    assert!(
        k0.iter().any(|c| c.ends_with("-> Retiring")),
        "k0's phase changes: {k0:?}"
    );
    assert!(acked.len() > 50, "only {} writes acknowledged", acked.len());
    scene.wait_tables(&pods, &acked, false);
    for (name, v) in scene.sidecar_metric(&pods, "gossamer_decrypt_failures_total") {
        assert_eq!(v, 0.0, "{name}: decrypt failures");
    }
    for (name, v) in scene.sidecar_metric(&pods, "gossamer_keyring_keys") {
        assert_eq!(v, 1.0, "{name}: the old key is still in the keyring");
    }
    eprintln!(
        "figure: rotation under writes: k1 {k1:?}, k0 {k0:?}, {times:?}; {} writes, none lost, 0 decrypt failures",
        acked.len()
    );
}

/// A process of the Pod `uid` (its sandbox's or a container's): the one
/// whose cgroup path names the Pod.
fn pod_pid(uid: &str) -> u32 {
    let needle = format!("pod{uid}");
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|c| c.contains(&needle))
        })
        .collect();
    pids.sort_unstable();
    *pids
        .first()
        .unwrap_or_else(|| panic!("no process in a cgroup of Pod {uid}"))
}

/// Runs iptables inside the network namespace of process `pid`.
fn pod_iptables(pid: u32, rule: &[&str]) {
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "--", "iptables", "-w", "5"])
        .args(rule)
        .output()
        .expect("nsenter runs");
    assert!(
        out.status.success(),
        "iptables {rule:?} in the Pod's namespace: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// 5. Cut one Pod's network for 30 s and heal: tables identical on all,
///    no acknowledged write lost. The cut is made inside the Pod's network
///    namespace and spares only the node itself (the bridge's address): as
///    a partition between nodes, the Pod's own kubelet still probes it
///    (else it would restart the sidecar), while every other Pod and the
///    operator are unreachable both ways.
fn cut_and_heal(scene: &Scene) {
    let pods = scene.pods();
    let victim = pods[2].clone();
    let pid = pod_pid(&victim.uid);
    let node_ip = gossamer_tests::kube::CLUSTER_DNS.to_string();
    let mut healed_at = None;
    let acked = scene.writing_while(&pods, "cut", || {
        thread::sleep(Duration::from_secs(1));
        for rule in [
            vec!["-A", "INPUT", "-i", "lo", "-j", "ACCEPT"],
            vec!["-A", "INPUT", "-s", &node_ip, "-j", "ACCEPT"],
            vec!["-A", "INPUT", "-j", "DROP"],
            vec!["-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT"],
            vec!["-A", "OUTPUT", "-d", &node_ip, "-j", "ACCEPT"],
            vec!["-A", "OUTPUT", "-j", "DROP"],
        ] {
            pod_iptables(pid, &rule);
        }
        let cut = Instant::now();
        // Healed whatever happens next (the namespace goes with the Pod).
        struct Heal(u32);
        impl Drop for Heal {
            fn drop(&mut self) {
                pod_iptables(self.0, &["-F", "INPUT"]);
                pod_iptables(self.0, &["-F", "OUTPUT"]);
            }
        }
        let heal = Heal(pid);
        thread::sleep(Duration::from_secs(30));
        drop(heal);
        healed_at = Some(Instant::now());
        eprintln!("cut {} for {:?}", victim.name, cut.elapsed());
        thread::sleep(Duration::from_secs(3));
    });
    let healed = healed_at.expect("the cut ended");
    scene.wait_converged(3);
    // Identical tables: every acknowledged write, on all three.
    let before: BTreeSet<String> = scene.keys(&pods[0]).unwrap();
    let mut want: BTreeSet<String> = before
        .into_iter()
        .filter(|k| !k.starts_with("cut-"))
        .collect();
    want.extend(acked.iter().cloned());
    scene.wait_tables(&pods, &want, true);
    let on_victim = acked.iter().filter(|k| k.contains(&victim.name)).count();
    eprintln!(
        "figure: a Pod cut off for 30 s: tables identical on all 3 {:?} after the heal; {} writes acknowledged during the cut ({on_victim} on the cut Pod), none lost",
        healed.elapsed(),
        acked.len()
    );
}

/// 4. A BootstrapPeers change: every sidecar gets the new peers, and a new
///    Pod joins through them.
fn bootstrap_change(scene: &Scene) {
    let ns = &scene.ns;
    let pods = scene.pods();
    let before = scene.sidecar_metric(&pods, "gossamer_control_applied_version");
    // The youngest Pod as the only peer (fromMembers would name the two
    // oldest).
    let youngest = pods
        .iter()
        .max_by_key(|p| {
            jsonpath(
                ns,
                &format!("pod/{}", p.name),
                "{.metadata.creationTimestamp}",
            )
        })
        .unwrap()
        .clone();
    let peer = format!("{}:7946", youngest.ip);
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: BootstrapPeers\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  cluster: web\n  static: [\"{peer}\"]\n"
    ));
    scene.wait(
        "BootstrapPeers status names the new peer only",
        TIMEOUT,
        || {
            let got = jsonpath(ns, "bootstrappeers/web", "{.status.peers}");
            if got == format!("[\"{peer}\"]") {
                Ok(())
            } else {
                Err(got)
            }
        },
    );
    for p in &pods {
        scene.wait(
            &format!("{} applies the new peers", p.name),
            TIMEOUT,
            || {
                let v = metric(&p.ip, METRICS_PORT, "gossamer_control_applied_version")?;
                if v > before[&p.name] {
                    Ok(())
                } else {
                    Err(format!("version {v}"))
                }
            },
        );
    }
    let t0 = Instant::now();
    kubectl(&["scale", "deployment/web", "--replicas=4", "-n", ns]);
    scene.rollout();
    let four = scene.wait_converged(4);
    let new = four
        .iter()
        .find(|p| pods.iter().all(|o| o.name != p.name))
        .expect("a new Pod");
    let log = scene.sidecar_log(&new.name);
    assert!(
        log.lines()
            .any(|l| l.contains("member joined") && l.contains(&format!("node={}", youngest.name))),
        "{} did not join {}:\n{log}",
        new.name,
        youngest.name
    );
    eprintln!(
        "figure: a new Pod joined through the changed BootstrapPeers {:?} after the scale-up",
        t0.elapsed()
    );
    kubectl(&["scale", "deployment/web", "--replicas=3", "-n", ns]);
    scene.wait_converged(3);
}

/// A Pod with the sidecar image, written by hand (no injection).
fn impostor_yaml(ns: &str, name: &str, labels: &str, token: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {ns}
  labels: {{{labels}}}
spec:
  terminationGracePeriodSeconds: 2
  securityContext: {{runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}}
  containers:
  - name: gossamer
    image: {SIDECAR_IMAGE}
    imagePullPolicy: Never
    args: ["run", "--bind", "0.0.0.0:7946", "--advertise", "$(POD_IP):7946", "--metrics-listen", "0.0.0.0:{METRICS_PORT}"]
    env:
    - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
    - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    - {{name: POD_NAMESPACE, valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}}}
    - {{name: GOSSAMER_CLUSTER, value: web}}
    - {{name: GOSSAMER_CONTROL_ENDPOINT, value: "https://gossamer-operator.{OPERATOR_NS}.svc:8443"}}
    - {{name: GOSSAMER_CONTROL_CA, value: /var/run/gossamer-ca/ca.crt}}
    - {{name: GOSSAMER_CONTROL_TOKEN, value: {token}}}
    volumeMounts:
    - {{name: ca, mountPath: /var/run/gossamer-ca}}
    - {{name: token, mountPath: /var/run/secrets/gossamer}}
    - {{name: stolen, mountPath: /var/run/stolen}}
  volumes:
  - name: ca
    configMap: {{name: ca-copy}}
  - name: token
    projected: {{sources: [{{serviceAccountToken: {{audience: gossamer, path: token}}}}]}}
  - name: stolen
    secret: {{secretName: stolen-token, optional: true}}
"#
    )
}

/// 7. A Pod presenting another Pod's token, and a Pod that claims the
///    cluster without its label: both refused, nothing breaks for the
///    others.
fn impostors_refused(scene: &Scene) {
    let ns = &scene.ns;
    let pods = scene.pods();
    // The CA bundle, copied into the app namespace for the hand-made Pods.
    let ca = jsonpath(
        OPERATOR_NS,
        "configmap/gossamer-ca-bundle",
        "{.data.ca\\.crt}",
    );
    let out = kubectl(&[
        "create",
        "configmap",
        "ca-copy",
        "-n",
        ns,
        &format!("--from-literal=ca.crt={ca}"),
    ]);
    assert!(out.success(), "{}", out.stderr);
    // A token bound to a real member, stolen into a Secret.
    let victim = &pods[0];
    let token = kubectl(&[
        "create",
        "token",
        "default",
        "-n",
        ns,
        "--audience=gossamer",
        "--bound-object-kind=Pod",
        &format!("--bound-object-name={}", victim.name),
        &format!("--bound-object-uid={}", victim.uid),
    ]);
    assert!(token.success(), "{}", token.stderr);
    let out = kubectl(&[
        "create",
        "secret",
        "generic",
        "stolen-token",
        "-n",
        ns,
        &format!("--from-literal=token={}", token.stdout.trim()),
    ]);
    assert!(out.success(), "{}", out.stderr);
    let (_, leader_ip) = scene.leader();
    let refused = |reason: &str| {
        metric(
            &leader_ip,
            9090,
            &format!("gossamer_operator_control_refused_total{{reason=\"{reason}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let (other_before, member_before) = (refused("OtherPod"), refused("NotMember"));
    apply(&impostor_yaml(
        ns,
        "thief",
        "gossamer.dev/cluster: web",
        "/var/run/stolen/token",
    ));
    apply(&impostor_yaml(
        ns,
        "unlabelled",
        "",
        "/var/run/secrets/gossamer/token",
    ));
    scene.wait(
        "the operator refuses the stolen token and the unlabelled Pod",
        TIMEOUT,
        || {
            let (o, m) = (refused("OtherPod"), refused("NotMember"));
            if o > other_before && m > member_before {
                Ok(())
            } else {
                Err(format!(
                    "OtherPod {o} (was {other_before}), NotMember {m} (was {member_before})"
                ))
            }
        },
    );
    for (pod, want) in [
        ("thief", "is bound to"),
        ("unlabelled", "not a member of cluster"),
    ] {
        scene.wait(
            &format!("{pod}'s sidecar logs its refusal"),
            TIMEOUT,
            || {
                let log = scene.sidecar_log(pod);
                if log.contains(want) {
                    Ok(())
                } else {
                    Err(log.lines().rev().take(3).collect::<Vec<_>>().join(" | "))
                }
            },
        );
    }
    // Nothing broke: the members still gossip and converge, and no
    // impostor got the cluster's key (they would be alive members then).
    for p in &pods {
        let alive = metric(&p.ip, METRICS_PORT, r#"gossamer_members{state="alive"}"#);
        assert_eq!(alive, Ok(3.0), "{} with impostors around", p.name);
    }
    kubectl(&[
        "delete",
        "pod",
        "thief",
        "unlabelled",
        "-n",
        ns,
        "--wait=true",
        "--timeout=60s",
    ]);
    scene.wait_converged(3);
}

#[test]
fn the_users_path_on_a_real_cluster_with_real_pods() {
    let node = Node::start(cp()).expect("the node starts");
    let mut scene = install(node);
    join(&mut scene);
    scale_and_restart(&scene);
    operator_failover(&scene);
    rotation_under_writes(&scene);
    cut_and_heal(&scene);
    bootstrap_change(&scene);
    impostors_refused(&scene);

    kubectl(&[
        "delete",
        "namespace",
        &scene.ns,
        "--wait=true",
        "--timeout=90s",
    ]);
    let out = helm(&[
        "uninstall",
        RELEASE,
        "--namespace",
        OPERATOR_NS,
        "--wait",
        "--timeout=90s",
    ]);
    assert!(out.success(), "helm uninstall: {}", out.stderr);
    scene.node.check_running().unwrap();
    scene.node.stop().unwrap();
}
