//! A Lamport clock, as serf's `LamportClock`.

/// A Lamport clock: [`LamportClock::increment`] for a local event,
/// [`LamportClock::witness`] for a remote one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LamportClock(u64);

impl LamportClock {
    /// The current time.
    pub fn time(&self) -> u64 {
        self.0
    }

    /// Advances the clock and returns the new time.
    pub fn increment(&mut self) -> u64 {
        self.0 = self.0.saturating_add(1);
        self.0
    }

    /// Moves the clock past `t` if `t` is not older than the current time
    /// (serf: `if other < cur { return }; cur = other + 1`).
    pub fn witness(&mut self, t: u64) {
        if t >= self.0 {
            self.0 = t.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witness_moves_past_newer_and_equal_times_only() {
        let mut c = LamportClock::default();
        assert_eq!(c.increment(), 1);
        c.witness(5);
        assert_eq!(c.time(), 6);
        c.witness(3);
        assert_eq!(c.time(), 6);
        c.witness(6);
        assert_eq!(c.time(), 7);
        assert_eq!(c.increment(), 8);
        c.witness(u64::MAX);
        assert_eq!(c.increment(), u64::MAX);
    }
}
