//! `gossamer-sidecar`: the gossip node binary.

#![forbid(unsafe_code)]
#![allow(clippy::disallowed_methods)] // the binary is shell: it may read the clock

mod client;
mod demo;
mod simcmd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use gossamer_sidecar::keyring::{Key, KeyError};
use gossamer_sidecar::membership::{Event, Profile};
use gossamer_sidecar::settings::{self, FileConfig, SettingsError};
use gossamer_sidecar::{api, control, desired, join, metrics, runtime, stdio};
use tracing::{error, info};

#[derive(Parser, Debug)]
#[command(
    name = "gossamer-sidecar",
    version,
    about = "Gossamer gossip node (SWIM membership, memberlist-compatible)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run one node (from a config file, the embedded default, and flags).
    Run(Box<RunArgs>),
    /// Start a local cluster of nodes on loopback, kill one, and show it detected.
    Demo {
        /// Nodes to start.
        #[arg(long, default_value_t = 5)]
        nodes: usize,
    },
    /// Talk to a running sidecar's local API: put, list, members.
    Client(client::ClientArgs),
    /// Simulate a cluster in virtual time (deterministic) and measure
    /// convergence, failure detection, false positives and bandwidth.
    Sim(Box<simcmd::SimArgs>),
}

#[derive(clap::Args, Debug, Default)]
struct RunArgs {
    /// YAML configuration file; default: the embedded default.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Speak the JSON-lines control protocol on stdin/stdout (tests, demo).
    #[arg(long)]
    stdio: bool,
    /// Node name (default: random 12 hex characters).
    #[arg(long)]
    name: Option<String>,
    /// UDP and TCP bind address, IP:PORT (port 0: pick a free one).
    #[arg(long)]
    bind: Option<String>,
    /// Address told to peers.
    #[arg(long)]
    advertise: Option<String>,
    /// Profile: lan, wan or local.
    #[arg(long)]
    profile: Option<Profile>,
    /// Cluster label.
    #[arg(long)]
    label: Option<String>,
    /// Seed to join at start (repeatable).
    #[arg(long = "seed")]
    seeds: Vec<String>,
    /// Node metadata text.
    #[arg(long)]
    meta: Option<String>,
    /// Protocol version spoken (2..5).
    #[arg(long)]
    protocol_version: Option<u8>,
    /// Compress packets and streams.
    #[arg(long)]
    compression: Option<bool>,
    /// Probe interval override.
    #[arg(long)]
    probe_interval_ms: Option<u64>,
    /// Probe timeout override.
    #[arg(long)]
    probe_timeout_ms: Option<u64>,
    /// Gossip interval override.
    #[arg(long)]
    gossip_interval_ms: Option<u64>,
    /// Suspicion multiplier override.
    #[arg(long)]
    suspicion_mult: Option<usize>,
    /// Push/pull interval override.
    #[arg(long)]
    push_pull_interval_ms: Option<u64>,
    /// Seed of the node's RNG (default: random).
    #[arg(long)]
    rng_seed: Option<u64>,
    /// TTL of the cluster sentinel in milliseconds (partition detection:
    /// a node that sees it expire rejoins); 0 turns it off. Default 120000.
    #[arg(long)]
    sentinel_ttl_ms: Option<u64>,
    /// Keyring key as hex, 16, 24 or 32 bytes (repeatable, first is
    /// primary; replaces the config file's keys). For tests: a command line
    /// is visible to other local users; use `keys` files in production.
    #[arg(long = "key", value_name = "HEX")]
    keys: Vec<KeyArg>,
    /// With keys, refuse plain gossip (memberlist GossipVerifyIncoming).
    #[arg(long)]
    verify_incoming: Option<bool>,
    /// With keys, encrypt outgoing gossip (memberlist GossipVerifyOutgoing).
    #[arg(long)]
    verify_outgoing: Option<bool>,
    /// Run exactly as hashicorp/memberlist and libnetwork's NetworkDB do:
    /// no catch-up push/pulls, transmit floor or eager table pushes
    /// (overrides the config file's `memberlist_exact`).
    #[arg(long)]
    memberlist_exact: Option<bool>,
    /// Serve the local table API on IP:PORT or unix:PATH (overrides
    /// api.listen).
    #[arg(long)]
    api_listen: Option<String>,
    /// NetworkDB network to join at start (repeatable; replaces the config
    /// file's networks).
    #[arg(long = "network")]
    networks: Vec<String>,
    /// Serve Prometheus/OpenMetrics text at http://IP:PORT/metrics
    /// (overrides metrics.listen).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Seconds between stats log lines, 0 for none (overrides
    /// metrics.log_interval_secs).
    #[arg(long)]
    stats_interval_secs: Option<u64>,
    #[command(flatten)]
    control: ControlArgs,
}

/// Under an operator: where its control stream is and who this Pod is. The
/// Pod's identity comes from the downward API's environment variables.
#[derive(clap::Args, Debug, Default)]
struct ControlArgs {
    /// The operator's control stream, https://HOST:PORT; turns operator
    /// mode on (keys, networks and peers then come from the operator).
    #[arg(long, env = "GOSSAMER_CONTROL_ENDPOINT")]
    control_endpoint: Option<String>,
    /// PEM CA bundle of the operator (the ConfigMap gossamer-ca-bundle).
    #[arg(long, env = "GOSSAMER_CONTROL_CA", conflicts_with = "control_ca_pem")]
    control_ca: Option<PathBuf>,
    /// The same CA bundle as PEM text (what the injector sets: the CA
    /// certificate is public).
    #[arg(long, env = "GOSSAMER_CONTROL_CA_PEM", hide_env_values = true)]
    control_ca_pem: Option<String>,
    /// Projected ServiceAccount token, audience gossamer; re-read at every
    /// connect.
    #[arg(
        long,
        env = "GOSSAMER_CONTROL_TOKEN",
        default_value = "/var/run/secrets/gossamer/token"
    )]
    control_token: PathBuf,
    /// Allow an http:// endpoint: no TLS, keys in the clear. Development
    /// only; says so in the log at every start.
    #[arg(long)]
    control_insecure: bool,
    /// Gossip cluster (the Pod's gossamer.dev/cluster label).
    #[arg(long, env = "GOSSAMER_CLUSTER")]
    cluster: Option<String>,
    /// The Pod's name (also the node's memberlist name).
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
    /// The Pod's namespace.
    #[arg(long, env = "POD_NAMESPACE")]
    pod_namespace: Option<String>,
    /// Seconds between full resyncs with the operator (scaled up for
    /// clusters above 128 members).
    #[arg(long, default_value_t = 60)]
    control_resync_secs: u64,
}

/// A `--key` value. Parsing never fails here (clap would quote the value in
/// its error); [`KeyArg::key`] checks it without echoing it, and `Debug`
/// never shows it.
#[derive(Clone, Default)]
struct KeyArg(String);

impl std::str::FromStr for KeyArg {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(KeyArg(s.to_string()))
    }
}

impl std::fmt::Debug for KeyArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyArg(<redacted>)")
    }
}

impl KeyArg {
    /// The key; `index` counts the `--key` flags from 0.
    fn key(&self, index: usize) -> Result<Key, RunError> {
        Key::from_hex(&self.0).map_err(|source| RunError::Key {
            number: index + 1,
            source,
        })
    }
}

/// Why `run` could not start or stopped. The texts name the flag, file or
/// setting and the offending value (never key bytes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A `--key` value is no key (the error shows its length only).
    #[error("--key number {number}: {source}")]
    Key {
        /// Which `--key` flag, counted from 1.
        number: usize,
        /// What is wrong with it.
        source: KeyError,
    },
    /// The `--config` file cannot be read.
    #[error("cannot read config file {}: {source}", path.display())]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The `--config` file is not a valid configuration.
    #[error("{}: {source}", path.display())]
    ParseConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong in it.
        source: SettingsError,
    },
    /// The configuration (file and flags together) is not valid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// `api.listen` (or `--api-listen`) is no listen address.
    #[error("api.listen: {0}")]
    ApiListen(#[source] api::ListenError),
    /// The table API cannot be bound.
    #[error(transparent)]
    ApiBind(api::ListenError),
    /// `metrics.listen` (or `--metrics-listen`) is no `IP:PORT`.
    #[error("metrics.listen {value:?} is not IP:PORT ({source}); example: 127.0.0.1:9946")]
    MetricsListen {
        /// The text given.
        value: String,
        /// Why it is no address.
        source: std::net::AddrParseError,
    },
    /// The metrics endpoint cannot be bound.
    #[error(transparent)]
    MetricsBind(#[from] metrics::BindError),
    /// The node could not start.
    #[error(transparent)]
    Start(#[from] runtime::StartError),
    /// `--sentinel-ttl-ms` is out of range.
    #[error("--sentinel-ttl-ms: {0}")]
    Sentinel(#[source] gossamer_core::infos::InfosError),
    /// The node stopped while starting.
    #[error("the node stopped while starting")]
    Stopped,
    /// The start configuration cannot be observed or applied on the node.
    #[error(transparent)]
    Apply(#[from] control::apply::ApplyError),
    /// No plan leads from the node's state to the start configuration.
    #[error(transparent)]
    Plan(#[from] desired::PlanError),
    /// `--control-endpoint` is plain http without `--control-insecure`.
    #[error(
        "--control-endpoint {endpoint} is plain http: keys would travel in the clear; use \
         https:// with --control-ca, or add --control-insecure on a test machine"
    )]
    PlainControl {
        /// The endpoint given.
        endpoint: String,
    },
    /// Operator mode without one of the Pod's identity settings.
    #[error("operator mode needs {flag} (or {env}): set it from the downward API")]
    MissingIdentity {
        /// The flag.
        flag: &'static str,
        /// The environment variable that can set it instead.
        env: &'static str,
    },
    /// A `--label` (or `label:`) other than the one operator mode gossips with.
    #[error(
        "label {label:?} conflicts with operator mode, which gossips with {operator:?} \
         (namespace/cluster); drop --label"
    )]
    LabelConflict {
        /// The label given.
        label: String,
        /// `<namespace>/<cluster>`.
        operator: String,
    },
    /// SIGTERM cannot be watched.
    #[error("cannot watch SIGTERM: {0}")]
    Signal(#[source] std::io::Error),
}

/// What a subcommand run on the runtime failed with.
#[derive(Debug, thiserror::Error)]
enum CmdError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Demo(#[from] demo::DemoError),
    #[error(transparent)]
    Client(#[from] client::ClientError),
}

impl RunArgs {
    fn file_config(&self) -> Result<FileConfig, RunError> {
        let mut f = match &self.config {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| RunError::ReadConfig {
                        path: path.clone(),
                        source,
                    })?;
                FileConfig::parse(&text).map_err(|source| RunError::ParseConfig {
                    path: path.clone(),
                    source,
                })?
            }
            None => FileConfig::embedded(),
        };
        if let Some(v) = &self.name {
            f.node.name = Some(v.clone());
        }
        if let Some(v) = &self.bind {
            f.node.bind = v.clone();
        }
        if let Some(v) = &self.advertise {
            f.node.advertise = Some(v.clone());
        }
        if let Some(v) = self.profile {
            f.profile = v;
        }
        if let Some(v) = &self.label {
            f.label = Some(v.clone());
        }
        if !self.seeds.is_empty() {
            f.peers = self.seeds.clone();
        }
        if let Some(v) = &self.meta {
            f.node.meta = Some(v.clone());
        }
        if let Some(v) = &self.api_listen {
            f.api = Some(settings::ApiSection { listen: v.clone() });
        }
        if let Some(v) = &self.metrics_listen {
            f.metrics.listen = Some(v.clone());
        }
        if let Some(v) = self.stats_interval_secs {
            f.metrics.log_interval_secs = v;
        }
        if !self.networks.is_empty() {
            f.networks = self
                .networks
                .iter()
                .map(|n| settings::NetworkSection {
                    name: n.clone(),
                    tables: Vec::new(),
                })
                .collect();
        }
        let t = &mut f.tuning;
        t.protocol_version = self.protocol_version.or(t.protocol_version);
        t.compression = self.compression.or(t.compression);
        t.probe_interval_ms = self.probe_interval_ms.or(t.probe_interval_ms);
        t.probe_timeout_ms = self.probe_timeout_ms.or(t.probe_timeout_ms);
        t.gossip_interval_ms = self.gossip_interval_ms.or(t.gossip_interval_ms);
        t.suspicion_mult = self.suspicion_mult.or(t.suspicion_mult);
        t.push_pull_interval_ms = self.push_pull_interval_ms.or(t.push_pull_interval_ms);
        Ok(f)
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: logs captured to files stay greppable.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Operator mode: the settings of the control client, with the file
/// adjusted so that the node's name is the Pod's and its label keeps the
/// cluster apart (`<namespace>/<cluster>`). `None` in standalone mode.
fn control_settings(
    args: &RunArgs,
    file: &mut FileConfig,
) -> Result<Option<control::ControlSettings>, RunError> {
    let c = &args.control;
    let Some(endpoint) = c.control_endpoint.clone() else {
        return Ok(None);
    };
    if endpoint.starts_with("http://") && !c.control_insecure {
        return Err(RunError::PlainControl { endpoint });
    }
    let need = |v: &Option<String>, flag: &'static str, env: &'static str| {
        v.clone()
            .filter(|s| !s.is_empty())
            .ok_or(RunError::MissingIdentity { flag, env })
    };
    let identity = control::Identity {
        cluster: need(&c.cluster, "--cluster", "GOSSAMER_CLUSTER")?,
        namespace: need(&c.pod_namespace, "--pod-namespace", "POD_NAMESPACE")?,
        pod_name: need(&c.pod_name, "--pod-name", "POD_NAME")?,
        node_name: String::new(),
        advertise: String::new(),
    };
    let label = identity.label();
    match &file.label {
        Some(l) if *l != label => {
            return Err(RunError::LabelConflict {
                label: l.clone(),
                operator: label,
            })
        }
        _ => file.label = Some(label),
    }
    if file.node.name.is_none() {
        file.node.name = Some(identity.pod_name.clone());
    }
    Ok(Some(control::ControlSettings {
        endpoint,
        ca: match (&c.control_ca, &c.control_ca_pem) {
            (Some(path), _) => Some(control::CaBundle::File(path.clone())),
            (None, Some(pem)) => Some(control::CaBundle::Pem(pem.clone())),
            (None, None) => None,
        },
        token_file: c.control_token.clone(),
        identity,
        build_version: env!("CARGO_PKG_VERSION").to_string(),
        resync: Duration::from_secs(c.control_resync_secs.max(1)),
        backoff: join::Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(15),
            jitter: 0.2,
        },
        static_peers: file.peers.clone(),
    }))
}

async fn run(args: RunArgs) -> Result<(), RunError> {
    let mut file = args.file_config()?;
    let control = control_settings(&args, &mut file)?;
    let (mut cfg, bind) = file.to_config()?;
    if file.node.advertise.is_none() {
        cfg.advertise = bind;
    }
    if !args.keys.is_empty() {
        cfg.keys = args
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| k.key(i))
            .collect::<Result<_, _>>()?;
    }
    // Under an operator the keyring comes from its snapshot, before the
    // node exists: the first packet is already encrypted.
    let control = match control {
        Some(mut settings) => {
            settings.identity.advertise = cfg.advertise.to_string();
            settings.identity.node_name = cfg.name.clone();
            let keys = control::initial_keys(&settings).await;
            if !keys.is_empty() {
                cfg.keys = keys;
            }
            Some(settings)
        }
        None => None,
    };
    if let Some(v) = args.verify_incoming {
        cfg.gossip_verify_incoming = v;
    }
    if let Some(v) = args.verify_outgoing {
        cfg.gossip_verify_outgoing = v;
    }
    if let Some(v) = args.memberlist_exact {
        cfg.memberlist_exact = v;
    }
    if cfg.memberlist_exact {
        info!("memberlist_exact: gossiping exactly as memberlist and NetworkDB do");
    }
    if !cfg.keys.is_empty() {
        let fps: Vec<String> = cfg
            .keys
            .iter()
            .map(|k| k.fingerprint().to_string())
            .collect();
        info!(
            keys = %fps.join(", "),
            verify_incoming = cfg.gossip_verify_incoming,
            verify_outgoing = cfg.gossip_verify_outgoing,
            "gossip encryption on"
        );
    }
    let networks = file.start_networks()?;
    let api_listen: Option<api::Listen> = file
        .api
        .as_ref()
        .map(|a| a.listen.parse())
        .transpose()
        .map_err(RunError::ApiListen)?;
    // Bind the API before the node starts, so that a taken port is an
    // error at start.
    let api_listener = match &api_listen {
        Some(l) => Some(api::Listener::bind(l).await.map_err(RunError::ApiBind)?),
        None => None,
    };
    let metrics_listener = match &file.metrics.listen {
        Some(a) => {
            let addr: std::net::SocketAddr =
                a.parse().map_err(|source| RunError::MetricsListen {
                    value: a.clone(),
                    source,
                })?;
            Some(metrics::bind(addr).await?)
        }
        None => None,
    };
    let seed = args.rng_seed.unwrap_or_else(rand::random);
    let start_keys = cfg.keys.clone();
    let (node, mut events) = runtime::start(cfg, bind, seed).await?;
    let sentinel_ttl = args.sentinel_ttl_ms.unwrap_or(120_000);
    if sentinel_ttl > 0 {
        let mut sc = gossamer_core::node::SentinelConfig::new(file.cluster.clone());
        sc.ttl = std::time::Duration::from_millis(sentinel_ttl);
        node.call(move |n, now| n.enable_sentinel(sc, now))
            .await
            .ok_or(RunError::Stopped)?
            .map_err(RunError::Sentinel)?;
    }
    for n in &file.networks {
        info!(network = %n.name, tables = ?n.tables, "joining network");
    }
    // The file's configuration goes through the same plan as the
    // operator's snapshots: keys, then networks, then peers.
    let (peers_tx, peers_rx) = tokio::sync::watch::channel(Vec::new());
    let want = desired::Desired {
        primary: start_keys.first().map(Key::fingerprint),
        keys: start_keys,
        networks: networks.into_iter().collect(),
        peers: file.peers.clone(),
        departed: Default::default(),
    };
    let seen = control::apply::observe(&node, &peers_tx).await?;
    let steps = desired::plan(&seen, &want)?;
    control::apply::execute(&node, &peers_tx, steps).await?;
    // Peers are resolved at every try, never here: a seed that does not
    // answer or resolve yet is retried, not fatal.
    let join_status = Arc::new(join::JoinStatus::default());
    tokio::spawn(join::run(
        node.clone(),
        peers_rx,
        join::SystemResolver,
        join::Backoff::default(),
        join_status.clone(),
    ));
    // The join loop ends when the peers' sender is dropped: it lives in the
    // control client, or here until the node stops.
    let mut _standalone_peers = None;
    let control_status = match control {
        Some(mut settings) => {
            settings.identity.advertise = node.addr().to_string();
            let status = Arc::new(control::ControlStatus::default());
            tokio::spawn(control::run(
                node.clone(),
                settings,
                peers_tx,
                status.clone(),
            ));
            Some(status)
        }
        None => {
            _standalone_peers = Some(peers_tx);
            None
        }
    };
    if let Some(l) = metrics_listener {
        tokio::spawn(metrics::serve(
            l,
            metrics::Metrics::new(node.clone(), join_status.clone(), control_status),
        ));
    }
    if file.metrics.log_interval_secs > 0 {
        tokio::spawn(metrics::log_periodically(
            node.clone(),
            Duration::from_secs(file.metrics.log_interval_secs),
        ));
    }
    let (api_stop, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let api_addr = api_listener.as_ref().map(api::Listener::describe);
    if let Some(l) = api_listener {
        let n = node.clone();
        tokio::spawn(async move {
            let stop = async {
                let _ = api_stopped.await;
            };
            if let Err(e) = api::serve(n, l, stop).await {
                error!(error = %e, "local table API stopped");
            }
        });
    }
    let _api_stop = api_stop;
    if args.stdio {
        if stdio::serve(node.clone(), &mut events, api_addr).await == stdio::Exit::Terminate {
            stdio::leave_and_wait(&node, &mut events, Duration::from_secs(5)).await;
        }
        node.shutdown();
        tokio::time::sleep(Duration::from_millis(20)).await;
        return Ok(());
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(RunError::Signal)?;
    loop {
        tokio::select! {
            Some(e) = events.recv() => log_event(&e),
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    info!("leaving the cluster");
    stdio::leave_and_wait(&node, &mut events, Duration::from_secs(5)).await;
    node.shutdown();
    Ok(())
}

fn log_event(e: &Event) {
    match e {
        Event::Join(m) => info!(node = %m.name, addr = %m.addr, "member joined"),
        Event::Leave(m) => {
            info!(node = %m.name, addr = %m.addr, state = m.status.as_str(), "member gone")
        }
        Event::Update(m) => info!(node = %m.name, "member updated"),
        Event::JoinFinished {
            contacted, errors, ..
        } => {
            if *contacted > 0 {
                info!(contacted, "joined the cluster");
            } else {
                error!(tried = %errors.join("; "), "failed to join: no seed answered");
            }
        }
        Event::Conflict { existing, other } => {
            error!(node = %existing.name, existing = %existing.addr, other = %other.addr, "name conflict refused")
        }
        other => info!(event = ?other, "event"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The simulator needs no runtime and no logs (ten thousand nodes' worth).
    let cmd = match cli.cmd {
        Cmd::Sim(args) => return simcmd::main(&args),
        other => other,
    };
    init_logging();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), CmdError> = rt.block_on(async {
        match cmd {
            Cmd::Run(args) => Ok(run(*args).await?),
            Cmd::Demo { nodes } => Ok(demo::run(nodes).await?),
            Cmd::Client(args) => Ok(client::run(args).await?),
            Cmd::Sim(_) => Ok(()), // handled above
        }
    });
    // A blocking stdin read may still be pending; don't wait for it.
    rt.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
