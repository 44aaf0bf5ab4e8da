//! Driving the Go NetworkDB peer ([`crate::Kind::GoNetworkDb`],
//! `tests/interop/networkdb-peer`): its table commands and the table events
//! it prints. Rust sidecars are driven through their gRPC table API instead.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::peer::{Peer, CMD_TIMEOUT};

/// A table change a NetworkDB watcher saw (NetworkDB reports only changes
/// made by other nodes, never its own writes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableEvent {
    /// `create`, `update` or `delete` (as `WatchEvent.IsCreate` & co. say).
    pub op: String,
    /// Network id.
    pub network: String,
    /// Table name.
    pub table: String,
    /// Key.
    pub key: String,
    /// New value; `None` for a delete.
    pub value: Option<String>,
    /// Previous value; `None` for a create.
    pub prev: Option<String>,
    /// When the peer's watcher got it, in Unix nanoseconds (its wall clock).
    pub ts_ns: u64,
}

fn opt_text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

impl Peer {
    /// `JoinNetwork(network)`.
    ///
    /// # Errors
    /// With NetworkDB's error text, or on timeout.
    pub fn ndb_join_network(&self, network: &str) -> Result<()> {
        self.request_ok(json!({"cmd": "join_network", "network": network}))
    }

    /// `LeaveNetwork(network)`.
    ///
    /// # Errors
    /// With NetworkDB's error text, or on timeout.
    pub fn ndb_leave_network(&self, network: &str) -> Result<()> {
        self.request_ok(json!({"cmd": "leave_network", "network": network}))
    }

    /// `CreateEntry(table, network, key, value)`.
    ///
    /// # Errors
    /// With NetworkDB's error text (e.g. the entry exists), or on timeout.
    pub fn ndb_create(&self, network: &str, table: &str, key: &str, value: &str) -> Result<()> {
        self.request_ok(
            json!({"cmd": "create", "network": network, "table": table, "key": key, "value": value}),
        )
    }

    /// `UpdateEntry(table, network, key, value)`.
    ///
    /// # Errors
    /// With NetworkDB's error text (e.g. no such entry), or on timeout.
    pub fn ndb_update(&self, network: &str, table: &str, key: &str, value: &str) -> Result<()> {
        self.request_ok(
            json!({"cmd": "update", "network": network, "table": table, "key": key, "value": value}),
        )
    }

    /// `DeleteEntry(table, network, key)`.
    ///
    /// # Errors
    /// With NetworkDB's error text, or on timeout.
    pub fn ndb_delete(&self, network: &str, table: &str, key: &str) -> Result<()> {
        self.request_ok(json!({"cmd": "delete", "network": network, "table": table, "key": key}))
    }

    /// `GetEntry`: the value, or `None` when absent, deleted or hidden
    /// (owner failed).
    ///
    /// # Errors
    /// On timeout.
    pub fn ndb_get(&self, network: &str, table: &str, key: &str) -> Result<Option<String>> {
        let cmd = json!({"cmd": "get", "network": network, "table": table, "key": key});
        let a = self.request(&cmd, |e| e["ev"] == "entry", CMD_TIMEOUT)?;
        Ok(opt_text(&a["value"]))
    }

    /// `GetTableByNetwork`: the visible entries of one table.
    ///
    /// # Errors
    /// On timeout or a malformed answer.
    pub fn ndb_list(&self, network: &str, table: &str) -> Result<BTreeMap<String, String>> {
        let cmd = json!({"cmd": "list", "network": network, "table": table});
        let a = self.request(&cmd, |e| e["ev"] == "table", CMD_TIMEOUT)?;
        let map = a["entries"]
            .as_object()
            .ok_or_else(|| Error::new(format!("list answer without entries: {a}")))?;
        Ok(map
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect())
    }

    /// `Peers(network)`: names of the active members of a network, sorted.
    ///
    /// # Errors
    /// On timeout.
    pub fn ndb_peers(&self, network: &str) -> Result<Vec<String>> {
        let cmd = json!({"cmd": "peers", "network": network});
        let a = self.request(&cmd, |e| e["ev"] == "peers", CMD_TIMEOUT)?;
        Ok(a["peers"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Every table event printed so far, in order.
    pub fn table_events(&self) -> Vec<TableEvent> {
        self.with_view(|v| {
            v.events
                .iter()
                .filter(|e| e["ev"] == "table_event")
                .map(|e| TableEvent {
                    op: e["op"].as_str().unwrap_or_default().to_string(),
                    network: e["network"].as_str().unwrap_or_default().to_string(),
                    table: e["table"].as_str().unwrap_or_default().to_string(),
                    key: e["key"].as_str().unwrap_or_default().to_string(),
                    value: opt_text(&e["value"]),
                    prev: opt_text(&e["prev"]),
                    ts_ns: e["ts_ns"].as_u64().unwrap_or_default(),
                })
                .collect()
        })
    }
}
