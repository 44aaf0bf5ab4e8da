//! The local infos API (`gossamer.infos.v1`, tonic), served beside the
//! table API: cluster-wide infos and groups (see `gossamer_core::infos`).
//!
//! Like the table API, every call is one [`NodeHandle::call`] on the
//! node's task, so a watch starts exactly where its snapshot ends.

use std::pin::Pin;
use std::time::Duration;

use gossamer_proto::infos::v1 as pb;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::infos::{GroupOrder, Info, InfoChange, InfosError};
use crate::runtime::NodeHandle;

/// Watch events buffered per watcher between the node and the client.
const WATCH_QUEUE: usize = 1024;

/// The gRPC status of an infos error; the message is the error's own
/// text, which names the offending value.
pub fn status(e: InfosError) -> Status {
    let msg = e.to_string();
    match e {
        InfosError::NoSuchGroup { .. } => Status::not_found(msg),
        InfosError::PrefixOverlap { .. } | InfosError::BelowGroupLimit { .. } => {
            Status::failed_precondition(msg)
        }
        _ => Status::invalid_argument(msg),
    }
}

fn info(i: Info) -> pb::Info {
    pb::Info {
        key: i.key,
        value: i.value,
        origin: i.origin,
        origin_unix_ms: i.origin_ms,
        ttl_ms: i.ttl_ms,
        hops: i.hops,
    }
}

fn order(o: GroupOrder) -> pb::Order {
    match o {
        GroupOrder::Min => pb::Order::Min,
        GroupOrder::Max => pb::Order::Max,
    }
}

fn stopped() -> Status {
    Status::unavailable("the sidecar is stopping: retry against a running one")
}

/// The tonic service.
#[derive(Debug, Clone)]
pub struct InfosService {
    node: NodeHandle,
}

impl InfosService {
    /// A service for `node`.
    pub fn new(node: NodeHandle) -> Self {
        InfosService { node }
    }

    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::node::Node, std::time::Instant) -> R + Send + 'static,
    ) -> Result<R, Status> {
        self.node.call(f).await.ok_or_else(stopped)
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::InfoEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::infos_server::Infos for InfosService {
    async fn put_info(
        &self,
        req: Request<pb::PutInfoRequest>,
    ) -> Result<Response<pb::Info>, Status> {
        let r = req.into_inner();
        let ttl = Duration::from_millis(r.ttl_ms);
        self.call(move |n, now| n.with_infos(now, |i, now| i.put(&r.key, r.value, ttl, now)))
            .await?
            .map(|i| Response::new(info(i)))
            .map_err(status)
    }

    async fn get_info(
        &self,
        req: Request<pb::GetInfoRequest>,
    ) -> Result<Response<pb::Info>, Status> {
        let r = req.into_inner();
        if r.key.is_empty() {
            return Err(status(InfosError::EmptyKey));
        }
        let key = r.key.clone();
        self.call(move |n, now| n.infos().get(&key, now).cloned())
            .await?
            .map(|i| Response::new(info(i)))
            .ok_or_else(|| Status::not_found(format!("no live info with key {:?}", r.key)))
    }

    async fn register_group(
        &self,
        req: Request<pb::RegisterGroupRequest>,
    ) -> Result<Response<pb::RegisterGroupResponse>, Status> {
        let r = req.into_inner();
        let order = match pb::Order::try_from(r.order) {
            Ok(pb::Order::Min) => GroupOrder::Min,
            Ok(pb::Order::Max) => GroupOrder::Max,
            _ => {
                return Err(Status::invalid_argument(format!(
                    "group {:?} order {} is not ORDER_MIN (1) or ORDER_MAX (2)",
                    r.prefix, r.order
                )))
            }
        };
        let limit = usize::try_from(r.limit).unwrap_or(usize::MAX);
        self.call(move |n, now| {
            n.with_infos(now, |i, now| i.register_group(&r.prefix, limit, order, now))
        })
        .await?
        .map_err(status)?;
        Ok(Response::new(pb::RegisterGroupResponse {}))
    }

    async fn get_group(
        &self,
        req: Request<pb::GetGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        let r = req.into_inner();
        let (g, members) = self
            .call(move |n, now| n.infos().group(&r.prefix, now))
            .await?
            .map_err(status)?;
        Ok(Response::new(pb::Group {
            prefix: g.prefix,
            limit: u32::try_from(g.limit).unwrap_or(u32::MAX),
            order: order(g.order) as i32,
            infos: members.into_iter().map(info).collect(),
        }))
    }

    type WatchInfosStream = WatchStream;

    async fn watch_infos(
        &self,
        req: Request<pb::WatchInfosRequest>,
    ) -> Result<Response<Self::WatchInfosStream>, Status> {
        let prefix = req.into_inner().prefix;
        let handle = self.node.clone();
        let p = prefix.clone();
        // Snapshot and subscription in one step on the node's task.
        let (snapshot, mut changes) = self
            .call(move |n, now| {
                let snap: Vec<Info> = n.infos().with_prefix(&p, now).cloned().collect();
                (snap, handle.subscribe_infos())
            })
            .await?;
        let (tx, rx) = mpsc::channel(WATCH_QUEUE);
        tokio::spawn(async move {
            let ev = |t: pb::info_event::Type, i: Option<Info>| pb::InfoEvent {
                r#type: t as i32,
                info: i.map(info),
            };
            for i in snapshot {
                if tx
                    .send(Ok(ev(pb::info_event::Type::Existing, Some(i))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if tx
                .send(Ok(ev(pb::info_event::Type::Synced, None)))
                .await
                .is_err()
            {
                return;
            }
            loop {
                let item = tokio::select! {
                    r = changes.recv() => r,
                    () = tx.closed() => return,
                };
                let e = match item {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let _ = tx
                            .send(Err(Status::aborted(format!(
                                "watch of infos under {prefix:?} fell {n} changes behind and was \
                                 ended: watch again (it restarts from the current content)"
                            ))))
                            .await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        let _ = tx.send(Err(stopped())).await;
                        return;
                    }
                };
                if !e.info.key.starts_with(prefix.as_str()) {
                    continue;
                }
                let e = std::sync::Arc::unwrap_or_clone(e);
                let t = match e.change {
                    InfoChange::Put => pb::info_event::Type::Put,
                    InfoChange::Expired => pb::info_event::Type::Expired,
                    InfoChange::Evicted => pb::info_event::Type::Evicted,
                };
                if tx.send(Ok(ev(t, Some(e.info)))).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let (stats, partitioned) = self
            .call(|n, now| (n.infos().stats(), n.partitioned_for(now)))
            .await?;
        Ok(Response::new(pb::StatusResponse {
            infos: stats.infos as u64,
            max_hops: stats.max_hops,
            partitioned: partitioned.is_some(),
            partitioned_for_ms: partitioned
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }))
    }
}

#[cfg(test)]
#[path = "infos_tests.rs"]
mod tests;
