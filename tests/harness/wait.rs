//! Waiting for a condition with a deadline, instead of sleeping for a time
//! that is probably long enough.

use std::fmt::Debug;
use std::thread;
use std::time::{Duration, Instant};

/// How often [`wait_until`] asks again.
pub const POLL: Duration = Duration::from_millis(50);

/// Calls `probe` every [`POLL`] until it returns `Ok`, and returns that
/// value. While the condition does not hold, `probe` returns `Err` with
/// what it observed, which the panic message shows if time runs out.
///
/// `probe` is always called at least once, and once more at or after the
/// deadline, so a condition that holds by then is not reported as a
/// timeout.
///
/// # Panics
/// If `timeout` passes without `probe` returning `Ok`: the message names
/// `what` was awaited and the last observed state (`{:#?}`).
pub fn wait_until<T, S: Debug>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<T, S>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe() {
            Ok(v) => return v,
            Err(last) => last,
        };
        let now = Instant::now();
        if now >= deadline {
            panic!("not within {timeout:?}: {what}; last observed: {last:#?}");
        }
        thread::sleep(POLL.min(deadline - now));
    }
}
