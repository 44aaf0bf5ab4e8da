//! The control stream at scale, on a real control plane: 1,000 concurrent
//! sidecar streams over TLS, each authenticated with its own TokenRequest
//! token bound to its own Pod (TokenReview by the operator). A change to a
//! GossipNetwork's spec makes a new snapshot version; the figure is the
//! time from the change until each stream has received that version and
//! sent its ACK (p50/p99/max), and until the operator's status shows every
//! ACK. Also the operator's CPU time and resident memory with the streams
//! open, and one real sidecar's resident memory idle with its control
//! client running.
//!
//! Run: `cargo bench -p gossamer-tests --bench control_streams`
//! (`-- --streams N --changes K` to change the sizes).

#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

use std::sync::Arc;
use std::time::{Duration, Instant};

use gossamer_proto::control::v1::sidecar_message::Kind;
use gossamer_proto::control::v1::{Ack, ConfigSnapshot};
use gossamer_tests::control::{self, Sidecar};
use gossamer_tests::kube::ControlPlane;
use gossamer_tests::operator::{Operator, OperatorOptions, CONTROL_SERVICE_DNS};
use gossamer_tests::{free_ports, static_release_sidecar_binary, Flags, Kind as PeerKind, Peer};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::PostParams;
use kube::Api;
use tokio::sync::Mutex;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse().expect("a number"))
        .unwrap_or(default)
}

fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of `pid`, in clock ticks (1/100 s here).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat, counted after the command name.
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn apply(cp: &ControlPlane, yaml: &str) {
    let out = cp.kubectl_apply_stdin(yaml).unwrap();
    assert!(out.success(), "{out:?}");
}

fn network(cp: &ControlPlane, ns: &str, tables: usize) {
    let t: Vec<String> = (0..tables).map(|i| format!("{{name: t{i}}}")).collect();
    apply(
        cp,
        &format!(
            "apiVersion: gossamer.dev/v1alpha1\nkind: GossipNetwork\nmetadata: {{name: bench, namespace: {ns}}}\nspec:\n  memberSelector: {{matchLabels: {{app: web}}}}\n  tables: [{}]\n",
            t.join(", ")
        ),
    );
}

fn status_acks(cp: &ControlPlane, ns: &str) -> usize {
    cp.kubectl(&[
        "get",
        "gossipnetwork",
        "bench",
        "-n",
        ns,
        "-o",
        "jsonpath={.status.acknowledged}",
    ])
    .ok()
    .and_then(|o| o.stdout.trim().parse().ok())
    .unwrap_or(0)
}

/// Reads snapshots until one newer than `after`; ACKs it.
async fn ack_next(sc: &mut Sidecar, after: u64) -> Option<ConfigSnapshot> {
    loop {
        let s = sc.next(Duration::from_secs(120)).await.ok()??;
        if s.version > after {
            sc.send(Kind::Ack(Ack {
                version: s.version,
                nonce: s.nonce.clone(),
            }))
            .await;
            return Some(s);
        }
    }
}

fn main() {
    let streams = arg("--streams", 1000);
    let changes = arg("--changes", 5);
    let cp = ControlPlane::shared().unwrap();
    let op = Operator::start(cp, OperatorOptions::new("bench-ctl")).unwrap();
    while !op.is_leader() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let ns = cp.namespace("ctlbench").unwrap();
    network(cp, &ns, 1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // Pods and their tokens, through the API (as the kubelet would ask).
    let t = Instant::now();
    let tokens: Vec<String> = rt.block_on(async {
        let client = cp.client().await.unwrap();
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let sas: Api<ServiceAccount> = Api::namespaced(client, &ns);
        let mut tokens = Vec::with_capacity(streams);
        for i in 0..streams {
            let pod: Pod = serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("p{i}"), "labels": {"app": "web", "gossamer.dev/cluster": "default"}},
                "spec": {"containers": [{"name": "app", "image": "gossamer.dev/none:0"}]}
            }))
            .unwrap();
            let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
            let tr: TokenRequest = serde_json::from_value(serde_json::json!({
                "spec": {
                    "audiences": ["gossamer"],
                    "expirationSeconds": 3600,
                    "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                        "name": pod.metadata.name, "uid": pod.metadata.uid}
                }
            }))
            .unwrap();
            let tr = sas
                .create_token_request("default", &PostParams::default(), &tr)
                .await
                .unwrap();
            tokens.push(tr.status.and_then(|s| s.token).expect("a token"));
        }
        tokens
    });
    eprintln!(
        "{streams} Pods and tokens in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let ca = loop {
        if let Ok(ca) = control::ca_bundle(cp) {
            break ca;
        }
        std::thread::sleep(Duration::from_millis(100));
    };

    // Open every stream; each holds the first version.
    let ticks0 = cpu_ticks(op.pid());
    let t = Instant::now();
    let port = op.control_port();
    let sidecars: Vec<Arc<Mutex<Sidecar>>> = rt.block_on(async {
        // 20 TLS connections, 50 streams each (HTTP/2 multiplexing).
        let mut channels = Vec::new();
        for _ in 0..20 {
            channels.push(
                control::connect(port, &ca, CONTROL_SERVICE_DNS)
                    .await
                    .unwrap(),
            );
        }
        let mut out = Vec::with_capacity(streams);
        let mut first = 0;
        for (i, token) in tokens.iter().enumerate() {
            let ch = channels[i % channels.len()].clone();
            let mut sc = Sidecar::subscribe(ch, Some(token), control::hello(&ns, &format!("p{i}")))
                .await
                .unwrap_or_else(|e| panic!("stream {i} refused: {e}"));
            let s = ack_next(&mut sc, 0).await.expect("a first snapshot");
            first = first.max(s.version);
            out.push(Arc::new(Mutex::new(sc)));
        }
        out
    });
    let opened = t.elapsed();
    let open_ticks = cpu_ticks(op.pid()) - ticks0;
    std::thread::sleep(Duration::from_secs(3));
    let rss_open = proc_status(op.pid(), "VmRSS:");
    eprintln!(
        "{streams} streams opened and ACKed in {:.1} s; operator CPU {:.1} s for that; operator RSS {:.1} MiB with them open",
        opened.as_secs_f64(),
        open_ticks as f64 / 100.0,
        rss_open as f64 / 1024.0
    );

    // Changes: each makes a new version; every stream ACKs it.
    let mut lat: Vec<Duration> = Vec::new();
    let mut status_all: Vec<Duration> = Vec::new();
    let mut version = 0;
    for c in 0..changes {
        let ticks = cpu_ticks(op.pid());
        let t0 = Instant::now();
        network(cp, &ns, 2 + c);
        let got: Vec<(Duration, u64)> = rt.block_on(async {
            let tasks: Vec<_> = sidecars
                .iter()
                .map(|sc| {
                    let sc = sc.clone();
                    tokio::spawn(async move {
                        let mut sc = sc.lock().await;
                        let s = ack_next(&mut sc, version).await.expect("a new version");
                        (t0.elapsed(), s.version)
                    })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        version = got.iter().map(|g| g.1).max().unwrap();
        lat.extend(got.iter().map(|g| g.0));
        while status_acks(cp, &ns) < streams {
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "status never showed every ACK"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        status_all.push(t0.elapsed());
        eprintln!(
            "change {c}: version {version} on all {streams} in {:.0} ms; status acknowledged={streams} after {:.0} ms; operator CPU {:.2} s",
            got.iter().map(|g| g.0).max().unwrap().as_secs_f64() * 1000.0,
            t0.elapsed().as_secs_f64() * 1000.0,
            (cpu_ticks(op.pid()) - ticks) as f64 / 100.0
        );
    }
    lat.sort();
    status_all.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "snapshot change -> ACK sent, {} samples ({streams} streams x {changes} changes): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        lat.len(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap())
    );
    println!(
        "snapshot change -> status shows all {streams} ACKs: min {:.0} ms, median {:.0} ms, max {:.0} ms ({changes} changes)",
        ms(status_all[0]),
        ms(percentile(&status_all, 0.5)),
        ms(*status_all.last().unwrap())
    );
    println!(
        "operator: RSS {:.1} MiB with {streams} streams; CPU {:.1} s to open them",
        proc_status(op.pid(), "VmRSS:") as f64 / 1024.0,
        open_ticks as f64 / 100.0
    );
    drop(sidecars);

    // One real sidecar under the operator, idle with its control client:
    // first as the images ship it (static release build), then the release
    // build the other benchmarks run (dynamically linked to glibc).
    let dir = std::env::temp_dir().join(format!("gossamer-{ns}-rss"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.crt"), &ca).unwrap();
    std::fs::write(dir.join("token"), &tokens[0]).unwrap();
    let builds = [
        (
            "static release (the image's)",
            Some(static_release_sidecar_binary()),
        ),
        ("release, dynamically linked", None),
    ];
    for (build, program) in builds {
        let ports = free_ports(2);
        let mut flags = Flags::new()
            .arg("--control-endpoint", format!("https://127.0.0.1:{port}"))
            .arg("--control-ca", dir.join("ca.crt").display())
            .arg("--control-token", dir.join("token").display())
            .arg("--cluster", "default")
            .arg("--pod-namespace", &ns)
            .arg("--pod-name", "p0")
            .arg("--metrics-listen", format!("127.0.0.1:{}", ports[1]));
        if let Some(p) = &program {
            flags = flags.program(p);
        }
        let peer = Peer::spawn_at(PeerKind::Rust, "p0", ports[0], flags).unwrap();
        // Five samples, 5 s apart, after 10 s of settling.
        std::thread::sleep(Duration::from_secs(10));
        for i in 0..5 {
            std::thread::sleep(Duration::from_secs(5));
            let mib = |field| proc_status(peer.pid(), field) as f64 / 1024.0;
            println!(
                "sidecar idle with its control client, {build}, sample {}: RSS {:.2} MiB ({:.2} MB) = anonymous {:.2} + file {:.2} + shmem {:.2} (VmHWM {:.2} MiB)",
                i + 1,
                mib("VmRSS:"),
                mib("VmRSS:") * 1.048576,
                mib("RssAnon:"),
                mib("RssFile:"),
                mib("RssShmem:"),
                mib("VmHWM:")
            );
        }
        println!(
            "sidecar idle, {build}, resident by mapping: {}",
            rss_by_mapping(peer.pid())
        );
    }
}

/// Resident KiB per mapped file (and anonymous memory), largest first, from
/// `/proc/PID/smaps`.
fn rss_by_mapping(pid: u32) -> String {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut by: std::collections::BTreeMap<String, u64> = Default::default();
    let mut current = String::new();
    for line in smaps.lines() {
        let mut parts = line.split_whitespace();
        let first = parts.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: address perms offset dev inode [path].
            current = parts.nth(4).unwrap_or("[anonymous]").to_string();
        } else if first == "Rss:" {
            let kb: u64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            *by.entry(current.clone()).or_default() += kb;
        }
    }
    let mut v: Vec<_> = by.into_iter().filter(|(_, kb)| *kb > 0).collect();
    v.sort_by_key(|b| std::cmp::Reverse(b.1));
    v.iter()
        .map(|(p, kb)| format!("{} {kb} KiB", p.rsplit('/').next().unwrap_or(p)))
        .collect::<Vec<_>>()
        .join(", ")
}
