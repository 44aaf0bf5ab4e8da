//! The snapshot loop (leader only): rebuilds the snapshot of every changed
//! cluster and stores each new version in a ConfigMap per cluster, so
//! versions keep growing across restarts and failovers.
//!
//! The ConfigMap `gossamer-snapshot-<cluster>` in the cluster's namespace
//! holds `version`, `hash` and `snapshot.json` (the content with key
//! fingerprints; key bytes never leave the TLS control stream). Writes
//! carry the resourceVersion they read, so two replicas that both believe
//! they lead can never store the same version twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gossamer_operator_core::{
    build_snapshot, kept_keys, ClusterRef, ClusterState, Snapshot, Stamp, Versioner,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, ResourceExt};

use crate::context::{managed_labels, Context, FIELD_MANAGER};
use crate::metrics::ClusterLabels;

/// Label naming the cluster a snapshot ConfigMap belongs to.
pub const SNAPSHOT_LABEL: &str = "gossamer.dev/snapshot-of";

/// The cluster's Pod names when the snapshot was stored.
const MEMBERS_KEY: &str = "members.json";
/// The departed Pod names the snapshot went out with.
const DEPARTED_KEY: &str = "departed.json";
/// The key the members encrypt with (the snapshot's primary, or the last
/// one when the snapshot has none).
const PRIMARY_KEY: &str = "primary";
/// The key names the members keep (the snapshot's, and held keys whose
/// bytes turned unusable).
const KEPT_KEY: &str = "kept.json";

/// The ConfigMap name of a cluster's snapshot.
pub fn configmap_name(cluster: &str) -> String {
    format!("gossamer-snapshot-{cluster}")
}

struct Stored {
    versioner: Versioner,
    resource_version: Option<String>,
}

fn stamp_of(cm: &ConfigMap) -> Option<Stamp> {
    let d = cm.data.as_ref()?;
    Some(Stamp {
        version: d.get("version")?.parse().ok()?,
        hash: d.get("hash")?.clone(),
    })
}

/// The key names of a stored snapshot.
fn stored_keys(cm: &ConfigMap) -> Option<Vec<String>> {
    let json: serde_json::Value =
        serde_json::from_str(cm.data.as_ref()?.get("snapshot.json")?).ok()?;
    json["keys"]
        .as_array()?
        .iter()
        .map(|k| k["name"].as_str().map(str::to_string))
        .collect()
}

/// The primary key's name in a stored snapshot, or, when it had none, the
/// primary the members still encrypt with.
fn stored_primary(cm: &ConfigMap) -> Option<String> {
    let data = cm.data.as_ref()?;
    if let Some(p) = data.get(PRIMARY_KEY).filter(|p| !p.is_empty()) {
        return Some(p.clone());
    }
    let json: serde_json::Value = serde_json::from_str(data.get("snapshot.json")?).ok()?;
    json["keys"]
        .as_array()?
        .iter()
        .find(|k| k["state"] == "Primary")
        .and_then(|k| k["name"].as_str())
        .map(str::to_string)
}

/// A stored list of names (`members.json`, `departed.json`, `kept.json`).
fn stored_names(cm: &ConfigMap, key: &str) -> Option<Vec<String>> {
    serde_json::from_str(cm.data.as_ref()?.get(key)?).ok()
}

async fn load(ctx: &Context) -> kube::Result<HashMap<ClusterRef, Stored>> {
    let api: Api<ConfigMap> = Api::all(ctx.client.clone());
    let list = api
        .list(&ListParams::default().labels(SNAPSHOT_LABEL))
        .await?;
    let mut out = HashMap::new();
    for cm in list {
        let Some(cluster) = cm.labels().get(SNAPSHOT_LABEL).cloned() else {
            continue;
        };
        let c = ClusterRef {
            namespace: cm.namespace().unwrap_or_default(),
            name: cluster,
        };
        let stamp = stamp_of(&cm);
        let primary = stored_primary(&cm);
        if let Some(keys) = stored_names(&cm, KEPT_KEY).or_else(|| stored_keys(&cm)) {
            ctx.published_keys
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(c.clone(), keys);
        }
        if let Some(p) = primary {
            ctx.primaries
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(c.clone(), p);
        }
        // Pods deleted while no operator led are found departed at the
        // first offer, from the members the previous leader stored.
        if let Some(members) = stored_names(&cm, MEMBERS_KEY) {
            let gone = stored_names(&cm, DEPARTED_KEY).unwrap_or_default();
            ctx.hub.resume_departed(&c, members, gone);
        }
        out.insert(
            c,
            Stored {
                versioner: Versioner::resume(stamp),
                resource_version: cm.resource_version(),
            },
        );
    }
    Ok(out)
}

/// Builds and, when the content changed, stores a cluster's snapshot.
/// Why a snapshot could not be stored.
#[derive(Debug, thiserror::Error)]
enum PublishError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("snapshot ConfigMap {0} kept changing under us (another writer?)")]
    Contended(String),
}

async fn publish(
    ctx: &Context,
    stored: &mut HashMap<ClusterRef, Stored>,
    c: &ClusterRef,
) -> Result<(), PublishError> {
    let state = ctx.cluster_state(c);
    let snap = build_snapshot(c, &state, &ctx.gossip);
    let hash = snap.content_hash();
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &c.namespace);
    let name = configmap_name(&c.name);
    for _attempt in 0..3 {
        let entry = stored.entry(c.clone()).or_insert(Stored {
            versioner: Versioner::default(),
            resource_version: None,
        });
        let Some(stamp) = entry.versioner.next(&hash) else {
            tracing::debug!(cluster = %c, keys = snap.keys.len(), "snapshot unchanged");
            // Stored already (by us, or by a previous leader): the streams
            // still need it, e.g. right after a failover.
            if let Some(last) = entry.versioner.last().cloned() {
                offer(ctx, c, last, snap, &state);
            }
            return Ok(());
        };
        // Plain strings and vectors always serialize.
        let content = serde_json::to_string_pretty(&snap).unwrap_or_default();
        let members: Vec<String> = state.members.iter().map(|m| m.name.clone()).collect();
        let departed = ctx.hub.departed_after(c, &members);
        let primary = snap
            .primary()
            .map(str::to_string)
            .or_else(|| state.last_primary.clone())
            .unwrap_or_default();
        let kept = kept_keys(&snap, &state);
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(c.namespace.clone()),
                resource_version: entry.resource_version.clone(),
                labels: Some(managed_labels([(SNAPSHOT_LABEL, c.name.clone())])),
                ..Default::default()
            },
            data: Some(
                [
                    ("version".to_string(), stamp.version.to_string()),
                    ("hash".to_string(), stamp.hash.clone()),
                    ("snapshot.json".to_string(), content),
                    (
                        MEMBERS_KEY.to_string(),
                        serde_json::to_string(&members).unwrap_or_default(),
                    ),
                    (
                        DEPARTED_KEY.to_string(),
                        serde_json::to_string(&departed).unwrap_or_default(),
                    ),
                    (PRIMARY_KEY.to_string(), primary),
                    (
                        KEPT_KEY.to_string(),
                        serde_json::to_string(&kept).unwrap_or_default(),
                    ),
                ]
                .into(),
            ),
            ..Default::default()
        };
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        let res = match entry.resource_version {
            Some(_) => api.replace(&name, &pp, &cm).await,
            None => api.create(&pp, &cm).await,
        };
        match res {
            Ok(written) => {
                entry.resource_version = written.resource_version();
                entry.versioner.commit(stamp.clone());
                ctx.metrics.snapshots_written.inc();
                ctx.metrics
                    .snapshot_version
                    .get_or_create(&ClusterLabels {
                        namespace: c.namespace.clone(),
                        cluster: c.name.clone(),
                    })
                    .set(stamp.version as i64);
                tracing::info!(cluster = %c, version = stamp.version, networks = snap.networks.len(), keys = snap.keys.len(), peers = snap.peers.len(), "new config snapshot");
                offer(ctx, c, stamp, snap, &state);
                return Ok(());
            }
            // Someone else wrote it (a previous leader, or a stale cache):
            // resume from what is stored and try again.
            Err(kube::Error::Api(e)) if e.is_conflict() || e.is_already_exists() => {
                let current = api.get_opt(&name).await?;
                let (stamp, rv) = match &current {
                    Some(cm) => (stamp_of(cm), cm.resource_version()),
                    None => (entry.versioner.last().cloned(), None),
                };
                *entry = Stored {
                    versioner: Versioner::resume(stamp),
                    resource_version: rv,
                };
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(PublishError::Contended(format!("{}/{name}", c.namespace)))
}

/// Hands a stored version to the control streams, and remembers its
/// primary (it stays primary until a successor is on every member) and its
/// keys (a deleted key that left them never comes back).
fn offer(ctx: &Context, c: &ClusterRef, stamp: Stamp, snap: Snapshot, state: &ClusterState) {
    ctx.published_keys
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(c.clone(), kept_keys(&snap, state));
    // A snapshot without a primary (its key's Secret turned unusable) does
    // not forget the primary: the members still encrypt with it.
    if let Some(p) = snap.primary() {
        ctx.primaries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(c.clone(), p.to_string());
    }
    let members: Vec<String> = state.members.iter().map(|m| m.name.clone()).collect();
    if ctx.hub.offer(c, stamp, snap, &members) {
        // Every ACK was of an older version now.
        ctx.reports_changed(c);
    }
}

/// Runs until the task is dropped (leadership lost or shutdown).
pub async fn run(ctx: Arc<Context>) {
    // Never from half a world: before every watch has listed, a snapshot
    // would miss networks or members, and Pods not listed yet would look
    // departed (their entries reaped on every sidecar).
    while let Some(what) = ctx.unsynced() {
        tracing::debug!(waiting_for = what, "snapshots wait for the watches to list");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut stored = loop {
        match load(&ctx).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list stored snapshots; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    {
        let mut ix = ctx.index();
        ix.mark_all_dirty();
        for c in stored.keys() {
            ix.mark_dirty(c.clone());
        }
    }
    loop {
        let dirty = ctx.index().take_dirty();
        tracing::debug!(clusters = dirty.len(), "rebuilding changed snapshots");
        ctx.metrics.snapshot_queue.set(dirty.len() as i64);
        for (i, c) in dirty.iter().enumerate() {
            if let Err(e) = publish(&ctx, &mut stored, c).await {
                tracing::warn!(cluster = %c, error = %e, "cannot store the snapshot; retrying");
                ctx.index().mark_dirty(c.clone());
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            ctx.metrics.snapshot_queue.set((dirty.len() - i - 1) as i64);
        }
        tokio::select! {
            _ = ctx.snapshot_wake.notified() => {
                // Let a burst of events land in one build.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
    }
}
