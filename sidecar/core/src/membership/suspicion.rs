//! Lifeguard suspicion timeouts and local health awareness.

use std::collections::HashSet;
use std::time::{Duration, Instant};

/// memberlist's minimum suspicion timeout:
/// `mult * max(1, log10(max(1, n))) * interval`, at millisecond precision.
pub fn suspicion_timeout(mult: usize, n: usize, interval: Duration) -> Duration {
    let scale = (n.max(1) as f64).log10().max(1.0);
    let scaled_ms = (scale * 1000.0) as u128;
    let nanos = mult as u128 * scaled_ms * interval.as_nanos() / 1000;
    Duration::from_nanos(nanos.min(u64::MAX as u128) as u64)
}

/// A suspicion of one node: starts at `max` and shrinks towards `min` on a
/// log scale as independent members confirm it (Lifeguard).
#[derive(Debug, Clone)]
pub struct Suspicion {
    start: Instant,
    min: Duration,
    max: Duration,
    /// Confirmations expected before the timeout reaches `min`.
    k: usize,
    /// Independent confirmations received so far.
    n: usize,
    confirmed_by: HashSet<String>,
}

impl Suspicion {
    /// Starts a suspicion raised by `from` at `now`.
    pub fn new(from: &str, k: usize, min: Duration, max: Duration, now: Instant) -> Self {
        let mut confirmed_by = HashSet::new();
        confirmed_by.insert(from.to_string());
        Suspicion {
            start: now,
            min,
            max,
            k,
            n: 0,
            confirmed_by,
        }
    }

    /// Records a confirmation from `from`; true when it was new and counted
    /// (and so is worth re-broadcasting).
    pub fn confirm(&mut self, from: &str) -> bool {
        if self.n >= self.k {
            return false;
        }
        if !self.confirmed_by.insert(from.to_string()) {
            return false;
        }
        self.n += 1;
        true
    }

    /// Confirmations counted.
    pub fn confirmations(&self) -> usize {
        self.n
    }

    /// When the suspected node is declared dead.
    pub fn deadline(&self) -> Instant {
        if self.k < 1 {
            return self.start + self.min;
        }
        let frac = ((self.n as f64) + 1.0).ln() / ((self.k as f64) + 1.0).ln();
        let raw = self.max.as_secs_f64() - frac * (self.max.as_secs_f64() - self.min.as_secs_f64());
        let timeout = Duration::from_millis((raw * 1000.0).floor().max(0.0) as u64).max(self.min);
        self.start + timeout
    }
}

/// Local health (Lifeguard's awareness): 0 is healthy; each missed nack or
/// refutation raises it, each good probe lowers it; it stretches the probe
/// interval so a struggling node slows down instead of accusing others.
#[derive(Debug, Clone)]
pub struct Awareness {
    max: usize,
    score: usize,
}

impl Awareness {
    /// A healthy score with the given maximum multiplier.
    pub fn new(max: usize) -> Self {
        Awareness {
            max: max.max(1),
            score: 0,
        }
    }

    /// Adds `delta`, clamped to `0..max`.
    pub fn apply(&mut self, delta: i64) {
        let s = (self.score as i64 + delta).clamp(0, self.max as i64 - 1);
        self.score = s as usize;
    }

    /// The current score (0 is healthy).
    pub fn score(&self) -> usize {
        self.score
    }

    /// `timeout * (score + 1)`.
    pub fn scale(&self, timeout: Duration) -> Duration {
        timeout * (self.score as u32 + 1)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // an arbitrary origin for virtual time
mod tests {
    use super::*;

    #[test]
    fn timeout_scales_with_log_n() {
        let s = Duration::from_secs(1);
        assert_eq!(suspicion_timeout(4, 1, s), Duration::from_secs(4));
        assert_eq!(suspicion_timeout(4, 10, s), Duration::from_secs(4));
        assert_eq!(suspicion_timeout(4, 100, s), Duration::from_secs(8));
        assert_eq!(suspicion_timeout(4, 1000, s), Duration::from_secs(12));
        assert_eq!(suspicion_timeout(4, 50, s), Duration::from_millis(4 * 1698));
    }

    #[test]
    fn confirmations_shrink_timeout_to_min() {
        let t0 = Instant::now();
        let min = Duration::from_secs(4);
        let max = Duration::from_secs(24);
        let mut s = Suspicion::new("a", 2, min, max, t0);
        assert_eq!(s.deadline() - t0, max);
        assert!(s.confirm("b"));
        assert!(!s.confirm("b"), "same member twice counts once");
        assert!(!s.confirm("a"), "the accuser does not confirm itself");
        let mid = s.deadline() - t0;
        assert!(mid < max && mid > min, "{mid:?}");
        assert!(s.confirm("c"));
        assert_eq!(s.deadline() - t0, min);
        assert!(!s.confirm("d"), "no more than k confirmations");
    }

    #[test]
    fn no_expected_confirmations_means_min() {
        let t0 = Instant::now();
        let s = Suspicion::new("a", 0, Duration::from_secs(3), Duration::from_secs(18), t0);
        assert_eq!(s.deadline() - t0, Duration::from_secs(3));
    }

    #[test]
    fn awareness_clamps_and_scales() {
        let mut a = Awareness::new(8);
        a.apply(-1);
        assert_eq!(a.score(), 0);
        a.apply(100);
        assert_eq!(a.score(), 7);
        assert_eq!(a.scale(Duration::from_secs(1)), Duration::from_secs(8));
    }
}
