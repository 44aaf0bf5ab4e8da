//! Received messages: the dispatcher, network and table events, and
//! memberlist push/pull state.

use std::time::{Duration, Instant};

use super::api::event_name;
use super::bulksync::MIN_HIDDEN_RESIDUAL;
use super::codec::{self, Decoded};
use super::peers::{Attachment, Node, NodeState};
use super::proto::{
    network_event, node_event, table_event, MessageType, NetworkEntry, NetworkEvent,
    NetworkPushPull, NodeEvent, TableEvent,
};
use super::store::{supersedes, Entry};
use super::Tables;

/// How deep compounds and bulk syncs may nest.
const MAX_NESTING: usize = 3;

impl Tables {
    /// Handles a NetworkDB message received as a memberlist user message,
    /// best-effort or reliable (libnetwork's `NotifyMsg`). `from` names the
    /// sender when the transport knows it; it is only used for logs, since
    /// every message names its origin. Malformed input is counted and
    /// dropped; it never changes state. Returns false when it is not a
    /// NetworkDB message of a known type (a host sharing the cluster may
    /// send other user messages, and protobuf decodes many byte strings).
    pub fn handle_message(&mut self, from: &str, data: &[u8], now: Instant) -> bool {
        if data.is_empty() {
            return false;
        }
        tracing::trace!(from, len = data.len(), "networkdb message");
        self.handle_part(data, false, 0, now)
    }

    /// This node's push/pull state: its own and every known attachment
    /// (libnetwork's `LocalState`). On a join, our attachments get a fresh
    /// network time first, so a peer that still thinks we are leaving
    /// learns otherwise.
    pub fn local_state(&mut self, join: bool) -> Vec<u8> {
        if join {
            let ltime = self.network_clock.increment();
            for n in self.local.values_mut() {
                n.ltime = ltime;
            }
            if self.cfg.relay_push_pull_news {
                self.requeue_unsent_network_events();
            }
        }
        let me = &self.cfg.node_name;
        let mut networks: Vec<NetworkEntry> = self
            .local
            .iter()
            .map(|(nid, n)| NetworkEntry {
                network_id: nid.clone(),
                l_time: n.ltime,
                node_name: me.clone(),
                leaving: n.leaving,
            })
            .collect();
        for (node, atts) in &self.peers.attachments {
            for (nid, a) in atts {
                networks.push(NetworkEntry {
                    network_id: nid.clone(),
                    l_time: a.ltime,
                    node_name: node.clone(),
                    leaving: a.leaving,
                });
            }
        }
        codec::encode_push_pull(&NetworkPushPull {
            l_time: self.network_clock.time(),
            networks,
            node_name: me.clone(),
        })
    }

    /// Merges a peer's push/pull state (libnetwork's `MergeRemoteState`):
    /// a node join event for the sender, then one network event per
    /// attachment it knows. Malformed input is counted and dropped; the
    /// result is false then.
    pub fn merge_remote_state(&mut self, data: &[u8], join: bool, now: Instant) -> bool {
        let pp = match codec::decode(data) {
            Ok(Decoded::PushPull(pp)) => pp,
            Ok(other) => {
                tracing::debug!(?other, "push/pull state of the wrong type");
                self.stats.malformed += 1;
                return false;
            }
            Err(e) => {
                tracing::debug!(error = %e, "bad push/pull state");
                self.stats.malformed += 1;
                return false;
            }
        };
        self.handle_node_event(
            &NodeEvent {
                r#type: node_event::Type::Join as i32,
                l_time: pp.l_time,
                node_name: pp.node_name.clone(),
            },
            now,
        );
        for n in pp.networks {
            let kind = if n.leaving {
                network_event::Type::Leave
            } else {
                network_event::Type::Join
            };
            // In a join's push/pull only the sender's own attachments are
            // news worth gossiping (the joiner learns everyone's, which the
            // others hold already).
            let relay = self.cfg.relay_push_pull_news && (!join || n.node_name == pp.node_name);
            let ev = NetworkEvent {
                r#type: kind as i32,
                l_time: n.l_time,
                node_name: n.node_name,
                network_id: n.network_id,
            };
            if self.handle_network_event(&ev, now) && relay {
                self.relay_network_event(&ev);
            }
        }
        true
    }

    /// Queues another node's network event for memberlist's gossip.
    fn relay_network_event(&mut self, ev: &NetworkEvent) {
        let name = format!("{}\0{}", ev.network_id, ev.node_name);
        self.network_broadcasts
            .push(Some(name), codec::encode_network_event(ev), false);
    }

    /// Handles one wrapped message; `bulk` when it came in a bulk sync;
    /// `depth` counts the compounds and bulk syncs around it. Legitimate
    /// nesting is at most bulk sync > compound > event; deeper input is
    /// dropped, so crafted nesting cannot exhaust the stack. True when the
    /// message was of a known type.
    pub(super) fn handle_part(
        &mut self,
        data: &[u8],
        bulk: bool,
        depth: usize,
        now: Instant,
    ) -> bool {
        if depth > MAX_NESTING {
            self.stats.malformed += 1;
            return false;
        }
        let decoded = match codec::decode(data) {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "dropping malformed NetworkDB message");
                self.stats.malformed += 1;
                return false;
            }
        };
        match decoded {
            Decoded::Node(ev) => {
                if self.handle_node_event(&ev, now) {
                    self.node_broadcasts.push(None, data.to_vec(), false);
                }
            }
            Decoded::Network(ev) => {
                if self.handle_network_event(&ev, now) {
                    let name = format!("{}\0{}", ev.network_id, ev.node_name);
                    self.network_broadcasts
                        .push(Some(name), data.to_vec(), false);
                }
            }
            Decoded::Table { event, raw } => self.handle_table_message(event, raw, bulk, now),
            Decoded::BulkSync(b) => self.handle_bulk_sync(b, depth, now),
            Decoded::Compound(parts) => {
                for p in parts {
                    self.handle_part(&p, bulk, depth + 1, now);
                }
            }
            Decoded::PushPull(_) => {
                // Push/pull state only travels through memberlist's push/pull.
                self.stats.malformed += 1;
            }
            Decoded::Unknown(t) => {
                tracing::debug!(message_type = t, "skipping unknown NetworkDB message type");
                return false;
            }
        }
        true
    }

    /// A network event; true when it is new and should be relayed
    /// (libnetwork's `handleNetworkEvent`).
    pub(super) fn handle_network_event(&mut self, ev: &NetworkEvent, now: Instant) -> bool {
        self.network_clock.witness(ev.l_time);
        let node = ev.node_name.as_str();
        let nid = ev.network_id.as_str();
        if node == self.cfg.node_name || nid.is_empty() {
            return false;
        }
        let leave = ev.r#type == network_event::Type::Leave as i32;
        let known_node = self.peers.attachments.contains_key(node);
        if let Some(a) = self
            .peers
            .attachments
            .get_mut(node)
            .and_then(|m| m.get_mut(nid))
        {
            if a.ltime >= ev.l_time {
                return false;
            }
            a.ltime = ev.l_time;
            a.leaving = leave;
            if leave {
                // Joined => Leaving: the node left the network but not the
                // cluster; its entries there go, without tombstones.
                a.reap_at = Some(now + self.cfg.reap_network_interval());
                let owned: Vec<(String, String)> = self
                    .store
                    .network(nid)
                    .filter(|(_, _, e)| e.node == node)
                    .map(|(t, k, _)| (t.to_string(), k.to_string()))
                    .collect();
                for (t, k) in owned {
                    self.drop_entry(nid, &t, &k);
                }
                self.peers.delete_network_node(nid, node);
            } else {
                // Leaving => Joined (or a fresher join).
                a.reap_at = None;
                if self.peers.is_active(node) {
                    self.peers.add_network_node(nid, node);
                }
            }
            return true;
        }
        if leave && !known_node {
            return false;
        }
        if leave {
            // A leave for an attachment we never saw: nothing to remember.
            return false;
        }
        if !self.peers.is_active(node) {
            // A join from a node memberlist has not reported: held until it
            // does, or dropped as libnetwork drops it. Joins of failed or
            // left members are dropped (a left member's may be stale).
            let unreported = self.peers.state(node).is_none();
            if let Some(hold) = self.cfg.hold_early_joins.filter(|_| unreported) {
                if !self.peers.hold_early_join(node, nid, ev.l_time, now + hold) {
                    tracing::debug!(
                        node,
                        network = nid,
                        "too many early network joins held; dropping one"
                    );
                }
            }
            return false;
        }
        // Unknown => Joined
        self.peers
            .attachments
            .entry(node.to_string())
            .or_default()
            .insert(
                nid.to_string(),
                Attachment {
                    ltime: ev.l_time,
                    leaving: false,
                    reap_at: None,
                },
            );
        self.peers.add_network_node(nid, node);
        true
    }

    /// Applies and relays the network joins held for `node`, which
    /// memberlist now reports alive.
    pub(super) fn apply_early_joins(&mut self, node: &str, now: Instant) {
        let Some(nets) = self.peers.early_joins.remove(node) else {
            return;
        };
        for (nid, (l_time, until)) in nets {
            if until <= now {
                continue;
            }
            let ev = NetworkEvent {
                r#type: network_event::Type::Join as i32,
                l_time,
                node_name: node.to_string(),
                network_id: nid,
            };
            if self.handle_network_event(&ev, now) {
                self.relay_network_event(&ev);
            }
        }
    }

    fn handle_table_message(&mut self, ev: TableEvent, raw: Vec<u8>, bulk: bool, now: Instant) {
        if ev.node_name == self.cfg.node_name {
            return;
        }
        if !self.handle_table_event(&ev, bulk, now) {
            return;
        }
        let max = self.cfg.max_rebroadcast_on_sync;
        let Some(n) = self.local.get_mut(&ev.network_id).filter(|n| !n.leaving) else {
            return;
        };
        if bulk && n.relays.len() > max {
            return;
        }
        let name = event_name(&ev.network_id, &ev.table_name, &ev.key);
        n.relays.push(
            Some(name),
            codec::encode_raw(MessageType::TableEvent, raw),
            false,
        );
        if !bulk {
            self.arm_eager(now);
        }
    }

    /// A table event from another node; true when it should be relayed
    /// (libnetwork's `handleTableEvent`).
    pub(super) fn handle_table_event(&mut self, ev: &TableEvent, bulk: bool, now: Instant) -> bool {
        self.table_clock.witness(ev.l_time);
        let nid = ev.network_id.as_str();
        let Some(in_sync) = self
            .local
            .get(nid)
            .filter(|n| !n.leaving)
            .map(|n| n.in_sync)
        else {
            // Not (or no longer) in the network: neither kept nor relayed.
            return false;
        };
        if ev.table_name.is_empty() || ev.key.is_empty() {
            self.stats.malformed += 1;
            return false;
        }
        let deleting = ev.r#type == table_event::Type::Delete as i32;
        // A live entry is only taken from a node attached to the network
        // (libnetwork). A tombstone is taken from anyone: it can only hide
        // older versions, and refusing it because its writer is unknown here
        // (it crashed before we heard of it, or was reaped) would let a
        // stale copy of the entry outlive it.
        let mut adopted = false;
        if !deleting && !self.peers.is_attached(&ev.node_name, nid) {
            let told = Duration::from_secs(u64::try_from(ev.residual_reap_time).unwrap_or(0));
            if !(bulk && told >= MIN_HIDDEN_RESIDUAL && self.adopt_failed_owner(ev, told, now)) {
                return false;
            }
            adopted = true;
        }
        let prev = self.store.get(nid, &ev.table_name, &ev.key);
        if let Some(prev) = prev {
            if !supersedes(ev.l_time, &ev.node_name, prev) {
                return false;
            }
        }
        let present = prev.is_some();
        let reap = if ev.residual_reap_time > 0 {
            Duration::from_secs(ev.residual_reap_time as u64)
        } else {
            // Senders without the field (old engines) or a bad value.
            self.cfg.reap_entry_interval
        };
        let entry = Entry {
            ltime: ev.l_time,
            node: ev.node_name.clone(),
            value: ev.value.clone(),
            deleting,
            reap_at: deleting.then(|| now + reap),
        };
        self.apply(nid, &ev.table_name, &ev.key, entry);
        if adopted {
            // Kept for convergence only; every peer that holds it can
            // send it in its own bulk syncs.
            return false;
        }
        if !present && deleting {
            // A tombstone for an entry we never had: only worth relaying
            // from a bulk sync, once in sync, and while it has a good part
            // of its life left (else it may circle forever).
            return bulk && in_sync && reap > self.cfg.reap_entry_interval / 6;
        }
        in_sync
    }

    /// A bulk sync carries an entry hidden at its sender (a create with a
    /// residual reap time) whose owner we never knew attached: it failed
    /// before we heard of it, or we reaped it first. Record the owner as
    /// failed and attached, kept for the residual time the sender gives,
    /// so the entry is kept hidden here as everywhere else. Without this
    /// a node started after the owner failed refuses the entry, and its
    /// own write of the key at a lower Lamport time shows here while the
    /// older replicas keep the failed owner's (until the 24 h reap).
    ///
    /// The deadline is a second before the sender's (and at most our node
    /// reap interval), never extended: an owner that other nodes have
    /// reaped comes back here for less than the latest of them had left,
    /// and a chain of such hops ends. Active members are not
    /// adopted (their attachments arrive with their network events), nor
    /// members that left.
    fn adopt_failed_owner(&mut self, ev: &TableEvent, told: Duration, now: Instant) -> bool {
        let name = ev.node_name.as_str();
        if name.is_empty() || name == self.cfg.node_name {
            return false;
        }
        let nid = ev.network_id.as_str();
        let attachment = self.peers.attachments.get(name).and_then(|a| a.get(nid));
        if attachment.is_some_and(|a| a.leaving) {
            // It left the network: its entries went with it.
            return false;
        }
        match self.peers.state(name) {
            None => {
                // A second less than we were told (see
                // `MIN_HIDDEN_RESIDUAL`), and never longer than we would
                // keep a failed node of our own.
                let keep = (told - Duration::from_secs(1)).min(self.cfg.node_reap_interval);
                let node = Node {
                    state: NodeState::Failed,
                    ltime: 0,
                    addr: None,
                    reap_at: Some(now + keep),
                };
                self.peers.nodes.insert(name.to_string(), node);
            }
            Some(NodeState::Failed) => {}
            Some(NodeState::Active | NodeState::Left) => return false,
        }
        self.peers
            .attachments
            .entry(name.to_string())
            .or_default()
            .entry(nid.to_string())
            .or_insert(Attachment {
                ltime: 0,
                leaving: false,
                reap_at: None,
            });
        tracing::debug!(node = name, network = %ev.network_id, "keeping a failed owner's entry from a bulk sync");
        true
    }
}
