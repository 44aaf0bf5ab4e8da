//! GossipNetwork: counts its members and reports the network in status.

use std::sync::Arc;

use gossamer_operator_api::GossipNetwork;
use gossamer_operator_core::{network_status, NetworkInput, Selector};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::{apply_status, cluster_ref, condition_events, now, timed};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::metrics::ErrorLabels;

pub async fn reconcile(net: Arc<GossipNetwork>, ctx: Arc<Context>) -> Result<Action> {
    timed(&ctx, "GossipNetwork", reconcile_inner(net, ctx.clone())).await
}

async fn reconcile_inner(net: Arc<GossipNetwork>, ctx: Arc<Context>) -> Result<Action> {
    let ns = net
        .namespace()
        .ok_or_else(|| Error::MissingField(net.name_any(), "namespace"))?;
    let uid = net
        .uid()
        .ok_or_else(|| Error::MissingField(net.name_any(), "uid"))?;
    let c = cluster_ref(Some(ns.clone()), &net.spec.cluster);
    ctx.index().apply_network(&net);
    let state = ctx.cluster_state(&c);
    ctx.snapshot_wake.notify_one();
    let input = NetworkInput {
        name: net.name_any(),
        uid,
        selector: net.spec.member_selector.clone(),
        tables: net.spec.tables.iter().map(|t| t.name.clone()).collect(),
    };
    if let Err(p) = Selector::parse(&input.selector) {
        ctx.metrics
            .rejected
            .get_or_create(&ErrorLabels {
                kind: "GossipNetwork",
                error: p.reason(),
            })
            .inc();
    }
    let old = net.status.as_ref();
    let status = network_status(
        &input,
        &state,
        &ctx.acks(&c),
        net.metadata.generation,
        old,
        &now(),
    );
    let api: Api<GossipNetwork> = Api::namespaced(ctx.client.clone(), &ns);
    if apply_status(&api, &net, old, &status).await? {
        condition_events(
            &ctx,
            net.as_ref(),
            old.map(|s| s.conditions.as_slice()).unwrap_or_default(),
            &status.conditions,
        )
        .await;
    }
    Ok(Action::requeue(ctx.resync))
}
