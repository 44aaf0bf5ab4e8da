//! NetworkDB configuration: libnetwork's defaults, every interval an input.

use std::time::Duration;

/// Everything the tables core needs to know. Defaults are libnetwork's
/// (`DefaultConfig`, `cluster.go`) on memberlist's LAN profile.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's name; MUST equal its memberlist name (table events and
    /// bulk syncs name their origin by it).
    pub node_name: String,
    /// Bytes one gossip compound message may take (libnetwork's
    /// `PacketBufferSize`).
    pub packet_budget: usize,
    /// How often queued table events are gossiped (memberlist `GossipInterval`).
    pub gossip_interval: Duration,
    /// Random members of each network that every gossip round goes to.
    pub gossip_fanout: usize,
    /// Retransmit multiplier: each event goes out
    /// `mult * ceil(log10(n + 1))` times for `n` nodes in scope.
    pub retransmit_mult: usize,
    /// How often each network is bulk synced with one random member
    /// (memberlist `PushPullInterval`).
    pub bulk_sync_interval: Duration,
    /// How long an unsolicited bulk sync waits for its answer before it
    /// counts as failed (libnetwork waits 30 s, blocking; here nothing
    /// blocks, see the module docs).
    pub bulk_sync_timeout: Duration,
    /// How long a tombstone lives before it is reaped.
    pub reap_entry_interval: Duration,
    /// How often the reaper runs.
    pub reap_period: Duration,
    /// How often a failed node is retried.
    pub retry_interval: Duration,
    /// How long a failed or left node (and the entries it owns) is remembered.
    pub node_reap_interval: Duration,
    /// Table events learned by bulk sync are not relayed while this many
    /// relays are queued for the network.
    pub max_rebroadcast_on_sync: usize,
    /// A table event new to this node (its own write, or another's it is
    /// the first to relay) is first sent to `gossip_fanout` members this
    /// long after it was queued, instead of at the next gossip round;
    /// events queued within the window share compound messages. `None`:
    /// only the gossip rounds send, as libnetwork does.
    pub eager_push: Option<Duration>,
    /// With [`Config::eager_push`] on, each table event is sent
    /// `ceil(eager_retransmit_mult * ceil(log10(n + 1)))` times for `n`
    /// members of its network (never fewer than `retransmit_mult`,
    /// libnetwork's own count under 10 members, nor more than
    /// libnetwork's count): eager pushes reach most members within a few
    /// windows, so the gossip rounds that follow are repair, and fewer of
    /// them keep the bytes per write at or under libnetwork's. Unused
    /// without eager pushes. Default 2.5: 5 sends from 10 to 99 members
    /// (libnetwork: 8), 8 from 100 to 999 (12).
    pub eager_retransmit_mult: f64,
    /// A network join from a node memberlist has not reported yet (its
    /// alive notice and the join race through gossip) is held this long,
    /// then applied and relayed once memberlist reports the node. `None`:
    /// dropped, as libnetwork does, so that such a node misses this
    /// member's table gossip until a bulk sync or push/pull repairs it.
    pub hold_early_joins: Option<Duration>,
    /// A network event new to this node that came in a push/pull is
    /// relayed as one that came by gossip: every attachment learned in a
    /// periodic or catch-up push/pull, and in a join's push/pull the
    /// sender's own. libnetwork relays none of them, so the nodes that
    /// learn a join that way stop its gossip instead of carrying it on,
    /// and a node that neither gossip nor a push/pull reached misses the
    /// member's table events until its next periodic push/pull.
    pub relay_push_pull_news: bool,
}

/// How many early network joins ([`Config::hold_early_joins`]) a node holds
/// at most; more are dropped, as libnetwork drops them all.
pub const MAX_EARLY_JOINS: usize = 4096;

/// Gossamer's batching window for [`Config::eager_push`]: long enough that
/// events arriving close together share a compound (a steady 20 writes/s
/// packs as tightly as libnetwork's gossip rounds do), short enough that
/// a write reaches 64 members in well under 300 ms.
pub const EAGER_PUSH_DELAY: Duration = Duration::from_millis(30);

impl Config {
    /// libnetwork's defaults for a node called `node_name`, with
    /// Gossamer's [`Config::eager_push`] on.
    pub fn new(node_name: impl Into<String>) -> Self {
        Config {
            node_name: node_name.into(),
            packet_budget: 1400,
            gossip_interval: Duration::from_millis(200),
            gossip_fanout: 3,
            retransmit_mult: 4,
            bulk_sync_interval: Duration::from_secs(30),
            bulk_sync_timeout: Duration::from_secs(30),
            reap_entry_interval: Duration::from_secs(30 * 60),
            reap_period: Duration::from_secs(5),
            retry_interval: Duration::from_secs(1),
            node_reap_interval: Duration::from_secs(24 * 60 * 60),
            max_rebroadcast_on_sync: 500,
            eager_push: Some(EAGER_PUSH_DELAY),
            eager_retransmit_mult: 2.5,
            hold_early_joins: Some(Duration::from_secs(30)),
            relay_push_pull_news: true,
        }
    }

    /// How long a left network is remembered: a little longer than a
    /// tombstone, so its entries are reaped first (libnetwork:
    /// `reapEntryInterval + 5 * reapPeriod`).
    pub fn reap_network_interval(&self) -> Duration {
        self.reap_entry_interval + 5 * self.reap_period
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// The first bad setting and its value, as a [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_name.is_empty() {
            return Err(ConfigError::EmptyNodeName);
        }
        if self.packet_budget < 128 {
            return Err(ConfigError::PacketBudget(self.packet_budget));
        }
        for (name, d) in [
            ("gossip_interval", self.gossip_interval),
            ("bulk_sync_interval", self.bulk_sync_interval),
            ("bulk_sync_timeout", self.bulk_sync_timeout),
            ("reap_period", self.reap_period),
            ("retry_interval", self.retry_interval),
        ] {
            if d.is_zero() {
                return Err(ConfigError::ZeroDuration(name));
            }
        }
        if self.reap_entry_interval < Duration::from_secs(2) {
            return Err(ConfigError::ReapEntryTooShort(self.reap_entry_interval));
        }
        Ok(())
    }
}

/// Why a tables [`Config`] is refused. Variant names are stable and fit
/// metric labels; the texts name the setting and its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No node name.
    #[error("node_name is empty: give the node its memberlist name")]
    EmptyNodeName,
    /// A packet budget under 128 bytes.
    #[error("packet_budget is {0} bytes: it must be at least 128 (1400 is the default)")]
    PacketBudget(usize),
    /// An interval or timeout of zero; names the setting.
    #[error("{0} is zero: it must be a positive duration")]
    ZeroDuration(&'static str),
    /// A tombstone lifetime under 2 s.
    #[error("reap_entry_interval is {0:?}: it must be at least 2 s, because tombstones travel with their residual reap time in whole seconds")]
    ReapEntryTooShort(Duration),
}
