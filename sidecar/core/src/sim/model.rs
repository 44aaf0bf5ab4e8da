//! One workload for the replicated tables, and one oracle for it: random
//! writes and deletes on whole [`Node`]s in the simulator, between crashes,
//! new nodes, cuts, isolations and partitions. The property tests of the
//! tables draw their steps differently and all run them here.
//!
//! After a heal and quiescence, [`Run::check`] holds the run to:
//!
//! - every live node sees every live node alive and every other one gone
//!   (or never heard of);
//! - every live member of a network holds the same visible entries;
//! - no acknowledged write of a node that is up is lost: what is visible
//!   is that write or a later one, or a later delete hid it; no delete is
//!   undone; nothing visible was written by a node that crashed;
//! - a watcher of each node, fed that node's watch events from its start,
//!   was told a consistent story (a create only of an absent key, an update
//!   or delete with the value it last saw) that ends at the node's tables.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::{addr_of, name_of, Core, LinkModel, NodeConfig, Sim, SimConfig, SimError};
use crate::membership::{Event, NodeStatus};
use crate::node::Node;
use crate::tables::{Change, EntryView};

/// How long [`Run::quiesce`] lets start-up joins finish before it retries
/// those that reached nobody: past the LAN profile's TCP timeout.
const START_JOIN_TIMEOUT: Duration = Duration::from_secs(12);

/// What a watcher was told: (network, table, key) -> value.
type Told = BTreeMap<(String, String, String), Vec<u8>>;

/// The one table every write goes to.
pub const TABLE: &str = "t";

/// The name of network `k`.
pub fn network_name(k: usize) -> String {
    format!("net{k}")
}

/// Whether node `i` is in network `k`: every node is in network 0, even
/// nodes in the others too.
pub fn in_network(i: usize, k: usize) -> bool {
    k == 0 || i.is_multiple_of(2)
}

/// The key written for `k`.
pub fn key_name(k: usize) -> String {
    format!("k{k}")
}

/// One thing that happens. Steps naming a node that does not exist, or
/// one that cannot take them (down, not in the network), do nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `node` writes `key` in network `net`: a create when the key is not
    /// visible there, else an update.
    Write {
        /// The writer.
        node: usize,
        /// The network.
        net: usize,
        /// The key.
        key: usize,
    },
    /// `node` deletes `key` in network `net`, when it is visible there.
    Delete {
        /// The writer.
        node: usize,
        /// The network.
        net: usize,
        /// The key.
        key: usize,
    },
    /// The node crashes, unless it is the last one up.
    Crash(usize),
    /// The next standby node starts (a new pod), joins through the nodes
    /// that are up, then joins its networks.
    Start,
    /// The link between two nodes is cut.
    Cut(usize, usize),
    /// The node is cut from all others.
    Isolate(usize),
    /// Nodes below the index on one side, the rest on the other.
    Halves(usize),
    /// Nodes split by the bits of the mask (node `i` by bit `i % 8`).
    Split(u8),
    /// Every cut and partition ends.
    Heal,
}

/// An acknowledged call: the tables returned a Lamport time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The network.
    pub net: usize,
    /// The key.
    pub key: usize,
    /// The writer.
    pub node: usize,
    /// The Lamport time the tables returned.
    pub ltime: u64,
    /// The value written; `None`: a delete.
    pub value: Option<Vec<u8>>,
}

impl Op {
    /// Conflict order, as the tables resolve it: Lamport time, then name.
    fn order(&self) -> (u64, String) {
        (self.ltime, name_of(self.node))
    }
}

/// The cluster a workload runs on.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Nodes that start at once.
    pub nodes: usize,
    /// Nodes [`Step::Start`] starts later, one each.
    pub standby: usize,
    /// Networks; see [`in_network`].
    pub networks: usize,
    /// Seeds the simulation.
    pub seed: u64,
    /// Start from a converged member list; off: nodes join one by one.
    pub converged: bool,
    /// Datagram (and TCP segment) loss until the quiet end.
    pub loss: f64,
    /// Changes every node's configuration.
    pub configure: fn(&mut NodeConfig),
}

/// A workload running.
pub struct Run {
    /// The simulation.
    pub sim: Sim<Node>,
    /// Every acknowledged call, in order.
    pub ops: Vec<Op>,
    networks: usize,
    /// Nodes started so far (standby nodes start in index order).
    started: usize,
}

impl Run {
    /// Builds the cluster, joins every node to its networks, and lets it
    /// settle for 3 s.
    ///
    /// # Errors
    /// A node's configuration is invalid.
    pub fn new(w: &Workload, base: Instant) -> Result<Run, SimError> {
        let mut c = SimConfig::lan(w.nodes + w.standby, w.seed);
        c.converged = w.converged;
        c.standby = w.standby;
        c.link.loss = w.loss;
        let configure = w.configure;
        let sim = Sim::<Node>::configured(c, base, move |_, cfg| configure(cfg))?;
        let mut run = Run {
            sim,
            ops: Vec::new(),
            networks: w.networks,
            started: w.nodes,
        };
        for i in 0..w.nodes {
            run.join_networks(i);
        }
        run.sim.run_for(Duration::from_secs(3));
        Ok(run)
    }

    fn join_networks(&mut self, i: usize) {
        for k in (0..self.networks).filter(|k| in_network(i, *k)) {
            let net = network_name(k);
            // A node joins each network once, when it starts: never refused.
            let _ = self.sim.with_tables(i, |t, now| t.join_network(&net, now));
        }
    }

    fn may_write(&self, node: usize, net: usize) -> bool {
        node < self.started && self.sim.is_up(node) && net < self.networks && in_network(node, net)
    }

    /// Carries out one step, then lets `hold` pass.
    ///
    /// # Errors
    /// A standby node could not start.
    pub fn step(&mut self, step: &Step, hold: Duration) -> Result<(), SimError> {
        let n = self.started;
        match *step {
            Step::Write { node, net, key } if self.may_write(node, net) => {
                self.write(node, net, key, false)
            }
            Step::Delete { node, net, key } if self.may_write(node, net) => {
                self.write(node, net, key, true)
            }
            Step::Crash(i)
                if i < n
                    && self.sim.is_up(i)
                    && (0..n).filter(|j| self.sim.is_up(*j)).count() > 1 =>
            {
                self.sim.crash(i);
            }
            Step::Start if self.started < self.sim.len() => {
                let i = self.started;
                let seeds: Vec<usize> = (0..n).filter(|j| self.sim.is_up(*j)).collect();
                self.sim.restart(i, &seeds)?;
                self.started += 1;
                self.join_networks(i);
            }
            Step::Cut(a, b) if a < n && b < n && a != b => self.sim.cut(a, b),
            Step::Isolate(i) if i < n => self.sim.isolate(i),
            Step::Halves(k) if k < n => self.sim.partition(|i| u32::from(i < k)),
            Step::Split(mask) => self.sim.partition(|i| u32::from((mask >> (i % 8)) & 1)),
            Step::Heal => self.sim.heal(),
            _ => {}
        }
        self.sim.run_for(hold);
        Ok(())
    }

    /// A write (create or update) or a delete of a visible key, recorded
    /// when the tables accept it.
    fn write(&mut self, i: usize, net: usize, key: usize, delete: bool) {
        let (nid, k) = (network_name(net), key_name(key));
        let value = format!("n{i}#{}", self.ops.len()).into_bytes();
        let r = self.sim.with_tables(i, |t, now| {
            match (t.get_entry(&nid, TABLE, &k).is_some(), delete) {
                (false, false) => t
                    .create_entry(&nid, TABLE, &k, value.clone(), now)
                    .map(|lt| Some((lt, Some(value)))),
                (true, false) => t
                    .update_entry(&nid, TABLE, &k, value.clone(), now)
                    .map(|lt| Some((lt, Some(value)))),
                (true, true) => t
                    .delete_entry(&nid, TABLE, &k, now)
                    .map(|lt| Some((lt, None))),
                (false, true) => Ok(None),
            }
        });
        if let Ok(Some((ltime, value))) = r {
            self.ops.push(Op {
                net,
                key,
                node: i,
                ltime,
                value,
            });
        }
    }

    /// Heals, then lets the cluster go quiet: `lossy` on the workload's
    /// link, then `lossless` without loss, so that no suspicion a lost
    /// packet started is still open when [`Run::check`] looks. A node
    /// whose start-up join reached none of its seeds (it started on the
    /// other side of a partition), or that sees no other live member (it
    /// joined a side whose members all crashed since), joins again first,
    /// as the sidecar's join loop (`sidecar/src/join.rs`) does for a node
    /// that is alone.
    pub fn quiesce(&mut self, lossy: Duration, lossless: Duration) {
        self.sim.heal();
        // Start-up joins that dialled across a cut end first: their dials
        // time out (LAN: 10 s).
        let dials = START_JOIN_TIMEOUT.min(lossy);
        self.sim.run_for(dials);
        let up: Vec<usize> = (0..self.started).filter(|i| self.sim.is_up(*i)).collect();
        for &i in &up {
            let first_join_failed = self.sim.events_of(i).find_map(|e| match e {
                Event::JoinFinished { contacted, .. } => Some(*contacted == 0),
                _ => None,
            });
            let alone = self.sim.alive_seen_by(i) <= 1;
            if first_join_failed == Some(true) || alone {
                let seeds: Vec<_> = up
                    .iter()
                    .filter(|j| **j != i)
                    .map(|j| addr_of(*j))
                    .collect();
                self.sim.command(i, |n, now| {
                    n.with_membership(now, |m, now| m.join(&seeds, now))
                });
            }
        }
        self.sim.run_for(lossy - dials);
        self.sim.set_link(LinkModel::default());
        self.sim.run_for(lossless);
    }

    /// Every visible entry of network `net` at node `i`, by (table, key).
    pub fn entries(&self, i: usize, net: usize) -> BTreeMap<(String, String), EntryView> {
        let mut out = BTreeMap::new();
        self.sim
            .tables(i)
            .walk_network(&network_name(net), |t, k, e| {
                out.insert((t.to_string(), k.to_string()), e);
                true
            });
        out
    }

    /// The oracle; see the module documentation. `Err` names the first
    /// violation.
    pub fn check(&self) -> Result<(), String> {
        membership_agrees(&self.sim)?;
        for net in 0..self.networks {
            self.tables_agree(net)?;
        }
        self.watchers_agree()
    }

    fn tables_agree(&self, net: usize) -> Result<(), String> {
        let sim = &self.sim;
        let live: Vec<usize> = (0..self.started)
            .filter(|i| sim.is_up(*i) && in_network(*i, net))
            .collect();
        let Some(&first) = live.first() else {
            return Ok(());
        };
        let nid = network_name(net);
        let reference = self.entries(first, net);
        for &i in &live[1..] {
            let other = self.entries(i, net);
            if other != reference {
                return Err(format!(
                    "{nid}: n{first} and n{i} differ:\n  n{first}: {reference:?}\n  n{i}: {other:?}"
                ));
            }
        }
        let keys: BTreeSet<usize> = self
            .ops
            .iter()
            .filter(|o| o.net == net)
            .map(|o| o.key)
            .collect();
        for key in keys {
            let k = key_name(key);
            let of_key: Vec<&Op> = self
                .ops
                .iter()
                .filter(|o| o.net == net && o.key == key)
                .collect();
            // The latest acknowledged call of a node that is up: it, or
            // something later, MUST be what everyone holds.
            let latest_live = of_key
                .iter()
                .filter(|o| sim.is_up(o.node))
                .max_by_key(|o| o.order());
            match reference.get(&(TABLE.to_string(), k.clone())) {
                Some(v) => {
                    let Some(op) = of_key
                        .iter()
                        .find(|o| o.ltime == v.ltime && name_of(o.node) == v.owner)
                    else {
                        return Err(format!("{nid}/{k} = {v:?}: no such acknowledged write"));
                    };
                    if op.value.as_ref() != Some(&v.value) {
                        return Err(format!("{nid}/{k} = {v:?} is visible, but it was {op:?}"));
                    }
                    if !sim.is_up(op.node) {
                        return Err(format!(
                            "{nid}/{k} = {v:?}: its owner crashed, it must be hidden"
                        ));
                    }
                    if let Some(l) = latest_live {
                        if (v.ltime, v.owner.clone()) < l.order() {
                            return Err(format!(
                                "{nid}/{k} = {v:?}: the later acknowledged {l:?} was lost \
                                 (a delete undone, or an update reverted)"
                            ));
                        }
                    }
                }
                None => {
                    if let Some(l) = latest_live.filter(|l| l.value.is_some()) {
                        // Only a later write by a node that crashed since
                        // (now hidden) or a later delete may hide it.
                        let superseded = of_key
                            .iter()
                            .any(|o| o.order() > l.order() && !sim.is_up(o.node));
                        if !superseded {
                            return Err(format!("{nid}/{k}: the acknowledged {l:?} was lost"));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn watchers_agree(&self) -> Result<(), String> {
        // (node) -> (network, table, key) -> value, as told.
        let mut told: BTreeMap<usize, Told> = BTreeMap::new();
        for (t, i, ev) in self.sim.watch_events() {
            let seen = told.entry(*i).or_default();
            let k = (ev.network.clone(), ev.table.clone(), ev.key.clone());
            match (&ev.change, seen.get(&k)) {
                (Change::Created { value }, None) => {
                    seen.insert(k, value.clone());
                }
                (Change::Updated { prev, value }, Some(old)) if prev == old => {
                    seen.insert(k, value.clone());
                }
                (Change::Deleted { prev }, Some(old)) if prev == old => {
                    seen.remove(&k);
                }
                (change, old) => {
                    return Err(format!(
                        "n{i} at {t:?}: watch event {k:?} {change:?} after {old:?}"
                    ))
                }
            }
        }
        for i in (0..self.started).filter(|i| self.sim.is_up(*i)) {
            for net in (0..self.networks).filter(|k| in_network(i, *k)) {
                let nid = network_name(net);
                let listed: BTreeMap<(String, String), Vec<u8>> = self
                    .entries(i, net)
                    .into_iter()
                    .map(|(k, e)| (k, e.value))
                    .collect();
                let watched: BTreeMap<(String, String), Vec<u8>> = told
                    .get(&i)
                    .into_iter()
                    .flatten()
                    .filter(|((n, _, _), _)| *n == nid)
                    .map(|((_, t, k), v)| ((t.clone(), k.clone()), v.clone()))
                    .collect();
                if watched != listed {
                    return Err(format!(
                        "{nid}: n{i} lists {listed:?} but told its watcher {watched:?}"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Every live node sees every live node alive and every other one gone
/// (or never heard of). `Err` names the first node that does not.
pub fn membership_agrees<C: Core>(sim: &Sim<C>) -> Result<(), String> {
    let live: BTreeSet<usize> = (0..sim.len()).filter(|i| sim.is_up(*i)).collect();
    for &i in &live {
        for j in 0..sim.len() {
            let st = sim.node(i).member(&name_of(j)).map(|m| m.status);
            let ok = if live.contains(&j) {
                st == Some(NodeStatus::Alive)
            } else {
                st.is_none_or(|s| s.is_gone())
            };
            if !ok {
                return Err(format!("n{i} sees n{j} as {st:?}"));
            }
        }
    }
    Ok(())
}
