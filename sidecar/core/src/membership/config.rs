//! Membership configuration and memberlist's three default profiles.

use std::net::SocketAddr;
use std::time::Duration;

use crate::keyring::Key;

/// Lowest protocol version this implementation understands.
pub const PROTOCOL_VERSION_MIN: u8 = 1;
/// Highest protocol version this implementation understands (CRC from 5 on).
pub const PROTOCOL_VERSION_MAX: u8 = 5;
/// The protocol version spoken by default, as memberlist's `ProtocolVersion2Compatible`.
pub const PROTOCOL_VERSION_DEFAULT: u8 = 2;

/// Which of memberlist's default configurations to start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// `DefaultLANConfig`: 1 s probes, 200 ms gossip.
    Lan,
    /// `DefaultWANConfig`: slower, for high-latency links.
    Wan,
    /// `DefaultLocalConfig`: fast, for loopback and tests.
    Local,
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "lan" => Ok(Profile::Lan),
            "wan" => Ok(Profile::Wan),
            "local" => Ok(Profile::Local),
            other => Err(format!(
                "unknown profile {other:?}: expected one of lan, wan, local"
            )),
        }
    }
}

/// Everything the membership core needs to know; no I/O settings (bind
/// addresses, sockets) live here.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's name; MUST be unique in the cluster and short (it travels in every message).
    pub name: String,
    /// The address other members use to reach this node (UDP and TCP).
    pub advertise: SocketAddr,
    /// Cluster label; packets and streams with another label are refused.
    pub label: String,
    /// Protocol version spoken, between 2 and [`PROTOCOL_VERSION_MAX`].
    pub protocol_version: u8,
    /// Delegate protocol versions (min, max, current) advertised in `Vsn`.
    pub delegate_versions: [u8; 3],
    /// Node metadata, at most [`crate::wire::META_MAX_SIZE`] bytes.
    pub meta: Vec<u8>,
    /// Deadline for a stream (push/pull, TCP ping, reliable message).
    pub tcp_timeout: Duration,
    /// Members asked to ping a target indirectly.
    pub indirect_checks: usize,
    /// Broadcasts are sent `retransmit_mult * ceil(log10(n + 1))` times.
    pub retransmit_mult: usize,
    /// Suspicion timeout multiplier (Lifeguard's minimum timeout).
    pub suspicion_mult: usize,
    /// Maximum suspicion timeout, as a multiple of the minimum.
    pub suspicion_max_timeout_mult: usize,
    /// Full state exchange with one random member, scaled with cluster size; zero disables.
    pub push_pull_interval: Duration,
    /// Wait for a direct ack before trying indirect probes.
    pub probe_timeout: Duration,
    /// Time between probes (scaled by the awareness score).
    pub probe_interval: Duration,
    /// Do not try the TCP fallback ping.
    pub disable_tcp_pings: bool,
    /// Maximum awareness (health) multiplier of the probe interval.
    pub awareness_max_multiplier: usize,
    /// Members sent gossip each gossip interval.
    pub gossip_nodes: usize,
    /// Time between gossip rounds; zero disables gossip.
    pub gossip_interval: Duration,
    /// Dead members keep receiving gossip, and stay known, this long.
    pub gossip_to_the_dead_time: Duration,
    /// Compress outgoing packets and streams with LZW when it makes them smaller.
    pub enable_compression: bool,
    /// Budget of one UDP packet.
    pub udp_buffer_size: usize,
    /// A dead member's name may be claimed from a new address after this long
    /// (a left member's at once). memberlist disables reclaim by default; we
    /// allow it at once, since a restarted pod is a new incarnation of a name.
    pub dead_node_reclaim_time: Duration,
    /// Maximum queued membership broadcasts before the oldest are dropped.
    pub max_queued_broadcasts: usize,
    /// The keyring's keys, the first primary; empty means no encryption.
    /// `Debug` shows fingerprints only.
    pub keys: Vec<Key>,
    /// With keys installed, refuse packets and streams that are not
    /// encrypted (memberlist's `GossipVerifyIncoming`). Turned off while a
    /// running cluster moves from plain to encrypted gossip.
    pub gossip_verify_incoming: bool,
    /// With keys installed, encrypt what this node sends (memberlist's
    /// `GossipVerifyOutgoing`). Off: keys only decrypt.
    pub gossip_verify_outgoing: bool,
    /// Run exactly as memberlist v0.7.0 does: no catch-up push/pulls after
    /// membership changes, broadcasts spent on recently dead gossip
    /// targets as on live ones, and longer broadcasts sent before shorter
    /// ones sent as often. Off (Gossamer's default), a node that saw
    /// members join or leave exchanges state with a random member soon
    /// after (see `membership::catchup`), gossip to the dead does not
    /// use up the transmit budget, and the newest broadcast goes first. Both use only memberlist's own messages,
    /// so mixed clusters work either way.
    pub memberlist_exact: bool,
}

impl Config {
    /// memberlist's `DefaultLANConfig`.
    pub fn lan(name: impl Into<String>, advertise: SocketAddr) -> Self {
        Config {
            name: name.into(),
            advertise,
            label: String::new(),
            protocol_version: PROTOCOL_VERSION_DEFAULT,
            delegate_versions: [0, 0, 0],
            meta: Vec::new(),
            tcp_timeout: Duration::from_secs(10),
            indirect_checks: 3,
            retransmit_mult: 4,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            push_pull_interval: Duration::from_secs(30),
            probe_timeout: Duration::from_millis(500),
            probe_interval: Duration::from_secs(1),
            disable_tcp_pings: false,
            awareness_max_multiplier: 8,
            gossip_nodes: 3,
            gossip_interval: Duration::from_millis(200),
            gossip_to_the_dead_time: Duration::from_secs(30),
            enable_compression: true,
            udp_buffer_size: 1400,
            dead_node_reclaim_time: Duration::ZERO,
            max_queued_broadcasts: 1024,
            keys: Vec::new(),
            gossip_verify_incoming: true,
            gossip_verify_outgoing: true,
            memberlist_exact: false,
        }
    }

    /// memberlist's `DefaultWANConfig`.
    pub fn wan(name: impl Into<String>, advertise: SocketAddr) -> Self {
        Config {
            tcp_timeout: Duration::from_secs(30),
            suspicion_mult: 6,
            push_pull_interval: Duration::from_secs(60),
            probe_timeout: Duration::from_secs(3),
            probe_interval: Duration::from_secs(5),
            gossip_nodes: 4,
            gossip_interval: Duration::from_millis(500),
            gossip_to_the_dead_time: Duration::from_secs(60),
            ..Config::lan(name, advertise)
        }
    }

    /// memberlist's `DefaultLocalConfig`.
    pub fn local(name: impl Into<String>, advertise: SocketAddr) -> Self {
        Config {
            tcp_timeout: Duration::from_secs(1),
            indirect_checks: 1,
            retransmit_mult: 2,
            suspicion_mult: 3,
            push_pull_interval: Duration::from_secs(15),
            probe_timeout: Duration::from_millis(200),
            probe_interval: Duration::from_secs(1),
            gossip_interval: Duration::from_millis(100),
            gossip_to_the_dead_time: Duration::from_secs(15),
            ..Config::lan(name, advertise)
        }
    }

    /// The defaults of `profile`.
    pub fn for_profile(profile: Profile, name: impl Into<String>, advertise: SocketAddr) -> Self {
        match profile {
            Profile::Lan => Config::lan(name, advertise),
            Profile::Wan => Config::wan(name, advertise),
            Profile::Local => Config::local(name, advertise),
        }
    }

    /// Checks the values a person could get wrong; the error names the field,
    /// the value, and what is allowed.
    ///
    /// # Errors
    /// The first bad value, as a [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::EmptyName);
        }
        if self.name.len() > 255 {
            return Err(ConfigError::NameTooLong(self.name.len()));
        }
        if !(2..=PROTOCOL_VERSION_MAX).contains(&self.protocol_version) {
            return Err(ConfigError::ProtocolVersion(self.protocol_version));
        }
        if self.meta.len() > crate::wire::META_MAX_SIZE {
            return Err(ConfigError::MetaTooLarge(self.meta.len()));
        }
        if self.label.len() > 255 {
            return Err(ConfigError::LabelTooLong(self.label.len()));
        }
        if self.probe_interval.is_zero() || self.probe_timeout.is_zero() {
            return Err(ConfigError::ZeroProbeTiming);
        }
        if self.probe_timeout > self.probe_interval {
            return Err(ConfigError::ProbeTimeoutOverInterval {
                timeout: self.probe_timeout,
                interval: self.probe_interval,
            });
        }
        if self.udp_buffer_size < 512 {
            return Err(ConfigError::UdpBufferTooSmall(self.udp_buffer_size));
        }
        if self.awareness_max_multiplier == 0 {
            return Err(ConfigError::ZeroAwareness);
        }
        Ok(())
    }
}

/// Why a membership [`Config`] is refused. Variant names are stable and fit
/// metric labels; the texts name the value and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No node name.
    #[error("node name is empty: set a name or leave it unset for a random id")]
    EmptyName,
    /// A node name over 255 bytes.
    #[error("node name is {0} bytes long; keep it under 64 (it travels in every packet)")]
    NameTooLong(usize),
    /// A protocol version outside 2..=5.
    #[error("protocol_version {0} is not supported: use 2 to {max}", max = PROTOCOL_VERSION_MAX)]
    ProtocolVersion(u8),
    /// Node metadata over memberlist's limit.
    #[error("node metadata is {0} bytes, over the limit of {max} bytes", max = crate::wire::META_MAX_SIZE)]
    MetaTooLarge(usize),
    /// A label over 255 bytes.
    #[error("label is {0} bytes long, over the limit of 255")]
    LabelTooLong(usize),
    /// A zero probe interval or timeout.
    #[error("probe_interval and probe_timeout must be above zero")]
    ZeroProbeTiming,
    /// A probe timeout longer than the interval.
    #[error(
        "probe_timeout {timeout:?} is longer than probe_interval {interval:?}: it must be shorter"
    )]
    ProbeTimeoutOverInterval {
        /// `probe_timeout`.
        timeout: std::time::Duration,
        /// `probe_interval`.
        interval: std::time::Duration,
    },
    /// A UDP buffer under 512 bytes.
    #[error("udp_buffer_size {0} is too small: use at least 512")]
    UdpBufferTooSmall(usize),
    /// An awareness multiplier of zero.
    #[error("awareness_max_multiplier must be at least 1")]
    ZeroAwareness,
}
