//! `gossamer-operator`: reconciles GossipNetwork, GossipKey and
//! BootstrapPeers into one versioned config snapshot per gossip cluster.
#![forbid(unsafe_code)]

mod admin;
mod args;
mod context;
mod control;
mod error;
mod leader;
mod metrics;
mod reconcile;
mod snapshots;
mod watch;
mod webhook;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use gossamer_operator_core::{GossipSettings, InjectConfig, InjectContext};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::events::{Recorder, Reporter};
use kube::{Client, Config};

use args::{Cli, Command, LogFormat, RunArgs};
use context::Context;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", gossamer_operator_api::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Run(args) => {
            init_logging(args.log_format);
            // Two workers are plenty for an operator, and keep the
            // allocator's per-thread arenas (resident memory) few on
            // many-core nodes.
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("gossamer-operator: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(run(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.init(),
    }
}

async fn client(args: &RunArgs) -> Result<Client, String> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("kubeconfig {} is not usable: {e}", path.display()))?
        }
        None => Config::infer().await.map_err(|e| {
            format!("no Kubernetes config: not in a cluster, and no --kubeconfig/$KUBECONFIG ({e})")
        })?,
    };
    Client::try_from(config).map_err(|e| format!("cannot build a Kubernetes client: {e}"))
}

/// The injected sidecar's settings: the file, or the built-in values.
fn inject_config(args: &RunArgs) -> Result<InjectConfig, String> {
    let config = match &args.inject_config {
        None => InjectConfig::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --inject-config {}: {e}", path.display()))?;
            serde_yaml_ng::from_str(&text)
                .map_err(|e| format!("--inject-config {}: {e}", path.display()))?
        }
    };
    config.validate().map_err(|e| match &args.inject_config {
        Some(path) => format!("--inject-config {}: {e}", path.display()),
        None => e.to_string(),
    })?;
    Ok(config)
}

async fn run(args: RunArgs) -> Result<(), String> {
    let inject = inject_config(&args)?;
    let client = client(&args).await?;
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "gossamer-operator".into(),
            instance: Some(identity.clone()),
        },
    );
    let gossip = GossipSettings {
        port: args.gossip_port,
        profile: args.gossip_profile.clone(),
    };
    let ctx = Arc::new(Context::new(
        client,
        recorder,
        gossip,
        Duration::from_secs(args.resync_secs),
    ));

    let listener = admin::bind(args.admin_listen)
        .await
        .map_err(|e| format!("cannot listen on --admin-listen {}: {e}", args.admin_listen))?;
    let control_listener = control::bind(args.control_listen).await.map_err(|e| {
        format!(
            "cannot listen on --control-listen {}: {e}",
            args.control_listen
        )
    })?;
    let webhook = if args.webhook_configuration.is_empty() {
        tracing::info!("the sidecar injector is off (--webhook-configuration is empty)");
        None
    } else {
        let listener = tokio::net::TcpListener::bind(args.webhook_listen)
            .await
            .map_err(|e| {
                format!(
                    "cannot listen on --webhook-listen {}: {e}",
                    args.webhook_listen
                )
            })?;
        Some(webhook::Webhook {
            listener,
            configuration: args.webhook_configuration.clone(),
            config: inject,
            context: InjectContext {
                operator_namespace: args.namespace.clone(),
                gossip_port: args.gossip_port,
                audience: args.token_audience.clone(),
                default_endpoint: format!(
                    "https://{}.{}.svc:{}",
                    args.control_service,
                    args.namespace,
                    args.control_listen.port()
                ),
                ca_pem: String::new(),
            },
        })
    };
    tracing::info!(admin = %args.admin_listen, control = %args.control_listen, webhook = %args.webhook_listen, identity = %identity, "gossamer-operator starting");
    let admin = tokio::spawn(admin::serve(listener, ctx.clone()));
    let control = tokio::spawn(control::serve(
        ctx.clone(),
        control_listener,
        control::ControlOptions {
            insecure: args.control_insecure_dev_mode,
            audience: args.token_audience.clone(),
            tls: control::TlsOptions {
                namespace: args.namespace.clone(),
                ca_secret: args.ca_secret.clone(),
                bundle_configmap: args.ca_bundle_configmap.clone(),
                service: args.control_service.clone(),
                extra_sans: args.control_extra_sans.clone(),
                cert_lifetime: Duration::from_secs(args.control_cert_lifetime_secs),
            },
        },
        webhook,
    ));
    let watches = tokio::spawn(watch::run(ctx.clone()));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let lease = leader::LeaseConfig {
        namespace: args.namespace.clone(),
        name: args.lease_name.clone(),
        identity,
        duration_secs: args.lease_duration_secs,
        grace_secs: args.lease_grace_secs,
    };
    let result = leader::run(ctx, lease, stop_rx).await;
    watches.abort();
    control.abort();
    admin.abort();
    tracing::info!("stopped");
    result
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
