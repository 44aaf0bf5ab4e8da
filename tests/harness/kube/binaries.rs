//! Where the Kubernetes binaries are: built by `tests/kube/install.sh` from
//! the Go module proxy at the versions pinned in `tests/kube/versions.sh`.

use std::env;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::binaries::workspace_root;
use crate::error::{Error, Result};
use crate::kube::supervised::log_tail;

/// The environment variable naming the folder of built binaries; when
/// unset, `tests/kube/install.sh` is run to find (and if needed build) it.
pub const KUBE_BIN_ENV: &str = "GOSSAMER_KUBE_BIN";

/// The folder holding kube-apiserver, kube-controller-manager, kubectl,
/// etcd and helm (and kubelet, kube-scheduler, kube-proxy when built with
/// `KUBE_EXTRA`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeBinaries {
    dir: PathBuf,
}

impl KubeBinaries {
    /// The binaries of this test process: from `$GOSSAMER_KUBE_BIN` if set,
    /// else the folder `bash tests/kube/install.sh` prints on its last line
    /// (seconds when already built; a cold build takes about 20 minutes).
    /// Looked up once per process.
    ///
    /// # Errors
    /// If the variable names no folder or the install script fails; the
    /// message says how to build them. Tests MUST fail on this, never skip.
    pub fn find() -> Result<&'static KubeBinaries> {
        static FOUND: OnceLock<std::result::Result<KubeBinaries, String>> = OnceLock::new();
        FOUND
            .get_or_init(|| locate().map_err(|e| format!("{e:?}")))
            .as_ref()
            .map_err(|e| Error::new(e.clone()))
    }

    /// Binaries in `dir`, unchecked.
    pub fn in_dir(dir: impl Into<PathBuf>) -> KubeBinaries {
        KubeBinaries { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The executable `name` (e.g. `kube-apiserver`).
    ///
    /// # Errors
    /// If it is missing or not executable; the message names the path and
    /// the command that builds it.
    pub fn get(&self, name: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        let executable = fs::metadata(&path)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        if executable {
            Ok(path)
        } else {
            Err(Error::new(format!(
                "Kubernetes binary {} is missing or not executable. Build it with \
                 `bash tests/kube/install.sh` (node parts: `bash tests/kube/node-install.sh`) \
                 and export {KUBE_BIN_ENV} as the folder it prints on its last line",
                path.display()
            )))
        }
    }
}

fn locate() -> Result<KubeBinaries> {
    if let Some(dir) = env::var_os(KUBE_BIN_ENV).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            return Err(Error::new(format!(
                "{KUBE_BIN_ENV}={} is not a folder; unset it or point it at the folder \
                 `bash tests/kube/install.sh` prints on its last line",
                dir.display()
            )));
        }
        return Ok(KubeBinaries { dir });
    }
    let script = workspace_root().join("tests/kube/install.sh");
    let output = Command::new("bash")
        .arg(&script)
        .current_dir(workspace_root())
        .output()
        .map_err(|e| Error::new(format!("cannot run `bash {}`: {e}", script.display())))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        return Err(Error::new(format!(
            "`bash {}` failed ({}); run it by hand to see why, or set {KUBE_BIN_ENV}. \
             Its stderr ends:\n{tail}",
            script.display(),
            output.status
        )));
    }
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    let dir = last.map(|l| PathBuf::from(l.trim())).filter(|d| d.is_dir());
    dir.map(|dir| KubeBinaries { dir }).ok_or_else(|| {
        Error::new(format!(
            "`bash {}` succeeded but its last line {:?} is not a folder",
            script.display(),
            last.unwrap_or("")
        ))
    })
}

/// The versions pinned in `tests/kube/versions.sh`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeVersions {
    /// `KUBE_VERSION`, e.g. `v1.37.2`.
    pub kube: String,
    /// `ETCD_VERSION`, e.g. `v3.6.16`.
    pub etcd: String,
    /// `HELM_VERSION`, e.g. `v4.3.2`.
    pub helm: String,
}

impl KubeVersions {
    /// Reads `tests/kube/versions.sh`.
    ///
    /// # Errors
    /// If the file cannot be read or lacks one of the three assignments.
    pub fn pinned() -> Result<KubeVersions> {
        let path = workspace_root().join("tests/kube/versions.sh");
        let text = fs::read_to_string(&path)
            .map_err(|e| Error::new(format!("cannot read {}: {e}", path.display())))?;
        let get = |var: &str| -> Result<String> {
            text.lines()
                .filter_map(|l| l.trim().strip_prefix(var)?.strip_prefix('='))
                .map(|v| v.trim().trim_matches('"').to_string())
                .next()
                .ok_or_else(|| {
                    Error::new(format!(
                        "{} has no `{var}=\"...\"` line:\n{}",
                        path.display(),
                        log_tail(&path, 20)
                    ))
                })
        };
        Ok(KubeVersions {
            kube: get("KUBE_VERSION")?,
            etcd: get("ETCD_VERSION")?,
            helm: get("HELM_VERSION")?,
        })
    }
}
