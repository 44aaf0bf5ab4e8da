//! `gossamer.control.v1.Control/Subscribe`: authenticate, check the hello,
//! then stream the cluster's snapshots and take ACKs, NACKs and status
//! reports.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use gossamer_operator_core::{check_hello, ClusterRef, PodIdentity, RefusalKind};
use gossamer_proto::control::v1::control_server::Control;
use gossamer_proto::control::v1::sidecar_message::Kind;
use gossamer_proto::control::v1::{ConfigSnapshot, SidecarMessage};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::auth::{bearer, AuthError, Authenticator};
use super::convert;
use super::hub::Latest;
use crate::context::Context;

/// How long a stream may stay silent before its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How many sent snapshots an ACK may still answer.
const REMEMBERED_SENDS: usize = 8;

/// The Control service.
pub struct ControlService {
    ctx: Arc<Context>,
    /// `None`: development mode, no token checked.
    auth: Option<Arc<Authenticator>>,
}

impl ControlService {
    /// Checks tokens with `auth`, or none at all when it is `None`.
    pub fn new(ctx: Arc<Context>, auth: Option<Arc<Authenticator>>) -> Self {
        ControlService { ctx, auth }
    }

    fn refuse(&self, reason: &str, status: Status) -> Status {
        self.ctx
            .metrics
            .control_refused
            .get_or_create(&crate::metrics::ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
        status
    }

    async fn identity(
        &self,
        req: &Request<Streaming<SidecarMessage>>,
    ) -> Result<Option<PodIdentity>, Status> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let header = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let result = match bearer(header, auth.audience()) {
            Ok(token) => auth.authenticate(token).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(id) => Ok(Some(id)),
            Err(e) => {
                tracing::warn!(%peer, reason = e.reason(), error = %e, "control stream refused: unauthenticated");
                let status = match &e {
                    AuthError::Unavailable(_) => Status::unavailable(e.to_string()),
                    _ => Status::unauthenticated(e.to_string()),
                };
                Err(self.refuse(e.reason(), status))
            }
        }
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<ConfigSnapshot, Status>> + Send>>;

#[tonic::async_trait]
impl Control for ControlService {
    type SubscribeStream = SnapshotStream;

    async fn subscribe(
        &self,
        req: Request<Streaming<SidecarMessage>>,
    ) -> Result<Response<SnapshotStream>, Status> {
        if !*self.ctx.leading.borrow() {
            return Err(self.refuse(
                "NotLeader",
                Status::unavailable("this operator replica does not lead; reconnect"),
            ));
        }
        let identity = self.identity(&req).await?;
        let mut inbound = req.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| {
                self.refuse(
                    "NoHello",
                    Status::deadline_exceeded(format!("no hello within {HELLO_TIMEOUT:?}")),
                )
            })??;
        let Some(SidecarMessage {
            kind: Some(Kind::Hello(hello)),
        }) = first
        else {
            return Err(self.refuse(
                "NoHello",
                Status::invalid_argument("the first message of a control stream MUST be a hello"),
            ));
        };
        let claim = convert::hello(&hello);
        let filed = self
            .ctx
            .index()
            .cluster_of_pod(&claim.pod_namespace, &claim.pod_name);
        let cluster = match check_hello(&claim, identity.as_ref(), filed.as_ref()) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(pod = %format!("{}/{}", claim.pod_namespace, claim.pod_name), reason = e.reason(), error = %e, "control stream refused");
                let status = match e.kind() {
                    RefusalKind::Invalid => Status::invalid_argument(e.to_string()),
                    RefusalKind::Unauthenticated => Status::unauthenticated(e.to_string()),
                    RefusalKind::PermissionDenied => Status::permission_denied(e.to_string()),
                };
                return Err(self.refuse(e.reason(), status));
            }
        };
        tracing::info!(
            cluster = %cluster,
            pod = %claim.pod_name,
            node = %hello.node_name,
            advertise = %hello.advertise_address,
            build = %hello.build_version,
            "control stream opened"
        );
        let latest = self.ctx.hub.subscribe(&cluster);
        let (tx, rx) = mpsc::channel(4);
        let stream = OpenStream {
            ctx: self.ctx.clone(),
            cluster,
            pod: claim.pod_name,
            sent: VecDeque::new(),
        };
        tokio::spawn(stream.run(inbound, latest, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// One open stream.
struct OpenStream {
    ctx: Arc<Context>,
    cluster: ClusterRef,
    pod: String,
    /// (version, nonce) of the last snapshots sent.
    sent: VecDeque<(u64, String)>,
}

/// What a stream does after one event.
enum Next {
    Continue,
    /// Ends the stream, with this status to send (none: the other end is
    /// gone or hung up).
    End(Option<Status>),
}

/// Unique per snapshot sent by this process, and unlike any other
/// replica's (a random prefix), so an answer never matches a send it did
/// not answer.
fn nonce() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(1);
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let prefix = PREFIX.get_or_init(|| {
        #[allow(clippy::disallowed_methods)] // the shell owns the process's randomness
        let p = rand::Rng::random(&mut rand::rng());
        p
    });
    format!("{prefix:08x}-{:x}", SEQ.fetch_add(1, Ordering::Relaxed))
}

impl OpenStream {
    async fn run(
        mut self,
        mut inbound: Streaming<SidecarMessage>,
        mut latest: Latest,
        tx: mpsc::Sender<Result<ConfigSnapshot, Status>>,
    ) {
        self.ctx.metrics.control_streams.inc();
        let mut leading = self.ctx.leading.subscribe();
        // The current version goes out at once.
        latest.mark_changed();
        // Leadership may have gone while the hello was checked (and the
        // channel just taken is then one nobody feeds).
        let end = if *leading.borrow_and_update() {
            loop {
                if let Next::End(end) = self
                    .step(&mut inbound, &mut latest, &mut leading, &tx)
                    .await
                {
                    break end;
                }
            }
        } else {
            Some(Status::unavailable(
                "this operator replica stopped leading; reconnect",
            ))
        };
        if let Some(status) = end {
            let _ = tx.send(Err(status)).await;
        }
        self.ctx.metrics.control_streams.dec();
        tracing::info!(cluster = %self.cluster, pod = %self.pod, "control stream closed");
    }

    /// One event of the stream.
    async fn step(
        &mut self,
        inbound: &mut Streaming<SidecarMessage>,
        latest: &mut Latest,
        leading: &mut tokio::sync::watch::Receiver<bool>,
        tx: &mpsc::Sender<Result<ConfigSnapshot, Status>>,
    ) -> Next {
        tokio::select! {
            changed = latest.changed() => {
                if changed.is_err() {
                    return Next::End(Some(Status::unavailable("the operator stopped serving this stream; reconnect")));
                }
                let published = latest.borrow_and_update().clone();
                let Some(p) = published else {
                    return Next::Continue;
                };
                let n = nonce();
                let msg = convert::snapshot(&p, &n);
                self.sent.push_back((p.stamp.version, n));
                if self.sent.len() > REMEMBERED_SENDS {
                    self.sent.pop_front();
                }
                tracing::debug!(cluster = %self.cluster, pod = %self.pod, version = p.stamp.version, "sent a snapshot");
                if tx.send(Ok(msg)).await.is_err() {
                    return Next::End(None);
                }
            }
            msg = inbound.message() => match msg {
                Ok(Some(m)) => {
                    if let Err(status) = self.handle(m) {
                        return Next::End(Some(status));
                    }
                }
                Ok(None) => return Next::End(None),
                Err(e) => {
                    tracing::debug!(cluster = %self.cluster, pod = %self.pod, error = %e, "control stream broke");
                    return Next::End(None);
                }
            },
            r = leading.changed() => {
                let stopped = r.is_err() || !*leading.borrow();
                if stopped {
                    return Next::End(Some(Status::unavailable("this operator replica stopped leading; reconnect")));
                }
            }
            _ = tx.closed() => return Next::End(None),
        }
        Next::Continue
    }

    fn answers(&self, version: u64, nonce: &str) -> bool {
        self.sent.iter().any(|(v, n)| *v == version && n == nonce)
    }

    fn handle(&mut self, m: SidecarMessage) -> Result<(), Status> {
        match m.kind {
            Some(Kind::Hello(_)) => {
                return Err(Status::invalid_argument(
                    "a stream says hello once, as its first message",
                ))
            }
            Some(Kind::Ack(a)) => {
                if !self.answers(a.version, &a.nonce) {
                    tracing::warn!(cluster = %self.cluster, pod = %self.pod, version = a.version, nonce = %a.nonce, "ignoring an ACK of a snapshot this stream did not send");
                    return Ok(());
                }
                tracing::debug!(cluster = %self.cluster, pod = %self.pod, version = a.version, "ACK");
                self.ctx
                    .hub
                    .record(&self.cluster, &self.pod, |r| r.ack(a.version));
            }
            Some(Kind::Nack(n)) => {
                if !self.answers(n.version, &n.nonce) {
                    tracing::warn!(cluster = %self.cluster, pod = %self.pod, version = n.version, nonce = %n.nonce, "ignoring a NACK of a snapshot this stream did not send");
                    return Ok(());
                }
                let e = n.error.unwrap_or_default();
                tracing::warn!(cluster = %self.cluster, pod = %self.pod, version = n.version, code = e.code, message = %e.message, "a sidecar rejected a snapshot");
                let pod = self.pod.clone();
                self.ctx.hub.record(&self.cluster, &self.pod, |r| {
                    r.nack(&pod, n.version, e.code, &e.message)
                });
            }
            Some(Kind::Status(s)) => {
                let summary = convert::status(&s);
                self.ctx
                    .hub
                    .record(&self.cluster, &self.pod, |r| r.status = Some(summary));
            }
            None => return Ok(()),
        }
        self.ctx.reports_changed(&self.cluster);
        Ok(())
    }
}
