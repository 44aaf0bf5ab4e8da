//! Carries out a plan on the running node. The order and the idempotence
//! are the core's ([`crate::desired::plan`]); this only executes steps.

use tokio::sync::watch;

use crate::desired::{Observed, Step};
use crate::keyring::Fingerprint;
use crate::membership::NodeStatus;
use crate::runtime::NodeHandle;

/// Why a step failed on the node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The node stopped.
    #[error("the node stopped")]
    Stopped,
    /// The keyring refused a step.
    #[error("keyring: {0}")]
    Keyring(#[from] crate::keyring::KeyringError),
    /// The tables refused a step.
    #[error("tables: {0}")]
    Tables(#[from] crate::tables::TablesError),
}

/// What the node runs now, as the plan sees it. `peers` is the join loop's
/// current list.
pub async fn observe(
    node: &NodeHandle,
    peers: &watch::Sender<Vec<String>>,
) -> Result<Observed, ApplyError> {
    let current_peers = peers.borrow().clone();
    node.call(move |n, _| {
        let m = n.membership();
        let keys = m.keyring_fingerprints();
        let me = m.name().to_string();
        let members = m.members();
        // Who a departed name could still be: members not yet left, and
        // failed ones whose entries the tables keep after membership
        // forgot them.
        let mut known: std::collections::BTreeSet<String> = members
            .iter()
            .filter(|x| x.name != me && x.status != NodeStatus::Left)
            .map(|x| x.name.clone())
            .collect();
        known.extend(n.tables().failed_members());
        Observed {
            name: me.clone(),
            primary: keys.first().copied(),
            keys,
            networks: n.tables().networks().into_iter().collect(),
            peers: current_peers,
            alone: !members
                .iter()
                .any(|x| x.name != me && x.status == NodeStatus::Alive),
            members: known,
        }
    })
    .await
    .ok_or(ApplyError::Stopped)
}

/// Runs `steps` in order on `node`; stops at the first that fails.
pub async fn execute(
    node: &NodeHandle,
    peers: &watch::Sender<Vec<String>>,
    steps: Vec<Step>,
) -> Result<(), ApplyError> {
    for step in steps {
        match step {
            Step::InstallKey(k) => {
                node.add_key(k).await;
            }
            Step::UsePrimary(k) => node.use_key(k).await?,
            Step::RemoveKey(fp) => remove_key(node, fp).await?,
            Step::JoinNetwork(id) => node
                .call(move |n, now| n.with_tables(now, |t, now| t.join_network(&id, now)))
                .await
                .ok_or(ApplyError::Stopped)??,
            Step::LeaveNetwork(id) => node
                .call(move |n, now| n.with_tables(now, |t, now| t.leave_network(&id, now)))
                .await
                .ok_or(ApplyError::Stopped)??,
            Step::SetPeers(p) => {
                // Wakes the join loop, which joins through the new list at
                // once if the node is alone.
                peers.send_replace(p);
            }
            Step::Rejoin(_) => {}
            Step::Reap(name) => {
                node.call(move |n, now| n.reap_departed(&name, now))
                    .await
                    .ok_or(ApplyError::Stopped)?;
            }
            _ => {}
        }
    }
    Ok(())
}

async fn remove_key(node: &NodeHandle, fp: Fingerprint) -> Result<(), ApplyError> {
    let key = node
        .call(move |n, _| {
            n.membership()
                .keyring()
                .keys()
                .iter()
                .find(|k| k.fingerprint() == fp)
                .cloned()
        })
        .await
        .ok_or(ApplyError::Stopped)?;
    if let Some(k) = key {
        node.remove_key(k).await?;
    }
    Ok(())
}
