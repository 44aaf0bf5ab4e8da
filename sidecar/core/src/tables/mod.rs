//! NetworkDB's replicated tables, as libnetwork runs them, as a pure state
//! machine.
//!
//! Networks are joined and left with events on a Lamport *network clock*;
//! entries (network -> table -> key -> value) are written with a Lamport
//! *table clock*. Writes are gossiped to three random members of their
//! network every gossip interval, in compound messages within the packet
//! budget, from a transmit-limited queue per network; network and node
//! events ride on memberlist's own gossip ([`Tables::get_broadcasts`]) and
//! push/pull ([`Tables::local_state`], [`Tables::merge_remote_state`]);
//! bulk syncs (every entry of the common networks, over a stream) repair
//! what gossip missed. Messages are libnetwork's `networkdb.proto`, carried
//! exactly where libnetwork carries them, so a Go NetworkDB node is a peer.
//!
//! The core takes inputs — a received message ([`Tables::handle_message`]),
//! membership changes ([`Tables::member_joined`], [`Tables::member_failed`],
//! [`Tables::member_left`]), the passing of time ([`Tables::handle_timeout`]),
//! the outcome of sends and reconnects, and application calls — and queues
//! [`Output`]s (messages to send, reconnects to try, watch events) that the
//! caller drains with [`Tables::poll_output`]. It never reads a clock, never
//! touches a socket and owns its RNG, seeded by the caller.
//!
//! # Rules that MUST hold (and how they differ from libnetwork)
//!
//! - **Conflicts** are resolved by `(ltime, node name)`: the higher Lamport
//!   time wins, then the higher node name; see `store::supersedes`. Every
//!   replica that has seen the same writes keeps the same one.
//! - **Deletes** are tombstones carrying the value and a residual reap time
//!   (default 30 min); the reaper drops them when it runs out. A node only
//!   ever writes tombstones for its own deletes: it never turns another
//!   node's entries into tombstones when that node fails or leaves
//!   (moby#47728); they are dropped locally instead.
//! - **Failed nodes**: their attachments and entries are kept but hidden
//!   (reads and watchers see them deleted), shown again if the node comes
//!   back and dropped when it is reaped (node reap interval, 24 h by
//!   default) — not dropped at failure (moby#53141). A returning node is
//!   bulk synced at once, and a bulk sync from an entry's owner is
//!   authoritative for the owner's entries: one it no longer holds (its
//!   tombstone was reaped while we could not hear it) is dropped, so a
//!   long failure cannot bring back a deleted entry. Failed nodes are
//!   retried every second ([`Output::Reconnect`]).
//! - **Hidden entries travel**: bulk syncs carry them as creates with the
//!   owner's residual reap time (as Go NetworkDB does). A node that never
//!   knew the owner (started after it failed) keeps them hidden too, for
//!   that residual time, and records the owner as failed; libnetwork
//!   ignores them. Without this, the newcomer's own write of such a key, at
//!   a lower Lamport time, would show there and nowhere else for 24 h;
//!   with it, every replica keeps the later Lamport time (the failed
//!   owner's, hidden) and the key is free to be written again above it.
//! - **Nothing waits**: an unsolicited bulk sync waits for its answer (a
//!   bulk sync back with a later Lamport time) up to a configurable timeout
//!   as a deadline, not a blocked thread; a periodic sync that fails or
//!   times out tries a second member; a failed member's pending syncs fail
//!   at once. libnetwork blocks up to 30 s per peer (moby#40337, #47396).
//! - Writes are refused unless the network is joined, and when the table
//!   event would not fit one gossip packet (libnetwork accepts them and
//!   they never leave the queue).
//! - Watchers see local writes too (libnetwork only reports remote ones).
//! - Network ids SHOULD NOT be prefixes of each other when Go peers take
//!   part: libnetwork's bulk sync walks its index by prefix and would send
//!   `net-b`'s entries labelled as `net`'s.

mod api;
mod bulksync;
mod clock;
pub mod codec;
mod config;
mod gossip;
mod inbound;
mod nodes;
mod peers;
mod reap;
mod store;
mod types;

#[cfg(test)]
mod tests;

/// libnetwork NetworkDB gossip messages (package `networkdb`), generated
/// with prost from `proto/networkdb/networkdb.proto`: the same message
/// names, field numbers and types, so their encoding is byte-identical to
/// the Go package's gogo/protobuf output (checked by golden vectors produced
/// by the real Go package, `sidecar/core/tests/tables_golden.rs`).
///
/// Every message travels wrapped in a [`proto::GossipMessage`] whose `type`
/// says how to decode `data`; a compound message is a
/// [`proto::CompoundMessage`] of such wrapped messages.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/networkdb.rs"));
}

pub use clock::LamportClock;
pub use config::{Config, ConfigError, EAGER_PUSH_DELAY};
pub use types::{Change, EntryView, NetworkStats, Output, SendId, Stats, TablesError, WatchEvent};

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::membership::BroadcastQueue;

use bulksync::PendingSync;
use peers::{Node, NodeState, Peers};
use store::{Entry, Store};

/// This node's attachment to a network.
#[derive(Debug)]
struct LocalNetwork {
    /// Lamport time (network clock) of our latest event for it.
    ltime: u64,
    leaving: bool,
    reap_at: Option<Instant>,
    /// The join's bulk syncs have all finished (relays start then).
    in_sync: bool,
    /// Join bulk syncs still waiting for an answer.
    join_syncs: usize,
    /// Our own table events.
    broadcasts: BroadcastQueue,
    /// Others' table events we relay, sent only when ours leave room.
    relays: BroadcastQueue,
    messages_sent: u64,
}

impl LocalNetwork {
    fn new(ltime: u64) -> Self {
        LocalNetwork {
            ltime,
            leaving: false,
            reap_at: None,
            in_sync: false,
            join_syncs: 0,
            broadcasts: BroadcastQueue::default(),
            relays: BroadcastQueue::default(),
            messages_sent: 0,
        }
    }
}

/// When each periodic job runs next.
#[derive(Debug)]
struct Timers {
    gossip: Instant,
    bulk_sync: Instant,
    reap: Instant,
    retry: Instant,
    /// The next eager push, when table events are waiting for one.
    eager: Option<Instant>,
}

/// The NetworkDB state machine of one node.
#[derive(Debug)]
pub struct Tables {
    cfg: Config,
    rng: SmallRng,
    network_clock: LamportClock,
    table_clock: LamportClock,
    store: Store,
    peers: Peers,
    local: BTreeMap<String, LocalNetwork>,
    /// Network events, for memberlist's gossip.
    network_broadcasts: BroadcastQueue,
    /// Node events, for memberlist's gossip.
    node_broadcasts: BroadcastQueue,
    pending: Vec<PendingSync>,
    next_send: types::SendId,
    timers: Timers,
    outputs: VecDeque<Output>,
    stats: Stats,
}

impl Tables {
    /// Creates the node, knowing only itself, and staggers its periodic work
    /// randomly within one interval (as libnetwork's `triggerFunc`).
    ///
    /// # Errors
    /// The configuration's own validation error.
    pub fn new(cfg: Config, seed: u64, now: Instant) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut stagger = |d: Duration| now + d.mul_f64(rng.random::<f64>());
        let timers = Timers {
            gossip: stagger(cfg.gossip_interval),
            bulk_sync: stagger(cfg.bulk_sync_interval),
            reap: stagger(cfg.reap_period),
            retry: stagger(cfg.retry_interval),
            eager: None,
        };
        let mut peers = Peers::default();
        peers.nodes.insert(
            cfg.node_name.clone(),
            Node {
                state: NodeState::Active,
                ltime: 0,
                addr: None,
                reap_at: None,
            },
        );
        Ok(Tables {
            cfg,
            rng,
            network_clock: LamportClock::default(),
            table_clock: LamportClock::default(),
            store: Store::default(),
            peers,
            local: BTreeMap::new(),
            network_broadcasts: BroadcastQueue::default(),
            node_broadcasts: BroadcastQueue::default(),
            pending: Vec::new(),
            next_send: 0,
            timers,
            outputs: VecDeque::new(),
            stats: Stats::default(),
        })
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.cfg.node_name
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The next instruction for the shell, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Tables::handle_timeout`] next needs calling.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = &self.timers;
        let mut periodic = t.gossip.min(t.bulk_sync).min(t.reap).min(t.retry);
        if let Some(e) = t.eager {
            periodic = periodic.min(e);
        }
        Some(
            self.pending
                .iter()
                .map(|p| p.deadline)
                .fold(periodic, Instant::min),
        )
    }

    /// Moves the gossip rounds onto another timer's grid (the first round
    /// at `at`, then every gossip interval), so that a node running both
    /// wakes once for the two.
    pub fn align_gossip(&mut self, at: Instant) {
        self.timers.gossip = at;
    }

    /// Runs the periodic work due at `now` (gossip, bulk sync, reaper,
    /// reconnects) and fails bulk syncs whose answer is overdue.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire_syncs(now);
        if self.timers.eager.is_some_and(|e| now >= e) {
            self.timers.eager = None;
            self.eager_push(now);
        }
        if now >= self.timers.gossip {
            self.timers.gossip = next(self.timers.gossip, self.cfg.gossip_interval, now);
            self.gossip();
        }
        if now >= self.timers.bulk_sync {
            self.timers.bulk_sync = next(self.timers.bulk_sync, self.cfg.bulk_sync_interval, now);
            self.bulk_sync_tables(now);
        }
        if now >= self.timers.reap {
            self.timers.reap = next(self.timers.reap, self.cfg.reap_period, now);
            self.reap(now);
        }
        if now >= self.timers.retry {
            self.timers.retry = next(self.timers.retry, self.cfg.retry_interval, now);
            self.reconnect_one();
        }
    }

    /// Counters, queue lengths and entries per network.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.networks = self
            .local
            .iter()
            .map(|(nid, n)| {
                let mut ns = NetworkStats {
                    peers: self.peers.network_nodes.get(nid).map_or(0, |p| p.len()),
                    queued: n.broadcasts.len(),
                    queued_relays: n.relays.len(),
                    messages_sent: n.messages_sent,
                    leaving: n.leaving,
                    in_sync: n.in_sync,
                    ..NetworkStats::default()
                };
                for (_, _, e) in self.store.network(nid) {
                    if e.deleting {
                        ns.tombstones += 1;
                    } else if self.peers.is_failed(&e.node) {
                        ns.hidden += 1;
                    } else {
                        ns.entries += 1;
                    }
                }
                (nid.clone(), ns)
            })
            .collect();
        s.queued_cluster_events = self.network_broadcasts.len() + self.node_broadcasts.len();
        s.nodes_active = self.peers.count(NodeState::Active);
        s.nodes_failed = self.peers.count(NodeState::Failed);
        s.nodes_left = self.peers.count(NodeState::Left);
        s.bulk_syncs_pending = self.pending.len();
        s
    }

    // ----- helpers shared by the submodules ---------------------------------

    /// True when this node is in the network and not leaving it.
    fn joined(&self, nid: &str) -> bool {
        self.local.get(nid).is_some_and(|n| !n.leaving)
    }

    /// When the entries of `owner`, a failed member, are reaped; `None`
    /// when it has not failed.
    fn hidden_until(&self, owner: &str) -> Option<Instant> {
        self.peers
            .nodes
            .get(owner)
            .filter(|n| n.state == NodeState::Failed)
            .and_then(|n| n.reap_at)
    }

    /// True when the entry is shown to reads and watchers.
    fn visible(&self, e: &Entry) -> bool {
        !e.deleting && !self.peers.is_failed(&e.node)
    }

    /// Stores `new` at (net, table, key) and tells watchers what changed
    /// for them.
    fn apply(&mut self, net: &str, table: &str, key: &str, new: Entry) {
        let before = self
            .store
            .get(net, table, key)
            .filter(|e| self.visible(e))
            .map(|e| e.value.clone());
        let after = self.visible(&new).then(|| new.value.clone());
        let owner = new.node.clone();
        self.store.insert(net, table, key, new);
        self.notify(net, table, key, owner, before, after);
    }

    /// Removes (net, table, key) without a tombstone, telling watchers if
    /// it was visible.
    fn drop_entry(&mut self, net: &str, table: &str, key: &str) {
        if let Some(old) = self.store.remove(net, table, key) {
            if self.visible(&old) {
                self.notify(net, table, key, old.node, Some(old.value), None);
            }
        }
    }

    fn notify(
        &mut self,
        net: &str,
        table: &str,
        key: &str,
        owner: String,
        before: Option<Vec<u8>>,
        after: Option<Vec<u8>>,
    ) {
        let change = match (before, after) {
            (None, Some(value)) => Change::Created { value },
            (Some(prev), Some(value)) => Change::Updated { prev, value },
            (Some(prev), None) => Change::Deleted { prev },
            (None, None) => return,
        };
        self.outputs.push_back(Output::Watch(WatchEvent {
            network: net.to_string(),
            table: table.to_string(),
            key: key.to_string(),
            owner,
            change,
        }));
    }

    fn send(&mut self, to: &str, data: Vec<u8>, reliable: bool) -> SendId {
        self.next_send += 1;
        self.outputs.push_back(Output::Send {
            id: self.next_send,
            to: to.to_string(),
            data,
            reliable,
        });
        self.next_send
    }

    /// Up to `m` distinct random picks from `from`.
    fn random_nodes(&mut self, m: usize, mut from: Vec<String>) -> Vec<String> {
        use rand::seq::SliceRandom;
        from.shuffle(&mut self.rng);
        from.truncate(m);
        from
    }
}

/// The next run of a periodic job: one interval on, or one interval from
/// `now` if the caller fell behind.
fn next(prev: Instant, every: Duration, now: Instant) -> Instant {
    let n = prev + every;
    if n <= now {
        now + every
    } else {
        n
    }
}
