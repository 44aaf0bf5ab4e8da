//! The sidecar's static configuration: a YAML file (standalone mode), the
//! embedded default used by the demo, and command-line overrides.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::keyring::Key;
use crate::membership::{Config, Profile};

/// The embedded default configuration: a node on loopback, LAN profile.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.yaml");

/// The configuration file's shape (see DESIGN.md). Unknown keys are
/// refused so that a typo is an error, not a silent default.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Cluster name; with `namespace` it makes the default label.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// Cluster label override; empty means no label.
    #[serde(default)]
    pub label: Option<String>,
    /// This node.
    #[serde(default)]
    pub node: NodeSection,
    /// Gossip profile: lan, wan or local.
    #[serde(default = "default_profile")]
    pub profile: Profile,
    /// Seeds to join at start, `host:port`; names are resolved at start.
    #[serde(default)]
    pub peers: Vec<String>,
    /// Optional overrides of the profile's timings.
    #[serde(default)]
    pub tuning: Tuning,
    /// The keyring, first key primary; empty: no encryption.
    #[serde(default)]
    pub keys: Vec<KeyFile>,
    /// With keys, refuse plain gossip (memberlist `GossipVerifyIncoming`);
    /// default true.
    #[serde(default)]
    pub verify_incoming: Option<bool>,
    /// With keys, encrypt what is sent (memberlist `GossipVerifyOutgoing`);
    /// default true.
    #[serde(default)]
    pub verify_outgoing: Option<bool>,
    /// Run membership and tables exactly as hashicorp/memberlist v0.7.0
    /// and libnetwork's NetworkDB do: no catch-up push/pulls after member
    /// list changes, no transmit floor, no eager pushes of table events.
    /// Default false (Gossamer's faster convergence; the same messages).
    #[serde(default)]
    pub memberlist_exact: bool,
    /// NetworkDB networks joined at start.
    #[serde(default)]
    pub networks: Vec<NetworkSection>,
    /// The local table API; absent: not served.
    #[serde(default)]
    pub api: Option<ApiSection>,
    /// Metrics and the periodic stats log.
    #[serde(default)]
    pub metrics: MetricsSection,
}

/// The `metrics` section.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// `IP:PORT` serving `GET /metrics` (OpenMetrics text); absent: off.
    #[serde(default)]
    pub listen: Option<String>,
    /// Seconds between stats log lines; 0 turns them off.
    #[serde(default = "default_stats_interval")]
    pub log_interval_secs: u64,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            listen: None,
            log_interval_secs: default_stats_interval(),
        }
    }
}

fn default_stats_interval() -> u64 {
    60
}

/// One network joined at start (`networks: [{name, tables: [..]}]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// The network id (as NetworkDB's; keep ids not prefixes of each other
    /// when Go NetworkDB peers take part).
    pub name: String,
    /// The tables the application uses in it. NetworkDB tables need no
    /// creation; the list documents the intent and is logged at start.
    #[serde(default)]
    pub tables: Vec<String>,
}

/// The `api` section.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// `IP:PORT` (loopback, normally) or `unix:PATH`.
    pub listen: String,
}

/// One keyring entry: a file holding exactly 16, 24 or 32 raw key bytes
/// (AES-128/192/256), as a Kubernetes Secret mounted as a file holds them.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// Path of the key file.
    pub file: PathBuf,
}

/// Reads a key file: exactly 16, 24 or 32 raw bytes.
///
/// # Errors
/// The file cannot be read, or holds another number of bytes; the error
/// names the file and the length found, never the bytes.
pub fn load_key_file(path: &Path) -> Result<Key, SettingsError> {
    let bytes = std::fs::read(path).map_err(|source| SettingsError::KeyFileRead {
        path: path.to_path_buf(),
        source,
    })?;
    Key::new(&bytes).map_err(|_| SettingsError::KeyFileLength {
        path: path.to_path_buf(),
        len: bytes.len(),
        looks_like_text: bytes
            .iter()
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace()),
    })
}

/// The `node` section.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// Node name; default a random 12-hex-character id.
    #[serde(default)]
    pub name: Option<String>,
    /// Bind address for UDP and TCP.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// Address told to peers; default the bind address.
    #[serde(default)]
    pub advertise: Option<String>,
    /// Metadata (the pod or host name goes here by default).
    #[serde(default)]
    pub meta: Option<String>,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            name: None,
            bind: default_bind(),
            advertise: None,
            meta: None,
        }
    }
}

/// Timing overrides, in milliseconds.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Tuning {
    /// Probe interval.
    pub probe_interval_ms: Option<u64>,
    /// Probe timeout.
    pub probe_timeout_ms: Option<u64>,
    /// Gossip interval.
    pub gossip_interval_ms: Option<u64>,
    /// Push/pull interval.
    pub push_pull_interval_ms: Option<u64>,
    /// Suspicion multiplier.
    pub suspicion_mult: Option<usize>,
    /// Protocol version spoken.
    pub protocol_version: Option<u8>,
    /// Compress packets and streams.
    pub compression: Option<bool>,
}

fn default_cluster() -> String {
    "default".into()
}
fn default_profile() -> Profile {
    Profile::Lan
}
fn default_bind() -> String {
    "127.0.0.1:7946".into()
}

/// A short random node id: 12 hex characters, as NetworkDB's node ids.
#[allow(clippy::disallowed_methods)] // start-up, outside the core
pub fn random_node_name() -> String {
    let v: u64 = rand::random();
    format!("{:012x}", v & 0xffff_ffff_ffff)
}

/// The pod or host name, carried in node metadata by default so that the
/// node name can stay a short id: `POD_NAME` (set by the chart from the
/// downward API), else `HOSTNAME`, else the kernel's host name.
pub fn host_identity() -> String {
    let from_env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let name = from_env("POD_NAME")
        .or_else(|| from_env("HOSTNAME"))
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    // Metadata is capped at 512 bytes; a host name is at most 253.
    name.chars().take(253).collect()
}

/// Resolves `host:port` (a DNS name or an IP).
///
/// # Errors
/// The text is not `host:port`, or the name does not resolve.
pub fn resolve(addr: &str) -> Result<SocketAddr, SettingsError> {
    addr.to_socket_addrs()
        .map_err(|source| SettingsError::Resolve {
            addr: addr.to_string(),
            source,
        })?
        .next()
        .ok_or_else(|| SettingsError::ResolvedToNothing(addr.to_string()))
}

/// Why a configuration file (or a piece of one) is refused. Variant names
/// fit metric labels; the texts name the value and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A key file cannot be read.
    #[error("cannot read key file {}: {source}", path.display())]
    KeyFileRead {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A key file of the wrong length. The text gives the length, never
    /// the bytes.
    #[error(
        "key file {} holds {len} bytes; a key file must hold exactly 16, 24 or 32 raw bytes \
         (e.g. `head -c 32 /dev/urandom > FILE`).{}",
        path.display(),
        if *looks_like_text {
            " It looks like text: the file must hold the raw key bytes, not hex or base64 \
             (decode hex with `xxd -r -p`, base64 with `base64 -d`), with no trailing newline."
        } else {
            ""
        }
    )]
    KeyFileLength {
        /// The file.
        path: std::path::PathBuf,
        /// Bytes found.
        len: usize,
        /// Whether the bytes are all printable text (likely hex or base64).
        looks_like_text: bool,
    },
    /// A `host:port` that does not resolve.
    #[error("cannot resolve {addr:?}: {source}; expected host:port")]
    Resolve {
        /// The text given.
        addr: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// A name that resolved to no address.
    #[error("{0:?} resolved to no address")]
    ResolvedToNothing(String),
    /// Malformed YAML or an unknown key.
    #[error("invalid configuration: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// A network without a name.
    #[error("networks[{0}].name is empty: give the network an id")]
    EmptyNetworkName(usize),
    /// A network listed twice.
    #[error("network {0:?} is listed twice in networks")]
    DuplicateNetwork(String),
    /// A table without a name.
    #[error("networks[{network}].tables[{table}] is empty: give the table a name")]
    EmptyTableName {
        /// Index of the network.
        network: usize,
        /// Index of the table.
        table: usize,
    },
    /// `node.bind` is not IP:PORT.
    #[error("node.bind {value:?} is not IP:PORT ({source}); example: 127.0.0.1:7946")]
    Bind {
        /// The text given.
        value: String,
        /// The parse error.
        source: std::net::AddrParseError,
    },
    /// `node.advertise` does not resolve.
    #[error("node.advertise: {0}")]
    Advertise(Box<SettingsError>),
    /// A value the core refuses.
    #[error(transparent)]
    Core(#[from] gossamer_core::membership::ConfigError),
}

impl FileConfig {
    /// Parses YAML.
    ///
    /// # Errors
    /// The YAML is malformed or has unknown keys; the message says where.
    pub fn parse(text: &str) -> Result<Self, SettingsError> {
        Ok(serde_yaml_ng::from_str(text)?)
    }

    /// The embedded default.
    pub fn embedded() -> Self {
        // The embedded file is checked by a unit test; fall back to defaults
        // rather than panic if it were ever broken.
        Self::parse(EMBEDDED_DEFAULT).unwrap_or_else(|_| FileConfig {
            cluster: default_cluster(),
            label: None,
            node: NodeSection::default(),
            profile: Profile::Lan,
            peers: Vec::new(),
            keys: Vec::new(),
            verify_incoming: None,
            verify_outgoing: None,
            memberlist_exact: false,
            tuning: Tuning::default(),
            networks: Vec::new(),
            api: None,
            metrics: MetricsSection::default(),
        })
    }

    /// The networks to join at start, checked.
    ///
    /// # Errors
    /// An empty or repeated network name, or an empty table name.
    pub fn start_networks(&self) -> Result<Vec<String>, SettingsError> {
        let mut out: Vec<String> = Vec::new();
        for (i, n) in self.networks.iter().enumerate() {
            if n.name.is_empty() {
                return Err(SettingsError::EmptyNetworkName(i));
            }
            if out.contains(&n.name) {
                return Err(SettingsError::DuplicateNetwork(n.name.clone()));
            }
            if let Some(j) = n.tables.iter().position(String::is_empty) {
                return Err(SettingsError::EmptyTableName {
                    network: i,
                    table: j,
                });
            }
            out.push(n.name.clone());
        }
        Ok(out)
    }

    /// Builds the core configuration and the bind address.
    ///
    /// # Errors
    /// An address that does not parse, or a value the core refuses.
    pub fn to_config(&self) -> Result<(Config, SocketAddr), SettingsError> {
        let bind: SocketAddr = self
            .node
            .bind
            .parse()
            .map_err(|source| SettingsError::Bind {
                value: self.node.bind.clone(),
                source,
            })?;
        let advertise = match &self.node.advertise {
            Some(a) => resolve(a).map_err(|e| SettingsError::Advertise(Box::new(e)))?,
            None => bind,
        };
        let name = self.node.name.clone().unwrap_or_else(random_node_name);
        let mut cfg = Config::for_profile(self.profile, name, advertise);
        cfg.label = self.label.clone().unwrap_or_default();
        cfg.meta = self
            .node
            .meta
            .clone()
            .unwrap_or_else(host_identity)
            .into_bytes();
        let t = &self.tuning;
        if let Some(v) = t.probe_interval_ms {
            cfg.probe_interval = Duration::from_millis(v);
        }
        if let Some(v) = t.probe_timeout_ms {
            cfg.probe_timeout = Duration::from_millis(v);
        }
        if let Some(v) = t.gossip_interval_ms {
            cfg.gossip_interval = Duration::from_millis(v);
        }
        if let Some(v) = t.push_pull_interval_ms {
            cfg.push_pull_interval = Duration::from_millis(v);
        }
        if let Some(v) = t.suspicion_mult {
            cfg.suspicion_mult = v;
        }
        if let Some(v) = t.protocol_version {
            cfg.protocol_version = v;
        }
        if let Some(v) = t.compression {
            cfg.enable_compression = v;
        }
        for k in &self.keys {
            cfg.keys.push(load_key_file(&k.file)?);
        }
        if let Some(v) = self.verify_incoming {
            cfg.gossip_verify_incoming = v;
        }
        if let Some(v) = self.verify_outgoing {
            cfg.gossip_verify_outgoing = v;
        }
        cfg.memberlist_exact = self.memberlist_exact;
        cfg.validate()?;
        Ok((cfg, bind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses_and_validates() {
        let f = FileConfig::parse(EMBEDDED_DEFAULT).unwrap();
        let (cfg, bind) = f.to_config().unwrap();
        assert_eq!(bind.ip().to_string(), "127.0.0.1");
        assert_eq!(cfg.name.len(), 12);
    }

    #[test]
    fn memberlist_exact_is_off_unless_asked_for() {
        let (cfg, _) = FileConfig::parse("profile: local\n")
            .unwrap()
            .to_config()
            .unwrap();
        assert!(!cfg.memberlist_exact);
        let (cfg, _) = FileConfig::parse("memberlist_exact: true\n")
            .unwrap()
            .to_config()
            .unwrap();
        assert!(cfg.memberlist_exact);
        assert!(gossamer_core::node::tables_config(&cfg)
            .eager_push
            .is_none());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = FileConfig::parse("cluster: a\nnode: {nmae: x}\n").unwrap_err();
        assert!(matches!(e, SettingsError::Yaml(_)), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("nmae"), "{e}");
        let e = FileConfig::parse("profile: fast\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("fast") || e.contains("variant"), "{e}");
        let f = FileConfig::parse("node: {bind: 'nowhere'}\n").unwrap();
        let e = f.to_config().unwrap_err();
        assert!(matches!(e, SettingsError::Bind { .. }), "{e:?}");
        assert!(e.to_string().contains("nowhere"), "{e}");
        let f = FileConfig::parse("tuning: {protocol_version: 9}\n").unwrap();
        let e = f.to_config().unwrap_err();
        assert!(matches!(e, SettingsError::Core(_)), "{e:?}");
        assert!(e.to_string().contains("protocol_version 9"), "{e}");
        let f = FileConfig::parse("networks: [{name: a}, {name: a}]\n").unwrap();
        let e = f.start_networks().unwrap_err();
        assert!(
            matches!(&e, SettingsError::DuplicateNetwork(n) if n == "a"),
            "{e:?}"
        );
    }

    #[test]
    fn metadata_defaults_to_the_host_identity() {
        let f = FileConfig::parse("node: {name: n1}\n").unwrap();
        let (cfg, _) = f.to_config().unwrap();
        assert_eq!(cfg.meta, host_identity().into_bytes());
        assert!(!cfg.meta.is_empty(), "a host always has a name");
        let f = FileConfig::parse("node: {meta: 'pod=web-0'}\n").unwrap();
        assert_eq!(f.to_config().unwrap().0.meta, b"pod=web-0");
    }

    #[test]
    fn key_files_are_raw_bytes_and_errors_never_show_them() {
        let dir = std::env::temp_dir().join(format!("gossamer-keyfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("k32");
        std::fs::write(&good, [0x5au8; 32]).unwrap();
        let text = dir.join("khex");
        let hex_text = "00112233445566778899aabbccddeeff\n";
        std::fs::write(&text, hex_text).unwrap();
        let yaml = format!(
            "keys: [{{file: {}}}]\nverify_incoming: false\n",
            good.display()
        );
        let (cfg, _) = FileConfig::parse(&yaml).unwrap().to_config().unwrap();
        assert_eq!(cfg.keys.len(), 1);
        assert_eq!(cfg.keys[0].len(), 32);
        assert!(!cfg.gossip_verify_incoming);
        assert!(cfg.gossip_verify_outgoing);
        let e = load_key_file(&text).unwrap_err();
        assert!(
            matches!(
                e,
                SettingsError::KeyFileLength {
                    len: 33,
                    looks_like_text: true,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = e.to_string();
        assert!(e.contains("khex") && e.contains("holds 33 bytes"), "{e}");
        assert!(e.contains("raw key bytes"), "{e}");
        assert!(!e.contains(hex_text.trim()), "{e}");
        let e = load_key_file(&dir.join("missing")).unwrap_err();
        assert!(matches!(e, SettingsError::KeyFileRead { .. }), "{e:?}");
        assert!(e.to_string().contains("missing"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn networks_and_api_sections() {
        let f = FileConfig::parse(
            "networks: [{name: endpoints, tables: [backends, health]}, {name: b}]\napi: {listen: '127.0.0.1:7947'}\n",
        )
        .unwrap();
        assert_eq!(f.start_networks().unwrap(), ["endpoints", "b"]);
        assert_eq!(f.networks[0].tables, ["backends", "health"]);
        assert_eq!(f.api.unwrap().listen, "127.0.0.1:7947");
        let f = FileConfig::parse("networks: [{name: a}, {name: a}]\n").unwrap();
        assert!(f
            .start_networks()
            .unwrap_err()
            .to_string()
            .contains("\"a\" is listed twice"));
        let f = FileConfig::parse("networks: [{name: ''}]\n").unwrap();
        assert!(f
            .start_networks()
            .unwrap_err()
            .to_string()
            .contains("networks[0].name"));
        let e = FileConfig::parse("api: {lisen: x}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lisen"), "{e}");
    }

    #[test]
    fn random_names_are_12_hex() {
        let n = random_node_name();
        assert_eq!(n.len(), 12);
        assert!(n.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
