//! A NetworkDB node: [`Membership`] and [`Tables`] composed into one pure
//! state machine, wired as libnetwork wires NetworkDB onto memberlist.
//!
//! - The tables are membership's [`Delegate`]: their network and node events
//!   ride on membership's gossip (`GetBroadcasts`), and their push/pull
//!   state is built when a push/pull is (`LocalState`).
//! - Membership's events are routed into the tables: user messages
//!   (`NotifyMsg`), remote push/pull state (`MergeRemoteState`), members
//!   joining, failing (dead) and leaving, and the outcome of joins that were
//!   tables' reconnects.
//! - The tables' outputs are carried out through membership: sends become
//!   user messages (best-effort packets or reliable streams, a failed
//!   reliable one reported back by id), reconnects become membership joins.
//!
//! - Cluster-wide [`Infos`] ride beside the tables: in their own user
//!   messages, piggybacked after the tables' broadcasts, and appended to
//!   the tables' push/pull state (see [`crate::infos::codec`]); a user
//!   message that carries only infos stops there.
//!
//! Every input is followed by routing until both cores are quiet; what is
//! left for the shell (packets, streams, application events, watch events)
//! is drained with [`Node::poll_output`]. Like its parts, the node never
//! reads a clock, never touches a socket and owns no global RNG.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::infos::{self, InfoEvent, Infos};

mod sentinel;
use crate::keyring::NonceRng;
use crate::membership::{
    self, Delegate, Event, JoinId, Membership, NodeStatus, StreamCodecError, StreamId,
    StreamRequest, StreamResult,
};
use crate::tables::{self, SendId, Tables, WatchEvent};
use crate::wire::StreamMessage;
pub use sentinel::{SentinelConfig, SentinelStatus};

/// The tables and infos as membership's delegate, with an optional fixed
/// push/pull state (the stdio protocol's `set_state`, for memberlist-level
/// tests).
#[derive(Debug)]
pub struct App {
    tables: Tables,
    infos: Infos,
    fixed_state: Option<Vec<u8>>,
}

impl Delegate for App {
    /// The tables' network and node events first (small and rare), then
    /// infos in what room is left.
    fn get_broadcasts(&mut self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        let mut out = self.tables.get_broadcasts(overhead, limit);
        let used: usize = out.iter().map(|m| m.len() + overhead).sum();
        if used < limit {
            out.extend(self.infos.get_broadcasts(overhead, limit - used));
        }
        out
    }

    fn local_state(&mut self, join: bool) -> Option<Vec<u8>> {
        Some(match &self.fixed_state {
            Some(s) => s.clone(),
            None => infos::codec::append_to_state(
                self.tables.local_state(join),
                &self.infos.local_state(),
            ),
        })
    }
}

/// An instruction from the node to its shell.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Send one UDP datagram.
    Packet {
        /// Destination.
        to: SocketAddr,
        /// The datagram, fully framed.
        data: Vec<u8>,
    },
    /// Carry out a stream exchange (see [`StreamRequest`]).
    Stream(StreamRequest),
    /// A membership event for the application. User messages and push/pull
    /// state that are NetworkDB's are consumed by the tables and not
    /// reported; others (from hosts sharing the cluster) are.
    Event(Event),
    /// A visible table entry changed.
    Watch(WatchEvent),
    /// An info was written, expired or evicted by its group.
    Info(InfoEvent),
}

/// The tables' settings derived from membership's, as libnetwork derives
/// them from memberlist's: same node name, gossip interval, and bulk sync
/// every push/pull interval (30 s when push/pull is off); eager pushes of
/// new table events, early network joins held and push/pull news relayed
/// unless membership runs `memberlist_exact`.
pub fn tables_config(m: &membership::Config) -> tables::Config {
    let mut t = tables::Config::new(m.name.clone());
    if !m.gossip_interval.is_zero() {
        t.gossip_interval = m.gossip_interval;
    }
    if !m.push_pull_interval.is_zero() {
        t.bulk_sync_interval = m.push_pull_interval;
    }
    if m.memberlist_exact {
        // As libnetwork: table events wait for the gossip rounds.
        t.eager_push = None;
        t.hold_early_joins = None;
        t.relay_push_pull_news = false;
    }
    t
}

/// One node: membership and tables.
#[derive(Debug)]
pub struct Node {
    m: Membership<App>,
    /// Joins started for the tables' reconnects, and whom they reconnect.
    reconnects: HashMap<JoinId, String>,
    /// Reliable streams carrying tables' sends, and the tables' send ids.
    sends: HashMap<StreamId, SendId>,
    outputs: VecDeque<Output>,
    /// The cluster sentinel, once enabled.
    sentinel: Option<sentinel::Sentinel>,
}

/// Why a [`Node`] cannot be made. Variant names fit metric labels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The membership configuration is invalid.
    #[error(transparent)]
    Membership(#[from] membership::ConfigError),
    /// The tables configuration is invalid.
    #[error(transparent)]
    Tables(#[from] tables::ConfigError),
    /// The two configurations name different nodes.
    #[error("tables node name {tables:?} differs from the membership name {membership:?}: they must be equal")]
    NameMismatch {
        /// `tables::Config::node_name`.
        tables: String,
        /// `membership::Config::name`.
        membership: String,
    },
}

impl Node {
    /// Creates the node. `tcfg.node_name` MUST equal `mcfg.name`.
    ///
    /// # Errors
    /// Either configuration's validation error, or mismatched names.
    pub fn new(
        mcfg: membership::Config,
        tcfg: tables::Config,
        seed: u64,
        nonces: NonceRng,
        now: Instant,
    ) -> Result<Self, NodeError> {
        if tcfg.node_name != mcfg.name {
            return Err(NodeError::NameMismatch {
                tables: tcfg.node_name,
                membership: mcfg.name,
            });
        }
        let tables = Tables::new(tcfg, seed.rotate_left(17) ^ 0x7461_626c_6573, now)?;
        // The wall clock reads 0 until the shell anchors it
        // (`set_wall_clock`).
        let infos = Infos::new(infos::Config::new(mcfg.name.clone()), now, 0);
        let app = App {
            tables,
            infos,
            fixed_state: None,
        };
        let mut m = Membership::with_delegate(mcfg, seed, nonces, app, now)?;
        // Both gossip on the same interval (see `tables_config`); on the same
        // grid too, one wakeup serves both.
        let same_interval =
            m.config().gossip_interval == m.delegate().tables.config().gossip_interval;
        if let Some(at) = m.next_gossip_at().filter(|_| same_interval) {
            m.delegate_mut().tables.align_gossip(at);
        }
        Ok(Node {
            m,
            reconnects: HashMap::new(),
            sends: HashMap::new(),
            outputs: VecDeque::new(),
            sentinel: None,
        })
    }

    // ----- inputs (as Membership's) ---------------------------------------

    /// A received UDP datagram.
    pub fn handle_packet(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
        self.m.handle_packet(from, data, now);
        self.route(now);
    }

    /// A message read from an accepted stream; returns the reply to write.
    pub fn handle_stream(
        &mut self,
        from: SocketAddr,
        msg: StreamMessage,
        now: Instant,
    ) -> Option<Vec<u8>> {
        let r = self.m.handle_stream(from, msg, now);
        self.route(now);
        r
    }

    /// An accepted stream that could not be read; returns the error reply.
    pub fn handle_stream_error(
        &mut self,
        from: SocketAddr,
        error: &StreamCodecError,
        now: Instant,
    ) -> Option<Vec<u8>> {
        let r = self.m.handle_stream_error(from, error, now);
        self.route(now);
        r
    }

    /// The outcome of a [`StreamRequest`].
    pub fn handle_stream_result(&mut self, id: StreamId, result: StreamResult, now: Instant) {
        self.m.handle_stream_result(id, result, now);
        self.route(now);
    }

    /// A stream reply that could not be decrypted.
    pub fn record_decrypt_failure(&mut self, from: SocketAddr, reason: &str, now: Instant) {
        self.m.record_decrypt_failure(from, reason, now);
    }

    /// When [`Node::handle_timeout`] next needs calling.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let m = self.m.poll_timeout()?;
        let app = self.m.delegate();
        Some(
            [
                app.tables.poll_timeout(),
                app.infos.poll_timeout(),
                self.sentinel_timeout(),
            ]
            .into_iter()
            .flatten()
            .fold(m, Instant::min),
        )
    }

    /// Runs every timer due at `now`, in every core.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.m.handle_timeout(now);
        self.m.delegate_mut().tables.handle_timeout(now);
        self.m.delegate_mut().infos.handle_timeout(now);
        self.sentinel_tick(now);
        self.route(now);
    }

    /// Anchors the wall clock the infos stamp and expire by: it reads
    /// `unix_ms` (Unix milliseconds) at `now`. The shell MUST call it
    /// before the first info is written or received (until then the wall
    /// clock reads 0 and received infos never expire); it MAY call it again
    /// to follow clock corrections.
    pub fn set_wall_clock(&mut self, now: Instant, unix_ms: u64) {
        self.m.delegate_mut().infos.set_wall_clock(now, unix_ms);
        self.route(now);
    }

    /// The next instruction for the shell, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    // ----- commands ---------------------------------------------------------

    /// Runs `f` on the tables (an application call), then routes what it
    /// produced.
    pub fn with_tables<R>(&mut self, now: Instant, f: impl FnOnce(&mut Tables, Instant) -> R) -> R {
        let r = f(&mut self.m.delegate_mut().tables, now);
        self.route(now);
        r
    }

    /// Runs `f` on membership (an application call), then routes what it
    /// produced.
    pub fn with_membership<R>(
        &mut self,
        now: Instant,
        f: impl FnOnce(&mut Membership<App>, Instant) -> R,
    ) -> R {
        let r = f(&mut self.m, now);
        // A snapshot adopted or a member declared gone changes the count
        // without a join or leave event.
        let n = self.m.num_live();
        self.m.delegate_mut().infos.set_cluster_size(n);
        if self.sentinel.is_some() {
            for m in self.m.members() {
                self.sentinel_member(&m.name, m.status);
            }
        }
        self.route(now);
        r
    }

    /// Runs `f` on the infos (an application call), then routes what it
    /// produced.
    pub fn with_infos<R>(&mut self, now: Instant, f: impl FnOnce(&mut Infos, Instant) -> R) -> R {
        let r = f(&mut self.m.delegate_mut().infos, now);
        self.route(now);
        r
    }

    /// The infos, to read.
    pub fn infos(&self) -> &Infos {
        &self.m.delegate().infos
    }

    /// The tables, to read.
    pub fn tables(&self) -> &Tables {
        &self.m.delegate().tables
    }

    /// Membership, to read.
    pub fn membership(&self) -> &Membership<App> {
        &self.m
    }

    /// Reaps a member the control plane says departed (its Pod was
    /// deleted): membership marks it left and the tables drop its entries
    /// at once. See [`Membership::declare_departed`]. A dead member that
    /// membership has already forgotten (after its gossip-to-the-dead
    /// time) may still have hidden entries in the tables: those are
    /// dropped too. Returns whether anything changed.
    pub fn reap_departed(&mut self, name: &str, now: Instant) -> bool {
        if self.with_membership(now, |m, now| m.declare_departed(name, now)) {
            return true;
        }
        let hidden = self.tables().failed_members().iter().any(|n| n == name);
        if hidden {
            self.with_tables(now, |t, now| t.member_left(name, now));
        }
        hidden
    }

    /// Replaces the push/pull state with fixed bytes (`None`: the tables'
    /// state again). Peers that run tables then learn nothing of this
    /// node's networks by push/pull: for memberlist-level tests only.
    pub fn set_fixed_state(&mut self, state: Option<Vec<u8>>) {
        self.m.delegate_mut().fixed_state = state;
    }

    /// Leaves gracefully: the tables announce the leave (so peers drop this
    /// node's entries at once), then membership leaves.
    pub fn leave(&mut self, timeout: Duration, now: Instant) {
        self.m.delegate_mut().tables.announce_leave();
        self.m.leave(timeout, now);
        self.route(now);
    }

    /// Stops all activity.
    pub fn shutdown(&mut self) {
        self.m.shutdown();
        self.outputs.clear();
    }

    // ----- routing ----------------------------------------------------------

    /// Moves outputs between the cores until both are quiet.
    fn route(&mut self, now: Instant) {
        loop {
            let mut moved = false;
            while let Some(out) = self.m.poll_output() {
                moved = true;
                match out {
                    membership::Output::Packet { to, data } => {
                        self.outputs.push_back(Output::Packet { to, data });
                    }
                    membership::Output::Stream(req) => self.outputs.push_back(Output::Stream(req)),
                    membership::Output::Event(e) => self.membership_event(e, now),
                }
            }
            while let Some(out) = self.m.delegate_mut().tables.poll_output() {
                moved = true;
                self.tables_output(out, now);
            }
            while let Some(e) = self.m.delegate_mut().infos.poll_event() {
                self.outputs.push_back(Output::Info(e));
            }
            if !moved {
                return;
            }
        }
    }

    fn membership_event(&mut self, e: Event, now: Instant) {
        let me = self.m.name().to_string();
        if let Event::Join(m) | Event::Leave(m) = &e {
            let n = self.m.num_live();
            self.m.delegate_mut().infos.set_cluster_size(n);
            self.sentinel_member(&m.name, m.status);
        }
        let app = self.m.delegate_mut();
        let tables = &mut app.tables;
        let report = match &e {
            Event::Join(m) => {
                if m.name != me {
                    tables.member_joined(&m.name, m.addr, now);
                }
                true
            }
            Event::Leave(m) => {
                match m.status {
                    NodeStatus::Left => tables.member_left(&m.name, now),
                    _ => tables.member_failed(&m.name, now),
                }
                true
            }
            // NotifyMsg: infos and NetworkDB's own messages stop here.
            Event::UserMessage(data) => match infos::codec::decode(data) {
                Some(received) if infos::codec::is_infos_only(data) => {
                    app.infos.handle_infos(received, now);
                    false
                }
                _ => !tables.handle_message("", data, now),
            },
            // MergeRemoteState: infos beside NetworkDB's state.
            Event::RemoteState { data, join } => {
                if let Some(received) = infos::codec::decode(data) {
                    app.infos.handle_infos(received, now);
                }
                !app.tables.merge_remote_state(data, *join, now)
            }
            Event::JoinFinished { id, contacted, .. } => {
                if let Some(node) = self.reconnects.remove(id) {
                    tables.handle_reconnect_result(&node, *contacted > 0, now);
                    false
                } else {
                    if *contacted > 0 {
                        // libnetwork's clusterJoin: announce ourselves once in.
                        tables.announce_join();
                    }
                    true
                }
            }
            Event::SendFailed { id, error, .. } => match self.sends.remove(id) {
                Some(send) => {
                    tables.handle_send_result(send, Err(error.clone()), now);
                    false
                }
                None => true,
            },
            Event::Update(_) | Event::Conflict { .. } | Event::LeaveFinished { .. } => true,
        };
        if report {
            self.outputs.push_back(Output::Event(e));
        }
    }

    fn tables_output(&mut self, out: tables::Output, now: Instant) {
        match out {
            tables::Output::Send {
                id,
                to,
                data,
                reliable,
            } => {
                if reliable {
                    match self.m.send_reliable(&to, &data, now) {
                        Ok(stream) => {
                            self.sends.insert(stream, id);
                        }
                        Err(e) => {
                            self.m.delegate_mut().tables.handle_send_result(
                                id,
                                Err(e.to_string()),
                                now,
                            );
                        }
                    }
                } else if let Err(e) = self.m.send_best_effort(&to, &data) {
                    tracing::debug!(node = %to, error = %e, "table gossip not sent");
                }
            }
            // The tables keep the failed member's address (membership
            // forgets it after the gossip-to-the-dead time), so a long
            // partition still heals, as libnetwork's reconnectNode does.
            tables::Output::Reconnect { node, addr } => {
                let id = self.m.join(&[addr], now);
                self.reconnects.insert(id, node);
            }
            tables::Output::Watch(w) => self.outputs.push_back(Output::Watch(w)),
        }
    }
}

#[cfg(test)]
mod tests;
