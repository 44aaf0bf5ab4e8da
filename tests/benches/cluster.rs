//! Side-by-side cluster benchmark: Gossamer sidecars vs Go memberlist
//! v0.7.0 peers, same machine, same config (memberlist's LAN defaults), on
//! loopback. For each implementation and cluster size it measures:
//!
//! - convergence: all N started alone, then all join the first at once;
//!   time until every node sees N alive;
//! - idle cost over a fixed window: bytes on the wire per node per second,
//!   CPU time per node per second, resident memory per node;
//! - detection: SIGKILL one node; time until every survivor marks it dead;
//! - false positives: live nodes ever declared dead by anyone.
//!
//! Run: `cargo bench -p gossamer-tests --bench cluster` (optionally
//! `-- --nodes 16,64 --idle-secs 20 --kinds go,rust`). It prints a Markdown table with
//! both sides and the ratio Rust/Go. Not a timed test: a benchmark.

#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

use std::thread;
use std::time::{Duration, Instant};

use gossamer_tests::{Flags, Kind, MemberState, Peer};
use serde_json::json;

#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    converge_s: f64,
    detect_s: f64,
    false_positives: usize,
    bytes_per_node_s: f64,
    udp_bytes_per_node_s: f64,
    cpu_ms_per_node_s: f64,
    rss_mib_avg: f64,
    rss_mib_max: f64,
}

fn run(kind: Kind, n: usize, idle: Duration) -> Figures {
    // LAN profile: memberlist's DefaultLANConfig; no metadata on either side.
    let flags = Flags::new().meta("");
    let peers: Vec<Peer> = (0..n)
        .map(|i| Peer::spawn(kind, &format!("n{i}"), flags.clone()).expect("peer starts"))
        .collect();
    let seed = peers[0].addr().to_string();

    let t0 = Instant::now();
    for p in &peers[1..] {
        p.cmd(&json!({"cmd": "join", "seeds": [seed]}))
            .expect("join command");
    }
    let limit = Duration::from_secs(120);
    // A slow convergence names, from each node's own member table, whom it
    // has not heard of after 5 s: the figure alone does not say why.
    let early = Duration::from_secs(5);
    let on_time = peers.iter().all(|p| {
        p.wait_for(|v| v.alive().len() == n, early.saturating_sub(t0.elapsed()))
            .is_ok()
    });
    if !on_time {
        for p in &peers {
            let known = p.members().expect("members");
            let missing: Vec<String> = (0..n)
                .map(|i| format!("n{i}"))
                .filter(|name| !known.iter().any(|m| &m.node == name))
                .collect();
            if !missing.is_empty() {
                eprintln!(
                    "{kind} n={n}: after {early:?}, {} has not heard of {missing:?}",
                    p.name()
                );
            }
        }
    }
    for p in &peers {
        p.wait_for(|v| v.alive().len() == n, limit.saturating_sub(t0.elapsed()))
            .expect("converges");
    }
    let converge_s = t0.elapsed().as_secs_f64();

    // Let joins settle, then measure an idle window.
    thread::sleep(Duration::from_secs(5));
    let sample = |p: &Peer| {
        let s = p.stats().expect("stats");
        let cpu = p.cpu_time().expect("cpu");
        (s.udp_sent + s.tcp_sent, cpu, s.udp_sent)
    };
    let before: Vec<_> = peers.iter().map(sample).collect();
    let w0 = Instant::now();
    thread::sleep(idle);
    let after: Vec<_> = peers.iter().map(sample).collect();
    let secs = w0.elapsed().as_secs_f64();
    let bytes: u64 = after.iter().zip(&before).map(|(a, b)| a.0 - b.0).sum();
    let udp: u64 = after.iter().zip(&before).map(|(a, b)| a.2 - b.2).sum();
    let cpu: f64 = after
        .iter()
        .zip(&before)
        .map(|(a, b)| (a.1 - b.1).as_secs_f64())
        .sum();
    let rss: Vec<f64> = peers
        .iter()
        .map(|p| p.rss_bytes().expect("rss") as f64 / (1024.0 * 1024.0))
        .collect();

    // Detection of crashes: three victims, one after another; the mean.
    let mut peers = peers;
    let victims: Vec<usize> = (n.saturating_sub(3)..n).rev().collect();
    let mut detect_total = 0.0;
    for (k, &victim) in victims.iter().enumerate() {
        let victim_name = format!("n{victim}");
        let k0 = Instant::now();
        peers[victim].kill();
        for p in peers.iter().filter(|p| !p.is_stopped()) {
            let holds =
                |v: &gossamer_tests::View| v.state_of(&victim_name) == Some(MemberState::Dead);
            while p.wait_for(holds, Duration::from_millis(250)).is_err() {
                assert!(
                    k0.elapsed() < limit,
                    "{victim_name} not detected in {limit:?}"
                );
                p.members().expect("members");
            }
        }
        detect_total += k0.elapsed().as_secs_f64();
        if k + 1 < victims.len() {
            // Let the dead news settle before the next crash.
            thread::sleep(Duration::from_secs(2));
        }
    }
    let detect_s = detect_total / victims.len() as f64;
    let victim_names: Vec<String> = victims.iter().map(|v| format!("n{v}")).collect();

    let false_positives = peers
        .iter()
        .filter(|p| !p.is_stopped())
        .map(|p| {
            p.with_view(|v| {
                v.events
                    .iter()
                    .filter(|e| {
                        e["ev"] == "leave"
                            && !victim_names.iter().any(|name| e["node"] == name.as_str())
                    })
                    .count()
            })
        })
        .sum();
    Figures {
        converge_s,
        detect_s,
        false_positives,
        bytes_per_node_s: bytes as f64 / n as f64 / secs,
        udp_bytes_per_node_s: udp as f64 / n as f64 / secs,
        cpu_ms_per_node_s: cpu * 1000.0 / n as f64 / secs,
        rss_mib_avg: rss.iter().sum::<f64>() / n as f64,
        rss_mib_max: rss.iter().copied().fold(0.0, f64::max),
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test --benches` run
    // would too: only run when asked to benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!("cluster benchmark: run with `cargo bench -p gossamer-tests --bench cluster`");
        return;
    }
    let sizes: Vec<usize> = arg("--nodes")
        .unwrap_or_else(|| "16,64".into())
        .split(',')
        .map(|s| s.trim().parse().expect("--nodes takes numbers, e.g. 16,64"))
        .collect();
    let idle = Duration::from_secs(
        arg("--idle-secs")
            .map(|s| s.parse().expect("--idle-secs takes seconds"))
            .unwrap_or(20),
    );
    println!("| N | metric | Go memberlist | Gossamer | ratio Gossamer/Go |");
    println!("|---|---|---|---|---|");
    let kinds = arg("--kinds").unwrap_or_else(|| "go,rust".into());
    let want = |k: &str| kinds.split(',').any(|x| x.trim() == k);
    for n in sizes {
        let go = if want("go") {
            run(Kind::Go, n, idle)
        } else {
            Figures::default()
        };
        let rs = if want("rust") {
            run(Kind::Rust, n, idle)
        } else {
            Figures::default()
        };
        let rows: [(&str, f64, f64); 8] = [
            ("all see all after joins (s)", go.converge_s, rs.converge_s),
            (
                "all mark a killed node dead, mean of 3 (s)",
                go.detect_s,
                rs.detect_s,
            ),
            (
                "false positives (live nodes declared dead)",
                go.false_positives as f64,
                rs.false_positives as f64,
            ),
            (
                "bytes sent per node per second, idle",
                go.bytes_per_node_s,
                rs.bytes_per_node_s,
            ),
            (
                "  of which UDP",
                go.udp_bytes_per_node_s,
                rs.udp_bytes_per_node_s,
            ),
            (
                "CPU ms per node per second, idle",
                go.cpu_ms_per_node_s,
                rs.cpu_ms_per_node_s,
            ),
            (
                "resident memory per node, mean (MiB)",
                go.rss_mib_avg,
                rs.rss_mib_avg,
            ),
            (
                "resident memory per node, max (MiB)",
                go.rss_mib_max,
                rs.rss_mib_max,
            ),
        ];
        for (what, g, r) in rows {
            let ratio = if g > 0.0 {
                format!("{:.2}", r / g)
            } else {
                "-".into()
            };
            println!("| {n} | {what} | {g:.2} | {r:.2} | {ratio} |");
        }
    }
}
