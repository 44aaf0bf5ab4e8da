//! The reaper: tombstones past their reap time, networks left long enough
//! ago, and failed or left members past the node reap interval.

use std::time::Instant;

use super::peers::NodeState;
use super::Tables;

impl Tables {
    /// One reaper pass (libnetwork's `reapState` and `reapDeadNode`).
    pub(super) fn reap(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);

        // Tombstones. Entries of failed owners are not reaped by time: they
        // go with their owner (below) or are reconciled if it returns.
        let dead = self.store.select(|_, e| e.deleting && due(e.reap_at));
        for (n, t, k) in dead {
            self.store.remove(&n, &t, &k);
        }

        // Our networks, left long enough ago, and whatever is left in them.
        let gone: Vec<String> = self
            .local
            .iter()
            .filter(|(_, n)| n.leaving && due(n.reap_at))
            .map(|(k, _)| k.clone())
            .collect();
        for nid in gone {
            self.local.remove(&nid);
            self.store.remove_network(&nid);
            self.pending.retain(|p| !p.is_join_of(&nid));
        }

        // Early network joins of nodes memberlist never reported.
        self.peers.expire_early_joins(now);

        // Others' attachments, left long enough ago.
        for atts in self.peers.attachments.values_mut() {
            atts.retain(|_, a| !(a.leaving && due(a.reap_at)));
        }

        // Failed and left members past the node reap interval: forget them,
        // their attachments and the entries kept for them.
        let reaped: Vec<(String, NodeState)> = self
            .peers
            .nodes
            .iter()
            .filter(|(_, n)| n.state != NodeState::Active && due(n.reap_at))
            .map(|(k, n)| (k.clone(), n.state))
            .collect();
        for (name, _) in reaped {
            tracing::debug!(node = %name, "reaping node");
            let owned = self.store.select(|_, e| e.node == name);
            for (n, t, k) in owned {
                // Hidden (failed owner) or already gone (left): no event.
                self.store.remove(&n, &t, &k);
            }
            self.peers.delete_node_from_networks(&name);
            self.peers.nodes.remove(&name);
        }
    }
}
