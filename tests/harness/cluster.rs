//! Several peers joined into one cluster.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::flags::Flags;
use crate::peer::{Kind, Peer};
use crate::view::{MemberState, Stats};

/// How often [`Cluster::wait_all_mark`] re-asks for `members`.
const POLL: Duration = Duration::from_millis(250);

/// Peers `n0`, `n1`, … where every peer after the first joined through
/// `n0` at start (`--seed`).
pub struct Cluster {
    /// The peers, in start order.
    pub peers: Vec<Peer>,
}

impl Cluster {
    /// Starts one peer per entry of `kinds`, all with `flags`, the first
    /// alone and each other seeded with it; waits until each is ready and
    /// has joined.
    ///
    /// # Errors
    /// If a peer fails to start or its start-up join fails.
    pub fn start(kinds: &[Kind], flags: Flags) -> Result<Cluster> {
        Self::start_with(kinds, |_| flags.clone())
    }

    /// As [`Cluster::start`] with per-peer flags (`flags(i)` for peer `i`).
    ///
    /// # Errors
    /// If a peer fails to start or its start-up join fails.
    pub fn start_with(kinds: &[Kind], flags: impl Fn(usize) -> Flags) -> Result<Cluster> {
        let mut peers: Vec<Peer> = Vec::with_capacity(kinds.len());
        for (i, &kind) in kinds.iter().enumerate() {
            let mut f = flags(i);
            if let Some(first) = peers.first() {
                f = f.seed(first.addr());
            }
            let peer = Peer::spawn(kind, &format!("n{i}"), f)?;
            if i > 0 {
                peer.wait_for(
                    |v| !v.joined.is_empty() || !v.join_failed.is_empty(),
                    crate::CMD_TIMEOUT,
                )?;
                if let Some(err) = peer.with_view(|v| v.join_failed.first().cloned()) {
                    return Err(peer.report(&format!("start-up join failed: {err}")));
                }
            }
            peers.push(peer);
        }
        Ok(Cluster { peers })
    }

    /// The peer named `name`.
    ///
    /// # Panics
    /// If there is none.
    pub fn peer(&self, name: &str) -> &Peer {
        self.peers
            .iter()
            .find(|p| p.name() == name)
            .unwrap_or_else(|| panic!("no peer named {name:?} in the cluster"))
    }

    /// Peers not killed, terminated or shut down.
    pub fn running(&self) -> impl Iterator<Item = &Peer> {
        self.peers.iter().filter(|p| !p.is_stopped())
    }

    /// Every peer's byte counters (`stats`), in [`Cluster::peers`] order.
    ///
    /// # Errors
    /// If a peer does not answer within [`crate::CMD_TIMEOUT`].
    pub fn stats(&self) -> Result<Vec<Stats>> {
        self.peers.iter().map(Peer::stats).collect()
    }

    /// Running peers that have not left: the ones whose view of the cluster
    /// is kept up to date (a peer that left stops hearing gossip).
    pub fn members(&self) -> impl Iterator<Item = &Peer> {
        self.running().filter(|p| !p.has_left())
    }

    /// Waits until every member peer (see [`Cluster::members`]) sees exactly `n_alive` alive nodes
    /// (itself included).
    ///
    /// # Errors
    /// On timeout, with the first lagging peer's view.
    pub fn wait_all_see(&self, n_alive: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for peer in self.members() {
            let left = deadline.saturating_duration_since(Instant::now());
            peer.wait_for(|v| v.alive().len() == n_alive, left)
                .map_err(|e| {
                    e.context(format!(
                        "waiting for {} to see {n_alive} alive",
                        peer.name()
                    ))
                })?;
        }
        Ok(())
    }

    /// Waits until every member peer (see [`Cluster::members`]) other than
    /// `node` holds `node` in
    /// `state`. Events are checked first and `members` is polled every
    /// 250 ms, since `suspect` and incarnations are only visible there.
    ///
    /// # Errors
    /// On timeout, with the first lagging peer's view.
    pub fn wait_all_mark(&self, node: &str, state: MemberState, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for peer in self.members().filter(|p| p.name() != node) {
            let holds = |v: &crate::View| v.state_of(node) == Some(state);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if peer.wait_for(holds, left.min(POLL)).is_ok() {
                    break;
                }
                if left <= POLL {
                    return Err(
                        peer.report(&format!("{node} not marked {state} within {timeout:?}"))
                    );
                }
                peer.members()?;
            }
        }
        Ok(())
    }
}
