//! The control stream's TLS: the operator's own CA, kept in a Secret; a
//! serving certificate it issues itself for its Service's DNS names and
//! renews at two thirds of its lifetime; and the CA bundle sidecars trust,
//! published in a ConfigMap.
//!
//! Replicas share the CA: the first to start creates the Secret, a replica
//! that loses that race reads the winner's. Each replica issues its own
//! serving certificate in memory (its key never leaves the process).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::ByteString;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client, ResourceExt};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::context::{managed_labels, FIELD_MANAGER};

/// Data key of the CA certificate (Secret and bundle ConfigMap).
pub const CA_CERT_KEY: &str = "ca.crt";
/// Data key of the CA's private key (Secret only).
const CA_KEY_KEY: &str = "ca.key";
/// The CA lives ten years; rotating it is a manual step (delete the Secret
/// and restart the operators).
const CA_LIFETIME: time::Duration = time::Duration::days(3650);
/// Serving certificates start this much in the past, for clock skew.
const BACKDATE: time::Duration = time::Duration::minutes(5);

/// Where the CA and its bundle live, and what the serving certificate names.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// The operator's namespace.
    pub namespace: String,
    /// The CA Secret's name.
    pub ca_secret: String,
    /// The CA bundle ConfigMap's name.
    pub bundle_configmap: String,
    /// The operator's Service name.
    pub service: String,
    /// More SANs (IP addresses or DNS names).
    pub extra_sans: Vec<String>,
    /// Lifetime of a serving certificate.
    pub cert_lifetime: Duration,
}

impl TlsOptions {
    /// The serving certificate's SANs: the Service's DNS names, then the
    /// extra ones.
    pub fn sans(&self) -> Vec<String> {
        let (svc, ns) = (&self.service, &self.namespace);
        let mut out = vec![
            svc.clone(),
            format!("{svc}.{ns}"),
            format!("{svc}.{ns}.svc"),
            format!("{svc}.{ns}.svc.cluster.local"),
        ];
        for s in &self.extra_sans {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
        out
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The API server refused or failed a request.
    #[error("{action}: {source}")]
    Kube {
        /// What the operator was doing.
        action: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Generating or signing failed.
    #[error("{0}")]
    Crypto(String),
    /// The stored CA cannot be used.
    #[error("Secret {0} does not hold a usable CA ({1}); delete it to have a new CA generated")]
    Stored(String, String),
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> TlsError {
    let action = action.into();
    move |source| TlsError::Kube { action, source }
}

/// The CA: its certificate (PEM) and its key (PKCS#8 PEM). `Debug` leaves
/// the key out.
#[derive(Clone)]
pub struct Ca {
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ca(<{} bytes of certificate>)", self.cert_pem.len())
    }
}

impl Ca {
    /// A new self-signed CA.
    pub fn generate() -> Result<Ca, TlsError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| TlsError::Crypto(format!("cannot generate the CA key: {e}")))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "gossamer-operator control CA");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = now();
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_LIFETIME;
        let cert = params
            .self_signed(&key)
            .map_err(|e| TlsError::Crypto(format!("cannot self-sign the CA: {e}")))?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The CA certificate, PEM: what sidecars trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    fn from_secret(s: &Secret) -> Result<Ca, String> {
        let get = |k: &str| {
            s.data
                .as_ref()
                .and_then(|d| d.get(k))
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                .ok_or_else(|| format!("no data key {k}"))
        };
        let ca = Ca {
            cert_pem: get(CA_CERT_KEY)?,
            key_pem: get(CA_KEY_KEY)?,
        };
        // Proves both parse and belong together well enough to sign.
        ca.issuer().map_err(|e| e.to_string())?;
        Ok(ca)
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, TlsError> {
        let key = KeyPair::from_pem(&self.key_pem)
            .map_err(|e| TlsError::Crypto(format!("the CA key does not parse: {e}")))?;
        Issuer::from_ca_cert_pem(&self.cert_pem, key)
            .map_err(|e| TlsError::Crypto(format!("the CA certificate does not parse: {e}")))
    }

    /// Issues a serving certificate for `sans`, valid from a little before
    /// `now` for `lifetime`; the chain holds the leaf and the CA.
    pub fn issue(
        &self,
        sans: &[String],
        now: time::OffsetDateTime,
        lifetime: Duration,
    ) -> Result<Arc<CertifiedKey>, TlsError> {
        let issuer = self.issuer()?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| TlsError::Crypto(format!("cannot generate a serving key: {e}")))?;
        let mut params = CertificateParams::new(sans.to_vec()).map_err(|e| {
            TlsError::Crypto(format!(
                "bad subject alternative names {sans:?}: {e}; give IP addresses or DNS names"
            ))
        })?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            sans.first().cloned().unwrap_or_default(),
        );
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = now - BACKDATE;
        params.not_after = now + time::Duration::try_from(lifetime).unwrap_or(time::Duration::DAY);
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| TlsError::Crypto(format!("cannot sign the serving certificate: {e}")))?;
        let ca_der = rustls::pki_types::pem::PemObject::from_pem_slice(self.cert_pem.as_bytes())
            .map_err(|e| TlsError::Crypto(format!("the CA certificate is not PEM: {e}")))?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
            .map_err(|e| TlsError::Crypto(format!("rustls refuses the serving key: {e}")))?;
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone(), ca_der];
        Ok(Arc::new(CertifiedKey::new(chain, signing)))
    }
}

/// The shell's clock, as `time` wants it.
pub fn now() -> time::OffsetDateTime {
    #[allow(clippy::disallowed_methods)] // the shell reads the clock
    let t = std::time::SystemTime::now();
    time::OffsetDateTime::from(t)
}

/// Reads the CA Secret, creating it with a new CA when absent. A replica
/// that loses the creation race reads the winner's CA, so replicas never
/// clobber each other.
pub async fn ensure_ca(client: &Client, opts: &TlsOptions) -> Result<Ca, TlsError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &opts.namespace);
    let what = format!("{}/{}", opts.namespace, opts.ca_secret);
    let stored = |s: &Secret| Ca::from_secret(s).map_err(|e| TlsError::Stored(what.clone(), e));
    if let Some(s) = api
        .get_opt(&opts.ca_secret)
        .await
        .map_err(kube_err(format!("reading the CA Secret {what}")))?
    {
        return stored(&s);
    }
    let ca = Ca::generate()?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(opts.ca_secret.clone()),
            namespace: Some(opts.namespace.clone()),
            labels: Some(managed_labels([])),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            [
                (
                    CA_CERT_KEY.to_string(),
                    ByteString(ca.cert_pem.clone().into_bytes()),
                ),
                (
                    CA_KEY_KEY.to_string(),
                    ByteString(ca.key_pem.clone().into_bytes()),
                ),
            ]
            .into(),
        ),
        ..Default::default()
    };
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.create(&pp, &secret).await {
        Ok(_) => {
            tracing::info!(secret = %what, "generated the control-stream CA");
            Ok(ca)
        }
        Err(kube::Error::Api(e)) if e.is_already_exists() => {
            let s = api
                .get(&opts.ca_secret)
                .await
                .map_err(kube_err(format!("re-reading the CA Secret {what}")))?;
            stored(&s)
        }
        Err(e) => Err(kube_err(format!("creating the CA Secret {what}"))(e)),
    }
}

/// Publishes the CA certificate in the bundle ConfigMap (created, or
/// updated when it differs).
pub async fn publish_bundle(client: &Client, opts: &TlsOptions, ca: &Ca) -> Result<(), TlsError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &opts.namespace);
    let what = format!("{}/{}", opts.namespace, opts.bundle_configmap);
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    for _ in 0..3 {
        let current = api
            .get_opt(&opts.bundle_configmap)
            .await
            .map_err(kube_err(format!("reading the CA bundle {what}")))?;
        let data = [(CA_CERT_KEY.to_string(), ca.cert_pem.clone())].into();
        let res = match current {
            Some(cm) if cm.data.as_ref() == Some(&data) => return Ok(()),
            Some(mut cm) => {
                cm.data = Some(data);
                api.replace(&cm.name_any(), &pp, &cm).await
            }
            None => {
                let cm = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(opts.bundle_configmap.clone()),
                        namespace: Some(opts.namespace.clone()),
                        labels: Some(managed_labels([])),
                        ..Default::default()
                    },
                    data: Some(data),
                    ..Default::default()
                };
                api.create(&pp, &cm).await
            }
        };
        match res {
            Ok(_) => {
                tracing::info!(configmap = %what, "published the control-stream CA bundle");
                return Ok(());
            }
            // Another replica wrote it meanwhile: look again.
            Err(kube::Error::Api(e)) if e.is_conflict() || e.is_already_exists() => {}
            Err(e) => return Err(kube_err(format!("writing the CA bundle {what}"))(e)),
        }
    }
    Err(TlsError::Crypto(format!(
        "the CA bundle {what} kept changing under us; is another CA in use?"
    )))
}

/// Hands every new TLS handshake the current serving certificate; swapping
/// it leaves established connections (and their streams) alone.
#[derive(Debug)]
pub struct Resolver(RwLock<Arc<CertifiedKey>>);

impl Resolver {
    /// Starts with `cert`.
    pub fn new(cert: Arc<CertifiedKey>) -> Self {
        Resolver(RwLock::new(cert))
    }

    /// Replaces the certificate for later handshakes.
    pub fn set(&self, cert: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = cert;
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// A rustls server config that takes its certificate from `resolver` and
/// speaks HTTP/2 (gRPC).
pub fn server_config(resolver: Arc<Resolver>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Crypto(format!("rustls refuses its own defaults: {e}")))?
    .with_no_client_auth()
    .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

/// The same certificate for HTTP/1.1 (the admission webhook).
pub fn server_config_http1(resolver: Arc<Resolver>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut cfg = Arc::unwrap_or_clone(server_config(resolver)?);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// When to renew a certificate of `lifetime`: at two thirds of it.
pub fn renew_after(lifetime: Duration) -> Duration {
    lifetime * 2 / 3
}

/// Renews the serving certificate at two thirds of its lifetime, forever;
/// a failed issue is retried in a minute (the old certificate still has a
/// third of its life).
pub async fn renew(ca: Ca, opts: TlsOptions, resolver: Arc<Resolver>) {
    let mut wait = renew_after(opts.cert_lifetime);
    loop {
        tokio::time::sleep(wait).await;
        match ca.issue(&opts.sans(), now(), opts.cert_lifetime) {
            Ok(cert) => {
                resolver.set(cert);
                tracing::info!(
                    lifetime_secs = opts.cert_lifetime.as_secs(),
                    "renewed the control-stream serving certificate"
                );
                wait = renew_after(opts.cert_lifetime);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the serving certificate; retrying in 60 s");
                wait = Duration::from_secs(60);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> TlsOptions {
        TlsOptions {
            namespace: "gossamer-system".into(),
            ca_secret: "gossamer-ca".into(),
            bundle_configmap: "gossamer-ca-bundle".into(),
            service: "gossamer-operator".into(),
            extra_sans: vec!["127.0.0.1".into(), "gossamer-operator".into()],
            cert_lifetime: Duration::from_secs(3600),
        }
    }

    #[test]
    fn the_certificate_names_the_service_and_the_extra_sans_once() {
        assert_eq!(
            opts().sans(),
            [
                "gossamer-operator",
                "gossamer-operator.gossamer-system",
                "gossamer-operator.gossamer-system.svc",
                "gossamer-operator.gossamer-system.svc.cluster.local",
                "127.0.0.1",
            ]
        );
    }

    #[test]
    fn renewal_comes_at_two_thirds_of_the_lifetime() {
        assert_eq!(
            renew_after(Duration::from_secs(3600)),
            Duration::from_secs(2400)
        );
    }

    #[test]
    fn a_ca_issues_a_chain_that_verifies_for_its_names() {
        use rustls::client::danger::ServerCertVerifier;
        let ca = Ca::generate().unwrap();
        assert!(!format!("{ca:?}").contains("PRIVATE"));
        let ck = ca
            .issue(&opts().sans(), now(), Duration::from_secs(3600))
            .unwrap();
        assert_eq!(ck.cert.len(), 2);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ck.cert[1].clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        for name in ["gossamer-operator.gossamer-system.svc", "127.0.0.1"] {
            let sn = rustls::pki_types::ServerName::try_from(name).unwrap();
            verifier
                .verify_server_cert(
                    &ck.cert[0],
                    &[],
                    &sn,
                    &[],
                    rustls::pki_types::UnixTime::now(),
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let other = rustls::pki_types::ServerName::try_from("evil.example").unwrap();
        assert!(verifier
            .verify_server_cert(
                &ck.cert[0],
                &[],
                &other,
                &[],
                rustls::pki_types::UnixTime::now()
            )
            .is_err());
    }

    #[test]
    fn a_stored_ca_reads_back_and_a_broken_one_is_explained() {
        let ca = Ca::generate().unwrap();
        let secret = Secret {
            data: Some(
                [
                    (CA_CERT_KEY.into(), ByteString(ca.cert_pem.clone().into())),
                    (CA_KEY_KEY.into(), ByteString(ca.key_pem.clone().into())),
                ]
                .into(),
            ),
            ..Default::default()
        };
        let back = Ca::from_secret(&secret).unwrap();
        assert_eq!(back.cert_pem(), ca.cert_pem());
        let broken = Secret {
            data: Some([(CA_CERT_KEY.into(), ByteString(b"x".to_vec()))].into()),
            ..Default::default()
        };
        assert_eq!(Ca::from_secret(&broken).unwrap_err(), "no data key ca.key");
    }
}
