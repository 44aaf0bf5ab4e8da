//! `gossamer-sidecar client`: a small client of the local table API, for an
//! app container that shares the sidecar's socket (the injector sets
//! `$GOSSAMER_API`), and for a person looking into a Pod with
//! `kubectl exec`.

use std::time::Duration;

use clap::Subcommand;
use gossamer_proto::tables::v1 as pb;
use hyper_util::rt::TokioIo;
use pb::tables_client::TablesClient;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

/// Where the API is, and what to do.
#[derive(clap::Args, Debug)]
pub struct ClientArgs {
    /// The sidecar's local API: `unix:PATH` or `HOST:PORT`.
    #[arg(long, env = "GOSSAMER_API")]
    api: String,
    #[command(subcommand)]
    cmd: ClientCmd,
}

#[derive(Subcommand, Debug)]
enum ClientCmd {
    /// Writes an entry: creates it, or updates it when it exists.
    Put {
        /// The network's id (a GossipNetwork's `status.networkId`).
        #[arg(long)]
        network: String,
        /// The table.
        #[arg(long)]
        table: String,
        /// The entry's key.
        key: String,
        /// Its value, as text.
        value: String,
    },
    /// Prints every entry of a table, one `KEY<TAB>VALUE` line each.
    List {
        /// The network's id.
        #[arg(long)]
        network: String,
        /// The table.
        #[arg(long)]
        table: String,
    },
    /// Prints the cluster's members, one `NAME<TAB>ADDRESS<TAB>STATE` line
    /// each; with `--every`, again every that many seconds, for ever.
    Members {
        /// Seconds between listings (an app container's main loop).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
        every: Option<u64>,
    },
}

/// What went wrong, with the value it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address is neither `unix:PATH` nor `HOST:PORT`.
    #[error("--api {0:?}: use unix:PATH or HOST:PORT (the injector sets $GOSSAMER_API)")]
    Address(String),
    /// Nothing answers there.
    #[error("cannot reach the sidecar's API at {api}: {source}")]
    Connect {
        /// The address.
        api: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// The sidecar refused the call.
    #[error("{call}: {code:?}: {message}")]
    Call {
        /// What was asked.
        call: String,
        /// The gRPC code.
        code: Code,
        /// The sidecar's message.
        message: String,
    },
}

async fn connect(api: &str) -> Result<TablesClient<Channel>, ClientError> {
    let err = |source| ClientError::Connect {
        api: api.to_string(),
        source,
    };
    let channel = if let Some(path) = api.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(ClientError::Address(api.to_string()));
        }
        let path = path.to_string();
        Endpoint::from_static("http://sidecar.local")
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    tokio::net::UnixStream::connect(path)
                        .await
                        .map(TokioIo::new)
                }
            }))
            .await
            .map_err(err)?
    } else {
        if api.contains('/') || !api.contains(':') {
            return Err(ClientError::Address(api.to_string()));
        }
        Endpoint::from_shared(format!("http://{api}"))
            .map_err(|_| ClientError::Address(api.to_string()))?
            .connect()
            .await
            .map_err(err)?
    };
    Ok(TablesClient::new(channel))
}

fn call_err(call: String) -> impl FnOnce(tonic::Status) -> ClientError {
    move |s| ClientError::Call {
        call,
        code: s.code(),
        message: s.message().to_string(),
    }
}

/// SIGTERM (what the kubelet sends a container's main process).
async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        // Without the handler, never: the process then ends by default.
        Err(_) => std::future::pending::<()>().await,
    }
}

/// Runs the subcommand; output goes to stdout.
///
/// # Errors
/// When the API cannot be reached or refuses the call.
pub async fn run(args: ClientArgs) -> Result<(), ClientError> {
    let looping = matches!(args.cmd, ClientCmd::Members { every: Some(_) });
    let mut c = loop {
        match connect(&args.api).await {
            Ok(c) => break c,
            // A main loop starts beside its sidecar: wait for the socket.
            Err(e @ ClientError::Connect { .. }) if looping => {
                eprintln!("{e}; trying again in 1 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = terminated() => return Ok(()),
                }
            }
            Err(e) => return Err(e),
        }
    };
    match args.cmd {
        ClientCmd::Put {
            network,
            table,
            key,
            value,
        } => {
            let req = pb::WriteEntryRequest {
                network: network.clone(),
                table: table.clone(),
                key: key.clone(),
                value: value.into_bytes(),
            };
            let what = format!("put {network}/{table}/{key}");
            match c.create_entry(req.clone()).await {
                Ok(_) => Ok(()),
                Err(s) if s.code() == Code::AlreadyExists => c
                    .update_entry(req)
                    .await
                    .map(|_| ())
                    .map_err(call_err(what)),
                Err(s) => Err(call_err(what)(s)),
            }
        }
        ClientCmd::List { network, table } => {
            let what = format!("list {network}/{table}");
            let entries = c
                .list_table(pb::ListTableRequest { network, table })
                .await
                .map_err(call_err(what))?
                .into_inner()
                .entries;
            for e in entries {
                println!("{}\t{}", e.key, String::from_utf8_lossy(&e.value));
            }
            Ok(())
        }
        ClientCmd::Members { every } => loop {
            let answer = c
                .members(pb::MembersRequest::default())
                .await
                .map_err(call_err("members".into()));
            match (answer, every) {
                (Ok(r), _) => {
                    for m in &r.into_inner().members {
                        println!("{}\t{}\t{}", m.name, m.addr, m.state);
                    }
                }
                (Err(e), None) => return Err(e),
                // A main loop outlives a sidecar restart.
                (Err(e), Some(_)) => eprintln!("{e}; trying again"),
            }
            match every {
                Some(secs) => {
                    println!();
                    // A container's main process: SIGTERM ends it at once
                    // (as PID 1 it would otherwise be ignored, and the
                    // kubelet would wait out the grace period).
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
                        _ = terminated() => return Ok(()),
                    }
                }
                None => return Ok(()),
            }
        },
    }
}
