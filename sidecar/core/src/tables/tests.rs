//! Unit tests of the tables core, on a small in-memory cluster with a
//! perfect (or selectively deaf) network and virtual time.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use prost::Message;

use super::codec::{self, Decoded};
use super::proto::{self, table_event, BulkSyncMessage, TableEvent};
use super::*;

#[allow(clippy::disallowed_methods)] // the virtual-time origin
fn origin() -> Instant {
    Instant::now()
}

fn cfg(name: &str) -> Config {
    let mut c = Config::new(name);
    c.bulk_sync_interval = Duration::from_secs(5);
    c.bulk_sync_timeout = Duration::from_secs(2);
    c.reap_entry_interval = Duration::from_secs(60);
    c.node_reap_interval = Duration::from_secs(600);
    c
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8 + 1], 7946))
}

/// A cluster whose nodes all know each other; `deaf` nodes receive nothing
/// and their reliable sends' peers report failure.
struct Cluster {
    nodes: BTreeMap<String, Tables>,
    now: Instant,
    deaf: BTreeSet<String>,
    /// Everything sent, as (from, to, bytes, reliable).
    sent: Vec<(String, String, Vec<u8>, bool)>,
    watch: BTreeMap<String, Vec<WatchEvent>>,
    reconnects: Vec<(String, String)>,
}

impl Cluster {
    fn new(names: &[&str]) -> Self {
        let now = origin();
        let mut nodes = BTreeMap::new();
        for (i, n) in names.iter().enumerate() {
            nodes.insert(
                n.to_string(),
                Tables::new(cfg(n), i as u64 + 1, now).unwrap(),
            );
        }
        let mut c = Cluster {
            nodes,
            now,
            deaf: BTreeSet::new(),
            sent: Vec::new(),
            watch: BTreeMap::new(),
            reconnects: Vec::new(),
        };
        for (i, a) in names.iter().enumerate() {
            for (j, b) in names.iter().enumerate() {
                if i != j {
                    c.node(a).member_joined(b, addr(j), now);
                }
            }
        }
        c
    }

    fn node(&mut self, n: &str) -> &mut Tables {
        self.nodes.get_mut(n).unwrap()
    }

    /// Full push/pull between every pair.
    fn push_pull(&mut self) {
        let names: Vec<String> = self.nodes.keys().cloned().collect();
        for a in &names {
            let st = self.node(a).local_state(false);
            for b in &names {
                if a != b && !self.deaf.contains(b) {
                    let now = self.now;
                    self.node(b).merge_remote_state(&st, false, now);
                }
            }
        }
    }

    /// Delivers outputs (and memberlist-gossiped events) until quiet.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            let names: Vec<String> = self.nodes.keys().cloned().collect();
            for from in &names {
                while let Some(out) = self.node(from).poll_output() {
                    moved = true;
                    self.route(from, out);
                }
                let casts = self.node(from).get_broadcasts(2, 1400);
                for m in casts {
                    moved = true;
                    for to in &names {
                        if to != from && !self.deaf.contains(to) {
                            let now = self.now;
                            self.node(to).handle_message(from, &m, now);
                        }
                    }
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn route(&mut self, from: &str, out: Output) {
        let now = self.now;
        match out {
            Output::Send {
                id,
                to,
                data,
                reliable,
            } => {
                self.sent
                    .push((from.into(), to.clone(), data.clone(), reliable));
                if self.deaf.contains(&to) || !self.nodes.contains_key(&to) {
                    if reliable {
                        self.node(from)
                            .handle_send_result(id, Err("unreachable".into()), now);
                    }
                } else {
                    self.node(&to).handle_message(from, &data, now);
                }
            }
            Output::Watch(ev) => self.watch.entry(from.into()).or_default().push(ev),
            Output::Reconnect { node, .. } => self.reconnects.push((from.into(), node)),
        }
    }

    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(50);
            let now = self.now;
            for t in self.nodes.values_mut() {
                t.handle_timeout(now);
            }
            self.pump();
        }
    }

    fn join_all(&mut self, nid: &str) {
        let names: Vec<String> = self.nodes.keys().cloned().collect();
        for n in names {
            let now = self.now;
            self.node(&n).join_network(nid, now).unwrap();
            self.pump();
        }
        self.push_pull();
    }

    fn table(&self, n: &str, nid: &str, t: &str) -> Vec<(String, Vec<u8>)> {
        self.nodes[n]
            .list_table(nid, t)
            .into_iter()
            .map(|(k, e)| (k, e.value))
            .collect()
    }
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

/// Every table event inside a wrapped message (compounds and bulk syncs
/// opened).
fn table_events(data: &[u8]) -> Vec<TableEvent> {
    match codec::decode(data) {
        Ok(Decoded::Table { event, .. }) => vec![event],
        Ok(Decoded::Compound(parts)) => parts.iter().flat_map(|p| table_events(p)).collect(),
        Ok(Decoded::BulkSync(b)) => table_events(&b.payload),
        _ => vec![],
    }
}

#[test]
fn api_errors_name_the_bad_value() {
    let now = origin();
    let mut t = Tables::new(cfg("n1"), 1, now).unwrap();
    assert_eq!(
        t.create_entry("", "t", "k", vec![], now),
        Err(TablesError::EmptyName("network id"))
    );
    assert_eq!(
        t.create_entry("net", "", "k", vec![], now),
        Err(TablesError::EmptyName("table name"))
    );
    assert_eq!(
        t.create_entry("net", "t", "k", vec![], now),
        Err(TablesError::NotJoined("net".into()))
    );
    t.join_network("net", now).unwrap();
    assert_eq!(
        t.join_network("net", now),
        Err(TablesError::AlreadyJoined("net".into()))
    );
    t.create_entry("net", "t", "k", b"v".to_vec(), now).unwrap();
    assert!(matches!(
        t.create_entry("net", "t", "k", vec![], now),
        Err(TablesError::AlreadyExists { .. })
    ));
    assert!(matches!(
        t.update_entry("net", "t", "nope", vec![], now),
        Err(TablesError::NotFound { .. })
    ));
    let err = t
        .create_entry("net", "t", "big", vec![0; 1400], now)
        .unwrap_err();
    let TablesError::TooLarge { size, limit, .. } = err.clone() else {
        panic!("{err:?}")
    };
    assert!(size > limit && limit < 1400);
    assert!(err.to_string().contains(&limit.to_string()));
    // The largest value that fits is accepted and gossips in one packet.
    let fits = limit - (size - 1400);
    t.create_entry("net", "t", "big", vec![0; fits], now)
        .unwrap();
    t.delete_entry("net", "t", "k", now).unwrap();
    assert_eq!(t.get_entry("net", "t", "k"), None);
    assert!(matches!(
        t.delete_entry("net", "t", "k", now),
        Err(TablesError::NotFound { .. })
    ));
    // A tombstone can be created over.
    t.create_entry("net", "t", "k", b"again".to_vec(), now)
        .unwrap();
    t.leave_network("net", now).unwrap();
    assert_eq!(
        t.leave_network("net", now),
        Err(TablesError::NotJoined("net".into()))
    );
}

#[test]
fn tables_local_writes_bump_the_table_clock_and_notify_watchers() {
    let now = origin();
    let mut t = Tables::new(cfg("n1"), 1, now).unwrap();
    t.join_network("net", now).unwrap();
    let a = t.create_entry("net", "t", "k", b"1".to_vec(), now).unwrap();
    let b = t.update_entry("net", "t", "k", b"2".to_vec(), now).unwrap();
    let c = t.delete_entry("net", "t", "k", now).unwrap();
    assert!(a < b && b < c);
    let changes: Vec<Change> = std::iter::from_fn(|| t.poll_output())
        .filter_map(|o| match o {
            Output::Watch(w) => Some(w.change),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            Change::Created {
                value: b"1".to_vec()
            },
            Change::Updated {
                prev: b"1".to_vec(),
                value: b"2".to_vec()
            },
            Change::Deleted {
                prev: b"2".to_vec()
            },
        ]
    );
}

#[test]
fn tables_writes_gossip_to_all_members_and_deletes_follow() {
    let mut c = Cluster::new(&["n1", "n2", "n3"]);
    c.join_all("net");
    c.sent.clear();
    let now = c.now;
    c.node("n1")
        .create_entry("net", "t", "a", b"1".to_vec(), now)
        .unwrap();
    c.node("n2")
        .create_entry("net", "t", "b", b"2".to_vec(), now)
        .unwrap();
    c.run(Duration::from_secs(1));
    for n in ["n1", "n2", "n3"] {
        assert_eq!(c.table(n, "net", "t"), kv(&[("a", "1"), ("b", "2")]), "{n}");
    }
    // Reached by gossip, not bulk sync (the first periodic one is later).
    assert!(c.sent.iter().all(|(_, _, _, reliable)| !reliable));
    let ev = c.watch["n3"].iter().find(|w| w.key == "a").unwrap();
    assert_eq!(ev.owner, "n1");
    assert_eq!(
        ev.change,
        Change::Created {
            value: b"1".to_vec()
        }
    );

    let now = c.now;
    c.node("n3").delete_entry("net", "t", "a", now).unwrap();
    c.node("n3")
        .update_entry("net", "t", "b", b"3".to_vec(), now)
        .unwrap();
    c.run(Duration::from_secs(1));
    for n in ["n1", "n2", "n3"] {
        assert_eq!(c.table(n, "net", "t"), kv(&[("b", "3")]), "{n}");
        assert_eq!(c.nodes[n].stats().networks["net"].tombstones, 1);
    }
    // Tombstones are reaped after the entry reap interval, everywhere.
    c.run(Duration::from_secs(70));
    for n in ["n1", "n2", "n3"] {
        assert_eq!(c.nodes[n].stats().networks["net"].tombstones, 0, "{n}");
        assert_eq!(c.table(n, "net", "t"), kv(&[("b", "3")]));
    }
}

#[test]
fn tables_gossip_fits_the_packet_budget_and_goes_to_three_members() {
    let names = ["n1", "n2", "n3", "n4", "n5", "n6"];
    let mut c = Cluster::new(&names);
    c.join_all("net");
    c.sent.clear();
    let now = c.now;
    for i in 0..200 {
        c.node("n1")
            .create_entry("net", "t", &format!("key-{i:04}"), vec![b'x'; 40], now)
            .unwrap();
    }
    // One gossip round of n1.
    let next = c.nodes["n1"].poll_timeout().unwrap();
    let due = next.max(c.now + Duration::from_millis(200));
    c.node("n1").handle_timeout(due);
    let sends: Vec<Output> = std::iter::from_fn(|| c.node("n1").poll_output())
        .filter(|o| matches!(o, Output::Send { .. }))
        .collect();
    assert_eq!(sends.len(), 3, "fanout");
    for s in &sends {
        let Output::Send { data, reliable, .. } = s else {
            unreachable!()
        };
        assert!(!reliable);
        assert!(data.len() <= 1400, "{} bytes", data.len());
        assert!(data.len() > 1300, "budget used: {} bytes", data.len());
        assert!(table_events(data).len() > 10);
    }
    c.run(Duration::from_secs(10));
    for n in names {
        assert_eq!(c.nodes[n].list_table("net", "t").len(), 200, "{n}");
    }
}

#[test]
fn tables_conflicts_resolve_by_time_then_node_name_in_any_order() {
    let now = origin();
    let ev = |node: &str, v: &str| {
        codec::encode_table_event(&TableEvent {
            r#type: table_event::Type::Create as i32,
            l_time: 10,
            node_name: node.into(),
            network_id: "net".into(),
            table_name: "t".into(),
            key: "k".into(),
            value: v.as_bytes().to_vec(),
            residual_reap_time: 0,
        })
    };
    for order in [["a", "b"], ["b", "a"]] {
        let mut c = Cluster::new(&["me", "a", "b"]);
        c.join_all("net");
        for who in order {
            c.node("me").handle_message(who, &ev(who, who), now);
        }
        let e = c.nodes["me"].get_entry("net", "t", "k").unwrap();
        assert_eq!(
            (e.owner.as_str(), e.value.as_slice()),
            ("b", b"b".as_slice())
        );
    }
}

#[test]
fn tables_bulk_sync_on_join_brings_a_late_member_up_to_date() {
    let mut c = Cluster::new(&["n1", "n2", "n3"]);
    for n in ["n1", "n2"] {
        let now = c.now;
        c.node(n).join_network("net", now).unwrap();
    }
    c.pump();
    c.push_pull();
    let now = c.now;
    for i in 0..50 {
        c.node("n1")
            .create_entry("net", "t", &format!("k{i}"), b"v".to_vec(), now)
            .unwrap();
    }
    c.run(Duration::from_secs(2));
    let now = c.now;
    c.node("n2").delete_entry("net", "t", "k0", now).unwrap();
    c.run(Duration::from_secs(1));
    // n3 learns the attachments by push/pull, then joins.
    c.push_pull();
    c.sent.clear();
    let now = c.now;
    c.node("n3").join_network("net", now).unwrap();
    assert!(!c.nodes["n3"].stats().networks["net"].in_sync);
    c.pump();
    assert_eq!(c.table("n3", "net", "t").len(), 49);
    assert!(c.nodes["n3"].stats().networks["net"].in_sync);
    assert_eq!(c.nodes["n3"].stats().networks["net"].tombstones, 1);
    let unsolicited = c
        .sent
        .iter()
        .filter(|(from, _, data, rel)| {
            from == "n3"
                && *rel
                && matches!(codec::decode(data), Ok(Decoded::BulkSync(b)) if b.unsolicited)
        })
        .count();
    assert_eq!(unsolicited, 2, "one bulk sync to each member");
}

#[test]
fn tables_an_absent_peer_stalls_nothing() {
    let mut c = Cluster::new(&["n1", "n2", "n3"]);
    for n in ["n2", "n3"] {
        let now = c.now;
        c.node(n).join_network("net", now).unwrap();
    }
    c.pump();
    c.push_pull();
    // n2 cannot be reached: its bulk sync fails at once, n3's is answered,
    // and the join is in sync without waiting for anyone.
    c.deaf.insert("n2".into());
    let now = c.now;
    c.node("n1").join_network("net", now).unwrap();
    c.pump();
    let st = c.nodes["n1"].stats();
    assert_eq!((st.bulk_syncs_pending, st.bulk_sync_failures), (0, 1));
    assert!(st.networks["net"].in_sync);
    let now = c.now;
    c.node("n1")
        .create_entry("net", "t", "k", b"v".to_vec(), now)
        .unwrap();
    c.run(Duration::from_secs(1));
    assert_eq!(c.table("n3", "net", "t"), kv(&[("k", "v")]));

    // A sync whose answer never comes fails at its deadline; the network
    // still becomes in sync and the node keeps working meanwhile.
    let now = c.now;
    let mut t = Tables::new(cfg("solo"), 9, now).unwrap();
    t.member_joined("mute", addr(9), now);
    t.merge_remote_state(
        &codec::encode_push_pull(&proto::NetworkPushPull {
            l_time: 1,
            node_name: "mute".into(),
            networks: vec![proto::NetworkEntry {
                network_id: "net".into(),
                l_time: 1,
                node_name: "mute".into(),
                leaving: false,
            }],
        }),
        false,
        now,
    );
    t.join_network("net", now).unwrap();
    assert_eq!(t.stats().bulk_syncs_pending, 1);
    t.create_entry("net", "t", "k", b"v".to_vec(), now).unwrap();
    assert!(!t.stats().networks["net"].in_sync);
    let deadline = t.poll_timeout().unwrap();
    assert!(deadline <= now + Duration::from_secs(2));
    t.handle_timeout(now + Duration::from_secs(2));
    assert_eq!(t.stats().bulk_syncs_pending, 0);
    assert_eq!(t.stats().bulk_sync_failures, 1);
    assert!(t.stats().networks["net"].in_sync);
}

#[test]
fn tables_periodic_sync_tries_a_second_member_when_the_first_fails() {
    let mut c = Cluster::new(&["n1", "n2", "n3"]);
    c.join_all("net");
    c.pump();
    c.run(Duration::from_secs(1));
    c.deaf.insert("n2".into());
    c.deaf.insert("n3".into());
    c.sent.clear();
    // Run n1 alone past its periodic sync: both members get tried.
    let start = c.now;
    let mut now = start;
    let mut targets = BTreeSet::new();
    while now < start + Duration::from_secs(6) && targets.len() < 2 {
        now += Duration::from_millis(50);
        c.node("n1").handle_timeout(now);
        while let Some(out) = c.node("n1").poll_output() {
            if let Output::Send {
                id,
                to,
                reliable: true,
                ..
            } = out
            {
                targets.insert(to);
                c.node("n1")
                    .handle_send_result(id, Err("refused".into()), now);
            }
        }
    }
    assert_eq!(targets.len(), 2, "{targets:?}");
    assert_eq!(c.nodes["n1"].stats().bulk_sync_failures, 2);
}

#[test]
fn tables_failed_owner_entries_are_hidden_kept_restored_then_reaped() {
    let mut c = Cluster::new(&["n1", "n2"]);
    c.join_all("net");
    let now = c.now;
    c.node("n2")
        .create_entry("net", "t", "k", b"v".to_vec(), now)
        .unwrap();
    c.run(Duration::from_secs(1));
    assert_eq!(c.table("n1", "net", "t"), kv(&[("k", "v")]));
    c.watch.clear();
    c.sent.clear();

    // n2 fails: hidden (watchers see a delete), not dropped, no tombstone.
    c.deaf.insert("n2".into());
    let now = c.now;
    c.node("n1").member_failed("n2", now);
    c.pump();
    assert_eq!(c.nodes["n1"].get_entry("net", "t", "k"), None);
    let st = c.nodes["n1"].stats().networks["net"].clone();
    assert_eq!((st.entries, st.hidden, st.tombstones), (0, 1, 0));
    assert_eq!(
        c.watch["n1"][0].change,
        Change::Deleted {
            prev: b"v".to_vec()
        }
    );
    // Retried every second.
    c.run(Duration::from_secs(3));
    assert!(c.reconnects.iter().filter(|(_, n)| n == "n2").count() >= 2);
    // Nothing n1 sent while n2 was down deletes n2's entry.
    for (_, _, data, _) in &c.sent {
        for ev in table_events(data) {
            assert!(ev.r#type != table_event::Type::Delete as i32 || ev.node_name == "n1");
        }
    }

    // n2 returns: the entry shows again and n2 is bulk synced at once.
    c.deaf.clear();
    c.watch.clear();
    c.sent.clear();
    let now = c.now;
    c.node("n1").member_joined("n2", addr(1), now);
    c.node("n1").handle_reconnect_result("n2", true, now);
    c.pump();
    assert_eq!(c.table("n1", "net", "t"), kv(&[("k", "v")]));
    assert_eq!(
        c.watch["n1"][0].change,
        Change::Created {
            value: b"v".to_vec()
        }
    );
    assert!(c
        .sent
        .iter()
        .any(|(from, to, _, rel)| from == "n1" && to == "n2" && *rel));

    // Failed for good: kept until the node reap interval, then dropped.
    let now = c.now;
    c.node("n1").member_failed("n2", now);
    c.deaf.insert("n2".into());
    c.run(Duration::from_secs(300));
    assert_eq!(c.nodes["n1"].stats().networks["net"].hidden, 1);
    c.run(Duration::from_secs(310));
    let st = c.nodes["n1"].stats();
    assert_eq!(st.networks["net"].hidden, 0);
    assert_eq!(st.nodes_failed, 0);
}

#[test]
fn tables_a_left_node_entries_are_dropped_without_tombstones() {
    let mut c = Cluster::new(&["n1", "n2", "n3"]);
    c.join_all("net");
    let now = c.now;
    c.node("n2")
        .create_entry("net", "t", "k", b"v".to_vec(), now)
        .unwrap();
    c.run(Duration::from_secs(1));
    c.sent.clear();
    // n2 announces its leave; everyone drops its entries, none forges a
    // tombstone.
    c.node("n2").announce_leave();
    c.pump();
    for n in ["n1", "n3"] {
        assert_eq!(c.table(n, "net", "t"), vec![]);
        let st = &c.nodes[n].stats().networks["net"];
        assert_eq!((st.tombstones, st.hidden, st.peers), (0, 0, 2), "{n}");
    }
    for (_, _, data, _) in &c.sent {
        assert!(table_events(data).is_empty());
    }
}

#[test]
fn tables_network_leave_drops_the_members_entries_there() {
    let mut c = Cluster::new(&["n1", "n2"]);
    c.join_all("net");
    let now = c.now;
    c.node("n2")
        .create_entry("net", "t", "k", b"v".to_vec(), now)
        .unwrap();
    c.node("n1")
        .create_entry("net", "t", "mine", b"m".to_vec(), now)
        .unwrap();
    c.run(Duration::from_secs(1));
    let now = c.now;
    c.node("n2").leave_network("net", now).unwrap();
    c.pump();
    assert_eq!(c.table("n1", "net", "t"), kv(&[("mine", "m")]));
    assert_eq!(c.nodes["n1"].network_peers("net"), vec!["n1".to_string()]);
    // n2 keeps only tombstones of its own entries, then forgets the network.
    let st = c.nodes["n2"].stats().networks["net"].clone();
    assert_eq!((st.entries, st.tombstones, st.leaving), (0, 1, true));
    c.run(Duration::from_secs(100));
    assert!(c.nodes["n2"].stats().networks.is_empty());
    assert!(c.nodes["n2"].networks().is_empty());
}

#[test]
fn tables_owner_bulk_sync_drops_entries_it_no_longer_holds() {
    let mut c = Cluster::new(&["n1", "n2"]);
    c.join_all("net");
    let now = c.now;
    for k in ["a", "b"] {
        c.node("n2")
            .create_entry("net", "t", k, b"v".to_vec(), now)
            .unwrap();
    }
    c.run(Duration::from_secs(1));
    assert_eq!(c.table("n1", "net", "t").len(), 2);
    // n2's bulk sync lists only "b": "a" was deleted and reaped unheard.
    let b = c.nodes["n1"].get_entry("net", "t", "b").unwrap();
    let held = codec::encode_table_event(&TableEvent {
        r#type: table_event::Type::Create as i32,
        l_time: b.ltime,
        node_name: "n2".into(),
        network_id: "net".into(),
        table_name: "t".into(),
        key: "b".into(),
        value: b.value,
        residual_reap_time: 0,
    });
    let bsm = BulkSyncMessage {
        l_time: 1000,
        unsolicited: false,
        node_name: "n2".into(),
        networks: vec!["net".into()],
        payload: codec::encode_compound(&[held]),
    };
    let now = c.now;
    c.node("n1")
        .handle_message("n2", &codec::encode_bulk_sync(&bsm), now);
    assert_eq!(c.table("n1", "net", "t"), kv(&[("b", "v")]));
}

#[test]
fn tables_malformed_and_stale_input_changes_nothing() {
    let mut c = Cluster::new(&["n1", "n2"]);
    c.join_all("net");
    let now = c.now;
    let ltime = c
        .node("n2")
        .create_entry("net", "t", "k", b"new".to_vec(), now)
        .unwrap();
    c.run(Duration::from_secs(1));
    let stale = codec::encode_table_event(&TableEvent {
        r#type: table_event::Type::Update as i32,
        l_time: ltime - 1,
        node_name: "n2".into(),
        network_id: "net".into(),
        table_name: "t".into(),
        key: "k".into(),
        value: b"old".to_vec(),
        residual_reap_time: 0,
    });
    let now = c.now;
    c.node("n1").handle_message("n2", &stale, now);
    c.node("n1").handle_message("n2", &[0xff, 0x01, 0x02], now);
    c.node("n1").handle_message(
        "n2",
        &proto::GossipMessage {
            r#type: 2,
            data: vec![0xff],
        }
        .encode_to_vec(),
        now,
    );
    c.node("n1").handle_message(
        "n2",
        &codec::encode_raw(proto::MessageType::Invalid, vec![9]),
        now,
    );
    assert_eq!(c.table("n1", "net", "t"), kv(&[("k", "new")]));
    assert_eq!(c.nodes["n1"].stats().malformed, 2);
    // Events for networks we are not in, or from unattached nodes, are
    // neither kept nor relayed.
    let mut other =
        TableEvent::decode(&*proto::GossipMessage::decode(&*stale).unwrap().data).unwrap();
    other.l_time = ltime + 10;
    other.network_id = "elsewhere".into();
    c.node("n1")
        .handle_message("n2", &codec::encode_table_event(&other), now);
    other.network_id = "net".into();
    other.node_name = "stranger".into();
    c.node("n1")
        .handle_message("n2", &codec::encode_table_event(&other), now);
    assert_eq!(c.table("n1", "net", "t"), kv(&[("k", "new")]));
    assert_eq!(c.nodes["n1"].stats().networks["net"].queued_relays, 0);
}

#[test]
fn tables_a_new_incarnation_at_the_same_address_retires_the_old_one() {
    let mut c = Cluster::new(&["n1", "n2"]);
    c.join_all("net");
    let now = c.now;
    c.node("n2")
        .create_entry("net", "t", "k", b"v".to_vec(), now)
        .unwrap();
    c.run(Duration::from_secs(1));
    let now = c.now;
    c.node("n1").member_failed("n2", now);
    c.node("n1").member_joined("n2-restarted", addr(1), now);
    let st = c.nodes["n1"].stats();
    assert_eq!((st.nodes_left, st.nodes_failed), (1, 0));
    assert_eq!(st.networks["net"].hidden, 0);
}

#[test]
fn tables_tombstones_are_taken_from_unknown_writers_live_entries_are_not() {
    let mut c = Cluster::new(&["n1", "n2"]);
    c.join_all("net");
    let now = c.now;
    let ltime = c
        .node("n2")
        .create_entry("net", "t", "k", b"v".to_vec(), now)
        .unwrap();
    c.run(Duration::from_secs(1));
    let ev = |kind: table_event::Type, key: &str| {
        codec::encode_table_event(&TableEvent {
            r#type: kind as i32,
            l_time: ltime + 5,
            node_name: "ghost".into(),
            network_id: "net".into(),
            table_name: "t".into(),
            key: key.into(),
            value: vec![],
            residual_reap_time: 100,
        })
    };
    let now = c.now;
    c.node("n1")
        .handle_message("n2", &ev(table_event::Type::Create, "other"), now);
    c.node("n1")
        .handle_message("n2", &ev(table_event::Type::Delete, "k"), now);
    assert_eq!(c.table("n1", "net", "t"), vec![]);
    assert_eq!(c.nodes["n1"].stats().networks["net"].tombstones, 1);
}

#[test]
fn tables_deep_nesting_is_dropped_not_recursed() {
    let now = origin();
    let mut t = Tables::new(cfg("n1"), 1, now).unwrap();
    let mut msg = codec::encode_node_event(&proto::NodeEvent {
        r#type: 1,
        l_time: 1,
        node_name: "x".into(),
    });
    for _ in 0..200 {
        msg = codec::encode_compound(&[msg]);
    }
    t.handle_message("x", &msg, now);
    assert_eq!(t.stats().malformed, 1);
}

/// A bulk sync carries entries hidden at the sender with their owner's
/// residual reap time. A node that never knew the owner keeps them hidden
/// too (so a write of its own at a lower Lamport time cannot diverge from
/// the older replicas), for that residual time only; gossip, a create
/// without a residual time, and an owner that left are still refused.
#[test]
fn tables_a_failed_owners_entries_reach_nodes_that_never_knew_it_hidden() {
    let mut c = Cluster::new(&["n1", "n2", "n3"]);
    c.join_all("net");
    let now = c.now;
    let mine = c
        .node("n1")
        .create_entry("net", "t", "k", b"mine".to_vec(), now)
        .unwrap();
    let ev = |node: &str, key: &str, residual_reap_time: i32| {
        codec::encode_table_event(&TableEvent {
            r#type: table_event::Type::Create as i32,
            l_time: mine + 50,
            node_name: node.into(),
            network_id: "net".into(),
            table_name: "t".into(),
            key: key.into(),
            value: b"ghost".to_vec(),
            residual_reap_time,
        })
    };
    let bulk = |from: &str, parts: Vec<Vec<u8>>| {
        codec::encode_bulk_sync(&BulkSyncMessage {
            l_time: mine + 60,
            unsolicited: false,
            node_name: from.into(),
            networks: vec!["net".into()],
            payload: codec::encode_compound(&parts),
        })
    };
    let now = c.now;
    // Gossip never adopts an unknown owner.
    c.node("n1")
        .handle_message("n2", &ev("ghost", "k", 100), now);
    assert_eq!(c.table("n1", "net", "t"), kv(&[("k", "mine")]));
    // Nor a bulk sync without a residual time (the sender holds the owner
    // alive: its attachment arrives with its network events).
    let msg = bulk("n2", vec![ev("ghost", "k0", 0)]);
    c.node("n1").handle_message("n2", &msg, now);
    assert_eq!(c.nodes["n1"].stats().nodes_failed, 0);
    // A bulk sync with one does, hidden, and its later Lamport time wins.
    // (A residual past our own node reap interval is cut to it.)
    let msg = bulk(
        "n2",
        vec![
            ev("ghost", "k", 100),
            ev("ghost", "k3", 100),
            ev("ghost2", "k4", i32::MAX),
        ],
    );
    c.node("n1").handle_message("n2", &msg, now);
    let st = c.nodes["n1"].stats();
    assert_eq!(c.table("n1", "net", "t"), vec![]);
    assert_eq!((st.networks["net"].hidden, st.nodes_failed), (3, 2));
    // Its own bulk syncs pass them on, with what is left of the time.
    let sent_before = c.sent.len();
    c.node("n1").member_failed("n3", now);
    c.node("n1").member_joined("n3", addr(2), now);
    c.pump();
    let carried: Vec<TableEvent> = c.sent[sent_before..]
        .iter()
        .filter(|(from, to, _, _)| from == "n1" && to == "n3")
        .filter_map(|(_, _, b, _)| match codec::decode(b) {
            Ok(Decoded::BulkSync(bsm)) => Some(bsm),
            _ => None,
        })
        .flat_map(|bsm| match codec::decode(&bsm.payload) {
            Ok(Decoded::Compound(parts)) => parts,
            _ => vec![],
        })
        .filter_map(|p| match codec::decode(&p) {
            Ok(Decoded::Table { event, .. }) if event.node_name == "ghost" => Some(event),
            _ => None,
        })
        .collect();
    assert_eq!(carried.len(), 2, "{carried:?}");
    assert!(carried
        .iter()
        .all(|e| (1..=100).contains(&e.residual_reap_time)));
    // The key is free to write again, above the witnessed time.
    let now = c.now;
    let again = c
        .node("n1")
        .create_entry("net", "t", "k", b"again".to_vec(), now)
        .unwrap();
    assert!(again > mine + 50);
    // Gone when the sender's residual time runs out, not 24 h later.
    c.run(Duration::from_secs(110));
    let st = c.nodes["n1"].stats();
    assert_eq!((st.networks["net"].hidden, st.nodes_failed), (1, 1));
    assert_eq!(c.table("n1", "net", "t"), kv(&[("k", "again")]));
    c.run(Duration::from_secs(500));
    let st = c.nodes["n1"].stats();
    assert_eq!((st.networks["net"].hidden, st.nodes_failed), (0, 0));
    // An owner that left is not brought back.
    let now = c.now;
    c.node("n1").member_left("n2", now);
    let msg = bulk("n3", vec![ev("n2", "k2", 100)]);
    c.node("n1").handle_message("n3", &msg, now);
    assert_eq!(c.nodes["n1"].stats().networks["net"].hidden, 0);
    assert_eq!(c.table("n1", "net", "t"), kv(&[("k", "again")]));
}

#[test]
fn config_errors_name_the_setting_and_value() {
    let mut c = cfg("n1");
    c.packet_budget = 100;
    let err = c.validate().unwrap_err();
    assert_eq!(err, super::ConfigError::PacketBudget(100));
    assert!(
        err.to_string().contains("packet_budget is 100 bytes"),
        "{err}"
    );
    let mut c = cfg("n1");
    c.reap_period = std::time::Duration::ZERO;
    assert_eq!(
        c.validate().unwrap_err(),
        super::ConfigError::ZeroDuration("reap_period")
    );
    assert!(matches!(
        Tables::new(cfg(""), 1, origin()),
        Err(super::ConfigError::EmptyNodeName)
    ));
}
