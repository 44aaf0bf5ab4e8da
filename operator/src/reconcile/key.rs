//! GossipKey: reads (or generates) the key's bytes, decides its phase, holds
//! its finalizer until the key has left every keyring.

use std::sync::Arc;
use std::time::Duration;

use gossamer_operator_api::{GossipKey, GossipKeySpec, KeyPhase, KEY_FINALIZER};
use gossamer_operator_core::{
    key_status, parse_rotate_after, plan_keys_after, rotation, successor, KeyFacts, KeyMaterial,
    KeyRotation, Problem, Rotation, CHAIN_LABEL, INDEX_LABEL, PREDECESSOR_LABEL,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::ByteString;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use super::{apply_status, cluster_ref, condition_events, now, timed};
use crate::context::{managed_labels, Context, FIELD_MANAGER};
use crate::error::{Error, Result};
use crate::metrics::ErrorLabels;

/// The data key of a generated Secret.
const GENERATED_DATA_KEY: &str = "key";

/// The annotation on a GossipKey that records the fingerprint of the bytes
/// the operator generated for it, so that a lost Secret is noticed (and
/// not silently replaced by different bytes) and a restored copy accepted.
pub const GENERATED_FINGERPRINT_ANNOTATION: &str = "gossamer.dev/generated-fingerprint";

/// The name of the Secret the operator generates for a key without
/// `spec.secretRef`.
pub fn generated_secret_name(key_name: &str) -> String {
    format!("gossamer-key-{key_name}")
}

pub async fn reconcile(key: Arc<GossipKey>, ctx: Arc<Context>) -> Result<Action> {
    timed(&ctx, "GossipKey", reconcile_inner(key, ctx.clone())).await
}

async fn reconcile_inner(key: Arc<GossipKey>, ctx: Arc<Context>) -> Result<Action> {
    let name = key.name_any();
    let ns = key
        .namespace()
        .ok_or_else(|| Error::MissingField(name.clone(), "namespace"))?;
    let api: Api<GossipKey> = Api::namespaced(ctx.client.clone(), &ns);
    let deleting = key.metadata.deletion_timestamp.is_some();
    let has_finalizer = key.finalizers().iter().any(|f| f == KEY_FINALIZER);
    if !deleting && !has_finalizer {
        // The key must leave every keyring before the object goes.
        let mut finalizers = key.finalizers().to_vec();
        finalizers.push(KEY_FINALIZER.to_string());
        set_finalizers(&api, &key, finalizers).await?;
    }

    let (material, secret_name) = read_material(&ctx, &key, &ns, deleting).await?;
    let c = cluster_ref(Some(ns.clone()), &key.spec.cluster);
    {
        let mut ix = ctx.index();
        ix.apply_key(&key);
        ix.set_key_material(&c, &name, material.clone());
    }
    let state = ctx.cluster_state(&c);
    ctx.snapshot_wake.notify_one();

    let members = state.members.len() as u32;
    let plan = plan_keys_after(
        &state.keys,
        members,
        &state.key_reports,
        state.last_primary.as_deref(),
        state.last_keys.as_deref(),
    );
    let Some(decision) = plan.decisions.iter().find(|d| d.name == name) else {
        // The index lost the key between our write and read: a delete raced
        // us. The delete event reconciles what is left.
        return Ok(Action::await_change());
    };
    let problem = material.as_ref().err();
    if let Some(p) = problem {
        ctx.metrics
            .rejected
            .get_or_create(&ErrorLabels {
                kind: "GossipKey",
                error: p.reason(),
            })
            .inc();
    }
    let now = now();
    let schedule = if deleting {
        Schedule::default()
    } else {
        schedule(&ctx, &api, &key, problem.is_none(), &now).await?
    };
    let old = key.status.as_ref();
    let facts = KeyFacts {
        problem,
        members,
        secret_name,
        generation: key.metadata.generation,
        rotation: KeyRotation {
            invalid: schedule.invalid.as_ref(),
            successor: schedule.successor.clone(),
            due: schedule.due.clone(),
        },
    };
    let status = key_status(decision, facts, old, &now);
    if apply_status(&api, &key, old, &status).await? {
        let reference = key.object_ref(&());
        let old_phase = old.and_then(|s| s.phase);
        if old_phase != status.phase {
            let from = old_phase.map_or("none", |p| p.as_str());
            let to = status.phase.map_or("none", |p| p.as_str());
            let fp = status.fingerprint.as_deref().unwrap_or("no usable bytes");
            ctx.event(
                &reference,
                false,
                "PhaseChanged",
                to,
                format!("key {fp}: {from} -> {to}"),
            )
            .await;
        }
        condition_events(
            &ctx,
            key.as_ref(),
            old.map(|s| s.conditions.as_slice()).unwrap_or_default(),
            &status.conditions,
        )
        .await;
    }

    if deleting {
        if decision.release && has_finalizer {
            // Retiring => removed: no keyring holds it any more.
            let rest: Vec<String> = key
                .finalizers()
                .iter()
                .filter(|f| *f != KEY_FINALIZER)
                .cloned()
                .collect();
            set_finalizers(&api, &key, rest).await?;
            let fp = decision.fingerprint.as_deref().unwrap_or("no usable bytes");
            ctx.event(
                &key.object_ref(&()),
                false,
                "Removed",
                "RemoveKey",
                format!("key {fp} left every keyring; releasing the object"),
            )
            .await;
            return Ok(Action::await_change());
        }
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    if decision.phase == KeyPhase::Primary {
        retire_predecessor(&ctx, &api, &key).await?;
    }
    // Secrets are read, not watched: look again soon while one is missing.
    Ok(match problem {
        Some(_) => Action::requeue(Duration::from_secs(5)),
        None => Action::requeue(schedule.wake.map_or(ctx.resync, |w| w.min(ctx.resync))),
    })
}

/// A key's rotation schedule, as this reconcile found and acted on it.
#[derive(Default)]
struct Schedule {
    invalid: Option<Problem>,
    successor: Option<String>,
    due: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// Reconcile again after this long (the successor is due then).
    wake: Option<Duration>,
}

/// `spec.rotateAfter`: creates the successor once the key is old enough
/// (only from a key whose bytes are usable), and says where the schedule
/// stands.
async fn schedule(
    ctx: &Context,
    api: &Api<GossipKey>,
    key: &GossipKey,
    usable: bool,
    now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> Result<Schedule> {
    let Some(value) = key.spec.rotate_after.as_deref() else {
        return Ok(Schedule::default());
    };
    let after = match parse_rotate_after(value) {
        Ok(a) => a,
        Err(p) => {
            return Ok(Schedule {
                invalid: Some(p),
                ..Schedule::default()
            })
        }
    };
    let name = key.name_any();
    let labels = key.labels();
    let next = successor(
        &name,
        labels.get(CHAIN_LABEL).map(String::as_str),
        labels.get(INDEX_LABEL).map(String::as_str),
    );
    let existing = api
        .get_opt(&next.name)
        .await
        .map_err(Error::kube(format!("reading GossipKey {}", next.name)))?;
    let created = key
        .metadata
        .creation_timestamp
        .clone()
        .unwrap_or_else(|| now.clone());
    let when = rotation(&created, Some(after), now);
    match existing {
        Some(other) if other.labels().get(PREDECESSOR_LABEL) == Some(&name) => {
            return Ok(Schedule {
                successor: Some(next.name),
                ..Schedule::default()
            });
        }
        Some(_) if when == Rotation::Due => {
            return Ok(Schedule {
                invalid: Some(Problem::SuccessorNameTaken {
                    name: next.name,
                    value: value.to_string(),
                }),
                wake: Some(Duration::from_secs(30)),
                ..Schedule::default()
            });
        }
        _ => {}
    }
    match when {
        Rotation::Never => Ok(Schedule::default()),
        Rotation::Later(wait, due) => Ok(Schedule {
            due: Some(due),
            wake: Some(wait + Duration::from_millis(500)),
            ..Schedule::default()
        }),
        // A key without usable bytes is not rotated: its successor would
        // replace a key that never worked.
        Rotation::Due if !usable => Ok(Schedule::default()),
        Rotation::Due => {
            let ns = key.namespace().unwrap_or_default();
            let successor_key = GossipKey {
                metadata: kube::api::ObjectMeta {
                    name: Some(next.name.clone()),
                    namespace: Some(ns.clone()),
                    labels: Some(managed_labels([
                        (PREDECESSOR_LABEL, name.clone()),
                        (CHAIN_LABEL, next.chain.clone()),
                        (INDEX_LABEL, next.index.to_string()),
                    ])),
                    ..Default::default()
                },
                spec: GossipKeySpec {
                    cluster: key.spec.cluster.clone(),
                    secret_ref: None,
                    rotate_after: key.spec.rotate_after.clone(),
                },
                status: None,
            };
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            match api.create(&params, &successor_key).await {
                Ok(_) => {
                    ctx.event(
                        &key.object_ref(&()),
                        false,
                        "RotationStarted",
                        "CreateSuccessor",
                        format!(
                            "rotateAfter {value} passed: created GossipKey {ns}/{}; this key is deleted once that one is primary",
                            next.name
                        ),
                    )
                    .await;
                }
                // Made by an earlier reconcile that did not see it yet.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => {
                    return Err(Error::kube(format!(
                        "creating GossipKey {ns}/{} to succeed {name}",
                        next.name
                    ))(e))
                }
            }
            Ok(Schedule {
                successor: Some(next.name),
                ..Schedule::default()
            })
        }
    }
}

/// A successor made by `rotateAfter` that became primary deletes the key
/// it replaces, which then retires like any deleted key.
async fn retire_predecessor(ctx: &Context, api: &Api<GossipKey>, key: &GossipKey) -> Result<()> {
    let Some(pred) = key.labels().get(PREDECESSOR_LABEL) else {
        return Ok(());
    };
    let Some(old) = api
        .get_opt(pred)
        .await
        .map_err(Error::kube(format!("reading GossipKey {pred}")))?
    else {
        return Ok(());
    };
    if old.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    api.delete(pred, &Default::default())
        .await
        .map_err(Error::kube(format!(
            "deleting GossipKey {pred} after its rotation"
        )))?;
    ctx.event(
        &old.object_ref(&()),
        false,
        "Rotated",
        "DeleteKey",
        format!(
            "successor GossipKey {} is primary on every member; deleting this key",
            key.name_any()
        ),
    )
    .await;
    Ok(())
}

/// Replaces the finalizer list, failing (and retrying) if the object
/// changed meanwhile.
async fn set_finalizers(
    api: &Api<GossipKey>,
    key: &GossipKey,
    finalizers: Vec<String>,
) -> Result<()> {
    let patch = serde_json::json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": key.resource_version()}
    });
    let what = format!("setting the finalizers of GossipKey {}", key.name_any());
    merge_patch(api, key, &patch, what).await
}

/// Applies a JSON merge patch to `key`; `what` names it in the error.
async fn merge_patch(
    api: &Api<GossipKey>,
    key: &GossipKey,
    patch: &serde_json::Value,
    what: String,
) -> Result<()> {
    api.patch(
        &key.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
    .map_err(Error::kube(what))?;
    Ok(())
}

/// The key's bytes, or why there are none, and the Secret they come from.
async fn read_material(
    ctx: &Context,
    key: &GossipKey,
    ns: &str,
    deleting: bool,
) -> Result<(Result<KeyMaterial, Problem>, Option<String>)> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let Some(r) = &key.spec.secret_ref else {
        return generated(ctx, key, ns, deleting, &secrets).await;
    };
    if let Some(other) = r.namespace.as_deref().filter(|n| *n != ns) {
        let p = Problem::CrossNamespaceRef {
            namespace: ns.into(),
            secret_namespace: other.into(),
        };
        return Ok((Err(p), None));
    }
    // The schema requires both (CEL); an object from an older schema may not.
    let (sname, skey) = (
        r.name.clone().unwrap_or_default(),
        r.key.clone().unwrap_or_default(),
    );
    let secret = secrets
        .get_opt(&sname)
        .await
        .map_err(Error::kube(format!("reading Secret {ns}/{sname}")))?;
    let material = match secret {
        None => Err(Problem::SecretMissing {
            namespace: ns.into(),
            name: sname.clone(),
            key: skey,
        }),
        Some(s) => bytes_of(&s, ns, &sname, &skey),
    };
    Ok((material, Some(sname)))
}

fn bytes_of(s: &Secret, ns: &str, name: &str, key: &str) -> Result<KeyMaterial, Problem> {
    match s.data.as_ref().and_then(|d| d.get(key)) {
        Some(b) => KeyMaterial::new(b.0.clone(), ns, name, key),
        None => Err(Problem::SecretKeyMissing {
            namespace: ns.into(),
            name: name.into(),
            key: key.into(),
            present: s
                .data
                .iter()
                .flat_map(|d| d.keys().cloned())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Reads the Secret the operator generated for this key, creating it (32
/// random bytes, owned by the key, so the garbage collector removes it with
/// the key) when it does not exist and never existed: once bytes were
/// generated, their fingerprint is on the key
/// ([`GENERATED_FINGERPRINT_ANNOTATION`]), a lost Secret is a problem to
/// fix rather than a reason for new bytes, and a restored copy of the same
/// bytes is used even if it no longer names the key as its owner.
async fn generated(
    ctx: &Context,
    key: &GossipKey,
    ns: &str,
    deleting: bool,
    secrets: &Api<Secret>,
) -> Result<(Result<KeyMaterial, Problem>, Option<String>)> {
    let sname = generated_secret_name(&key.name_any());
    let uid = key
        .uid()
        .ok_or_else(|| Error::MissingField(key.name_any(), "uid"))?;
    let recorded = key
        .annotations()
        .get(GENERATED_FINGERPRINT_ANNOTATION)
        .cloned();
    let existing = secrets
        .get_opt(&sname)
        .await
        .map_err(Error::kube(format!("reading Secret {ns}/{sname}")))?;
    let fingerprint_of = |s: &Secret| {
        bytes_of(s, ns, &sname, GENERATED_DATA_KEY)
            .ok()
            .map(|m| m.fingerprint().to_string())
    };
    let secret = match existing {
        Some(s) => {
            let owned = s.owner_references().iter().any(|o| o.uid == uid);
            let restored = recorded.is_some() && fingerprint_of(&s) == recorded;
            if !owned && !restored {
                let p = Problem::GeneratedSecretTaken {
                    namespace: ns.into(),
                    name: sname.clone(),
                };
                return Ok((Err(p), Some(sname)));
            }
            if recorded.is_none() {
                // Generated before the fingerprint was recorded.
                if let Some(fp) = fingerprint_of(&s) {
                    record_generated(ctx, key, ns, &fp).await?;
                }
            }
            s
        }
        None if deleting => {
            let p = Problem::SecretMissing {
                namespace: ns.into(),
                name: sname.clone(),
                key: GENERATED_DATA_KEY.into(),
            };
            return Ok((Err(p), Some(sname)));
        }
        None if recorded.is_some() => {
            let p = Problem::GeneratedSecretLost {
                namespace: ns.into(),
                name: sname.clone(),
                fingerprint: recorded.unwrap_or_default(),
            };
            return Ok((Err(p), Some(sname)));
        }
        None => {
            let mut bytes = vec![0u8; 32];
            #[allow(clippy::disallowed_methods)] // key generation wants the OS-seeded CSPRNG
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
            let secret = Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some(sname.clone()),
                    namespace: Some(ns.into()),
                    labels: Some(managed_labels([])),
                    owner_references: Some(vec![OwnerReference {
                        api_version: GossipKey::api_version(&()).into(),
                        kind: GossipKey::kind(&()).into(),
                        name: key.name_any(),
                        uid,
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]),
                    ..Default::default()
                },
                type_: Some("Opaque".into()),
                data: Some([(GENERATED_DATA_KEY.to_string(), ByteString(bytes))].into()),
                ..Default::default()
            };
            let created = secrets
                .create(
                    &PostParams {
                        field_manager: Some(FIELD_MANAGER.into()),
                        ..Default::default()
                    },
                    &secret,
                )
                .await
                .map_err(Error::kube(format!(
                    "creating Secret {ns}/{sname} for a generated key"
                )))?;
            let fp = fingerprint_of(&created).unwrap_or_default();
            record_generated(ctx, key, ns, &fp).await?;
            ctx.event(
                &key.object_ref(&()),
                false,
                "KeyGenerated",
                "GenerateKey",
                format!("generated a 32-byte key {fp} into Secret {sname}"),
            )
            .await;
            created
        }
    };
    Ok((
        bytes_of(&secret, ns, &sname, GENERATED_DATA_KEY),
        Some(sname),
    ))
}

/// Records on the key the fingerprint of the bytes generated for it.
async fn record_generated(ctx: &Context, key: &GossipKey, ns: &str, fp: &str) -> Result<()> {
    let api: Api<GossipKey> = Api::namespaced(ctx.client.clone(), ns);
    let patch = serde_json::json!({
        "metadata": {"annotations": {GENERATED_FINGERPRINT_ANNOTATION: fp}}
    });
    let what = format!(
        "recording the generated key's fingerprint on GossipKey {ns}/{}",
        key.name_any()
    );
    merge_patch(&api, key, &patch, what).await
}
