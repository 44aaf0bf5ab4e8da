//! The infos' values, settings, errors and events.

use std::time::Duration;

/// A cluster-wide key -> value with a time to live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The key (UTF-8, at most [`Config::max_key_len`] bytes).
    pub key: String,
    /// The value (at most [`Config::max_value_len`] bytes). In a group, a
    /// decimal number in UTF-8 (`"42"`, `"-3.5"`).
    pub value: Vec<u8>,
    /// The node that wrote it.
    pub origin: String,
    /// When it was written: Unix milliseconds on the origin's wall clock.
    pub origin_ms: u64,
    /// Time to live from `origin_ms`, in milliseconds.
    pub ttl_ms: u64,
    /// Hops from the origin to this node (0 on the origin).
    pub hops: u32,
}

impl Info {
    /// The wall-clock time (Unix milliseconds) at which it expires.
    pub fn expires_ms(&self) -> u64 {
        self.origin_ms.saturating_add(self.ttl_ms)
    }

    /// Whether `self` replaces `old` (the same key): a newer origin
    /// timestamp wins; equal timestamps prefer fewer hops; then, so that
    /// every node picks the same one, the greater origin name and value.
    pub fn supersedes(&self, old: &Info) -> bool {
        (
            self.origin_ms,
            std::cmp::Reverse(self.hops),
            &self.origin,
            &self.value,
        ) > (
            old.origin_ms,
            std::cmp::Reverse(old.hops),
            &old.origin,
            &old.value,
        )
    }
}

/// How a group ranks its infos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupOrder {
    /// Keep the `limit` smallest values.
    Min,
    /// Keep the `limit` largest values.
    Max,
}

impl GroupOrder {
    /// `"min"` or `"max"`.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupOrder::Min => "min",
            GroupOrder::Max => "max",
        }
    }
}

/// A registered group: a key prefix whose infos are ranked by value and
/// cut to the best `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The key prefix.
    pub prefix: String,
    /// How many infos it keeps.
    pub limit: usize,
    /// Which ones.
    pub order: GroupOrder,
}

/// The infos' settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This node's name (the origin of its infos).
    pub node_name: String,
    /// Longest key, in bytes.
    pub max_key_len: usize,
    /// Longest value, in bytes: small enough that one info fits one
    /// gossip packet with room to spare.
    pub max_value_len: usize,
    /// Shortest time to live a write may ask for.
    pub min_ttl: Duration,
    /// Longest time to live a write may ask for.
    pub max_ttl: Duration,
    /// Largest group limit.
    pub max_group_limit: usize,
    /// Each info is piggybacked `retransmit_mult * ceil(log10(n + 1))` times
    /// by every node that accepts it (memberlist's rule), and at least
    /// `min_transmits` times.
    pub retransmit_mult: usize,
    /// The fewest times every node that accepts an info piggybacks it.
    /// memberlist's rule gives 4 below 10 members, where a node that every
    /// one of the few sends happens to miss learns the info only at the
    /// next push/pull (up to 30 s on LAN), after a short TTL has run out.
    pub min_transmits: usize,
}

impl Config {
    /// Defaults for node `node_name`: keys up to 256 bytes, values up to
    /// 512 bytes, TTLs from 1 s to 24 h, groups up to 1,000 infos.
    pub fn new(node_name: impl Into<String>) -> Self {
        Config {
            node_name: node_name.into(),
            max_key_len: 256,
            max_value_len: 512,
            min_ttl: Duration::from_secs(1),
            max_ttl: Duration::from_secs(24 * 3600),
            max_group_limit: 1000,
            retransmit_mult: 4,
            min_transmits: 12,
        }
    }
}

/// Why an infos call was refused. Variant names fit metric labels; every
/// message names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InfosError {
    /// An empty key.
    #[error("info key is empty: give a non-empty key")]
    EmptyKey,
    /// A key longer than allowed.
    #[error("info key {key:?} is {len} bytes, more than the {max}-byte limit")]
    KeyTooLong {
        /// The key (cut to 64 characters).
        key: String,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value longer than allowed.
    #[error("value of info {key:?} is {len} bytes, more than the {max}-byte limit")]
    ValueTooLarge {
        /// The key.
        key: String,
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A TTL outside the allowed range.
    #[error("TTL {ttl:?} of info {key:?} is out of range: use {min:?} to {max:?}")]
    TtlOutOfRange {
        /// The key.
        key: String,
        /// The TTL asked for.
        ttl: Duration,
        /// Shortest allowed.
        min: Duration,
        /// Longest allowed.
        max: Duration,
    },
    /// A value under a group's prefix that is not a number.
    #[error("info {key:?} belongs to group {prefix:?}, whose values must be decimal numbers; got {value:?}")]
    NotANumber {
        /// The key.
        key: String,
        /// The group's prefix.
        prefix: String,
        /// The value (lossy UTF-8, cut to 64 characters).
        value: String,
    },
    /// A group prefix that is empty.
    #[error("group prefix is empty: give a non-empty key prefix")]
    EmptyPrefix,
    /// A group limit outside the allowed range.
    #[error("group {prefix:?} limit {limit} is out of range: use 1 to {max}")]
    LimitOutOfRange {
        /// The prefix.
        prefix: String,
        /// The limit asked for.
        limit: usize,
        /// The largest allowed.
        max: usize,
    },
    /// A group prefix that is a prefix of a registered one, or has one as
    /// its prefix.
    #[error("group prefix {prefix:?} overlaps registered group {existing:?}: prefixes must not be prefixes of each other")]
    PrefixOverlap {
        /// The prefix asked for.
        prefix: String,
        /// The registered group it overlaps.
        existing: String,
    },
    /// A group that is not registered.
    #[error("no group is registered with prefix {prefix:?}")]
    NoSuchGroup {
        /// The prefix.
        prefix: String,
    },
    /// A write that its group ranks below its `limit` best, so it would be
    /// dropped at once.
    #[error("info {key:?} ranks below the {limit} best of group {prefix:?} and is not kept")]
    BelowGroupLimit {
        /// The key.
        key: String,
        /// The group.
        prefix: String,
        /// Its limit.
        limit: usize,
    },
}

/// What happened to an info, for watchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoChange {
    /// It was written (created or replaced), here or elsewhere.
    Put,
    /// Its TTL ran out.
    Expired,
    /// Its group dropped it for better ones.
    Evicted,
}

/// A change to an info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoEvent {
    /// What happened.
    pub change: InfoChange,
    /// The info (as it was, for `Expired` and `Evicted`).
    pub info: Info,
}

/// Counters and gauges, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Infos held.
    pub infos: usize,
    /// Largest hop count among the infos held (CockroachDB's MaxHops).
    pub max_hops: u32,
    /// Received infos that replaced what we held.
    pub accepted: u64,
    /// Received infos that did not (older, duplicates, expired, ranked out).
    pub ignored: u64,
    /// Infos dropped because their TTL ran out.
    pub expired: u64,
    /// Infos dropped by their group's limit.
    pub evicted: u64,
    /// Received infos that were malformed (bad key, value or number).
    pub malformed: u64,
}
