//! Watches that fold every object into the index. They run on every
//! replica, leader or not, so a standby takes over with a warm index.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use gossamer_operator_api::{BootstrapPeers, GossipKey, GossipNetwork, CLUSTER_LABEL};
use gossamer_operator_index::Index;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::context::Context;

type Key = (String, String);

fn key_of<K: ResourceExt>(o: &K) -> Key {
    (o.namespace().unwrap_or_default(), o.name_any())
}

/// One kind's way into the index.
struct Fold<K> {
    synced: fn(&Context) -> &AtomicBool,
    apply: fn(&mut Index, &K),
    delete: fn(&mut Index, &str, &str),
    /// Whether a change of this kind should re-reconcile the objects.
    triggers: bool,
}

/// Folds one kind's watch into the index. Only the keys of what was filed
/// are kept here, so that a re-list (after the watch was down) can forget
/// what was deleted meanwhile; the objects themselves are not held.
async fn fold<K>(api: Api<K>, cfg: watcher::Config, ctx: Arc<Context>, f: Fold<K>)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    let kind = K::kind(&Default::default()).to_string();
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    let mut known: HashSet<Key> = HashSet::new();
    let mut relist: Option<HashSet<Key>> = None;
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(Event::Apply(o)) => {
                (f.apply)(&mut ctx.index(), &o);
                known.insert(key_of(&o));
            }
            Ok(Event::Delete(o)) => {
                let (ns, name) = key_of(&o);
                (f.delete)(&mut ctx.index(), &ns, &name);
                known.remove(&(ns, name));
            }
            Ok(Event::Init) => relist = Some(HashSet::new()),
            Ok(Event::InitApply(o)) => {
                (f.apply)(&mut ctx.index(), &o);
                relist.get_or_insert_with(HashSet::new).insert(key_of(&o));
            }
            Ok(Event::InitDone) => {
                let seen = relist.take().unwrap_or_default();
                {
                    let mut ix = ctx.index();
                    for (ns, name) in known.difference(&seen) {
                        (f.delete)(&mut ix, ns, name);
                    }
                }
                known = seen;
                (f.synced)(&ctx).store(true, Ordering::Release);
                tracing::debug!(kind = %kind, objects = known.len(), "listed");
            }
            Err(e) => {
                tracing::warn!(error = %e, kind = %kind, "watch failed; retrying with backoff");
                continue;
            }
        }
        if f.triggers {
            // No receiver (not the leader) is fine.
            let _ = ctx.pod_events.send(());
        }
        ctx.snapshot_wake.notify_one();
    }
}

/// Runs every watch until the task is dropped.
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let cfg = watcher::Config::default();
    tokio::join!(
        fold(
            Api::<GossipNetwork>::all(client.clone()),
            cfg.clone(),
            ctx.clone(),
            Fold {
                synced: |c| &c.synced.networks,
                apply: Index::apply_network,
                delete: Index::delete_network,
                triggers: false
            },
        ),
        fold(
            Api::<GossipKey>::all(client.clone()),
            cfg.clone(),
            ctx.clone(),
            Fold {
                synced: |c| &c.synced.keys,
                apply: Index::apply_key,
                delete: Index::delete_key,
                triggers: false
            },
        ),
        fold(
            Api::<BootstrapPeers>::all(client.clone()),
            cfg.clone(),
            ctx.clone(),
            Fold {
                synced: |c| &c.synced.peers,
                apply: Index::apply_peers,
                delete: Index::delete_peers,
                triggers: false
            },
        ),
        // Only Pods that carry a sidecar: the label is set at injection.
        fold(
            Api::<Pod>::all(client),
            watcher::Config::default().labels(CLUSTER_LABEL),
            ctx.clone(),
            Fold {
                synced: |c| &c.synced.pods,
                apply: Index::apply_pod,
                delete: Index::delete_pod,
                triggers: true
            },
        ),
    );
}
