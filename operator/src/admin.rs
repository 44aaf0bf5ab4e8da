//! The admin server: /healthz, /readyz and /metrics over plain HTTP/1.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::context::Context;

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn respond(req: &Request<Incoming>, ctx: &Context) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET is served\n".into(),
        );
    }
    match req.uri().path() {
        // Alive as long as the process answers.
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        // Ready once every watch has listed its objects: before that the
        // index would build snapshots from half a world.
        "/readyz" => match ctx.unsynced() {
            None => reply(StatusCode::OK, "text/plain", "ok\n".into()),
            Some(what) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("waiting for the first list of {what}\n"),
            ),
        },
        "/metrics" => {
            ctx.refresh_gauges();
            reply(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ctx.metrics.encode(),
            )
        }
        other => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            format!("no such path {other:?}; try /healthz, /readyz or /metrics\n"),
        ),
    }
}

/// Binds the admin address; fails loudly (at start) when it is taken.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let r = respond(&req, &ctx);
                async move { Ok::<_, Infallible>(r) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await;
        });
    }
}
