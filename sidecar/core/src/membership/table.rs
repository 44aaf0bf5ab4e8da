//! The member table and probe order, copy-on-write over an optional shared
//! [`Snapshot`] of a converged member list.
//!
//! A node that starts empty (the usual case) keeps everything in its own
//! map and its own shuffled name list, exactly as before. A node started
//! from a snapshot ([`super::Membership::adopt_snapshot`]) reads the shared
//! list until it learns something different about a member: only the
//! members it changed live in its own overlay, and its probe order is a
//! seeded permutation of the shared list, materialised only when the list
//! itself changes (a member added, or forgotten). Ten thousand nodes of a
//! ten-thousand-member cluster then share one list instead of holding a
//! hundred million entries, which is what lets the simulator run them, and
//! a restarted node bootstraps without a full push/pull.

use std::collections::HashMap;
use std::ops::Index;
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::Rng;

use super::node::NodeState;
use super::{BroadcastQueue, Delegate, Member, Membership, NodeStatus};

/// An immutable, shareable list of members, as one converged node sees
/// them; see [`super::Membership::adopt_snapshot`].
#[derive(Debug)]
pub struct Snapshot {
    entries: Vec<NodeState>,
    index: HashMap<String, u32>,
}

impl Snapshot {
    /// A snapshot of `members`, all last changed at `now`. Later duplicates
    /// of a name are ignored.
    ///
    /// # Panics
    /// More than `u32::MAX` members.
    pub fn new(members: impl IntoIterator<Item = Member>, now: Instant) -> Arc<Snapshot> {
        let mut entries = Vec::new();
        let mut index = HashMap::new();
        for member in members {
            if index.contains_key(&member.name) {
                continue;
            }
            let slot = u32::try_from(entries.len()).expect("fewer than 2^32 members");
            index.insert(member.name.clone(), slot);
            entries.push(NodeState {
                member,
                state_change: now,
            });
        }
        Arc::new(Snapshot { entries, index })
    }

    /// Members in the snapshot.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the snapshot holds no member.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// One member by name.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.get(name).map(|s| &s.member)
    }

    fn get(&self, name: &str) -> Option<&NodeState> {
        self.index.get(name).map(|i| &self.entries[*i as usize])
    }
}

impl<D: Delegate> Membership<D> {
    /// Starts from `snapshot`, a converged member list shared with other
    /// nodes, instead of learning it by joining: the node reads the shared
    /// list and keeps only what it changes (copy-on-write), and probes in a
    /// seeded permutation of it. MUST be called right after construction,
    /// before any other input. When the snapshot already holds this node
    /// as it is (address, metadata, versions, alive), nothing is announced;
    /// otherwise the node announces itself with an incarnation above the
    /// snapshot's. Join through a member afterwards if the snapshot may be
    /// stale; push/pull and gossip correct it either way.
    pub fn adopt_snapshot(&mut self, snapshot: Arc<Snapshot>, now: Instant) {
        self.nodes = NodeTable::from_snapshot(Arc::clone(&snapshot));
        self.order = Order::permuted(Arc::clone(&snapshot), &mut self.rng);
        // The construction's self-announcement: the snapshot decides below.
        self.broadcasts = BroadcastQueue::for_membership(&self.cfg);
        let vsn = self.local_vsn();
        match snapshot.member(&self.cfg.name) {
            Some(m)
                if m.addr == self.cfg.advertise
                    && m.meta == self.cfg.meta
                    && m.vsn == vsn
                    && m.status == NodeStatus::Alive =>
            {
                self.incarnation = m.incarnation;
            }
            other => {
                let known = other.map_or(0, |m| m.incarnation);
                self.incarnation = self.incarnation.max(known);
                let inc = self.next_incarnation();
                let a = self.local_alive(inc);
                self.alive_node(a, true, now);
            }
        }
    }

    /// Member entries this node holds itself; with a snapshot, the rest are
    /// shared. (Memory accounting for the simulator.)
    pub fn owned_entries(&self) -> usize {
        self.nodes.owned()
    }
}

/// Members by name: this node's own entries over the shared base.
#[derive(Debug, Default)]
pub(super) struct NodeTable {
    base: Option<Arc<Snapshot>>,
    /// Entries this node added or changed; `None` hides a base entry this
    /// node forgot.
    overlay: HashMap<String, Option<NodeState>>,
}

impl NodeTable {
    /// A table reading `base` until entries change.
    pub fn from_snapshot(base: Arc<Snapshot>) -> Self {
        NodeTable {
            base: Some(base),
            overlay: HashMap::new(),
        }
    }

    fn base_get(&self, name: &str) -> Option<&NodeState> {
        self.base.as_ref().and_then(|b| b.get(name))
    }

    pub fn get(&self, name: &str) -> Option<&NodeState> {
        match self.overlay.get(name) {
            Some(entry) => entry.as_ref(),
            None => self.base_get(name),
        }
    }

    /// Copies a shared entry into this node's overlay on first write.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut NodeState> {
        if !self.overlay.contains_key(name) {
            let copy = self.base_get(name)?.clone();
            self.overlay.insert(name.to_string(), Some(copy));
        }
        self.overlay.get_mut(name).and_then(Option::as_mut)
    }

    pub fn insert(&mut self, name: String, state: NodeState) {
        self.overlay.insert(name, Some(state));
    }

    pub fn remove(&mut self, name: &str) {
        if self.base_get(name).is_some() {
            self.overlay.insert(name.to_string(), None);
        } else {
            self.overlay.remove(name);
        }
    }

    /// Every entry, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &NodeState> + '_ {
        let base = self
            .base
            .iter()
            .flat_map(|b| b.entries.iter())
            .filter(|s| !self.overlay.contains_key(&s.member.name));
        base.chain(self.overlay.values().flatten())
    }

    /// Entries this node holds itself (not shared).
    pub fn owned(&self) -> usize {
        self.overlay.len()
    }
}

/// The probe order: member names in a random order, iterated round robin.
#[derive(Debug)]
pub(super) enum Order {
    /// A permutation `i -> (a * i + b) mod n` of the snapshot's members;
    /// `a` is coprime with `n`, so every member comes once per round.
    Permuted { base: Arc<Snapshot>, a: u64, b: u64 },
    /// This node's own list.
    Names(Vec<String>),
}

impl Default for Order {
    fn default() -> Self {
        Order::Names(Vec::new())
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Order {
    /// A random permutation of `base`, drawn from `rng`.
    pub fn permuted(base: Arc<Snapshot>, rng: &mut SmallRng) -> Self {
        let n = base.len() as u64;
        if n <= 1 {
            return Order::Names(base.entries.iter().map(|s| s.member.name.clone()).collect());
        }
        let a = loop {
            let a = rng.random_range(1..n);
            if gcd(a, n) == 1 {
                break a;
            }
        };
        let b = rng.random_range(0..n);
        Order::Permuted { base, a, b }
    }

    pub fn len(&self) -> usize {
        match self {
            Order::Permuted { base, .. } => base.len(),
            Order::Names(v) => v.len(),
        }
    }

    /// Turns a permutation into this node's own list, before it changes.
    fn names(&mut self) -> &mut Vec<String> {
        if let Order::Permuted { .. } = self {
            let v: Vec<String> = self.iter().cloned().collect();
            *self = Order::Names(v);
        }
        match self {
            Order::Names(v) => v,
            Order::Permuted { .. } => unreachable!("materialised above"),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &String> + '_ {
        (0..self.len()).map(move |i| &self[i])
    }

    /// Inserts `name` at a random place, so the order stays random.
    pub fn insert_random(&mut self, name: String, rng: &mut SmallRng) {
        let v = self.names();
        let n = v.len();
        v.push(name);
        if n > 0 {
            let off = rng.random_range(0..=n);
            v.swap(off, n);
        }
    }

    /// Keeps the names `keep` accepts (called once per name, in order); a
    /// permutation is materialised only when a name goes.
    pub fn retain(&mut self, mut keep: impl FnMut(&String) -> bool) {
        match self {
            Order::Permuted { .. } => {
                let kept: Vec<bool> = (0..self.len()).map(|i| keep(&self[i])).collect();
                if kept.iter().all(|k| *k) {
                    return;
                }
                let names: Vec<String> = self
                    .iter()
                    .zip(kept)
                    .filter(|(_, k)| *k)
                    .map(|(name, _)| name.clone())
                    .collect();
                *self = Order::Names(names);
            }
            Order::Names(v) => v.retain(keep),
        }
    }

    /// Reshuffles: a fresh permutation, or a shuffle of this node's list.
    pub fn shuffle(&mut self, rng: &mut SmallRng) {
        match self {
            Order::Permuted { base, .. } => {
                let base = Arc::clone(base);
                *self = Order::permuted(base, rng);
            }
            Order::Names(v) => v.shuffle(rng),
        }
    }
}

impl Index<usize> for Order {
    type Output = String;

    fn index(&self, i: usize) -> &String {
        match self {
            Order::Permuted { base, a, b } => {
                let n = base.len() as u64;
                let slot = ((*a as u128 * i as u128 + *b as u128) % n as u128) as usize;
                &base.entries[slot].member.name
            }
            Order::Names(v) => &v[i],
        }
    }
}
