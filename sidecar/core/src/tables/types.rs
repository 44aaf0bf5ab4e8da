//! Public value types of the tables core: outputs, watch events, entries,
//! errors and statistics.

use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Identifies a reliable send, so its failure can be reported back with
/// [`crate::tables::Tables::handle_send_result`].
pub type SendId = u64;

/// An instruction from the core to its shell.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Send `data` to the member `to` as a memberlist user message:
    /// best-effort (one UDP packet, `SendBestEffort`) or reliable (a stream,
    /// `SendReliable`). A reliable send that fails MUST be reported with
    /// `handle_send_result(id, Err(..))`; success needs no report.
    Send {
        /// Correlates a failure report.
        id: SendId,
        /// The member's name.
        to: String,
        /// A wrapped NetworkDB message.
        data: Vec<u8>,
        /// Stream (true) or single packet (false).
        reliable: bool,
    },
    /// Try to rejoin the failed member `node` at its last known address
    /// (libnetwork's `reconnectNode`: a memberlist join), then report with
    /// [`crate::tables::Tables::handle_reconnect_result`].
    Reconnect {
        /// The member's name.
        node: String,
        /// Its last known address, kept by the tables themselves: the
        /// membership layer forgets a dead member after the
        /// gossip-to-the-dead time, long before the node reap interval.
        addr: SocketAddr,
    },
    /// A visible entry changed.
    Watch(WatchEvent),
}

/// How a visible entry changed. Entries whose owner failed are hidden
/// (reported deleted) and come back (reported created) if it returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// The key became visible.
    Created {
        /// Its value.
        value: Vec<u8>,
    },
    /// The value of a visible key changed.
    Updated {
        /// The value watchers saw before.
        prev: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
    },
    /// The key stopped being visible.
    Deleted {
        /// The value watchers saw last.
        prev: Vec<u8>,
    },
}

/// A change of one entry, local or remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// Network id.
    pub network: String,
    /// Table name.
    pub table: String,
    /// Entry key.
    pub key: String,
    /// The node whose write this is (this node for local writes).
    pub owner: String,
    /// What happened.
    pub change: Change,
}

/// A visible entry, as [`crate::tables::Tables::get_entry`] and
/// [`crate::tables::Tables::list_table`] return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryView {
    /// The value.
    pub value: Vec<u8>,
    /// The node that wrote it last.
    pub owner: String,
    /// Its Lamport time (table clock).
    pub ltime: u64,
}

/// Errors from application calls. Each names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TablesError {
    /// A network id, table name or key is empty.
    #[error("the {0} is empty: give a non-empty name")]
    EmptyName(&'static str),
    /// The network is not joined (or is being left).
    #[error("network {0:?} is not joined: join it first")]
    NotJoined(String),
    /// The network is already joined.
    #[error("network {0:?} is already joined")]
    AlreadyJoined(String),
    /// Create of a key that is visible.
    #[error(
        "entry {key:?} already exists in table {table:?} of network {network:?}: update it instead"
    )]
    AlreadyExists {
        /// Network id.
        network: String,
        /// Table name.
        table: String,
        /// Key.
        key: String,
    },
    /// Update or delete of a key that is not visible.
    #[error("entry {key:?} does not exist in table {table:?} of network {network:?}")]
    NotFound {
        /// Network id.
        network: String,
        /// Table name.
        table: String,
        /// Key.
        key: String,
    },
    /// The encoded table event would not fit one gossip packet.
    #[error(
        "entry {key:?} encodes to {size} bytes, over the limit of {limit} bytes \
         (packet budget less headers): shorten the value or the key"
    )]
    TooLarge {
        /// Key.
        key: String,
        /// Encoded table event size.
        size: usize,
        /// The largest that fits.
        limit: usize,
    },
}

/// Counters and sizes for one joined network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Visible entries, all tables.
    pub entries: usize,
    /// Tombstones awaiting the reaper.
    pub tombstones: usize,
    /// Entries kept but hidden because their owner failed.
    pub hidden: usize,
    /// Members of the network that are gossip peers (this node included).
    pub peers: usize,
    /// Own table events queued for gossip.
    pub queued: usize,
    /// Relayed table events queued for gossip.
    pub queued_relays: usize,
    /// Table events gossiped so far.
    pub messages_sent: u64,
    /// True when the network is being left.
    pub leaving: bool,
    /// True once the join's bulk syncs have finished.
    pub in_sync: bool,
}

/// Counters of the whole core.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Per joined network.
    pub networks: BTreeMap<String, NetworkStats>,
    /// Network and node events queued for memberlist's gossip.
    pub queued_cluster_events: usize,
    /// Members known active, failed and left.
    pub nodes_active: usize,
    /// Members failed and not yet reaped.
    pub nodes_failed: usize,
    /// Members left and not yet reaped.
    pub nodes_left: usize,
    /// Messages (and compound parts) that failed to decode.
    pub malformed: u64,
    /// Bulk syncs sent (solicited or not).
    pub bulk_syncs_sent: u64,
    /// Bulk syncs received.
    pub bulk_syncs_received: u64,
    /// Unsolicited bulk syncs that failed or got no answer in time.
    pub bulk_sync_failures: u64,
    /// Bulk syncs still waiting for an answer.
    pub bulk_syncs_pending: usize,
    /// Eager pushes sent (one per network and batching window, see
    /// `Config::eager_push`).
    pub eager_pushes: u64,
}
