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

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use gossamer_operator_core::GossipSettings;
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

async fn run(args: RunArgs) -> Result<(), String> {
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
    tracing::info!(admin = %args.admin_listen, control = %args.control_listen, identity = %identity, "gossamer-operator starting");
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
