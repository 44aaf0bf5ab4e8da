//! The composed node in the deterministic simulator: membership and
//! tables wired together replicate entries end to end, with no socket and
//! no sleep; and the wakeups of one idle node.

// The clock is read once per test, as the arbitrary origin of virtual time.
#![allow(clippy::disallowed_methods)]

use rand::SeedableRng;

use super::*;
use crate::sim::{addr_of, NodeConfig, Sim, SimConfig};
use crate::tables::Change;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// `n` nodes joining one by one through n0, probing and gossiping faster
/// than the LAN profile, with push/pulls (and so bulk syncs) every 5 s.
fn cluster(n: usize) -> Sim<Node> {
    let mut c = SimConfig::lan(n, 1);
    c.converged = false;
    Sim::configured(c, Instant::now(), |_, c: &mut NodeConfig| {
        let m = &mut c.membership;
        m.probe_interval = Duration::from_millis(200);
        m.probe_timeout = Duration::from_millis(100);
        m.gossip_interval = Duration::from_millis(50);
        m.push_pull_interval = Duration::from_secs(5);
        c.tables = tables_config(m);
    })
    .unwrap()
}

fn join_all(sim: &mut Sim<Node>, nid: &str) {
    for i in 0..sim.len() {
        sim.with_tables(i, |t, now| t.join_network(nid, now))
            .unwrap();
    }
}

fn value(sim: &Sim<Node>, i: usize, key: &str) -> Option<Vec<u8>> {
    sim.tables(i).get_entry("net", "t", key).map(|e| e.value)
}

#[test]
fn a_write_on_one_node_reaches_all_and_a_delete_propagates() {
    let mut sim = cluster(4);
    sim.run_for(secs(2));
    for i in 0..4 {
        assert_eq!(sim.node(i).num_live(), 4, "n{i} sees everyone");
    }
    join_all(&mut sim, "net");
    sim.run_for(secs(2));
    for i in 0..4 {
        assert_eq!(
            sim.tables(i).network_peers("net").len(),
            4,
            "n{i} knows every member of the network (network events on membership gossip)"
        );
    }

    sim.with_tables(0, |t, now| {
        t.create_entry("net", "t", "k", b"v1".to_vec(), now)
    })
    .unwrap();
    sim.run_for(secs(2));
    for i in 0..4 {
        assert_eq!(value(&sim, i, "k").as_deref(), Some(&b"v1"[..]), "n{i}");
    }

    sim.with_tables(2, |t, now| {
        t.update_entry("net", "t", "k", b"v2".to_vec(), now)
    })
    .unwrap();
    sim.run_for(secs(2));
    for i in 0..4 {
        assert_eq!(value(&sim, i, "k").as_deref(), Some(&b"v2"[..]), "n{i}");
    }

    sim.with_tables(3, |t, now| t.delete_entry("net", "t", "k", now))
        .unwrap();
    sim.run_for(secs(2));
    for i in 0..4 {
        assert_eq!(value(&sim, i, "k"), None, "n{i}: the delete propagated");
    }
    let seen_by_n1: Vec<&Change> = sim
        .watch_events()
        .iter()
        .filter(|(_, i, w)| *i == 1 && w.key == "k")
        .map(|(_, _, w)| &w.change)
        .collect();
    assert!(
        matches!(
            seen_by_n1.as_slice(),
            [
                Change::Created { .. },
                Change::Updated { .. },
                Change::Deleted { .. }
            ]
        ),
        "{seen_by_n1:?}"
    );
    // NetworkDB's own messages and state never reach the application.
    assert!(
        !sim.events()
            .iter()
            .any(|(_, _, e)| matches!(e, Event::UserMessage(_) | Event::RemoteState { .. })),
        "tables traffic leaked as application events"
    );
}

#[test]
fn a_failed_node_hides_its_entries_and_a_left_node_drops_them() {
    let mut sim = cluster(3);
    sim.run_for(secs(2));
    join_all(&mut sim, "net");
    sim.run_for(secs(1));
    sim.with_tables(2, |t, now| {
        t.create_entry("net", "t", "a", b"x".to_vec(), now)
    })
    .unwrap();
    sim.with_tables(1, |t, now| {
        t.create_entry("net", "t", "b", b"y".to_vec(), now)
    })
    .unwrap();
    sim.run_for(secs(2));
    assert_eq!(value(&sim, 0, "a").as_deref(), Some(&b"x"[..]));

    // n2 crashes: memberlist declares it dead; its entry is hidden, not dropped.
    sim.crash(2);
    sim.run_for(secs(10));
    assert_eq!(sim.status(0, 2), Some(NodeStatus::Dead));
    assert_eq!(value(&sim, 0, "a"), None, "hidden while its owner is dead");
    assert_eq!(sim.tables(0).stats().networks["net"].hidden, 1);

    // n1 leaves gracefully: its entry is dropped everywhere at once.
    sim.command(1, |n, now| n.leave(secs(1), now));
    sim.run_for(secs(3));
    assert_eq!(value(&sim, 0, "b"), None);
    assert_eq!(sim.tables(0).stats().networks["net"].hidden, 1);
}

#[test]
fn other_user_messages_still_reach_the_application() {
    let mut sim = cluster(2);
    sim.run_for(secs(2));
    // "udp-a" decodes as a protobuf GossipMessage (of type INVALID, with an
    // unknown fixed32 field): only known NetworkDB types are taken.
    for msg in [&b"hello"[..], b"udp-a", b"tcp-a"] {
        sim.command(0, |n, now| {
            n.with_membership(now, |m, _| m.send_best_effort("n1", msg))
        })
        .unwrap();
        sim.run_for(Duration::from_millis(100));
        assert!(
            sim.events_of(1)
                .any(|e| *e == Event::UserMessage(msg.to_vec())),
            "{:?} not reported",
            String::from_utf8_lossy(msg)
        );
    }
}

/// One lone core driven timer by timer: no network involved.
#[test]
fn membership_and_tables_gossip_share_their_wakeups() {
    // A lone idle node on the LAN profile: memberlist and the tables both
    // gossip every 200 ms, and on one grid they take 5 wakeups a second
    // between them, not 10. Probes (1/s), reconnect tries (1/s) and the
    // reaper (1 per 5 s) come on top: about 7 a second in all.
    let start = Instant::now();
    let m = membership::Config::lan("n0".to_string(), addr_of(0));
    let t = tables_config(&m);
    let mut node = Node::new(m, t, 7, NonceRng::seed_from_u64(7), start).unwrap();
    let end = start + Duration::from_secs(20);
    let mut wakeups = 0;
    while let Some(at) = node.poll_timeout().filter(|at| *at <= end) {
        node.handle_timeout(at);
        while node.poll_output().is_some() {}
        wakeups += 1;
    }
    assert!(
        (100..160).contains(&wakeups),
        "{wakeups} wakeups in 20 s: tables gossip is off membership's grid"
    );
}
