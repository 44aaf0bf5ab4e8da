//! A stand-in for a sidecar's end of the operator's control stream: Pod
//! tokens by TokenRequest, TLS trusting the CA bundle the operator
//! publishes, and a tonic client that says hello and reads snapshots.

use std::time::Duration;

use gossamer_proto::control::v1::control_client::ControlClient;
use gossamer_proto::control::v1::sidecar_message::Kind;
use gossamer_proto::control::v1::{ConfigSnapshot, Hello, SidecarMessage};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::{Request, Status, Streaming};

use crate::error::{Error, Result};
use crate::kube::ControlPlane;
use crate::operator::{CA_BUNDLE_CONFIGMAP, OPERATOR_NAMESPACE};

/// The CA certificate (PEM) the operator publishes, once it has.
///
/// # Errors
/// If kubectl fails or the ConfigMap holds no certificate.
pub fn ca_bundle(cp: &ControlPlane) -> Result<String> {
    let out = cp.kubectl(&[
        "get",
        "configmap",
        CA_BUNDLE_CONFIGMAP,
        "-n",
        OPERATOR_NAMESPACE,
        "-o",
        "jsonpath={.data.ca\\.crt}",
    ])?;
    let ca = out.ok()?;
    if ca.contains("BEGIN CERTIFICATE") {
        Ok(ca)
    } else {
        Err(Error::new(format!(
            "ConfigMap {OPERATOR_NAMESPACE}/{CA_BUNDLE_CONFIGMAP} holds no certificate yet"
        )))
    }
}

/// A TokenRequest token of the namespace's `default` ServiceAccount bound
/// to Pod `ns/pod`, for `audience`, valid 10 minutes (the API server's
/// minimum). It is a secret: never print it.
///
/// # Errors
/// If the Pod does not exist or kubectl fails.
pub fn pod_token(cp: &ControlPlane, ns: &str, pod: &str, audience: &str) -> Result<String> {
    let uid = cp
        .kubectl(&[
            "get",
            "pod",
            pod,
            "-n",
            ns,
            "-o",
            "jsonpath={.metadata.uid}",
        ])?
        .ok()?;
    let token = cp
        .kubectl(&[
            "create",
            "token",
            "default",
            "-n",
            ns,
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            pod,
            "--bound-object-uid",
            uid.trim(),
            "--audience",
            audience,
            "--duration",
            "10m",
        ])?
        .ok()
        .map_err(|e| e.context(format!("requesting a token for Pod {ns}/{pod}")))?;
    Ok(token.trim().to_string())
}

/// A TLS channel to `127.0.0.1:port` that verifies the server as `domain`
/// against `ca_pem`.
///
/// # Errors
/// If the handshake fails (say, the certificate does not verify for
/// `domain`); the error carries tonic's, with its cause.
pub async fn connect(port: u16, ca_pem: &str, domain: &str) -> Result<Channel> {
    let what = || format!("TLS to 127.0.0.1:{port} as {domain}");
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name(domain);
    Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .map_err(|e| Error::new(format!("{}: {e}", what())))?
        .tls_config(tls)
        .map_err(|e| Error::new(format!("{}: {e:?}", what())))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| Error::new(format!("{}: {e:?}", what())))
}

/// A hello for Pod `ns/pod` in cluster `ns/default`.
pub fn hello(ns: &str, pod: &str) -> Hello {
    Hello {
        cluster: "default".into(),
        cluster_namespace: ns.into(),
        pod_namespace: ns.into(),
        pod_name: pod.into(),
        node_name: "0123456789ab".into(),
        advertise_address: "10.0.0.1:7946".into(),
        build_version: "test".into(),
    }
}

/// A sidecar's end of one control stream.
pub struct Sidecar {
    out: mpsc::Sender<SidecarMessage>,
    snapshots: Streaming<ConfigSnapshot>,
}

impl Sidecar {
    /// Opens a stream on `channel` (to the operator Service's name), with
    /// `token` as bearer credential, and says `hello`.
    ///
    /// # Errors
    /// The status the operator refused the stream with.
    pub async fn subscribe(
        channel: Channel,
        token: Option<&str>,
        hello: Hello,
    ) -> std::result::Result<Sidecar, Status> {
        let (out, rx) = mpsc::channel(8);
        out.send(SidecarMessage {
            kind: Some(Kind::Hello(hello)),
        })
        .await
        .map_err(|_| Status::internal("the outbound queue closed"))?;
        let mut req = Request::new(ReceiverStream::new(rx));
        if let Some(t) = token {
            let v = format!("Bearer {t}")
                .parse()
                .map_err(|_| Status::invalid_argument("a token is ASCII"))?;
            req.metadata_mut().insert("authorization", v);
        }
        let snapshots = ControlClient::new(channel)
            .subscribe(req)
            .await?
            .into_inner();
        Ok(Sidecar { out, snapshots })
    }

    /// Sends one message.
    ///
    /// # Panics
    /// If the stream's outbound side is closed.
    pub async fn send(&self, kind: Kind) {
        self.out
            .send(SidecarMessage { kind: Some(kind) })
            .await
            .expect("the stream is open");
    }

    /// The next snapshot, `Ok(None)` when the stream ended cleanly, or the
    /// status it ended with; `Err(DEADLINE_EXCEEDED)` after `wait`.
    ///
    /// # Errors
    /// The status that ended the stream, or the deadline.
    pub async fn next(
        &mut self,
        wait: Duration,
    ) -> std::result::Result<Option<ConfigSnapshot>, Status> {
        match tokio::time::timeout(wait, self.snapshots.message()).await {
            Ok(r) => r,
            Err(_) => Err(Status::deadline_exceeded(format!(
                "no snapshot within {wait:?}"
            ))),
        }
    }
}
