//! The tokio shell around the node core ([`Node`]: membership and tables):
//! one task owns the core and `select!`s over the socket's datagrams, the
//! next timer, commands, and results of stream tasks. Each stream gets a
//! task of its own that only moves bytes; every decision is the core's.
//! Membership events go to the events channel; table changes go to a
//! broadcast channel that watchers subscribe to ([`NodeHandle::call`]).
//!
//! The socket comes from a [`Transport`]: real UDP and TCP in production
//! ([`start`]), the in-process [`MemNetwork`] in tests ([`start_on`]). The
//! clock is tokio's, so paused test time drives the core's timers too.

#![allow(clippy::disallowed_methods)] // the shell is where the clock is read

pub mod late;
mod stream;
pub mod transport;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::infos::InfoEvent;
use crate::keyring::{Fingerprint, Key, KeyringError, NonceRng};
use crate::membership::{
    CommandError, Config, Event, Member, Stats, StreamCodecError, StreamId, StreamResult,
};
use crate::node::{self, Node, Output};
use crate::tables::WatchEvent;
use crate::wire::StreamMessage;
pub use transport::{MemNetwork, NetTransport, Socket, Transport};

/// At most this many inbound streams are served at once (memberlist's
/// limit on concurrent push/pulls); more are closed unread and counted
/// ([`TrafficSnapshot::streams_refused`]).
pub const MAX_INBOUND_STREAMS: usize = 128;
/// Table changes buffered for watchers; one that falls further behind
/// loses its place (and is told so). A bulk sync delivers all its changes
/// in one turn of the node task, so this bounds the largest sync a watcher
/// rides through. Slots hold an `Arc` (a few dozen bytes each, about 2.5 MiB
/// in all), and the buffer exists only once someone watches.
pub const WATCH_BUFFER: usize = 1 << 16;

/// The watch channel, created by the first watcher.
type WatchChannel = Arc<OnceLock<tokio::sync::broadcast::Sender<Arc<WatchEvent>>>>;

/// Info changes buffered for watchers (as [`WATCH_BUFFER`]).
pub const INFO_WATCH_BUFFER: usize = 1 << 14;

/// The infos' watch channel, created by the first watcher.
type InfoWatchChannel = Arc<OnceLock<tokio::sync::broadcast::Sender<Arc<InfoEvent>>>>;

/// A call run on the node's task, with the node and the current time.
type Call = Box<dyn FnOnce(&mut Node, std::time::Instant) + Send>;

/// What the shell counts: bytes on the wire, and inbound streams refused.
#[derive(Debug, Default)]
pub struct Traffic {
    /// UDP bytes sent.
    pub udp_sent: AtomicU64,
    /// UDP bytes received.
    pub udp_recv: AtomicU64,
    /// TCP bytes sent.
    pub tcp_sent: AtomicU64,
    /// TCP bytes received.
    pub tcp_recv: AtomicU64,
    /// Inbound streams closed unread: [`MAX_INBOUND_STREAMS`] were open.
    pub streams_refused: AtomicU64,
    /// Timer wakes of the protocol loop more than twice as late as asked
    /// (see [`late`]): the process is likely overloaded.
    pub late_wakes: AtomicU64,
}

/// A snapshot of [`Traffic`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TrafficSnapshot {
    /// UDP bytes sent.
    pub udp_sent: u64,
    /// UDP bytes received.
    pub udp_recv: u64,
    /// TCP bytes sent.
    pub tcp_sent: u64,
    /// TCP bytes received.
    pub tcp_recv: u64,
    /// Inbound streams closed unread: [`MAX_INBOUND_STREAMS`] were open.
    pub streams_refused: u64,
    /// Late timer wakes of the protocol loop.
    pub late_wakes: u64,
}

impl Traffic {
    /// Reads all counters.
    pub fn snapshot(&self) -> TrafficSnapshot {
        TrafficSnapshot {
            udp_sent: self.udp_sent.load(Ordering::Relaxed),
            udp_recv: self.udp_recv.load(Ordering::Relaxed),
            tcp_sent: self.tcp_sent.load(Ordering::Relaxed),
            tcp_recv: self.tcp_recv.load(Ordering::Relaxed),
            streams_refused: self.streams_refused.load(Ordering::Relaxed),
            late_wakes: self.late_wakes.load(Ordering::Relaxed),
        }
    }
}

/// A command to a running node: what [`NodeHandle::call`]'s closures
/// cannot do, because it ends the node task's loop.
enum Command {
    /// Run a closure on the core.
    Call(Call),
    /// Stop the core and end the task.
    Shutdown,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Call(_) => "Call",
            Command::Shutdown => "Shutdown",
        })
    }
}

/// Handle to a running node; cheap to clone.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    cmds: mpsc::UnboundedSender<Command>,
    watch: WatchChannel,
    info_watch: InfoWatchChannel,
    traffic: Arc<Traffic>,
    addr: SocketAddr,
    name: String,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] gossamer_core::node::NodeError),
    /// The advertise address is `0.0.0.0` or `[::]`: peers cannot reach it.
    #[error(
        "advertise address {0} is unspecified: set node.advertise to an address peers can reach"
    )]
    UnspecifiedAdvertise(SocketAddr),
    /// A socket could not be bound.
    #[error("cannot bind {addr} for UDP and TCP: {source}; pick a free port or stop the process using it")]
    Bind {
        /// The address tried.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

impl NodeHandle {
    /// The address the node is bound to (UDP and TCP share the port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Byte counters.
    pub fn traffic(&self) -> TrafficSnapshot {
        self.traffic.snapshot()
    }

    /// Runs `f` on the node's own task, between inputs, and returns its
    /// result: the way to call the tables (and to read them consistently).
    /// `None` when the node stopped.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Node, std::time::Instant) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        self.run(move |n, now| {
            let _ = tx.send(f(n, now));
        });
        rx.await.ok()
    }

    /// Runs `f` on the node's task without waiting for it.
    fn run(&self, f: impl FnOnce(&mut Node, std::time::Instant) + Send + 'static) {
        self.send(Command::Call(Box::new(f)));
    }

    /// A new receiver of every table change from now on. Subscribe inside
    /// [`NodeHandle::call`] and read the table there too, so that no change
    /// falls between the read and the subscription. A receiver more than
    /// [`WATCH_BUFFER`] changes behind gets `RecvError::Lagged` and resumes
    /// at the oldest change still buffered.
    pub fn subscribe_watch(&self) -> tokio::sync::broadcast::Receiver<Arc<WatchEvent>> {
        self.watch
            .get_or_init(|| tokio::sync::broadcast::channel(WATCH_BUFFER).0)
            .subscribe()
    }

    /// A new receiver of every info change from now on; subscribe inside
    /// [`NodeHandle::call`] as for [`NodeHandle::subscribe_watch`].
    pub fn subscribe_infos(&self) -> tokio::sync::broadcast::Receiver<Arc<InfoEvent>> {
        self.info_watch
            .get_or_init(|| tokio::sync::broadcast::channel(INFO_WATCH_BUFFER).0)
            .subscribe()
    }

    fn send(&self, c: Command) {
        // A closed channel means the node stopped; commands then do nothing.
        let _ = self.cmds.send(c);
    }

    /// Resolves once the node's task has ended (after [`NodeHandle::shutdown`],
    /// or when every handle is gone).
    pub async fn stopped(&self) {
        self.cmds.closed().await;
    }

    /// Joins through `seeds`; the outcome arrives as [`Event::JoinFinished`].
    pub fn join(&self, seeds: Vec<SocketAddr>) {
        self.run(move |n, now| {
            n.with_membership(now, |m, now| m.join(&seeds, now));
        });
    }

    /// All members known, including dead and left ones.
    pub async fn members(&self) -> Vec<Member> {
        self.call(|n, _| n.membership().members())
            .await
            .unwrap_or_default()
    }

    /// Sends a best-effort (UDP) user message.
    ///
    /// # Errors
    /// The member is unknown, or the node stopped.
    pub async fn send_best_effort(&self, to: &str, data: Vec<u8>) -> Result<(), CommandError> {
        let to = to.to_string();
        self.call(move |n, now| n.with_membership(now, |m, _| m.send_best_effort(&to, &data)))
            .await
            .unwrap_or(Err(CommandError::Left))
    }

    /// Sends a reliable (TCP) user message.
    ///
    /// # Errors
    /// The member is unknown, or the node stopped.
    pub async fn send_reliable(&self, to: &str, data: Vec<u8>) -> Result<(), CommandError> {
        let to = to.to_string();
        self.call(move |n, now| {
            n.with_membership(now, |m, now| m.send_reliable(&to, &data, now))
                .map(|_| ())
        })
        .await
        .unwrap_or(Err(CommandError::Left))
    }

    /// Queues a user broadcast.
    pub fn broadcast(&self, data: Vec<u8>) {
        self.run(move |n, now| n.with_membership(now, |m, _| m.broadcast(data)));
    }

    /// Sets the user state exchanged on push/pull.
    pub fn set_local_state(&self, data: Vec<u8>) {
        self.run(move |n, _| n.set_fixed_state(Some(data)));
    }

    /// Updates node metadata.
    ///
    /// # Errors
    /// Metadata too large, or the node left.
    pub async fn set_meta(&self, meta: Vec<u8>) -> Result<(), CommandError> {
        self.call(move |n, now| n.with_membership(now, |m, now| m.set_meta(meta, now)))
            .await
            .unwrap_or(Err(CommandError::Left))
    }

    /// Leaves gracefully; [`Event::LeaveFinished`] follows.
    pub fn leave(&self, timeout: Duration) {
        self.run(move |n, now| n.leave(timeout, now));
    }

    /// The core's counters (decrypt failures among them).
    pub async fn stats(&self) -> Stats {
        self.call(|n, _| n.membership().stats().clone())
            .await
            .unwrap_or_default()
    }

    /// Installs a key for decryption; on an empty keyring it becomes the
    /// primary. Returns whether it was new.
    pub async fn add_key(&self, key: Key) -> bool {
        self.call(move |n, now| n.with_membership(now, |m, _| m.add_key(key)))
            .await
            .unwrap_or(false)
    }

    /// Makes an installed key the primary.
    ///
    /// # Errors
    /// The key is not installed (or the node stopped: reported as empty).
    pub async fn use_key(&self, key: Key) -> Result<(), KeyringError> {
        self.call(move |n, now| n.with_membership(now, |m, _| m.use_key(&key)))
            .await
            .unwrap_or(Err(KeyringError::Empty))
    }

    /// Removes a key; returns whether it was installed.
    ///
    /// # Errors
    /// The key is the primary (or the node stopped: reported as empty).
    pub async fn remove_key(&self, key: Key) -> Result<bool, KeyringError> {
        self.call(move |n, now| n.with_membership(now, |m, _| m.remove_key(&key)))
            .await
            .unwrap_or(Err(KeyringError::Empty))
    }

    /// Fingerprints of the installed keys, primary first.
    pub async fn keys(&self) -> Vec<Fingerprint> {
        self.call(|n, _| n.membership().keyring_fingerprints())
            .await
            .unwrap_or_default()
    }

    /// Sets gossip verification (memberlist `GossipVerifyIncoming` and
    /// `GossipVerifyOutgoing`).
    pub fn set_verify(&self, incoming: bool, outgoing: bool) {
        self.run(move |n, now| {
            n.with_membership(now, |m, _| m.set_gossip_verify(incoming, outgoing));
        });
    }

    /// Stops the node without leaving.
    pub fn shutdown(&self) {
        self.send(Command::Shutdown);
    }
}

/// The shell's clock: tokio's, which tests can pause and advance.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// The wall clock infos are stamped with: Unix milliseconds (0 before
/// 1970, which no host running this has).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Starts a node bound to `bind` on real UDP and TCP sockets sharing one
/// port. With port 0 the advertise port becomes the bound port. Events go
/// to the returned receiver; the node runs until shut down or all handles
/// are dropped.
///
/// # Errors
/// Invalid configuration, or the port cannot be bound.
pub async fn start(
    cfg: Config,
    bind_addr: SocketAddr,
    seed: u64,
) -> Result<(NodeHandle, mpsc::UnboundedReceiver<Event>), StartError> {
    start_on(&NetTransport, cfg, bind_addr, seed).await
}

/// [`start`] on any transport: the node binds `bind_addr` through
/// `transport` and talks only through the socket it gets.
///
/// # Errors
/// Invalid configuration, or the address cannot be bound.
pub async fn start_on<T: Transport>(
    transport: &T,
    mut cfg: Config,
    bind_addr: SocketAddr,
    seed: u64,
) -> Result<(NodeHandle, mpsc::UnboundedReceiver<Event>), StartError> {
    cfg.validate()
        .map_err(gossamer_core::node::NodeError::from)?;
    let socket = transport
        .bind(bind_addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: bind_addr,
            source,
        })?;
    let local = socket.local_addr();
    if cfg.advertise.port() == 0 {
        cfg.advertise.set_port(local.port());
    }
    if cfg.advertise.ip().is_unspecified() {
        return Err(StartError::UnspecifiedAdvertise(cfg.advertise));
    }
    let name = cfg.name.clone();
    // Nonces must never repeat under a key shared by the whole cluster, so
    // they come from OS entropy, not from the (possibly fixed) `seed`.
    let nonces = <NonceRng as rand::SeedableRng>::from_os_rng();
    let tables = node::tables_config(&cfg);
    let mut core = Node::new(cfg, tables, seed, nonces, now())?;
    // Read once: later instants are converted by the core, so paused test
    // time moves the infos' wall clock too.
    core.set_wall_clock(now(), unix_ms());
    let watch = WatchChannel::default();
    let info_watch = InfoWatchChannel::default();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let traffic = Arc::new(Traffic::default());
    let shell = Shell {
        core,
        socket: Arc::new(socket),
        traffic: traffic.clone(),
        events: ev_tx,
        watch: watch.clone(),
        info_watch: info_watch.clone(),
        late: late::LateTicks::default(),
    };
    tokio::spawn(shell.run(cmd_rx));
    info!(%name, addr = %local, "membership started");
    Ok((
        NodeHandle {
            cmds: cmd_tx,
            watch,
            info_watch,
            traffic,
            addr: local,
            name,
        },
        ev_rx,
    ))
}

/// A message from a connection task to the node task.
enum FromConn {
    /// A stream we opened finished.
    Done(StreamId, StreamResult),
    /// An accepted stream delivered a message; the reply goes back on `reply`.
    Inbound(SocketAddr, StreamMessage, oneshot::Sender<Option<Vec<u8>>>),
    /// An accepted stream could not be read; the error reply goes back on `reply`.
    InboundFailed(
        SocketAddr,
        StreamCodecError,
        oneshot::Sender<Option<Vec<u8>>>,
    ),
    /// A reply to a stream we opened could not be decrypted.
    DecryptFailed(SocketAddr, String),
}

struct Shell<S: Socket> {
    core: Node,
    socket: Arc<S>,
    traffic: Arc<Traffic>,
    events: mpsc::UnboundedSender<Event>,
    watch: WatchChannel,
    info_watch: InfoWatchChannel,
    late: late::LateTicks,
}

impl<S: Socket> Shell<S> {
    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Command>) {
        let (conn_tx, mut conn_rx) = mpsc::unbounded_channel::<FromConn>();
        let limit = Arc::new(Semaphore::new(MAX_INBOUND_STREAMS));
        let mut buf = vec![0u8; 65536];
        let socket = self.socket.clone();
        loop {
            self.drain(&conn_tx);
            let next = self
                .core
                .poll_timeout()
                .map(Instant::from_std)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let armed = Instant::now();
            tokio::select! {
                r = socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        self.traffic.udp_recv.fetch_add(n as u64, Ordering::Relaxed);
                        self.core.handle_packet(from, &buf[..n], now());
                    }
                    Err(e) => debug!(error = %e, "UDP receive failed"),
                },
                _ = tokio::time::sleep_until(next) => {
                    if self.late.record(armed, next, Instant::now()) {
                        self.traffic.late_wakes.fetch_add(1, Ordering::Relaxed);
                    }
                    self.core.handle_timeout(now());
                }
                c = cmds.recv() => match c {
                    // Shutdown => stopped: the loop ends, and with it the socket.
                    Some(Command::Shutdown) | None => {
                        self.core.shutdown();
                        info!("membership stopped");
                        return;
                    }
                    Some(Command::Call(f)) => f(&mut self.core, now()),
                },
                r = socket.accept() => match r {
                    Ok((conn, from)) => {
                        let Ok(permit) = limit.clone().try_acquire_owned() else {
                            self.traffic.streams_refused.fetch_add(1, Ordering::Relaxed);
                            warn!(%from, "too many concurrent streams: refusing connection");
                            continue;
                        };
                        let codec = self.core.membership().stream_codec();
                        let timeout = self.core.membership().config().tcp_timeout;
                        let tx = conn_tx.clone();
                        let traffic = self.traffic.clone();
                        tokio::spawn(async move {
                            stream::serve(conn, from, codec, timeout, tx, traffic).await;
                            drop(permit);
                        });
                    }
                    Err(e) => warn!(error = %e, "TCP accept failed"),
                },
                Some(m) = conn_rx.recv() => match m {
                    FromConn::Done(id, result) => {
                        self.core.handle_stream_result(id, result, now());
                    }
                    FromConn::Inbound(from, msg, reply) => {
                        let out = self.core.handle_stream(from, msg, now());
                        let _ = reply.send(out);
                    }
                    FromConn::InboundFailed(from, error, reply) => {
                        let out = self.core.handle_stream_error(from, &error, now());
                        let _ = reply.send(out);
                    }
                    FromConn::DecryptFailed(from, reason) => {
                        self.core.record_decrypt_failure(from, &reason, now());
                    }
                },
            }
        }
    }

    /// Carries out everything the core asked for.
    fn drain(&mut self, conn_tx: &mpsc::UnboundedSender<FromConn>) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Packet { to, data } => match self.socket.send_to(&data, to) {
                    Ok(n) => {
                        self.traffic.udp_sent.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) => debug!(%to, error = %e, "UDP send failed"),
                },
                Output::Stream(req) => {
                    let codec = self.core.membership().stream_codec();
                    let tx = conn_tx.clone();
                    let traffic = self.traffic.clone();
                    let socket = Arc::downgrade(&self.socket);
                    tokio::spawn(async move {
                        let (id, to) = (req.id, req.to);
                        let result = stream::exchange(socket, req, codec, &traffic).await;
                        let result = match result {
                            Ok(m) => Ok(m),
                            Err(stream::Failure::Codec(e)) => {
                                if e.is_decrypt_failure() {
                                    let _ = tx.send(FromConn::DecryptFailed(
                                        to,
                                        format!("stream reply: {e}"),
                                    ));
                                }
                                Err(e.to_string())
                            }
                            Err(stream::Failure::Io(e)) => Err(e),
                        };
                        let _ = tx.send(FromConn::Done(id, result));
                    });
                }
                Output::Event(e) => {
                    let _ = self.events.send(e);
                }
                Output::Watch(w) => {
                    // No watcher yet, or none left: nothing to do.
                    if let Some(tx) = self.watch.get() {
                        let _ = tx.send(Arc::new(w));
                    }
                }
                Output::Info(e) => {
                    if let Some(tx) = self.info_watch.get() {
                        let _ = tx.send(Arc::new(e));
                    }
                }
                // An output this shell does not carry out yet.
                other => debug!(output = ?other, "output ignored"),
            }
        }
    }
}
