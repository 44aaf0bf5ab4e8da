//! Catch-up push/pulls: Gossamer's answer to memberlist's slow mode.
//!
//! memberlist spreads a join or a leave by gossip alone, each node sending
//! each message `retransmit_mult * ceil(log10(n + 1))` times. Such an
//! epidemic misses each node with probability about `e^-limit` (2 sends
//! with the Local profile, 8 at 64 LAN nodes), and a node it missed learns
//! the news only at its next periodic push/pull, 15 s to minutes later. When
//! a Deployment's pods all join one seed at once, the early joiners hear of
//! the late ones only by gossip, and often one of them misses one.
//!
//! Three changes, all invisible on the wire:
//!
//! - **A transmit floor.** Membership news is sent at least
//!   [`MIN_TRANSMITS`] times, however small the cluster: memberlist's
//!   formula gives 2 (Local) or 4 (LAN) below 10 members, where an epidemic
//!   misses a given node with a probability of 13 % or 2 %, and the extra
//!   sends cost next to nothing at that size.
//! - **Catch-up push/pulls.** A node that saw the member list change (a
//!   member new or back, a member dead or left; a joiner sees all of them
//!   at its join) runs ordinary push/pulls with random live members, one
//!   every 1 to 2 gossip intervals, [`rounds`] of them after the last
//!   change it saw; a round whose partner knew fewer members and taught
//!   nothing does not count. A node the gossip missed is caught by its own next
//!   catch-up (it saw other changes of the same wave) or by the catch-ups
//!   the others push into it; what it learns from a push/pull it
//!   re-gossips with a fresh transmit budget, as memberlist's `mergeState`
//!   does. Fewer rounds run in larger clusters, whose gossip budget is
//!   larger, so a single join costs about one push/pull per member there.
//!   The rounds draw on a token bucket of [`budget`] catch-ups, refilled
//!   one token at a time (every 2 s at 64 LAN members, 4 s at 1,000) and
//!   whole at each periodic push/pull, so steady churn cannot turn into a
//!   push/pull storm.
//! - **Newest news first.** The membership broadcast queue sends the
//!   messages sent fewest times first and, among them, the newest, whatever
//!   their size ([`super::BroadcastQueue::newest_first`]).
//!
//! At 1,000 nodes joining one seed within a second, the three together take
//! the simulator's all-see-all time from 4.8 s to 1.3 s after the last join
//! (the queue order alone: 2.1 s).
//!
//! A Go memberlist peer sees more of the usual gossip and push/pulls.

use std::time::{Duration, Instant};

use rand::Rng;

use super::{retransmit_limit, Delegate, Membership, NodeStatus, Timer};

/// Membership news is sent at least this many times (not with
/// `memberlist_exact`).
pub(super) const MIN_TRANSMITS: usize = 6;

/// Gossip sends plus catch-up rounds aimed at: a node missed by both has
/// a chance of about `e^-TARGET`.
const TARGET: usize = 10;

/// Catch-up rounds after the last change seen, when each broadcast is
/// sent `limit` times: fewer where gossip alone reaches further.
pub(super) fn rounds(limit: usize) -> u32 {
    TARGET.saturating_sub(limit).clamp(2, 4) as u32
}

/// The catch-up token bucket's size: the rounds after two bursts, plus
/// what a second-long join wave needs.
pub(super) fn budget(rounds: u32) -> u32 {
    2 * rounds + 6
}

/// The catch-up machinery's state.
#[derive(Debug, Default)]
pub(super) struct CatchUp {
    /// Member list changes seen (joins, returns, deaths, leaves of others).
    pub news: u64,
    /// `news` when last looked at.
    seen: u64,
    /// Catch-ups still to run for the changes seen.
    rounds_left: u32,
    /// A catch-up timer is armed.
    armed: bool,
    /// Catch-ups run and not yet given back.
    spent: u32,
    /// When a spent catch-up was last given back (or none was spent).
    regained_at: Option<Instant>,
}

impl<D: Delegate> Membership<D> {
    /// The transmit limit of membership broadcasts at the present size.
    pub(super) fn transmit_limit(&self) -> usize {
        let limit = retransmit_limit(self.cfg.retransmit_mult, self.order.len());
        if self.cfg.memberlist_exact {
            limit
        } else {
            limit.max(MIN_TRANSMITS)
        }
    }

    /// After an input: new changes restart the rounds; a round is armed
    /// when none is and the budget allows.
    pub(super) fn catch_up_check(&mut self, now: Instant) {
        if self.cfg.memberlist_exact || self.left {
            return;
        }
        if self.catch_up.news != self.catch_up.seen {
            self.catch_up.seen = self.catch_up.news;
            self.catch_up.rounds_left = rounds(self.transmit_limit());
        }
        self.catch_up_arm(now);
    }

    fn catch_up_arm(&mut self, now: Instant) {
        self.catch_up_regain(now);
        let c = &self.catch_up;
        if c.armed || c.rounds_left == 0 {
            return;
        }
        let every = self.cfg.gossip_interval.max(Duration::from_millis(50));
        let jitter = Duration::from_nanos(self.rng.random_range(0..every.as_nanos() as u64));
        let mut at = now + every + jitter;
        if c.spent >= budget(rounds(self.transmit_limit())) {
            // Out of budget: the next round waits for the next token.
            at = at.max(c.regained_at.unwrap_or(now) + self.catch_up_token_every());
        }
        self.catch_up.armed = true;
        self.arm(at, Timer::CatchUp);
    }

    /// One spent catch-up comes back this often: the budget is a token
    /// bucket, so churn that goes on (a rolling restart of every pod) still
    /// gets a catch-up now and then, at a rate that falls as push/pulls
    /// grow with the cluster: every 5 gossip intervals per digit of the
    /// member count (2 s at 64 LAN members, 4 s at 1,000).
    fn catch_up_token_every(&self) -> Duration {
        let digits = retransmit_limit(1, self.order.len()).max(1) as u32;
        self.cfg.gossip_interval.max(Duration::from_millis(50)) * 5 * digits
    }

    /// Gives back the tokens earned since the last one came back.
    fn catch_up_regain(&mut self, now: Instant) {
        let every = self.catch_up_token_every();
        let c = &mut self.catch_up;
        let Some(since) = c.regained_at else {
            c.regained_at = Some(now);
            return;
        };
        if c.spent == 0 {
            c.regained_at = Some(now);
            return;
        }
        let earned =
            (now.saturating_duration_since(since).as_nanos() / every.as_nanos().max(1)) as u32;
        if earned > 0 {
            c.spent = c.spent.saturating_sub(earned);
            c.regained_at = Some(since + every * earned);
        }
    }

    /// The catch-up timer: one push/pull with a random live member.
    pub(super) fn catch_up_fire(&mut self, now: Instant) {
        self.catch_up.armed = false;
        self.catch_up_regain(now);
        if self.left || self.catch_up.rounds_left == 0 {
            return;
        }
        if self.catch_up.spent >= budget(rounds(self.transmit_limit())) {
            self.catch_up_arm(now);
            return;
        }
        self.catch_up.rounds_left -= 1;
        let me = self.cfg.name.clone();
        let target = self.random_nodes(1, |n| {
            n.member.name == me || n.member.status != NodeStatus::Alive
        });
        if let Some((addr, _, _)) = target.first() {
            self.catch_up.spent += 1;
            self.stats.catch_ups += 1;
            self.start_push_pull(*addr, None, true, now);
        }
        self.catch_up_arm(now);
    }

    /// A catch-up's answer was merged. A partner that knew fewer members
    /// than this node and taught it nothing was behind: the round says
    /// nothing about what this node still misses, so it does not count
    /// (the budget still does). In a join wave the last joiners start with
    /// the seed's near-complete list, and their first partners are mostly
    /// early joiners that know less.
    pub(super) fn catch_up_answered(&mut self, partner_behind: bool, now: Instant) {
        if !partner_behind || self.left {
            return;
        }
        let most = rounds(self.transmit_limit());
        self.catch_up.rounds_left = (self.catch_up.rounds_left + 1).min(most);
        self.catch_up_arm(now);
    }

    /// The periodic push/pull ran: the catch-up budget is full again.
    pub(super) fn catch_up_refill(&mut self) {
        self.catch_up.spent = 0;
    }
}
