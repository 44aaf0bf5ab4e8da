//! How soon a table write reaches every member: 64 nodes in one network,
//! one writer, 100 writes 50 ms apart (the replication benchmark's load),
//! each timed until the last other node's watcher saw it. With eager
//! pushes the first hops go out within the batching window instead of at
//! the next 200 ms gossip round.

// The clock is read once per test, as the arbitrary origin of virtual time.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;

use super::*;

const NET: &str = "net0";
const TABLE: &str = "t";

/// `nodes` nodes in one network, 10 s after they joined it; `exact`:
/// libnetwork's schedule (no eager pushes).
fn joined(nodes: usize, seed: u64, exact: bool) -> Sim<Node> {
    let mut sim =
        Sim::<Node>::configured(SimConfig::lan(nodes, seed), Instant::now(), move |_, c| {
            if exact {
                c.membership.memberlist_exact = true;
                c.tables.eager_push = None;
            }
        })
        .unwrap();
    for i in 0..nodes {
        sim.with_tables(i, |t, now| t.join_network(NET, now))
            .unwrap();
    }
    sim.run_for(Duration::from_secs(10));
    sim
}

/// Reach times of every write, sorted.
fn reach(nodes: usize, seed: u64, exact: bool) -> Vec<Duration> {
    let mut sim = joined(nodes, seed, exact);
    sim.take_watch_events();
    let mut written = Vec::new();
    for w in 0..100 {
        let key = format!("k{w}");
        written.push(sim.now());
        sim.with_tables(0, |t, now| {
            t.create_entry(NET, TABLE, &key, vec![7; 64], now)
        })
        .unwrap();
        sim.run_for(Duration::from_millis(50));
    }
    sim.run_for(Duration::from_secs(10));
    // First sight of each key at each node.
    let mut seen: HashMap<(String, usize), Duration> = HashMap::new();
    for (t, i, e) in sim.take_watch_events() {
        if i != 0 {
            seen.entry((e.key, i)).or_insert(t);
        }
    }
    let mut out: Vec<Duration> = (0..100)
        .map(|w| {
            let key = format!("k{w}");
            let last = (1..nodes)
                .map(|i| {
                    seen.get(&(key.clone(), i))
                        .copied()
                        .unwrap_or(Duration::MAX)
                })
                .max()
                .unwrap_or_default();
            last.saturating_sub(written[w])
        })
        .collect();
    out.sort();
    out
}

fn quantile(v: &[Duration], q: f64) -> Duration {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

#[test]
fn eager_pushes_bring_table_writes_to_64_nodes_sooner() {
    let fast = reach(64, 3, false);
    let slow = reach(64, 3, true);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    eprintln!(
        "64 nodes, 100 writes: p50/p99/max eager {:.0}/{:.0}/{:.0} ms, libnetwork-exact {:.0}/{:.0}/{:.0} ms",
        ms(quantile(&fast, 0.5)),
        ms(quantile(&fast, 0.99)),
        ms(quantile(&fast, 1.0)),
        ms(quantile(&slow, 0.5)),
        ms(quantile(&slow, 0.99)),
        ms(quantile(&slow, 1.0)),
    );
    // Every write reached everyone either way.
    assert!(quantile(&slow, 1.0) < Duration::from_secs(5), "{slow:?}");
    assert!(quantile(&fast, 1.0) < Duration::from_secs(5), "{fast:?}");
    // The old schedule needs several 200 ms rounds; eager pushes well
    // under half of that.
    assert!(
        quantile(&slow, 0.99) > Duration::from_millis(500),
        "{slow:?}"
    );
    assert!(
        quantile(&fast, 0.99) * 2 < quantile(&slow, 0.99),
        "eager p99 {:?} vs {:?}",
        quantile(&fast, 0.99),
        quantile(&slow, 0.99)
    );
}

/// UDP bytes all nodes sent for 100 writes (the load of [`reach`]) beyond
/// what the idle cluster sends, per write, counted until 25 s after the
/// last write so that every queue has drained (libnetwork's schedule is
/// still sending at the last delivery).
fn bytes_per_write(nodes: usize, seed: u64, exact: bool) -> f64 {
    let mut sim = joined(nodes, seed, exact);
    let idle = sim.traffic().udp_bytes;
    sim.run_for(Duration::from_secs(30));
    let before = sim.traffic().udp_bytes;
    let idle_per_s = (before - idle) as f64 / 30.0;
    for w in 0..100 {
        let key = format!("k{w}");
        sim.with_tables(0, |t, now| {
            t.create_entry(NET, TABLE, &key, vec![7; 64], now)
        })
        .unwrap();
        sim.run_for(Duration::from_millis(50));
    }
    sim.run_for(Duration::from_secs(25));
    let busy = (sim.traffic().udp_bytes - before) as f64;
    (busy - idle_per_s * 30.0) / 100.0
}

#[test]
fn eager_pushes_send_about_the_bytes_of_the_gossip_rounds() {
    for seed in [3, 4] {
        let eager = bytes_per_write(64, seed, false);
        let exact = bytes_per_write(64, seed, true);
        eprintln!(
            "seed {seed}, 64 nodes, 100 writes: {eager:.0} B per write with eager pushes, {exact:.0} B libnetwork-exact ({:.2}x)",
            eager / exact
        );
        // At most libnetwork's bytes here (0.97x and 0.99x), which
        // leaves room for what real packets add (about 4 % more than
        // here in the replication benchmark) under the 1.1x target.
        assert!(eager <= exact, "{eager:.0} vs {exact:.0}");
    }
}
