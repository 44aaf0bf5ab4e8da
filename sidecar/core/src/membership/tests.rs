//! Unit and property tests of the membership core on an in-memory network
//! with virtual time and seeded randomness: no sockets, no sleeps.

// The clock is read once per test, as the arbitrary origin of virtual time.
#![allow(clippy::disallowed_methods)]

use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashSet};

/// An in-memory network of membership cores in virtual time.
struct Net {
    now: Instant,
    nodes: BTreeMap<SocketAddr, Membership>,
    /// Packets in flight: (delivery time, seq, from, to, bytes).
    flight: Vec<(Instant, u64, SocketAddr, SocketAddr, Vec<u8>)>,
    seq: u64,
    latency: Duration,
    down: HashSet<SocketAddr>,
    /// Pairs that cannot talk (both directions).
    cuts: HashSet<(SocketAddr, SocketAddr)>,
    events: Vec<(SocketAddr, Event)>,
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16))
}

impl Net {
    fn new() -> Self {
        let t0 = Instant::now();
        Net {
            now: t0,
            nodes: BTreeMap::new(),
            flight: Vec::new(),
            seq: 0,
            latency: Duration::from_millis(1),
            down: HashSet::new(),
            cuts: HashSet::new(),
            events: Vec::new(),
        }
    }

    fn add(&mut self, i: usize, cfg: impl FnOnce(&mut Config)) -> SocketAddr {
        let a = addr(i);
        let mut c = Config::lan(format!("n{i}"), a);
        cfg(&mut c);
        let m = Membership::new(c, 1000 + i as u64, self.now).unwrap();
        self.nodes.insert(a, m);
        self.pump();
        a
    }

    fn blocked(&self, from: SocketAddr, to: SocketAddr) -> bool {
        self.down.contains(&from)
            || self.down.contains(&to)
            || self.cuts.contains(&(from, to))
            || self.cuts.contains(&(to, from))
    }

    /// Drains outputs of every node; streams complete at once.
    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            let addrs: Vec<SocketAddr> = self.nodes.keys().copied().collect();
            for a in addrs {
                while let Some(out) = self.nodes.get_mut(&a).and_then(|m| m.poll_output()) {
                    progressed = true;
                    match out {
                        Output::Packet { to, data } => {
                            self.seq += 1;
                            self.flight
                                .push((self.now + self.latency, self.seq, a, to, data));
                        }
                        Output::Event(e) => self.events.push((a, e)),
                        Output::Stream(req) => self.run_stream(a, req),
                    }
                }
            }
            if !progressed {
                break;
            }
        }
    }

    fn run_stream(&mut self, from: SocketAddr, req: StreamRequest) {
        let now = self.now;
        let result: StreamResult =
            if self.blocked(from, req.to) || !self.nodes.contains_key(&req.to) {
                Err(format!("dial tcp {}: connection refused", req.to))
            } else {
                let target = self.nodes.get_mut(&req.to).unwrap();
                match target.decode_stream_frame(&req.data, true) {
                    Ok(Some((msg, _))) => {
                        let reply = target.handle_stream(from, msg, now);
                        match (reply, req.expect_reply) {
                            (Some(bytes), true) => {
                                let origin = self.nodes.get(&from).unwrap();
                                match origin.decode_stream_frame(&bytes, false) {
                                    Ok(Some((m, _))) => Ok(Some(m)),
                                    Ok(None) => Err("truncated reply".into()),
                                    Err(e) => Err(e.to_string()),
                                }
                            }
                            (None, true) => Err("EOF".into()),
                            (_, false) => Ok(None),
                        }
                    }
                    Ok(None) => Err("truncated".into()),
                    Err(e) => {
                        target.handle_stream_error(from, &e, now);
                        Err(e.to_string())
                    }
                }
            };
        if let Some(m) = self.nodes.get_mut(&from) {
            m.handle_stream_result(req.id, result, now);
        }
    }

    /// Advances virtual time by `d`, delivering packets and firing timers in order.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.pump();
            let next_packet = self.flight.iter().map(|p| (p.0, p.1)).min();
            let next_timer = self.nodes.values().filter_map(|m| m.poll_timeout()).min();
            let next = match (next_packet.map(|p| p.0), next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            if next > end {
                break;
            }
            self.now = next;
            if next_packet.is_some_and(|p| p.0 == next) {
                let key = next_packet.unwrap();
                let idx = self.flight.iter().position(|p| (p.0, p.1) == key).unwrap();
                let (_, _, from, to, data) = self.flight.swap_remove(idx);
                if !self.blocked(from, to) {
                    if let Some(m) = self.nodes.get_mut(&to) {
                        m.handle_packet(from, &data, next);
                    }
                }
            } else {
                let now = self.now;
                for m in self.nodes.values_mut() {
                    if m.poll_timeout().is_some_and(|t| t <= now) {
                        m.handle_timeout(now);
                    }
                }
            }
        }
        self.now = end;
        self.pump();
    }

    fn status(&self, at: SocketAddr, name: &str) -> Option<NodeStatus> {
        self.nodes[&at].member(name).map(|m| m.status)
    }

    fn all_see_alive(&self, n: usize) -> bool {
        self.nodes
            .iter()
            .filter(|(a, _)| !self.down.contains(a))
            .all(|(_, m)| {
                m.members()
                    .iter()
                    .filter(|x| x.status == NodeStatus::Alive)
                    .count()
                    == n
            })
    }

    fn cluster(n: usize) -> Net {
        let mut net = Net::new();
        for i in 0..n {
            net.add(i, |_| {});
        }
        let seed = addr(0);
        for i in 1..n {
            let now = net.now;
            net.nodes.get_mut(&addr(i)).unwrap().join(&[seed], now);
        }
        net.pump();
        net
    }
}

#[test]
fn join_through_a_seed_converges() {
    let mut net = Net::cluster(8);
    net.run(Duration::from_secs(5));
    assert!(net.all_see_alive(8));
    let joins = net
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::JoinFinished { contacted: 1, .. }))
        .count();
    assert_eq!(joins, 7);
}

#[test]
fn join_without_an_answering_seed_reports_the_addresses_tried() {
    let mut net = Net::new();
    let a = net.add(0, |_| {});
    let now = net.now;
    net.nodes
        .get_mut(&a)
        .unwrap()
        .join(&[addr(50), addr(51)], now);
    net.pump();
    let errors = net
        .events
        .iter()
        .find_map(|(_, e)| match e {
            Event::JoinFinished {
                contacted: 0,
                errors,
                ..
            } => Some(errors.clone()),
            _ => None,
        })
        .expect("join finished");
    assert_eq!(errors.len(), 2);
    assert!(errors[0].contains("127.0.0.1:7050"), "{errors:?}");
    assert!(errors[1].contains("127.0.0.1:7051"), "{errors:?}");
}

#[test]
fn crashed_node_is_suspected_then_dead_everywhere() {
    let mut net = Net::cluster(6);
    net.run(Duration::from_secs(5));
    assert!(net.all_see_alive(6));
    let victim = addr(3);
    net.down.insert(victim);
    net.run(Duration::from_secs(20));
    for i in [0, 1, 2, 4, 5] {
        assert_eq!(
            net.status(addr(i), "n3"),
            Some(NodeStatus::Dead),
            "node {i}"
        );
    }
    // No false positives among the living.
    assert!(net.all_see_alive(5));
}

#[test]
fn leave_is_seen_as_left() {
    let mut net = Net::cluster(5);
    net.run(Duration::from_secs(5));
    let now = net.now;
    net.nodes
        .get_mut(&addr(2))
        .unwrap()
        .leave(Duration::from_secs(5), now);
    net.run(Duration::from_secs(3));
    assert!(net.events.iter().any(|(a, e)| *a == addr(2)
        && matches!(
            e,
            Event::LeaveFinished {
                broadcast_sent: true
            }
        )));
    let st: Vec<_> = (0..5).map(|i| net.status(addr(i), "n2")).collect();
    for i in [0, 1, 3, 4] {
        assert_eq!(
            net.status(addr(i), "n2"),
            Some(NodeStatus::Left),
            "node {i}: {st:?}"
        );
    }
}

#[test]
fn suspected_node_refutes_with_higher_incarnation() {
    let mut net = Net::cluster(4);
    net.run(Duration::from_secs(5));
    let now = net.now;
    let inc = net.nodes[&addr(1)].member("n1").unwrap().incarnation;
    // n0 wrongly suspects n1 (as after a lost packet).
    net.nodes.get_mut(&addr(0)).unwrap().suspect_node(
        wire::Suspect {
            incarnation: inc,
            node: "n1".into(),
            from: "n0".into(),
        },
        now,
    );
    net.run(Duration::from_secs(10));
    for i in 0..4 {
        let m = net.nodes[&addr(i)].member("n1").unwrap().clone();
        assert_eq!(m.status, NodeStatus::Alive, "node {i}");
        assert!(m.incarnation > inc, "node {i} saw the refutation");
    }
    assert!(net.nodes[&addr(1)].stats().refutations >= 1);
}

#[test]
fn live_name_from_another_address_is_a_conflict_not_a_flap() {
    let mut net = Net::cluster(3);
    net.run(Duration::from_secs(5));
    // An impostor announces n1 from another address, again and again.
    for _ in 0..5 {
        let now = net.now;
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
        net.nodes
            .get_mut(&addr(0))
            .unwrap()
            .handle_packet(addr(99), &pkt, now);
        net.run(Duration::from_millis(500));
    }
    let m = net.nodes[&addr(0)].member("n1").unwrap();
    assert_eq!(m.addr, addr(1), "the claim was refused");
    let conflicts = net
        .events
        .iter()
        .filter(|(a, e)| *a == addr(0) && matches!(e, Event::Conflict { .. }))
        .count();
    assert_eq!(conflicts, 1, "reported once, not on every packet");
    assert!(net.all_see_alive(3));
}

#[test]
fn dead_name_may_come_back_on_a_new_address() {
    let mut net = Net::cluster(3);
    net.run(Duration::from_secs(5));
    net.down.insert(addr(2));
    net.run(Duration::from_secs(15));
    assert_eq!(net.status(addr(0), "n2"), Some(NodeStatus::Dead));
    // n2 restarts on a new port, incarnation 1 again.
    let a = addr(12);
    let c = Config::lan("n2", a);
    let now = net.now;
    net.nodes.insert(a, Membership::new(c, 77, now).unwrap());
    net.nodes.get_mut(&a).unwrap().join(&[addr(0)], now);
    net.pump();
    net.run(Duration::from_secs(5));
    let m = net.nodes[&addr(0)].member("n2").unwrap();
    assert_eq!((m.addr, m.status), (a, NodeStatus::Alive));
}

#[test]
fn user_messages_broadcasts_and_state_cross() {
    let mut net = Net::cluster(4);
    let now = net.now;
    for m in net.nodes.values_mut() {
        let s = format!("state-of-{}", m.name());
        m.set_local_state(s.into_bytes());
    }
    net.nodes.get_mut(&addr(1)).unwrap().join(&[addr(0)], now);
    net.run(Duration::from_secs(3));
    let now2 = net.now;
    let n0 = net.nodes.get_mut(&addr(0)).unwrap();
    n0.send_best_effort("n1", b"udp-hello").unwrap();
    n0.send_reliable("n2", b"tcp-hello", now2).unwrap();
    n0.broadcast(b"everyone".to_vec());
    assert!(matches!(
        n0.send_best_effort("nope", b"x"),
        Err(CommandError::UnknownMember(_))
    ));
    let _ = now;
    net.run(Duration::from_secs(3));
    let got = |at: usize, data: &[u8]| {
        net.events
            .iter()
            .any(|(a, e)| *a == addr(at) && *e == Event::UserMessage(data.to_vec()))
    };
    assert!(got(1, b"udp-hello"));
    assert!(got(2, b"tcp-hello"));
    // A user broadcast is sent exactly its retransmit limit times (receivers
    // do not re-gossip user broadcasts, as in memberlist).
    let copies = net
        .events
        .iter()
        .filter(|(_, e)| *e == Event::UserMessage(b"everyone".to_vec()))
        .count();
    assert_eq!(copies, retransmit_limit(4, 4));
    assert!(net.events.iter().any(|(a, e)| *a == addr(0)
        && matches!(e, Event::RemoteState { data, join: true } if data == b"state-of-n1")));
    assert!(net.events.iter().any(|(a, e)| *a == addr(1)
        && matches!(e, Event::RemoteState { data, join: true } if data == b"state-of-n0")));
}

#[test]
fn a_joiner_hears_of_the_nodes_before_the_state_that_names_them() {
    // n0 and n1 form a cluster; n2 joins through n0. On n2, the push/pull
    // reply's node states (n0 and n1 joined) come before its user state,
    // as in memberlist: NetworkDB drops attachments of unknown nodes.
    let mut net = Net::new();
    for i in 0..3 {
        let a = net.add(i, |_| {});
        let s = format!("state-of-n{i}");
        net.nodes
            .get_mut(&a)
            .unwrap()
            .set_local_state(s.into_bytes());
    }
    let now = net.now;
    net.nodes.get_mut(&addr(1)).unwrap().join(&[addr(0)], now);
    net.pump();
    net.run(Duration::from_secs(3));
    net.events.clear();
    let now = net.now;
    net.nodes.get_mut(&addr(2)).unwrap().join(&[addr(0)], now);
    net.pump();
    let at2: Vec<&Event> = net
        .events
        .iter()
        .filter(|(a, _)| *a == addr(2))
        .map(|(_, e)| e)
        .collect();
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
    let mut net = Net::cluster(4);
    net.run(Duration::from_secs(3));
    let now = net.now;
    net.nodes
        .get_mut(&addr(3))
        .unwrap()
        .set_meta(b"pod=web-0".to_vec(), now)
        .unwrap();
    assert_eq!(
        net.nodes
            .get_mut(&addr(3))
            .unwrap()
            .set_meta(vec![0; 513], now),
        Err(CommandError::MetaTooLarge(513))
    );
    net.run(Duration::from_secs(3));
    for i in 0..3 {
        assert_eq!(net.nodes[&addr(i)].member("n3").unwrap().meta, b"pod=web-0");
        assert!(net
            .events
            .iter()
            .any(|(a, e)| *a == addr(i) && matches!(e, Event::Update(m) if m.name == "n3")));
    }
}

#[test]
fn labels_isolate_clusters() {
    let mut net = Net::new();
    let a = net.add(0, |c| c.label = "shop/default".into());
    let b = net.add(1, |c| c.label = "other/default".into());
    let now = net.now;
    net.nodes.get_mut(&b).unwrap().join(&[a], now);
    net.pump();
    let err = net
        .events
        .iter()
        .find_map(|(_, e)| match e {
            Event::JoinFinished {
                contacted: 0,
                errors,
                ..
            } => Some(errors.join(";")),
            _ => None,
        })
        .expect("join failed");
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
    net.nodes
        .get_mut(&a)
        .unwrap()
        .handle_packet(b, &framed, now);
    // The refused join stream and the packet.
    assert_eq!(net.nodes[&a].stats().label_mismatches, 2);
    net.run(Duration::from_secs(5));
    assert_eq!(net.nodes[&a].members().len(), 1);
}

#[test]
fn indirect_probe_saves_a_node_behind_a_one_way_cut() {
    let mut net = Net::cluster(5);
    net.run(Duration::from_secs(5));
    // n0 cannot reach n1 directly, others can.
    net.cuts.insert((addr(0), addr(1)));
    net.run(Duration::from_secs(20));
    for i in 0..5 {
        assert_eq!(
            net.status(addr(i), "n1"),
            Some(NodeStatus::Alive),
            "node {i}"
        );
    }
}

#[test]
fn probe_targets_skip_self_and_every_live_member_is_probed() {
    let mut net = Net::cluster(4);
    net.run(Duration::from_secs(10));
    let m = &net.nodes[&addr(0)];
    assert_eq!(m.health_score(), 0);
    assert_eq!(m.stats().failed_probes, 0);
}

#[test]
fn awareness_rises_when_nacks_are_missing() {
    let mut net = Net::cluster(5);
    net.run(Duration::from_secs(5));
    // n0 is cut from everybody: its probes fail and no nacks come back.
    for i in 1..5 {
        net.cuts.insert((addr(0), addr(i)));
    }
    net.run(Duration::from_secs(3));
    assert!(net.nodes[&addr(0)].health_score() > 0);
}

#[test]
fn malformed_packets_are_counted_and_change_nothing() {
    let mut net = Net::cluster(2);
    net.run(Duration::from_secs(3));
    let before = net.nodes[&addr(0)].members();
    let now = net.now;
    for bad in [
        &[0xffu8][..],
        &[4, 0x81],
        &[7, 3, 0, 1],
        &[],
        &[12, 0, 0, 0, 0, 4],
    ] {
        net.nodes
            .get_mut(&addr(0))
            .unwrap()
            .handle_packet(addr(9), bad, now);
    }
    assert!(net.nodes[&addr(0)].stats().malformed >= 5);
    assert_eq!(net.nodes[&addr(0)].members(), before);
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
    let a = addr(0);
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
    fn trace() -> Vec<String> {
        let mut net = Net::cluster(5);
        net.run(Duration::from_secs(4));
        net.down.insert(addr(4));
        net.run(Duration::from_secs(10));
        net.events
            .iter()
            .map(|(a, e)| format!("{a} {e:?}"))
            .collect()
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
        let mut net = Net::cluster(n);
        net.run(Duration::from_secs(3));
        let crashed: HashSet<usize> = crashes.into_iter().filter(|c| *c < n && *c != 0).collect();
        for c in &crashed {
            net.down.insert(addr(*c));
        }
        for (a, b) in cuts {
            if a < n && b < n && a != b {
                net.cuts.insert((addr(a), addr(b)));
            }
        }
        net.run(Duration::from_secs(4));
        net.cuts.clear();
        // Quiescence: long enough for suspicion, refutation and push/pull.
        net.run(Duration::from_secs(60));
        for i in (0..n).filter(|i| !crashed.contains(i)) {
            for j in 0..n {
                let st = net.status(addr(i), &format!("n{j}"));
                if crashed.contains(&j) {
                    prop_assert!(st.is_none_or(|s| s.is_gone()), "n{i} sees crashed n{j} as {st:?}");
                } else {
                    prop_assert_eq!(st, Some(NodeStatus::Alive), "n{} sees n{}", i, j);
                }
            }
        }
    }
}

#[path = "crypt_tests.rs"]
mod crypt_tests;
