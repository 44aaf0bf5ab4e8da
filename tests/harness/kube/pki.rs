//! A throw-away certificate authority and the certificates a cluster's
//! parts present to each other, written as PEM files.
//!
//! Keys are ECDSA P-256 (PKCS#8), which kube-apiserver, the controllers,
//! kubectl and kube-rs all read. Private keys are written with mode 0600
//! and never printed; errors name the file, not its contents.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::error::{Error, Result};

/// What a certificate is for (its extended key usage).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// A client certificate (TLS client auth): a user to kube-apiserver.
    Client,
    /// A serving certificate (TLS server auth).
    Server,
    /// Both, as a kubelet's own certificate may be.
    ClientAndServer,
}

/// A certificate to issue.
#[derive(Clone, Debug)]
pub struct CertRequest {
    /// File stem: the files are `<stem>.crt` and `<stem>.key`. MUST be a
    /// plain file name (letters, digits, `-`, `_`, `.`).
    pub stem: String,
    /// Subject common name: the user name kube-apiserver sees.
    pub common_name: String,
    /// Subject organisation: the group kube-apiserver sees. rcgen writes
    /// at most one attribute of a kind, so a certificate carries one group.
    pub group: Option<String>,
    /// Subject alternative names: IP addresses or DNS names.
    pub sans: Vec<String>,
    /// Key usage.
    pub usage: Usage,
}

impl CertRequest {
    /// A client certificate for user `common_name`, in `group` if given.
    pub fn client(stem: &str, common_name: &str, group: Option<&str>) -> CertRequest {
        CertRequest {
            stem: stem.to_string(),
            common_name: common_name.to_string(),
            group: group.map(str::to_string),
            sans: Vec::new(),
            usage: Usage::Client,
        }
    }

    /// A serving certificate for `sans` (IP addresses or DNS names).
    pub fn server(stem: &str, common_name: &str, sans: &[&str]) -> CertRequest {
        CertRequest {
            stem: stem.to_string(),
            common_name: common_name.to_string(),
            group: None,
            sans: sans.iter().map(|s| s.to_string()).collect(),
            usage: Usage::Server,
        }
    }

    /// A kubelet's certificate for node `node`, as the Node authorizer
    /// expects: user `system:node:<node>` in group `system:nodes`, also
    /// serving on `sans`.
    pub fn kubelet(node: &str, sans: &[&str]) -> CertRequest {
        CertRequest {
            stem: format!("kubelet-{node}"),
            common_name: format!("system:node:{node}"),
            group: Some("system:nodes".to_string()),
            sans: sans.iter().map(|s| s.to_string()).collect(),
            usage: Usage::ClientAndServer,
        }
    }
}

/// Paths of an issued certificate and its private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The private key (PKCS#8 PEM, mode 0600).
    pub key: PathBuf,
}

/// A certificate authority whose certificate and key live in a folder; it
/// issues [`CertRequest`]s into the same folder.
pub struct Pki {
    dir: PathBuf,
    ca: CertFiles,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    /// Creates a new CA named `common_name` in `dir` (`ca.crt`, `ca.key`).
    ///
    /// # Errors
    /// If a key cannot be generated or a file cannot be written.
    pub fn create(dir: &Path, common_name: &str) -> Result<Pki> {
        fs::create_dir_all(dir)
            .map_err(|e| Error::new(format!("cannot create PKI folder {}: {e}", dir.display())))?;
        let key = generate_key("the CA")?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name, None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(|e| Error::new(format!("cannot self-sign CA {common_name}: {e}")))?;
        let ca = write_pair(dir, "ca", &cert.pem(), &key.serialize_pem())?;
        Ok(Pki {
            dir: dir.to_path_buf(),
            ca,
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA's certificate and key files.
    pub fn ca(&self) -> &CertFiles {
        &self.ca
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The folder holding every file of this PKI.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Issues `req`, signed by this CA, as `<dir>/<stem>.crt` and `.key`
    /// (an existing pair of that stem is replaced).
    ///
    /// # Errors
    /// If the stem is not a plain file name, a SAN is neither an IP address
    /// nor a valid DNS name, or a file cannot be written.
    pub fn issue(&self, req: &CertRequest) -> Result<CertFiles> {
        let plain = !req.stem.is_empty()
            && req
                .stem
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !plain || req.stem.starts_with('.') {
            return Err(Error::new(format!(
                "certificate file stem {:?} is not a plain file name; use letters, digits, '-', '_' or '.'",
                req.stem
            )));
        }
        if let Some(bad) = req.sans.iter().find(|s| !is_ip_or_dns_name(s)) {
            return Err(Error::new(format!(
                "subject alternative name {bad:?} of {} is neither an IP address nor a DNS name \
                 (letters, digits, '-' and '.'); fix the SAN list {:?}",
                req.stem, req.sans
            )));
        }
        let mut params = CertificateParams::new(req.sans.clone()).map_err(|e| {
            Error::new(format!(
                "bad subject alternative names {:?} for {}: {e}; give IP addresses or DNS names",
                req.sans, req.stem
            ))
        })?;
        params.distinguished_name = name(&req.common_name, req.group.as_deref());
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = match req.usage {
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::ClientAndServer => vec![
                ExtendedKeyUsagePurpose::ClientAuth,
                ExtendedKeyUsagePurpose::ServerAuth,
            ],
        };
        let key = generate_key(&req.stem)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| Error::new(format!("cannot sign certificate {}: {e}", req.stem)))?;
        write_pair(&self.dir, &req.stem, &cert.pem(), &key.serialize_pem())
    }

    /// Writes a fresh key pair for signing ServiceAccount tokens:
    /// `<stem>.key` (private, PKCS#8 PEM) and `<stem>.pub` (public, PKIX
    /// PEM); returns (private, public).
    ///
    /// # Errors
    /// If the key cannot be generated or a file cannot be written.
    pub fn signing_key(&self, stem: &str) -> Result<(PathBuf, PathBuf)> {
        let key = generate_key(stem)?;
        let private = self.dir.join(format!("{stem}.key"));
        let public = self.dir.join(format!("{stem}.pub"));
        write_file(&private, &key.serialize_pem(), 0o600)?;
        write_file(&public, &key.public_key_pem(), 0o644)?;
        Ok((private, public))
    }
}

fn is_ip_or_dns_name(san: &str) -> bool {
    let dns = || {
        let name = san.strip_prefix("*.").unwrap_or(san);
        !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
    };
    san.parse::<std::net::IpAddr>().is_ok() || dns()
}

fn generate_key(what: &str) -> Result<KeyPair> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| Error::new(format!("cannot generate a P-256 key for {what}: {e}")))
}

fn name(common_name: &str, group: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(group) = group {
        dn.push(DnType::OrganizationName, group);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

fn write_pair(dir: &Path, stem: &str, cert_pem: &str, key_pem: &str) -> Result<CertFiles> {
    let files = CertFiles {
        cert: dir.join(format!("{stem}.crt")),
        key: dir.join(format!("{stem}.key")),
    };
    write_file(&files.cert, cert_pem, 0o644)?;
    write_file(&files.key, key_pem, 0o600)?;
    Ok(files)
}

/// Writes `contents` to `path` with `mode` (replacing the file).
pub(crate) fn write_file(path: &Path, contents: &str, mode: u32) -> Result<()> {
    let _ = fs::remove_file(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| Error::new(format!("cannot create {}: {e}", path.display())))?;
    f.write_all(contents.as_bytes())
        .map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binaries::test_temp_dir;

    #[test]
    fn issues_pem_pairs_with_private_keys_kept_private() {
        let pki = Pki::create(&test_temp_dir().join("pki-unit"), "unit-ca").unwrap();
        assert!(pki.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let files = pki
            .issue(&CertRequest::kubelet("n1", &["127.0.0.1", "n1"]))
            .unwrap();
        assert_eq!(files.cert, pki.dir().join("kubelet-n1.crt"));
        let key = fs::read_to_string(&files.key).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
        let mode = fs::metadata(&files.key).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let (private, public) = pki.signing_key("sa").unwrap();
        assert!(fs::read_to_string(public)
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----"));
        assert!(private.ends_with("sa.key"));
    }

    #[test]
    fn bad_requests_name_the_offending_value() {
        let pki = Pki::create(&test_temp_dir().join("pki-unit-bad"), "unit-ca").unwrap();
        let e = pki
            .issue(&CertRequest::client("../escape", "u", None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"../escape\" is not a plain file name"), "{e}");
        let e = pki
            .issue(&CertRequest::server("s", "s", &["not a name"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"not a name\" of s is neither"), "{e}");
    }
}
