//! Membership changes: members joining, failing and leaving, node events,
//! and what each does to the member's attachments and entries.

use std::net::SocketAddr;
use std::time::Instant;

use super::bulksync::Purpose;
use super::peers::{Node, NodeState};
use super::proto::{node_event, NodeEvent};
use super::Tables;

impl Tables {
    /// Memberlist reports `name` alive at `addr` (a new member, or one back
    /// from failure). A failed member that returns gets its attachments and
    /// entries back and is bulk synced at once; network joins of `name`
    /// that came before this report are applied now. A new name at the address of
    /// a known member is that member's new incarnation: the old one is
    /// treated as left.
    pub fn member_joined(&mut self, name: &str, addr: SocketAddr, now: Instant) {
        if let Some(n) = self.peers.nodes.get_mut(name) {
            n.addr = Some(addr);
            self.change_node_state(name, NodeState::Active, now);
        } else {
            self.purge_reincarnation(name, addr, now);
            self.peers.nodes.insert(
                name.to_string(),
                Node {
                    state: NodeState::Active,
                    ltime: 0,
                    addr: Some(addr),
                    reap_at: None,
                },
            );
        }
        self.apply_early_joins(name, now);
    }

    /// Memberlist declared `name` dead: its entries are hidden, not dropped,
    /// until it returns or is reaped.
    pub fn member_failed(&mut self, name: &str, now: Instant) {
        if self.peers.is_active(name) && name != self.cfg.node_name {
            self.change_node_state(name, NodeState::Failed, now);
        }
    }

    /// Memberlist reports that `name` left gracefully: its entries are
    /// dropped (no tombstones) and its attachments forgotten.
    pub fn member_left(&mut self, name: &str, now: Instant) {
        if name != self.cfg.node_name {
            self.change_node_state(name, NodeState::Left, now);
        }
    }

    /// Members declared failed whose entries this node still keeps hidden
    /// (until they return, or NetworkDB's node reap), by name. Membership
    /// forgets a dead member much sooner, after its gossip-to-the-dead time.
    pub fn failed_members(&self) -> Vec<String> {
        self.peers
            .nodes
            .iter()
            .filter(|(_, n)| n.state == NodeState::Failed)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The answer to [`super::Output::Reconnect`]: on success, announce
    /// ourselves again (libnetwork's `reconnectNode`); the bulk sync follows
    /// when memberlist reports the member alive ([`Tables::member_joined`]).
    pub fn handle_reconnect_result(&mut self, node: &str, joined: bool, now: Instant) {
        if !joined {
            return;
        }
        self.announce_join();
        if self.peers.is_active(node) && !self.pending.iter().any(|p| p.node == node) {
            let nets = self.common_networks(node);
            self.start_bulk_sync(node, nets, Some(Purpose::Reconnect), now);
        }
    }

    /// A node event (ours or relayed); true when it is new and should be
    /// relayed. As libnetwork, only a fresher leave of an active member
    /// changes anything: a join only counts once memberlist saw the member.
    pub(super) fn handle_node_event(&mut self, ev: &NodeEvent, now: Instant) -> bool {
        self.network_clock.witness(ev.l_time);
        let Some(n) = self.peers.nodes.get_mut(&ev.node_name) else {
            return false;
        };
        if n.ltime >= ev.l_time {
            return false;
        }
        n.ltime = ev.l_time;
        if n.state != NodeState::Active || ev.node_name == self.cfg.node_name {
            return false;
        }
        match node_event::Type::try_from(ev.r#type) {
            // Active => Active: nothing to do.
            Ok(node_event::Type::Join) => false,
            // Active => Left
            Ok(node_event::Type::Leave) => {
                self.change_node_state(&ev.node_name, NodeState::Left, now)
            }
            _ => false,
        }
    }

    /// Moves a member between the active, failed and left states; true when
    /// it moved.
    pub(super) fn change_node_state(&mut self, name: &str, to: NodeState, now: Instant) -> bool {
        let Some(from) = self.peers.state(name) else {
            return false;
        };
        if from == to {
            return false;
        }
        match to {
            // Failed | Left => Active: back in the peer lists; a failed
            // member's entries show again and it is bulk synced.
            NodeState::Active => {
                self.set_state(name, to, None);
                self.peers.restore_node_in_networks(name);
                if from == NodeState::Failed {
                    self.announce_owned(name, true);
                    if !self.pending.iter().any(|p| p.node == name) {
                        let nets = self.common_networks(name);
                        self.start_bulk_sync(name, nets, Some(Purpose::Reconnect), now);
                    }
                }
            }
            // Active => Failed: hide its entries, keep its attachments.
            NodeState::Failed => {
                self.announce_owned(name, false);
                let reap = self.reap_at_for(name, now);
                self.set_state(name, to, Some(reap));
                self.peers.suspend_node_in_networks(name);
                self.fail_syncs_to(name, now);
            }
            // Active | Failed => Left: drop its entries (watchers already
            // saw a failed member's go) and its attachments.
            NodeState::Left => {
                let reap = self.reap_at_for(name, now);
                self.set_state(name, to, Some(reap));
                let owned = self.store.select(|_, e| e.node == name);
                for (n, t, k) in owned {
                    if from == NodeState::Failed {
                        self.store.remove(&n, &t, &k);
                    } else {
                        self.drop_entry(&n, &t, &k);
                    }
                }
                self.peers.delete_node_from_networks(name);
                self.fail_syncs_to(name, now);
            }
        }
        true
    }

    fn set_state(&mut self, name: &str, state: NodeState, reap_at: Option<std::time::Instant>) {
        if let Some(n) = self.peers.nodes.get_mut(name) {
            n.state = state;
            n.reap_at = reap_at;
        }
    }

    /// A failed member that then leaves keeps its first reap time.
    fn reap_at_for(&self, name: &str, now: Instant) -> Instant {
        self.peers
            .nodes
            .get(name)
            .and_then(|n| n.reap_at)
            .unwrap_or(now + self.cfg.node_reap_interval)
    }

    /// Tells watchers that a member's live entries appear (`shown`) or
    /// disappear, around a change of its failed state. MUST be called while
    /// the entries are hidden (showing) or visible (hiding).
    fn announce_owned(&mut self, name: &str, shown: bool) {
        let owned: Vec<(String, String, String, Vec<u8>)> = self
            .store
            .all()
            .filter(|(_, _, _, e)| e.node == name && !e.deleting)
            .map(|(n, t, k, e)| (n.into(), t.into(), k.into(), e.value.clone()))
            .collect();
        for (n, t, k, v) in owned {
            let (before, after) = if shown {
                (None, Some(v))
            } else {
                (Some(v), None)
            };
            self.notify(&n, &t, &k, name.to_string(), before, after);
        }
    }

    /// Treats any other member last seen at `addr` as left: `name` is its
    /// new incarnation (libnetwork's `purgeReincarnation`).
    fn purge_reincarnation(&mut self, name: &str, addr: SocketAddr, now: Instant) {
        let old: Vec<String> = self
            .peers
            .nodes
            .iter()
            .filter(|(n, node)| *n != name && *n != &self.cfg.node_name && node.addr == Some(addr))
            .map(|(n, _)| n.clone())
            .collect();
        for n in old {
            self.change_node_state(&n, NodeState::Left, now);
        }
    }
}
