//! Tests of the membership core in the deterministic simulator (virtual
//! time, seeded randomness, no sockets, no sleeps), and unit tests of its
//! pure parts.

// The clock is read once per test, as the arbitrary origin of virtual time.
#![allow(clippy::disallowed_methods)]

use super::*;
use crate::sim::{addr_of, model, LinkModel, Sim, SimConfig};
use proptest::prelude::*;
use std::collections::HashSet;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// `n` nodes on a LAN link, each starting alone and joining through n0.
fn cluster(n: usize) -> Sim {
    let mut c = SimConfig::lan(n, 1);
    c.converged = false;
    Sim::new(c, Instant::now()).unwrap()
}

/// No nodes yet (add them with [`Sim::add_node`]), on `link`.
fn empty(link: LinkModel) -> Sim {
    let mut c = SimConfig::lan(0, 1);
    c.converged = false;
    c.link = link;
    Sim::new(c, Instant::now()).unwrap()
}

/// Node `i` joins through `seeds`.
fn join(sim: &mut Sim, i: usize, seeds: &[usize]) {
    let seeds: Vec<SocketAddr> = seeds.iter().map(|s| addr_of(*s)).collect();
    sim.command(i, |m, now| m.join(&seeds, now));
}

/// Every live node holds exactly `n` members alive.
fn all_see_alive(sim: &Sim, n: usize) -> bool {
    (0..sim.len())
        .filter(|i| sim.is_up(*i))
        .all(|i| sim.alive_seen_by(i) == n)
}

/// The errors of node `i`'s first join that reached nobody.
fn join_errors(sim: &Sim, i: usize) -> Option<Vec<String>> {
    sim.events_of(i).find_map(|e| match e {
        Event::JoinFinished {
            contacted: 0,
            errors,
            ..
        } => Some(errors.clone()),
        _ => None,
    })
}

/// No live node suspected anyone, so none had to refute: the counters,
/// not a view that may have recovered by the time we look.
fn no_suspicion(sim: &Sim) {
    for i in (0..sim.len()).filter(|i| sim.is_up(*i)) {
        let st = sim.node(i).stats();
        assert_eq!(
            (st.failed_probes, st.suspicions, st.refutations),
            (0, 0, 0),
            "n{i}: failed probes, suspicions, refutations"
        );
    }
}

#[test]
fn join_through_a_seed_converges() {
    let mut sim = cluster(8);
    sim.run_for(secs(5));
    assert!(all_see_alive(&sim, 8));
    let joins = sim
        .events()
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::JoinFinished { contacted: 1, .. }))
        .count();
    assert_eq!(joins, 7);
    no_suspicion(&sim);
}

#[test]
fn join_without_an_answering_seed_reports_the_addresses_tried() {
    let mut sim = empty(LinkModel::default());
    let a = sim.add_node(|_| {}).unwrap();
    join(&mut sim, a, &[50, 51]);
    sim.settle();
    let errors = join_errors(&sim, a).expect("join finished");
    assert_eq!(errors.len(), 2);
    assert!(errors[0].contains(&addr_of(50).to_string()), "{errors:?}");
    assert!(errors[1].contains(&addr_of(51).to_string()), "{errors:?}");
}

#[test]
fn crashed_node_is_suspected_then_dead_everywhere() {
    let mut sim = cluster(6);
    sim.run_for(secs(5));
    assert!(all_see_alive(&sim, 6));
    no_suspicion(&sim);
    sim.crash(3);
    sim.run_for(secs(20));
    for i in [0, 1, 2, 4, 5] {
        assert_eq!(sim.status(i, 3), Some(NodeStatus::Dead), "node {i}");
        // No false positives among the living: each suspected at most one
        // member (n3), and no live member was suspected, or it would have
        // refuted.
        let st = sim.node(i).stats();
        assert!(st.suspicions <= 1, "n{i} suspected {} times", st.suspicions);
        assert_eq!(st.refutations, 0, "n{i} was suspected");
    }
    let live_declared_gone = sim
        .events()
        .iter()
        .any(|(_, _, e)| matches!(e, Event::Leave(m) if m.name != "n3"));
    assert!(!live_declared_gone, "a live member was declared gone");
    assert!(all_see_alive(&sim, 5));
}

#[test]
fn leave_is_seen_as_left() {
    let mut sim = cluster(5);
    sim.run_for(secs(5));
    sim.command(2, |m, now| m.leave(secs(5), now));
    sim.run_for(secs(3));
    assert!(sim.events_of(2).any(|e| matches!(
        e,
        Event::LeaveFinished {
            broadcast_sent: true
        }
    )));
    let st: Vec<_> = (0..5).map(|i| sim.status(i, 2)).collect();
    for i in [0, 1, 3, 4] {
        assert_eq!(sim.status(i, 2), Some(NodeStatus::Left), "node {i}: {st:?}");
    }
}

#[test]
fn suspected_node_refutes_with_higher_incarnation() {
    let mut sim = cluster(4);
    sim.run_for(secs(5));
    no_suspicion(&sim);
    let inc = sim.node(1).member("n1").unwrap().incarnation;
    // n0 wrongly suspects n1 (as after a lost packet).
    sim.command(0, |m, now| {
        m.suspect_node(
            wire::Suspect {
                incarnation: inc,
                node: "n1".into(),
                from: "n0".into(),
            },
            now,
        )
    });
    sim.run_for(secs(10));
    for i in 0..4 {
        let m = sim.node(i).member("n1").unwrap().clone();
        assert_eq!(m.status, NodeStatus::Alive, "node {i}");
        assert!(m.incarnation > inc, "node {i} saw the refutation");
    }
    assert!(sim.node(1).stats().refutations >= 1);
    // The one suspicion, the refutation, and no probe failed.
    assert_eq!(sim.node(0).stats().suspicions, 1);
    for i in 0..4 {
        assert_eq!(sim.node(i).stats().failed_probes, 0, "n{i}");
    }
}

#[test]
fn live_name_from_another_address_is_a_conflict_not_a_flap() {
    let mut sim = cluster(3);
    sim.run_for(secs(5));
    // An impostor announces n1 from another address, again and again.
    for _ in 0..5 {
        let mut pkt = Vec::new();
        Message::Alive(wire::Alive {
            incarnation: 100,
            node: "n1".into(),
            addr: vec![127, 0, 0, 1],
            port: 9999,
            meta: vec![],
            vsn: vec![1, 5, 2, 0, 0, 0],
        })
        .encode(&mut pkt);
        sim.command(0, |m, now| m.handle_packet(addr_of(99), &pkt, now));
        sim.run_for(Duration::from_millis(500));
    }
    let m = sim.node(0).member("n1").unwrap();
    assert_eq!(m.addr, addr_of(1), "the claim was refused");
    let conflicts = sim
        .events_of(0)
        .filter(|e| matches!(e, Event::Conflict { .. }))
        .count();
    assert_eq!(conflicts, 1, "reported once, not on every packet");
    assert!(all_see_alive(&sim, 3));
    no_suspicion(&sim);
}

#[test]
fn dead_name_may_come_back_on_a_new_address() {
    let mut sim = cluster(3);
    sim.run_for(secs(5));
    sim.crash(2);
    sim.run_for(secs(15));
    assert_eq!(sim.status(0, 2), Some(NodeStatus::Dead));
    // n2 restarts on a new address, incarnation 1 again.
    let again = sim.add_node(|c| c.name = "n2".into()).unwrap();
    join(&mut sim, again, &[0]);
    sim.run_for(secs(5));
    let m = sim.node(0).member("n2").unwrap();
    assert_eq!((m.addr, m.status), (addr_of(again), NodeStatus::Alive));
}

#[test]
fn user_messages_broadcasts_and_state_cross() {
    let mut sim = cluster(4);
    for i in 0..4 {
        let s = format!("state-of-n{i}");
        sim.command(i, |m, _| m.set_local_state(s.into_bytes()));
    }
    join(&mut sim, 1, &[0]);
    sim.run_for(secs(3));
    sim.command(0, |n0, now| {
        n0.send_best_effort("n1", b"udp-hello").unwrap();
        n0.send_reliable("n2", b"tcp-hello", now).unwrap();
        n0.broadcast(b"everyone".to_vec());
        assert!(matches!(
            n0.send_best_effort("nope", b"x"),
            Err(CommandError::UnknownMember(_))
        ));
    });
    sim.run_for(secs(3));
    let got = |at: usize, data: &[u8]| {
        sim.events_of(at)
            .any(|e| *e == Event::UserMessage(data.to_vec()))
    };
    assert!(got(1, b"udp-hello"));
    assert!(got(2, b"tcp-hello"));
    // A user broadcast is sent exactly its retransmit limit times (receivers
    // do not re-gossip user broadcasts, as in memberlist).
    let copies = sim
        .events()
        .iter()
        .filter(|(_, _, e)| *e == Event::UserMessage(b"everyone".to_vec()))
        .count();
    assert_eq!(copies, retransmit_limit(4, 4));
    assert!(sim
        .events_of(0)
        .any(|e| matches!(e, Event::RemoteState { data, join: true } if data == b"state-of-n1")));
    assert!(sim
        .events_of(1)
        .any(|e| matches!(e, Event::RemoteState { data, join: true } if data == b"state-of-n0")));
}

#[test]
fn a_joiner_hears_of_the_nodes_before_the_state_that_names_them() {
    // n0 and n1 form a cluster; n2 joins through n0. On n2, the push/pull
    // reply's node states (n0 and n1 joined) come before its user state,
    // as in memberlist: NetworkDB drops attachments of unknown nodes.
    let mut sim = empty(LinkModel::instant());
    for i in 0..3 {
        let a = sim.add_node(|_| {}).unwrap();
        let s = format!("state-of-n{i}");
        sim.command(a, |m, _| m.set_local_state(s.into_bytes()));
    }
    join(&mut sim, 1, &[0]);
    sim.run_for(secs(3));
    sim.take_events();
    join(&mut sim, 2, &[0]);
    sim.settle();
    let at2: Vec<&Event> = sim.events_of(2).collect();
    let pos = |f: &dyn Fn(&Event) -> bool| at2.iter().position(|e| f(e));
    let state =
        pos(&|e| matches!(e, Event::RemoteState { data, join: true } if data == b"state-of-n0"))
            .expect("n0's state reached n2");
    for n in ["n0", "n1"] {
        let joined = pos(&|e| matches!(e, Event::Join(m) if m.name == n))
            .unwrap_or_else(|| panic!("{n} joined on n2: {at2:?}"));
        assert!(joined < state, "{n} joined after the state: {at2:?}");
    }
}

#[test]
fn metadata_update_reaches_everyone() {
    let mut sim = cluster(4);
    sim.run_for(secs(3));
    sim.command(3, |m, now| {
        m.set_meta(b"pod=web-0".to_vec(), now).unwrap();
        assert_eq!(
            m.set_meta(vec![0; 513], now),
            Err(CommandError::MetaTooLarge(513))
        );
    });
    sim.run_for(secs(3));
    for i in 0..3 {
        assert_eq!(sim.node(i).member("n3").unwrap().meta, b"pod=web-0");
        assert!(sim
            .events_of(i)
            .any(|e| matches!(e, Event::Update(m) if m.name == "n3")));
    }
}

#[test]
fn labels_isolate_clusters() {
    let mut sim = empty(LinkModel::instant());
    let a = sim.add_node(|c| c.label = "shop/default".into()).unwrap();
    let b = sim.add_node(|c| c.label = "other/default".into()).unwrap();
    join(&mut sim, b, &[a]);
    sim.settle();
    let err = join_errors(&sim, b).expect("join failed").join(";");
    assert!(err.contains("label"), "{err}");
    // Packets with the wrong label are dropped and counted.
    let mut pkt = Vec::new();
    Message::Ping(wire::Ping {
        seq_no: 1,
        node: "n0".into(),
        ..Default::default()
    })
    .encode(&mut pkt);
    let framed = wire::add_label_header("other/default", &pkt);
    sim.command(a, |m, now| m.handle_packet(addr_of(b), &framed, now));
    // The refused join stream and the packet.
    assert_eq!(sim.node(a).stats().label_mismatches, 2);
    sim.run_for(secs(5));
    assert_eq!(sim.node(a).members().len(), 1);
}

#[test]
fn indirect_probe_saves_a_node_behind_a_one_way_cut() {
    let mut sim = cluster(5);
    sim.run_for(secs(5));
    // n0 cannot reach n1 directly, others can.
    sim.cut(0, 1);
    sim.run_for(secs(20));
    for i in 0..5 {
        assert_eq!(sim.status(i, 1), Some(NodeStatus::Alive), "node {i}");
    }
    // Saved by the indirect probes every time, not by a refutation.
    no_suspicion(&sim);
}

#[test]
fn probe_targets_skip_self_and_every_live_member_is_probed() {
    let mut sim = cluster(4);
    sim.run_for(secs(10));
    for i in 0..4 {
        assert_eq!(sim.node(i).health_score(), 0, "n{i}");
    }
    no_suspicion(&sim);
}

#[test]
fn awareness_rises_when_nacks_are_missing() {
    let mut sim = cluster(5);
    sim.run_for(secs(5));
    // n0 is cut from everybody: its probes fail and no nacks come back.
    for i in 1..5 {
        sim.cut(0, i);
    }
    sim.run_for(secs(3));
    assert!(sim.node(0).health_score() > 0);
    assert!(sim.node(0).stats().failed_probes > 0);
}

#[test]
fn malformed_packets_are_counted_and_change_nothing() {
    let mut sim = cluster(2);
    sim.run_for(secs(3));
    let before = sim.node(0).members();
    for bad in [
        &[0xffu8][..],
        &[4, 0x81],
        &[7, 3, 0, 1],
        &[],
        &[12, 0, 0, 0, 0, 4],
    ] {
        sim.command(0, |m, now| m.handle_packet(addr_of(9), bad, now));
    }
    assert!(sim.node(0).stats().malformed >= 5);
    assert_eq!(sim.node(0).members(), before);
}

#[test]
fn push_pull_interval_scales_past_32() {
    let s = Duration::from_secs(30);
    assert_eq!(push_pull_scale(s, 32), s);
    assert_eq!(push_pull_scale(s, 33), s * 2);
    assert_eq!(push_pull_scale(s, 64), s * 2);
    assert_eq!(push_pull_scale(s, 65), s * 3);
    assert_eq!(push_pull_scale(s, 1024), s * 6);
}

#[test]
fn profiles_match_memberlist_defaults() {
    let a = addr_of(0);
    let lan = Config::lan("x", a);
    assert_eq!(
        (lan.probe_interval, lan.probe_timeout, lan.gossip_interval),
        (
            Duration::from_secs(1),
            Duration::from_millis(500),
            Duration::from_millis(200)
        )
    );
    assert_eq!(
        (lan.suspicion_mult, lan.retransmit_mult, lan.gossip_nodes),
        (4, 4, 3)
    );
    let wan = Config::wan("x", a);
    assert_eq!(
        (wan.probe_interval, wan.suspicion_mult),
        (Duration::from_secs(5), 6)
    );
    let local = Config::local("x", a);
    assert_eq!(
        (local.indirect_checks, local.gossip_interval),
        (1, Duration::from_millis(100))
    );
    let mut bad = lan.clone();
    bad.protocol_version = 6;
    let err = bad.validate().unwrap_err();
    assert_eq!(err, super::ConfigError::ProtocolVersion(6));
    assert!(
        err.to_string()
            .contains("protocol_version 6 is not supported: use 2 to 5"),
        "{err}"
    );
}

#[test]
fn same_seed_same_trace() {
    fn trace() -> (Vec<String>, u64) {
        let mut sim = cluster(5);
        sim.run_for(secs(4));
        sim.crash(4);
        sim.run_for(secs(10));
        let events = sim
            .events()
            .iter()
            .map(|(t, i, e)| format!("{t:?} n{i} {e:?}"))
            .collect();
        (events, sim.trace_hash())
    }
    assert_eq!(trace(), trace());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// After any crashes and pairwise cuts that heal, the survivors agree:
    /// every live node alive, every crashed node gone.
    #[test]
    fn survivors_agree_after_faults_heal(
        n in 3usize..7,
        crashes in proptest::collection::vec(0usize..7, 0..2),
        cuts in proptest::collection::vec((0usize..7, 0usize..7), 0..4),
    ) {
        let mut sim = cluster(n);
        sim.run_for(secs(3));
        let crashed: HashSet<usize> = crashes.into_iter().filter(|c| *c < n && *c != 0).collect();
        for c in &crashed {
            sim.crash(*c);
        }
        for (a, b) in cuts {
            if a < n && b < n && a != b {
                sim.cut(a, b);
            }
        }
        sim.run_for(secs(4));
        sim.heal();
        // Quiescence: long enough for suspicion, refutation and push/pull.
        sim.run_for(secs(60));
        let agreed = model::membership_agrees(&sim);
        prop_assert!(agreed.is_ok(), "{}", agreed.unwrap_err());
    }
}

#[path = "crypt_tests.rs"]
mod crypt_tests;
