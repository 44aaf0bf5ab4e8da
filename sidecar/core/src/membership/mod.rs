//! SWIM membership with Lifeguard, as hashicorp/memberlist runs it, as a
//! pure state machine.
//!
//! The core takes inputs — a received packet ([`Membership::handle_packet`]),
//! an inbound stream message ([`Membership::handle_stream`]), the result of a
//! stream it asked for ([`Membership::handle_stream_result`]), the passing of
//! time ([`Membership::handle_timeout`]) and application commands — and
//! queues [`Output`]s (packets to send, streams to open, events) that the
//! caller drains with [`Membership::poll_output`]. It never reads a clock,
//! never touches a socket and owns its RNG, seeded by the caller.

mod catchup;
mod codec;
mod config;
mod crypt;
mod delegate;
mod node;
mod probe;
mod queue;
mod suspicion;
mod table;
mod types;

pub use codec::{StreamCodec, StreamCodecError};
pub use config::{
    Config, ConfigError, Profile, PROTOCOL_VERSION_DEFAULT, PROTOCOL_VERSION_MAX,
    PROTOCOL_VERSION_MIN,
};
pub use delegate::{Delegate, NoDelegate};
pub use queue::{retransmit_limit, BroadcastQueue};
pub use suspicion::{suspicion_timeout, Awareness, Suspicion};
pub use table::Snapshot;
pub use types::{
    addr_from_wire, ip_to_wire, Event, JoinId, Member, NodeStatus, Output, Stats, StreamId,
    StreamRequest, StreamResult,
};

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::keyring::{Keyring, NonceRng};
use tracing::{debug, warn};

use crate::wire::{self, Message, PushNodeState, PushPull, StreamMessage};

use node::NodeState;

/// memberlist's assumed compound header overhead.
const COMPOUND_HEADER_OVERHEAD: usize = 2;
/// memberlist's assumed per-part overhead in a compound.
const COMPOUND_OVERHEAD: usize = 2;
/// The user-message type byte added to each user broadcast.
const USER_MSG_OVERHEAD: usize = 1;
/// Push/pull intervals scale up past this many members.
const PUSH_PULL_SCALE_THRESHOLD: usize = 32;
/// A conflict about the same name and address is reported at most this often.
const CONFLICT_REPORT_INTERVAL: Duration = Duration::from_secs(30);

/// Errors from application commands.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    /// The named member is not known.
    #[error("no member named {0:?} is known: check the name against the member list")]
    UnknownMember(String),
    /// Metadata over the limit.
    #[error("node metadata is {0} bytes, over the limit of {limit} bytes", limit = wire::META_MAX_SIZE)]
    MetaTooLarge(usize),
    /// The node has left or shut down.
    #[error("this node has left the cluster; start a new node to rejoin")]
    Left,
}

/// A one-shot timer the core asked for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Probe,
    ProbeTimeout(u32),
    ProbeDeadline(u32),
    Gossip,
    PushPull,
    Suspicion(String),
    AckExpire(u32),
    LeaveTimeout,
    CatchUp,
}

/// Who waits for an ack with a given sequence number.
#[derive(Debug)]
enum AckHandler {
    /// Our own probe.
    Probe,
    /// A ping we sent on behalf of another member's indirect probe.
    Indirect {
        reply_to: SocketAddr,
        orig_seq: u32,
        nack: bool,
    },
}

/// Why a stream was opened.
#[derive(Debug)]
enum StreamPurpose {
    PushPull {
        join: Option<JoinId>,
        to: SocketAddr,
        /// Started by the catch-up timer.
        catch_up: bool,
    },
    TcpPing {
        seq: u32,
    },
    UserMessage {
        to: String,
    },
}

#[derive(Debug)]
struct JoinState {
    pending: usize,
    contacted: usize,
    errors: Vec<String>,
}

#[derive(Debug)]
struct LeaveState {
    broadcast: queue::BroadcastId,
}

/// The membership state machine of one node, with the application's hooks
/// `D` (see [`Delegate`]).
#[derive(Debug)]
pub struct Membership<D = NoDelegate> {
    cfg: Config,
    rng: SmallRng,
    /// Members by name, copy-on-write over a shared snapshot, if any.
    nodes: table::NodeTable,
    /// Probe order (shuffled), including ourselves and recently dead nodes.
    order: table::Order,
    probe_index: usize,
    probe: Option<probe::Probe>,
    incarnation: u32,
    seq_no: u32,
    awareness: Awareness,
    suspicions: HashMap<String, Suspicion>,
    broadcasts: BroadcastQueue,
    user_broadcasts: BroadcastQueue,
    timers: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    timer_seq: u64,
    /// When the gossip timer is next due: gossip runs on a fixed grid, as
    /// memberlist's ticker does, so that others can share its wakeups.
    next_gossip: Option<Instant>,
    acks: HashMap<u32, AckHandler>,
    streams: HashMap<StreamId, StreamPurpose>,
    next_stream: StreamId,
    joins: HashMap<JoinId, JoinState>,
    next_join: JoinId,
    local_state: Vec<u8>,
    left: bool,
    leave: Option<LeaveState>,
    shut_down: bool,
    conflicts_reported: HashMap<(String, SocketAddr), Instant>,
    outputs: VecDeque<Output>,
    stats: Stats,
    keyring: Keyring,
    /// Nonces for AES-GCM; a CSPRNG (see [`Membership::with_nonce_rng`]).
    nonces: NonceRng,
    decrypt_failures: crypt::DecryptFailures,
    catch_up: catchup::CatchUp,
    delegate: D,
}

impl Membership<NoDelegate> {
    /// Creates the node, alive at incarnation 1, and arms its periodic work
    /// with a random stagger. Nonces for encryption come from a CSPRNG
    /// seeded from `seed`, so runs are reproducible: right for tests and
    /// simulation, wrong for production, where nodes sharing a key MUST
    /// NOT share nonce sequences: there use [`Membership::with_nonce_rng`]
    /// with an RNG seeded from OS entropy.
    ///
    /// # Errors
    /// The configuration's own validation error.
    pub fn new(cfg: Config, seed: u64, now: Instant) -> Result<Self, ConfigError> {
        let nonces = NonceRng::seed_from_u64(seed ^ 0x6e6f_6e63_6573_2121);
        Self::with_nonce_rng(cfg, seed, nonces, now)
    }

    /// As [`Membership::new`], with AES-GCM nonces drawn from `nonces`
    /// (production: `NonceRng::from_os_rng()`).
    ///
    /// # Errors
    /// The configuration's own validation error.
    pub fn with_nonce_rng(
        cfg: Config,
        seed: u64,
        nonces: NonceRng,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        Membership::with_delegate(cfg, seed, nonces, NoDelegate, now)
    }
}

impl<D: Delegate> Membership<D> {
    /// As [`Membership::with_nonce_rng`], with the application's hooks
    /// `delegate` (memberlist's `Config.Delegate`).
    ///
    /// # Errors
    /// The configuration's own validation error.
    pub fn with_delegate(
        cfg: Config,
        seed: u64,
        nonces: NonceRng,
        delegate: D,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let mut m = Membership {
            awareness: Awareness::new(cfg.awareness_max_multiplier),
            rng: SmallRng::seed_from_u64(seed),
            nodes: table::NodeTable::default(),
            order: table::Order::default(),
            probe_index: 0,
            probe: None,
            incarnation: 0,
            seq_no: 0,
            suspicions: HashMap::new(),
            broadcasts: BroadcastQueue::for_membership(&cfg),
            user_broadcasts: BroadcastQueue::default(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            next_gossip: None,
            acks: HashMap::new(),
            streams: HashMap::new(),
            next_stream: 0,
            joins: HashMap::new(),
            next_join: 0,
            local_state: Vec::new(),
            left: false,
            leave: None,
            shut_down: false,
            conflicts_reported: HashMap::new(),
            outputs: VecDeque::new(),
            stats: Stats::default(),
            keyring: Keyring::new(cfg.keys.iter().cloned()),
            nonces,
            decrypt_failures: crypt::DecryptFailures::default(),
            catch_up: catchup::CatchUp::default(),
            delegate,
            cfg,
        };
        let inc = m.next_incarnation();
        let me = m.local_alive(inc);
        m.alive_node(me, true, now);
        let probe_stagger = m.stagger(m.cfg.probe_interval);
        m.arm(now + probe_stagger, Timer::Probe);
        if !m.cfg.gossip_interval.is_zero() {
            let s = m.stagger(m.cfg.gossip_interval);
            m.next_gossip = Some(now + s);
            m.arm(now + s, Timer::Gossip);
        }
        if !m.cfg.push_pull_interval.is_zero() {
            // As memberlist: the first exchange comes one full (scaled)
            // interval after a random stagger; joins already did one.
            let s = m.stagger(m.cfg.push_pull_interval);
            let first = s + push_pull_scale(m.cfg.push_pull_interval, 1);
            m.arm(now + first, Timer::PushPull);
        }
        Ok(m)
    }

    // ----- inputs ---------------------------------------------------------

    /// Handles one received UDP datagram from `from`. Malformed input is
    /// counted and logged at debug level with the sender; it changes nothing.
    pub fn handle_packet(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
        if self.shut_down {
            return;
        }
        self.stats.packets_received += 1;
        let (label, body) = match wire::split_label_header(data) {
            Ok(v) => v,
            Err(e) => {
                self.stats.malformed += 1;
                debug!(%from, error = %e, "malformed packet label header");
                return;
            }
        };
        if label != self.cfg.label {
            self.stats.label_mismatches += 1;
            debug!(%from, label, expected = %self.cfg.label, "discarding packet with another cluster label");
            return;
        }
        let Some(body) = self.open_packet(from, body, now) else {
            return;
        };
        let parts = match wire::decode_packet(&body) {
            Ok(parts) => parts,
            Err(e) => {
                self.stats.malformed += 1;
                debug!(%from, error = %e, "malformed packet");
                return;
            }
        };
        for part in parts {
            match part {
                Ok(msg) => self.handle_message(from, msg, now),
                Err(e) => {
                    self.stats.malformed += 1;
                    debug!(%from, error = %e, "malformed message in packet");
                }
            }
        }
        self.flush_finished(now);
    }

    /// Parses one stream message from the start of `buf` (see
    /// [`StreamCodec::decode`]).
    ///
    /// # Errors
    /// As [`StreamCodec::decode`].
    pub fn decode_stream_frame(
        &self,
        buf: &[u8],
        inbound: bool,
    ) -> Result<Option<(StreamMessage, usize)>, StreamCodecError> {
        self.stream_codec().decode(buf, inbound)
    }

    /// A decoder for stream messages that the shell can use off the core's
    /// task (on each connection's own task). It holds the keyring as it is
    /// now.
    pub fn stream_codec(&self) -> StreamCodec {
        StreamCodec {
            label: self.cfg.label.clone(),
            keyring: self.keyring.clone(),
            verify_incoming: self.cfg.gossip_verify_incoming,
        }
    }

    /// Handles a message read from an accepted stream; returns the bytes to
    /// write back, if any.
    pub fn handle_stream(
        &mut self,
        from: SocketAddr,
        msg: StreamMessage,
        now: Instant,
    ) -> Option<Vec<u8>> {
        if self.shut_down {
            return None;
        }
        let reply = match msg {
            StreamMessage::Ping(p) => {
                if !p.node.is_empty() && p.node != self.cfg.name {
                    debug!(%from, node = %p.node, "stream ping for another node");
                    return None;
                }
                let ack = StreamMessage::Ack(wire::Ack {
                    seq_no: p.seq_no,
                    payload: Vec::new(),
                });
                Some(self.seal_stream(&ack, false))
            }
            StreamMessage::PushPull(pp) => {
                let local = self.local_push_pull(pp.join);
                let reply = self.seal_stream(&local, false);
                self.merge_remote(pp, now);
                Some(reply)
            }
            StreamMessage::User(data) => {
                self.emit(Event::UserMessage(data));
                None
            }
            StreamMessage::Ack(_) | StreamMessage::Err(_) => {
                debug!(%from, "unexpected message opening a stream");
                None
            }
        };
        self.flush_finished(now);
        reply
    }

    /// Hands back the outcome of a [`StreamRequest`]: the reply message
    /// (`Ok(None)` when no reply was expected) or an error text.
    pub fn handle_stream_result(&mut self, id: StreamId, result: StreamResult, now: Instant) {
        let Some(purpose) = self.streams.remove(&id) else {
            return;
        };
        match purpose {
            StreamPurpose::PushPull { join, to, catch_up } => {
                let outcome = match result {
                    Ok(Some(StreamMessage::PushPull(pp))) => {
                        let behind = pp.nodes.len() < self.order.len();
                        let news = self.catch_up.news;
                        self.merge_remote(pp, now);
                        if catch_up {
                            self.catch_up_answered(behind && news == self.catch_up.news, now);
                        }
                        Ok(())
                    }
                    Ok(Some(StreamMessage::Err(e))) => Err(format!("remote error: {}", e.error)),
                    Ok(Some(_)) => Err("peer answered push/pull with another message".into()),
                    Ok(None) => Err(
                        "peer closed the stream without answering; a peer hangs up like this when its cluster label or encryption keys differ from ours"
                            .into(),
                    ),
                    Err(e) => Err(e),
                };
                if let Err(e) = &outcome {
                    debug!(%to, error = %e, "push/pull failed");
                }
                if let Some(jid) = join {
                    self.join_progress(jid, to, outcome);
                }
            }
            StreamPurpose::TcpPing { seq } => {
                if let Ok(Some(StreamMessage::Ack(ack))) = &result {
                    if let Some(p) = self.probe.as_mut() {
                        if p.seq == seq && ack.seq_no == seq {
                            p.tcp_contact = true;
                        }
                    }
                } else if let Err(e) = result {
                    debug!(seq, error = %e, "fallback TCP ping failed");
                }
            }
            StreamPurpose::UserMessage { to } => {
                if let Err(error) = result {
                    debug!(node = %to, %error, "reliable user message not delivered");
                    self.emit(Event::SendFailed { id, to, error });
                }
            }
        }
        self.flush_finished(now);
    }

    /// When [`Membership::handle_timeout`] next needs calling.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.shut_down {
            return None;
        }
        self.timers.peek().map(|Reverse((t, _, _))| *t)
    }

    /// When the next gossip round is due (`None` when gossip is off). The
    /// rounds fall on a fixed grid of the gossip interval.
    pub fn next_gossip_at(&self) -> Option<Instant> {
        self.next_gossip
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((t, _, _))) = self.timers.peek() {
            if *t > now || self.shut_down {
                break;
            }
            let Some(Reverse((_, _, timer))) = self.timers.pop() else {
                break;
            };
            self.fire(timer, now);
        }
        self.flush_finished(now);
    }

    /// The next instruction for the shell, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    // ----- commands -------------------------------------------------------

    /// Joins through `seeds` with a push/pull to each; [`Event::JoinFinished`]
    /// reports the outcome.
    pub fn join(&mut self, seeds: &[SocketAddr], now: Instant) -> JoinId {
        self.next_join += 1;
        let id = self.next_join;
        self.joins.insert(
            id,
            JoinState {
                pending: seeds.len(),
                contacted: 0,
                errors: Vec::new(),
            },
        );
        if seeds.is_empty() {
            self.join_finish(id);
        }
        for seed in seeds {
            self.push_pull(*seed, Some(id), now);
        }
        id
    }

    /// Sends `data` to the member `to` in one UDP packet, without retries.
    ///
    /// # Errors
    /// The member is unknown.
    pub fn send_best_effort(&mut self, to: &str, data: &[u8]) -> Result<(), CommandError> {
        let node = self
            .nodes
            .get(to)
            .ok_or_else(|| CommandError::UnknownMember(to.to_string()))?;
        let addr = node.member.addr;
        let mut msg = Vec::with_capacity(data.len() + 1);
        Message::User(data.to_vec()).encode(&mut msg);
        self.send_packet(addr, None, msg);
        Ok(())
    }

    /// Sends `data` to the member `to` over a stream. Returns the stream's
    /// id; if delivery fails, [`Event::SendFailed`] reports it with this id
    /// (success is not reported).
    ///
    /// # Errors
    /// The member is unknown.
    pub fn send_reliable(
        &mut self,
        to: &str,
        data: &[u8],
        now: Instant,
    ) -> Result<StreamId, CommandError> {
        let addr = self
            .nodes
            .get(to)
            .ok_or_else(|| CommandError::UnknownMember(to.to_string()))?
            .member
            .addr;
        let bytes = self.seal_stream(&StreamMessage::User(data.to_vec()), true);
        Ok(self.open_stream(
            addr,
            bytes,
            false,
            now,
            StreamPurpose::UserMessage { to: to.to_string() },
        ))
    }

    /// Queues `data` as a user broadcast, piggybacked on gossip.
    pub fn broadcast(&mut self, data: Vec<u8>) {
        self.user_broadcasts.push(None, data, false);
        self.user_broadcasts.prune(self.cfg.max_queued_broadcasts);
    }

    /// The application's hooks.
    pub fn delegate(&self) -> &D {
        &self.delegate
    }

    /// The application's hooks, mutably.
    pub fn delegate_mut(&mut self) -> &mut D {
        &mut self.delegate
    }

    /// Sets the user state sent on push/pull when the delegate offers none.
    pub fn set_local_state(&mut self, data: Vec<u8>) {
        self.local_state = data;
    }

    /// Changes this node's metadata and announces it with a new incarnation.
    ///
    /// # Errors
    /// Metadata over 512 bytes, or the node has left.
    pub fn set_meta(&mut self, meta: Vec<u8>, now: Instant) -> Result<(), CommandError> {
        if meta.len() > wire::META_MAX_SIZE {
            return Err(CommandError::MetaTooLarge(meta.len()));
        }
        if self.left {
            return Err(CommandError::Left);
        }
        self.cfg.meta = meta;
        let inc = self.next_incarnation();
        let a = self.local_alive(inc);
        self.alive_node(a, true, now);
        Ok(())
    }

    /// Leaves gracefully: broadcasts that this node left and reports
    /// [`Event::LeaveFinished`] once the broadcast is out or `timeout` passed.
    /// The node keeps answering probes until shut down.
    pub fn leave(&mut self, timeout: Duration, now: Instant) {
        if self.left {
            self.emit(Event::LeaveFinished {
                broadcast_sent: true,
            });
            return;
        }
        self.left = true;
        let inc = self.local().map(|n| n.member.incarnation).unwrap_or(0);
        let d = wire::Dead {
            incarnation: inc,
            node: self.cfg.name.clone(),
            from: self.cfg.name.clone(),
        };
        self.dead_node(d, now);
        let others_alive = self
            .nodes
            .values()
            .any(|n| n.member.name != self.cfg.name && n.member.status == NodeStatus::Alive);
        if !others_alive || self.leave.is_none() {
            self.leave = None;
            self.emit(Event::LeaveFinished {
                broadcast_sent: true,
            });
        } else {
            self.arm(now + timeout, Timer::LeaveTimeout);
        }
    }

    /// Takes `name` as gone for good because the control plane says so (its
    /// Pod was deleted): the member is marked left at its current
    /// incarnation at once, with [`Event::Leave`], so the tables drop its
    /// entries now rather than hiding them until the reap. Nothing is
    /// broadcast: every member hears it from the control plane itself. A
    /// process that is in fact still running refutes with a higher
    /// incarnation, as it would refute a death. Returns whether anything
    /// changed (false for this node itself, an unknown name, or a member
    /// already left).
    pub fn declare_departed(&mut self, name: &str, now: Instant) -> bool {
        if name == self.cfg.name {
            return false;
        }
        let Some(state) = self.nodes.get_mut(name) else {
            return false;
        };
        if state.member.status == NodeStatus::Left {
            return false;
        }
        // Alive/Suspect/Dead => Left, on the control plane's word.
        state.member.status = NodeStatus::Left;
        state.state_change = now;
        let member = state.member.clone();
        self.suspicions.remove(name);
        self.emit(Event::Leave(member));
        true
    }

    /// Stops all activity: no more timers, outputs or events.
    pub fn shutdown(&mut self) {
        self.shut_down = true;
        self.timers.clear();
    }

    // ----- queries --------------------------------------------------------

    /// Every member known, including dead and left ones, sorted by name.
    pub fn members(&self) -> Vec<Member> {
        let mut v: Vec<Member> = self.nodes.values().map(|n| n.member.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// One member by name.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.nodes.get(name).map(|n| &n.member)
    }

    /// Members alive or suspect (as memberlist's `NumMembers`).
    pub fn num_live(&self) -> usize {
        self.nodes
            .values()
            .filter(|n| !n.member.status.is_gone())
            .count()
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Lifeguard health score: 0 is healthy.
    pub fn health_score(&self) -> usize {
        self.awareness.score()
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Membership broadcasts waiting to be sent.
    pub fn queued_broadcasts(&self) -> usize {
        self.broadcasts.len() + self.user_broadcasts.len()
    }

    // ----- timers ---------------------------------------------------------

    fn arm(&mut self, at: Instant, timer: Timer) {
        self.timer_seq += 1;
        self.timers.push(Reverse((at, self.timer_seq, timer)));
    }

    /// A uniformly random duration below `upto` from this node's generator
    /// (seeded, so a simulation repeats).
    pub(crate) fn random_below(&mut self, upto: Duration) -> Duration {
        self.stagger(upto)
    }

    fn stagger(&mut self, interval: Duration) -> Duration {
        let nanos = interval.as_nanos().max(1) as u64;
        Duration::from_nanos(self.rng.random_range(0..nanos))
    }

    fn fire(&mut self, timer: Timer, now: Instant) {
        match timer {
            Timer::Probe => self.probe_tick(now),
            Timer::ProbeTimeout(seq) => self.probe_timeout(seq, now),
            Timer::ProbeDeadline(seq) => self.probe_deadline(seq, now),
            Timer::Gossip => {
                self.gossip(now);
                // The next tick of the grid; a late wakeup skips the ticks
                // it missed (as a Go ticker drops them).
                let every = self.cfg.gossip_interval;
                let mut at = self.next_gossip.unwrap_or(now) + every;
                if at <= now {
                    at = now + every;
                }
                self.next_gossip = Some(at);
                self.arm(at, Timer::Gossip);
            }
            Timer::PushPull => {
                self.periodic_push_pull(now);
                self.catch_up_refill();
                let at = now + push_pull_scale(self.cfg.push_pull_interval, self.order.len());
                self.arm(at, Timer::PushPull);
            }
            Timer::Suspicion(name) => self.suspicion_expired(name, now),
            Timer::AckExpire(seq) => {
                if let Some(AckHandler::Indirect {
                    reply_to,
                    orig_seq,
                    nack: true,
                }) = self.acks.remove(&seq)
                {
                    // The target did not answer in time: tell the prober we tried.
                    self.send_msg(reply_to, &Message::Nack(wire::Nack { seq_no: orig_seq }));
                }
            }
            Timer::CatchUp => self.catch_up_fire(now),
            Timer::LeaveTimeout => {
                if self.leave.take().is_some() {
                    warn!("leave broadcast not fully sent before the timeout");
                    self.emit(Event::LeaveFinished {
                        broadcast_sent: false,
                    });
                }
            }
        }
    }

    // ----- sending --------------------------------------------------------

    fn emit(&mut self, e: Event) {
        if let Event::Join(m) | Event::Leave(m) = &e {
            if m.name != self.cfg.name {
                self.catch_up.news += 1;
            }
        }
        if !self.shut_down {
            self.outputs.push_back(Output::Event(e));
        }
    }

    fn label_overhead(&self) -> usize {
        if self.cfg.label.is_empty() {
            0
        } else {
            2 + self.cfg.label.len()
        }
    }

    /// Bytes a packet body may use after framing overheads.
    fn packet_budget(&self) -> usize {
        self.cfg
            .udp_buffer_size
            .saturating_sub(COMPOUND_HEADER_OVERHEAD + self.label_overhead() + self.seal_overhead())
    }

    /// Sends `msg` with as many broadcasts piggybacked as fit. Like
    /// memberlist, direct replies and probes carry no CRC; only gossip and
    /// the buddy-system probe, which know their target node, do.
    fn send_msg(&mut self, to: SocketAddr, msg: &Message) {
        let mut first = Vec::new();
        msg.encode(&mut first);
        let avail = self.packet_budget().saturating_sub(first.len());
        let extra = self.take_broadcasts(COMPOUND_OVERHEAD, avail);
        if extra.is_empty() {
            self.send_packet(to, None, first);
        } else {
            let mut parts = Vec::with_capacity(extra.len() + 1);
            parts.push(first);
            parts.extend(extra);
            self.send_packet(to, None, wire::encode_compound(&parts));
        }
    }

    /// Frames and emits one packet: compression when it helps, CRC for
    /// peers on protocol 5 and up, encryption, label.
    fn send_packet(&mut self, to: SocketAddr, pmax: Option<u8>, mut body: Vec<u8>) {
        if self.shut_down {
            return;
        }
        if self.cfg.enable_compression {
            let c = wire::compress_payload(&body);
            if c.len() < body.len() {
                body = c;
            }
        }
        if pmax.is_some_and(|p| p >= 5) {
            body = wire::add_crc(&body);
        }
        let sealed = self.seal_packet(body);
        let data = wire::add_label_header(&self.cfg.label, &sealed);
        self.stats.packets_sent += 1;
        self.outputs.push_back(Output::Packet { to, data });
    }

    fn open_stream(
        &mut self,
        to: SocketAddr,
        data: Vec<u8>,
        expect_reply: bool,
        now: Instant,
        purpose: StreamPurpose,
    ) -> StreamId {
        self.next_stream += 1;
        let id = self.next_stream;
        let deadline = match &purpose {
            StreamPurpose::TcpPing { .. } => self
                .probe
                .as_ref()
                .map(|p| p.deadline)
                .unwrap_or(now + self.cfg.probe_interval),
            _ => now + self.cfg.tcp_timeout,
        };
        self.streams.insert(id, purpose);
        if !self.shut_down {
            self.outputs.push_back(Output::Stream(StreamRequest {
                id,
                to,
                data,
                expect_reply,
                deadline,
            }));
        }
        id
    }

    /// Membership broadcasts first, then the delegate's (as memberlist's
    /// `getBroadcasts`), then user broadcasts, each in the space left.
    fn take_broadcasts(&mut self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        // The transmit floor is for membership news only: user broadcasts
        // keep memberlist's count.
        let transmit = retransmit_limit(self.cfg.retransmit_mult, self.order.len());
        let news_transmit = self.transmit_limit();
        let mut msgs = self.broadcasts.take(overhead, limit, news_transmit);
        let mut used: usize = msgs.iter().map(|m| m.len() + overhead).sum();
        let avail = limit.saturating_sub(used);
        if avail > overhead + USER_MSG_OVERHEAD {
            let extra = self
                .delegate
                .get_broadcasts(overhead + USER_MSG_OVERHEAD, avail);
            for data in extra {
                used += data.len() + overhead + USER_MSG_OVERHEAD;
                let mut framed = Vec::with_capacity(data.len() + 1);
                Message::User(data).encode(&mut framed);
                msgs.push(framed);
            }
        }
        let avail = limit.saturating_sub(used);
        if avail > overhead + USER_MSG_OVERHEAD && !self.user_broadcasts.is_empty() {
            for data in self
                .user_broadcasts
                .take(overhead + USER_MSG_OVERHEAD, avail, transmit)
            {
                let mut framed = Vec::with_capacity(data.len() + 1);
                Message::User(data).encode(&mut framed);
                msgs.push(framed);
            }
        }
        msgs
    }

    /// Queues a broadcast about `node`, replacing older news of it.
    fn broadcast_about(&mut self, node: &str, msg: &Message, notify: bool) -> queue::BroadcastId {
        let mut buf = Vec::new();
        msg.encode(&mut buf);
        let id = self.broadcasts.push(Some(node.to_string()), buf, notify);
        self.broadcasts.prune(self.cfg.max_queued_broadcasts);
        id
    }

    /// Reports finished leave broadcasts.
    fn flush_finished(&mut self, now: Instant) {
        self.catch_up_check(now);
        let finished = self.broadcasts.take_finished();
        if let Some(l) = &self.leave {
            if finished.contains(&l.broadcast) {
                self.leave = None;
                self.emit(Event::LeaveFinished {
                    broadcast_sent: true,
                });
            }
        }
    }

    // ----- gossip and push/pull -------------------------------------------

    fn gossip(&mut self, now: Instant) {
        let dead_time = self.cfg.gossip_to_the_dead_time;
        let me = self.cfg.name.clone();
        let targets = self.random_nodes(self.cfg.gossip_nodes, |n| {
            n.member.name == me
                || match n.member.status {
                    NodeStatus::Alive | NodeStatus::Suspect => false,
                    NodeStatus::Dead => now.saturating_duration_since(n.state_change) > dead_time,
                    NodeStatus::Left => true,
                }
        });
        let budget = self.packet_budget();
        for (addr, pmax, status) in targets {
            // A dead target may be alive across a partition and is told
            // the news, as memberlist does; but Gossamer does not count
            // that towards the messages' transmit limits, so a leave or a
            // death is not used up on members that cannot pass it on.
            let msgs = if status.is_gone() && !self.cfg.memberlist_exact {
                self.broadcasts.peek(COMPOUND_OVERHEAD, budget)
            } else {
                self.take_broadcasts(COMPOUND_OVERHEAD, budget)
            };
            if msgs.is_empty() {
                if status.is_gone() && !self.cfg.memberlist_exact {
                    continue;
                }
                return;
            }
            if msgs.len() == 1 {
                let only = msgs.into_iter().next().unwrap_or_default();
                self.send_packet(addr, Some(pmax), only);
            } else {
                for chunk in msgs.chunks(255) {
                    let c = wire::encode_compound(chunk);
                    self.send_packet(addr, Some(pmax), c);
                }
            }
        }
    }

    fn periodic_push_pull(&mut self, now: Instant) {
        let me = self.cfg.name.clone();
        let target = self.random_nodes(1, |n| {
            n.member.name == me || n.member.status != NodeStatus::Alive
        });
        if let Some((addr, _, _)) = target.first() {
            self.push_pull(*addr, None, now);
        }
    }

    fn push_pull(&mut self, to: SocketAddr, join: Option<JoinId>, now: Instant) {
        self.start_push_pull(to, join, false, now);
    }

    fn start_push_pull(
        &mut self,
        to: SocketAddr,
        join: Option<JoinId>,
        catch_up: bool,
        now: Instant,
    ) {
        let msg = self.local_push_pull(join.is_some());
        let data = self.seal_stream(&msg, true);
        let purpose = StreamPurpose::PushPull { join, to, catch_up };
        self.open_stream(to, data, true, now, purpose);
    }

    fn local_push_pull(&mut self, join: bool) -> StreamMessage {
        let user_state = self
            .delegate
            .local_state(join)
            .unwrap_or_else(|| self.local_state.clone());
        let nodes = self
            .order
            .iter()
            .filter_map(|name| self.nodes.get(name))
            .map(|n| PushNodeState {
                name: n.member.name.clone(),
                addr: ip_to_wire(&n.member.addr),
                port: n.member.addr.port(),
                meta: n.member.meta.clone(),
                incarnation: n.member.incarnation,
                state: n.member.status as u8,
                vsn: n.member.vsn.to_vec(),
            })
            .collect();
        StreamMessage::PushPull(PushPull {
            join,
            nodes,
            user_state,
        })
    }

    /// Merges a peer's push/pull: its node states first, then its user
    /// state, as memberlist does. The order matters to the delegate:
    /// NetworkDB ignores network attachments of nodes it has not been told
    /// of, so the joins must reach it before the state that names them.
    fn merge_remote(&mut self, pp: PushPull, now: Instant) {
        for r in pp.nodes {
            let Some(status) = NodeStatus::from_wire(r.state) else {
                debug!(node = %r.name, state = r.state, "push/pull entry with unknown state");
                continue;
            };
            match status {
                // Alive in their view: treat as an alive message.
                NodeStatus::Alive => {
                    let a = wire::Alive {
                        incarnation: r.incarnation,
                        node: r.name,
                        addr: r.addr,
                        port: r.port,
                        meta: r.meta,
                        vsn: r.vsn,
                    };
                    self.alive_node(a, false, now);
                }
                // Left: the node said so itself.
                NodeStatus::Left => {
                    let d = wire::Dead {
                        incarnation: r.incarnation,
                        node: r.name.clone(),
                        from: r.name,
                    };
                    self.dead_node(d, now);
                }
                // Dead or suspect in their view: we only suspect it, and let it refute.
                NodeStatus::Dead | NodeStatus::Suspect => {
                    let s = wire::Suspect {
                        incarnation: r.incarnation,
                        node: r.name,
                        from: self.cfg.name.clone(),
                    };
                    self.suspect_node(s, now);
                }
            }
        }
        if !pp.user_state.is_empty() {
            self.emit(Event::RemoteState {
                data: pp.user_state,
                join: pp.join,
            });
        }
    }

    fn join_progress(&mut self, id: JoinId, to: SocketAddr, outcome: Result<(), String>) {
        let Some(j) = self.joins.get_mut(&id) else {
            return;
        };
        j.pending = j.pending.saturating_sub(1);
        match outcome {
            Ok(()) => j.contacted += 1,
            Err(e) => j.errors.push(format!("{to}: {e}")),
        }
        if j.pending == 0 {
            self.join_finish(id);
        }
    }

    fn join_finish(&mut self, id: JoinId) {
        if let Some(j) = self.joins.remove(&id) {
            self.emit(Event::JoinFinished {
                id,
                contacted: j.contacted,
                errors: j.errors,
            });
        }
    }

    // ----- helpers ----------------------------------------------------------

    fn next_incarnation(&mut self) -> u32 {
        self.incarnation = self.incarnation.wrapping_add(1);
        self.incarnation
    }

    fn next_seq(&mut self) -> u32 {
        self.seq_no = self.seq_no.wrapping_add(1);
        self.seq_no
    }

    fn local(&self) -> Option<&NodeState> {
        self.nodes.get(&self.cfg.name)
    }

    fn local_vsn(&self) -> [u8; 6] {
        let d = self.cfg.delegate_versions;
        [
            PROTOCOL_VERSION_MIN,
            PROTOCOL_VERSION_MAX,
            self.cfg.protocol_version,
            d[0],
            d[1],
            d[2],
        ]
    }

    fn local_alive(&self, incarnation: u32) -> wire::Alive {
        wire::Alive {
            incarnation,
            node: self.cfg.name.clone(),
            addr: ip_to_wire(&self.cfg.advertise),
            port: self.cfg.advertise.port(),
            meta: self.cfg.meta.clone(),
            vsn: self.local_vsn().to_vec(),
        }
    }

    /// Up to `k` distinct random members not excluded, as memberlist picks
    /// them: random probes of the node list, at most `3 * n` of them.
    fn random_nodes(
        &mut self,
        k: usize,
        exclude: impl Fn(&NodeState) -> bool,
    ) -> Vec<(SocketAddr, u8, NodeStatus)> {
        let n = self.order.len();
        let mut picked: Vec<usize> = Vec::with_capacity(k);
        let mut out = Vec::with_capacity(k);
        if n == 0 {
            return out;
        }
        for _ in 0..3 * n {
            if picked.len() >= k {
                break;
            }
            let idx = self.rng.random_range(0..n);
            if picked.contains(&idx) {
                continue;
            }
            let Some(node) = self.nodes.get(&self.order[idx]) else {
                continue;
            };
            if exclude(node) {
                continue;
            }
            picked.push(idx);
            out.push((
                node.member.addr,
                node.member.protocol_max(),
                node.member.status,
            ));
        }
        out
    }
}

/// memberlist's push/pull interval scaling: unchanged up to 32 members, then
/// one more interval per doubling.
pub fn push_pull_scale(interval: Duration, n: usize) -> Duration {
    if n <= PUSH_PULL_SCALE_THRESHOLD {
        return interval;
    }
    let mult = ((n as f64).log2() - (PUSH_PULL_SCALE_THRESHOLD as f64).log2()).ceil() + 1.0;
    interval * (mult as u32)
}

#[cfg(test)]
mod tests;
