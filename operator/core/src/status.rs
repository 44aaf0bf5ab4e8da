//! Every object's status, computed from the cluster's state.
//!
//! Conditions keep their `lastTransitionTime` while their status stays the
//! same, so an unchanged world computes an identical status and the runtime
//! writes nothing.

use gossamer_operator_api::{BootstrapPeersStatus, GossipKeyStatus, GossipNetworkStatus, KeyPhase};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::{ClusterState, KeyDecision, Member, NetworkInput, PeersInput, Problem, Selector};

/// Degraded: a selected member refused the current snapshot (its sidecar
/// keeps the last good one); the message carries the first refusal.
fn degraded(rejected: &[&crate::Rejection]) -> Cond<'static> {
    match rejected.first() {
        None => Cond {
            type_: "Degraded",
            ok: false,
            reason: "AsExpected",
            message: String::new(),
        },
        Some(first) => Cond {
            type_: "Degraded",
            ok: true,
            reason: "SnapshotRejected",
            message: if rejected.len() == 1 {
                first.to_string()
            } else {
                format!("{} members rejected the snapshot; {first}", rejected.len())
            },
        },
    }
}

/// What the sidecars acknowledged (filled by the control stream; zero until
/// sidecars connect).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acks {
    /// Members running it, by Pod name.
    pub running: Vec<String>,
    /// Entries members report, by network name.
    pub entries: std::collections::HashMap<String, u64>,
    /// Members that refused the current version.
    pub rejected: Vec<crate::Rejection>,
}

/// One condition, with its transition time kept when its status holds.
struct Cond<'a> {
    type_: &'a str,
    ok: bool,
    reason: &'a str,
    message: String,
}

fn conditions(
    prev: &[Condition],
    conds: Vec<Cond<'_>>,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    conds
        .into_iter()
        .map(|c| {
            let status = if c.ok { "True" } else { "False" };
            let since = prev
                .iter()
                .find(|p| p.type_ == c.type_ && p.status == status)
                .map(|p| p.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: c.type_.into(),
                status: status.into(),
                reason: c.reason.into(),
                message: c.message,
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

fn invalid(problem: &Problem) -> Vec<Cond<'_>> {
    vec![
        Cond {
            type_: "Ready",
            ok: false,
            reason: problem.reason(),
            message: problem.to_string(),
        },
        Cond {
            type_: "Degraded",
            ok: true,
            reason: problem.reason(),
            message: problem.to_string(),
        },
    ]
}

/// Converged: every member runs the cluster's current snapshot. The
/// message counts members and leaves the version out, so a new version
/// alone does not rewrite every status of the cluster.
fn converged(members: u32, running: u32) -> Cond<'static> {
    if running >= members {
        Cond {
            type_: "Converged",
            ok: true,
            reason: "AllMembersCurrent",
            message: format!("all {members} members run the current snapshot"),
        }
    } else {
        Cond {
            type_: "Converged",
            ok: false,
            reason: "WaitingForMembers",
            message: format!("{running} of {members} members run the current snapshot"),
        }
    }
}

/// The status of a GossipNetwork.
pub fn network_status(
    net: &NetworkInput,
    state: &ClusterState,
    acks: &Acks,
    generation: Option<i64>,
    prev: Option<&GossipNetworkStatus>,
    now: &Time,
) -> GossipNetworkStatus {
    let prev_conds = prev.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let id = Some(crate::network_id(&net.uid));
    match Selector::parse(&net.selector) {
        Err(problem) => GossipNetworkStatus {
            observed_generation: generation,
            network_id: id,
            members: 0,
            acknowledged: 0,
            entries: 0,
            conditions: conditions(prev_conds, invalid(&problem), generation, now),
        },
        Ok(sel) => {
            let members: Vec<&Member> = state
                .members
                .iter()
                .filter(|m| sel.matches(&m.labels))
                .collect();
            let n = members.len() as u32;
            let running = members
                .iter()
                .filter(|m| acks.running.contains(&m.name))
                .count() as u32;
            let conds = vec![
                Cond {
                    type_: "Ready",
                    ok: true,
                    reason: "InSnapshot",
                    message: format!(
                        "network {} with {} tables is in the cluster's config; {n} members selected",
                        net.name,
                        net.tables.len()
                    ),
                },
                converged(n, running),
                degraded(
                    &acks
                        .rejected
                        .iter()
                        .filter(|r| members.iter().any(|m| m.name == r.member))
                        .collect::<Vec<_>>(),
                ),
            ];
            GossipNetworkStatus {
                observed_generation: generation,
                network_id: id,
                members: n,
                acknowledged: running,
                entries: acks.entries.get(&net.name).copied().unwrap_or(0),
                conditions: conditions(prev_conds, conds, generation, now),
            }
        }
    }
}

/// The status of a GossipKey.
pub fn key_status(
    decision: &KeyDecision,
    facts: KeyFacts<'_>,
    prev: Option<&GossipKeyStatus>,
    now: &Time,
) -> GossipKeyStatus {
    let KeyFacts {
        problem,
        members,
        secret_name,
        generation,
        rotation,
    } = facts;
    let prev_conds = prev.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let conds = match problem.or(rotation.invalid) {
        // A bad rotateAfter leaves a working key Ready: only the schedule
        // is off.
        Some(p) if problem.is_none() => {
            let mut c = invalid(p);
            c[0] = ready(decision, members);
            c
        }
        Some(p) => invalid(p),
        None => vec![
            ready(decision, members),
            Cond {
                type_: "Degraded",
                ok: false,
                reason: "AsExpected",
                message: String::new(),
            },
        ],
    };
    GossipKeyStatus {
        observed_generation: generation,
        fingerprint: decision.fingerprint.clone(),
        phase: Some(decision.phase),
        holders: decision.holders,
        members,
        secret_name,
        next_rotation: rotation.due,
        successor: rotation.successor,
        conditions: conditions(prev_conds, conds, generation, now),
    }
}

/// What a key's status says beside its phase.
#[derive(Debug, Clone, Default)]
pub struct KeyFacts<'a> {
    /// Why its bytes are not usable.
    pub problem: Option<&'a Problem>,
    /// Members of its cluster.
    pub members: u32,
    /// The Secret its bytes come from.
    pub secret_name: Option<String>,
    /// The generation the status describes.
    pub generation: Option<i64>,
    /// Its rotation schedule.
    pub rotation: KeyRotation<'a>,
}

/// A key's rotation schedule as its status shows it.
#[derive(Debug, Clone, Default)]
pub struct KeyRotation<'a> {
    /// `spec.rotateAfter` is not usable.
    pub invalid: Option<&'a Problem>,
    /// The successor exists (or is being created) under this name.
    pub successor: Option<String>,
    /// When the successor is due, while it does not exist.
    pub due: Option<Time>,
}

fn ready(decision: &KeyDecision, members: u32) -> Cond<'static> {
    Cond {
        type_: "Ready",
        ok: true,
        reason: decision.phase.as_str(),
        message: match decision.phase {
            KeyPhase::Primary => format!(
                "primary key of the cluster; {}/{members} members hold it",
                decision.holders
            ),
            KeyPhase::Installed => {
                format!("installed on all {members} members; a newer key is primary")
            }
            KeyPhase::Distributing => {
                format!("{}/{members} members hold it", decision.holders)
            }
            KeyPhase::Retiring if decision.release => "removed from every keyring".into(),
            KeyPhase::Retiring => {
                "deleted; it leaves the keyrings once no member encrypts with it".into()
            }
            KeyPhase::Pending => "waiting for its bytes".into(),
        },
    }
}

/// The seeds one BootstrapPeers yields: its static peers, then up to
/// `fromMembers.count` ready members with an IP, longest-lived first.
pub fn resolve_peers(p: &PeersInput, members: &[Member], port: u16) -> Vec<String> {
    let mut out: Vec<String> = p.static_peers.clone();
    if let Some(from) = &p.from_members {
        let mut ready: Vec<&Member> = members
            .iter()
            .filter(|m| m.ready && m.ip.is_some())
            .collect();
        ready.sort_by(|a, b| {
            // A missing start time sorts last: it is the newest.
            let key = |m: &Member| (m.started.is_none(), m.started.clone(), m.name.clone());
            key(a).cmp(&key(b))
        });
        for m in ready.into_iter().take(from.count as usize) {
            let ip = m.ip.as_deref().unwrap_or_default();
            let addr = if ip.contains(':') {
                format!("[{ip}]:{port}")
            } else {
                format!("{ip}:{port}")
            };
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    out
}

/// The status of a BootstrapPeers.
pub fn peers_status(
    p: &PeersInput,
    state: &ClusterState,
    port: u16,
    generation: Option<i64>,
    prev: Option<&BootstrapPeersStatus>,
    now: &Time,
) -> BootstrapPeersStatus {
    let prev_conds = prev.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let peers = resolve_peers(p, &state.members, port);
    let wanted = p.static_peers.len() + p.from_members.as_ref().map_or(0, |f| f.count as usize);
    let ready = if peers.is_empty() {
        Cond {
            type_: "Ready",
            ok: false,
            reason: "NoPeers",
            message: "no static peers and no ready member with an IP yet; sidecars keep retrying"
                .into(),
        }
    } else {
        Cond {
            type_: "Ready",
            ok: true,
            reason: "Resolved",
            message: format!("{} of {wanted} wanted peers resolved", peers.len()),
        }
    };
    BootstrapPeersStatus {
        observed_generation: generation,
        peers,
        conditions: conditions(prev_conds, vec![ready], generation, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClusterState, NetworkInput};

    fn at(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn an_unchanged_world_computes_an_identical_status() {
        let net = NetworkInput {
            name: "n".into(),
            uid: "u".into(),
            selector: Default::default(),
            tables: vec!["t".into()],
        };
        let state = ClusterState::default();
        let first = network_status(&net, &state, &Acks::default(), Some(1), None, &at(100));
        // Later, nothing changed: same status, transition times kept, so
        // the runtime writes nothing.
        let again = network_status(
            &net,
            &state,
            &Acks::default(),
            Some(1),
            Some(&first),
            &at(200),
        );
        assert_eq!(first, again);
        assert!(again
            .conditions
            .iter()
            .all(|c| c.last_transition_time == at(100)));
    }

    #[test]
    fn a_rejected_snapshot_degrades_the_networks_of_that_member() {
        let net = NetworkInput {
            name: "n".into(),
            uid: "u".into(),
            selector: Default::default(),
            tables: vec![],
        };
        let state = ClusterState {
            members: vec![Member {
                name: "web-0".into(),
                labels: Default::default(),
                ip: None,
                ready: false,
                started: None,
            }],
            ..Default::default()
        };
        let acks = Acks {
            rejected: vec![crate::Rejection {
                member: "web-0".into(),
                version: 4,
                code: 3,
                message: "unknown profile".into(),
            }],
            ..Default::default()
        };
        let st = network_status(&net, &state, &acks, Some(1), None, &at(100));
        let d = st
            .conditions
            .iter()
            .find(|c| c.type_ == "Degraded")
            .unwrap();
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", "SnapshotRejected")
        );
        assert_eq!(
            d.message,
            "member web-0 rejected snapshot version 4 (code 3): unknown profile"
        );
        // Someone else's refusal is not this network's problem.
        let mut other = acks.clone();
        other.rejected[0].member = "api-0".into();
        let st = network_status(&net, &state, &other, Some(1), None, &at(100));
        let d = st
            .conditions
            .iter()
            .find(|c| c.type_ == "Degraded")
            .unwrap();
        assert_eq!(d.status, "False");
    }

    #[test]
    fn a_condition_that_flips_gets_a_new_transition_time() {
        let mut net = NetworkInput {
            name: "n".into(),
            uid: "u".into(),
            selector: Default::default(),
            tables: vec![],
        };
        let state = ClusterState::default();
        let ok = network_status(&net, &state, &Acks::default(), Some(1), None, &at(100));
        net.selector.match_expressions = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                key: "app".into(),
                operator: "Exists".into(),
                values: Some(vec!["x".into()]),
            },
        ]);
        let bad = network_status(&net, &state, &Acks::default(), Some(2), Some(&ok), &at(200));
        let ready = bad.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "InvalidSelector")
        );
        assert_eq!(ready.last_transition_time, at(200));
        assert_eq!(ready.observed_generation, Some(2));
    }
}
