//! Infos, groups and the sentinel measured in the simulator (virtual time,
//! so the figures do not depend on the machine): not a criterion bench but
//! a program that prints its measurements (`cargo bench -p gossamer-core
//! --bench infos`; the results are in BENCHMARKS.md).
//!
//! 1. Bytes per node per second at `NODES` simulated nodes when every node
//!    writes its own value every second: into a MAX group of limit 100,
//!    and, for comparison, as an entry of a plain NetworkDB table in one
//!    network all nodes joined; and with no writes at all.
//! 2. Time for one info to reach 100% of `NODES` nodes.
//! 3. Time from the heal to the re-bootstrap of a node cut off past the
//!    sentinel's TTL (default 2 minutes) in a 50-node cluster.
//!
//! `INFOS_BENCH_NODES` (default 1000) and `INFOS_BENCH_TRIALS` (default 3)
//! scale it; `INFOS_BENCH_PARTS` (default
//! `idle,group,table,agree,reach,heal`; also `shortttl`) picks the
//! measurements;
//! `INFOS_BENCH_WARMUP_SECS` (default 20) and `INFOS_BENCH_WINDOW_SECS`
//! (default 30) set the virtual time of part 1 before and while it counts.

// The clock is read once per run, as the arbitrary origin of virtual time.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use gossamer_core::infos::GroupOrder;
use gossamer_core::node::{Node, SentinelConfig};
use gossamer_core::sim::{name_of, Sim, SimConfig};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Part 1's virtual seconds before counting (`INFOS_BENCH_WARMUP_SECS`).
fn warmup() -> Duration {
    Duration::from_secs(env("INFOS_BENCH_WARMUP_SECS", 20) as u64)
}

/// Part 1's virtual seconds counted (`INFOS_BENCH_WINDOW_SECS`).
fn window() -> Duration {
    Duration::from_secs(env("INFOS_BENCH_WINDOW_SECS", 30).max(1) as u64)
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sim(n: usize, seed: u64) -> Sim<Node> {
    Sim::<Node>::with_core(SimConfig::lan(n, seed), Instant::now()).expect("valid config")
}

fn bytes(s: &Sim<Node>) -> u64 {
    let t = s.traffic();
    t.udp_bytes + t.tcp_bytes
}

#[derive(Clone, Copy)]
enum Load {
    Idle,
    Group,
    Table,
}

/// Bytes per node per second over [`window`], after [`warmup`], with every
/// node writing once a second.
fn bytes_per_node_second(n: usize, seed: u64, load: Load) -> f64 {
    let mut s = sim(n, seed);
    for i in 0..n {
        match load {
            Load::Idle => {}
            Load::Group => s
                .with_infos(i, |inf, now| {
                    inf.register_group("load/", 100, GroupOrder::Max, now)
                })
                .expect("valid group"),
            Load::Table => s
                .with_tables(i, |t, now| t.join_network("net", now))
                .expect("joined"),
        }
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut start = None;
    let (warmup, window) = (warmup(), window());
    let end = warmup + window;
    let wall = Instant::now();
    let mut second = 0u64;
    while s.now() < end {
        if s.now() >= warmup && start.is_none() {
            start = Some(bytes(&s));
        }
        for i in 0..n {
            let v = rng.random_range(0..1_000_000u32).to_string().into_bytes();
            match load {
                Load::Idle => {}
                // A value its own node already ranks out is refused: that
                // is the group's saving, nothing is sent.
                Load::Group => {
                    let _ = s.with_infos(i, |inf, now| {
                        inf.put(
                            &format!("load/{}", name_of(i)),
                            v,
                            Duration::from_secs(30),
                            now,
                        )
                    });
                }
                Load::Table => {
                    let key = name_of(i);
                    s.with_tables(i, |t, now| {
                        if second == 0 {
                            t.create_entry("net", "load", &key, v, now)
                        } else {
                            t.update_entry("net", "load", &key, v, now)
                        }
                    })
                    .map(|_| ())
                    .expect("write accepted");
                }
            }
        }
        second += 1;
        s.run_for(Duration::from_secs(1));
        if second.is_multiple_of(5) {
            eprintln!(
                "  {n} nodes, seed {seed}: {second} of {} virtual s after {:.0} s",
                end.as_secs(),
                wall.elapsed().as_secs_f64()
            );
        }
    }
    let sent = bytes(&s) - start.unwrap_or(0);
    sent as f64 / n as f64 / window.as_secs_f64()
}

/// Every node writes one value into a MAX group of limit 100 once; after
/// 60 s of gossip every node holds the same 100 best (checked against the
/// values written) and never more. Returns the seconds until all agreed.
fn group_agrees(n: usize, seed: u64) -> f64 {
    let mut s = sim(n, seed);
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut written = Vec::new();
    for i in 0..n {
        s.with_infos(i, |inf, now| {
            inf.register_group("load/", 100, GroupOrder::Max, now)
        })
        .expect("valid group");
    }
    for i in 0..n {
        let v: u32 = rng.random_range(0..1_000_000);
        let key = format!("load/{}", name_of(i));
        let _ = s.with_infos(i, |inf, now| {
            inf.put(
                &key,
                v.to_string().into_bytes(),
                Duration::from_secs(600),
                now,
            )
        });
        written.push((v, key));
    }
    written.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let want: Vec<&str> = written.iter().take(100).map(|(_, k)| k.as_str()).collect();
    let start = s.now();
    let mut agreed = None;
    while s.now() - start < Duration::from_secs(60) {
        s.run_for(Duration::from_millis(500));
        let now = s.instant();
        let mut all = true;
        for i in 0..n {
            let (_, members) = s.infos(i).group("load/", now).expect("registered");
            assert!(members.len() <= 100, "node {i} holds {}", members.len());
            all &= members
                .iter()
                .map(|m| m.key.as_str())
                .eq(want.iter().copied());
        }
        if all && agreed.is_none() {
            agreed = Some((s.now() - start).as_secs_f64());
        }
    }
    agreed.expect("every node holds the same best 100 within 60 s")
}

/// Seconds until every node holds an info put by node 0.
fn time_to_all(n: usize, seed: u64) -> f64 {
    let mut s = sim(n, seed);
    s.run_for(Duration::from_secs(5));
    s.with_infos(0, |inf, now| {
        inf.put("cluster-id", b"c".to_vec(), Duration::from_secs(600), now)
    })
    .expect("valid info");
    let put_at = s.now();
    loop {
        s.run_for(Duration::from_millis(50));
        let now = s.instant();
        if (0..n).all(|i| s.infos(i).get("cluster-id", now).is_some()) {
            return (s.now() - put_at).as_secs_f64();
        }
        assert!(
            s.now() - put_at < Duration::from_secs(300),
            "never reached all"
        );
    }
}

/// Seeds per size of the `shortttl` part.
const SHORT_TTL_SEEDS: u64 = 1000;

/// Whether an info with a TTL below the push/pull interval (30 s on LAN),
/// put once every node knows every other, is held by every node 10 ms
/// before its TTL runs out: broadcasts alone must carry it there.
fn short_ttl_reaches_all(n: usize, ttl: Duration, seed: u64) -> bool {
    let mut s = sim(n, seed);
    s.run_for(Duration::from_secs(1));
    let deadline = s.now() + Duration::from_secs(120);
    while (0..n).any(|i| s.alive_seen_by(i) != n) {
        assert!(s.now() < deadline, "seed {seed}: {n} nodes not joined");
        s.run_for(Duration::from_millis(100));
    }
    let put_at = s.now();
    s.with_infos((seed as usize) % n, |inf, now| {
        inf.put("fact", b"x".to_vec(), ttl, now)
    })
    .expect("valid info");
    s.run_until(put_at + ttl - Duration::from_millis(10));
    let now = s.instant();
    (0..n).all(|i| s.infos(i).get("fact", now).is_some())
}

/// Seconds from the heal until a node cut off for twice the sentinel's
/// default TTL is no longer partitioned, and until it sees every member
/// alive again.
fn heal_to_rebootstrap(seed: u64) -> (f64, f64) {
    let n = 50;
    let mut s = sim(n, seed);
    for i in 0..n {
        s.command(i, |node, now| {
            node.enable_sentinel(SentinelConfig::new("c"), now)
        })
        .expect("valid sentinel");
        s.run_for(Duration::from_millis(1));
    }
    let ttl = SentinelConfig::new("c").ttl;
    s.run_for(ttl + Duration::from_secs(10));
    let cut = n - 1;
    s.isolate(cut);
    s.run_for(2 * ttl);
    assert!(
        s.core(cut).partitioned_for(s.instant()).is_some(),
        "the cut-off node knows it"
    );
    s.heal();
    let healed = s.now();
    let mut sentinel = None;
    loop {
        s.run_for(Duration::from_millis(50));
        let t = (s.now() - healed).as_secs_f64();
        if sentinel.is_none() && s.core(cut).partitioned_for(s.instant()).is_none() {
            sentinel = Some(t);
        }
        if let Some(seen) = sentinel.filter(|_| s.alive_seen_by(cut) == n) {
            return (seen, t);
        }
        assert!(
            s.now() - healed < Duration::from_secs(300),
            "never rejoined"
        );
    }
}

fn summary(name: &str, xs: &[f64], unit: &str) {
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = xs.iter().copied().fold(0.0, f64::max);
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    println!(
        "{name}: mean {mean:.2} {unit}, min {min:.2}, max {max:.2} ({} trials: {xs:.2?})",
        xs.len()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let n = env("INFOS_BENCH_NODES", 1000);
    let trials = env("INFOS_BENCH_TRIALS", 3) as u64;
    let seeds: Vec<u64> = (1..=trials).collect();
    let parts = std::env::var("INFOS_BENCH_PARTS")
        .unwrap_or_else(|_| "idle,group,table,agree,reach,heal".into());
    let want = |p: &str| parts.split(',').any(|x| x == p);
    for (part, name, load) in [
        ("idle", "idle (no writes)", Load::Idle),
        (
            "group",
            "group limit 100, every node writes 1/s",
            Load::Group,
        ),
        ("table", "plain table, every node writes 1/s", Load::Table),
    ] {
        if !want(part) {
            continue;
        }
        let xs: Vec<f64> = seeds
            .iter()
            .map(|&seed| bytes_per_node_second(n, seed, load))
            .collect();
        summary(
            &format!(
                "bytes/node/s at {n} nodes, {name} ({} s counted after {} s)",
                window().as_secs(),
                warmup().as_secs()
            ),
            &xs,
            "B/s",
        );
    }
    if want("agree") {
        let xs: Vec<f64> = seeds.iter().map(|&seed| group_agrees(n, seed)).collect();
        summary(
            &format!("group limit 100 identical on all {n} nodes (one write each)"),
            &xs,
            "s",
        );
    }
    if want("reach") {
        let xs: Vec<f64> = seeds.iter().map(|&seed| time_to_all(n, seed)).collect();
        summary(&format!("one info to 100% of {n} nodes"), &xs, "s");
    }
    if want("shortttl") {
        // Not in the default parts: its own sizes and seeds.
        for size in [6, 23, 64] {
            let missed: Vec<u64> = (1..=SHORT_TTL_SEEDS)
                .filter(|&seed| !short_ttl_reaches_all(size, Duration::from_secs(10), seed))
                .collect();
            println!(
                "info with TTL 10 s (below the 30 s push/pull) held by all {size} nodes before it expired: {} of {SHORT_TTL_SEEDS} seeds (missed a node: seeds {missed:?})",
                SHORT_TTL_SEEDS as usize - missed.len()
            );
        }
    }
    if !want("heal") {
        return;
    }
    let (xs, ys): (Vec<f64>, Vec<f64>) = (1..=trials + 2).map(heal_to_rebootstrap).unzip();
    summary(
        "heal to sentinel seen again, 50 nodes, cut 240 s, TTL 120 s",
        &xs,
        "s",
    );
    summary(
        "heal to every member alive again on the cut-off node",
        &ys,
        "s",
    );
}
