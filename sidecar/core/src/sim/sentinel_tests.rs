//! The cluster sentinel in the simulator: one writer, taken over when it
//! fails before anyone sees the sentinel expire; a node cut off past the
//! sentinel's TTL knows it is partitioned, never keeps its own copy fresh,
//! and re-bootstraps after the heal with no manual step, also when the
//! members it joined through (and the writer) are gone.

// The clock is read once per test, as the arbitrary origin of virtual time.
#![allow(clippy::disallowed_methods)]

use super::*;
use crate::node::{Node, SentinelConfig};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const TTL: Duration = Duration::from_secs(6);
/// Members in the partition tests: four may crash and one be cut off
/// while the rest keep a quorum.
const N: usize = 12;

fn cluster(n: usize, seed: u64) -> Sim<Node> {
    let mut s = Sim::<Node>::with_core(SimConfig::lan(n, seed), Instant::now()).unwrap();
    for i in 0..n {
        let mut cfg = SentinelConfig::new("cluster-a");
        cfg.ttl = TTL;
        s.command(i, |node, now| node.enable_sentinel(cfg, now))
            .unwrap();
        s.run_for(Duration::from_millis(1));
    }
    s
}

fn partitioned(s: &mut Sim<Node>, i: usize) -> Option<Duration> {
    s.core(i).partitioned_for(s.instant())
}

fn writers(s: &mut Sim<Node>) -> Vec<usize> {
    (0..s.len())
        .filter(|&i| s.is_up(i))
        .filter(|&i| s.core(i).sentinel_status(s.instant()).unwrap().writer)
        .collect()
}

#[test]
fn one_member_keeps_the_sentinel_fresh_everywhere_and_another_takes_over() {
    for seed in 31..51 {
        writer_fails_at_the_worst_time(seed);
    }
}

fn writer_fails_at_the_worst_time(seed: u64) {
    let mut s = cluster(12, seed);
    s.run_for(secs(30));
    let first = writers(&mut s);
    assert_eq!(first.len(), 1, "one writer: {first:?}");
    for i in 0..12 {
        assert_eq!(partitioned(&mut s, i), None, "node {i}");
        let now = s.instant();
        let held = s.infos(i).get("gossamer/sentinel", now).unwrap();
        assert_eq!(held.value, b"cluster-a");
        assert_eq!(held.origin, format!("n{}", first[0]), "node {i}");
        // One info in all: no per-node state.
        assert_eq!(s.infos(i).len(), 1, "node {i}");
    }
    // The writer crashes at the worst time, just before its next rewrite:
    // another member takes over before anyone sees the sentinel expire.
    let w = first[0];
    let before = s
        .infos(w)
        .get("gossamer/sentinel", s.instant())
        .unwrap()
        .origin_ms;
    while s
        .infos(w)
        .get("gossamer/sentinel", s.instant())
        .unwrap()
        .origin_ms
        == before
    {
        s.run_for(Duration::from_millis(10));
    }
    s.run_for(TTL / 3 - Duration::from_millis(300));
    s.crash(w);
    for _ in 0..40 {
        s.run_for(Duration::from_millis(500));
        for i in (0..12).filter(|&i| i != w) {
            assert_eq!(
                partitioned(&mut s, i),
                None,
                "seed {seed}: node {i} at {:?}",
                s.now()
            );
        }
    }
    let next = writers(&mut s);
    assert_eq!(next.len(), 1, "seed {seed}: one writer: {next:?}");
    assert_ne!(next, first);
}

/// A node that started alone writes a sentinel of its own; once it joins,
/// the two writers settle on one and nobody sees the sentinel expire.
#[test]
fn two_writers_settle_on_one_when_they_meet() {
    let mut s = cluster(12, 34);
    s.run_for(secs(30));
    let w = writers(&mut s)[0];
    let lone = if w == 11 { 10 } else { 11 };
    // Restarted alone, and cut off so that gossip does not find it.
    s.crash(lone);
    s.isolate(lone);
    s.restart(lone, &[]).unwrap();
    let mut cfg = SentinelConfig::new("cluster-a");
    cfg.ttl = TTL;
    s.command(lone, |node, now| node.enable_sentinel(cfg, now))
        .unwrap();
    s.run_for(secs(10));
    assert_eq!(writers(&mut s), [w.min(lone), w.max(lone)]);
    s.heal();
    let seed = addr_of(w);
    s.command(lone, |node, now| {
        node.with_membership(now, |m, now| m.join(&[seed], now))
    });
    for _ in 0..40 {
        s.run_for(Duration::from_millis(500));
        for i in 0..12 {
            assert_eq!(partitioned(&mut s, i), None, "node {i} at {:?}", s.now());
        }
    }
    assert_eq!(writers(&mut s).len(), 1, "{:?}", writers(&mut s));
    assert_eq!(s.alive_seen_by(lone), 12);
}

/// Node 9 of `N` is cut off past the TTL: it reports partitioned, does not write
/// a sentinel of its own, and rejoins; meanwhile `gone` (among them the
/// writer) crash for good. After the heal it sees the sentinel again
/// without any call from outside. Returns the time from heal to that.
fn isolate_and_heal(gone: &[usize], seed: u64) -> Duration {
    let mut s = cluster(N, seed);
    s.run_for(secs(20));
    assert_eq!(partitioned(&mut s, 9), None);
    s.isolate(9);
    let mut gone = gone.to_vec();
    if !gone.is_empty() {
        gone.extend(writers(&mut s).into_iter().filter(|&w| w != 9));
        gone.sort_unstable();
        gone.dedup();
    }
    for &g in &gone {
        s.crash(g);
    }
    s.run_for(TTL + secs(14));
    let p = partitioned(&mut s, 9).expect("node 9 is partitioned");
    assert!(p > secs(1), "{p:?}");
    let st = s.core(9).sentinel_status(s.instant()).unwrap();
    assert!(!st.writer, "a cut-off node never keeps its own sentinel");
    assert_eq!(st.partitions, 1);
    assert!(st.rejoins >= 2, "{st:?}");
    for i in (0..N).filter(|&i| i != 9 && !gone.contains(&i)) {
        assert_eq!(partitioned(&mut s, i), None, "node {i}");
    }
    s.heal();
    let healed = s.now();
    for _ in 0..600 {
        s.run_for(Duration::from_millis(100));
        if partitioned(&mut s, 9).is_none() {
            let took = s.now() - healed;
            // Membership merged again too.
            s.run_for(secs(10));
            let alive = s.alive_seen_by(9);
            assert_eq!(alive, N - gone.len(), "node 9 sees every live member");
            return took;
        }
    }
    panic!("node 9 never saw the sentinel again");
}

#[test]
fn an_isolated_node_rebootstraps_after_the_heal() {
    let took = isolate_and_heal(&[], 32);
    assert!(took < secs(40), "{took:?}");
}

#[test]
fn it_rebootstraps_even_when_the_members_it_knew_first_are_gone() {
    // The three first members (node 9 joined through them) and the
    // writer crash for good.
    let took = isolate_and_heal(&[0, 1, 2], 33);
    assert!(took < secs(40), "{took:?}");
}
