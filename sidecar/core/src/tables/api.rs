//! Application calls: join and leave networks; create, update, delete and
//! read entries; announce this node's cluster join and leave.

use std::time::{Duration, Instant};

use super::codec::{self, COMPOUND_HEADER_OVERHEAD, COMPOUND_PART_OVERHEAD};
use super::proto::{network_event, node_event, table_event, NetworkEvent, NodeEvent, TableEvent};
use super::store::Entry;
use super::{EntryView, LocalNetwork, Tables, TablesError};

impl Tables {
    /// Joins network `nid`: announces it (network clock) and bulk syncs with
    /// every member already attached. Rejoining a network being left starts
    /// it afresh.
    ///
    /// # Errors
    /// `nid` is empty, or the network is already joined.
    pub fn join_network(&mut self, nid: &str, now: Instant) -> Result<(), TablesError> {
        non_empty(nid, "network id")?;
        if self.joined(nid) {
            return Err(TablesError::AlreadyJoined(nid.to_string()));
        }
        let ltime = self.network_clock.increment();
        let n = self
            .local
            .entry(nid.to_string())
            .or_insert_with(|| LocalNetwork::new(ltime));
        // Leaving => joined, keeping the queues (libnetwork does too).
        n.ltime = ltime;
        n.leaving = false;
        n.reap_at = None;
        n.in_sync = false;
        let me = self.cfg.node_name.clone();
        self.peers.add_network_node(nid, &me);
        self.queue_network_event(nid, network_event::Type::Join, ltime);
        self.start_join_syncs(nid, now);
        Ok(())
    }

    /// Leaves network `nid`: announces it, turns this node's entries in it
    /// into tombstones (so they are purged even if we rejoin before every
    /// member heard of the leave) and drops everyone else's without
    /// tombstones (so their creates are accepted again after a rejoin). The
    /// network is forgotten after the network reap interval.
    ///
    /// # Errors
    /// The network is not joined.
    pub fn leave_network(&mut self, nid: &str, now: Instant) -> Result<(), TablesError> {
        if !self.joined(nid) {
            return Err(TablesError::NotJoined(nid.to_string()));
        }
        let ltime = self.network_clock.increment();
        self.queue_network_event(nid, network_event::Type::Leave, ltime);
        let me = self.cfg.node_name.clone();
        self.peers.delete_network_node(nid, &me);
        let addrs: Vec<(String, String, bool)> = self
            .store
            .network(nid)
            .filter(|(_, _, e)| !(e.node == me && e.deleting))
            .map(|(t, k, e)| (t.to_string(), k.to_string(), e.node == me))
            .collect();
        for (table, key, owned) in addrs {
            if owned {
                let Some(old) = self.store.get(nid, &table, &key).cloned() else {
                    continue;
                };
                let tomb = Entry {
                    ltime: self.table_clock.increment(),
                    node: me.clone(),
                    value: old.value,
                    deleting: true,
                    reap_at: Some(now + self.cfg.reap_entry_interval),
                };
                self.apply(nid, &table, &key, tomb);
            } else {
                self.drop_entry(nid, &table, &key);
            }
        }
        let reap_at = now + self.cfg.reap_network_interval();
        if let Some(n) = self.local.get_mut(nid) {
            n.ltime = ltime;
            n.leaving = true;
            n.reap_at = Some(reap_at);
            n.join_syncs = 0;
        }
        self.pending.retain(|p| !p.is_join_of(nid));
        Ok(())
    }

    /// Creates an entry and gossips it. Returns its Lamport time. A
    /// tombstone, or an entry hidden because its owner failed, may be
    /// created over.
    ///
    /// # Errors
    /// Empty names, network not joined, the key is visible, or the event
    /// would not fit one gossip packet.
    pub fn create_entry(
        &mut self,
        nid: &str,
        table: &str,
        key: &str,
        value: Vec<u8>,
        now: Instant,
    ) -> Result<u64, TablesError> {
        self.check_write(nid, table, key)?;
        if self.get_entry(nid, table, key).is_some() {
            return Err(TablesError::AlreadyExists {
                network: nid.into(),
                table: table.into(),
                key: key.into(),
            });
        }
        self.write(nid, table, key, value, table_event::Type::Create, now)
    }

    /// Updates a visible entry and gossips it. Returns its Lamport time.
    ///
    /// # Errors
    /// Empty names, network not joined, the key is not visible, or the
    /// event would not fit one gossip packet.
    pub fn update_entry(
        &mut self,
        nid: &str,
        table: &str,
        key: &str,
        value: Vec<u8>,
        now: Instant,
    ) -> Result<u64, TablesError> {
        self.check_write(nid, table, key)?;
        self.check_visible(nid, table, key)?;
        self.write(nid, table, key, value, table_event::Type::Update, now)
    }

    /// Deletes a visible entry: writes a tombstone (reaped after the entry
    /// reap interval) and gossips it. Returns its Lamport time.
    ///
    /// # Errors
    /// Empty names, network not joined, or the key is not visible.
    pub fn delete_entry(
        &mut self,
        nid: &str,
        table: &str,
        key: &str,
        now: Instant,
    ) -> Result<u64, TablesError> {
        self.check_write(nid, table, key)?;
        self.check_visible(nid, table, key)?;
        let value = self
            .store
            .get(nid, table, key)
            .map(|e| e.value.clone())
            .unwrap_or_default();
        self.write(nid, table, key, value, table_event::Type::Delete, now)
    }

    /// The visible entry at (nid, table, key).
    pub fn get_entry(&self, nid: &str, table: &str, key: &str) -> Option<EntryView> {
        self.store
            .get(nid, table, key)
            .filter(|e| self.visible(e))
            .map(view)
    }

    /// Every visible entry of a table, by key in byte order.
    pub fn list_table(&self, nid: &str, table: &str) -> Vec<(String, EntryView)> {
        self.store
            .table(nid, table)
            .filter(|(_, e)| self.visible(e))
            .map(|(k, e)| (k.to_string(), view(e)))
            .collect()
    }

    /// Calls `f(table, key, entry)` for every visible entry of a network,
    /// in order, until it returns false.
    pub fn walk_network(&self, nid: &str, mut f: impl FnMut(&str, &str, EntryView) -> bool) {
        for (t, k, e) in self.store.network(nid) {
            if self.visible(e) && !f(t, k, view(e)) {
                break;
            }
        }
    }

    /// Networks this node is joined to (not those being left).
    pub fn networks(&self) -> Vec<String> {
        self.local
            .iter()
            .filter(|(_, n)| !n.leaving)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Gossip peers of a network, this node included while joined.
    pub fn network_peers(&self, nid: &str) -> Vec<String> {
        self.peers
            .network_nodes
            .get(nid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Queues a node join event for memberlist's gossip; call after the
    /// memberlist join succeeded (libnetwork's `clusterJoin`).
    pub fn announce_join(&mut self) {
        self.queue_node_event(node_event::Type::Join);
    }

    /// Queues a node leave event for memberlist's gossip; call before a
    /// graceful memberlist leave, so peers drop this node's entries at once.
    pub fn announce_leave(&mut self) {
        self.queue_node_event(node_event::Type::Leave);
    }

    // ----- internals --------------------------------------------------------

    fn check_write(&self, nid: &str, table: &str, key: &str) -> Result<(), TablesError> {
        non_empty(nid, "network id")?;
        non_empty(table, "table name")?;
        non_empty(key, "key")?;
        if !self.joined(nid) {
            return Err(TablesError::NotJoined(nid.to_string()));
        }
        Ok(())
    }

    fn check_visible(&self, nid: &str, table: &str, key: &str) -> Result<(), TablesError> {
        if self.get_entry(nid, table, key).is_none() {
            return Err(TablesError::NotFound {
                network: nid.into(),
                table: table.into(),
                key: key.into(),
            });
        }
        Ok(())
    }

    fn write(
        &mut self,
        nid: &str,
        table: &str,
        key: &str,
        value: Vec<u8>,
        kind: table_event::Type,
        now: Instant,
    ) -> Result<u64, TablesError> {
        let deleting = kind == table_event::Type::Delete;
        let reap = self.cfg.reap_entry_interval;
        let mut ev = TableEvent {
            r#type: kind as i32,
            l_time: self.table_clock.time().saturating_add(1),
            node_name: self.cfg.node_name.clone(),
            network_id: nid.to_string(),
            table_name: table.to_string(),
            key: key.to_string(),
            value,
            residual_reap_time: if deleting { residual(reap) } else { 0 },
        };
        let msg = codec::encode_table_event(&ev);
        let limit = self.cfg.packet_budget - COMPOUND_HEADER_OVERHEAD - COMPOUND_PART_OVERHEAD;
        if msg.len() > limit {
            return Err(TablesError::TooLarge {
                key: key.into(),
                size: msg.len(),
                limit,
            });
        }
        let ltime = self.table_clock.increment();
        debug_assert_eq!(ltime, ev.l_time);
        ev.l_time = ltime;
        let entry = Entry {
            ltime,
            node: self.cfg.node_name.clone(),
            value: std::mem::take(&mut ev.value),
            deleting,
            reap_at: deleting.then(|| now + reap),
        };
        self.apply(nid, table, key, entry);
        if let Some(n) = self.local.get_mut(nid) {
            n.broadcasts
                .push(Some(event_name(nid, table, key)), msg, false);
        }
        self.arm_eager(now);
        Ok(ltime)
    }

    /// After a join's push/pull moved this node's network times forward
    /// (libnetwork's `updateLocalNetworkTime`), the events of its own still
    /// waiting for gossip (a network joined before the cluster) carry the
    /// new time: under the old one every member that learned the new time
    /// from the push/pull would take them for stale and not relay them.
    pub(super) fn requeue_unsent_network_events(&mut self) {
        let me = self.cfg.node_name.clone();
        let unsent: Vec<(String, bool, u64)> = self
            .local
            .iter()
            .filter(|(nid, _)| self.network_broadcasts.contains(&format!("{nid}\0{me}")))
            .map(|(nid, n)| (nid.clone(), n.leaving, n.ltime))
            .collect();
        for (nid, leaving, ltime) in unsent {
            let kind = if leaving {
                network_event::Type::Leave
            } else {
                network_event::Type::Join
            };
            self.queue_network_event(&nid, kind, ltime);
        }
    }

    fn queue_network_event(&mut self, nid: &str, kind: network_event::Type, ltime: u64) {
        let ev = NetworkEvent {
            r#type: kind as i32,
            l_time: ltime,
            node_name: self.cfg.node_name.clone(),
            network_id: nid.to_string(),
        };
        let name = format!("{nid}\0{}", self.cfg.node_name);
        self.network_broadcasts
            .push(Some(name), codec::encode_network_event(&ev), false);
    }

    fn queue_node_event(&mut self, kind: node_event::Type) {
        let ev = NodeEvent {
            r#type: kind as i32,
            l_time: self.network_clock.increment(),
            node_name: self.cfg.node_name.clone(),
        };
        self.node_broadcasts
            .push(None, codec::encode_node_event(&ev), false);
    }
}

/// The queue name of a table event: a newer event for the same entry
/// replaces a queued older one (libnetwork's `Invalidates`).
pub(super) fn event_name(nid: &str, table: &str, key: &str) -> String {
    format!("{nid}\0{table}\0{key}")
}

/// A reap time as whole seconds for the wire, at least 1 (0 means "unset").
pub(super) fn residual(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX).max(1)
}

fn non_empty(s: &str, what: &'static str) -> Result<(), TablesError> {
    if s.is_empty() {
        Err(TablesError::EmptyName(what))
    } else {
        Ok(())
    }
}

fn view(e: &Entry) -> EntryView {
    EntryView {
        value: e.value.clone(),
        owner: e.node.clone(),
        ltime: e.ltime,
    }
}
