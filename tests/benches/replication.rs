//! Replication latency to all nodes and bytes on the wire per update, for
//! N sidecars on loopback with default (LAN) intervals, and the same
//! workload on N Go NetworkDB nodes (`tests/interop/networkdb-peer`).
//!
//! One node (n0) writes `--writes` entries (64-byte values), one every
//! `--interval-ms`; every other node watches the table. A write's latency
//! is the time until the *last* other node saw it; p50 and p99 are over
//! the writes. Sidecars: written through the gRPC API, seen on
//! `WatchTable` streams (receipt stamped in this process). Go: written
//! with `CreateEntry` over stdio, seen by each node's `Watch` channel
//! (stamped in that process, `ts_ns`). Wall clocks of one machine.
//!
//! Bytes per update: payload bytes all nodes sent (the `stats` counters)
//! from the first write until `--settle-s` after the last delivery (so
//! that retransmissions still queued at the last delivery count too),
//! minus what the cluster sends when idle over as long (measured just
//! before, over `--idle-s`), divided by the writes; once for UDP (the
//! gossip itself) and once for UDP + TCP (with the periodic bulk syncs,
//! which grow with the table). Idle bytes per node and second are printed
//! too, UDP and UDP + TCP; and the formation time: from the first start
//! until every node counts every node in the network.
//!
//! Run: `cargo bench -p gossamer-tests --bench replication -- --nodes 16`
//! (also `--writes 100 --interval-ms 50 --kinds rust,go --timeout-s 60
//! --settle-s 15 --idle-s 30 --warmup-s 0`: the idle window starts no
//! sooner than `--warmup-s` after the first start; `--sentinel-ttl-ms 0`
//! runs the sidecars without the cluster sentinel).
//! The sidecar is built in the bench (release) profile. Prints a Markdown
//! table.

#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gossamer_proto::tables::v1 as pb;
use gossamer_tests::{
    free_ports, networkdb_peer_binary, sidecar_binary, Cluster, Flags, Kind, Peer,
};
use pb::tables_client::TablesClient;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

const NET: &str = "bench";
const TABLE: &str = "repl";

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn num(name: &str, default: u64) -> u64 {
    arg(name, &default.to_string())
        .parse()
        .unwrap_or_else(|_| panic!("{name} takes a number"))
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

struct Params {
    nodes: usize,
    writes: usize,
    interval: Duration,
    timeout: Duration,
    settle: Duration,
    idle: Duration,
    warmup: Duration,
}

/// What one run measured.
struct Outcome {
    /// Per write: ms until the last other node saw it (delivered writes only).
    latencies_ms: Vec<f64>,
    /// (write, node) deliveries missing at the deadline.
    missing: usize,
    /// UDP, and UDP + TCP.
    bytes_per_update: Sent<f64>,
    /// Idle bytes per second of the whole cluster.
    idle: Sent<f64>,
    formation: Duration,
}

/// Bytes sent: UDP, and UDP + TCP.
#[derive(Clone, Copy, Debug)]
struct Sent<T> {
    udp: T,
    all: T,
}

fn total_sent(peers: &[Peer]) -> Sent<u64> {
    let mut t = Sent { udp: 0, all: 0 };
    for p in peers {
        let s = p.stats().expect("stats");
        t.udp += s.udp_sent;
        t.all += s.udp_sent + s.tcp_sent;
    }
    t
}

/// Idle bytes/s of the whole cluster over `d`, from `warmup` after the
/// first start (`started`) at the earliest: the steady state, not what a
/// new cluster does once (catch-ups, the first sentinel write).
fn idle_rate(peers: &[Peer], started: Instant, warmup: Duration, d: Duration) -> Sent<f64> {
    if let Some(rest) = warmup.checked_sub(started.elapsed()) {
        std::thread::sleep(rest);
    }
    let t0 = Instant::now();
    let b0 = total_sent(peers);
    std::thread::sleep(d);
    let b1 = total_sent(peers);
    let s = t0.elapsed().as_secs_f64();
    Sent {
        udp: (b1.udp - b0.udp) as f64 / s,
        all: (b1.all - b0.all) as f64 / s,
    }
}

fn start(kind: Kind, n: usize, api_ports: &[u16]) -> Cluster {
    let sentinel = arg("--sentinel-ttl-ms", "");
    Cluster::start_with(&vec![kind; n], |i| {
        let f = Flags::new().network(NET);
        match kind {
            Kind::Rust => {
                let f = f.arg("--api-listen", format!("127.0.0.1:{}", api_ports[i]));
                if sentinel.is_empty() {
                    f
                } else {
                    f.arg("--sentinel-ttl-ms", &sentinel)
                }
            }
            _ => f,
        }
    })
    .expect("cluster starts")
}

async fn connect(port: u16) -> TablesClient<Channel> {
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..400 {
        if let Ok(c) = TablesClient::connect(url.clone()).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("cannot connect to {url}");
}

fn key(i: usize) -> String {
    format!("k{i:05}")
}

fn run_rust(p: &Params, rt: &tokio::runtime::Runtime) -> Outcome {
    let ports = free_ports(p.nodes);
    // Built (if it must be) before the clock starts: formation is the
    // cluster's time, not the compiler's.
    sidecar_binary();
    let t0 = Instant::now();
    let c = start(Kind::Rust, p.nodes, &ports);
    rt.block_on(async {
        let mut clients = Vec::new();
        for port in &ports {
            clients.push(connect(*port).await);
        }
        // Formed: every node counts every node in the network.
        let deadline = Instant::now() + Duration::from_secs(300);
        for (i, cl) in clients.iter_mut().enumerate() {
            loop {
                let h = cl.health(pb::HealthRequest {}).await.unwrap().into_inner();
                let peers = h
                    .networks
                    .iter()
                    .find(|n| n.network == NET)
                    .map_or(0, |n| n.peers);
                if peers as usize == p.nodes {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "n{i} sees {peers} of {} in {NET}",
                    p.nodes
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let formation = t0.elapsed();

        // Watchers on every other node.
        let seen: Arc<Mutex<HashMap<(usize, String), u64>>> = Arc::default();
        for (i, cl) in clients.iter_mut().enumerate().skip(1) {
            let mut stream = cl
                .watch_table(pb::WatchTableRequest {
                    network: NET.into(),
                    table: TABLE.into(),
                })
                .await
                .expect("watch")
                .into_inner();
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                while let Some(Ok(ev)) = stream.next().await {
                    let now = unix_ns();
                    if ev.r#type() == pb::watch_event::Type::Created {
                        seen.lock().unwrap().entry((i, ev.key)).or_insert(now);
                    }
                }
            });
        }
        let idle = idle_rate(&c.peers, t0, p.warmup, p.idle);

        let b0 = total_sent(&c.peers);
        let w0 = Instant::now();
        let mut written = Vec::with_capacity(p.writes);
        let writer = &mut clients[0];
        for i in 0..p.writes {
            let at = unix_ns();
            writer
                .create_entry(pb::WriteEntryRequest {
                    network: NET.into(),
                    table: TABLE.into(),
                    key: key(i),
                    value: vec![b'v'; 64],
                })
                .await
                .expect("create");
            written.push(at);
            tokio::time::sleep(p.interval).await;
        }
        let want = p.writes * (p.nodes - 1);
        let deadline = Instant::now() + p.timeout;
        while seen.lock().unwrap().len() < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(p.settle).await;
        let window = w0.elapsed().as_secs_f64();
        let bytes = total_sent(&c.peers);
        let seen = seen.lock().unwrap().clone();
        outcome(
            p,
            &written,
            |node, i| seen.get(&(node, key(i))).copied(),
            (b0, bytes),
            idle,
            window,
            formation,
        )
    })
}

fn run_go(p: &Params) -> Outcome {
    networkdb_peer_binary();
    let t0 = Instant::now();
    let c = start(Kind::GoNetworkDb, p.nodes, &[]);
    let deadline = Instant::now() + Duration::from_secs(300);
    for peer in &c.peers {
        loop {
            let n = peer.ndb_peers(NET).expect("peers").len();
            if n == p.nodes {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} sees {n} of {} in {NET}",
                peer.name(),
                p.nodes
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let formation = t0.elapsed();
    let idle = idle_rate(&c.peers, t0, p.warmup, p.idle);

    let b0 = total_sent(&c.peers);
    let w0 = Instant::now();
    let mut written = Vec::with_capacity(p.writes);
    for i in 0..p.writes {
        let at = unix_ns();
        c.peers[0]
            .ndb_create(NET, TABLE, &key(i), &"v".repeat(64))
            .expect("create");
        written.push(at);
        std::thread::sleep(p.interval);
    }
    let collect = || -> HashMap<(usize, String), u64> {
        let mut m = HashMap::new();
        for (node, peer) in c.peers.iter().enumerate().skip(1) {
            for e in peer.table_events() {
                if e.op == "create" && e.table == TABLE {
                    m.entry((node, e.key)).or_insert(e.ts_ns);
                }
            }
        }
        m
    };
    let want = p.writes * (p.nodes - 1);
    let deadline = Instant::now() + p.timeout;
    let mut seen = collect();
    while seen.len() < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        seen = collect();
    }
    std::thread::sleep(p.settle);
    let window = w0.elapsed().as_secs_f64();
    let bytes = total_sent(&c.peers);
    outcome(
        p,
        &written,
        |node, i| seen.get(&(node, key(i))).copied(),
        (b0, bytes),
        idle,
        window,
        formation,
    )
}

fn outcome(
    p: &Params,
    written: &[u64],
    seen_at: impl Fn(usize, usize) -> Option<u64>,
    (before, after): (Sent<u64>, Sent<u64>),
    idle: Sent<f64>,
    window_s: f64,
    formation: Duration,
) -> Outcome {
    let mut latencies_ms = Vec::new();
    let mut missing = 0;
    for (i, &at) in written.iter().enumerate() {
        let mut last = Some(at);
        for node in 1..p.nodes {
            match seen_at(node, i) {
                Some(t) => last = last.map(|l| l.max(t)),
                None => {
                    missing += 1;
                    last = None;
                }
            }
        }
        if let Some(l) = last {
            latencies_ms.push((l.saturating_sub(at)) as f64 / 1e6);
        }
    }
    latencies_ms.sort_by(f64::total_cmp);
    let per_update =
        |sent: u64, idle: f64| (sent as f64 - idle * window_s).max(0.0) / written.len() as f64;
    Outcome {
        latencies_ms,
        missing,
        bytes_per_update: Sent {
            udp: per_update(after.udp - before.udp, idle.udp),
            all: per_update(after.all - before.all, idle.all),
        },
        idle,
        formation,
    }
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn main() {
    let p = Params {
        nodes: num("--nodes", 16) as usize,
        writes: num("--writes", 100) as usize,
        interval: Duration::from_millis(num("--interval-ms", 50)),
        timeout: Duration::from_secs(num("--timeout-s", 60)),
        settle: Duration::from_secs(num("--settle-s", 15)),
        idle: Duration::from_secs(num("--idle-s", 30)),
        warmup: Duration::from_secs(num("--warmup-s", 0)),
    };
    assert!(p.nodes >= 2, "--nodes must be at least 2");
    let kinds = arg("--kinds", "rust,go");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "| implementation | N | writes | delivered | p50 to all (ms) | p99 to all (ms) | max (ms) | bytes per update, UDP | bytes per update, UDP + TCP | idle bytes per node and s, UDP | idle, UDP + TCP | formation (s) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for kind in kinds.split(',') {
        let (name, o) = match kind {
            "rust" => ("Gossamer sidecar", run_rust(&p, &rt)),
            "go" => ("Go NetworkDB (moby v2.0.0-beta.24)", run_go(&p)),
            other => panic!("--kinds: unknown {other:?} (rust, go)"),
        };
        let total = p.writes * (p.nodes - 1);
        println!(
            "| {name} | {} | {} | {}/{} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} |",
            p.nodes,
            p.writes,
            total - o.missing,
            total,
            pct(&o.latencies_ms, 0.50),
            pct(&o.latencies_ms, 0.99),
            o.latencies_ms.last().copied().unwrap_or(f64::NAN),
            o.bytes_per_update.udp,
            o.bytes_per_update.all,
            o.idle.udp / p.nodes as f64,
            o.idle.all / p.nodes as f64,
            o.formation.as_secs_f64(),
        );
    }
}
