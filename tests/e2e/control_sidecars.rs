//! Real sidecar processes under the real operator, over the control stream:
//! TLS verified against the CA bundle the operator publishes, a TokenRequest
//! token bound to a Pod object per sidecar, real etcd + kube-apiserver +
//! kube-controller-manager. Pods stay Pending (no kubelet): the sidecars
//! run as processes on loopback in their place.
//!
//! Eight sidecars start at the same moment with each other as seeds and
//! converge; every snapshot version reaches all of them and their ACKs show
//! in status; a key rotation under continuous writes loses no write and no
//! packet; a deleted Pod's entries vanish at once; a sidecar restart and an
//! operator restart resync with no manual step; no key byte appears in any
//! log, status, Event or metric.

// These tests drive real processes: their deadlines are wall-clock.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use gossamer_proto::tables::v1 as pb;
use gossamer_tests::kube::ControlPlane;
use gossamer_tests::leak::find_leak;
use gossamer_tests::operator::{Operator, OperatorOptions};
use gossamer_tests::{control, free_ports, Flags, Kind, Peer};
use pb::tables_client::TablesClient;

const N: usize = 8;
const WAIT: Duration = Duration::from_secs(60);
const TABLE: &str = "backends";

fn cp() -> &'static ControlPlane {
    ControlPlane::shared().expect("the real control plane starts (tests/kube/install.sh builds it)")
}

fn wait<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        thread::sleep(Duration::from_millis(100));
    }
}

fn apply(yaml: &str) {
    cp().apply(yaml);
}

fn kubectl(args: &[&str]) -> String {
    let out = cp().kubectl(args).expect("kubectl runs");
    assert!(out.success(), "kubectl {args:?}: {out:?}");
    out.stdout
}

fn jsonpath(ns: &str, kind: &str, name: &str, path: &str) -> String {
    cp().jsonpath(ns, kind, name, path)
}

fn wait_field(ns: &str, kind: &str, name: &str, path: &str, want: &str) {
    let mut last = String::new();
    wait(
        &format!("{kind}/{name} {path} == {want:?} (last {last:?})"),
        || {
            last = jsonpath(ns, kind, name, path);
            (last == want).then_some(())
        },
    );
}

/// One HTTP/1.1 GET over a plain socket; the body.
fn http_get(port: u16, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The value of the sample `name` (exact, no labels).
fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Entries hidden because their owner failed, over every network.
fn hidden_entries(body: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with("gossamer_table_hidden_entries{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// One sidecar process standing in for Pod `name`.
struct Sidecar {
    name: String,
    gossip: u16,
    metrics: u16,
    api: u16,
    peer: Peer,
}

/// What every sidecar of a test shares.
struct Setup {
    ns: String,
    dir: PathBuf,
    control_port: u16,
    ca: PathBuf,
}

impl Setup {
    fn token_file(&self, pod: &str) -> PathBuf {
        self.dir.join(format!("{pod}.token"))
    }

    /// Writes a fresh token for `pod` (the kubelet's rotation, by hand).
    fn refresh_token(&self, pod: &str) {
        let t = control::pod_token(cp(), &self.ns, pod, "gossamer").expect("a Pod token");
        std::fs::write(self.token_file(pod), t).unwrap();
    }

    fn flags(&self, pod: &str, ports: (u16, u16), seeds: &[u16]) -> Flags {
        // Debug logs: the key-leak scan at the end reads every line.
        let mut f = Flags::fast()
            .env("RUST_LOG", "debug,h2=info")
            .arg(
                "--control-endpoint",
                format!("https://127.0.0.1:{}", self.control_port),
            )
            .arg("--control-token", self.token_file(pod).display())
            .arg("--cluster", "default")
            .arg("--pod-namespace", &self.ns)
            .arg("--pod-name", pod)
            .arg("--control-resync-secs", 5)
            .arg("--metrics-listen", format!("127.0.0.1:{}", ports.0))
            .arg("--api-listen", format!("127.0.0.1:{}", ports.1));
        // Half the sidecars read the CA from a file (a mounted ConfigMap),
        // half from the environment (what the injector sets).
        if pod.bytes().map(u32::from).sum::<u32>() % 2 == 0 {
            let pem = std::fs::read_to_string(&self.ca).expect("the CA bundle");
            f = f.env("GOSSAMER_CONTROL_CA_PEM", &pem);
        } else {
            f = f.arg("--control-ca", self.ca.display());
        }
        for s in seeds {
            f = f.arg("--seed", format!("127.0.0.1:{s}"));
        }
        f
    }

    fn spawn(&self, pod: &str, gossip: u16, metrics: u16, api: u16, seeds: &[u16]) -> Sidecar {
        let peer = Peer::spawn_at(
            Kind::Rust,
            pod,
            gossip,
            self.flags(pod, (metrics, api), seeds),
        )
        .unwrap_or_else(|e| panic!("sidecar {pod} starts: {e}"));
        Sidecar {
            name: pod.to_string(),
            gossip,
            metrics,
            api,
            peer,
        }
    }
}

impl Sidecar {
    fn metrics(&self) -> String {
        http_get(self.metrics, "/metrics")
    }

    fn applied(&self) -> Option<u64> {
        sample(&self.metrics(), "gossamer_control_applied_version").map(|v| v as u64)
    }
}

fn pod(ns: &str, name: &str) {
    apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    app: web\n    gossamer.dev/cluster: default\nspec:\n  containers:\n  - name: app\n    image: gossamer.dev/none:0\n"
    ));
}

fn network(ns: &str, tables: &str) {
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipNetwork\nmetadata: {{name: endpoints, namespace: {ns}}}\nspec:\n  memberSelector: {{matchLabels: {{app: web}}}}\n  tables: [{tables}]\n"
    ));
}

fn key(ns: &str, name: &str) {
    apply(&format!(
        "apiVersion: gossamer.dev/v1alpha1\nkind: GossipKey\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{}}\n"
    ));
}

/// The version every sidecar runs, when they all run the same one.
fn one_version(cars: &[Sidecar]) -> Option<u64> {
    let vs: BTreeSet<Option<u64>> = cars.iter().map(Sidecar::applied).collect();
    (vs.len() == 1)
        .then(|| vs.into_iter().next().flatten())
        .flatten()
}

/// Replaces the `key` of Secret `name` with `b64` (base64).
fn set_secret_key(ns: &str, name: &str, b64: &str) {
    let patch = format!("{{\"data\":{{\"key\":\"{b64}\"}}}}");
    kubectl(&["patch", "secret", name, "-n", ns, "-p", &patch]);
}

/// The hex of a generated key, read from its Secret.
fn key_hex(ns: &str, name: &str) -> String {
    let b64 = jsonpath(ns, "secret", &format!("gossamer-key-{name}"), "{.data.key}");
    let out = std::process::Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b64.as_bytes())?;
            c.wait_with_output()
        })
        .expect("base64 runs");
    out.stdout.iter().map(|b| format!("{b:02x}")).collect()
}

fn operator(id: &str, port: Option<u16>) -> Operator {
    let mut opts = OperatorOptions::new(id);
    opts.control_port = port;
    opts.debug_logs = true;
    // The operator may not watch Secrets (least privilege); it re-reads a
    // key's Secret at each resync.
    opts.resync_secs = Some(5);
    let op = Operator::start(cp(), opts).expect("the operator starts");
    wait("the operator leads", || op.is_leader().then_some(()));
    op
}

fn setup(prefix: &str, control_port: u16) -> Setup {
    let ns = cp().namespace(prefix).expect("a fresh namespace");
    let dir = std::env::temp_dir().join(format!("gossamer-{ns}"));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.crt");
    let bundle = wait("the CA bundle", || control::ca_bundle(cp()).ok());
    std::fs::write(&ca, bundle).unwrap();
    Setup {
        ns,
        dir,
        control_port,
        ca,
    }
}

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

async fn api(port: u16) -> TablesClient<tonic::transport::Channel> {
    TablesClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .expect("the sidecar's API answers")
}

/// Every key of the table on `port`'s sidecar.
fn keys_on(port: u16, network: &str) -> BTreeSet<String> {
    rt().block_on(async {
        let Ok(mut c) = TablesClient::connect(format!("http://127.0.0.1:{port}")).await else {
            return BTreeSet::new();
        };
        c.list_table(pb::ListTableRequest {
            network: network.into(),
            table: TABLE.into(),
        })
        .await
        .map(|r| r.into_inner().entries.into_iter().map(|e| e.key).collect())
        .unwrap_or_default()
    })
}

#[test]
fn eight_sidecars_under_the_operator_converge_rotate_reap_and_resync() {
    let mut op = operator("sc1", None);
    let s = setup("sidecars", op.control_port());
    let ns = s.ns.clone();
    network(&ns, &format!("{{name: {TABLE}}}"));
    key(&ns, "k0");
    wait_field(&ns, "gossipkey", "k0", "{.status.phase}", "Primary");
    let names: Vec<String> = (0..N).map(|i| format!("web-{i}")).collect();
    for n in &names {
        pod(&ns, n);
        s.refresh_token(n);
    }
    wait_field(&ns, "gossipnetwork", "endpoints", "{.status.members}", "8");
    let nid = wait("the network id", || {
        Some(jsonpath(
            &ns,
            "gossipnetwork",
            "endpoints",
            "{.status.networkId}",
        ))
        .filter(|v| !v.is_empty())
    });

    // All eight at the same moment, each with the others as seeds.
    let ports = free_ports(3 * N);
    let gossip: Vec<u16> = ports[..N].to_vec();
    let started = Instant::now();
    let mut cars: Vec<Sidecar> = thread::scope(|sc| {
        let hs: Vec<_> = (0..N)
            .map(|i| {
                let seeds: Vec<u16> = (0..N).filter(|j| *j != i).map(|j| gossip[j]).collect();
                let (s, names, ports) = (&s, &names, &ports);
                sc.spawn(move || {
                    s.spawn(&names[i], ports[i], ports[N + i], ports[2 * N + i], &seeds)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for c in &cars {
        c.peer
            .wait_for(|v| v.alive().len() == N, WAIT)
            .unwrap_or_else(|e| panic!("{} never saw all {N}: {e}", c.name));
    }
    let converged = started.elapsed();

    // Every sidecar runs the operator's current version, with its key and
    // network, is ready, and the ACKs show in status.
    let v1 = wait("every sidecar applied a snapshot", || one_version(&cars));
    for c in &cars {
        let m = c.metrics();
        assert_eq!(sample(&m, "gossamer_keyring_keys"), Some(1.0), "{}", c.name);
        assert_eq!(sample(&m, "gossamer_control_connected"), Some(1.0));
        // Readiness follows within the join loop's check (1 s).
        let mut last = String::new();
        let ready = Instant::now() + Duration::from_secs(5);
        while Instant::now() < ready {
            last = http_get(c.metrics, "/readyz");
            if last.starts_with("HTTP/1.1 200") {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        assert!(
            last.starts_with("HTTP/1.1 200"),
            "{} not ready: {last}",
            c.name
        );
    }
    wait_field(
        &ns,
        "gossipnetwork",
        "endpoints",
        "{.status.acknowledged}",
        "8",
    );
    wait_field(
        &ns,
        "gossipnetwork",
        "endpoints",
        "{.status.conditions[?(@.type==\"Converged\")].status}",
        "True",
    );
    eprintln!(
        "8 sidecars converged {:.1} s after starting together; snapshot {v1}",
        converged.as_secs_f64()
    );

    // A snapshot change reaches all and is acknowledged by all.
    network(&ns, &format!("{{name: {TABLE}}}, {{name: health}}"));
    let t0 = Instant::now();
    let v2 = wait("a new version everywhere", || {
        one_version(&cars).filter(|v| *v > v1)
    });
    eprintln!(
        "snapshot {v2} applied on all 8 in {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    wait_field(
        &ns,
        "gossipnetwork",
        "endpoints",
        "{.status.acknowledged}",
        "8",
    );

    // An invalid key forced into the primary key's Secret (20 bytes, which
    // AES-GCM cannot use): the operator cannot list the members' keyrings
    // any more, so its next snapshot names no primary; every sidecar
    // refuses it (NACK) and runs on with the version it has; the refusal
    // shows in status and Events; gossip and writes go on; restoring the
    // Secret brings a version every sidecar acknowledges.
    let secret = "gossamer-key-k0";
    let good = jsonpath(&ns, "secret", secret, "{.data.key}");
    let nacks = |c: &Sidecar| sample(&c.metrics(), "gossamer_control_nacks_total").unwrap_or(0.0);
    let nacks0: Vec<f64> = cars.iter().map(nacks).collect();
    // base64 of twenty 0x07 bytes.
    let bad = "BwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    set_secret_key(&ns, secret, bad);
    wait_field(
        &ns,
        "gossipkey",
        "k0",
        "{.status.conditions[?(@.type==\"Ready\")].reason}",
        "KeyLength",
    );
    for (c, before) in cars.iter().zip(&nacks0) {
        wait(&format!("{} refuses the snapshot", c.name), || {
            (nacks(c) > *before).then_some(())
        });
        let m = c.metrics();
        assert_eq!(c.applied(), Some(v2), "{} left its version", c.name);
        assert_eq!(sample(&m, "gossamer_keyring_keys"), Some(1.0), "{}", c.name);
    }
    assert_eq!(
        jsonpath(&ns, "gossipkey", "k0", "{.status.phase}"),
        "Primary"
    );
    wait_field(
        &ns,
        "gossipnetwork",
        "endpoints",
        "{.status.conditions[?(@.type==\"Degraded\")].status}",
        "True",
    );
    wait("a Warning Event with the refusal", || {
        let ev = kubectl(&[
            "get",
            "events",
            "-n",
            &ns,
            "--field-selector",
            "type=Warning,involvedObject.kind=GossipNetwork",
            "-o",
            "jsonpath={.items[*].message}",
        ]);
        ev.contains("rejected snapshot").then_some(())
    });
    // The cluster still gossips with the key it has.
    rt().block_on(async {
        api(cars[0].api)
            .await
            .create_entry(pb::WriteEntryRequest {
                network: nid.clone(),
                table: TABLE.into(),
                key: "during-the-bad-secret".into(),
                value: b"v".to_vec(),
            })
            .await
            .expect("a write while the Secret is bad")
    });
    for c in &cars {
        wait(&format!("{} has the write", c.name), || {
            keys_on(c.api, &nid)
                .contains("during-the-bad-secret")
                .then_some(())
        });
    }
    set_secret_key(&ns, secret, &good);
    let v3 = wait("a version after the fix everywhere", || {
        one_version(&cars).filter(|v| *v > v2)
    });
    wait_field(
        &ns,
        "gossipnetwork",
        "endpoints",
        "{.status.conditions[?(@.type==\"Degraded\")].status}",
        "False",
    );
    wait_field(&ns, "gossipkey", "k0", "{.status.holders}", "8");
    eprintln!("a bad key Secret: refused by all 8 on {v2}; after the fix all run {v3}");

    // Key rotation under continuous writes: every sidecar writes its own
    // keys throughout; a new key, then the old one deleted.
    let stop = Arc::new(AtomicBool::new(false));
    let written: Arc<Mutex<Vec<String>>> = Arc::default();
    let writers: Vec<_> = cars
        .iter()
        .map(|c| {
            let (stop, written, port, nid, name) = (
                stop.clone(),
                written.clone(),
                c.api,
                nid.clone(),
                c.name.clone(),
            );
            thread::spawn(move || {
                rt().block_on(async {
                    let mut client = api(port).await;
                    // Bounded: at most 600 writes, one every 50 ms.
                    for i in 0..600 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let k = format!("{name}-{i}");
                        let r = client
                            .create_entry(pb::WriteEntryRequest {
                                network: nid.clone(),
                                table: TABLE.into(),
                                key: k.clone(),
                                value: b"v".to_vec(),
                            })
                            .await;
                        if r.is_ok() {
                            written.lock().unwrap().push(k);
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                })
            })
        })
        .collect();
    // And reliable (TCP) user messages, each sidecar to the next, every
    // 100 ms; none may fail or be lost.
    let sent: Mutex<Vec<(usize, String)>> = Mutex::default();
    let send_errors: Mutex<Vec<String>> = Mutex::default();
    let hexes = thread::scope(|scope| {
        scope.spawn(|| {
            // Bounded: at most 300 rounds of 8 messages.
            for i in 0..300 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                for (j, c) in cars.iter().enumerate() {
                    let to = (j + 1) % cars.len();
                    let data = format!("{}->{}#{i}", c.name, cars[to].name);
                    match c.peer.send(&cars[to].name, &data, true) {
                        Ok(()) => sent.lock().unwrap().push((to, data)),
                        Err(e) => send_errors.lock().unwrap().push(format!("{data}: {e}")),
                    }
                }
                thread::sleep(Duration::from_millis(100));
            }
        });
        thread::sleep(Duration::from_secs(2));
        let old_hex = key_hex(&ns, "k0");
        key(&ns, "k1");
        wait_field(&ns, "gossipkey", "k1", "{.status.holders}", "8");
        wait_field(&ns, "gossipkey", "k1", "{.status.phase}", "Primary");
        kubectl(&["delete", "gossipkey", "k0", "-n", &ns, "--wait=false"]);
        wait("k0 released", || {
            jsonpath(&ns, "gossipkey", "k0", "{.metadata.name}")
                .is_empty()
                .then_some(())
        });
        let new_hex = key_hex(&ns, "k1");
        thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        (old_hex, new_hex)
    });
    let (old_hex, new_hex) = hexes;
    for w in writers {
        w.join().unwrap();
    }
    let send_errors = send_errors.into_inner().unwrap();
    assert!(
        send_errors.is_empty(),
        "reliable sends failed during the rotation: {send_errors:?}"
    );
    let sent = sent.into_inner().unwrap();
    assert!(sent.len() > 100, "only {} reliable messages", sent.len());
    for (to, data) in &sent {
        let c = &cars[*to];
        wait(&format!("{} received {data}", c.name), || {
            c.peer
                .with_view(|v| v.user_msgs.iter().any(|m| m == data))
                .then_some(())
        });
    }
    eprintln!(
        "rotation under load: {} reliable messages, none failed or lost",
        sent.len()
    );
    let written: BTreeSet<String> = written.lock().unwrap().iter().cloned().collect();
    assert!(written.len() > 100, "only {} writes", written.len());
    for c in &cars {
        wait(&format!("{} holds every write", c.name), || {
            let have = keys_on(c.api, &nid);
            written.is_subset(&have).then_some(())
        });
        let m = c.metrics();
        assert_eq!(
            sample(&m, "gossamer_decrypt_failures_total"),
            Some(0.0),
            "{}: decrypt failures during the rotation",
            c.name
        );
        assert_eq!(
            sample(&m, "gossamer_keyring_keys"),
            Some(1.0),
            "{}: the old key is gone",
            c.name
        );
    }
    eprintln!(
        "rotation under load: {} writes, none lost, 0 decrypt failures",
        written.len()
    );

    // A deleted Pod: its process is gone and its entries vanish from every
    // other sidecar at once, not after NetworkDB's 24 h reap.
    let gone = cars.pop().unwrap();
    let mut gone_peer = gone.peer;
    gone_peer.kill();
    let t0 = Instant::now();
    kubectl(&["delete", "pod", &gone.name, "-n", &ns, "--wait=false"]);
    let prefix = format!("{}-", gone.name);
    for c in &cars {
        wait(
            &format!("{}'s entries gone from {}", gone.name, c.name),
            || (!keys_on(c.api, &nid).iter().any(|k| k.starts_with(&prefix))).then_some(()),
        );
    }
    eprintln!(
        "a deleted Pod's entries vanished everywhere in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // A sidecar restart resyncs by itself.
    let again = cars.remove(3);
    let (name, g, m, a) = (again.name.clone(), again.gossip, again.metrics, again.api);
    let mut p = again.peer;
    p.kill();
    drop(p);
    let seeds: Vec<u16> = cars.iter().map(|c| c.gossip).collect();
    let back = s.spawn(&name, g, m, a, &seeds);
    let current = cars[0].applied();
    wait("the restarted sidecar runs the current version", || {
        (back.applied() == current).then_some(())
    });
    back.peer
        .wait_for(|v| v.alive().len() == N - 1, WAIT)
        .expect("the restarted sidecar rejoins");
    cars.push(back);

    // An operator restart: the sidecars reconnect by themselves and take
    // the next version.
    let before: Vec<f64> = cars
        .iter()
        .map(|c| sample(&c.metrics(), "gossamer_control_connects_total").unwrap_or(0.0))
        .collect();
    op.kill();
    drop(op);
    // A Pod deleted while no operator runs: the next operator finds it
    // departed from the members its predecessor stored, and the others
    // reap its entries without waiting for NetworkDB's 24 h.
    // One that was never restarted: a restarted member drops what its
    // earlier life wrote, so it may own no entry by now.
    let gone = cars.remove(1);
    let mut before = before;
    before.remove(1);
    let prefix = format!("{}-", gone.name);
    assert!(
        keys_on(cars[0].api, &nid)
            .iter()
            .any(|k| k.starts_with(&prefix)),
        "{} owns no entry to reap",
        gone.name
    );
    let mut gone_peer = gone.peer;
    gone_peer.kill();
    kubectl(&["delete", "pod", &gone.name, "-n", &ns, "--wait=true"]);
    // Gossip alone sees a failed member: its entries are hidden, kept for
    // NetworkDB's reap.
    let mut hidden_before = Vec::new();
    for c in &cars {
        wait(&format!("{} hides {}'s entries", c.name, gone.name), || {
            let m = c.metrics();
            (sample(&m, r#"gossamer_members{state="dead"}"#) == Some(1.0)
                && !keys_on(c.api, &nid).iter().any(|k| k.starts_with(&prefix)))
            .then_some(())
        });
        hidden_before.push(hidden_entries(&c.metrics()));
    }
    op = operator("sc2", Some(s.control_port));
    assert_eq!(op.control_port(), s.control_port, "same port");
    let t0 = Instant::now();
    // Reaped: the member is gone from the list (not dead) and its hidden
    // entries with it.
    for (c, hidden) in cars.iter().zip(&hidden_before) {
        wait(
            &format!(
                "{}'s hidden entries reaped by {} after the operator restart",
                gone.name, c.name
            ),
            || {
                let m = c.metrics();
                (sample(&m, r#"gossamer_members{state="dead"}"#) == Some(0.0)
                    && hidden_entries(&m) < *hidden)
                    .then_some(())
            },
        );
    }
    eprintln!(
        "a Pod deleted while no operator ran: its hidden entries were reaped {:.1} s after the restart",
        t0.elapsed().as_secs_f64()
    );
    for (c, b) in cars.iter().zip(&before) {
        wait(&format!("{} reconnected", c.name), || {
            (sample(&c.metrics(), "gossamer_control_connects_total").unwrap_or(0.0) > *b
                && sample(&c.metrics(), "gossamer_control_connected") == Some(1.0))
            .then_some(())
        });
    }
    let before = cars[0].applied().unwrap();
    network(&ns, &format!("{{name: {TABLE}}}"));
    wait(
        "the next version everywhere after the operator restart",
        || {
            cars.iter()
                .all(|c| c.applied().is_some_and(|v| v > before))
                .then_some(())
        },
    );

    // No key byte anywhere: sidecar and operator logs, status, Events,
    // metrics.
    let mut texts = vec![
        ("operator log".to_string(), op.log()),
        (
            "custom resources".into(),
            kubectl(&[
                "get",
                "gossipnetworks,gossipkeys,bootstrappeers",
                "-n",
                &ns,
                "-o",
                "yaml",
            ]),
        ),
        (
            "events".into(),
            kubectl(&["get", "events", "-n", &ns, "-o", "yaml"]),
        ),
    ];
    for c in &cars {
        texts.push((format!("{} log", c.name), read(c.peer.log_path())));
        texts.push((format!("{} metrics", c.name), c.metrics()));
    }
    for (what, text) in &texts {
        if let Some(leak) = find_leak(text, &[&old_hex, &new_hex]) {
            panic!("key material in {what}: {leak}");
        }
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// A snapshot the sidecar cannot run is refused (NACK) and the sidecar keeps
/// its last good configuration; the refusal shows in the GossipNetwork's
/// status and in a Warning Event; fixing the cause brings an ACK. Here the
/// sidecar encrypts with a key of its own while the cluster has no
/// GossipKey yet: the operator's keyless snapshot would turn encryption
/// off, which a running node cannot do.
#[test]
fn a_snapshot_the_sidecar_cannot_run_is_nacked_reported_and_recovered() {
    let op = operator("sc3", None);
    let s = setup("nack", op.control_port());
    let ns = s.ns.clone();
    network(&ns, &format!("{{name: {TABLE}}}"));
    pod(&ns, "solo-0");
    s.refresh_token("solo-0");
    wait_field(&ns, "gossipnetwork", "endpoints", "{.status.members}", "1");
    let own = "00112233445566778899aabbccddeeff";
    let ports = free_ports(3);
    let peer = Peer::spawn_at(
        Kind::Rust,
        "solo-0",
        ports[0],
        s.flags("solo-0", (ports[1], ports[2]), &[])
            .arg("--key", own),
    )
    .expect("the sidecar starts");
    let car = Sidecar {
        name: "solo-0".into(),
        gossip: ports[0],
        metrics: ports[1],
        api: ports[2],
        peer,
    };
    wait("a NACK", || {
        (sample(&car.metrics(), "gossamer_control_nacks_total").unwrap_or(0.0) >= 1.0).then_some(())
    });
    // The old configuration runs on: its own key, encrypting; not ready.
    let m = car.metrics();
    assert_eq!(sample(&m, "gossamer_keyring_keys"), Some(1.0), "{m}");
    assert_eq!(
        sample(&m, "gossamer_control_applied_version"),
        Some(0.0),
        "{m}"
    );
    let r = http_get(car.metrics, "/readyz");
    assert!(
        r.starts_with("HTTP/1.1 503") && r.contains("turning encryption off"),
        "{r}"
    );
    wait_field(
        &ns,
        "gossipnetwork",
        "endpoints",
        "{.status.conditions[?(@.type==\"Degraded\")].status}",
        "True",
    );
    let msg = jsonpath(
        &ns,
        "gossipnetwork",
        "endpoints",
        "{.status.conditions[?(@.type==\"Degraded\")].message}",
    );
    assert!(msg.contains("turning encryption off"), "{msg}");
    wait("a Warning Event with the refusal", || {
        let ev = kubectl(&[
            "get",
            "events",
            "-n",
            &ns,
            "--field-selector",
            "type=Warning",
            "-o",
            "yaml",
        ]);
        ev.contains("turning encryption off").then_some(())
    });

    // Fixed: the cluster gets a key; the sidecar installs it, encrypts with
    // it, drops its own, and acknowledges.
    key(&ns, "k0");
    wait("an ACK", || car.applied().filter(|v| *v > 0));
    let m = car.metrics();
    assert_eq!(sample(&m, "gossamer_keyring_keys"), Some(1.0), "{m}");
    assert!(http_get(car.metrics, "/readyz").starts_with("HTTP/1.1 200"));
    wait_field(
        &ns,
        "gossipnetwork",
        "endpoints",
        "{.status.conditions[?(@.type==\"Degraded\")].status}",
        "False",
    );
    wait_field(&ns, "gossipkey", "k0", "{.status.holders}", "1");
    let k0 = key_hex(&ns, "k0");
    for (what, text) in [
        ("sidecar log", read(car.peer.log_path())),
        ("operator log", op.log()),
        ("metrics", car.metrics()),
    ] {
        assert!(
            find_leak(&text, &[own, &k0]).is_none(),
            "key material in the {what}"
        );
    }
}
