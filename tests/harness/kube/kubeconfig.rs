//! Kubeconfig files for the harness's users.
//!
//! Strings are written as JSON strings, which YAML reads as double-quoted
//! scalars, so no path or token needs escaping by hand.

use std::path::Path;

use crate::error::Result;
use crate::kube::pki::{write_file, CertFiles};

/// How a kubeconfig's user authenticates.
pub(crate) enum Credential<'a> {
    /// A client certificate and its key.
    Cert(&'a CertFiles),
    /// A bearer token (a secret: the file is written with mode 0600).
    Token(&'a str),
}

/// Writes a one-context kubeconfig to `path` (mode 0600): cluster
/// `gossamer` at `server` trusted through `ca`, user `user`.
pub(crate) fn write(
    path: &Path,
    server: &str,
    ca: &Path,
    user: &str,
    credential: Credential<'_>,
) -> Result<()> {
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let p = |p: &Path| q(&p.to_string_lossy());
    let auth = match credential {
        Credential::Cert(files) => format!(
            "    client-certificate: {}\n    client-key: {}\n",
            p(&files.cert),
            p(&files.key)
        ),
        Credential::Token(token) => format!("    token: {}\n", q(token)),
    };
    let text = format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: gossamer\n  \
           cluster:\n    \
             server: {server}\n    \
             certificate-authority: {ca}\n\
         users:\n\
         - name: {user}\n  \
           user:\n\
         {auth}\
         contexts:\n\
         - name: gossamer\n  \
           context:\n    \
             cluster: gossamer\n    \
             user: {user}\n\
         current-context: gossamer\n",
        server = q(server),
        ca = p(ca),
        user = q(user),
    );
    write_file(path, &text, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binaries::test_temp_dir;
    use kube::config::Kubeconfig;

    #[test]
    fn odd_paths_and_tokens_survive_the_round_trip() {
        let dir = test_temp_dir().join("kubeconfig \"odd\": dir");
        std::fs::create_dir_all(&dir).unwrap();
        let files = CertFiles {
            cert: dir.join("a b.crt"),
            key: dir.join("a'b.key"),
        };
        let ca = dir.join("ca #1.crt");
        let cert_cfg = dir.join("cert.kubeconfig");
        write(
            &cert_cfg,
            "https://127.0.0.1:1",
            &ca,
            "u:1",
            Credential::Cert(&files),
        )
        .unwrap();
        let read = Kubeconfig::read_from(&cert_cfg).unwrap();
        let cluster = read.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:1"));
        assert_eq!(cluster.certificate_authority.as_deref(), ca.to_str());
        let user = read.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(read.auth_infos[0].name, "u:1");
        assert_eq!(user.client_certificate.as_deref(), files.cert.to_str());
        assert_eq!(user.client_key.as_deref(), files.key.to_str());

        let token_cfg = dir.join("token.kubeconfig");
        let token = "ey.J\"hb: #x";
        write(
            &token_cfg,
            "https://127.0.0.1:1",
            &ca,
            "u",
            Credential::Token(token),
        )
        .unwrap();
        let read = serde_json::to_value(Kubeconfig::read_from(&token_cfg).unwrap()).unwrap();
        assert_eq!(read["users"][0]["user"]["token"], token);
        let mode = std::fs::metadata(&token_cfg).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }
}
