//! Joining that survives a cluster starting all at once (shell).
//!
//! In Kubernetes every Pod of a Deployment starts at the same moment, and a
//! headless Service has no addresses until its Pods are ready: the first
//! join of a new sidecar usually finds nobody. The join loop therefore
//! never gives up and never exits: while this node sees no other live
//! member it resolves every bootstrap peer afresh (a DNS name that does not
//! resolve yet is just another failed try), joins through whatever
//! resolved, and waits with exponential backoff and jitter before the next
//! try. Once joined it keeps watching; a node that loses every other member
//! starts trying again. A new peer list (from a snapshot) wakes it at once.
//!
//! The core's cluster sentinel (see `gossamer_core::node::SentinelConfig`)
//! can say the node is cut off although it is not alone (it sees members,
//! but not the cluster's sentinel): the loop then rejoins through the
//! bootstrap peers too, logging "partitioned: sentinel expired N s ago;
//! rejoining through ...", until the sentinel is seen again. The resolved
//! peers are also handed to the core, which rejoins through them and
//! through the members it knew.
//!
//! NetworkDB retries a failed join every second; the loop starts at that
//! and backs off to [`Backoff::max`], so a long outage costs little.

#![allow(clippy::disallowed_methods)] // shell: reads the clock to wait

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::membership::NodeStatus;
use crate::runtime::NodeHandle;

/// The delay between join tries: `base * 2^(try - 1)`, capped at `max`,
/// each scaled by a random factor in `[1 - jitter, 1 + jitter]` so that
/// Pods started together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay after the first failed try.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Relative jitter, in `[0, 1)`.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(8),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The delay after failed try number `tries` (1-based), given `unit`, a
    /// uniform random number in `[0, 1)`.
    pub fn delay(&self, tries: u32, unit: f64) -> Duration {
        let doublings = tries.saturating_sub(1).min(30);
        let raw = self.base.saturating_mul(1u32 << doublings).min(self.max);
        let factor = 1.0 - self.jitter + 2.0 * self.jitter * unit.clamp(0.0, 1.0);
        raw.mul_f64(factor)
    }
}

/// What the join loop has done, for metrics, readiness and logs.
#[derive(Debug, Default)]
pub struct JoinStatus {
    joined: AtomicBool,
    partitioned: AtomicBool,
    attempts: AtomicU64,
    failures: AtomicU64,
    unresolved: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl JoinStatus {
    /// True while this node sees another live member, or has no peers to
    /// join (the first node of a cluster).
    pub fn joined(&self) -> bool {
        self.joined.load(Ordering::Relaxed)
    }

    /// True while the core reports the node partitioned (the cluster
    /// sentinel expired and has not been seen since).
    pub fn partitioned(&self) -> bool {
        self.partitioned.load(Ordering::Relaxed)
    }

    /// Join tries so far.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// Tries after which the node was still alone.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Peer names that did not resolve, summed over all tries.
    pub fn unresolved(&self) -> u64 {
        self.unresolved.load(Ordering::Relaxed)
    }

    /// Why the last try failed, while the node is alone.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_error(&self, e: Option<String>) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = e;
    }
}

/// Resolves a bootstrap peer (`host:port` or `ip:port`) at every try.
pub trait Resolve: Send + Sync + 'static {
    /// The addresses `peer` names now.
    fn resolve(
        &self,
        peer: &str,
    ) -> impl std::future::Future<Output = std::io::Result<Vec<SocketAddr>>> + Send;
}

/// The system resolver (tokio's `lookup_host`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    async fn resolve(&self, peer: &str) -> std::io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host(peer).await?.collect())
    }
}

/// How often a joined node checks that it is still not alone.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// How long a try waits for a seed to answer before it counts as failed.
const TRY_FOR: Duration = Duration::from_secs(2);

/// Whether `node` is in the cluster: it sees another live member and is
/// not partitioned (the sentinel did not expire); `None` once it stopped.
/// The error says why not.
async fn has_company(node: &NodeHandle) -> Option<Result<(), Why>> {
    let me = node.name().to_string();
    node.call(move |n, now| {
        let company = n
            .membership()
            .members()
            .iter()
            .any(|m| m.name != me && m.status == NodeStatus::Alive);
        match n.partitioned_for(now) {
            Some(d) => Err(Why::Partitioned(d)),
            None if company => Ok(()),
            None => Err(Why::Alone),
        }
    })
    .await
}

/// Why the node is not in the cluster.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Why {
    /// No other live member.
    Alone,
    /// The sentinel expired this long ago.
    Partitioned(Duration),
}

/// Runs the join loop for `node` until the node stops. `peers` carries the
/// current bootstrap peers; a change wakes the loop at once.
pub async fn run<R: Resolve>(
    node: NodeHandle,
    mut peers: watch::Receiver<Vec<String>>,
    resolver: R,
    backoff: Backoff,
    status: Arc<JoinStatus>,
) {
    let mut tries: u32 = 0;
    loop {
        let Some(state) = has_company(&node).await else {
            return;
        };
        let list = peers.borrow_and_update().clone();
        status
            .partitioned
            .store(matches!(state, Err(Why::Partitioned(_))), Ordering::Relaxed);
        if state.is_ok() || list.is_empty() {
            if !status.joined.swap(true, Ordering::Relaxed) && tries > 0 {
                info!(tries, "joined the cluster");
            }
            status.set_error(None);
            tries = 0;
            // Joined (or nobody to join): check again later, or at once
            // when the peers change.
            tokio::select! {
                _ = tokio::time::sleep(WATCH_EVERY) => {}
                changed = peers.changed() => if changed.is_err() { return },
            }
            continue;
        }
        match state {
            Err(Why::Partitioned(ago)) => {
                if tries <= 3 || tries.is_power_of_two() {
                    warn!(
                        "partitioned: sentinel expired {} s ago; rejoining through {}",
                        ago.as_secs(),
                        list.join(", ")
                    );
                }
            }
            _ => {
                if status.joined.swap(false, Ordering::Relaxed) {
                    warn!(peers = ?list, "no other live member: joining again");
                }
            }
        }
        tries = tries.saturating_add(1);
        status.attempts.fetch_add(1, Ordering::Relaxed);
        let mut addrs = Vec::new();
        let mut errors = Vec::new();
        for p in &list {
            match resolver.resolve(p).await {
                Ok(a) if !a.is_empty() => addrs.extend(a),
                Ok(_) => {
                    status.unresolved.fetch_add(1, Ordering::Relaxed);
                    errors.push(format!("{p}: resolved to no address"));
                }
                Err(e) => {
                    status.unresolved.fetch_add(1, Ordering::Relaxed);
                    errors.push(format!("{p}: does not resolve ({e})"));
                }
            }
        }
        addrs.sort();
        addrs.dedup();
        addrs.retain(|a| *a != node.addr());
        if !addrs.is_empty() {
            // The core rejoins through them too while partitioned.
            let boot = addrs.clone();
            if node.call(move |n, _| n.set_bootstrap(boot)).await.is_none() {
                return;
            }
            node.join(addrs.clone());
            // Wait for a seed to answer, a little at a time.
            let deadline = tokio::time::Instant::now() + TRY_FOR;
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                match has_company(&node).await {
                    None => return,
                    Some(Ok(())) => break,
                    Some(Err(_)) => {}
                }
            }
            match has_company(&node).await {
                Some(Ok(())) => continue,
                Some(Err(Why::Partitioned(_))) => errors.push(format!(
                    "the cluster sentinel was not seen through {addrs:?}"
                )),
                _ => errors.push(format!("no seed answered among {addrs:?}")),
            }
        }
        status.failures.fetch_add(1, Ordering::Relaxed);
        let why = errors.join("; ");
        let wait = backoff.delay(tries, rand::random::<f64>());
        // Every try at first, then on powers of two: a long outage stays
        // visible without flooding the log.
        if tries <= 3 || tries.is_power_of_two() {
            warn!(tries, retry_in = ?wait, error = %why, "join failed; retrying");
        }
        status.set_error(Some(why));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            changed = peers.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_within_the_jitter() {
        let b = Backoff::default();
        let mid: Vec<u64> = (1..=6)
            .map(|t| b.delay(t, 0.5).as_millis() as u64)
            .collect();
        assert_eq!(mid, [1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(800));
        assert_eq!(b.delay(1, 1.0), Duration::from_millis(1200));
        assert_eq!(b.delay(u32::MAX, 0.5), Duration::from_secs(8));
        assert_eq!(b.delay(0, 0.5), Duration::from_secs(1));
    }
}

#[cfg(test)]
#[path = "join_sentinel_tests.rs"]
mod sentinel_tests;
