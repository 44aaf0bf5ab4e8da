//! What this node knows of the others: their state, which networks each is
//! attached to, and which of them are gossip peers of each network.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Instant;

/// A member's state as NetworkDB tracks it (libnetwork's three node lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NodeState {
    /// Reachable; a gossip peer of its networks.
    Active,
    /// Left gracefully; its entries are gone.
    Left,
    /// Declared failed; its attachments and entries are kept, hidden.
    Failed,
}

/// One member.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub state: NodeState,
    /// Lamport time (network clock) of its latest node event.
    pub ltime: u64,
    /// Last known address, to recognise a new incarnation at the same one.
    pub addr: Option<SocketAddr>,
    /// When a failed or left node is forgotten.
    pub reap_at: Option<Instant>,
}

/// A remote node's attachment to a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Attachment {
    /// Lamport time (network clock) of the latest network event.
    pub ltime: u64,
    /// The node is leaving the network.
    pub leaving: bool,
    /// When a leaving attachment is forgotten.
    pub reap_at: Option<Instant>,
}

/// Members, attachments and per-network peer lists.
#[derive(Debug, Default)]
pub(super) struct Peers {
    pub nodes: BTreeMap<String, Node>,
    /// Remote nodes' attachments: node -> network -> attachment. Kept for a
    /// failed node until it is reaped.
    pub attachments: BTreeMap<String, BTreeMap<String, Attachment>>,
    /// Gossip peers of each network (this node included while joined):
    /// active members attached and not leaving.
    pub network_nodes: BTreeMap<String, BTreeSet<String>>,
    /// Network joins of nodes memberlist has not reported yet: node ->
    /// network -> (Lamport time, held until). See
    /// [`super::Config::hold_early_joins`].
    pub early_joins: BTreeMap<String, BTreeMap<String, (u64, Instant)>>,
}

impl Peers {
    pub fn state(&self, name: &str) -> Option<NodeState> {
        self.nodes.get(name).map(|n| n.state)
    }

    pub fn is_failed(&self, name: &str) -> bool {
        self.state(name) == Some(NodeState::Failed)
    }

    pub fn is_active(&self, name: &str) -> bool {
        self.state(name) == Some(NodeState::Active)
    }

    /// The node has a non-leaving attachment to the network (remembered for
    /// a failed node, so its entries keep being accepted).
    pub fn is_attached(&self, node: &str, net: &str) -> bool {
        self.attachments
            .get(node)
            .and_then(|a| a.get(net))
            .is_some_and(|a| !a.leaving)
    }

    pub fn add_network_node(&mut self, net: &str, node: &str) {
        self.network_nodes
            .entry(net.to_string())
            .or_default()
            .insert(node.to_string());
    }

    pub fn delete_network_node(&mut self, net: &str, node: &str) {
        if let Some(nodes) = self.network_nodes.get_mut(net) {
            nodes.remove(node);
        }
    }

    /// Takes the node out of every peer list, keeping its attachments.
    pub fn suspend_node_in_networks(&mut self, node: &str) {
        for nodes in self.network_nodes.values_mut() {
            nodes.remove(node);
        }
    }

    /// Puts the node back in the peer lists of the networks it is attached to.
    pub fn restore_node_in_networks(&mut self, node: &str) {
        let nets: Vec<String> = self
            .attachments
            .get(node)
            .map(|a| {
                a.iter()
                    .filter(|(_, a)| !a.leaving)
                    .map(|(n, _)| n.clone())
                    .collect()
            })
            .unwrap_or_default();
        for net in nets {
            self.add_network_node(&net, node);
        }
    }

    /// Forgets the node's attachments and takes it out of every peer list.
    pub fn delete_node_from_networks(&mut self, node: &str) {
        self.suspend_node_in_networks(node);
        self.attachments.remove(node);
    }

    /// Gossip peers of a network other than `me`.
    pub fn others(&self, net: &str, me: &str) -> Vec<String> {
        self.network_nodes
            .get(net)
            .map(|s| s.iter().filter(|n| *n != me).cloned().collect())
            .unwrap_or_default()
    }

    /// Holds a network join of `node`, which memberlist has not reported,
    /// until `until`; keeps the freshest per network. False when
    /// [`super::config::MAX_EARLY_JOINS`] are held already.
    pub fn hold_early_join(&mut self, node: &str, net: &str, ltime: u64, until: Instant) -> bool {
        let held: usize = self.early_joins.values().map(BTreeMap::len).sum();
        let nets = self.early_joins.entry(node.to_string()).or_default();
        match nets.get_mut(net) {
            Some(h) => {
                if ltime > h.0 {
                    *h = (ltime, until);
                }
                true
            }
            None if held < super::config::MAX_EARLY_JOINS => {
                nets.insert(net.to_string(), (ltime, until));
                true
            }
            None => {
                if nets.is_empty() {
                    self.early_joins.remove(node);
                }
                false
            }
        }
    }

    /// Forgets early joins held past their time.
    pub fn expire_early_joins(&mut self, now: Instant) {
        for nets in self.early_joins.values_mut() {
            nets.retain(|_, (_, until)| *until > now);
        }
        self.early_joins.retain(|_, nets| !nets.is_empty());
    }

    pub fn count(&self, state: NodeState) -> usize {
        self.nodes.values().filter(|n| n.state == state).count()
    }
}
