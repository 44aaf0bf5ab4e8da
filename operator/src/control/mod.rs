//! The control-stream server: TLS with the operator's own CA, TokenReview
//! of every sidecar's token, one snapshot channel per cluster, and the
//! sidecars' ACKs, NACKs and status reports folded into the decisions.
//!
//! Every replica listens, but only the leader serves streams: the reports
//! feed the leader's decisions (which key is primary, which may leave), so
//! they must reach the leader. A standby answers `UNAVAILABLE` and the
//! sidecar reconnects; a leader that loses the Lease ends its streams.

mod auth;
mod convert;
mod hub;
mod service;
pub(crate) mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gossamer_proto::control::v1::control_server::ControlServer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};

pub use hub::Hub;
pub use tls::TlsOptions;

use crate::context::Context;
use crate::webhook::Webhook;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the control stream is served.
#[derive(Debug, Clone)]
pub struct ControlOptions {
    /// Development only: no TLS, no TokenReview (the hello's Pod is
    /// believed). Off by default; warned about at every start.
    pub insecure: bool,
    /// The audience sidecar tokens must carry.
    pub audience: String,
    /// CA, bundle and serving certificate.
    pub tls: TlsOptions,
}

/// Binds the control address; fails loudly (at start) when it is taken.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until the task is dropped.
pub async fn serve(
    ctx: Arc<Context>,
    listener: TcpListener,
    opts: ControlOptions,
    webhook: Option<Webhook>,
) {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let router = |auth| {
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .add_service(ControlServer::new(service::ControlService::new(
                ctx.clone(),
                auth,
            )))
    };
    if opts.insecure {
        tracing::warn!(
            listen = %addr,
            "DEVELOPMENT MODE: the control stream runs WITHOUT TLS and WITHOUT token review; \
             key bytes cross the network in clear text and any client may claim any Pod. \
             Never use --control-insecure-dev-mode outside a throw-away test cluster"
        );
        if webhook.is_some() {
            tracing::warn!("the sidecar injector is off in development mode: the API server calls webhooks only over TLS");
        }
        let r = router(None)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "the control server stopped");
        }
        return;
    }
    let (ca, cert) = loop {
        match setup(&ctx, &opts.tls).await {
            Ok(v) => break v,
            Err(e) => {
                tracing::warn!(error = %e, "cannot set up the control stream's TLS; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    let resolver = Arc::new(tls::Resolver::new(cert));
    let config = match tls::server_config(resolver.clone()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the control server cannot start");
            return;
        }
    };
    if let Some(w) = webhook {
        tokio::spawn(w.run(ctx.clone(), resolver.clone(), ca.cert_pem().to_string()));
    }
    let renewal = tokio::spawn(tls::renew(ca, opts.tls.clone(), resolver));
    tracing::info!(listen = %addr, sans = ?opts.tls.sans(), "serving the control stream over TLS");
    let auth = Arc::new(auth::Authenticator::new(
        ctx.client.clone(),
        opts.audience.clone(),
    ));
    let incoming = tls_incoming(listener, TlsAcceptor::from(config));
    if let Err(e) = router(Some(auth)).serve_with_incoming(incoming).await {
        tracing::error!(error = %e, "the control server stopped");
    }
    renewal.abort();
}

async fn setup(
    ctx: &Context,
    opts: &TlsOptions,
) -> Result<(tls::Ca, Arc<rustls::sign::CertifiedKey>), tls::TlsError> {
    let ca = tls::ensure_ca(&ctx.client, opts).await?;
    tls::publish_bundle(&ctx.client, opts, &ca).await?;
    let cert = ca.issue(&opts.sans(), tls::now(), opts.cert_lifetime)?;
    Ok((ca, cert))
}

type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// Accepted connections after their handshake. Handshakes run in tasks of
/// their own, so a slow or silent client never holds up the others.
pub(crate) fn tls_incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> ReceiverStream<Result<TlsStream, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a control connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (acceptor, out) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = out.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed")
                    }
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
            if tx.is_closed() {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}
