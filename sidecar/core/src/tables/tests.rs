//! Tests of the tables: whole nodes (membership and tables, as production
//! composes them) in the deterministic simulator, and unit tests that feed
//! one lone core its inputs and read its outputs directly.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use prost::Message;

use super::codec::{self, Decoded};
use super::proto::{self, table_event, BulkSyncMessage, TableEvent};
use super::*;
use crate::node::Node;
use crate::sim::{addr_of, LinkModel, NodeConfig, Sim, SimConfig};

#[allow(clippy::disallowed_methods)] // the virtual-time origin
fn origin() -> Instant {
    Instant::now()
}

fn cfg(name: &str) -> Config {
    let mut c = Config::new(name);
    short_intervals(&mut c);
    c
}

/// Bulk syncs every 5 s (2 s to answer), tombstones reaped after 60 s,
/// failed nodes after 10 minutes.
fn short_intervals(c: &mut Config) {
    c.bulk_sync_interval = Duration::from_secs(5);
    c.bulk_sync_timeout = Duration::from_secs(2);
    c.reap_entry_interval = Duration::from_secs(60);
    c.node_reap_interval = Duration::from_secs(600);
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// `n` nodes, n0 to n(n-1), started converged (every one a member of every
/// other's tables), on `link`.
fn cluster(n: usize, link: LinkModel) -> Sim<Node> {
    cluster_with(n, link, short_intervals)
}

/// As [`cluster`], the tables configured by `tables`.
fn cluster_with(n: usize, link: LinkModel, tables: fn(&mut Config)) -> Sim<Node> {
    let mut c = SimConfig::lan(n, 1);
    c.link = link;
    Sim::configured(c, origin(), move |_, c: &mut NodeConfig| {
        tables(&mut c.tables)
    })
    .unwrap()
}

/// Every node joins `nid`; their network events spread for a second.
fn join_all(sim: &mut Sim<Node>, nid: &str) {
    for i in 0..sim.len() {
        sim.with_tables(i, |t, now| t.join_network(nid, now))
            .unwrap();
    }
    sim.run_for(secs(1));
}

fn table(sim: &Sim<Node>, i: usize, nid: &str, t: &str) -> Vec<(String, Vec<u8>)> {
    listed(sim.tables(i), nid, t)
}

fn listed(tables: &Tables, nid: &str, t: &str) -> Vec<(String, Vec<u8>)> {
    tables
        .list_table(nid, t)
        .into_iter()
        .map(|(k, e)| (k, e.value))
        .collect()
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

/// A lone core named `name` in network "net", told (as membership and a
/// push/pull would) that `peers` are members attached to "net" too; the
/// join's bulk syncs are drained and left unanswered.
fn lone(name: &str, peers: &[&str], now: Instant) -> Tables {
    let mut t = Tables::new(cfg(name), 9, now).unwrap();
    for (i, p) in peers.iter().enumerate() {
        t.member_joined(p, addr_of(i + 1), now);
        t.merge_remote_state(
            &codec::encode_push_pull(&proto::NetworkPushPull {
                l_time: 1,
                node_name: p.to_string(),
                networks: vec![proto::NetworkEntry {
                    network_id: "net".into(),
                    l_time: 1,
                    node_name: p.to_string(),
                    leaving: false,
                }],
            }),
            false,
            now,
        );
    }
    t.join_network("net", now).unwrap();
    while t.poll_output().is_some() {}
    t
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
    // Periodic bulk syncs every 30 s (the default): none in the first
    // seconds, so what arrives then came by gossip.
    let mut sim = cluster_with(3, LinkModel::default(), |c| {
        short_intervals(c);
        c.bulk_sync_interval = Duration::from_secs(30);
    });
    join_all(&mut sim, "net");
    let synced: Vec<u64> = (0..3)
        .map(|i| sim.tables(i).stats().bulk_syncs_sent)
        .collect();
    sim.with_tables(0, |t, now| {
        t.create_entry("net", "t", "a", b"1".to_vec(), now)
    })
    .unwrap();
    sim.with_tables(1, |t, now| {
        t.create_entry("net", "t", "b", b"2".to_vec(), now)
    })
    .unwrap();
    sim.run_for(secs(1));
    for (i, synced) in synced.into_iter().enumerate() {
        assert_eq!(
            table(&sim, i, "net", "t"),
            kv(&[("a", "1"), ("b", "2")]),
            "n{i}"
        );
        // Reached by gossip, not bulk sync.
        assert_eq!(sim.tables(i).stats().bulk_syncs_sent, synced, "n{i}");
    }
    let (_, _, ev) = sim
        .watch_events()
        .iter()
        .find(|(_, i, w)| *i == 2 && w.key == "a")
        .unwrap();
    assert_eq!(ev.owner, "n0");
    assert_eq!(
        ev.change,
        Change::Created {
            value: b"1".to_vec()
        }
    );

    sim.with_tables(2, |t, now| {
        t.delete_entry("net", "t", "a", now)?;
        t.update_entry("net", "t", "b", b"3".to_vec(), now)
    })
    .unwrap();
    sim.run_for(secs(1));
    for i in 0..3 {
        assert_eq!(table(&sim, i, "net", "t"), kv(&[("b", "3")]), "n{i}");
        assert_eq!(sim.tables(i).stats().networks["net"].tombstones, 1);
    }
    // Tombstones are reaped after the entry reap interval, everywhere.
    sim.run_for(secs(70));
    for i in 0..3 {
        assert_eq!(sim.tables(i).stats().networks["net"].tombstones, 0, "n{i}");
        assert_eq!(table(&sim, i, "net", "t"), kv(&[("b", "3")]));
    }
}

#[test]
fn tables_gossip_fits_the_packet_budget_and_goes_to_three_members() {
    // One gossip round of a lone core with 200 entries to tell 5 peers;
    // then the same with eager pushes, whose first one comes 10 ms after
    // the writes and packs one compound as full as a gossip round's.
    for eager in [false, true] {
        let now = origin();
        let mut t = lone("n0", &["n1", "n2", "n3", "n4", "n5"], now);
        if !eager {
            t.cfg.eager_push = None;
        }
        for i in 0..200 {
            t.create_entry("net", "t", &format!("key-{i:04}"), vec![b'x'; 40], now)
                .unwrap();
        }
        let next = t.poll_timeout().unwrap();
        let due = if eager {
            assert_eq!(next, now + crate::tables::EAGER_PUSH_DELAY);
            next
        } else {
            next.max(now + Duration::from_millis(200))
        };
        t.handle_timeout(due);
        let sends: Vec<Output> = std::iter::from_fn(|| t.poll_output())
            .filter(|o| matches!(o, Output::Send { .. }))
            .collect();
        check_round(&sends);
        if eager {
            // The rest of the 200 waits for the next window.
            let next = t.poll_timeout().unwrap();
            assert!(next <= due + crate::tables::EAGER_PUSH_DELAY);
        }
    }
    // In a cluster, round after round, every member gets all 200.
    let mut sim = cluster(6, LinkModel::default());
    join_all(&mut sim, "net");
    sim.with_tables(0, |t, now| {
        for i in 0..200 {
            t.create_entry("net", "t", &format!("key-{i:04}"), vec![b'x'; 40], now)
                .unwrap();
        }
    });
    sim.run_for(secs(10));
    for i in 0..6 {
        assert_eq!(sim.tables(i).list_table("net", "t").len(), 200, "n{i}");
    }
}

/// Three sends of one compound within the packet budget, nearly full.
fn check_round(sends: &[Output]) {
    assert_eq!(sends.len(), 3, "fanout");
    for s in sends {
        let Output::Send { data, reliable, .. } = s else {
            unreachable!()
        };
        assert!(!reliable);
        assert!(data.len() <= 1400, "{} bytes", data.len());
        assert!(data.len() > 1300, "budget used: {} bytes", data.len());
        assert!(table_events(data).len() > 10);
    }
}

#[test]
fn tables_conflicts_resolve_by_time_then_node_name_in_any_order() {
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
    for order in [["n1", "n2"], ["n2", "n1"]] {
        let mut sim = cluster(3, LinkModel::default());
        join_all(&mut sim, "net");
        for who in order {
            sim.with_tables(0, |t, now| t.handle_message(who, &ev(who, who), now));
        }
        let e = sim.tables(0).get_entry("net", "t", "k").unwrap();
        assert_eq!(
            (e.owner.as_str(), e.value.as_slice()),
            ("n2", b"n2".as_slice())
        );
    }
}

#[test]
fn tables_bulk_sync_on_join_brings_a_late_member_up_to_date() {
    // Instant links: the join's bulk syncs complete as the join is made.
    let mut sim = cluster(3, LinkModel::instant());
    for i in [0, 1] {
        sim.with_tables(i, |t, now| t.join_network("net", now))
            .unwrap();
    }
    sim.run_for(secs(1));
    sim.with_tables(0, |t, now| {
        for i in 0..50 {
            t.create_entry("net", "t", &format!("k{i}"), b"v".to_vec(), now)
                .unwrap();
        }
    });
    sim.run_for(secs(2));
    sim.with_tables(1, |t, now| t.delete_entry("net", "t", "k0", now))
        .unwrap();
    sim.run_for(secs(1));
    // n2 learned the attachments from membership's gossip; now it joins.
    let sent = sim.tables(2).stats().bulk_syncs_sent;
    sim.with_tables(2, |t, now| t.join_network("net", now))
        .unwrap();
    assert!(!sim.tables(2).stats().networks["net"].in_sync);
    sim.settle();
    let st = sim.tables(2).stats();
    assert_eq!(table(&sim, 2, "net", "t").len(), 49);
    assert!(st.networks["net"].in_sync);
    assert_eq!(st.networks["net"].tombstones, 1);
    assert_eq!(st.bulk_syncs_sent - sent, 2, "one bulk sync to each member");
}

#[test]
fn tables_an_absent_peer_stalls_nothing() {
    let mut sim = cluster(3, LinkModel::default());
    for i in [1, 2] {
        sim.with_tables(i, |t, now| t.join_network("net", now))
            .unwrap();
    }
    sim.run_for(secs(1));
    // n1 cannot be reached: its bulk sync fails at its deadline (2 s), n2's
    // is answered, and the join is in sync without waiting for n1 any
    // longer; membership has not declared n1 dead yet.
    sim.crash(1);
    sim.with_tables(0, |t, now| t.join_network("net", now))
        .unwrap();
    sim.run_for(Duration::from_millis(2100));
    assert!(
        sim.status(0, 1).is_some_and(|s| !s.is_gone()),
        "{:?}",
        sim.status(0, 1)
    );
    let st = sim.tables(0).stats();
    assert_eq!((st.bulk_syncs_pending, st.bulk_sync_failures), (0, 1));
    assert!(st.networks["net"].in_sync);
    sim.with_tables(0, |t, now| {
        t.create_entry("net", "t", "k", b"v".to_vec(), now)
    })
    .unwrap();
    sim.run_for(secs(1));
    assert_eq!(table(&sim, 2, "net", "t"), kv(&[("k", "v")]));

    // A lone core:
    // A sync whose answer never comes fails at its deadline; the network
    // still becomes in sync and the node keeps working meanwhile.
    let now = origin();
    let mut t = Tables::new(cfg("solo"), 9, now).unwrap();
    t.member_joined("mute", addr_of(9), now);
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

/// A lone core, timer by timer, its sends failing as they are made: the
/// choice of the second member is the core's own.
#[test]
fn tables_periodic_sync_tries_a_second_member_when_the_first_fails() {
    let start = origin();
    let mut t = lone("n0", &["n1", "n2"], start);
    // The join's bulk syncs never come back.
    t.handle_timeout(start + secs(2));
    while t.poll_output().is_some() {}
    let failed = t.stats().bulk_sync_failures;
    // Run past the periodic sync: both members get tried.
    let mut now = start + secs(2);
    let mut targets = BTreeSet::new();
    while now < start + secs(8) && targets.len() < 2 {
        now += Duration::from_millis(50);
        t.handle_timeout(now);
        while let Some(out) = t.poll_output() {
            if let Output::Send {
                id,
                to,
                reliable: true,
                ..
            } = out
            {
                targets.insert(to);
                t.handle_send_result(id, Err("refused".into()), now);
            }
        }
    }
    assert_eq!(targets.len(), 2, "{targets:?}");
    assert_eq!(t.stats().bulk_sync_failures - failed, 2);
}

#[test]
fn tables_failed_owner_entries_are_hidden_kept_restored_then_reaped() {
    let mut sim = cluster(2, LinkModel::default());
    join_all(&mut sim, "net");
    sim.with_tables(1, |t, now| {
        t.create_entry("net", "t", "k", b"v".to_vec(), now)
    })
    .unwrap();
    sim.run_for(secs(1));
    assert_eq!(table(&sim, 0, "net", "t"), kv(&[("k", "v")]));
    sim.take_watch_events();

    // n1 is cut off: membership declares it dead; n0 hides its entry
    // (watchers see a delete), keeps it, and makes no tombstone.
    sim.isolate(1);
    sim.run_for(secs(10));
    assert_eq!(sim.status(0, 1), Some(crate::membership::NodeStatus::Dead));
    // Membership forgets it after gossip to the dead (30 s); the tables
    // keep it, failed.
    sim.run_for(secs(30));
    assert_eq!(sim.status(0, 1), None);
    assert_eq!(sim.tables(0).get_entry("net", "t", "k"), None);
    let st = sim.tables(0).stats().networks["net"].clone();
    assert_eq!((st.entries, st.hidden, st.tombstones), (0, 1, 0));
    let n0: Vec<Change> = sim
        .take_watch_events()
        .into_iter()
        .filter(|(_, i, _)| *i == 0)
        .map(|(_, _, w)| w.change)
        .collect();
    assert_eq!(
        n0,
        vec![Change::Deleted {
            prev: b"v".to_vec()
        }]
    );

    // The cut heals after gossip to the dead stopped (30 s): only the
    // tables' reconnect, retried every second, brings n1 back. The entry
    // shows again and n0 bulk syncs n1 at once.
    let synced = sim.tables(0).stats().bulk_syncs_sent;
    sim.heal();
    sim.run_for(secs(3));
    assert_eq!(table(&sim, 0, "net", "t"), kv(&[("k", "v")]));
    let n0: Vec<Change> = sim
        .take_watch_events()
        .into_iter()
        .filter(|(_, i, _)| *i == 0)
        .map(|(_, _, w)| w.change)
        .collect();
    assert_eq!(
        n0,
        vec![Change::Created {
            value: b"v".to_vec()
        }]
    );
    assert!(sim.tables(0).stats().bulk_syncs_sent > synced);
    // Nothing n0 sent while n1 was down deleted n1's entry.
    assert_eq!(table(&sim, 1, "net", "t"), kv(&[("k", "v")]));
    for i in 0..2 {
        assert_eq!(sim.tables(i).stats().networks["net"].tombstones, 0, "n{i}");
    }

    // Failed for good: kept until the node reap interval, then dropped.
    sim.crash(1);
    sim.run_for(secs(300));
    assert_eq!(sim.tables(0).stats().networks["net"].hidden, 1);
    sim.run_for(secs(320));
    let st = sim.tables(0).stats();
    assert_eq!(st.networks["net"].hidden, 0);
    assert_eq!(st.nodes_failed, 0);
}

#[test]
fn tables_a_left_node_entries_are_dropped_without_tombstones() {
    let mut sim = cluster(3, LinkModel::default());
    join_all(&mut sim, "net");
    sim.with_tables(1, |t, now| {
        t.create_entry("net", "t", "k", b"v".to_vec(), now)
    })
    .unwrap();
    sim.run_for(secs(1));
    // n1 leaves (the tables announce it); everyone drops its entries, and
    // none forges a tombstone (it would be held, and gossiped, here).
    sim.command(1, |n, now| n.leave(secs(1), now));
    sim.run_for(secs(2));
    for i in [0, 2] {
        assert_eq!(table(&sim, i, "net", "t"), vec![]);
        let st = &sim.tables(i).stats().networks["net"];
        assert_eq!((st.tombstones, st.hidden, st.peers), (0, 0, 2), "n{i}");
    }
}

#[test]
fn tables_network_leave_drops_the_members_entries_there() {
    let mut sim = cluster(2, LinkModel::default());
    join_all(&mut sim, "net");
    sim.with_tables(1, |t, now| {
        t.create_entry("net", "t", "k", b"v".to_vec(), now)
    })
    .unwrap();
    sim.with_tables(0, |t, now| {
        t.create_entry("net", "t", "mine", b"m".to_vec(), now)
    })
    .unwrap();
    sim.run_for(secs(1));
    sim.with_tables(1, |t, now| t.leave_network("net", now))
        .unwrap();
    sim.run_for(secs(1));
    assert_eq!(table(&sim, 0, "net", "t"), kv(&[("mine", "m")]));
    assert_eq!(sim.tables(0).network_peers("net"), vec!["n0".to_string()]);
    // n1 keeps only tombstones of its own entries, then forgets the network.
    let st = sim.tables(1).stats().networks["net"].clone();
    assert_eq!((st.entries, st.tombstones, st.leaving), (0, 1, true));
    sim.run_for(secs(100));
    assert!(sim.tables(1).stats().networks.is_empty());
    assert!(sim.tables(1).networks().is_empty());
}

/// The network events among the messages `get_broadcasts` hands out: node
/// and Lamport time, sorted.
fn network_joins(t: &mut Tables) -> Vec<(String, u64)> {
    let mut evs: Vec<(String, u64)> = t
        .get_broadcasts(0, 64 * 1024)
        .iter()
        .filter_map(|m| match codec::decode(m) {
            Ok(Decoded::Network(ev)) => Some((ev.node_name, ev.l_time)),
            _ => None,
        })
        .collect();
    evs.sort();
    evs
}

/// Push/pull state from `from` listing `attached` (node, Lamport time) in
/// "net".
fn push_pull(from: &str, attached: &[(&str, u64)]) -> Vec<u8> {
    codec::encode_push_pull(&proto::NetworkPushPull {
        l_time: 1,
        node_name: from.into(),
        networks: attached
            .iter()
            .map(|(node, l_time)| proto::NetworkEntry {
                network_id: "net".into(),
                l_time: *l_time,
                node_name: node.to_string(),
                leaving: false,
            })
            .collect(),
    })
}

#[test]
fn tables_news_from_a_push_pull_is_gossiped_on() {
    let now = origin();
    let mut t = lone("a", &["b"], now);
    for (i, p) in ["c", "d", "e"].iter().enumerate() {
        t.member_joined(p, addr_of(i + 3), now);
    }
    while !network_joins(&mut t).is_empty() {}
    // A periodic (or catch-up) push/pull: every attachment new here is
    // relayed, the known one is not.
    t.merge_remote_state(&push_pull("b", &[("b", 1), ("c", 2), ("d", 2)]), false, now);
    assert_eq!(
        network_joins(&mut t),
        vec![("c".into(), 2), ("d".into(), 2)]
    );
    while !network_joins(&mut t).is_empty() {}
    // A join's push/pull: only the sender's own attachment.
    t.merge_remote_state(&push_pull("b", &[("b", 4), ("e", 2)]), true, now);
    assert_eq!(network_joins(&mut t), vec![("b".into(), 4)]);
    assert!(t.network_peers("net").contains(&"e".to_string()));

    // libnetwork's way (`memberlist_exact`): learned, not relayed.
    let mut t = Tables::new(
        Config {
            relay_push_pull_news: false,
            ..cfg("a")
        },
        9,
        now,
    )
    .unwrap();
    t.member_joined("b", addr_of(2), now);
    t.join_network("net", now).unwrap();
    while !network_joins(&mut t).is_empty() {}
    t.merge_remote_state(&push_pull("b", &[("b", 1)]), false, now);
    assert_eq!(t.network_peers("net"), vec!["a", "b"]);
    assert!(network_joins(&mut t).is_empty());
}

#[test]
fn tables_a_network_joined_before_the_cluster_is_gossiped_at_the_joins_time() {
    let now = origin();
    let mut t = Tables::new(cfg("a"), 9, now).unwrap();
    t.join_network("net", now).unwrap();
    // The join's push/pull moves the attachment's time forward (as
    // libnetwork); the queued event, not sent yet, follows it.
    let state = t.local_state(true);
    let Ok(Decoded::PushPull(pp)) = codec::decode(&state) else {
        panic!("push/pull state");
    };
    let sent = pp.networks[0].l_time;
    assert!(sent > 1);
    t.member_joined("b", addr_of(2), now);
    assert_eq!(network_joins(&mut t), vec![("a".into(), sent)]);
    // Once gossip has sent it, a later join's push/pull queues nothing.
    while !network_joins(&mut t).is_empty() {}
    t.local_state(true);
    assert!(network_joins(&mut t).is_empty());
}

fn network_event(kind: proto::network_event::Type, node: &str, ltime: u64) -> Vec<u8> {
    codec::encode_network_event(&proto::NetworkEvent {
        r#type: kind as i32,
        l_time: ltime,
        node_name: node.into(),
        network_id: "net".into(),
    })
}

#[test]
fn tables_a_network_join_that_beats_the_members_alive_is_held_until_it() {
    use proto::network_event::Type::{Join, Leave};
    let now = origin();
    let peers = |t: &Tables| t.network_peers("net");
    let mut t = lone("a", &["b"], now);
    while !network_joins(&mut t).is_empty() {}
    // c's join arrives before memberlist reports c: nothing changes yet.
    assert!(t.handle_message("b", &network_event(Join, "c", 5), now));
    assert_eq!(peers(&t), vec!["a", "b"]);
    assert!(network_joins(&mut t).is_empty());
    // Memberlist reports c: the join applies and is relayed.
    t.member_joined("c", addr_of(3), now + secs(2));
    assert_eq!(peers(&t), vec!["a", "b", "c"]);
    assert_eq!(network_joins(&mut t), vec![("c".to_string(), 5)]);

    // Held no longer than the hold: d's join is forgotten after 30 s.
    t.handle_message("b", &network_event(Join, "d", 6), now);
    t.handle_timeout(now + secs(31));
    t.member_joined("d", addr_of(4), now + secs(31));
    assert_eq!(peers(&t), vec!["a", "b", "c"]);
    // A leave of an attachment never seen, or a join of a member that
    // left, is not held.
    t.handle_message("b", &network_event(Leave, "e", 7), now + secs(31));
    t.member_joined("e", addr_of(5), now + secs(31));
    t.member_left("c", now + secs(31));
    t.handle_message("b", &network_event(Join, "c", 9), now + secs(31));
    t.member_joined("c", addr_of(3), now + secs(32));
    assert_eq!(peers(&t), vec!["a", "b"]);

    // With the hold off (`memberlist_exact`), libnetwork's drop.
    let mut t = Tables::new(
        Config {
            hold_early_joins: None,
            ..cfg("a")
        },
        9,
        now,
    )
    .unwrap();
    t.join_network("net", now).unwrap();
    t.handle_message("b", &network_event(Join, "b", 5), now);
    t.member_joined("b", addr_of(2), now);
    assert_eq!(peers(&t), vec!["a"]);
}

#[test]
fn tables_owner_bulk_sync_drops_entries_it_no_longer_holds() {
    let mut sim = cluster(2, LinkModel::default());
    join_all(&mut sim, "net");
    sim.with_tables(1, |t, now| {
        for k in ["a", "b"] {
            t.create_entry("net", "t", k, b"v".to_vec(), now).unwrap();
        }
    });
    sim.run_for(secs(1));
    assert_eq!(table(&sim, 0, "net", "t").len(), 2);
    // n1's bulk sync lists only "b": "a" was deleted and reaped unheard.
    let b = sim.tables(0).get_entry("net", "t", "b").unwrap();
    let held = codec::encode_table_event(&TableEvent {
        r#type: table_event::Type::Create as i32,
        l_time: b.ltime,
        node_name: "n1".into(),
        network_id: "net".into(),
        table_name: "t".into(),
        key: "b".into(),
        value: b.value,
        residual_reap_time: 0,
    });
    let bsm = BulkSyncMessage {
        l_time: 1000,
        unsolicited: false,
        node_name: "n1".into(),
        networks: vec!["net".into()],
        payload: codec::encode_compound(&[held]),
    };
    sim.with_tables(0, |t, now| {
        t.handle_message("n1", &codec::encode_bulk_sync(&bsm), now)
    });
    assert_eq!(table(&sim, 0, "net", "t"), kv(&[("b", "v")]));
}

#[test]
fn tables_malformed_and_stale_input_changes_nothing() {
    let mut sim = cluster(2, LinkModel::default());
    join_all(&mut sim, "net");
    let ltime = sim
        .with_tables(1, |t, now| {
            t.create_entry("net", "t", "k", b"new".to_vec(), now)
        })
        .unwrap();
    sim.run_for(secs(1));
    let stale = codec::encode_table_event(&TableEvent {
        r#type: table_event::Type::Update as i32,
        l_time: ltime - 1,
        node_name: "n1".into(),
        network_id: "net".into(),
        table_name: "t".into(),
        key: "k".into(),
        value: b"old".to_vec(),
        residual_reap_time: 0,
    });
    sim.with_tables(0, |t, now| {
        t.handle_message("n1", &stale, now);
        t.handle_message("n1", &[0xff, 0x01, 0x02], now);
        t.handle_message(
            "n1",
            &proto::GossipMessage {
                r#type: 2,
                data: vec![0xff],
            }
            .encode_to_vec(),
            now,
        );
        t.handle_message(
            "n1",
            &codec::encode_raw(proto::MessageType::Invalid, vec![9]),
            now,
        );
    });
    assert_eq!(table(&sim, 0, "net", "t"), kv(&[("k", "new")]));
    assert_eq!(sim.tables(0).stats().malformed, 2);
    // Events for networks we are not in, or from unattached nodes, are
    // neither kept nor relayed.
    let mut other =
        TableEvent::decode(&*proto::GossipMessage::decode(&*stale).unwrap().data).unwrap();
    other.l_time = ltime + 10;
    other.network_id = "elsewhere".into();
    let elsewhere = codec::encode_table_event(&other);
    other.network_id = "net".into();
    other.node_name = "stranger".into();
    let stranger = codec::encode_table_event(&other);
    sim.with_tables(0, |t, now| {
        t.handle_message("n1", &elsewhere, now);
        t.handle_message("n1", &stranger, now);
    });
    assert_eq!(table(&sim, 0, "net", "t"), kv(&[("k", "new")]));
    assert_eq!(sim.tables(0).stats().networks["net"].queued_relays, 0);
}

/// Membership's reports fed to n0's tables directly: n1 failed, and a
/// node of another name joined at its address.
#[test]
fn tables_a_new_incarnation_at_the_same_address_retires_the_old_one() {
    let mut sim = cluster(2, LinkModel::default());
    join_all(&mut sim, "net");
    sim.with_tables(1, |t, now| {
        t.create_entry("net", "t", "k", b"v".to_vec(), now)
    })
    .unwrap();
    sim.run_for(secs(1));
    sim.with_tables(0, |t, now| {
        t.member_failed("n1", now);
        t.member_joined("n1-restarted", addr_of(1), now);
    });
    let st = sim.tables(0).stats();
    assert_eq!((st.nodes_left, st.nodes_failed), (1, 0));
    assert_eq!(st.networks["net"].hidden, 0);
}

#[test]
fn tables_tombstones_are_taken_from_unknown_writers_live_entries_are_not() {
    let mut sim = cluster(2, LinkModel::default());
    join_all(&mut sim, "net");
    let ltime = sim
        .with_tables(1, |t, now| {
            t.create_entry("net", "t", "k", b"v".to_vec(), now)
        })
        .unwrap();
    sim.run_for(secs(1));
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
    sim.with_tables(0, |t, now| {
        t.handle_message("n1", &ev(table_event::Type::Create, "other"), now);
        t.handle_message("n1", &ev(table_event::Type::Delete, "k"), now);
    });
    assert_eq!(table(&sim, 0, "net", "t"), vec![]);
    assert_eq!(sim.tables(0).stats().networks["net"].tombstones, 1);
}

/// A bulk sync carries entries hidden at the sender with their owner's
/// residual reap time. A node that never knew the owner keeps them hidden
/// too (so a write of its own at a lower Lamport time cannot diverge from
/// the older replicas), for that residual time only; gossip, a create
/// without a residual time, and an owner that left are still refused.
#[test]
fn tables_a_failed_owners_entries_reach_nodes_that_never_knew_it_hidden() {
    let mut sim = cluster(3, LinkModel::default());
    join_all(&mut sim, "net");
    let mine = sim
        .with_tables(0, |t, now| {
            t.create_entry("net", "t", "k", b"mine".to_vec(), now)
        })
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
    // Gossip never adopts an unknown owner.
    sim.with_tables(0, |t, now| {
        t.handle_message("n1", &ev("ghost", "k", 100), now)
    });
    assert_eq!(table(&sim, 0, "net", "t"), kv(&[("k", "mine")]));
    // Nor a bulk sync without a residual time (the sender holds the owner
    // alive: its attachment arrives with its network events).
    let msg = bulk("n1", vec![ev("ghost", "k0", 0)]);
    sim.with_tables(0, |t, now| t.handle_message("n1", &msg, now));
    assert_eq!(sim.tables(0).stats().nodes_failed, 0);
    // A bulk sync with one does, hidden, and its later Lamport time wins.
    // (A residual past our own node reap interval is cut to it.)
    let msg = bulk(
        "n1",
        vec![
            ev("ghost", "k", 100),
            ev("ghost", "k3", 100),
            ev("ghost2", "k4", i32::MAX),
        ],
    );
    sim.with_tables(0, |t, now| t.handle_message("n1", &msg, now));
    let st = sim.tables(0).stats();
    assert_eq!(table(&sim, 0, "net", "t"), vec![]);
    assert_eq!((st.networks["net"].hidden, st.nodes_failed), (3, 2));
    // Its own bulk syncs pass them on, with what is left of the time: n2,
    // which never knew either owner, keeps them hidden too.
    sim.with_tables(0, |t, now| {
        t.member_failed("n2", now);
        t.member_joined("n2", addr_of(2), now);
    });
    sim.run_for(Duration::from_millis(100));
    let st = sim.tables(2).stats();
    assert_eq!((st.networks["net"].hidden, st.nodes_failed), (3, 2), "n2");
    assert_eq!(table(&sim, 2, "net", "t"), vec![]);
    // The key is free to write again, above the witnessed time.
    let again = sim
        .with_tables(0, |t, now| {
            t.create_entry("net", "t", "k", b"again".to_vec(), now)
        })
        .unwrap();
    assert!(again > mine + 50);
    // Gone when the sender's residual time runs out, not 24 h later, here
    // and where it was carried.
    sim.run_for(secs(110));
    for i in [0, 2] {
        let st = sim.tables(i).stats();
        assert_eq!((st.networks["net"].hidden, st.nodes_failed), (1, 1), "n{i}");
        assert_eq!(table(&sim, i, "net", "t"), kv(&[("k", "again")]), "n{i}");
    }
    sim.run_for(secs(500));
    for i in [0, 2] {
        let st = sim.tables(i).stats();
        assert_eq!((st.networks["net"].hidden, st.nodes_failed), (0, 0), "n{i}");
    }
    // An owner that left is not brought back.
    let msg = bulk("n2", vec![ev("n1", "k2", 100)]);
    sim.with_tables(0, |t, now| {
        t.member_left("n1", now);
        t.handle_message("n2", &msg, now);
    });
    assert_eq!(sim.tables(0).stats().networks["net"].hidden, 0);
    assert_eq!(table(&sim, 0, "net", "t"), kv(&[("k", "again")]));
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
