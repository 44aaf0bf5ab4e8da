//! What the control client has done, for metrics, readiness and logs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Shared by the control client, the metrics endpoint and the readiness
/// probe.
#[derive(Debug, Default)]
pub struct ControlStatus {
    connected: AtomicBool,
    applied_version: AtomicU64,
    has_applied: AtomicBool,
    acks: AtomicU64,
    nacks: AtomicU64,
    connects: AtomicU64,
    failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl ControlStatus {
    /// True while a stream to the operator is open.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// The snapshot version running, once one was applied.
    pub fn applied_version(&self) -> Option<u64> {
        self.has_applied
            .load(Ordering::Relaxed)
            .then(|| self.applied_version.load(Ordering::Relaxed))
    }

    /// Snapshots applied and acknowledged.
    pub fn acks(&self) -> u64 {
        self.acks.load(Ordering::Relaxed)
    }

    /// Snapshots refused.
    pub fn nacks(&self) -> u64 {
        self.nacks.load(Ordering::Relaxed)
    }

    /// Streams opened (the first connect and every reconnect).
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    /// Connects or streams that failed.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Why the last connect, stream or snapshot failed, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(super) fn set_connected(&self, up: bool) {
        if up {
            self.connects.fetch_add(1, Ordering::Relaxed);
        }
        self.connected.store(up, Ordering::Relaxed);
    }

    pub(super) fn applied(&self, version: u64) {
        self.applied_version.store(version, Ordering::Relaxed);
        self.has_applied.store(true, Ordering::Relaxed);
        self.acks.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn refused(&self, why: String) {
        self.nacks.fetch_add(1, Ordering::Relaxed);
        self.set_error(Some(why));
    }

    pub(super) fn failed(&self, why: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.set_error(Some(why));
    }

    pub(super) fn set_error(&self, e: Option<String>) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = e;
    }
}
