//! The cluster sentinel in the simulator: one writer, the oldest live
//! member; a node cut off past the sentinel's TTL knows it is partitioned,
//! never keeps its own copy fresh, and re-bootstraps after the heal with no
//! manual step, also when the members it joined through are gone.

// The clock is read once per test, as the arbitrary origin of virtual time.
#![allow(clippy::disallowed_methods)]

use super::*;
use crate::node::{Node, SentinelConfig};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const TTL: Duration = Duration::from_secs(6);

fn cluster(n: usize, seed: u64) -> Sim<Node> {
    let mut s = Sim::<Node>::with_core(SimConfig::lan(n, seed), Instant::now()).unwrap();
    for i in 0..n {
        let mut cfg = SentinelConfig::new("cluster-a");
        cfg.ttl = TTL;
        s.command(i, |node, now| node.enable_sentinel(cfg, now))
            .unwrap();
        // Start times a millisecond apart: node 0 is the oldest.
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
fn the_oldest_member_keeps_the_sentinel_fresh_everywhere() {
    let mut s = cluster(12, 31);
    s.run_for(secs(30));
    assert_eq!(writers(&mut s), [0]);
    for i in 0..12 {
        assert_eq!(partitioned(&mut s, i), None, "node {i}");
        let now = s.instant();
        assert_eq!(
            s.infos(i).get("gossamer/sentinel", now).unwrap().value,
            b"cluster-a"
        );
        // Only the few oldest ages are kept.
        assert!(s.infos(i).group("gossamer/age/", now).unwrap().1.len() <= 3);
    }
    // The writer crashes: the next oldest takes over before anyone sees
    // the sentinel expire.
    s.crash(0);
    for _ in 0..40 {
        s.run_for(Duration::from_millis(500));
        for i in 1..12 {
            assert_eq!(partitioned(&mut s, i), None, "node {i} at {:?}", s.now());
        }
    }
    assert_eq!(writers(&mut s), [1]);
}

/// Node 9 is cut off past the TTL: it reports partitioned, does not write
/// a sentinel of its own, and rejoins; meanwhile `gone` (among them the
/// writer) crash for good. After the heal it sees the sentinel again
/// without any call from outside. Returns the time from heal to that.
fn isolate_and_heal(gone: &[usize], seed: u64) -> Duration {
    let mut s = cluster(10, seed);
    s.run_for(secs(20));
    assert_eq!(partitioned(&mut s, 9), None);
    s.isolate(9);
    for &g in gone {
        s.crash(g);
    }
    s.run_for(TTL + secs(14));
    let p = partitioned(&mut s, 9).expect("node 9 is partitioned");
    assert!(p > secs(1), "{p:?}");
    let st = s.core(9).sentinel_status(s.instant()).unwrap();
    assert!(!st.writer, "a cut-off node never keeps its own sentinel");
    assert_eq!(st.partitions, 1);
    assert!(st.rejoins >= 2, "{st:?}");
    for i in (0..9).filter(|i| !gone.contains(i)) {
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
            assert_eq!(alive, 10 - gone.len(), "node 9 sees every live member");
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
    // The three oldest (the writer and its successors) crash for good.
    let took = isolate_and_heal(&[0, 1, 2], 33);
    assert!(took < secs(40), "{took:?}");
}
