//! Bulk sync: every entry of the networks two nodes share, sent over a
//! stream — periodically to one random member per network, to every member
//! on join, and to a failed member that returns. An unsolicited bulk sync is
//! answered by one back; that answer is its acknowledgement.

use std::collections::BTreeSet;
use std::time::Instant;

use super::api::residual;
use super::codec::{self, Decoded};
use super::proto::{table_event, BulkSyncMessage, TableEvent};
use super::{SendId, Tables};

/// A hidden entry is sent in bulk syncs only while its owner has at least
/// this long left before it is reaped; a receiver that adopts it keeps it
/// one second less than it was told (`adopt_failed_owner`), so every hop
/// moves the deadline earlier and two nodes cannot keep handing a reaped
/// owner's entries back and forth.
pub(super) const MIN_HIDDEN_RESIDUAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Why an unsolicited bulk sync was sent, which says what its failure does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Purpose {
    /// The periodic sync; on failure the fallback member is tried.
    Periodic { fallback: Option<String> },
    /// One of the syncs of a network join; the network is in sync when all
    /// of them finished, either way.
    Join { network: String },
    /// A failed member came back.
    Reconnect,
}

/// An unsolicited bulk sync waiting for its answer.
#[derive(Debug)]
pub(super) struct PendingSync {
    pub send: SendId,
    pub node: String,
    /// Our table time when it was sent; an answer carries a later one.
    pub ltime: u64,
    pub deadline: Instant,
    pub purpose: Purpose,
}

impl PendingSync {
    pub fn is_join_of(&self, nid: &str) -> bool {
        matches!(&self.purpose, Purpose::Join { network } if network == nid)
    }
}

impl Tables {
    /// The outcome of a reliable send. A failed bulk sync counts as failed
    /// at once (its fallback is tried); other failures need no action, as
    /// gossip and later bulk syncs repair them.
    pub fn handle_send_result(&mut self, id: SendId, result: Result<(), String>, now: Instant) {
        if let Err(e) = result {
            if let Some(i) = self.pending.iter().position(|p| p.send == id) {
                let p = self.pending.remove(i);
                tracing::debug!(node = %p.node, error = %e, "bulk sync send failed");
                self.sync_failed(p, now);
            }
        }
    }

    /// Networks this node and `node` are both in (neither leaving).
    pub(super) fn common_networks(&self, node: &str) -> Vec<String> {
        self.local
            .iter()
            .filter(|(nid, n)| !n.leaving && self.peers.is_attached(node, nid))
            .map(|(nid, _)| nid.clone())
            .collect()
    }

    /// Sends `node` every entry of `networks` (libnetwork's
    /// `bulkSyncNode`): unsolicited with a `purpose`, waiting for its answer
    /// until the bulk sync timeout, or as an answer without one. False when
    /// the node is unknown or gone.
    pub(super) fn start_bulk_sync(
        &mut self,
        node: &str,
        networks: Vec<String>,
        purpose: Option<Purpose>,
        now: Instant,
    ) -> bool {
        let unsolicited = purpose.is_some();
        use super::peers::NodeState;
        if node == self.cfg.node_name
            || !matches!(
                self.peers.state(node),
                Some(NodeState::Active | NodeState::Failed)
            )
        {
            return false;
        }
        let mut msgs = Vec::new();
        for nid in &networks {
            for (table, key, e) in self.store.network(nid) {
                let (kind, residual_reap_time) = if e.deleting {
                    let left = e.reap_at.map_or(self.cfg.reap_entry_interval, |t| {
                        t.saturating_duration_since(now)
                    });
                    (table_event::Type::Delete, residual(left))
                } else if let Some(at) = self.hidden_until(&e.node) {
                    // Hidden: its owner failed. The residual reap time says
                    // so, and for how long the entry is kept, so that a node
                    // that never knew the owner can keep it too (see
                    // `adopt_failed_owner`); Go NetworkDB sends the same.
                    // Not sent in its last seconds (or overdue, waiting for
                    // the reaper): it is going everywhere anyway.
                    let left = at.saturating_duration_since(now);
                    if left < MIN_HIDDEN_RESIDUAL {
                        continue;
                    }
                    (table_event::Type::Create, residual(left))
                } else {
                    (table_event::Type::Create, 0)
                };
                msgs.push(codec::encode_table_event(&TableEvent {
                    r#type: kind as i32,
                    l_time: e.ltime,
                    node_name: e.node.clone(),
                    network_id: nid.clone(),
                    table_name: table.to_string(),
                    key: key.to_string(),
                    value: e.value.clone(),
                    residual_reap_time,
                }));
            }
        }
        let ltime = self.table_clock.increment();
        let bsm = BulkSyncMessage {
            l_time: ltime,
            unsolicited,
            node_name: self.cfg.node_name.clone(),
            networks,
            payload: codec::encode_compound(&msgs),
        };
        let send = self.send(node, codec::encode_bulk_sync(&bsm), true);
        self.stats.bulk_syncs_sent += 1;
        if let Some(purpose) = purpose {
            self.pending.push(PendingSync {
                send,
                node: node.to_string(),
                ltime,
                deadline: now + self.cfg.bulk_sync_timeout,
                purpose,
            });
        }
        true
    }

    /// Bulk syncs a network just joined with every member attached to it.
    pub(super) fn start_join_syncs(&mut self, nid: &str, now: Instant) {
        let others = self.peers.others(nid, &self.cfg.node_name);
        let mut started = 0;
        for node in others {
            let nets = self.common_networks(&node);
            let purpose = Purpose::Join {
                network: nid.to_string(),
            };
            if self.start_bulk_sync(&node, nets, Some(purpose), now) {
                started += 1;
            }
        }
        if let Some(n) = self.local.get_mut(nid) {
            n.join_syncs = started;
            n.in_sync = started == 0;
        }
    }

    /// The periodic sync: each joined network with one random member (a
    /// second one if that fails); a sync covers every network the two
    /// share, so a network already covered this round is skipped
    /// (libnetwork's `bulkSyncTables`). Members with a sync in flight are
    /// not picked, and nothing waits for an answer.
    pub(super) fn bulk_sync_tables(&mut self, now: Instant) {
        let nets: Vec<String> = self
            .local
            .iter()
            .filter(|(_, n)| !n.leaving)
            .map(|(k, _)| k.clone())
            .collect();
        let mut covered = BTreeSet::new();
        for nid in nets {
            if covered.contains(&nid) {
                continue;
            }
            let busy: BTreeSet<&str> = self.pending.iter().map(|p| p.node.as_str()).collect();
            let candidates: Vec<String> = self
                .peers
                .others(&nid, &self.cfg.node_name)
                .into_iter()
                .filter(|n| !busy.contains(n.as_str()))
                .collect();
            let mut picks = self.random_nodes(2, candidates).into_iter();
            let Some(first) = picks.next() else {
                continue;
            };
            let common = self.common_networks(&first);
            covered.extend(common.iter().cloned());
            let purpose = Purpose::Periodic {
                fallback: picks.next(),
            };
            self.start_bulk_sync(&first, common, Some(purpose), now);
        }
    }

    /// A bulk sync arrived (libnetwork's `handleBulkSync`): apply its
    /// entries, let it acknowledge our earlier syncs to its sender, answer
    /// it if it was unsolicited, and drop entries its sender owned that it
    /// no longer has (see the module docs).
    pub(super) fn handle_bulk_sync(&mut self, bsm: BulkSyncMessage, depth: usize, now: Instant) {
        self.stats.bulk_syncs_received += 1;
        if bsm.l_time > 0 {
            self.table_clock.witness(bsm.l_time);
        }
        let sender = bsm.node_name.clone();
        match codec::decode(&bsm.payload) {
            Ok(Decoded::Compound(parts)) => {
                let mut held = BTreeSet::new();
                let mut complete = true;
                for p in &parts {
                    match codec::decode(p) {
                        Ok(Decoded::Table { event, .. }) if event.node_name == sender => {
                            held.insert((event.network_id, event.table_name, event.key));
                        }
                        Ok(_) => {}
                        Err(_) => complete = false,
                    }
                    let _ = self.handle_part(p, true, depth + 2, now);
                }
                if complete && !sender.is_empty() && sender != self.cfg.node_name {
                    self.drop_unheld(&sender, &bsm.networks, bsm.l_time, &held);
                }
            }
            Ok(_) | Err(_) => {
                // An empty payload decodes as an empty compound; anything
                // else is not a bulk sync we can trust for reconciliation.
                self.stats.malformed += 1;
                let _ = self.handle_part(&bsm.payload, true, depth + 1, now);
            }
        }
        let (acked, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.node == sender && bsm.l_time > p.ltime);
        self.pending = waiting;
        for p in acked {
            self.sync_done(p);
        }
        if bsm.unsolicited {
            self.start_bulk_sync(&sender, bsm.networks, None, now);
        }
    }

    /// Owner reconciliation: `owner`'s bulk sync of `networks`, taken at its
    /// table time `ltime`, lists every entry it holds there, tombstones
    /// included. An entry we hold that it wrote, older than the sync and
    /// absent from it, was deleted and its tombstone reaped while we could
    /// not hear it: drop it (without a tombstone), or it would come back.
    fn drop_unheld(
        &mut self,
        owner: &str,
        networks: &[String],
        ltime: u64,
        held: &BTreeSet<(String, String, String)>,
    ) {
        for nid in networks {
            if !self.joined(nid) {
                continue;
            }
            let stale: Vec<(String, String)> = self
                .store
                .network(nid)
                .filter(|(t, k, e)| {
                    e.node == owner
                        && e.ltime < ltime
                        && !held.contains(&(nid.clone(), t.to_string(), k.to_string()))
                })
                .map(|(t, k, _)| (t.to_string(), k.to_string()))
                .collect();
            for (t, k) in stale {
                tracing::debug!(network = %nid, table = %t, key = %k, owner, "dropping entry its owner no longer holds");
                self.drop_entry(nid, &t, &k);
            }
        }
    }

    /// Fails the syncs whose answer is overdue.
    pub(super) fn expire_syncs(&mut self, now: Instant) {
        let (late, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.deadline <= now);
        self.pending = waiting;
        for p in late {
            tracing::debug!(node = %p.node, "bulk sync timed out");
            self.sync_failed(p, now);
        }
    }

    /// Fails every sync waiting on `node` (it failed or left).
    pub(super) fn fail_syncs_to(&mut self, node: &str, now: Instant) {
        let (gone, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.node == node);
        self.pending = waiting;
        for p in gone {
            self.sync_failed(p, now);
        }
    }

    /// Asks the shell to retry one random failed member (every retry
    /// interval, as libnetwork's `reconnectNode`).
    pub(super) fn reconnect_one(&mut self) {
        let failed: Vec<String> = self
            .peers
            .nodes
            .iter()
            .filter(|(_, n)| n.state == super::peers::NodeState::Failed && n.addr.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        if let Some(node) = self.random_nodes(1, failed).pop() {
            if let Some(addr) = self.peers.nodes.get(&node).and_then(|n| n.addr) {
                self.outputs
                    .push_back(super::Output::Reconnect { node, addr });
            }
        }
    }

    fn sync_done(&mut self, p: PendingSync) {
        if let Purpose::Join { network } = &p.purpose {
            self.join_sync_finished(network);
        }
    }

    fn sync_failed(&mut self, p: PendingSync, now: Instant) {
        self.stats.bulk_sync_failures += 1;
        match p.purpose {
            Purpose::Periodic {
                fallback: Some(next),
            } => {
                let common = self.common_networks(&next);
                let purpose = Purpose::Periodic { fallback: None };
                self.start_bulk_sync(&next, common, Some(purpose), now);
            }
            Purpose::Join { network } => self.join_sync_finished(&network),
            Purpose::Periodic { fallback: None } | Purpose::Reconnect => {}
        }
    }

    fn join_sync_finished(&mut self, nid: &str) {
        if let Some(n) = self.local.get_mut(nid) {
            n.join_syncs = n.join_syncs.saturating_sub(1);
            if n.join_syncs == 0 {
                n.in_sync = true;
            }
        }
    }
}
