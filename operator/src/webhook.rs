//! The sidecar injector: a mutating admission webhook for Pods, served
//! over HTTPS with the control stream's certificate (so the API server
//! trusts it through the operator's CA), on `POST /inject`.
//!
//! Every replica serves it: the decision is a pure function of the Pod
//! (`gossamer_operator_core::inject`), so no leader is needed. Every
//! replica also watches the MutatingWebhookConfiguration and keeps its
//! caBundle equal to the CA, so a `helm upgrade` or a hand edit that
//! clears it is repaired at once.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gossamer_operator_core::{inject, InjectConfig, InjectContext, InjectError, Injection};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::ByteString;
use kube::api::PostParams;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::context::Context;
use crate::control::tls::{self, Resolver};
use crate::metrics::InjectionLabels;

/// The largest AdmissionReview read; the API server's own request limit
/// for an object is 3 MiB.
const MAX_BODY: usize = 4 << 20;
/// How soon a failed update (a conflict with another replica) is retried.
const CA_BUNDLE_RETRY: Duration = Duration::from_secs(3);

/// What the injector needs besides the CA.
pub struct Webhook {
    /// Its listener, bound at start.
    pub listener: TcpListener,
    /// The MutatingWebhookConfiguration to keep the caBundle of.
    pub configuration: String,
    /// The injected sidecar's settings.
    pub config: InjectConfig,
    /// Everything but the CA certificate (filled in when it is known).
    pub context: InjectContext,
}

struct Injector {
    ctx: Arc<Context>,
    config: InjectConfig,
    context: InjectContext,
}

impl Webhook {
    /// Serves until the task is dropped.
    pub async fn run(self, ctx: Arc<Context>, resolver: Arc<Resolver>, ca_pem: String) {
        let tls = match tls::server_config_http1(resolver) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "the sidecar injector cannot start");
                return;
            }
        };
        if !self.configuration.is_empty() {
            tokio::spawn(keep_ca_bundle(
                ctx.client.clone(),
                self.configuration.clone(),
                ca_pem.clone(),
            ));
        }
        let addr = self
            .listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!(listen = %addr, image = %self.config.image, "serving the sidecar injector");
        let injector = Arc::new(Injector {
            ctx,
            config: self.config,
            context: InjectContext {
                ca_pem,
                ..self.context
            },
        });
        let mut incoming = crate::control::tls_incoming(self.listener, TlsAcceptor::from(tls));
        while let Some(conn) = incoming.next().await {
            let Ok(stream) = conn else { continue };
            let injector = injector.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let injector = injector.clone();
                    async move { Ok::<_, Infallible>(injector.serve(req).await) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    }
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    reply(status, "text/plain", body.into_bytes())
}

impl Injector {
    async fn serve(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if req.uri().path() != "/inject" {
            return text(
                StatusCode::NOT_FOUND,
                format!(
                    "no such path {:?}; the injector serves POST /inject\n",
                    req.uri().path()
                ),
            );
        }
        if req.method() != Method::POST {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "POST an AdmissionReview (admission.k8s.io/v1) to /inject\n".into(),
            );
        }
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the request body (at most {MAX_BODY} bytes): {e}\n"),
                )
            }
        };
        let review: AdmissionReview<Pod> = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                self.count("error", "BadReview");
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not an AdmissionReview of a Pod: {e}\n"),
                );
            }
        };
        let request: Result<AdmissionRequest<Pod>, _> = review.try_into();
        let response = match request {
            Ok(request) => self.review(&request),
            Err(e) => {
                self.count("error", "BadReview");
                AdmissionResponse::invalid(format!("the AdmissionReview has no request: {e}"))
            }
        };
        match serde_json::to_vec(&response.into_review()) {
            Ok(json) => reply(StatusCode::OK, "application/json", json),
            Err(e) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot encode the answer: {e}\n"),
            ),
        }
    }

    fn review(&self, request: &AdmissionRequest<Pod>) -> AdmissionResponse {
        let response = AdmissionResponse::from(request);
        let Some(pod) = &request.object else {
            self.count("skipped", "NoObject");
            return response;
        };
        let namespace = request
            .namespace
            .clone()
            .or_else(|| pod.metadata.namespace.clone())
            .unwrap_or_default();
        let name = pod
            .metadata
            .name
            .clone()
            .or_else(|| pod.metadata.generate_name.clone().map(|g| format!("{g}*")))
            .unwrap_or_default();
        match inject(pod, &namespace, &self.config, &self.context) {
            Ok(Injection::Unchanged(skip)) => {
                self.count("skipped", skip.reason());
                response
            }
            Ok(Injection::Patch { cluster, ops }) => {
                let patch =
                    serde_json::from_value::<json_patch::Patch>(serde_json::Value::Array(ops))
                        .map_err(|e| e.to_string())
                        .and_then(|p| response.clone().with_patch(p).map_err(|e| e.to_string()));
                match patch {
                    Ok(r) => {
                        self.count("injected", "Injected");
                        tracing::info!(pod = %format!("{namespace}/{name}"), %cluster, dry_run = request.dry_run, "injected the sidecar");
                        r
                    }
                    Err(e) => {
                        self.count("error", "Patch");
                        tracing::error!(pod = %format!("{namespace}/{name}"), error = %e, "cannot encode the injection patch");
                        response.deny(format!(
                            "the Gossamer injector cannot encode its patch: {e}"
                        ))
                    }
                }
            }
            Err(e) => {
                self.count("refused", refusal(&e));
                tracing::info!(pod = %format!("{namespace}/{name}"), error = %e, "refused a Pod");
                response.deny(format!("Gossamer sidecar injection: {e}"))
            }
        }
    }

    fn count(&self, outcome: &'static str, reason: &'static str) {
        self.ctx
            .metrics
            .injections
            .get_or_create(&InjectionLabels { outcome, reason })
            .inc();
    }
}

fn refusal(e: &InjectError) -> &'static str {
    match e {
        InjectError::BadInjectValue(_) => "BadInjectValue",
        InjectError::BadCluster { .. } => "BadCluster",
        InjectError::ClusterConflict { .. } => "ClusterConflict",
        InjectError::NameTaken { .. } => "NameTaken",
        InjectError::EnvTaken(_) => "EnvTaken",
        InjectError::PortTaken { .. } => "PortTaken",
        InjectError::HostNetwork => "HostNetwork",
    }
}

/// Keeps every webhook of the configuration `name` pointing at `ca_pem`:
/// watches that one object, and sets the caBundle whenever it differs
/// (at start, after a `helm upgrade`, after a hand edit).
async fn keep_ca_bundle(client: Client, name: String, ca_pem: String) {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client);
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher::watcher(api.clone(), cfg).default_backoff().boxed();
    let mut seen = false;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(_) | Event::InitApply(_)) => {
                seen = true;
                // A conflict with another replica's update: look again.
                for _ in 0..5 {
                    match set_ca_bundle(&api, &name, &ca_pem).await {
                        Ok(Some(n)) if n > 0 => {
                            tracing::info!(configuration = %name, webhooks = n, "set the injector's caBundle");
                            break;
                        }
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(configuration = %name, error = %e, "cannot update the injector's caBundle; retrying");
                            tokio::time::sleep(CA_BUNDLE_RETRY).await;
                        }
                    }
                }
            }
            Ok(Event::InitDone) if !seen => {
                tracing::warn!(configuration = %name, "no such MutatingWebhookConfiguration yet; the API server calls the injector once it exists (install the chart, or pass --webhook-configuration '' to turn the injector off)");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(configuration = %name, error = %e, "watching the injector's configuration failed; retrying")
            }
        }
    }
}

/// Sets the caBundle where it differs: how many webhooks changed, or
/// `None` when the configuration does not exist.
async fn set_ca_bundle(
    api: &Api<MutatingWebhookConfiguration>,
    name: &str,
    ca_pem: &str,
) -> Result<Option<usize>, kube::Error> {
    let Some(mut config) = api.get_opt(name).await? else {
        return Ok(None);
    };
    let want = ByteString(ca_pem.as_bytes().to_vec());
    let mut changed = 0;
    for hook in config.webhooks.iter_mut().flatten() {
        if hook.client_config.ca_bundle.as_ref() != Some(&want) {
            hook.client_config.ca_bundle = Some(want.clone());
            changed += 1;
        }
    }
    if changed > 0 {
        api.replace(name, &PostParams::default(), &config).await?;
    }
    Ok(Some(changed))
}
