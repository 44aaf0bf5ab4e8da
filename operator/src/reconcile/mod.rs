//! One plain `reconcile(obj, ctx) -> Result<Action>` per kind, and what they
//! share: status by server-side apply, Events on change, metrics.

pub mod key;
pub mod network;
pub mod peers;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gossamer_operator_core::ClusterRef;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_stream::wrappers::BroadcastStream;

use crate::context::{Context, FIELD_MANAGER};
use crate::error::{Error, Result};
use crate::metrics::{ErrorLabels, KindLabel};

/// The shell's clock, for condition transition times.
pub fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    #[allow(clippy::disallowed_methods)] // the shell reads the clock
    let t = std::time::SystemTime::now();
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::try_from(t).unwrap_or_default(),
    )
}

/// Runs a reconcile with its metrics: count, in flight, duration.
pub async fn timed<F: Future<Output = Result<Action>>>(
    ctx: &Context,
    kind: &'static str,
    f: F,
) -> Result<Action> {
    let label = KindLabel { kind };
    ctx.metrics.reconciles.get_or_create(&label).inc();
    ctx.metrics.in_flight.get_or_create(&label).inc();
    #[allow(clippy::disallowed_methods)] // the shell measures wall time
    let start = std::time::Instant::now();
    let r = f.await;
    ctx.metrics
        .duration
        .get_or_create(&label)
        .observe(start.elapsed().as_secs_f64());
    ctx.metrics.in_flight.get_or_create(&label).dec();
    if let Err(e) = &r {
        ctx.metrics
            .errors
            .get_or_create(&ErrorLabels {
                kind,
                error: e.label(),
            })
            .inc();
    }
    r
}

/// Retry a failed reconcile soon; the controller backs off on repeats.
pub fn error_policy<K>(kind: String) -> impl Fn(Arc<K>, &Error, Arc<Context>) -> Action
where
    K: ResourceExt,
{
    move |obj, err, _ctx| {
        let object = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
        tracing::warn!(kind = %kind, %object, error = %err, "reconcile failed; retrying");
        Action::requeue(Duration::from_secs(5))
    }
}

/// The cluster an object belongs to.
pub fn cluster_ref(namespace: Option<String>, cluster: &str) -> ClusterRef {
    ClusterRef {
        namespace: namespace.unwrap_or_default(),
        name: cluster.to_string(),
    }
}

/// Writes `status` with server-side apply under the operator's field
/// manager, unless it equals what the object already shows.
pub async fn apply_status<K, S>(api: &Api<K>, obj: &K, old: Option<&S>, status: &S) -> Result<bool>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if old == Some(status) {
        return Ok(false);
    }
    let name = obj.name_any();
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::kube(format!(
        "writing the status of {} {name}",
        K::kind(&())
    )))?;
    Ok(true)
}

/// Publishes an Event for each condition whose status or reason changed:
/// Warning for a problem (Ready False or Degraded True), Normal otherwise.
pub async fn condition_events<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    old: &[Condition],
    new: &[Condition],
) {
    let reference = obj.object_ref(&());
    for c in new {
        let before = old.iter().find(|o| o.type_ == c.type_);
        if before.is_some_and(|b| b.status == c.status && b.reason == c.reason) {
            continue;
        }
        // A healthy "not degraded" is news only when it ends a problem.
        if c.type_ == "Degraded" && c.status == "False" && before.is_none() {
            continue;
        }
        let warning = (c.type_ == "Ready" && c.status == "False")
            || (c.type_ == "Degraded" && c.status == "True");
        let note = if c.message.is_empty() {
            format!("{} is {}", c.type_, c.status)
        } else {
            c.message.clone()
        };
        ctx.event(&reference, warning, &c.reason, &c.type_, note)
            .await;
    }
}

/// What makes every object of a kind be reconciled again: a Pod with a
/// sidecar came, changed or went (member counts, seeds). Reconciles whose
/// status comes out unchanged write nothing, and the controller's debounce
/// folds a burst into one pass.
pub fn triggers(ctx: &Arc<Context>) -> impl futures::Stream<Item = ()> + Send + 'static {
    BroadcastStream::new(ctx.pod_events.subscribe()).map(|_| ())
}
