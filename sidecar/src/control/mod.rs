//! The control client (shell): the sidecar's end of the operator's control
//! stream (`gossamer.control.v1.Control/Subscribe`).
//!
//! It dials the operator over TLS with the CA bundle the operator publishes,
//! sends its projected ServiceAccount token (re-read from the file at every
//! connect, so the kubelet's rotation is picked up) and a Hello, and then
//! applies every snapshot the operator sends: checked as a whole
//! ([`convert`]), planned by the core ([`crate::desired::plan`]) and
//! executed in the plan's order ([`apply`]). A snapshot that cannot run is
//! answered with a Nack and the node keeps its last good configuration.
//!
//! Anti-entropy, as Consul's `ae` keeps a Consul agent and its servers in
//! step:
//! - full sync on every (re)connect: the operator sends the whole snapshot,
//!   the sidecar answers and sends a whole status report;
//! - partial sync on change: a report goes out when what the sidecar sees
//!   changed (checked every second);
//! - a periodic full resync, staggered at random and slower for bigger
//!   clusters ([`report::resync_interval`]): the last snapshot is planned
//!   again (repairing any drift) and a report is sent even if unchanged;
//! - retry on failure: a failed connect or stream is retried with backoff
//!   and jitter, for ever.

#![allow(clippy::disallowed_methods)] // shell: reads the clock and draws jitter

pub mod apply;
pub mod convert;
pub mod report;
mod status;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gossamer_proto::control::v1 as pb;
use gossamer_proto::control::v1::control_client::ControlClient;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tracing::{debug, info, warn};

pub use convert::Identity;
pub use status::ControlStatus;

use crate::desired;
use crate::join::Backoff;
use crate::runtime::NodeHandle;

/// Where the operator's CA bundle comes from.
#[derive(Debug, Clone)]
pub enum CaBundle {
    /// A PEM file (the ConfigMap gossamer-ca-bundle, mounted).
    File(PathBuf),
    /// PEM text (the injector puts the CA certificate, which is public, in
    /// the Pod's environment).
    Pem(String),
}

/// How to reach the operator.
#[derive(Debug, Clone)]
pub struct ControlSettings {
    /// `https://host:port` (or `http://` in development mode).
    pub endpoint: String,
    /// The CA bundle that signs the operator's serving certificate.
    pub ca: Option<CaBundle>,
    /// The projected ServiceAccount token (audience `gossamer`).
    pub token_file: PathBuf,
    /// Who this sidecar is.
    pub identity: Identity,
    /// The build version sent in the Hello.
    pub build_version: String,
    /// Base of the periodic full resync (scaled by cluster size).
    pub resync: Duration,
    /// Reconnect backoff.
    pub backoff: Backoff,
    /// The peers of the file and the command line: used while the
    /// operator's snapshot names none (a cluster without BootstrapPeers).
    pub static_peers: Vec<String>,
}

/// Why a connect or a stream failed. Variant names fit metric labels.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The CA bundle cannot be read.
    #[error("cannot read the CA bundle {}: {source}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The token file cannot be read or is empty.
    #[error("cannot read the ServiceAccount token {}: {why}; mount a projected token with audience gossamer", path.display())]
    Token {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The endpoint is not a usable URL, or plain http without asking.
    #[error("control endpoint {endpoint:?}: {why}")]
    Endpoint {
        /// The endpoint.
        endpoint: String,
        /// Why.
        why: String,
    },
    /// The operator cannot be reached.
    #[error("cannot connect to the operator at {endpoint}: {source}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// The transport error.
        source: tonic::transport::Error,
    },
    /// The operator refused or ended the stream.
    #[error("the operator answered {}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    /// The stream to the operator closed.
    #[error("the stream to the operator closed")]
    Closed,
    /// The node stopped.
    #[error("the node stopped")]
    Stopped,
}

/// Runs the control client until the node stops: connects, applies
/// snapshots, reports, and reconnects after any failure. The join loop's
/// peers go through `peers`.
pub async fn run(
    node: NodeHandle,
    settings: ControlSettings,
    peers: watch::Sender<Vec<String>>,
    status: Arc<ControlStatus>,
) {
    if settings.endpoint.starts_with("http://") {
        warn!(
            endpoint = %settings.endpoint,
            "control stream WITHOUT TLS (development mode): keys travel in the clear; never use this outside a test machine"
        );
    }
    let mut session = Session {
        last: None,
        identity: settings.identity.clone(),
        static_peers: settings.static_peers.clone(),
    };
    let mut tries: u32 = 0;
    let mut not_leader: u32 = 0;
    loop {
        let connects = status.connects();
        let result = session.run(&node, &settings, &peers, &status).await;
        status.set_connected(false);
        if status.connects() > connects {
            // A stream was open: a failure now starts a new series, and
            // backs off from the start again.
            tries = 0;
            not_leader = 0;
        }
        match result {
            Err(ControlError::Stopped) => return,
            Err(e) if is_not_leader(&e) && not_leader < NOT_LEADER_FAST_TRIES => {
                // A standby replica answered: the Service picks a replica
                // per connection, so the next connection soon may well
                // reach the leader. Backing off here would leave the node
                // without snapshots for a minute after a failover.
                status.failed(e.to_string());
                not_leader += 1;
                let wait = NOT_LEADER_RETRY.mul_f64(0.5 + rand::random::<f64>());
                if not_leader == 1 {
                    info!(error = %e, retry_in = ?wait, "a standby operator replica answered; reconnecting to reach the leader");
                }
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                not_leader = 0;
                status.failed(e.to_string());
                tries = tries.saturating_add(1);
                let wait = settings.backoff.delay(tries, rand::random::<f64>());
                if tries <= 3 || tries.is_power_of_two() {
                    warn!(error = %e, tries, retry_in = ?wait, "control stream failed; reconnecting");
                }
                tokio::time::sleep(wait).await;
            }
            Ok(()) => {
                tries = 0;
                not_leader = 0;
                // The operator closed the stream cleanly (a rollout): come
                // back soon, not at once, so replicas are not stampeded.
                let wait = settings.backoff.delay(1, rand::random::<f64>());
                info!(retry_in = ?wait, "the operator closed the control stream; reconnecting");
                tokio::time::sleep(wait).await;
            }
        }
        if node.call(|_, _| ()).await.is_none() {
            return;
        }
    }
}

/// How soon a stream refused by a standby operator replica is retried.
const NOT_LEADER_RETRY: Duration = Duration::from_millis(300);
/// Refusals by standby replicas in a row retried that soon; then the usual
/// backoff (with two replicas behind the Service, 20 tries all reach a
/// standby one time in a million).
const NOT_LEADER_FAST_TRIES: u32 = 20;

/// The operator answered from a replica that does not lead (see the
/// operator's control service).
fn is_not_leader(e: &ControlError) -> bool {
    matches!(e, ControlError::Status(st)
        if st.code() == tonic::Code::Unavailable
            && (st.message().contains("does not lead") || st.message().contains("stopped leading")))
}

/// What survives a reconnect: who this is and the last snapshot applied.
struct Session {
    last: Option<pb::ConfigSnapshot>,
    identity: Identity,
    static_peers: Vec<String>,
}

impl Session {
    async fn run(
        &mut self,
        node: &NodeHandle,
        s: &ControlSettings,
        peers: &watch::Sender<Vec<String>>,
        status: &ControlStatus,
    ) -> Result<(), ControlError> {
        let (tx, mut inbound) = open(s).await?;
        status.set_connected(true);
        info!(endpoint = %s.endpoint, "control stream open");

        let running_label = node
            .call(|n, _| n.membership().config().label.clone())
            .await
            .ok_or(ControlError::Stopped)?;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_report: Option<pb::StatusReport> = None;
        let mut next_full = tokio::time::Instant::now();
        loop {
            tokio::select! {
                msg = inbound.message() => {
                    let Some(snap) = msg? else { return Ok(()) };
                    self.snapshot(node, peers, status, &tx, &running_label, snap).await?;
                    // Full sync after every snapshot: a whole report.
                    last_report = None;
                }
                _ = tick.tick() => {}
            }
            let Some(applied) = status.applied_version() else {
                continue;
            };
            let now = tokio::time::Instant::now();
            let full = now >= next_full;
            if full {
                // Periodic full resync: plan the last snapshot again, which
                // repairs drift, and report even if nothing changed.
                if let Some(snap) = self.last.clone() {
                    self.reapply(node, peers, &running_label, &snap).await;
                }
            }
            let names = self.network_names();
            let r = report::read(node, applied, names)
                .await
                .ok_or(ControlError::Stopped)?;
            if full || last_report.as_ref() != Some(&r) {
                if full {
                    let members = r.members.len();
                    let every = report::resync_interval(s.resync, members);
                    // Staggered: somewhere in [every, 2 * every).
                    next_full = now + every + every.mul_f64(rand::random::<f64>());
                }
                send(&tx, pb::sidecar_message::Kind::Status(r.clone())).await?;
                last_report = Some(r);
            }
        }
    }

    fn network_names(&self) -> BTreeMap<String, String> {
        self.last
            .iter()
            .flat_map(|s| &s.networks)
            .map(|n| (n.id.clone(), n.name.clone()))
            .collect()
    }

    /// Applies one snapshot and answers it.
    async fn snapshot(
        &mut self,
        node: &NodeHandle,
        peers: &watch::Sender<Vec<String>>,
        status: &ControlStatus,
        tx: &mpsc::Sender<pb::SidecarMessage>,
        running_label: &str,
        snap: pb::ConfigSnapshot,
    ) -> Result<(), ControlError> {
        if let Some(v) = status.applied_version() {
            if snap.version < v {
                debug!(
                    version = snap.version,
                    running = v,
                    "ignoring an older snapshot"
                );
                return Ok(());
            }
        }
        let (version, nonce) = (snap.version, snap.nonce.clone());
        match self.apply(node, peers, running_label, &snap).await {
            Ok(changed) => {
                status.applied(version);
                status.set_error(None);
                if changed {
                    info!(version, "applied snapshot");
                } else {
                    debug!(version, "snapshot already running");
                }
                self.last = Some(snap);
                send(
                    tx,
                    pb::sidecar_message::Kind::Ack(pb::Ack { version, nonce }),
                )
                .await
            }
            Err((code, why)) => {
                warn!(version, error = %why, "refused snapshot; keeping the last good configuration");
                status.refused(format!("snapshot {version}: {why}"));
                let mut message = why;
                message.truncate(1024);
                send(
                    tx,
                    pb::sidecar_message::Kind::Nack(pb::Nack {
                        version,
                        nonce,
                        error: Some(pb::ErrorDetail {
                            code: code as i32,
                            message,
                        }),
                    }),
                )
                .await
            }
        }
    }

    /// Checks, plans and executes `snap`; whether anything changed, or the
    /// gRPC code and text of the refusal.
    async fn apply(
        &self,
        node: &NodeHandle,
        peers: &watch::Sender<Vec<String>>,
        running_label: &str,
        snap: &pb::ConfigSnapshot,
    ) -> Result<bool, (tonic::Code, String)> {
        let mut want = convert::desired(snap, &self.identity, running_label)
            .map_err(|e| (tonic::Code::InvalidArgument, e.to_string()))?;
        if want.peers.is_empty() {
            want.peers = self.static_peers.clone();
        }
        let seen = apply::observe(node, peers)
            .await
            .map_err(|e| (tonic::Code::Unavailable, e.to_string()))?;
        let steps = desired::plan(&seen, &want)
            .map_err(|e| (tonic::Code::FailedPrecondition, e.to_string()))?;
        let changed = !steps.is_empty();
        let first_keys = seen.keys.is_empty() && !want.keys.is_empty();
        apply::execute(node, peers, steps)
            .await
            .map_err(|e| (tonic::Code::Internal, e.to_string()))?;
        if first_keys {
            // The first keyring: gossip only encrypted from now on, as a
            // node started with keys does.
            node.set_verify(true, true);
        }
        Ok(changed)
    }

    async fn reapply(
        &self,
        node: &NodeHandle,
        peers: &watch::Sender<Vec<String>>,
        running_label: &str,
        snap: &pb::ConfigSnapshot,
    ) {
        match self.apply(node, peers, running_label, snap).await {
            Ok(true) => warn!(
                version = snap.version,
                "resync found drift from the applied snapshot and repaired it"
            ),
            Ok(false) => debug!(version = snap.version, "resync: no drift"),
            Err((_, why)) => {
                warn!(version = snap.version, error = %why, "resync could not reapply")
            }
        }
    }
}

type Inbound = tonic::Streaming<pb::ConfigSnapshot>;

/// Opens a stream: TLS, the token, the Hello.
async fn open(
    s: &ControlSettings,
) -> Result<(mpsc::Sender<pb::SidecarMessage>, Inbound), ControlError> {
    let channel = connect(s).await?;
    let token = read_token(s)?;
    let (tx, rx) = mpsc::channel::<pb::SidecarMessage>(16);
    let id = &s.identity;
    send(
        &tx,
        pb::sidecar_message::Kind::Hello(pb::Hello {
            cluster: id.cluster.clone(),
            cluster_namespace: id.namespace.clone(),
            pod_namespace: id.namespace.clone(),
            pod_name: id.pod_name.clone(),
            node_name: id.node_name.clone(),
            advertise_address: id.advertise.clone(),
            build_version: s.build_version.clone(),
        }),
    )
    .await?;
    let mut req = tonic::Request::new(ReceiverStream::new(rx));
    let bearer = format!("Bearer {token}")
        .parse()
        .map_err(|_| ControlError::Token {
            path: s.token_file.clone(),
            why: "it holds characters a header cannot carry".into(),
        })?;
    req.metadata_mut().insert("authorization", bearer);
    let inbound = ControlClient::new(channel)
        .subscribe(req)
        .await?
        .into_inner();
    Ok((tx, inbound))
}

/// The keyring of the operator's current snapshot, primary first, read
/// before the node starts: a sidecar under an operator gossips encrypted
/// from its first packet, and never answers a peer before it holds the
/// cluster's keys. Retries with backoff until the operator answers with a
/// snapshot this node can run; the stream is then closed unanswered (the
/// control loop opens its own and acknowledges).
pub async fn initial_keys(s: &ControlSettings) -> Vec<crate::keyring::Key> {
    let mut tries: u32 = 0;
    loop {
        let why = match first_snapshot(s).await {
            Ok(mut want) => {
                if let Some(p) = want.primary {
                    want.keys.sort_by_key(|k| k.fingerprint() != p);
                }
                info!(
                    keys = want.keys.len(),
                    "the operator's keyring, before gossip starts"
                );
                return want.keys;
            }
            Err(e) => e,
        };
        tries = tries.saturating_add(1);
        let wait = s.backoff.delay(tries, rand::random::<f64>());
        if tries <= 3 || tries.is_power_of_two() {
            warn!(error = %why, tries, retry_in = ?wait, "no configuration from the operator yet; gossip waits for it");
        }
        tokio::time::sleep(wait).await;
    }
}

async fn first_snapshot(s: &ControlSettings) -> Result<desired::Desired, String> {
    let (_tx, mut inbound) = open(s).await.map_err(|e| e.to_string())?;
    let snap = tokio::time::timeout(Duration::from_secs(30), inbound.message())
        .await
        .map_err(|_| "no snapshot within 30 s".to_string())?
        .map_err(|e| ControlError::from(e).to_string())?
        .ok_or_else(|| "the operator closed the stream".to_string())?;
    convert::desired(&snap, &s.identity, &s.identity.label()).map_err(|e| e.to_string())
}

async fn send(
    tx: &mpsc::Sender<pb::SidecarMessage>,
    kind: pb::sidecar_message::Kind,
) -> Result<(), ControlError> {
    tx.send(pb::SidecarMessage { kind: Some(kind) })
        .await
        .map_err(|_| ControlError::Closed)
}

fn read_token(s: &ControlSettings) -> Result<String, ControlError> {
    let text = std::fs::read_to_string(&s.token_file).map_err(|e| ControlError::Token {
        path: s.token_file.clone(),
        why: e.to_string(),
    })?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(ControlError::Token {
            path: s.token_file.clone(),
            why: "the file is empty".into(),
        });
    }
    Ok(token)
}

async fn connect(s: &ControlSettings) -> Result<Channel, ControlError> {
    let endpoint_err = |why: String| ControlError::Endpoint {
        endpoint: s.endpoint.clone(),
        why,
    };
    let mut ep = Endpoint::from_shared(s.endpoint.clone())
        .map_err(|e| endpoint_err(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    if s.endpoint.starts_with("https://") {
        let pem = match &s.ca {
            None => {
                return Err(endpoint_err(
                    "https needs the operator's CA bundle (--control-ca or --control-ca-pem)"
                        .into(),
                ))
            }
            Some(CaBundle::Pem(text)) => text.clone().into_bytes(),
            Some(CaBundle::File(path)) => {
                std::fs::read(path).map_err(|source| ControlError::CaFile {
                    path: path.clone(),
                    source,
                })?
            }
        };
        ep = ep
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
            .map_err(|e| endpoint_err(e.to_string()))?;
    } else if !s.endpoint.starts_with("http://") {
        return Err(endpoint_err(
            "use https://host:port (or http:// in development mode)".into(),
        ));
    }
    ep.connect().await.map_err(|source| ControlError::Connect {
        endpoint: s.endpoint.clone(),
        source,
    })
}

#[cfg(test)]
mod not_leader_tests {
    use super::*;

    #[test]
    fn only_a_standby_replicas_refusal_is_retried_soon() {
        let standby = tonic::Status::unavailable("this operator replica does not lead; reconnect");
        let stopped =
            tonic::Status::unavailable("this operator replica stopped leading; reconnect");
        assert!(is_not_leader(&ControlError::Status(standby)));
        assert!(is_not_leader(&ControlError::Status(stopped)));
        let busy = tonic::Status::unavailable("overloaded");
        let denied = tonic::Status::permission_denied("this operator replica does not lead");
        assert!(!is_not_leader(&ControlError::Status(busy)));
        assert!(!is_not_leader(&ControlError::Status(denied)));
    }
}
