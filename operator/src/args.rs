//! Command line and environment.

use std::net::SocketAddr;

use clap::{Parser, Subcommand, ValueEnum};

/// Gossamer's operator.
#[derive(Debug, Parser)]
#[command(name = "gossamer-operator", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions as YAML (what `crds/` holds).
    Crd,
    /// Run the operator.
    Run(Box<RunArgs>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// kubeconfig to use; default: in-cluster config, else $KUBECONFIG or
    /// ~/.kube/config.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Namespace of the leader-election Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "gossamer-system")]
    pub namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "gossamer-operator")]
    pub lease_name: String,
    /// This replica's identity in the Lease; default: $POD_NAME, else the
    /// host name and the process id.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds a leader's Lease stays valid without renewal; the other
    /// replica takes over within this when the leader dies.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=600))]
    pub lease_duration_secs: u64,
    /// Seconds before expiry the leader renews.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub lease_grace_secs: u64,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:9090")]
    pub admin_listen: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "GOSSAMER_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Gossip port every sidecar binds and seeds are dialled on.
    #[arg(long, default_value_t = 7946)]
    pub gossip_port: u16,
    /// memberlist profile of every sidecar.
    #[arg(long, default_value = "lan", value_parser = ["lan", "wan", "local"])]
    pub gossip_profile: String,
    /// Address of the control stream (gRPC over TLS) sidecars subscribe to.
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub control_listen: SocketAddr,
    /// The operator's Service name: the serving certificate names
    /// `<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc` and
    /// `<svc>.<ns>.svc.cluster.local` (ns: --namespace).
    #[arg(long, default_value = "gossamer-operator")]
    pub control_service: String,
    /// One more subject alternative name (IP address or DNS name) of the
    /// serving certificate; repeat for several.
    #[arg(long = "control-extra-san")]
    pub control_extra_sans: Vec<String>,
    /// Lifetime of the serving certificate, in seconds; it is renewed at
    /// two thirds of it.
    #[arg(long, default_value_t = 86400, value_parser = clap::value_parser!(u64).range(60..=31_536_000))]
    pub control_cert_lifetime_secs: u64,
    /// The Secret (in --namespace) holding the operator's CA; generated on
    /// first start.
    #[arg(long, default_value = "gossamer-ca")]
    pub ca_secret: String,
    /// The ConfigMap (in --namespace) where the CA certificate is published
    /// for sidecars (key `ca.crt`).
    #[arg(long, default_value = "gossamer-ca-bundle")]
    pub ca_bundle_configmap: String,
    /// The audience sidecar tokens must carry.
    #[arg(long, default_value = "gossamer")]
    pub token_audience: String,
    /// DEVELOPMENT ONLY: serve the control stream without TLS and without
    /// TokenReview (any client may claim any Pod, and key bytes travel in
    /// clear text). Logged as a warning at every start.
    #[arg(long, default_value_t = false)]
    pub control_insecure_dev_mode: bool,
    /// Address of the sidecar injector (a mutating admission webhook,
    /// HTTPS with the control stream's certificate, path /inject).
    #[arg(long, default_value = "0.0.0.0:9443")]
    pub webhook_listen: SocketAddr,
    /// The MutatingWebhookConfiguration whose caBundle the operator keeps
    /// equal to its CA; empty: the injector is off.
    #[arg(long, default_value = "gossamer-sidecar-injector")]
    pub webhook_configuration: String,
    /// YAML file of the injected sidecar (image, resources, ports; see
    /// charts/gossamer/values.yaml, `sidecar`); default: built-in values.
    #[arg(long)]
    pub inject_config: Option<std::path::PathBuf>,
    /// Seconds between full resyncs of every object (beside watch events).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(5..=86400))]
    pub resync_secs: u64,
}
