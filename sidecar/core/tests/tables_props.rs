//! Property test of the tables core on an in-memory transport: random
//! writes and deletes on N nodes, with partitions, crashes (and restarts as
//! new nodes) and heals, in virtual time. After quiescence:
//!
//! - all live members of a network hold identical tables;
//! - no acknowledged write is lost: for every key whose latest version (by
//!   the documented `(ltime, node)` order) was written by a live node, every
//!   live member shows exactly that version, or nothing if it was a delete —
//!   so no delete is resurrected either;
//! - keys whose latest version came from a crashed node show nothing or a
//!   live node's older write (a crash can lose what the node had not yet
//!   gossiped; entries of a crashed node are hidden, then reaped);
//! - a watcher of every table, fed each node's watch events from its start,
//!   was told a consistent story (create only of an absent key, update and
//!   delete with the value it last saw) that ends at the node's tables.
//!
//! Membership is simulated as memberlist would drive the core: members are
//! reported joined (with a push/pull) or failed as partitions and crashes
//! change reachability, and network/node events ride a simulated memberlist
//! gossip. Partitions last less than the tombstone reap interval: a longer
//! one lets a delete's tombstone be reaped before the other side hears of
//! it, which no NetworkDB (nor this one) can repair.

#![allow(clippy::disallowed_methods)] // the virtual-time origin

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gossamer_core::tables::{Change, Config, Output, Tables};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};

const STEP: Duration = Duration::from_millis(100);
const SLOTS: usize = 5;
const NETS: [&str; 2] = ["net-a", "net-b"];
const KEYS: u8 = 6;

/// Slots in a network: all in net-a, even slots in net-b.
fn in_net(slot: usize, net: usize) -> bool {
    net == 0 || slot.is_multiple_of(2)
}

fn cfg(name: &str) -> Config {
    let mut c = Config::new(name);
    c.bulk_sync_interval = Duration::from_secs(5);
    c.bulk_sync_timeout = Duration::from_secs(2);
    c.reap_entry_interval = Duration::from_secs(60);
    c.node_reap_interval = Duration::from_secs(30);
    c
}

#[derive(Debug, Clone)]
enum Action {
    Write {
        slot: usize,
        net: usize,
        key: u8,
    },
    Delete {
        slot: usize,
        net: usize,
        key: u8,
    },
    /// Splits slots by the bits of `mask` for `secs` seconds.
    Partition {
        mask: u8,
        secs: u64,
    },
    Crash {
        slot: usize,
    },
    Restart {
        slot: usize,
    },
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        8 => (0..SLOTS, 0..2usize, 0..KEYS).prop_map(|(slot, net, key)| Action::Write { slot, net, key }),
        4 => (0..SLOTS, 0..2usize, 0..KEYS).prop_map(|(slot, net, key)| Action::Delete { slot, net, key }),
        1 => (1u8..31, 2u64..15).prop_map(|(mask, secs)| Action::Partition { mask, secs }),
        1 => (0..SLOTS).prop_map(|slot| Action::Crash { slot }),
        1 => (0..SLOTS).prop_map(|slot| Action::Restart { slot }),
    ]
}

/// An acknowledged write or delete.
#[derive(Debug, Clone)]
struct Op {
    ltime: u64,
    node: String,
    value: Option<Vec<u8>>,
}

struct Node {
    name: String,
    slot: usize,
    t: Tables,
    alive: bool,
    /// What a watcher of every table has been told: (net, key) -> value.
    watched: BTreeMap<(String, String), Vec<u8>>,
    /// Watch events that did not fit what the watcher had seen before.
    watch_errors: Vec<String>,
}

struct Sim {
    now: Instant,
    rng: SmallRng,
    nodes: Vec<Node>,
    /// Current node of each slot (an index into `nodes`).
    slot_node: [usize; SLOTS],
    group: [u8; SLOTS],
    heal_at: Option<Instant>,
    /// (observer, observed) pairs reported joined to the observer.
    view: BTreeSet<(usize, usize)>,
    /// Messages in flight: (from, to, bytes, reliable send id).
    inflight: Vec<(usize, usize, Vec<u8>, Option<u64>)>,
    ops: BTreeMap<(usize, u8), Vec<Op>>,
    next_value: u64,
    next_gossip: Instant,
    next_push_pull: Instant,
}

impl Sim {
    fn new(seed: u64) -> Self {
        let now = Instant::now();
        let mut s = Sim {
            now,
            rng: SmallRng::seed_from_u64(seed),
            nodes: Vec::new(),
            slot_node: [0; SLOTS],
            group: [0; SLOTS],
            heal_at: None,
            view: BTreeSet::new(),
            inflight: Vec::new(),
            ops: BTreeMap::new(),
            next_value: 0,
            next_gossip: now,
            next_push_pull: now,
        };
        for slot in 0..SLOTS {
            s.start(slot, 0);
        }
        s
    }

    fn addr(i: usize) -> SocketAddr {
        SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250) as u8 + 1], 7946))
    }

    /// Starts a fresh node in `slot` (a restart is a new node name).
    fn start(&mut self, slot: usize, generation: usize) {
        let name = format!("s{slot}g{generation}");
        let seed = self.rng.random();
        let t = Tables::new(cfg(&name), seed, self.now).unwrap();
        self.nodes.push(Node {
            name,
            slot,
            t,
            alive: true,
            watched: BTreeMap::new(),
            watch_errors: Vec::new(),
        });
        let i = self.nodes.len() - 1;
        self.slot_node[slot] = i;
        // Memberlist first (join with push/pull), then the networks.
        self.sync_views();
        for (n, net) in NETS.iter().enumerate() {
            if in_net(slot, n) {
                let now = self.now;
                self.nodes[i].t.join_network(net, now).unwrap();
            }
        }
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        let (x, y) = (&self.nodes[a], &self.nodes[b]);
        x.alive && y.alive && self.group[x.slot] == self.group[y.slot]
    }

    /// Reports membership changes as memberlist would.
    fn sync_views(&mut self) {
        let now = self.now;
        for i in 0..self.nodes.len() {
            if !self.nodes[i].alive {
                continue;
            }
            for j in 0..self.nodes.len() {
                if i == j {
                    continue;
                }
                let want = self.reachable(i, j);
                let has = self.view.contains(&(i, j));
                if want && !has {
                    self.view.insert((i, j));
                    let name = self.nodes[j].name.clone();
                    self.nodes[i].t.member_joined(&name, Self::addr(j), now);
                    // memberlist's join push/pull, both ways.
                    let a = self.nodes[i].t.local_state(true);
                    let b = self.nodes[j].t.local_state(true);
                    self.nodes[j].t.merge_remote_state(&a, true, now);
                    self.nodes[i].t.merge_remote_state(&b, true, now);
                } else if !want && has {
                    self.view.remove(&(i, j));
                    let name = self.nodes[j].name.clone();
                    self.nodes[i].t.member_failed(&name, now);
                }
            }
        }
    }

    fn peers_of(&self, i: usize) -> Vec<usize> {
        self.view
            .iter()
            .filter(|(a, _)| *a == i)
            .map(|(_, b)| *b)
            .collect()
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    fn step(&mut self) {
        self.now += STEP;
        let now = self.now;
        if self.heal_at.is_some_and(|t| t <= now) {
            self.group = [0; SLOTS];
            self.heal_at = None;
        }
        self.sync_views();
        // Deliver what was in flight (if still reachable).
        for (from, to, data, reliable) in std::mem::take(&mut self.inflight) {
            if self.reachable(from, to) {
                let name = self.nodes[from].name.clone();
                self.nodes[to].t.handle_message(&name, &data, now);
            } else if let Some(id) = reliable {
                if self.nodes[from].alive {
                    self.nodes[from].t.handle_send_result(
                        id,
                        Err("connection refused".into()),
                        now,
                    );
                }
            }
        }
        // Memberlist's gossip and push/pull carry network and node events.
        let gossip = now >= self.next_gossip;
        if gossip {
            self.next_gossip = now + Duration::from_millis(200);
        }
        let push_pull = now >= self.next_push_pull;
        if push_pull {
            self.next_push_pull = now + Duration::from_secs(5);
        }
        for i in 0..self.nodes.len() {
            if !self.nodes[i].alive {
                continue;
            }
            if gossip {
                let msgs = self.nodes[i].t.get_broadcasts(2, 1300);
                let mut peers = self.peers_of(i);
                peers.shuffle(&mut self.rng);
                peers.truncate(3);
                for m in msgs {
                    for &j in &peers {
                        if !self.rng.random_bool(0.05) {
                            self.inflight.push((i, j, m.clone(), None));
                        }
                    }
                }
            }
            if push_pull {
                if let Some(&j) = self.peers_of(i).choose(&mut self.rng) {
                    let a = self.nodes[i].t.local_state(false);
                    let b = self.nodes[j].t.local_state(false);
                    self.nodes[j].t.merge_remote_state(&a, false, now);
                    self.nodes[i].t.merge_remote_state(&b, false, now);
                }
            }
            self.nodes[i].t.handle_timeout(now);
            self.drain(i);
        }
    }

    fn drain(&mut self, i: usize) {
        let now = self.now;
        while let Some(out) = self.nodes[i].t.poll_output() {
            match out {
                Output::Send {
                    id,
                    to,
                    data,
                    reliable,
                } => {
                    let Some(j) = self.index_of(&to) else {
                        continue;
                    };
                    if reliable {
                        if self.reachable(i, j) {
                            self.inflight.push((i, j, data, Some(id)));
                        } else {
                            self.nodes[i]
                                .t
                                .handle_send_result(id, Err("unreachable".into()), now);
                        }
                    } else if !self.rng.random_bool(0.05) {
                        self.inflight.push((i, j, data, None));
                    }
                }
                Output::Reconnect { node, .. } => {
                    let ok = self.index_of(&node).is_some_and(|j| self.reachable(i, j));
                    self.nodes[i].t.handle_reconnect_result(&node, ok, now);
                }
                Output::Watch(ev) => {
                    let node = &mut self.nodes[i];
                    let k = (ev.network.clone(), ev.key.clone());
                    let seen = node.watched.get(&k).cloned();
                    match (ev.change, seen) {
                        (Change::Created { value }, None) => {
                            node.watched.insert(k, value);
                        }
                        (Change::Updated { prev, value }, Some(old)) if prev == old => {
                            node.watched.insert(k, value);
                        }
                        (Change::Deleted { prev }, Some(old)) if prev == old => {
                            node.watched.remove(&k);
                        }
                        (change, seen) => node
                            .watch_errors
                            .push(format!("{k:?}: {change:?} after {seen:?}")),
                    }
                }
                other => panic!("an output this harness does not route: {other:?}"),
            }
        }
    }

    fn apply(&mut self, a: &Action) {
        let now = self.now;
        match *a {
            Action::Write { slot, net, key } | Action::Delete { slot, net, key } => {
                let i = self.slot_node[slot];
                if !self.nodes[i].alive || !in_net(slot, net) {
                    return;
                }
                let k = format!("k{key}");
                let exists = self.nodes[i].t.get_entry(NETS[net], "t", &k).is_some();
                let t = &mut self.nodes[i].t;
                let (res, value) = match a {
                    Action::Write { .. } => {
                        self.next_value += 1;
                        let v = format!("v{}", self.next_value).into_bytes();
                        let r = if exists {
                            t.update_entry(NETS[net], "t", &k, v.clone(), now)
                        } else {
                            t.create_entry(NETS[net], "t", &k, v.clone(), now)
                        };
                        (r, Some(v))
                    }
                    _ if exists => (t.delete_entry(NETS[net], "t", &k, now), None),
                    _ => return,
                };
                let ltime = res.expect("a checked write is accepted");
                self.ops.entry((net, key)).or_default().push(Op {
                    ltime,
                    node: self.nodes[i].name.clone(),
                    value,
                });
                self.drain(i);
            }
            Action::Partition { mask, secs } => {
                for s in 0..SLOTS {
                    self.group[s] = (mask >> s) & 1;
                }
                self.heal_at = Some(now + Duration::from_secs(secs));
            }
            Action::Crash { slot } => {
                let live = (0..SLOTS)
                    .filter(|s| self.nodes[self.slot_node[*s]].alive)
                    .count();
                let i = self.slot_node[slot];
                if live > 2 && self.nodes[i].alive {
                    self.nodes[i].alive = false;
                    self.view.retain(|(a, _)| *a != i);
                }
            }
            Action::Restart { slot } => {
                let i = self.slot_node[slot];
                if !self.nodes[i].alive {
                    let generation = self.nodes.iter().filter(|n| n.slot == slot).count();
                    self.start(slot, generation);
                }
            }
        }
    }

    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    /// Checks the invariants; Err names the first violation.
    fn check(&self) -> Result<(), String> {
        for (n, net) in NETS.iter().enumerate() {
            let members: Vec<usize> = (0..SLOTS)
                .filter(|s| in_net(*s, n))
                .map(|s| self.slot_node[s])
                .filter(|i| self.nodes[*i].alive)
                .collect();
            if members.is_empty() {
                continue;
            }
            let tables: Vec<_> = members
                .iter()
                .map(|i| self.nodes[*i].t.list_table(net, "t"))
                .collect();
            for (i, t) in members.iter().zip(&tables) {
                let node = &self.nodes[*i];
                if let Some(e) = node.watch_errors.first() {
                    return Err(format!("{}: watch event out of line: {e}", node.name));
                }
                let watched: Vec<(&str, &Vec<u8>)> = node
                    .watched
                    .iter()
                    .filter(|((nn, _), _)| nn == net)
                    .map(|((_, k), v)| (k.as_str(), v))
                    .collect();
                let listed: Vec<(&str, &Vec<u8>)> =
                    t.iter().map(|(k, e)| (k.as_str(), &e.value)).collect();
                if watched != listed {
                    return Err(format!(
                        "{net}: {} lists {listed:?} but told its watcher {watched:?}",
                        node.name
                    ));
                }
                if *t != tables[0] {
                    return Err(format!(
                        "{net}: {} holds {:?}\nbut {} holds {:?}",
                        self.nodes[*i].name, t, self.nodes[members[0]].name, tables[0]
                    ));
                }
            }
            let live: BTreeSet<&str> = self
                .nodes
                .iter()
                .filter(|x| x.alive)
                .map(|x| x.name.as_str())
                .collect();
            for key in 0..KEYS {
                let Some(ops) = self.ops.get(&(n, key)) else {
                    continue;
                };
                let last = ops
                    .iter()
                    .max_by(|a, b| (a.ltime, &a.node).cmp(&(b.ltime, &b.node)))
                    .unwrap();
                let k = format!("k{key}");
                let got = tables[0].iter().find(|(kk, _)| *kk == k).map(|(_, e)| e);
                if live.contains(last.node.as_str()) {
                    let ok = match (&last.value, got) {
                        (None, None) => true,
                        (Some(v), Some(e)) => {
                            e.value == *v && e.owner == last.node && e.ltime == last.ltime
                        }
                        _ => false,
                    };
                    if !ok {
                        return Err(format!(
                            "{net}/{k}: last acknowledged op {last:?} (live writer), found {got:?}"
                        ));
                    }
                } else if let Some(e) = got {
                    let from_live = ops.iter().any(|o| {
                        live.contains(o.node.as_str())
                            && o.value.as_ref() == Some(&e.value)
                            && o.ltime == e.ltime
                    });
                    if !from_live {
                        return Err(format!(
                            "{net}/{k}: shows {e:?}, not a live node's write; ops {ops:?}"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

fn scenario(seed: u64, actions: &[(u64, Action)]) -> Result<(), String> {
    let mut sim = Sim::new(seed);
    sim.run(Duration::from_secs(3));
    for (gap_ms, a) in actions {
        sim.run(Duration::from_millis(*gap_ms));
        sim.apply(a);
    }
    // Quiescence: heal, no more writes, long enough for crashed nodes to be
    // reaped and for their tombstones to run out.
    sim.group = [0; SLOTS];
    sim.heal_at = None;
    sim.run(Duration::from_secs(100));
    if std::env::var("TABLES_PROPS_DEBUG").is_ok() {
        let ops: usize = sim.ops.values().map(Vec::len).sum();
        let entries: usize = sim
            .nodes
            .iter()
            .filter(|n| n.alive)
            .map(|n| n.t.list_table("net-a", "t").len())
            .sum();
        let crashed = sim.nodes.iter().filter(|n| !n.alive).count();
        eprintln!(
            "ops {ops} entries(net-a, summed) {entries} crashed {crashed} nodes {}",
            sim.nodes.len()
        );
    }
    sim.check()
}

proptest! {
    // 32 cases by default; PROPTEST_CASES=N for a longer run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32),
        ..ProptestConfig::default()
    })]

    #[test]
    fn tables_converge_without_losing_writes_or_resurrecting_deletes(
        seed in any::<u64>(),
        actions in proptest::collection::vec((0u64..1500, action()), 20..80),
    ) {
        if let Err(e) = scenario(seed, &actions) {
            return Err(TestCaseError::fail(e));
        }
    }
}

#[test]
fn tables_converge_in_a_quiet_cluster() {
    let actions: Vec<(u64, Action)> = (0..40)
        .map(|i| {
            let a = if i % 5 == 4 {
                Action::Delete {
                    slot: i % SLOTS,
                    net: i % 2,
                    key: (i % KEYS as usize) as u8,
                }
            } else {
                Action::Write {
                    slot: i % SLOTS,
                    net: i % 2,
                    key: (i % KEYS as usize) as u8,
                }
            };
            (100, a)
        })
        .collect();
    scenario(7, &actions).unwrap();
}
