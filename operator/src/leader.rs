//! Leader election on a coordination.k8s.io Lease: only the leader runs the
//! controllers and the snapshot loop (everything that writes); every
//! replica keeps its index warm. The control streams follow the Lease too
//! (see `control`).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gossamer_operator_api::{BootstrapPeers, GossipKey, GossipNetwork};
use kube::runtime::controller::Config as ControllerConfig;
use kube::runtime::{watcher, Controller};
use kube::Api;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::context::Context;
use crate::reconcile::{self, error_policy, triggers};
use crate::snapshots;

/// How the Lease is held.
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration_secs: u64,
    pub grace_secs: u64,
}

/// One kind's controller: its own watch, a re-reconcile of every object
/// on each trigger, a 100 ms debounce, and `reconcile` per object.
async fn control<K, F>(ctx: Arc<Context>, reconcile: fn(Arc<K>, Arc<Context>) -> F)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    F: std::future::Future<Output = crate::error::Result<kube::runtime::controller::Action>>
        + Send
        + 'static,
{
    Controller::new(
        Api::<K>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .with_config(ControllerConfig::default().debounce(Duration::from_millis(100)))
    .reconcile_all_on(triggers(&ctx))
    .run(
        reconcile,
        error_policy(K::kind(&()).into_owned()),
        ctx.clone(),
    )
    .for_each(|_| futures::future::ready(()))
    .await
}

fn start_leading(ctx: &Arc<Context>) -> JoinSet<()> {
    let mut set = JoinSet::new();
    set.spawn(snapshots::run(ctx.clone()));
    set.spawn(control::<GossipNetwork, _>(
        ctx.clone(),
        reconcile::network::reconcile,
    ));
    set.spawn(control::<GossipKey, _>(
        ctx.clone(),
        reconcile::key::reconcile,
    ));
    set.spawn(control::<BootstrapPeers, _>(
        ctx.clone(),
        reconcile::peers::reconcile,
    ));
    set
}

/// Ends every control stream: the sidecars' reports must reach the leader,
/// so they reconnect to whoever leads next.
fn stop_serving(ctx: &Context) {
    ctx.leading.send_replace(false);
    ctx.hub.clear();
}

/// Campaigns for the Lease until `shutdown` fires; leads while it holds it.
/// On shutdown the Lease is released, so the other replica takes over at
/// once instead of after the Lease's duration.
pub async fn run(
    ctx: Arc<Context>,
    lease: LeaseConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let manager = LeaseManagerBuilder::new(ctx.client.clone(), &lease.name)
        .with_namespace(&lease.namespace)
        .with_identity(&lease.identity)
        .with_duration(lease.duration_secs)
        .with_grace(lease.grace_secs)
        .build()
        .await
        .map_err(|e| {
            format!(
                "cannot set up the leader Lease {}/{}: {e}",
                lease.namespace, lease.name
            )
        })?;
    let (mut leading, task) = manager.watch().await;
    let mut tasks: Option<JoinSet<()>> = None;
    loop {
        let is_leader = *leading.borrow_and_update();
        match (is_leader, tasks.is_some()) {
            (true, false) => {
                tracing::info!(identity = %lease.identity, lease = %format!("{}/{}", lease.namespace, lease.name), "became the leader");
                ctx.metrics.leader.set(1);
                ctx.leading.send_replace(true);
                tasks = Some(start_leading(&ctx));
            }
            (false, true) => {
                tracing::warn!(identity = %lease.identity, "lost the leader Lease; stopping every writer");
                ctx.metrics.leader.set(0);
                stop_serving(&ctx);
                if let Some(mut t) = tasks.take() {
                    t.shutdown().await;
                }
            }
            _ => {}
        }
        tokio::select! {
            r = leading.changed() => if r.is_err() {
                return Err("the leader election task stopped".into());
            },
            _ = shutdown.changed() => break,
        }
    }
    stop_serving(&ctx);
    if let Some(mut t) = tasks.take() {
        t.shutdown().await;
    }
    ctx.metrics.leader.set(0);
    drop(leading);
    match tokio::time::timeout(Duration::from_secs(5), task).await {
        Ok(Ok(Ok(_))) => tracing::info!("released the leader Lease"),
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "could not release the leader Lease; the other replica waits for it to expire")
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "the leader election task failed"),
        Err(_) => tracing::warn!("releasing the leader Lease timed out"),
    }
    Ok(())
}
