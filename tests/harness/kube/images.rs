//! The images the test node runs, as OCI archives built by
//! `tests/kube/images.sh` (no Docker, no registry).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::binaries::{operator_binary, sidecar_binary, target_dir, workspace_root};
use crate::error::{Error, Result};

/// The environment variable naming a folder of built image archives
/// (`sidecar.oci.tar`, `operator.oci.tar`, `pause.oci.tar`); when unset,
/// `tests/kube/images.sh` builds them from this test's own binaries.
pub const IMAGES_ENV: &str = "GOSSAMER_IMAGES";

/// The sidecar image's reference (`imagePullPolicy: Never`).
pub const SIDECAR_IMAGE: &str = "gossamer.dev/sidecar:test";
/// The operator image's reference.
pub const OPERATOR_IMAGE: &str = "gossamer.dev/operator:test";
/// The sandbox image: a static program that sleeps, reaps and exits on
/// SIGTERM (`tests/kube/pause`).
pub const PAUSE_IMAGE: &str = "gossamer.dev/pause:test";

/// Image archives, one per image, to import into containerd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeImages {
    dir: PathBuf,
}

impl NodeImages {
    /// The archives of this test process: `$GOSSAMER_IMAGES` if set, else
    /// built (seconds when cached) into `<target>/images` by `bash
    /// tests/kube/images.sh` from [`sidecar_binary`] and
    /// [`operator_binary`]. Looked up once per process.
    ///
    /// # Errors
    /// If the folder lacks an archive or the script fails; the message
    /// holds the script's output.
    pub fn find() -> Result<&'static NodeImages> {
        static FOUND: OnceLock<std::result::Result<NodeImages, String>> = OnceLock::new();
        FOUND
            .get_or_init(|| locate().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::new(e.clone()))
    }

    /// The folder of archives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `(reference, archive)` of every image, the sandbox image first.
    pub fn archives(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            (PAUSE_IMAGE, self.dir.join("pause.oci.tar")),
            (SIDECAR_IMAGE, self.dir.join("sidecar.oci.tar")),
            (OPERATOR_IMAGE, self.dir.join("operator.oci.tar")),
        ]
    }

    fn check(self) -> Result<NodeImages> {
        for (image, archive) in self.archives() {
            if !archive.is_file() {
                return Err(Error::new(format!(
                    "image archive {} of {image} is missing; build the archives with \
                     `bash tests/kube/images.sh DIR` and export {IMAGES_ENV}=DIR",
                    archive.display()
                )));
            }
        }
        Ok(self)
    }
}

fn locate() -> Result<NodeImages> {
    if let Some(dir) = env::var_os(IMAGES_ENV).filter(|d| !d.is_empty()) {
        return NodeImages {
            dir: PathBuf::from(dir),
        }
        .check();
    }
    let script = workspace_root().join("tests/kube/images.sh");
    let dir = target_dir().join("images");
    let output = Command::new("bash")
        .arg(&script)
        .arg(&dir)
        .env("SIDECAR_BIN", sidecar_binary())
        .env("OPERATOR_BIN", operator_binary())
        .current_dir(workspace_root())
        .output()
        .map_err(|e| Error::new(format!("cannot run `bash {}`: {e}", script.display())))?;
    if !output.status.success() {
        return Err(Error::new(format!(
            "`bash {} {}` failed ({}); run it by hand to see why, or set {IMAGES_ENV}. \
             It said:\n{}",
            script.display(),
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    NodeImages { dir }.check()
}
