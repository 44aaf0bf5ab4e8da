//! What the simulator drives: a membership core alone, or the composed
//! [`Node`] (membership and tables, wired as production wires them).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rand::SeedableRng;

use crate::keyring::NonceRng;
use crate::membership::{
    self, Config, Delegate, Membership, NoDelegate, Snapshot, StreamCodecError, StreamId,
    StreamResult,
};
use crate::node::{self, App, Node, NodeError, Output};
use crate::tables;
use crate::wire::StreamMessage;

/// What a simulated [`Node`] is built from: membership's settings and the
/// tables'.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Membership's settings.
    pub membership: Config,
    /// The tables' settings. [`Core::config_for`] derives them from
    /// membership's ([`node::tables_config`]); a change to membership's
    /// intervals afterwards does not carry over, set both.
    pub tables: tables::Config,
}

/// A pure state machine the simulator can run: the inputs and outputs of
/// [`Membership`], which [`Node`] shares. Outputs are [`node::Output`]s; a
/// bare membership core never emits [`Output::Watch`].
pub trait Core: Sized {
    /// The membership delegate inside.
    type D: Delegate;

    /// Everything one core is built from.
    type Config: Clone;

    /// The configuration of a core whose membership runs with `m`, the
    /// rest at its defaults.
    fn config_for(m: Config) -> Self::Config;

    /// The membership part of a configuration.
    fn membership_config(cfg: &Self::Config) -> &Config;

    /// A fresh core, alone, at incarnation 1. Nonces are seeded from
    /// `seed` too: reproducible, for simulation only.
    ///
    /// # Errors
    /// The configuration is invalid.
    fn create(cfg: Self::Config, seed: u64, now: Instant) -> Result<Self, NodeError>;

    /// Starts from a shared converged member list.
    fn adopt_snapshot(&mut self, snapshot: Arc<Snapshot>, now: Instant);

    /// The membership core, to read.
    fn membership(&self) -> &Membership<Self::D>;

    /// Runs `f` on the membership core, then routes what it produced.
    fn with_membership<R>(
        &mut self,
        now: Instant,
        f: impl FnOnce(&mut Membership<Self::D>, Instant) -> R,
    ) -> R;

    /// A received datagram.
    fn handle_packet(&mut self, from: SocketAddr, data: &[u8], now: Instant);

    /// A message read from an accepted stream; the reply to write.
    fn handle_stream(
        &mut self,
        from: SocketAddr,
        msg: StreamMessage,
        now: Instant,
    ) -> Option<Vec<u8>>;

    /// An accepted stream that could not be read; the error reply to write
    /// (none: the stream is dropped).
    fn handle_stream_error(
        &mut self,
        from: SocketAddr,
        e: &StreamCodecError,
        now: Instant,
    ) -> Option<Vec<u8>>;

    /// The outcome of a stream request.
    fn handle_stream_result(&mut self, id: StreamId, result: StreamResult, now: Instant);

    /// When the next timer is due.
    fn poll_timeout(&self) -> Option<Instant>;

    /// Runs the timers due at `now`.
    fn handle_timeout(&mut self, now: Instant);

    /// The next instruction for the network (or the application).
    fn poll_output(&mut self) -> Option<Output>;

    /// Stops all activity (a crash).
    fn shutdown(&mut self);

    /// Anchors the wall clock (Unix ms at `now`), for cores that read one.
    fn set_wall_clock(&mut self, _now: Instant, _unix_ms: u64) {}
}

impl Core for Membership<NoDelegate> {
    type D = NoDelegate;
    type Config = Config;

    fn config_for(m: Config) -> Config {
        m
    }

    fn membership_config(cfg: &Config) -> &Config {
        cfg
    }

    fn create(cfg: Config, seed: u64, now: Instant) -> Result<Self, NodeError> {
        Ok(Membership::new(cfg, seed, now)?)
    }

    fn adopt_snapshot(&mut self, snapshot: Arc<Snapshot>, now: Instant) {
        Membership::adopt_snapshot(self, snapshot, now);
    }

    fn membership(&self) -> &Membership<NoDelegate> {
        self
    }

    fn with_membership<R>(
        &mut self,
        now: Instant,
        f: impl FnOnce(&mut Membership<NoDelegate>, Instant) -> R,
    ) -> R {
        f(self, now)
    }

    fn handle_packet(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
        Membership::handle_packet(self, from, data, now);
    }

    fn handle_stream(
        &mut self,
        from: SocketAddr,
        msg: StreamMessage,
        now: Instant,
    ) -> Option<Vec<u8>> {
        Membership::handle_stream(self, from, msg, now)
    }

    fn handle_stream_error(
        &mut self,
        from: SocketAddr,
        e: &StreamCodecError,
        now: Instant,
    ) -> Option<Vec<u8>> {
        Membership::handle_stream_error(self, from, e, now)
    }

    fn handle_stream_result(&mut self, id: StreamId, result: StreamResult, now: Instant) {
        Membership::handle_stream_result(self, id, result, now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Membership::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        Membership::handle_timeout(self, now);
    }

    fn poll_output(&mut self) -> Option<Output> {
        Membership::poll_output(self).map(|o| match o {
            membership::Output::Packet { to, data } => Output::Packet { to, data },
            membership::Output::Stream(req) => Output::Stream(req),
            membership::Output::Event(e) => Output::Event(e),
        })
    }

    fn shutdown(&mut self) {
        Membership::shutdown(self);
    }
}

impl Core for Node {
    type D = App;
    type Config = NodeConfig;

    fn config_for(m: Config) -> NodeConfig {
        NodeConfig {
            tables: node::tables_config(&m),
            membership: m,
        }
    }

    fn membership_config(cfg: &NodeConfig) -> &Config {
        &cfg.membership
    }

    fn create(cfg: NodeConfig, seed: u64, now: Instant) -> Result<Self, NodeError> {
        let nonces = NonceRng::seed_from_u64(seed ^ 0x6e6f_6e63_6573_2121);
        Node::new(cfg.membership, cfg.tables, seed, nonces, now)
    }

    /// The tables learn every member of the snapshot as joined, as they
    /// would have from the join events of a cluster that formed.
    fn adopt_snapshot(&mut self, snapshot: Arc<Snapshot>, now: Instant) {
        self.with_membership(now, |m, now| m.adopt_snapshot(snapshot, now));
        let me = self.membership().name().to_string();
        let members = self.membership().members();
        self.with_tables(now, |t, now| {
            for m in members.iter().filter(|m| m.name != me) {
                t.member_joined(&m.name, m.addr, now);
            }
        });
    }

    fn membership(&self) -> &Membership<App> {
        Node::membership(self)
    }

    fn with_membership<R>(
        &mut self,
        now: Instant,
        f: impl FnOnce(&mut Membership<App>, Instant) -> R,
    ) -> R {
        Node::with_membership(self, now, f)
    }

    fn handle_packet(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
        Node::handle_packet(self, from, data, now);
    }

    fn handle_stream(
        &mut self,
        from: SocketAddr,
        msg: StreamMessage,
        now: Instant,
    ) -> Option<Vec<u8>> {
        Node::handle_stream(self, from, msg, now)
    }

    fn handle_stream_error(
        &mut self,
        from: SocketAddr,
        e: &StreamCodecError,
        now: Instant,
    ) -> Option<Vec<u8>> {
        Node::handle_stream_error(self, from, e, now)
    }

    fn handle_stream_result(&mut self, id: StreamId, result: StreamResult, now: Instant) {
        Node::handle_stream_result(self, id, result, now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Node::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        Node::handle_timeout(self, now);
    }

    fn poll_output(&mut self) -> Option<Output> {
        Node::poll_output(self)
    }

    fn shutdown(&mut self) {
        Node::shutdown(self);
    }

    fn set_wall_clock(&mut self, now: Instant, unix_ms: u64) {
        Node::set_wall_clock(self, now, unix_ms);
    }
}
