//! The local table API (`gossamer.tables.v1`, tonic): what an application
//! in the pod calls on its sidecar, on localhost TCP or a Unix socket; the
//! infos API (`gossamer.infos.v1`, [`InfosService`]) is served beside it.
//!
//! Shell: every call becomes one [`NodeHandle::call`] on the node's task,
//! so reads are consistent and a watch starts exactly where its snapshot
//! ends. Errors are gRPC statuses whose message names the offending value
//! (see `proto/gossamer/tables/v1/tables.proto`).

mod convert;
mod infos;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;

use gossamer_proto::tables::v1 as pb;
use pb::tables_server::{Tables as TablesApi, TablesServer};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info};

use crate::runtime::NodeHandle;
use crate::tables::{Change, TablesError};

pub use convert::status;
pub use infos::{status as infos_status, InfosService};

/// Failures reported per write in a `WriteEntries` call, at most.
const MAX_REPORTED_FAILURES: usize = 100;
/// Watch events buffered per watcher between the node and the client.
const WATCH_QUEUE: usize = 1024;

/// Where the API listens: `IP:PORT` (TCP, normally loopback) or
/// `unix:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// TCP.
    Tcp(SocketAddr),
    /// A Unix socket at this path (a stale socket file is replaced).
    Unix(PathBuf),
}

impl std::str::FromStr for Listen {
    type Err = ListenError;
    fn from_str(s: &str) -> Result<Self, ListenError> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(ListenError::EmptyUnixPath);
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        s.parse()
            .map(Listen::Tcp)
            .map_err(|source| ListenError::Address {
                value: s.to_string(),
                source,
            })
    }
}

/// Why the API cannot listen where it was asked to. Variant names fit
/// metric labels; the texts say what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenError {
    /// `unix:` with no path.
    #[error("api listen address \"unix:\" has no path: use unix:/path/to/socket")]
    EmptyUnixPath,
    /// Neither `IP:PORT` nor `unix:PATH`.
    #[error("api listen address {value:?} is neither IP:PORT nor unix:PATH ({source}); example: 127.0.0.1:7947")]
    Address {
        /// The text given.
        value: String,
        /// Why it is no IP:PORT.
        source: std::net::AddrParseError,
    },
    /// The TCP address cannot be bound.
    #[error("cannot bind the API on {addr}: {source}; pick a free port (api.listen)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A stale socket file cannot be removed.
    #[error("cannot replace the API socket {}: {source}", path.display())]
    ReplaceSocket {
        /// The socket's path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The Unix socket cannot be bound.
    #[error("cannot bind the API socket {}: {source}", path.display())]
    BindSocket {
        /// The socket's path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A bound API listener, not yet serving.
#[derive(Debug)]
pub enum Listener {
    /// TCP, with the address actually bound.
    Tcp(tokio::net::TcpListener, SocketAddr),
    /// A Unix socket.
    Unix(tokio::net::UnixListener, PathBuf),
}

impl Listener {
    /// Binds `listen`, so that a taken port fails at start, not later.
    ///
    /// # Errors
    /// The address cannot be bound; the message names it.
    pub async fn bind(listen: &Listen) -> Result<Self, ListenError> {
        match listen {
            Listen::Tcp(addr) => {
                let bind_err = |source| ListenError::Bind {
                    addr: *addr,
                    source,
                };
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(bind_err)?;
                let local = l.local_addr().map_err(bind_err)?;
                Ok(Listener::Tcp(l, local))
            }
            Listen::Unix(path) => {
                if path.exists() {
                    std::fs::remove_file(path).map_err(|source| ListenError::ReplaceSocket {
                        path: path.clone(),
                        source,
                    })?;
                }
                let l = tokio::net::UnixListener::bind(path).map_err(|source| {
                    ListenError::BindSocket {
                        path: path.clone(),
                        source,
                    }
                })?;
                Ok(Listener::Unix(l, path.clone()))
            }
        }
    }

    /// What it is bound to, for logs.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(_, a) => a.to_string(),
            Listener::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }
}

/// Why the API stopped serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The gRPC server failed on the listener `listen`.
    #[error("local table API on {listen} failed: {source}")]
    Transport {
        /// The listener, as [`Listener::describe`] shows it.
        listen: String,
        /// The server's error.
        source: tonic::transport::Error,
    },
    /// The reflection service could not be built from the descriptors.
    #[error("local table API on {listen}: cannot build the reflection service: {source}")]
    Reflection {
        /// The listener.
        listen: String,
        /// Why.
        source: tonic_reflection::server::Error,
    },
}

/// Serves the API for `node` on `listener` until `shutdown` resolves.
///
/// # Errors
/// The server failed.
pub async fn serve(
    node: NodeHandle,
    listener: Listener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let listen = listener.describe();
    info!(listen = %listen, "local table API listening");
    let svc = TablesServer::new(Service { node: node.clone() });
    let infos_svc =
        gossamer_proto::infos::v1::infos_server::InfosServer::new(InfosService::new(node.clone()));
    // The standard health service (Kubernetes gRPC probes, grpc-health-probe)
    // and server reflection (grpcurl with no .proto files at hand).
    let (health, health_svc) = tonic_health::server::health_reporter();
    health.set_serving::<TablesServer<Service>>().await;
    health
        .set_serving::<gossamer_proto::infos::v1::infos_server::InfosServer<InfosService>>()
        .await;
    tokio::spawn(track_health(node, health));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(gossamer_proto::TABLES_FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(gossamer_proto::INFOS_FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|source| ServeError::Reflection {
            listen: listen.clone(),
            source,
        })?;
    let router = tonic::transport::Server::builder()
        .add_service(health_svc)
        .add_service(reflection)
        .add_service(svc)
        .add_service(infos_svc);
    let r = match listener {
        Listener::Tcp(l, _) => {
            let incoming = tonic::transport::server::TcpIncoming::from(l).with_nodelay(Some(true));
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        Listener::Unix(l, _) => {
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(l);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    };
    r.map_err(|source| ServeError::Transport { listen, source })
}

/// Turns the health service to NOT_SERVING once the node stops.
async fn track_health(node: NodeHandle, health: tonic_health::server::HealthReporter) {
    while node.call(|_, _| ()).await.is_some() {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    health.set_not_serving::<TablesServer<Service>>().await;
    health
        .set_not_serving::<gossamer_proto::infos::v1::infos_server::InfosServer<InfosService>>()
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
}

/// The tonic service.
#[derive(Debug, Clone)]
pub struct Service {
    node: NodeHandle,
}

impl Service {
    /// A service for `node` (to mount on a server of one's own).
    pub fn new(node: NodeHandle) -> Self {
        Service { node }
    }

    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::node::Node, std::time::Instant) -> R + Send + 'static,
    ) -> Result<R, Status> {
        self.node.call(f).await.ok_or_else(stopped)
    }

    /// Runs one entry write on the node's tables and answers with its
    /// Lamport time.
    async fn write(
        &self,
        f: impl FnOnce(&mut crate::tables::Tables, std::time::Instant) -> Result<u64, TablesError>
            + Send
            + 'static,
    ) -> Result<Response<pb::WriteEntryResponse>, Status> {
        let ltime = self
            .call(move |n, now| n.with_tables(now, f))
            .await?
            .map_err(status)?;
        Ok(Response::new(pb::WriteEntryResponse { ltime }))
    }
}

fn stopped() -> Status {
    Status::unavailable("the sidecar is stopping: retry against a running one")
}

/// The network must be joined (reads of a network not joined would be
/// silently empty otherwise).
fn check_joined(t: &crate::tables::Tables, network: &str) -> Result<(), TablesError> {
    if network.is_empty() {
        return Err(TablesError::EmptyName("network id"));
    }
    if !t.networks().iter().any(|n| n == network) {
        return Err(TablesError::NotJoined(network.to_string()));
    }
    Ok(())
}

fn check_table(table: &str) -> Result<(), TablesError> {
    if table.is_empty() {
        return Err(TablesError::EmptyName("table name"));
    }
    Ok(())
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl TablesApi for Service {
    async fn create_entry(
        &self,
        req: Request<pb::WriteEntryRequest>,
    ) -> Result<Response<pb::WriteEntryResponse>, Status> {
        let r = req.into_inner();
        self.write(move |t, now| t.create_entry(&r.network, &r.table, &r.key, r.value, now))
            .await
    }

    async fn update_entry(
        &self,
        req: Request<pb::WriteEntryRequest>,
    ) -> Result<Response<pb::WriteEntryResponse>, Status> {
        let r = req.into_inner();
        self.write(move |t, now| t.update_entry(&r.network, &r.table, &r.key, r.value, now))
            .await
    }

    async fn delete_entry(
        &self,
        req: Request<pb::DeleteEntryRequest>,
    ) -> Result<Response<pb::WriteEntryResponse>, Status> {
        let r = req.into_inner();
        self.write(move |t, now| t.delete_entry(&r.network, &r.table, &r.key, now))
            .await
    }

    async fn get_entry(
        &self,
        req: Request<pb::GetEntryRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let r = req.into_inner();
        self.call(move |n, _| {
            let t = n.tables();
            check_joined(t, &r.network)?;
            check_table(&r.table)?;
            if r.key.is_empty() {
                return Err(TablesError::EmptyName("key"));
            }
            match t.get_entry(&r.network, &r.table, &r.key) {
                Some(e) => Ok(convert::entry(&r.network, &r.table, &r.key, e)),
                None => Err(TablesError::NotFound {
                    network: r.network,
                    table: r.table,
                    key: r.key,
                }),
            }
        })
        .await?
        .map(Response::new)
        .map_err(status)
    }

    async fn list_table(
        &self,
        req: Request<pb::ListTableRequest>,
    ) -> Result<Response<pb::ListTableResponse>, Status> {
        let r = req.into_inner();
        self.call(move |n, _| {
            let t = n.tables();
            check_joined(t, &r.network)?;
            check_table(&r.table)?;
            let entries = t
                .list_table(&r.network, &r.table)
                .into_iter()
                .map(|(k, e)| convert::entry(&r.network, &r.table, &k, e))
                .collect();
            Ok(pb::ListTableResponse { entries })
        })
        .await?
        .map(Response::new)
        .map_err(status)
    }

    type WatchTableStream = WatchStream;

    async fn watch_table(
        &self,
        req: Request<pb::WatchTableRequest>,
    ) -> Result<Response<Self::WatchTableStream>, Status> {
        let r = req.into_inner();
        let handle = self.node.clone();
        let (net, table) = (r.network.clone(), r.table.clone());
        // The snapshot and the subscription are taken in one step on the
        // node's task: no change falls between them.
        let (snapshot, mut changes) = self
            .call(move |n, _| {
                let t = n.tables();
                check_joined(t, &net)?;
                check_table(&table)?;
                Ok((t.list_table(&net, &table), handle.subscribe_watch()))
            })
            .await?
            .map_err(status)?;
        let (tx, rx) = mpsc::channel(WATCH_QUEUE);
        tokio::spawn(async move {
            let (net, table) = (r.network, r.table);
            for (k, e) in snapshot {
                let ev = pb::WatchEvent {
                    r#type: pb::watch_event::Type::Existing as i32,
                    network: net.clone(),
                    table: table.clone(),
                    key: k,
                    value: e.value,
                    prev_value: Vec::new(),
                    owner: e.owner,
                };
                if tx.send(Ok(ev)).await.is_err() {
                    return;
                }
            }
            let synced = pb::WatchEvent {
                r#type: pb::watch_event::Type::Synced as i32,
                network: net.clone(),
                table: table.clone(),
                ..Default::default()
            };
            if tx.send(Ok(synced)).await.is_err() {
                return;
            }
            loop {
                let item = tokio::select! {
                    r = changes.recv() => r,
                    () = tx.closed() => return,
                };
                let w = match item {
                    Ok(w) => w,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let _ = tx
                            .send(Err(Status::aborted(format!(
                                "watch of table {table:?} in network {net:?} fell {n} changes \
                                 behind and was ended: watch again (it restarts from the current content)"
                            ))))
                            .await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        let _ = tx.send(Err(stopped())).await;
                        return;
                    }
                };
                if w.network != net || w.table != table {
                    continue;
                }
                // Shared with the other watchers; copied only when they remain.
                let w = std::sync::Arc::unwrap_or_clone(w);
                let (kind, value, prev_value) = match w.change {
                    Change::Created { value } => {
                        (pb::watch_event::Type::Created, value, Vec::new())
                    }
                    Change::Updated { prev, value } => {
                        (pb::watch_event::Type::Updated, value, prev)
                    }
                    Change::Deleted { prev } => (pb::watch_event::Type::Deleted, prev, Vec::new()),
                    // A kind of change this API does not know yet.
                    _ => continue,
                };
                let ev = pb::WatchEvent {
                    r#type: kind as i32,
                    network: w.network,
                    table: w.table,
                    key: w.key,
                    value,
                    prev_value,
                    owner: w.owner,
                };
                if tx.send(Ok(ev)).await.is_err() {
                    debug!("watcher went away");
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn write_entries(
        &self,
        req: Request<Streaming<pb::WriteBatch>>,
    ) -> Result<Response<pb::WriteEntriesResponse>, Status> {
        let mut stream = req.into_inner();
        let mut resp = pb::WriteEntriesResponse::default();
        let mut index = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let first = index;
            index += batch.writes.len() as u64;
            let failures = self
                .call(move |n, now| {
                    n.with_tables(now, |t, now| convert::apply_batch(t, batch, now))
                })
                .await?;
            let failed = failures.len() as u64;
            resp.applied += (index - first) - failed;
            resp.failed += failed;
            for (i, e) in failures {
                if resp.failures.len() < MAX_REPORTED_FAILURES {
                    let s = status(e);
                    resp.failures.push(pb::WriteFailure {
                        index: first + i as u64,
                        code: s.code() as i32,
                        message: s.message().to_string(),
                    });
                }
            }
        }
        Ok(Response::new(resp))
    }

    async fn join_network(
        &self,
        req: Request<pb::NetworkRequest>,
    ) -> Result<Response<pb::NetworkResponse>, Status> {
        let r = req.into_inner();
        self.call(move |n, now| n.with_tables(now, |t, now| t.join_network(&r.network, now)))
            .await?
            .map_err(status)?;
        Ok(Response::new(pb::NetworkResponse {}))
    }

    async fn leave_network(
        &self,
        req: Request<pb::NetworkRequest>,
    ) -> Result<Response<pb::NetworkResponse>, Status> {
        let r = req.into_inner();
        if r.network.is_empty() {
            return Err(status(TablesError::EmptyName("network id")));
        }
        self.call(move |n, now| n.with_tables(now, |t, now| t.leave_network(&r.network, now)))
            .await?
            .map_err(status)?;
        Ok(Response::new(pb::NetworkResponse {}))
    }

    async fn members(
        &self,
        _req: Request<pb::MembersRequest>,
    ) -> Result<Response<pb::MembersResponse>, Status> {
        let members = self
            .call(|n, _| n.membership().members())
            .await?
            .into_iter()
            .map(|m| pb::Member {
                name: m.name,
                addr: m.addr.to_string(),
                state: m.status.as_str().to_string(),
                meta: m.meta,
                incarnation: m.incarnation,
            })
            .collect();
        Ok(Response::new(pb::MembersResponse { members }))
    }

    async fn health(
        &self,
        _req: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthResponse>, Status> {
        let r = self
            .call(|n, _| {
                let m = n.membership();
                convert::health(m.name(), m.health_score(), m.num_live(), n.tables().stats())
            })
            .await?;
        Ok(Response::new(r))
    }
}

#[cfg(test)]
mod tests;
