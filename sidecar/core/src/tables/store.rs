//! The entry store: network -> table -> key -> entry, and the rule that
//! decides which of two versions of an entry wins.

use std::collections::BTreeMap;
use std::time::Instant;

/// One version of an entry: a live value or a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    /// Lamport time (table clock) of the write.
    pub ltime: u64,
    /// The node that wrote it.
    pub node: String,
    /// The value (a tombstone keeps the last value, as libnetwork does).
    pub value: Vec<u8>,
    /// A tombstone.
    pub deleting: bool,
    /// When a tombstone is reaped; `None` for live entries.
    pub reap_at: Option<Instant>,
}

/// True when the version `(ltime, node)` beats `old`.
///
/// Conflict rule: the higher Lamport time wins; at equal times the higher
/// node name (byte order) wins; the same `(ltime, node)` is the same write
/// and is ignored. A node never writes twice at one Lamport time, so the
/// order is total and every replica that has seen the same versions keeps
/// the same one, whatever the order of arrival. libnetwork keeps whichever
/// of two equal-time versions arrived first, so its replicas can disagree
/// forever; the node-name tie-break only ever accepts versions libnetwork
/// would accept or would have ignored as "not newer".
pub(super) fn supersedes(ltime: u64, node: &str, old: &Entry) -> bool {
    (ltime, node) > (old.ltime, old.node.as_str())
}

type Tables = BTreeMap<String, BTreeMap<String, Entry>>;

/// All entries this node holds, by network, table and key.
#[derive(Debug, Default)]
pub(super) struct Store {
    nets: BTreeMap<String, Tables>,
}

impl Store {
    pub fn get(&self, net: &str, table: &str, key: &str) -> Option<&Entry> {
        self.nets.get(net)?.get(table)?.get(key)
    }

    /// Stores `e`, returning the version it replaced.
    pub fn insert(&mut self, net: &str, table: &str, key: &str, e: Entry) -> Option<Entry> {
        self.nets
            .entry(net.to_string())
            .or_default()
            .entry(table.to_string())
            .or_default()
            .insert(key.to_string(), e)
    }

    /// Removes an entry (no tombstone), dropping empty maps.
    pub fn remove(&mut self, net: &str, table: &str, key: &str) -> Option<Entry> {
        let tables = self.nets.get_mut(net)?;
        let keys = tables.get_mut(table)?;
        let e = keys.remove(key);
        if keys.is_empty() {
            tables.remove(table);
        }
        if tables.is_empty() {
            self.nets.remove(net);
        }
        e
    }

    /// Every entry of a network, as (table, key, entry), in order.
    pub fn network(&self, net: &str) -> impl Iterator<Item = (&str, &str, &Entry)> {
        self.nets.get(net).into_iter().flat_map(|tables| {
            tables
                .iter()
                .flat_map(|(t, keys)| keys.iter().map(move |(k, e)| (t.as_str(), k.as_str(), e)))
        })
    }

    /// Every entry of one table of a network, as (key, entry), in order.
    pub fn table(&self, net: &str, table: &str) -> impl Iterator<Item = (&str, &Entry)> {
        self.nets
            .get(net)
            .and_then(|t| t.get(table))
            .into_iter()
            .flat_map(|keys| keys.iter().map(|(k, e)| (k.as_str(), e)))
    }

    /// Every entry, as (network, table, key, entry), in order.
    pub fn all(&self) -> impl Iterator<Item = (&str, &str, &str, &Entry)> {
        self.nets.iter().flat_map(|(n, tables)| {
            tables.iter().flat_map(move |(t, keys)| {
                keys.iter()
                    .map(move |(k, e)| (n.as_str(), t.as_str(), k.as_str(), e))
            })
        })
    }

    /// Addresses of the entries matching `pred`, as owned (network, table, key).
    pub fn select(
        &self,
        mut pred: impl FnMut(&str, &Entry) -> bool,
    ) -> Vec<(String, String, String)> {
        self.all()
            .filter(|(n, _, _, e)| pred(n, e))
            .map(|(n, t, k, _)| (n.to_string(), t.to_string(), k.to_string()))
            .collect()
    }

    /// Drops a whole network's entries.
    pub fn remove_network(&mut self, net: &str) {
        self.nets.remove(net);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(ltime: u64, node: &str) -> Entry {
        Entry {
            ltime,
            node: node.into(),
            value: vec![],
            deleting: false,
            reap_at: None,
        }
    }

    #[test]
    fn higher_time_then_higher_node_wins() {
        assert!(supersedes(5, "a", &e(4, "z")));
        assert!(!supersedes(4, "z", &e(5, "a")));
        assert!(supersedes(5, "b", &e(5, "a")));
        assert!(!supersedes(5, "a", &e(5, "b")));
        assert!(!supersedes(5, "a", &e(5, "a")));
    }

    #[test]
    fn remove_drops_empty_maps() {
        let mut s = Store::default();
        s.insert("n", "t", "k", e(1, "a"));
        s.insert("n", "t2", "k", e(1, "a"));
        assert_eq!(s.network("n").count(), 2);
        s.remove("n", "t", "k");
        assert_eq!(s.table("n", "t").count(), 0);
        s.remove("n", "t2", "k");
        assert!(s.nets.is_empty());
    }
}
