//! The configuration a node should run, and the plan that takes it there.
//!
//! A node's configuration comes from one of two places: the YAML file of a
//! standalone sidecar, or the snapshots the operator streams. Both describe
//! the whole configuration (state of the world, never a delta), as a
//! [`Desired`]. [`plan`] compares it with what the node runs now
//! ([`Observed`]) and returns the [`Step`]s that close the gap, in the one
//! order that never loses a message:
//!
//! 1. install new keys (every member can then decrypt what the new key
//!    seals, before anyone seals with it);
//! 2. switch the primary (encrypt with the new key);
//! 3. remove keys that are no longer wanted (never the primary);
//! 4. join networks, then leave networks;
//! 5. refresh the bootstrap peers, and join through the new ones at once
//!    when alone;
//! 6. reap members that the control plane says departed.
//!
//! The plan is idempotent: planning again from the state the steps produce
//! gives no step, so applying the same snapshot twice does nothing. A
//! configuration the node cannot run is refused as a whole with a
//! [`PlanError`] before any step runs, so a bad snapshot leaves the last
//! good configuration in place.

use std::collections::BTreeSet;

use crate::keyring::{Fingerprint, Key};

/// The configuration a node should run.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    /// Every key the keyring should hold, in any order.
    pub keys: Vec<Key>,
    /// The key that encrypts; MUST be one of `keys` when `keys` is not
    /// empty, and `None` when it is.
    pub primary: Option<Fingerprint>,
    /// The networks (NetworkDB network ids) this node should be attached to.
    pub networks: BTreeSet<String>,
    /// Where to (re)join the cluster: `host:port` or `ip:port` strings,
    /// resolved by the shell at every try.
    pub peers: Vec<String>,
    /// Node names of members the control plane knows are gone for good
    /// (their Pods were deleted): reaped at once instead of waiting for the
    /// failure detector and the 24 h reap.
    pub departed: BTreeSet<String>,
}

/// What a node runs now, as the shell reads it from the node.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// This node's name (a snapshot that says it departed is refused).
    pub name: String,
    /// The keyring's fingerprints.
    pub keys: Vec<Fingerprint>,
    /// The keyring's primary.
    pub primary: Option<Fingerprint>,
    /// The networks joined (not being left).
    pub networks: BTreeSet<String>,
    /// The bootstrap peers in use.
    pub peers: Vec<String>,
    /// Names of the members this node knows of, other than itself, that
    /// have not left, and of failed members whose entries it still keeps
    /// (a departed member not among them needs no reaping).
    pub members: BTreeSet<String>,
    /// Whether no other member is alive: the node has not joined yet or has
    /// lost everyone, so it should rejoin through the peers.
    pub alone: bool,
}

/// One change to a running node. [`plan`] returns them in the order they
/// must run.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Step {
    /// Add a key to the keyring (it decrypts, it does not encrypt yet).
    InstallKey(Key),
    /// Make an installed key the primary (it encrypts from now on).
    UsePrimary(Key),
    /// Remove a key from the keyring; never the primary.
    RemoveKey(Fingerprint),
    /// Attach to a network (announce it and bulk sync its tables).
    JoinNetwork(String),
    /// Leave a network.
    LeaveNetwork(String),
    /// Replace the bootstrap peers.
    SetPeers(Vec<String>),
    /// Join the cluster through these peers (the node is alone).
    Rejoin(Vec<String>),
    /// Forget a departed member now: its node state and its entries.
    Reap(String),
}

/// Why a configuration cannot run; nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The same key is listed twice.
    #[error("key {0} is listed twice: list each key once")]
    DuplicateKey(Fingerprint),
    /// Keys are listed but none is primary.
    #[error("{0} keys are listed but none is primary: name the primary key")]
    NoPrimary(usize),
    /// The primary is not among the keys.
    #[error("the primary key {0} is not among the keys: list it, or name a listed key as primary")]
    PrimaryNotListed(Fingerprint),
    /// A primary is named but no key is listed.
    #[error("the primary key {0} is named but no key is listed: list it")]
    PrimaryWithoutKeys(Fingerprint),
    /// The node encrypts, and the configuration would turn encryption off.
    #[error("the configuration lists no key but this node encrypts with {0}: turning encryption off needs a restart; list at least one key")]
    WouldDisableEncryption(Fingerprint),
    /// A network id is empty.
    #[error("a network id is empty: every network needs its id")]
    EmptyNetworkId,
    /// A bootstrap peer is empty.
    #[error("bootstrap peer {0} is empty: give host:port")]
    EmptyPeer(usize),
    /// The configuration says this very node departed.
    #[error("the configuration lists this node ({0}) as departed: it is for another incarnation of this member; wait for the next one")]
    SelfDeparted(String),
}

impl PlanError {
    /// A short, stable name for metric labels and NACK codes.
    pub fn label(&self) -> &'static str {
        match self {
            PlanError::DuplicateKey(_) => "duplicate_key",
            PlanError::NoPrimary(_) => "no_primary",
            PlanError::PrimaryNotListed(_) => "primary_not_listed",
            PlanError::PrimaryWithoutKeys(_) => "primary_without_keys",
            PlanError::WouldDisableEncryption(_) => "would_disable_encryption",
            PlanError::EmptyNetworkId => "empty_network_id",
            PlanError::EmptyPeer(_) => "empty_peer",
            PlanError::SelfDeparted(_) => "self_departed",
        }
    }
}

/// Checks `desired` and returns the steps from `observed` to it, in the
/// order the module documentation gives. An empty list means the node
/// already runs `desired`.
///
/// # Errors
/// A [`PlanError`] when `desired` cannot run on this node; no step is
/// returned then, so nothing changes.
pub fn plan(observed: &Observed, desired: &Desired) -> Result<Vec<Step>, PlanError> {
    validate(observed, desired)?;
    let mut steps = Vec::new();

    // Keys: install, switch, remove. Removing after the switch means the
    // old primary is never removed while it still encrypts.
    let held: BTreeSet<Fingerprint> = observed.keys.iter().copied().collect();
    let wanted: BTreeSet<Fingerprint> = desired.keys.iter().map(Key::fingerprint).collect();
    for k in &desired.keys {
        if !held.contains(&k.fingerprint()) {
            steps.push(Step::InstallKey(k.clone()));
        }
    }
    if let Some(p) = desired.primary {
        if observed.primary != Some(p) {
            if let Some(k) = desired.keys.iter().find(|k| k.fingerprint() == p) {
                steps.push(Step::UsePrimary(k.clone()));
            }
        }
    }
    for fp in &observed.keys {
        if !wanted.contains(fp) {
            steps.push(Step::RemoveKey(*fp));
        }
    }

    // Networks: join before leave, so a move between networks never has a
    // moment attached to none.
    for n in desired.networks.difference(&observed.networks) {
        steps.push(Step::JoinNetwork(n.clone()));
    }
    for n in observed.networks.difference(&desired.networks) {
        steps.push(Step::LeaveNetwork(n.clone()));
    }

    // Peers: a new list replaces the old, and a node that is alone tries
    // the new list at once. Retrying while alone is the shell's join loop's
    // business, not the plan's: the plan stays idempotent.
    if desired.peers != observed.peers {
        steps.push(Step::SetPeers(desired.peers.clone()));
        if observed.alone && !desired.peers.is_empty() {
            steps.push(Step::Rejoin(desired.peers.clone()));
        }
    }

    for d in desired.departed.intersection(&observed.members) {
        steps.push(Step::Reap(d.clone()));
    }
    Ok(steps)
}

fn validate(observed: &Observed, desired: &Desired) -> Result<(), PlanError> {
    let mut seen = BTreeSet::new();
    for k in &desired.keys {
        if !seen.insert(k.fingerprint()) {
            return Err(PlanError::DuplicateKey(k.fingerprint()));
        }
    }
    match desired.primary {
        None if !desired.keys.is_empty() => return Err(PlanError::NoPrimary(desired.keys.len())),
        Some(p) if desired.keys.is_empty() => return Err(PlanError::PrimaryWithoutKeys(p)),
        Some(p) if !seen.contains(&p) => return Err(PlanError::PrimaryNotListed(p)),
        _ => {}
    }
    if desired.keys.is_empty() {
        if let Some(p) = observed.primary {
            return Err(PlanError::WouldDisableEncryption(p));
        }
    }
    if desired.networks.iter().any(String::is_empty) {
        return Err(PlanError::EmptyNetworkId);
    }
    if let Some(i) = desired.peers.iter().position(|p| p.trim().is_empty()) {
        return Err(PlanError::EmptyPeer(i));
    }
    if desired.departed.contains(&observed.name) {
        return Err(PlanError::SelfDeparted(observed.name.clone()));
    }
    Ok(())
}

impl Observed {
    /// What the node runs after `step`, as far as the plan is concerned: the
    /// model the shell's apply follows, and the one the tests check the
    /// plan's order and idempotence against.
    pub fn apply(&mut self, step: &Step) {
        match step {
            Step::InstallKey(k) => {
                let fp = k.fingerprint();
                if !self.keys.contains(&fp) {
                    self.keys.push(fp);
                }
                // The first key of an empty keyring becomes its primary.
                if self.primary.is_none() {
                    self.primary = Some(fp);
                }
            }
            Step::UsePrimary(k) => self.primary = Some(k.fingerprint()),
            Step::RemoveKey(fp) => {
                if self.primary != Some(*fp) {
                    self.keys.retain(|k| k != fp);
                }
            }
            Step::JoinNetwork(n) => {
                self.networks.insert(n.clone());
            }
            Step::LeaveNetwork(n) => {
                self.networks.remove(n);
            }
            Step::SetPeers(p) => self.peers = p.clone(),
            // Joining is asynchronous: the node stays alone until a peer
            // answers, and the next plan asks again.
            Step::Rejoin(_) => {}
            Step::Reap(name) => {
                self.members.remove(name);
            }
        }
    }
}
