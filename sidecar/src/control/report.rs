//! The status report a sidecar sends the operator: what it sees of its
//! cluster, keys by fingerprint only.

use std::collections::BTreeMap;
use std::time::Duration;

use gossamer_proto::control::v1 as pb;

use crate::membership::NodeStatus;
use crate::runtime::NodeHandle;

/// Reads the node's view; `None` once the node stopped. `names` maps
/// network ids to GossipNetwork names (from the last snapshot).
pub async fn read(
    node: &NodeHandle,
    applied_version: u64,
    names: BTreeMap<String, String>,
) -> Option<pb::StatusReport> {
    node.call(move |n, _| {
        let m = n.membership();
        let mut counts = pb::MemberCounts::default();
        let mut members = Vec::new();
        for x in m.members() {
            let state = match x.status {
                NodeStatus::Alive => {
                    counts.alive += 1;
                    pb::MemberState::Alive
                }
                NodeStatus::Suspect => {
                    counts.suspect += 1;
                    pb::MemberState::Suspect
                }
                NodeStatus::Dead => {
                    counts.dead += 1;
                    pb::MemberState::Dead
                }
                NodeStatus::Left => {
                    counts.left += 1;
                    pb::MemberState::Left
                }
            };
            members.push(pb::MemberStatus {
                name: x.name,
                state: state as i32,
            });
        }
        members.sort_by(|a, b| a.name.cmp(&b.name));
        let stats = n.tables().stats();
        let networks = n
            .tables()
            .networks()
            .into_iter()
            .map(|id| pb::NetworkStatus {
                entries: stats.networks.get(&id).map_or(0, |s| s.entries as u64),
                name: names.get(&id).cloned().unwrap_or_default(),
                id,
            })
            .collect();
        let keys = m.keyring_fingerprints();
        pb::StatusReport {
            applied_version,
            member_counts: Some(counts),
            members,
            networks,
            health_score: u32::try_from(m.health_score()).unwrap_or(u32::MAX),
            primary_fingerprint: keys.first().map(|k| k.to_string()).unwrap_or_default(),
            key_fingerprints: keys.iter().map(ToString::to_string).collect(),
            decrypt_failures: m.stats().decrypt_failures,
        }
    })
    .await
}

/// Members per doubling above which the periodic full resync slows down.
const SCALE_THRESHOLD: usize = 128;

/// The periodic full resync interval for a cluster of `members`: `base` up
/// to 128 members, doubled for every doubling above (up to 256: 2x, up to
/// 512: 4x, ...), so the operator's load from resyncs falls as the cluster
/// grows. Consul's anti-entropy scales its interval by cluster size the
/// same way, one step per doubling above 128 (more gently: it adds one
/// `base` per doubling).
pub fn resync_interval(base: Duration, members: usize) -> Duration {
    if members <= SCALE_THRESHOLD {
        return base;
    }
    let doublings = (members as f64 / SCALE_THRESHOLD as f64).log2().ceil() as u32;
    base.saturating_mul(1u32 << doublings.min(16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resync_interval_doubles_per_doubling_above_128() {
        let b = Duration::from_secs(60);
        for (n, mult) in [
            (1, 1),
            (128, 1),
            (129, 2),
            (256, 2),
            (257, 4),
            (512, 4),
            (1000, 8),
            (4096, 32),
        ] {
            assert_eq!(resync_interval(b, n), b * mult, "{n} members");
        }
    }
}
