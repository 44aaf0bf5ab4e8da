//! Observability of a running node (shell): a Prometheus/OpenMetrics text
//! endpoint and a periodic stats log line. Both read the same snapshot,
//! taken on the node's own task so that its parts agree with each other.
//! Keys never appear here: the keyring contributes only a count.

#![allow(clippy::disallowed_methods)] // shell: reads the clock for rates

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::{debug, info};

use crate::control::ControlStatus;
use crate::join::JoinStatus;
use crate::membership::NodeStatus;
use crate::runtime::{NodeHandle, TrafficSnapshot};

/// What the node reports, read in one go on its task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Members by state (alive, suspect, dead, left).
    pub members: BTreeMap<&'static str, i64>,
    /// Lifeguard health score: 0 is healthy.
    pub health_score: i64,
    /// Membership and user broadcasts waiting to be sent.
    pub membership_queue: i64,
    /// Packets sent by the membership core.
    pub packets_sent: u64,
    /// Packets received.
    pub packets_received: u64,
    /// Malformed packets or parts.
    pub malformed: u64,
    /// Packets that no key could decrypt.
    pub decrypt_failures: u64,
    /// Probes that got no ack, direct or indirect.
    pub failed_probes: u64,
    /// Members this node began to suspect.
    pub suspicions: u64,
    /// Times this node refuted a suspicion of itself.
    pub refutations: u64,
    /// Keys installed (never the keys).
    pub keys: i64,
    /// Per joined network: visible entries, tombstones, hidden entries,
    /// queued table events, table events sent.
    pub networks: BTreeMap<String, NetworkFigures>,
    /// Bytes on the wire.
    pub traffic: Option<TrafficSnapshot>,
    /// Cluster-wide infos held.
    pub infos: i64,
    /// Largest hop count among them (CockroachDB's MaxHops).
    pub infos_max_hops: i64,
    /// Milliseconds since the cluster sentinel expired here; `None` when
    /// not partitioned (or the sentinel is off).
    pub partitioned_ms: Option<u64>,
    /// Partitions detected by the sentinel.
    pub partitions: u64,
    /// Rejoin tries the core made while partitioned.
    pub sentinel_rejoins: u64,
}

/// One network's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkFigures {
    /// Visible entries.
    pub entries: i64,
    /// Tombstones awaiting the reaper.
    pub tombstones: i64,
    /// Entries hidden because their owner failed.
    pub hidden: i64,
    /// Table events queued for gossip.
    pub queued: i64,
    /// Table events gossiped so far.
    pub messages_sent: u64,
}

/// Reads a snapshot from the node; `None` once it stopped.
pub async fn snapshot(node: &NodeHandle) -> Option<Snapshot> {
    let mut s = node
        .call(|n, now| {
            let m = n.membership();
            let inf = n.infos().stats();
            let sentinel = n.sentinel_status(now);
            let mut members: BTreeMap<&'static str, i64> = [
                NodeStatus::Alive,
                NodeStatus::Suspect,
                NodeStatus::Dead,
                NodeStatus::Left,
            ]
            .into_iter()
            .map(|s| (s.as_str(), 0))
            .collect();
            for member in m.members() {
                *members.entry(member.status.as_str()).or_default() += 1;
            }
            let st = m.stats();
            let t = n.tables().stats();
            Snapshot {
                members,
                health_score: m.health_score() as i64,
                membership_queue: m.queued_broadcasts() as i64,
                packets_sent: st.packets_sent,
                packets_received: st.packets_received,
                malformed: st.malformed + t.malformed,
                decrypt_failures: st.decrypt_failures,
                failed_probes: st.failed_probes,
                suspicions: st.suspicions,
                refutations: st.refutations,
                keys: m.keyring_fingerprints().len() as i64,
                networks: t
                    .networks
                    .iter()
                    .map(|(name, ns)| {
                        (
                            name.clone(),
                            NetworkFigures {
                                entries: ns.entries as i64,
                                tombstones: ns.tombstones as i64,
                                hidden: ns.hidden as i64,
                                queued: (ns.queued + ns.queued_relays) as i64,
                                messages_sent: ns.messages_sent,
                            },
                        )
                    })
                    .collect(),
                traffic: None,
                infos: inf.infos as i64,
                infos_max_hops: i64::from(inf.max_hops),
                partitioned_ms: sentinel
                    .as_ref()
                    .and_then(|s| s.partitioned_for)
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                partitions: sentinel.as_ref().map_or(0, |s| s.partitions),
                sentinel_rejoins: sentinel.as_ref().map_or(0, |s| s.rejoins),
            }
        })
        .await?;
    s.traffic = Some(node.traffic());
    Some(s)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NetworkLabel {
    network: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WireLabel {
    transport: String,
    direction: String,
}

/// The registry and the last totals seen, so counters only move forward.
struct Exporter {
    registry: Registry,
    members: Family<StateLabel, Gauge>,
    health: Gauge,
    queue: Gauge,
    keys: Gauge,
    packets_sent: Counter,
    packets_received: Counter,
    malformed: Counter,
    decrypt_failures: Counter,
    failed_probes: Counter,
    suspicions: Counter,
    refutations: Counter,
    entries: Family<NetworkLabel, Gauge>,
    tombstones: Family<NetworkLabel, Gauge>,
    hidden: Family<NetworkLabel, Gauge>,
    table_queue: Family<NetworkLabel, Gauge>,
    table_sent: Family<NetworkLabel, Counter>,
    bytes: Family<WireLabel, Counter>,
    joined: Gauge,
    join_attempts: Counter,
    join_failures: Counter,
    join_unresolved: Counter,
    control_connected: Gauge,
    control_version: Gauge,
    control_acks: Counter,
    control_nacks: Counter,
    control_connects: Counter,
    control_failures: Counter,
    streams_refused: Counter,
    late_wakes: Counter,
    infos: Gauge,
    infos_max_hops: Gauge,
    partitioned: Gauge,
    partitioned_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    partitions: Counter,
    sentinel_rejoins: Counter,
}

/// Moves `c` forward to `total` (a counter never goes back).
fn advance(c: &Counter, total: u64) {
    let now = c.get();
    if total > now {
        c.inc_by(total - now);
    }
}

impl Exporter {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("gossamer");
        let e = Exporter {
            members: Family::default(),
            health: Gauge::default(),
            queue: Gauge::default(),
            keys: Gauge::default(),
            packets_sent: Counter::default(),
            packets_received: Counter::default(),
            malformed: Counter::default(),
            decrypt_failures: Counter::default(),
            failed_probes: Counter::default(),
            suspicions: Counter::default(),
            refutations: Counter::default(),
            entries: Family::default(),
            tombstones: Family::default(),
            hidden: Family::default(),
            table_queue: Family::default(),
            table_sent: Family::default(),
            bytes: Family::default(),
            infos: Gauge::default(),
            infos_max_hops: Gauge::default(),
            partitioned: Gauge::default(),
            partitioned_seconds: Gauge::default(),
            partitions: Counter::default(),
            sentinel_rejoins: Counter::default(),
            joined: Gauge::default(),
            join_attempts: Counter::default(),
            join_failures: Counter::default(),
            join_unresolved: Counter::default(),
            control_connected: Gauge::default(),
            control_version: Gauge::default(),
            control_acks: Counter::default(),
            control_nacks: Counter::default(),
            control_connects: Counter::default(),
            control_failures: Counter::default(),
            streams_refused: Counter::default(),
            late_wakes: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("members", "Members known, by state", e.members.clone());
        registry.register(
            "health_score",
            "Lifeguard health score (0 is healthy)",
            e.health.clone(),
        );
        registry.register(
            "broadcast_queue",
            "Membership and user broadcasts waiting to be sent",
            e.queue.clone(),
        );
        registry.register("keyring_keys", "Gossip keys installed", e.keys.clone());
        registry.register("packets_sent", "Packets sent", e.packets_sent.clone());
        registry.register(
            "packets_received",
            "Packets received",
            e.packets_received.clone(),
        );
        registry.register(
            "malformed_messages",
            "Malformed packets, parts and table messages",
            e.malformed.clone(),
        );
        registry.register(
            "decrypt_failures",
            "Packets and streams no installed key could decrypt",
            e.decrypt_failures.clone(),
        );
        registry.register(
            "failed_probes",
            "Probes that got no ack, direct or indirect",
            e.failed_probes.clone(),
        );
        registry.register(
            "suspicions",
            "Members this node began to suspect",
            e.suspicions.clone(),
        );
        registry.register(
            "refutations",
            "Times this node refuted a suspicion of itself",
            e.refutations.clone(),
        );
        registry.register(
            "table_entries",
            "Visible table entries per network",
            e.entries.clone(),
        );
        registry.register(
            "table_tombstones",
            "Deleted entries awaiting the reaper, per network",
            e.tombstones.clone(),
        );
        registry.register(
            "table_hidden_entries",
            "Entries kept but hidden because their owner failed, per network",
            e.hidden.clone(),
        );
        registry.register(
            "table_queue",
            "Table events queued for gossip, per network",
            e.table_queue.clone(),
        );
        registry.register(
            "table_messages_sent",
            "Table events gossiped, per network",
            e.table_sent.clone(),
        );
        registry.register("wire_bytes", "Bytes on the wire", e.bytes.clone());
        registry.register(
            "joined",
            "1 while another live member is seen (or there is no peer to join), else 0",
            e.joined.clone(),
        );
        registry.register("infos", "Cluster-wide infos held", e.infos.clone());
        registry.register(
            "infos_max_hops",
            "Largest hop count among the infos held",
            e.infos_max_hops.clone(),
        );
        registry.register(
            "partitioned",
            "1 while the cluster sentinel has expired here (cut off from the cluster), else 0",
            e.partitioned.clone(),
        );
        registry.register(
            "partitioned_seconds",
            "Seconds since the cluster sentinel expired here; 0 when not partitioned",
            e.partitioned_seconds.clone(),
        );
        registry.register(
            "partitions",
            "Partitions detected by the cluster sentinel",
            e.partitions.clone(),
        );
        registry.register(
            "sentinel_rejoins",
            "Rejoin tries made while partitioned",
            e.sentinel_rejoins.clone(),
        );
        registry.register(
            "join_attempts",
            "Tries to join through the bootstrap peers",
            e.join_attempts.clone(),
        );
        registry.register(
            "join_failures",
            "Join tries after which the node was still alone",
            e.join_failures.clone(),
        );
        registry.register(
            "join_unresolved_peers",
            "Bootstrap peer names that did not resolve, summed over tries",
            e.join_unresolved.clone(),
        );
        registry.register(
            "control_connected",
            "1 while the control stream to the operator is open, else 0",
            e.control_connected.clone(),
        );
        registry.register(
            "control_applied_version",
            "Version of the operator's snapshot this node runs (0: none yet)",
            e.control_version.clone(),
        );
        registry.register(
            "control_acks",
            "Snapshots applied and acknowledged",
            e.control_acks.clone(),
        );
        registry.register(
            "control_nacks",
            "Snapshots refused (the last good one kept running)",
            e.control_nacks.clone(),
        );
        registry.register(
            "control_connects",
            "Control streams opened (first connect and reconnects)",
            e.control_connects.clone(),
        );
        registry.register(
            "control_failures",
            "Control connects and streams that failed",
            e.control_failures.clone(),
        );
        registry.register(
            "streams_refused",
            "Inbound streams closed unread because too many were open",
            e.streams_refused.clone(),
        );
        registry.register(
            "late_wakes",
            "Protocol loop timer wakes more than twice as late as asked (likely overloaded)",
            e.late_wakes.clone(),
        );
        Exporter { registry, ..e }
    }

    fn update(&self, s: &Snapshot) {
        for (state, n) in &s.members {
            self.members
                .get_or_create(&StateLabel {
                    state: (*state).to_string(),
                })
                .set(*n);
        }
        self.health.set(s.health_score);
        self.infos.set(s.infos);
        self.infos_max_hops.set(s.infos_max_hops);
        self.partitioned.set(i64::from(s.partitioned_ms.is_some()));
        self.partitioned_seconds
            .set(s.partitioned_ms.map_or(0.0, |ms| ms as f64 / 1000.0));
        advance(&self.partitions, s.partitions);
        advance(&self.sentinel_rejoins, s.sentinel_rejoins);
        self.queue.set(s.membership_queue);
        self.keys.set(s.keys);
        advance(&self.packets_sent, s.packets_sent);
        advance(&self.packets_received, s.packets_received);
        advance(&self.malformed, s.malformed);
        advance(&self.decrypt_failures, s.decrypt_failures);
        advance(&self.failed_probes, s.failed_probes);
        advance(&self.suspicions, s.suspicions);
        advance(&self.refutations, s.refutations);
        for (network, f) in &s.networks {
            let l = NetworkLabel {
                network: network.clone(),
            };
            self.entries.get_or_create(&l).set(f.entries);
            self.tombstones.get_or_create(&l).set(f.tombstones);
            self.hidden.get_or_create(&l).set(f.hidden);
            self.table_queue.get_or_create(&l).set(f.queued);
            advance(&self.table_sent.get_or_create(&l), f.messages_sent);
        }
        if let Some(t) = s.traffic {
            for (transport, direction, v) in [
                ("udp", "sent", t.udp_sent),
                ("udp", "received", t.udp_recv),
                ("tcp", "sent", t.tcp_sent),
                ("tcp", "received", t.tcp_recv),
            ] {
                let l = WireLabel {
                    transport: transport.into(),
                    direction: direction.into(),
                };
                advance(&self.bytes.get_or_create(&l), v);
            }
            advance(&self.streams_refused, t.streams_refused);
            advance(&self.late_wakes, t.late_wakes);
        }
    }

    fn update_join(&self, j: &JoinStatus) {
        self.joined.set(i64::from(j.joined()));
        advance(&self.join_attempts, j.attempts());
        advance(&self.join_failures, j.failures());
        advance(&self.join_unresolved, j.unresolved());
    }

    fn update_control(&self, c: &ControlStatus) {
        self.control_connected.set(i64::from(c.connected()));
        self.control_version.set(
            c.applied_version()
                .map_or(0, |v| i64::try_from(v).unwrap_or(i64::MAX)),
        );
        advance(&self.control_acks, c.acks());
        advance(&self.control_nacks, c.nacks());
        advance(&self.control_connects, c.connects());
        advance(&self.control_failures, c.failures());
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Renders the node's metrics in the OpenMetrics text format, and answers
/// the liveness and readiness probes.
pub struct Metrics {
    node: NodeHandle,
    join: Arc<JoinStatus>,
    control: Option<Arc<ControlStatus>>,
    exporter: Mutex<Exporter>,
}

impl Metrics {
    /// Metrics of `node`, whose join loop reports to `join` and, under an
    /// operator, whose control client reports to `control`.
    pub fn new(
        node: NodeHandle,
        join: Arc<JoinStatus>,
        control: Option<Arc<ControlStatus>>,
    ) -> Arc<Self> {
        Arc::new(Metrics {
            node,
            join,
            control,
            exporter: Mutex::new(Exporter::new()),
        })
    }

    /// Why the node is not ready, or `None` when it is: it runs, has
    /// applied the operator's first snapshot (under an operator), and has
    /// joined (or has nobody to join).
    pub async fn not_ready(&self) -> Option<String> {
        if self.node.call(|_, _| ()).await.is_none() {
            return Some("the node has stopped".into());
        }
        if let Some(c) = &self.control {
            if c.applied_version().is_none() {
                return Some(match c.last_error() {
                    Some(e) => format!("no snapshot from the operator applied yet: {e}"),
                    None => "no snapshot from the operator applied yet".into(),
                });
            }
        }
        if !self.join.joined() {
            return Some(match self.join.last_error() {
                Some(e) => format!("not joined yet: {e}"),
                None => "not joined yet".into(),
            });
        }
        None
    }

    /// The current metrics text; `None` once the node stopped.
    pub async fn render(&self) -> Option<String> {
        let s = snapshot(&self.node).await?;
        let e = self
            .exporter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        e.update(&s);
        e.update_join(&self.join);
        if let Some(c) = &self.control {
            e.update_control(c);
        }
        e.encode().ok()
    }
}

async fn respond(
    req: Request<Incoming>,
    metrics: Arc<Metrics>,
) -> Result<Response<Full<Bytes>>, hyper::http::Error> {
    let plain = |status: StatusCode, text: &str| {
        Response::builder()
            .status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(text.to_string())))
    };
    if req.method() != Method::GET {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET /metrics, /healthz or /readyz\n",
        );
    }
    match req.uri().path() {
        "/metrics" => {}
        // Live while the node's task runs.
        "/healthz" => {
            return match metrics.node.call(|_, _| ()).await {
                Some(()) => plain(StatusCode::OK, "ok\n"),
                None => plain(StatusCode::SERVICE_UNAVAILABLE, "the node has stopped\n"),
            }
        }
        "/readyz" => {
            return match metrics.not_ready().await {
                None => plain(StatusCode::OK, "ready\n"),
                Some(why) => plain(StatusCode::SERVICE_UNAVAILABLE, &format!("{why}\n")),
            }
        }
        _ => {
            return plain(
                StatusCode::NOT_FOUND,
                "not found: see /metrics, /healthz and /readyz\n",
            )
        }
    }
    match metrics.render().await {
        Some(text) => Response::builder()
            .header(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
            .body(Full::new(Bytes::from(text))),
        None => plain(StatusCode::SERVICE_UNAVAILABLE, "the node has stopped\n"),
    }
}

/// Serves `GET /metrics`, `/healthz` and `/readyz` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                debug!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let m = metrics.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| respond(req, m.clone()));
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await
            {
                debug!(%from, error = %e, "metrics connection ended with an error");
            }
        });
    }
}

/// Binds the metrics listener.
///
/// # Errors
/// The address is taken or not allowed, with what to do.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// The metrics address cannot be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for metrics on {addr}: {source}; pick a free port (metrics.listen)")]
pub struct BindError {
    /// The address.
    pub addr: SocketAddr,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// Logs a stats line every `every`: members, health, queues, packets per
/// second, entries per network.
pub async fn log_periodically(node: NodeHandle, every: Duration) {
    let mut last: Option<(Instant, u64, u64)> = None;
    loop {
        tokio::time::sleep(every).await;
        let Some(s) = snapshot(&node).await else {
            return;
        };
        let now = Instant::now();
        let (sent_ps, recv_ps) = match last {
            Some((t, sent, recv)) => {
                let secs = now.duration_since(t).as_secs_f64().max(1e-3);
                (
                    (s.packets_sent.saturating_sub(sent)) as f64 / secs,
                    (s.packets_received.saturating_sub(recv)) as f64 / secs,
                )
            }
            None => (0.0, 0.0),
        };
        last = Some((now, s.packets_sent, s.packets_received));
        let entries: Vec<String> = s
            .networks
            .iter()
            .map(|(n, f)| format!("{n}={} (queued {})", f.entries, f.queued))
            .collect();
        info!(
            alive = s.members.get("alive").copied().unwrap_or(0),
            suspect = s.members.get("suspect").copied().unwrap_or(0),
            dead = s.members.get("dead").copied().unwrap_or(0),
            health_score = s.health_score,
            broadcast_queue = s.membership_queue,
            packets_sent_per_s = format!("{sent_ps:.1}"),
            packets_received_per_s = format!("{recv_ps:.1}"),
            decrypt_failures = s.decrypt_failures,
            networks = %entries.join(", "),
            "stats"
        );
    }
}
