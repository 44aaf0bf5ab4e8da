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
//! The app container is the sidecar image running `gossamer-sidecar client
//! members --every 10` (an app that reads the cluster through the socket);
//! the test writes and reads table entries in it with `kubectl exec ...
//! gossamer-sidecar client put|list`, through the sidecar's socket in the
//! Pod's shared `emptyDir`. Metrics are read through the API server's Pod
//! proxy. So the same scenarios run on the test's own node (the default)
//! and on any cluster `tests/e2e/kind/run.sh` makes: with
//! `GOSSAMER_E2E_KUBECONFIG` set, the test uses that cluster, its
//! `kubectl` and `helm` from `PATH`, and reaches a Pod's network namespace
//! through `docker exec` on the kind node that runs it.

#![allow(clippy::disallowed_methods)] // tests wait on the wall clock

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use gossamer_tests::kube::{ControlPlane, Node, OPERATOR_IMAGE, SIDECAR_IMAGE};
use gossamer_tests::KubectlOutput;

const RELEASE: &str = "gossamer";
const OPERATOR_NS: &str = "gossamer-system";
const LEASE: &str = "lease/gossamer-operator";
const TABLE: &str = "greetings";
const METRICS_PORT: u16 = 9946;
const TIMEOUT: Duration = Duration::from_secs(120);

/// The cluster's kubeconfig, and the kubectl and helm to use with it.
struct Access {
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    helm: PathBuf,
    /// A kind cluster (`tests/e2e/kind/run.sh`): nodes are containers.
    kind: bool,
}

/// The environment variable that points the scenarios at a cluster made
/// elsewhere (kind), instead of the test's own node.
const KUBECONFIG_ENV: &str = "GOSSAMER_E2E_KUBECONFIG";

static ACCESS: OnceLock<Access> = OnceLock::new();

fn access() -> &'static Access {
    ACCESS.get().expect("the target cluster is chosen first")
}

fn run(program: &PathBuf, args: &[&str], stdin: Option<&str>) -> KubectlOutput {
    let mut cmd = Command::new(program);
    cmd.arg("--kubeconfig")
        .arg(&access().kubeconfig)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().expect("the command ends");
    KubectlOutput {
        command: format!("{} {}", program.display(), args.join(" ")),
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn kubectl(args: &[&str]) -> KubectlOutput {
    run(&access().kubectl, args, None)
}

fn helm(args: &[&str]) -> KubectlOutput {
    run(&access().helm, args, None)
}

fn apply(yaml: &str) {
    let out = run(&access().kubectl, &["apply", "-f", "-"], Some(yaml));
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

/// The value of `series` (name and labels, as exported) on the Pod's
/// `/metrics`, through the API server's Pod proxy.
fn metric(ns: &str, pod: &str, port: u16, series: &str) -> Result<f64, String> {
    let out = kubectl(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/{ns}/pods/{pod}:{port}/proxy/metrics"),
    ]);
    if !out.success() {
        return Err(out.stderr.trim().to_string());
    }
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no {series} in /metrics of {ns}/{pod}"))
}

/// Runs `cmd` on the node `node` (root): here, or in its kind container.
fn on_node(node: &str, cmd: &[&str]) -> std::process::Output {
    let mut c = if access().kind {
        let mut c = Command::new("docker");
        c.args(["exec", node]).args(cmd);
        c
    } else {
        let mut c = Command::new(cmd[0]);
        c.args(&cmd[1..]);
        c
    };
    c.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} on node {node}: {e}"))
}

/// A running app Pod.
#[derive(Clone, Debug)]
struct AppPod {
    name: String,
    uid: String,
    node: String,
}

/// The installed chart, the app's namespace, and the test's own node (none
/// on kind).
struct Scene {
    node: Option<Node>,
    ns: String,
    network: String,
}

impl Scene {
    /// What the cluster looked like when something did not happen.
    fn diagnose(&self) -> String {
        // A tainted or pressured node explains Pending and evicted Pods.
        let mut out = kubectl(&[
            "get",
            "nodes",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} taints={.spec.taints} \
             conditions={range .status.conditions[?(@.status==\"True\")]}{.type} {end}{\"\\n\"}{end}",
        ])
        .stdout;
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
        if let Some(node) = &self.node {
            let kubelet = node.log_dir().join("kubelet.log");
            let text = std::fs::read_to_string(&kubelet).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out += &format!(
                "\nkubelet log {} ends:\n{}",
                kubelet.display(),
                lines[lines.len().saturating_sub(20)..].join("\n")
            );
        }
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
            r#"{range .items[*]}{.metadata.name} {.metadata.uid} {.spec.nodeName} {.status.conditions[?(@.type=="Ready")].status} {.metadata.deletionTimestamp}{"\n"}{end}"#,
        );
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 4 && f[3] == "True" && f[0].starts_with("web-")).then(|| AppPod {
                    name: f[0].to_string(),
                    uid: f[1].to_string(),
                    node: f[2].to_string(),
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
                || match metric(
                    &self.ns,
                    &p.name,
                    METRICS_PORT,
                    r#"gossamer_members{state="alive"}"#,
                ) {
                    Ok(v) if v == n as f64 => Ok(()),
                    other => Err(format!("{other:?}")),
                },
            );
        }
        pods
    }

    /// `gossamer-sidecar client ...` in the Pod's app container: through
    /// the sidecar's socket, as the app itself would.
    fn client(&self, pod: &AppPod, args: &[&str]) -> Result<String, String> {
        let mut all = vec![
            "exec",
            "-n",
            &self.ns,
            &pod.name,
            "-c",
            "app",
            "--",
            "gossamer-sidecar",
            "client",
        ];
        all.extend_from_slice(args);
        let out = kubectl(&all);
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(out.stderr.trim().to_string())
        }
    }

    fn write(&self, pod: &AppPod, key: &str) -> Result<(), String> {
        let network = format!("--network={}", self.network);
        let table = format!("--table={TABLE}");
        self.client(pod, &["put", &network, &table, key, &pod.name])
            .map(|_| ())
    }

    fn keys(&self, pod: &AppPod) -> Result<BTreeSet<String>, String> {
        let network = format!("--network={}", self.network);
        let table = format!("--table={TABLE}");
        let text = self.client(pod, &["list", &network, &table])?;
        Ok(text
            .lines()
            .filter_map(|l| l.split('\t').next())
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect())
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
                let v = metric(&self.ns, &p.name, METRICS_PORT, series)
                    .unwrap_or_else(|e| panic!("{}: {e}", p.name));
                (p.name.clone(), v)
            })
            .collect()
    }

    /// The operator replica holding the Lease.
    fn leader(&self) -> String {
        jsonpath(OPERATOR_NS, LEASE, "{.spec.holderIdentity}")
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

fn install(node: Option<Node>) -> Scene {
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
    let ns = format!("shop-{}", std::process::id());
    let out_ns = kubectl(&["create", "namespace", &ns]);
    assert!(out_ns.success(), "{}", out_ns.stderr);
    let scene = Scene {
        node,
        ns,
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
        let holder = scene.leader();
        if holder.starts_with("gossamer-operator-") {
            Ok(())
        } else {
            Err(holder)
        }
    });
    // The API server calls the injector only once the operator has put its
    // CA in the webhook configuration (until then failurePolicy Ignore
    // would admit Pods without their sidecar).
    scene.wait("the injector's caBundle is set", TIMEOUT, || {
        let ca = jsonpath(
            OPERATOR_NS,
            "mutatingwebhookconfiguration/gossamer-sidecar-injector",
            "{.webhooks[0].clientConfig.caBundle}",
        );
        if ca.is_empty() {
            Err("empty".into())
        } else {
            Ok(())
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
        image: {SIDECAR_IMAGE}
        imagePullPolicy: Never
        # An app that reads the cluster through the sidecar's socket.
        command: [gossamer-sidecar, client, members, --every, "10"]
        securityContext: {{allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {{drop: [ALL]}}}}
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
    let old = scene.leader();
    let t0 = Instant::now();
    kubectl(&["delete", "pod", &old, "-n", OPERATOR_NS, "--wait=false"]);
    scene.wait(
        "another replica holds the Lease",
        Duration::from_secs(15),
        || {
            let holder = scene.leader();
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
        let alive = metric(
            &scene.ns,
            &p.name,
            METRICS_PORT,
            r#"gossamer_members{state="alive"}"#,
        );
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
                let v = metric(
                    &scene.ns,
                    &p.name,
                    METRICS_PORT,
                    "gossamer_control_applied_version",
                )?;
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
        thread::sleep(Duration::from_secs(4));
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
        thread::sleep(Duration::from_secs(4));
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
    assert!(acked.len() > 30, "only {} writes acknowledged", acked.len());
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

/// A process of the Pod (its sandbox's or a container's), on its node: here
/// the one whose cgroup path names the Pod's uid; on kind the sandbox's,
/// from crictl in the node's container.
fn pod_pid(pod: &AppPod, ns: &str) -> u32 {
    if access().kind {
        let script = format!(
            "crictl inspectp --output go-template --template '{{{{.info.pid}}}}' \
             \"$(crictl pods --name {} --namespace {ns} --state ready -q | head -n 1)\"",
            pod.name
        );
        let out = on_node(&pod.node, &["sh", "-c", &script]);
        return String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| {
                panic!(
                    "no sandbox PID for {} on {}: {}",
                    pod.name,
                    pod.node,
                    String::from_utf8_lossy(&out.stderr)
                )
            });
    }
    let needle = format!("pod{}", pod.uid);
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
        .unwrap_or_else(|| panic!("no process in a cgroup of Pod {}", pod.uid))
}

/// Runs `cmd` inside the network namespace of process `pid` on `node`.
fn in_pod_netns(node: &str, pid: u32, cmd: &[&str]) -> String {
    let pid = pid.to_string();
    let mut all = vec!["nsenter", "-t", &pid, "-n", "--"];
    all.extend_from_slice(cmd);
    let out = on_node(node, &all);
    assert!(
        out.status.success(),
        "{cmd:?} in the Pod's network namespace on {node}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// 5. Cut one Pod's network for 30 s and heal: tables identical on all,
///    no acknowledged write lost. The cut is made with iptables inside the
///    Pod's network namespace and spares only its own node (the Pod's
///    gateway and the node's address): as in a partition between nodes,
///    the Pod's kubelet still probes it (else it would restart the
///    sidecar), while every other Pod and the operator are unreachable
///    both ways.
fn cut_and_heal(scene: &Scene) {
    let pods = scene.pods();
    let victim = pods[2].clone();
    let pid = pod_pid(&victim, &scene.ns);
    let node = victim.node.clone();
    let route = in_pod_netns(&node, pid, &["ip", "-4", "route", "show", "default"]);
    let gateway = route
        .split_whitespace()
        .skip_while(|w| *w != "via")
        .nth(1)
        .unwrap_or_else(|| panic!("no default route in the Pod: {route:?}"))
        .to_string();
    let node_ip = jsonpath(
        "default",
        &format!("node/{node}"),
        r#"{.status.addresses[?(@.type=="InternalIP")].address}"#,
    );
    let iptables = |rule: &[&str]| {
        let mut all = vec!["iptables", "-w", "5"];
        all.extend_from_slice(rule);
        in_pod_netns(&node, pid, &all);
    };
    let mut healed_at = None;
    let acked = scene.writing_while(&pods, "cut", || {
        thread::sleep(Duration::from_secs(1));
        let mut rules = vec![
            vec!["-A", "INPUT", "-i", "lo", "-j", "ACCEPT"],
            vec!["-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT"],
        ];
        for spared in [gateway.as_str(), node_ip.as_str()] {
            rules.push(vec!["-A", "INPUT", "-s", spared, "-j", "ACCEPT"]);
            rules.push(vec!["-A", "OUTPUT", "-d", spared, "-j", "ACCEPT"]);
        }
        rules.push(vec!["-A", "INPUT", "-j", "DROP"]);
        rules.push(vec!["-A", "OUTPUT", "-j", "DROP"]);
        for rule in &rules {
            iptables(rule);
        }
        let cut = Instant::now();
        // Healed whatever happens next (the namespace goes with the Pod).
        struct Heal<'a>(&'a dyn Fn(&[&str]));
        impl Drop for Heal<'_> {
            fn drop(&mut self) {
                (self.0)(&["-F", "INPUT"]);
                (self.0)(&["-F", "OUTPUT"]);
            }
        }
        let heal = Heal(&iptables);
        thread::sleep(Duration::from_secs(30));
        drop(heal);
        healed_at = Some(Instant::now());
        eprintln!(
            "cut {} (sparing {gateway} and {node_ip}) for {:?}",
            victim.name,
            cut.elapsed()
        );
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
    let ip = jsonpath(ns, &format!("pod/{}", youngest.name), "{.status.podIP}");
    let peer = format!("{ip}:7946");
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
                let v = metric(
                    &scene.ns,
                    &p.name,
                    METRICS_PORT,
                    "gossamer_control_applied_version",
                )?;
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
    let leader = scene.leader();
    let refused = |reason: &str| {
        metric(
            OPERATOR_NS,
            &leader,
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
        let alive = metric(
            &scene.ns,
            &p.name,
            METRICS_PORT,
            r#"gossamer_members{state="alive"}"#,
        );
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
    // The test's own node, or a cluster made elsewhere (kind/run.sh).
    let node = match std::env::var_os(KUBECONFIG_ENV).filter(|v| !v.is_empty()) {
        Some(kubeconfig) => {
            let tool = |name: &str| -> PathBuf {
                match std::env::var_os("GOSSAMER_KUBE_BIN") {
                    Some(dir) => PathBuf::from(dir).join(name),
                    None => PathBuf::from(name),
                }
            };
            let _ = ACCESS.set(Access {
                kubeconfig: PathBuf::from(kubeconfig),
                kubectl: tool("kubectl"),
                helm: tool("helm"),
                kind: true,
            });
            None
        }
        None => {
            let cp = ControlPlane::shared().expect("the control plane starts");
            let _ = ACCESS.set(Access {
                kubeconfig: cp.admin_kubeconfig().to_path_buf(),
                kubectl: cp.binaries().get("kubectl").expect("kubectl is built"),
                helm: cp.binaries().get("helm").expect("helm is built"),
                kind: false,
            });
            Some(Node::start(cp).expect("the node starts"))
        }
    };
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
    if let Some(node) = scene.node {
        node.check_running().unwrap();
        node.stop().unwrap();
    }
}
