//! The composed node on an in-memory network in virtual time: membership
//! and tables wired together replicate entries end to end, with no socket
//! and no sleep.

// The clock is read once per test, as the arbitrary origin of virtual time.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, HashSet};

use rand::SeedableRng;

use super::*;
use crate::tables::Change;

struct Net {
    now: Instant,
    nodes: BTreeMap<SocketAddr, Node>,
    /// (delivery time, seq, from, to, bytes)
    flight: Vec<(Instant, u64, SocketAddr, SocketAddr, Vec<u8>)>,
    seq: u64,
    down: HashSet<SocketAddr>,
    events: Vec<(SocketAddr, Event)>,
    watch: Vec<(SocketAddr, WatchEvent)>,
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16))
}

fn name(i: usize) -> String {
    format!("n{i}")
}

impl Net {
    fn new(n: usize) -> Self {
        let mut net = Net {
            now: Instant::now(),
            nodes: BTreeMap::new(),
            flight: Vec::new(),
            seq: 0,
            down: HashSet::new(),
            events: Vec::new(),
            watch: Vec::new(),
        };
        for i in 0..n {
            let mut m = membership::Config::lan(name(i), addr(i));
            m.probe_interval = Duration::from_millis(200);
            m.probe_timeout = Duration::from_millis(100);
            m.gossip_interval = Duration::from_millis(50);
            m.push_pull_interval = Duration::from_secs(5);
            let t = tables_config(&m);
            let nonces = NonceRng::seed_from_u64(i as u64);
            let node = Node::new(m, t, 100 + i as u64, nonces, net.now).unwrap();
            net.nodes.insert(addr(i), node);
        }
        for i in 1..n {
            let now = net.now;
            net.node(i)
                .with_membership(now, |m, now| m.join(&[addr(0)], now));
            net.pump();
        }
        net
    }

    fn node(&mut self, i: usize) -> &mut Node {
        self.nodes.get_mut(&addr(i)).unwrap()
    }

    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            let addrs: Vec<SocketAddr> = self.nodes.keys().copied().collect();
            for a in addrs {
                while let Some(out) = self.nodes.get_mut(&a).and_then(Node::poll_output) {
                    progressed = true;
                    match out {
                        Output::Packet { to, data } => {
                            self.seq += 1;
                            let at = self.now + Duration::from_millis(1);
                            self.flight.push((at, self.seq, a, to, data));
                        }
                        Output::Stream(req) => self.run_stream(a, req),
                        Output::Event(e) => self.events.push((a, e)),
                        Output::Watch(w) => self.watch.push((a, w)),
                    }
                }
            }
            if !progressed {
                return;
            }
        }
    }

    fn run_stream(&mut self, from: SocketAddr, req: StreamRequest) {
        let now = self.now;
        let result: StreamResult = if self.down.contains(&req.to) || self.down.contains(&from) {
            Err(format!("dial tcp {}: connection refused", req.to))
        } else {
            let Some(target) = self.nodes.get_mut(&req.to) else {
                return;
            };
            match target.membership().decode_stream_frame(&req.data, true) {
                Ok(Some((msg, _))) => {
                    match (target.handle_stream(from, msg, now), req.expect_reply) {
                        (Some(bytes), true) => {
                            let origin = &self.nodes[&from];
                            match origin.membership().decode_stream_frame(&bytes, false) {
                                Ok(Some((m, _))) => Ok(Some(m)),
                                _ => Err("bad reply".into()),
                            }
                        }
                        (None, true) => Err("EOF".into()),
                        (_, false) => Ok(None),
                    }
                }
                _ => Err("bad stream".into()),
            }
        };
        if let Some(n) = self.nodes.get_mut(&from) {
            n.handle_stream_result(req.id, result, now);
        }
    }

    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.pump();
            let next_packet = self.flight.iter().map(|p| (p.0, p.1)).min();
            let next_timer = self
                .nodes
                .iter()
                .filter(|(a, _)| !self.down.contains(a))
                .filter_map(|(_, n)| n.poll_timeout())
                .min();
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
            if let Some(key) = next_packet.filter(|p| p.0 == next) {
                let idx = self.flight.iter().position(|p| (p.0, p.1) == key).unwrap();
                let (_, _, from, to, data) = self.flight.remove(idx);
                if !self.down.contains(&from) && !self.down.contains(&to) {
                    if let Some(n) = self.nodes.get_mut(&to) {
                        n.handle_packet(from, &data, next);
                    }
                }
            } else {
                let now = self.now;
                for (a, n) in self.nodes.iter_mut() {
                    if !self.down.contains(a) {
                        n.handle_timeout(now);
                    }
                }
            }
        }
        self.now = end;
    }

    fn join_all(&mut self, n: usize, nid: &str) {
        for i in 0..n {
            let now = self.now;
            self.node(i)
                .with_tables(now, |t, now| t.join_network(nid, now))
                .unwrap();
        }
    }

    fn value(&mut self, i: usize, key: &str) -> Option<Vec<u8>> {
        self.node(i)
            .tables()
            .get_entry("net", "t", key)
            .map(|e| e.value)
    }
}

#[test]
fn a_write_on_one_node_reaches_all_and_a_delete_propagates() {
    let mut net = Net::new(4);
    net.run(Duration::from_secs(2));
    for i in 0..4 {
        assert_eq!(net.node(i).membership().num_live(), 4, "n{i} sees everyone");
    }
    net.join_all(4, "net");
    net.run(Duration::from_secs(2));
    for i in 0..4 {
        assert_eq!(
            net.node(i).tables().network_peers("net").len(),
            4,
            "n{i} knows every member of the network (network events on membership gossip)"
        );
    }

    let now = net.now;
    net.node(0)
        .with_tables(now, |t, now| {
            t.create_entry("net", "t", "k", b"v1".to_vec(), now)
        })
        .unwrap();
    net.run(Duration::from_secs(2));
    for i in 0..4 {
        assert_eq!(net.value(i, "k").as_deref(), Some(&b"v1"[..]), "n{i}");
    }

    let now = net.now;
    net.node(2)
        .with_tables(now, |t, now| {
            t.update_entry("net", "t", "k", b"v2".to_vec(), now)
        })
        .unwrap();
    net.run(Duration::from_secs(2));
    for i in 0..4 {
        assert_eq!(net.value(i, "k").as_deref(), Some(&b"v2"[..]), "n{i}");
    }

    let now = net.now;
    net.node(3)
        .with_tables(now, |t, now| t.delete_entry("net", "t", "k", now))
        .unwrap();
    net.run(Duration::from_secs(2));
    for i in 0..4 {
        assert_eq!(net.value(i, "k"), None, "n{i}: the delete propagated");
    }
    let seen_by_n1: Vec<&Change> = net
        .watch
        .iter()
        .filter(|(a, w)| *a == addr(1) && w.key == "k")
        .map(|(_, w)| &w.change)
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
        !net.events
            .iter()
            .any(|(_, e)| matches!(e, Event::UserMessage(_) | Event::RemoteState { .. })),
        "tables traffic leaked as application events"
    );
}

#[test]
fn a_failed_node_hides_its_entries_and_a_left_node_drops_them() {
    let mut net = Net::new(3);
    net.run(Duration::from_secs(2));
    net.join_all(3, "net");
    net.run(Duration::from_secs(1));
    let now = net.now;
    net.node(2)
        .with_tables(now, |t, now| {
            t.create_entry("net", "t", "a", b"x".to_vec(), now)
        })
        .unwrap();
    net.node(1)
        .with_tables(now, |t, now| {
            t.create_entry("net", "t", "b", b"y".to_vec(), now)
        })
        .unwrap();
    net.run(Duration::from_secs(2));
    assert_eq!(net.value(0, "a").as_deref(), Some(&b"x"[..]));

    // n2 crashes: memberlist declares it dead; its entry is hidden, not dropped.
    net.down.insert(addr(2));
    net.run(Duration::from_secs(10));
    assert_eq!(
        net.node(0).membership().member("n2").map(|m| m.status),
        Some(NodeStatus::Dead)
    );
    assert_eq!(net.value(0, "a"), None, "hidden while its owner is dead");
    assert_eq!(net.node(0).tables().stats().networks["net"].hidden, 1);

    // n1 leaves gracefully: its entry is dropped everywhere at once.
    let now = net.now;
    net.node(1).leave(Duration::from_secs(1), now);
    net.run(Duration::from_secs(3));
    assert_eq!(net.value(0, "b"), None);
    assert_eq!(net.node(0).tables().stats().networks["net"].hidden, 1);
}

#[test]
fn other_user_messages_still_reach_the_application() {
    let mut net = Net::new(2);
    net.run(Duration::from_secs(2));
    // "udp-a" decodes as a protobuf GossipMessage (of type INVALID, with an
    // unknown fixed32 field): only known NetworkDB types are taken.
    for msg in [&b"hello"[..], b"udp-a", b"tcp-a"] {
        let now = net.now;
        net.node(0)
            .with_membership(now, |m, _| m.send_best_effort("n1", msg))
            .unwrap();
        net.run(Duration::from_millis(100));
        assert!(
            net.events
                .iter()
                .any(|(a, e)| *a == addr(1) && *e == Event::UserMessage(msg.to_vec())),
            "{:?} not reported",
            String::from_utf8_lossy(msg)
        );
    }
}

#[test]
fn membership_and_tables_gossip_share_their_wakeups() {
    // A lone idle node on the LAN profile: memberlist and the tables both
    // gossip every 200 ms, and on one grid they take 5 wakeups a second
    // between them, not 10. Probes (1/s), reconnect tries (1/s) and the
    // reaper (1 per 5 s) come on top: about 7 a second in all.
    let start = Instant::now();
    let m = membership::Config::lan("n0".to_string(), addr(0));
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
