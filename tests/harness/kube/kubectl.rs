//! Running the built kubectl (never the one on `PATH`, which may be any
//! version) with an explicit kubeconfig.

use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;

use crate::error::{Error, Result};

/// Every kubectl call gives up on the API server after this long, so a
/// wedged server fails a test instead of hanging it.
const REQUEST_TIMEOUT: &str = "60s";

/// What a kubectl run printed and how it ended.
#[derive(Clone, Debug)]
pub struct KubectlOutput {
    /// The command line, for messages (`kubectl …` with the kubeconfig).
    pub command: String,
    /// How kubectl exited.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error (where kubectl prints errors such as
    /// `... is forbidden: User ... cannot list resource ...`).
    pub stderr: String,
}

impl KubectlOutput {
    /// Whether kubectl exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The standard output if kubectl succeeded.
    ///
    /// # Errors
    /// If it failed; the message holds the command, status and both
    /// outputs.
    pub fn ok(self) -> Result<String> {
        if self.success() {
            Ok(self.stdout)
        } else {
            Err(Error::new(format!(
                "`{}` failed ({}):\nstderr: {}\nstdout: {}",
                self.command,
                self.status,
                self.stderr.trim_end(),
                self.stdout.trim_end()
            )))
        }
    }
}

/// Runs `kubectl --kubeconfig <kubeconfig> --cache-dir <cache> args…`,
/// feeding `stdin` if given. `$KUBECONFIG` is removed from its environment
/// so nothing but `kubeconfig` is read.
pub(crate) fn run(
    kubectl: &Path,
    kubeconfig: &Path,
    cache_dir: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<KubectlOutput> {
    let mut cmd = Command::new(kubectl);
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache_dir)
        .arg(format!("--request-timeout={REQUEST_TIMEOUT}"))
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let command = format!(
        "{} --kubeconfig {} {}",
        kubectl.display(),
        kubeconfig.display(),
        args.join(" ")
    );
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::new(format!("cannot run `{command}`: {e}")))?;
    // Written from a thread: a large input must not deadlock against
    // kubectl's output filling its pipes.
    let feeder = match (stdin, child.stdin.take()) {
        (Some(text), Some(mut pipe)) => {
            let text = text.to_string();
            Some(thread::spawn(move || pipe.write_all(text.as_bytes())))
        }
        _ => None,
    };
    let output = child
        .wait_with_output()
        .map_err(|e| Error::new(format!("cannot wait for `{command}`: {e}")))?;
    if let Some(feeder) = feeder {
        match feeder.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) if output.status.success() => {
                return Err(Error::new(format!(
                    "cannot write stdin of `{command}`: {e}"
                )));
            }
            _ => {}
        }
    }
    Ok(KubectlOutput {
        command,
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
