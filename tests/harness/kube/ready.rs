//! Waiting for the control plane: probes polled with a deadline while
//! every process is checked to be still running.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;

use crate::error::{Error, Result};
use crate::kube::block_on::block_on;
use crate::kube::control_plane::ControlPlane;
use crate::kube::supervised::{log_tail, Supervised};

/// How often readiness is probed.
const POLL: Duration = Duration::from_millis(100);
/// How long one probe request may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

impl ControlPlane {
    /// Waits until kube-apiserver's `/readyz` answers `ok` and the
    /// controller-manager has created ServiceAccount `default` in
    /// namespace `default`.
    ///
    /// # Errors
    /// If a process exits or `timeout` passes; the message holds the tail
    /// of the log of the process that was awaited.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        self.wait_apiserver(deadline)?;
        block_on(async {
            let client = self.client().await?;
            let sas = Api::<ServiceAccount>::namespaced(client, "default");
            self.poll(
                deadline,
                "ServiceAccount default/default",
                "kube-controller-manager",
                || async { Ok(sas.get_opt("default").await?.is_some()) },
            )
            .await
        })
    }

    /// Waits until `/readyz` answers `ok`.
    pub(crate) fn wait_apiserver(&self, deadline: Instant) -> Result<()> {
        block_on(async {
            let client = self.client().await?;
            self.poll(deadline, "kube-apiserver /readyz", "kube-apiserver", || {
                let client = client.clone();
                async move {
                    let req = http::Request::get("/readyz")
                        .body(Vec::new())
                        .map_err(|e| Error::new(format!("cannot build GET /readyz: {e}")))?;
                    Ok(client.request_text(req).await?.trim() == "ok")
                }
            })
            .await
        })
    }

    /// Calls `probe` every [`POLL`] until it returns `Ok(true)`, while every
    /// process runs and until `deadline`; `log_of` names the process whose
    /// log tail a timeout reports.
    pub(crate) async fn poll<F, Fut>(
        &self,
        deadline: Instant,
        what: &str,
        log_of: &str,
        mut probe: F,
    ) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<bool, ProbeError>>,
    {
        loop {
            self.check_running()
                .map_err(|e| e.context(format!("waiting for {what}")))?;
            let last = match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
                Ok(Ok(true)) => return Ok(()),
                Ok(Ok(false)) => "not yet".to_string(),
                Ok(Err(e)) => e.0,
                Err(_) => format!("no answer within {PROBE_TIMEOUT:?}"),
            };
            if Instant::now() >= deadline {
                return Err(Error::new(format!(
                    "{what} not ready in time (last probe: {last}); log {}:\n{}",
                    self.log_path(log_of).display(),
                    log_tail(&self.log_path(log_of), 40)
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `Err` if a process has exited.
    fn check_running(&self) -> Result<()> {
        self.lock_processes()
            .iter()
            .try_for_each(Supervised::check_running)
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }
}

/// A failed probe: its message is reported if the wait times out.
pub(crate) struct ProbeError(String);

impl From<kube::Error> for ProbeError {
    fn from(e: kube::Error) -> Self {
        ProbeError(e.to_string())
    }
}

impl From<Error> for ProbeError {
    fn from(e: Error) -> Self {
        ProbeError(e.to_string())
    }
}
