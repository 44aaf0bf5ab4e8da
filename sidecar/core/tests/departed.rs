//! A member the control plane says departed (its Pod was deleted) is reaped
//! at once: its entries vanish from every node that is told, instead of
//! staying hidden until NetworkDB's 24 h reap. A member that merely failed
//! keeps today's behaviour: hidden, kept, restored if it comes back.

// The clock is read once per test, as the arbitrary origin of virtual time.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use gossamer_core::membership::NodeStatus;
use gossamer_core::node::Node;
use gossamer_core::sim::{name_of, Sim, SimConfig};

const NET: &str = "net";

fn cluster(n: usize) -> Sim<Node> {
    let mut sim = Sim::<Node>::with_core(SimConfig::lan(n, 11), Instant::now()).unwrap();
    for i in 0..n {
        sim.command(i, |node, now| {
            node.with_tables(now, |t, now| t.join_network(NET, now))
        })
        .unwrap();
    }
    sim.run_for(Duration::from_secs(3));
    sim
}

fn write(sim: &mut Sim<Node>, i: usize, key: &str) {
    sim.command(i, |node, now| {
        node.with_tables(now, |t, now| {
            t.create_entry(NET, "t", key, b"v".to_vec(), now)
        })
    })
    .unwrap();
}

fn visible(sim: &Sim<Node>, i: usize) -> Vec<String> {
    sim.core(i)
        .tables()
        .list_table(NET, "t")
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

#[test]
fn a_departed_members_entries_vanish_at_once_where_it_is_reaped() {
    let mut sim = cluster(4);
    write(&mut sim, 3, "from-n3");
    write(&mut sim, 0, "from-n0");
    sim.run_for(Duration::from_secs(3));
    for i in 0..4 {
        assert_eq!(visible(&sim, i), ["from-n0", "from-n3"], "node {i}");
    }

    // The Pod of n3 is deleted: the process is gone, and the snapshot tells
    // the others, who reap it at once, before any probe has failed.
    sim.crash(3);
    let gone = name_of(3);
    for i in 0..3 {
        assert!(sim.command(i, |node, now| node.reap_departed(&gone, now)));
        assert_eq!(visible(&sim, i), ["from-n0"], "node {i}");
        assert_eq!(
            sim.node(i).member(&gone).map(|m| m.status),
            Some(NodeStatus::Left)
        );
        // Told twice (the next snapshot): nothing more happens.
        assert!(!sim.command(i, |node, now| node.reap_departed(&gone, now)));
        // Its own name and unknown names are refused.
        let me = name_of(i);
        assert!(!sim.command(i, |node, now| node.reap_departed(&me, now)));
        assert!(!sim.command(i, |node, now| node.reap_departed("nobody", now)));
    }

    // Gossip does not bring it back.
    sim.run_for(Duration::from_secs(60));
    for i in 0..3 {
        assert_eq!(visible(&sim, i), ["from-n0"], "node {i}");
        assert_ne!(
            sim.node(i).member(&gone).map(|m| m.status),
            Some(NodeStatus::Alive)
        );
    }
}

#[test]
fn a_member_that_only_failed_is_hidden_not_reaped() {
    let mut sim = cluster(3);
    write(&mut sim, 2, "from-n2");
    sim.run_for(Duration::from_secs(3));
    sim.crash(2);
    // Long enough for the failure detector to declare it dead, shorter
    // than the gossip-to-the-dead time after which membership forgets it.
    sim.run_for(Duration::from_secs(20));
    for i in 0..2 {
        assert_eq!(
            sim.node(i).member(&name_of(2)).map(|m| m.status),
            Some(NodeStatus::Dead),
            "node {i}"
        );
        // Hidden, not gone: the tables still hold it for the reap.
        assert!(visible(&sim, i).is_empty(), "node {i}");
        let hidden = sim.core(i).tables().stats().networks[NET].hidden;
        assert_eq!(hidden, 1, "node {i}");
    }
}

#[test]
fn a_departed_member_membership_already_forgot_is_still_reaped_from_the_tables() {
    let mut sim = cluster(3);
    write(&mut sim, 2, "from-n2");
    sim.run_for(Duration::from_secs(3));
    sim.crash(2);
    // Declared dead, then forgotten by membership after its
    // gossip-to-the-dead time (30 s on LAN); the tables keep the entry
    // hidden for NetworkDB's 24 h.
    sim.run_for(Duration::from_secs(90));
    let gone = name_of(2);
    for i in 0..2 {
        assert!(sim.node(i).member(&gone).is_none(), "node {i}");
        assert_eq!(
            sim.core(i).tables().failed_members(),
            std::slice::from_ref(&gone)
        );
        assert_eq!(sim.core(i).tables().stats().networks[NET].hidden, 1);
    }
    // The snapshot that names it departed arrives late: it is reaped all
    // the same, once.
    for i in 0..2 {
        assert!(sim.command(i, |node, now| node.reap_departed(&gone, now)));
        assert_eq!(sim.core(i).tables().stats().networks[NET].hidden, 0);
        assert!(sim.core(i).tables().failed_members().is_empty());
        assert!(!sim.command(i, |node, now| node.reap_departed(&gone, now)));
    }
}
