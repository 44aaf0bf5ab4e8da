//! The tokio shell around the node core ([`Node`]: membership and tables):
//! one task owns the core and `select!`s over the UDP socket, the next
//! timer, commands, and results of stream tasks. Each TCP connection gets a
//! task of its own that only moves bytes; every decision is the core's.
//! Membership events go to the events channel; table changes go to a
//! broadcast channel that watchers subscribe to ([`NodeHandle::call`]).

#![allow(clippy::disallowed_methods)] // the shell is where the clock is read

mod stream;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::keyring::{Fingerprint, Key, KeyringError, NonceRng};
use crate::membership::{
    CommandError, Config, Event, Member, Stats, StreamCodecError, StreamId, StreamResult,
};
use crate::node::{self, Node, Output};
use crate::tables::WatchEvent;
use crate::wire::StreamMessage;

/// At most this many inbound streams are served at once (memberlist's
/// limit on concurrent push/pulls).
const MAX_INBOUND_STREAMS: usize = 128;
/// Table changes buffered for watchers; one that falls further behind
/// loses its place (and is told so). A bulk sync delivers all its changes
/// in one turn of the node task, so this bounds the largest sync a watcher
/// rides through. Slots hold an `Arc` (a few dozen bytes each, about 2.5 MiB
/// in all), and the buffer exists only once someone watches.
const WATCH_BUFFER: usize = 1 << 16;

/// The watch channel, created by the first watcher.
type WatchChannel = Arc<OnceLock<tokio::sync::broadcast::Sender<Arc<WatchEvent>>>>;

/// A call run on the node's task, with the node and the current time.
type Call = Box<dyn FnOnce(&mut Node, std::time::Instant) + Send>;

/// A [`Call`] in a command.
struct Call2(Call);

/// Bytes on the wire, counted by the shell.
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
}

impl Traffic {
    /// Reads all counters.
    pub fn snapshot(&self) -> TrafficSnapshot {
        TrafficSnapshot {
            udp_sent: self.udp_sent.load(Ordering::Relaxed),
            udp_recv: self.udp_recv.load(Ordering::Relaxed),
            tcp_sent: self.tcp_sent.load(Ordering::Relaxed),
            tcp_recv: self.tcp_recv.load(Ordering::Relaxed),
        }
    }
}

/// A command to a running node.
#[derive(Debug)]
enum Command {
    Join(Vec<SocketAddr>),
    Members(oneshot::Sender<Vec<Member>>),
    SendBestEffort(String, Vec<u8>, oneshot::Sender<Result<(), CommandError>>),
    SendReliable(String, Vec<u8>, oneshot::Sender<Result<(), CommandError>>),
    Broadcast(Vec<u8>),
    SetState(Vec<u8>),
    SetMeta(Vec<u8>, oneshot::Sender<Result<(), CommandError>>),
    Leave(Duration),
    Stats(oneshot::Sender<Stats>),
    AddKey(Key, oneshot::Sender<bool>),
    UseKey(Key, oneshot::Sender<Result<(), KeyringError>>),
    RemoveKey(Key, oneshot::Sender<Result<bool, KeyringError>>),
    Keys(oneshot::Sender<Vec<Fingerprint>>),
    SetVerify { incoming: bool, outgoing: bool },
    Call(Call2),
    Shutdown,
}

impl std::fmt::Debug for Call2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Call")
    }
}

/// Handle to a running node; cheap to clone.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    cmds: mpsc::UnboundedSender<Command>,
    watch: WatchChannel,
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
    /// The advertise address is 0.0.0.0 or [::]: peers cannot reach it.
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
        self.send(Command::Call(Call2(Box::new(move |n, now| {
            let _ = tx.send(f(n, now));
        }))));
        rx.await.ok()
    }

    /// A new receiver of every table change from now on. Subscribe inside
    /// [`NodeHandle::call`] and read the table there too, so that no change
    /// falls between the read and the subscription.
    pub fn subscribe_watch(&self) -> tokio::sync::broadcast::Receiver<Arc<WatchEvent>> {
        self.watch
            .get_or_init(|| tokio::sync::broadcast::channel(WATCH_BUFFER).0)
            .subscribe()
    }

    fn send(&self, c: Command) {
        // A closed channel means the node stopped; commands then do nothing.
        let _ = self.cmds.send(c);
    }

    /// Joins through `seeds`; the outcome arrives as [`Event::JoinFinished`].
    pub fn join(&self, seeds: Vec<SocketAddr>) {
        self.send(Command::Join(seeds));
    }

    /// All members known, including dead and left ones.
    pub async fn members(&self) -> Vec<Member> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Members(tx));
        rx.await.unwrap_or_default()
    }

    /// Sends a best-effort (UDP) user message.
    ///
    /// # Errors
    /// The member is unknown, or the node stopped.
    pub async fn send_best_effort(&self, to: &str, data: Vec<u8>) -> Result<(), CommandError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::SendBestEffort(to.into(), data, tx));
        rx.await.unwrap_or(Err(CommandError::Left))
    }

    /// Sends a reliable (TCP) user message.
    ///
    /// # Errors
    /// The member is unknown, or the node stopped.
    pub async fn send_reliable(&self, to: &str, data: Vec<u8>) -> Result<(), CommandError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::SendReliable(to.into(), data, tx));
        rx.await.unwrap_or(Err(CommandError::Left))
    }

    /// Queues a user broadcast.
    pub fn broadcast(&self, data: Vec<u8>) {
        self.send(Command::Broadcast(data));
    }

    /// Sets the user state exchanged on push/pull.
    pub fn set_local_state(&self, data: Vec<u8>) {
        self.send(Command::SetState(data));
    }

    /// Updates node metadata.
    ///
    /// # Errors
    /// Metadata too large, or the node left.
    pub async fn set_meta(&self, meta: Vec<u8>) -> Result<(), CommandError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::SetMeta(meta, tx));
        rx.await.unwrap_or(Err(CommandError::Left))
    }

    /// Leaves gracefully; [`Event::LeaveFinished`] follows.
    pub fn leave(&self, timeout: Duration) {
        self.send(Command::Leave(timeout));
    }

    /// The core's counters (decrypt failures among them).
    pub async fn stats(&self) -> Stats {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Stats(tx));
        rx.await.unwrap_or_default()
    }

    /// Installs a key for decryption; on an empty keyring it becomes the
    /// primary. Returns whether it was new.
    pub async fn add_key(&self, key: Key) -> bool {
        let (tx, rx) = oneshot::channel();
        self.send(Command::AddKey(key, tx));
        rx.await.unwrap_or(false)
    }

    /// Makes an installed key the primary.
    ///
    /// # Errors
    /// The key is not installed (or the node stopped: reported as empty).
    pub async fn use_key(&self, key: Key) -> Result<(), KeyringError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::UseKey(key, tx));
        rx.await.unwrap_or(Err(KeyringError::Empty))
    }

    /// Removes a key; returns whether it was installed.
    ///
    /// # Errors
    /// The key is the primary (or the node stopped: reported as empty).
    pub async fn remove_key(&self, key: Key) -> Result<bool, KeyringError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::RemoveKey(key, tx));
        rx.await.unwrap_or(Err(KeyringError::Empty))
    }

    /// Fingerprints of the installed keys, primary first.
    pub async fn keys(&self) -> Vec<Fingerprint> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Keys(tx));
        rx.await.unwrap_or_default()
    }

    /// Sets gossip verification (memberlist `GossipVerifyIncoming` and
    /// `GossipVerifyOutgoing`).
    pub fn set_verify(&self, incoming: bool, outgoing: bool) {
        self.send(Command::SetVerify { incoming, outgoing });
    }

    /// Stops the node without leaving.
    pub fn shutdown(&self) {
        self.send(Command::Shutdown);
    }
}

/// Binds UDP and TCP on one port. Port 0 picks a free port for both.
async fn bind(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), StartError> {
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let tcp = match TcpListener::bind(addr).await {
            Ok(t) => t,
            Err(e) => return Err(StartError::Bind { addr, source: e }),
        };
        let port_addr = tcp
            .local_addr()
            .map_err(|e| StartError::Bind { addr, source: e })?;
        match UdpSocket::bind(port_addr).await {
            Ok(udp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(StartError::Bind {
        addr,
        source: last.unwrap_or_else(|| std::io::Error::other("no port found")),
    })
}

/// Starts a node bound to `bind`. With port 0 the advertise port becomes the
/// bound port. Events go to the returned receiver; the node runs until
/// shut down or all handles are dropped.
///
/// # Errors
/// Invalid configuration, or the port cannot be bound.
pub async fn start(
    mut cfg: Config,
    bind_addr: SocketAddr,
    seed: u64,
) -> Result<(NodeHandle, mpsc::UnboundedReceiver<Event>), StartError> {
    cfg.validate()
        .map_err(gossamer_core::node::NodeError::from)?;
    let (udp, tcp) = bind(bind_addr).await?;
    let local = udp.local_addr().map_err(|e| StartError::Bind {
        addr: bind_addr,
        source: e,
    })?;
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
    let core = Node::new(cfg, tables, seed, nonces, std::time::Instant::now())?;
    let watch = WatchChannel::default();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let traffic = Arc::new(Traffic::default());
    let shell = Shell {
        core,
        udp: Arc::new(udp),
        traffic: traffic.clone(),
        events: ev_tx,
        watch: watch.clone(),
    };
    tokio::spawn(shell.run(tcp, cmd_rx));
    info!(%name, addr = %local, "membership started");
    Ok((
        NodeHandle {
            cmds: cmd_tx,
            watch,
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

struct Shell {
    core: Node,
    udp: Arc<UdpSocket>,
    traffic: Arc<Traffic>,
    events: mpsc::UnboundedSender<Event>,
    watch: WatchChannel,
}

impl Shell {
    async fn run(mut self, tcp: TcpListener, mut cmds: mpsc::UnboundedReceiver<Command>) {
        let (conn_tx, mut conn_rx) = mpsc::unbounded_channel::<FromConn>();
        let limit = Arc::new(Semaphore::new(MAX_INBOUND_STREAMS));
        let mut buf = vec![0u8; 65536];
        let udp = self.udp.clone();
        loop {
            self.drain(&conn_tx);
            let next = self
                .core
                .poll_timeout()
                .map(Instant::from_std)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                r = udp.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        self.traffic.udp_recv.fetch_add(n as u64, Ordering::Relaxed);
                        self.core.handle_packet(from, &buf[..n], std::time::Instant::now());
                    }
                    Err(e) => debug!(error = %e, "UDP receive failed"),
                },
                _ = tokio::time::sleep_until(next) => {
                    self.core.handle_timeout(std::time::Instant::now());
                }
                c = cmds.recv() => match c {
                    Some(Command::Shutdown) | None => {
                        self.core.shutdown();
                        info!("membership stopped");
                        return;
                    }
                    Some(c) => self.command(c),
                },
                r = tcp.accept() => match r {
                    Ok((conn, from)) => {
                        let Ok(permit) = limit.clone().try_acquire_owned() else {
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
                        self.core.handle_stream_result(id, result, std::time::Instant::now());
                    }
                    FromConn::Inbound(from, msg, reply) => {
                        let out = self.core.handle_stream(from, msg, std::time::Instant::now());
                        let _ = reply.send(out);
                    }
                    FromConn::InboundFailed(from, error, reply) => {
                        let out = self.core.handle_stream_error(from, &error, std::time::Instant::now());
                        let _ = reply.send(out);
                    }
                    FromConn::DecryptFailed(from, reason) => {
                        self.core.record_decrypt_failure(from, &reason, std::time::Instant::now());
                    }
                },
            }
        }
    }

    fn command(&mut self, c: Command) {
        let now = std::time::Instant::now();
        let core = &mut self.core;
        match c {
            Command::Join(seeds) => {
                core.with_membership(now, |m, now| m.join(&seeds, now));
            }
            Command::Members(tx) => {
                let _ = tx.send(core.membership().members());
            }
            Command::SendBestEffort(to, data, tx) => {
                let r = core.with_membership(now, |m, _| m.send_best_effort(&to, &data));
                let _ = tx.send(r);
            }
            Command::SendReliable(to, data, tx) => {
                let r = core.with_membership(now, |m, now| m.send_reliable(&to, &data, now));
                let _ = tx.send(r.map(|_| ()));
            }
            Command::Broadcast(data) => core.with_membership(now, |m, _| m.broadcast(data)),
            Command::SetState(data) => core.set_fixed_state(Some(data)),
            Command::SetMeta(meta, tx) => {
                let _ = tx.send(core.with_membership(now, |m, now| m.set_meta(meta, now)));
            }
            Command::Leave(timeout) => core.leave(timeout, now),
            Command::Stats(tx) => {
                let _ = tx.send(core.membership().stats().clone());
            }
            Command::AddKey(key, tx) => {
                let _ = tx.send(core.with_membership(now, |m, _| m.add_key(key)));
            }
            Command::UseKey(key, tx) => {
                let _ = tx.send(core.with_membership(now, |m, _| m.use_key(&key)));
            }
            Command::RemoveKey(key, tx) => {
                let _ = tx.send(core.with_membership(now, |m, _| m.remove_key(&key)));
            }
            Command::Keys(tx) => {
                let _ = tx.send(core.membership().keyring_fingerprints());
            }
            Command::SetVerify { incoming, outgoing } => {
                core.with_membership(now, |m, _| m.set_gossip_verify(incoming, outgoing));
            }
            Command::Call(Call2(f)) => f(core, now),
            Command::Shutdown => core.shutdown(),
        }
    }

    /// Carries out everything the core asked for.
    fn drain(&mut self, conn_tx: &mpsc::UnboundedSender<FromConn>) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Packet { to, data } => match self.udp.try_send_to(&data, to) {
                    Ok(n) => {
                        self.traffic.udp_sent.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) => debug!(%to, error = %e, "UDP send failed"),
                },
                Output::Stream(req) => {
                    let codec = self.core.membership().stream_codec();
                    let tx = conn_tx.clone();
                    let traffic = self.traffic.clone();
                    tokio::spawn(async move {
                        let (id, to) = (req.id, req.to);
                        let result = stream::exchange(req, codec, &traffic).await;
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
            }
        }
    }
}
