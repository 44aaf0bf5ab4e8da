//! Running the harness's async probes from its blocking API.

use std::future::Future;
use std::thread;

use crate::error::{Error, Result};

/// Runs `fut` to completion on a private current-thread Tokio runtime on a
/// scoped thread, so it works both from plain `#[test]`s and from inside a
/// test's own runtime (where nesting `block_on` would panic). The calling
/// thread blocks meanwhile.
pub(crate) fn block_on<T, F>(fut: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send,
    T: Send,
{
    thread::scope(|s| {
        let worker = thread::Builder::new()
            .name("gossamer-kube-probe".into())
            .spawn_scoped(s, || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Error::new(format!("cannot build a Tokio runtime: {e}")))?
                    .block_on(fut)
            })
            .map_err(|e| Error::new(format!("cannot start a probe thread: {e}")))?;
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
