//! The late-tick detector: when the protocol loop wakes for a timer more
//! than twice as late as it asked, the process is likely overloaded (CPU
//! starved, throttled by its cgroup, or paused), and its probes and gossip
//! go out late too, which peers may read as a failure. Each late wake is
//! counted; a warning says "likely overloaded", at most once per
//! [`WARN_EVERY`], as etcd's raft node warns when its ticks come late.

use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

/// At most one warning per this long.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// Lateness below this is scheduler noise, not overload.
const FLOOR: Duration = Duration::from_millis(10);

/// Counts late wakes and rate-limits the warning.
#[derive(Debug, Default)]
pub struct LateTicks {
    late: u64,
    since_warning: u64,
    last_warning: Option<Instant>,
}

impl LateTicks {
    /// Records a timer wake: armed at `armed` for `deadline`, woken at
    /// `woke`. Returns whether it was late: more than twice the asked delay
    /// after arming, and at least [`FLOOR`] past the deadline.
    pub fn record(&mut self, armed: Instant, deadline: Instant, woke: Instant) -> bool {
        let asked = deadline.saturating_duration_since(armed);
        let took = woke.saturating_duration_since(armed);
        let over = woke.saturating_duration_since(deadline);
        if took <= asked * 2 || over < FLOOR {
            return false;
        }
        self.late += 1;
        self.since_warning += 1;
        if self
            .last_warning
            .is_none_or(|t| woke.saturating_duration_since(t) >= WARN_EVERY)
        {
            warn!(
                asked_ms = asked.as_millis() as u64,
                took_ms = took.as_millis() as u64,
                late_wakes = self.since_warning,
                "protocol loop woke late: likely overloaded (probes and gossip go out late; peers may suspect this node)"
            );
            self.last_warning = Some(woke);
            self.since_warning = 0;
        }
        true
    }

    /// Late wakes so far.
    pub fn count(&self) -> u64 {
        self.late
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn only_wakes_over_twice_the_asked_delay_and_past_the_floor_count() {
        let t0 = Instant::now();
        let mut l = LateTicks::default();
        // On time, or late within 2x.
        assert!(!l.record(t0, t0 + ms(100), t0 + ms(100)));
        assert!(!l.record(t0, t0 + ms(100), t0 + ms(200)));
        // Over 2x.
        assert!(l.record(t0, t0 + ms(100), t0 + ms(201)));
        // Over 2x of a tiny delay but within the noise floor.
        assert!(!l.record(t0, t0 + ms(1), t0 + ms(5)));
        // A deadline already past when armed: any wake 10 ms past it counts.
        assert!(l.record(t0, t0, t0 + ms(10)));
        assert_eq!(l.count(), 2);
    }

    #[test]
    fn the_warning_is_rate_limited_but_every_late_wake_is_counted() {
        let t0 = Instant::now();
        let mut l = LateTicks::default();
        for i in 0..100u64 {
            let armed = t0 + ms(i * 100);
            assert!(l.record(armed, armed + ms(10), armed + ms(50)));
        }
        assert_eq!(l.count(), 100);
        // 100 late wakes within 10 s: one warning, at the first.
        assert_eq!(l.last_warning, Some(t0 + ms(50)));
        assert_eq!(l.since_warning, 99);
    }
}
