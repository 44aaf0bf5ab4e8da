//! BootstrapPeers: resolves the seeds and reports them in status.

use std::sync::Arc;

use gossamer_operator_api::BootstrapPeers;
use gossamer_operator_core::{peers_status, PeersInput};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::{apply_status, cluster_ref, condition_events, now, timed};
use crate::context::Context;
use crate::error::{Error, Result};

pub async fn reconcile(p: Arc<BootstrapPeers>, ctx: Arc<Context>) -> Result<Action> {
    timed(&ctx, "BootstrapPeers", reconcile_inner(p, ctx.clone())).await
}

async fn reconcile_inner(p: Arc<BootstrapPeers>, ctx: Arc<Context>) -> Result<Action> {
    let ns = p
        .namespace()
        .ok_or_else(|| Error::MissingField(p.name_any(), "namespace"))?;
    let c = cluster_ref(Some(ns.clone()), &p.spec.cluster);
    let state = {
        let mut ix = ctx.index();
        ix.apply_peers(&p);
        ix.cluster(&c)
    };
    ctx.snapshot_wake.notify_one();
    let input = PeersInput {
        name: p.name_any(),
        static_peers: p.spec.r#static.clone(),
        from_members: p.spec.from_members.clone(),
    };
    let old = p.status.as_ref();
    let status = peers_status(
        &input,
        &state,
        ctx.gossip.port,
        p.metadata.generation,
        old,
        &now(),
    );
    let api: Api<BootstrapPeers> = Api::namespaced(ctx.client.clone(), &ns);
    if apply_status(&api, &p, old, &status).await? {
        condition_events(
            &ctx,
            p.as_ref(),
            old.map(|s| s.conditions.as_slice()).unwrap_or_default(),
            &status.conditions,
        )
        .await;
    }
    Ok(Action::requeue(ctx.resync))
}
