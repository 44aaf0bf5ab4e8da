//! The cluster sentinel: partition detection and re-bootstrap, as early
//! CockroachDB gossip does it.
//!
//! One info (the sentinel, its value the cluster id) is kept fresh by one
//! member; every node that sees it expire considers itself cut off from
//! the cluster ("partitioned") and rejoins until it sees the sentinel again.
//!
//! # Who writes it
//!
//! - **Whoever holds it.** The writer is the origin of the sentinel every
//!   node holds: it rewrites it every third of the TTL. There is no
//!   election message and no per-node state in gossip, so an idle cluster
//!   pays for one info every TTL / 3 and nothing else; each node relays a
//!   rewrite memberlist's retransmit count of times (no higher floor, see
//!   `Infos::set_refreshed`), since missing one leaves the one before.
//! - **Taking over.** A node steps up when the sentinel is missing, its
//!   origin is not alive in this node's view (suspect, dead or left), or it
//!   has not been rewritten for one and a half refresh intervals (the
//!   writer turned unhealthy or lost its quorum). It waits a random delay
//!   below a quarter of the interval first, plus a quarter when it has been
//!   up for less than one TTL (so a Pod of a rollout still under way is not
//!   chosen over long-lived members), and looks again. Two writers that
//!   step up together settle within one refresh: both see the later write
//!   (a newer origin timestamp wins everywhere), and the one whose write
//!   lost stops.
//! - **Healthy.** Its Lifeguard health score is below
//!   [`MAX_WRITER_HEALTH`].
//! - **With a quorum.** It writes only while it sees a strict majority of
//!   the members it knows alive (not suspect; members that left
//!   gracefully or were declared departed are forgotten, failed ones are
//!   not). Without this, a node cut off alone would soon take the sentinel
//!   over and keep its own copy fresh, and never notice. The price: a
//!   cluster that loses half its members for good without them leaving or
//!   being declared departed (the operator does that in Kubernetes) has
//!   nobody to write it, and reports partitioned until they return.
//!
//! Timing, with the default TTL of 2 minutes (early CockroachDB's): a writer
//! that fails wrote at most 40 s before; failure detection (a few probe
//! intervals), the next check (every 10 s), the step-up delay (at most
//! 20 s) and gossip (about a second at 1,000 members) take about 35 s,
//! well inside the 80 s left. The TTL is also how long a node cut off from
//! the majority takes to notice: memberlist's failure detection handles
//! members that fail; the sentinel is for a split that membership alone
//! would not heal, where a minute or two is soon enough, and a shorter TTL
//! costs idle bytes on every node (one rewrite per TTL / 3).
//!
//! # Detection and rejoin
//!
//! A node that has seen the sentinel live and then sees it expire is
//! partitioned since the expiry. While partitioned it rejoins, with
//! exponential backoff from [`REJOIN_MIN`] to [`REJOIN_MAX`], through the
//! bootstrap addresses the shell gives it and every member it knows but
//! does not see alive, so that the original seeds being gone does not
//! matter while some member it knew is back. The shell's join loop also
//! rejoins through the (re-resolved) bootstrap peers, and logs and exports
//! the state. A node that has never seen the sentinel is bootstrapping,
//! not partitioned.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A node whose Lifeguard health score (failed probes and missed nacks,
/// less successes) reaches this does not write the sentinel: a node cut
/// off fails every probe and gets here within two probe intervals, long
/// before its membership view (slowed down by that same score) declares
/// the others dead and loses the quorum.
pub const MAX_WRITER_HEALTH: usize = 2;
/// First delay between rejoin tries.
pub const REJOIN_MIN: Duration = Duration::from_secs(1);
/// Longest delay between rejoin tries.
pub const REJOIN_MAX: Duration = Duration::from_secs(30);

/// The sentinel's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelConfig {
    /// The sentinel's key.
    pub key: String,
    /// Its value: the cluster's id.
    pub cluster_id: String,
    /// Its time to live: how long after its writer is cut off a node
    /// notices. Rewritten every third of it. Default 2 minutes.
    pub ttl: Duration,
}

impl SentinelConfig {
    /// Defaults for cluster `cluster_id`: key `gossamer/sentinel`, TTL
    /// 2 minutes.
    pub fn new(cluster_id: impl Into<String>) -> Self {
        SentinelConfig {
            key: "gossamer/sentinel".into(),
            cluster_id: cluster_id.into(),
            ttl: Duration::from_secs(120),
        }
    }

    /// How often the writer rewrites it.
    fn refresh(&self) -> Duration {
        self.ttl / 3
    }

    /// How often every node looks at who writes it.
    fn check(&self) -> Duration {
        self.refresh() / 4
    }
}

/// What a node does about the sentinel now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// It writes it.
    Writer,
    /// Nobody (that it sees alive and on time) does: it may step up.
    Candidate,
    /// Another member writes it, or this node may not (unhealthy, no
    /// quorum).
    Follower,
}

/// What a node knows of the sentinel, and its partition state.
#[derive(Debug)]
pub(super) struct Sentinel {
    pub(super) cfg: SentinelConfig,
    /// When this node enabled the sentinel.
    pub(super) started: Instant,
    /// The next look at who writes it.
    pub(super) next_check: Instant,
    /// When this node steps up, unless someone writes it first.
    pub(super) step_up_at: Option<Instant>,
    /// The latest expiry of the sentinel seen live; `None`: never seen.
    pub(super) last_expiry_ms: Option<u64>,
    /// Members known, for the quorum (this node excluded).
    pub(super) known: BTreeSet<String>,
    pub(super) bootstrap: Vec<SocketAddr>,
    pub(super) next_rejoin: Option<Instant>,
    pub(super) rejoin_delay: Duration,
    /// Rejoin tries since the partition began, and in all.
    pub(super) rejoins: u64,
    /// Partitions detected.
    pub(super) partitions: u64,
}

impl Sentinel {
    pub(super) fn new(cfg: SentinelConfig, now: Instant) -> Self {
        Sentinel {
            cfg,
            started: now,
            next_check: now,
            step_up_at: None,
            last_expiry_ms: None,
            known: BTreeSet::new(),
            bootstrap: Vec::new(),
            next_rejoin: None,
            rejoin_delay: REJOIN_MIN,
            rejoins: 0,
            partitions: 0,
        }
    }

    /// Partitioned since this wall-clock time (Unix ms), given the
    /// sentinel is not live at `wall_ms`.
    pub(super) fn partitioned_since(&self, live: bool, wall_ms: u64) -> Option<u64> {
        match self.last_expiry_ms {
            Some(exp) if !live && exp <= wall_ms => Some(exp),
            _ => None,
        }
    }

    /// The next rejoin delay (doubling, capped).
    pub(super) fn backoff(&mut self) -> Duration {
        let d = self.rejoin_delay;
        self.rejoin_delay = (self.rejoin_delay * 2).min(REJOIN_MAX);
        d
    }
}

/// What the node reports of the sentinel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelStatus {
    /// Partitioned for this long (the sentinel expired that long ago and
    /// has not been seen since); `None`: not partitioned.
    pub partitioned_for: Option<Duration>,
    /// Whether this node writes the sentinel now.
    pub writer: bool,
    /// Partitions detected so far.
    pub partitions: u64,
    /// Rejoin tries made while partitioned, in all.
    pub rejoins: u64,
    /// Where the next rejoin goes: bootstrap addresses and members known
    /// but not seen alive.
    pub rejoin_targets: Vec<SocketAddr>,
}

use super::Node;
use crate::infos::InfosError;
use crate::membership::NodeStatus;

impl Node {
    /// Starts keeping the cluster sentinel (see [`SentinelConfig`]). Off
    /// until called. The wall clock MUST be anchored first
    /// ([`Node::set_wall_clock`]): the sentinel's freshness is read from it.
    ///
    /// # Errors
    /// The TTL is below 2 s or above the infos' longest TTL.
    pub fn enable_sentinel(&mut self, cfg: SentinelConfig, now: Instant) -> Result<(), InfosError> {
        let max = self.infos().config().max_ttl;
        if cfg.ttl < Duration::from_secs(2) || cfg.ttl > max {
            return Err(InfosError::TtlOutOfRange {
                key: cfg.key.clone(),
                ttl: cfg.ttl,
                min: Duration::from_secs(2),
                max,
            });
        }
        self.m.delegate_mut().infos.set_refreshed(&cfg.key);
        let mut s = Sentinel::new(cfg, now);
        let me = self.m.name().to_string();
        s.known = self
            .m
            .members()
            .into_iter()
            .filter(|m| m.name != me && m.status != NodeStatus::Left)
            .map(|m| m.name)
            .collect();
        self.sentinel = Some(s);
        self.sentinel_tick(now);
        self.route(now);
        Ok(())
    }

    /// The addresses to rejoin through while partitioned, besides the
    /// members known (the shell's resolved bootstrap peers).
    pub fn set_bootstrap(&mut self, addrs: Vec<SocketAddr>) {
        if let Some(s) = &mut self.sentinel {
            s.bootstrap = addrs;
        }
    }

    /// How long this node has been partitioned: the sentinel it saw live
    /// expired that long ago and has not been seen since. `None` when not
    /// partitioned, or the sentinel is off.
    pub fn partitioned_for(&self, now: Instant) -> Option<Duration> {
        let s = self.sentinel.as_ref()?;
        let infos = self.infos();
        let wall = infos.wall_ms(now);
        let live = infos.get(&s.cfg.key, now).is_some();
        let since = s.partitioned_since(live, wall)?;
        Some(Duration::from_millis(wall - since))
    }

    /// The sentinel's state; `None` when it is off.
    pub fn sentinel_status(&self, now: Instant) -> Option<SentinelStatus> {
        let s = self.sentinel.as_ref()?;
        Some(SentinelStatus {
            partitioned_for: self.partitioned_for(now),
            writer: self.sentinel_role(now) == Role::Writer,
            partitions: s.partitions,
            rejoins: s.rejoins,
            rejoin_targets: self.rejoin_targets(),
        })
    }

    pub(super) fn sentinel_timeout(&self) -> Option<Instant> {
        let s = self.sentinel.as_ref()?;
        Some(
            [s.next_rejoin, s.step_up_at]
                .into_iter()
                .flatten()
                .fold(s.next_check, Instant::min),
        )
    }

    /// A member changed: keep the quorum's base.
    pub(super) fn sentinel_member(&mut self, name: &str, status: NodeStatus) {
        let me = self.m.name().to_string();
        let Some(s) = &mut self.sentinel else {
            return;
        };
        if name == me {
            return;
        }
        if status == NodeStatus::Left {
            s.known.remove(name);
        } else {
            s.known.insert(name.to_string());
        }
    }

    /// Whether this node sees a strict majority of the members it knows
    /// alive (itself included). Suspects do not count: a node cut off
    /// suspects everyone within a probe round, long before it declares
    /// them dead.
    fn sentinel_quorum(&self) -> bool {
        let Some(s) = &self.sentinel else {
            return false;
        };
        let live = s
            .known
            .iter()
            .filter(|n| {
                self.m
                    .member(n)
                    .is_some_and(|m| m.status == NodeStatus::Alive)
            })
            .count()
            + 1;
        live * 2 > s.known.len() + 1
    }

    /// What this node does about the sentinel (see the module's docs).
    fn sentinel_role(&self, now: Instant) -> Role {
        let Some(s) = &self.sentinel else {
            return Role::Follower;
        };
        if self.m.health_score() >= MAX_WRITER_HEALTH || !self.sentinel_quorum() {
            return Role::Follower;
        }
        let infos = self.infos();
        let Some(held) = infos.get(&s.cfg.key, now) else {
            return Role::Candidate;
        };
        if held.origin == self.m.name() {
            return Role::Writer;
        }
        let alive = self
            .m
            .member(&held.origin)
            .is_some_and(|m| m.status == NodeStatus::Alive);
        let overdue = s.cfg.refresh() + s.cfg.refresh() / 2;
        let age = infos.wall_ms(now).saturating_sub(held.origin_ms);
        if alive && Duration::from_millis(age) <= overdue {
            Role::Follower
        } else {
            Role::Candidate
        }
    }

    /// Writes the sentinel with this node as its origin.
    fn write_sentinel(&mut self, now: Instant) {
        let Some(s) = &self.sentinel else {
            return;
        };
        let (key, value, ttl) = (s.cfg.key.clone(), s.cfg.cluster_id.clone(), s.cfg.ttl);
        let infos = &mut self.m.delegate_mut().infos;
        if let Err(e) = infos.put(&key, value.into_bytes(), ttl, now) {
            tracing::warn!(error = %e, "cannot write the cluster sentinel");
        }
    }

    /// Bootstrap addresses, then members known but not seen alive.
    fn rejoin_targets(&self) -> Vec<SocketAddr> {
        let Some(s) = &self.sentinel else {
            return Vec::new();
        };
        let mut out = s.bootstrap.clone();
        for m in self.m.members() {
            if m.name != self.m.name() && m.status != NodeStatus::Alive && !out.contains(&m.addr) {
                out.push(m.addr);
            }
        }
        out
    }

    /// Rewrites the sentinel when this node is its writer, steps up when
    /// nobody writes it, notices an expiry, and rejoins while partitioned.
    pub(super) fn sentinel_tick(&mut self, now: Instant) {
        let Some(s) = &self.sentinel else {
            return;
        };
        let cfg = s.cfg.clone();
        let step_up_due = s.step_up_at.is_some_and(|at| now >= at);
        if now >= s.next_check || step_up_due {
            let role = self.sentinel_role(now);
            let refresh = cfg.refresh();
            let mut write = false;
            let mut delay = None;
            match role {
                Role::Writer => {
                    // Rewritten once its age reaches the refresh interval
                    // (less one check, so that it is never late).
                    let held = self.infos().get(&cfg.key, now);
                    let wall = self.infos().wall_ms(now);
                    let age = held.map_or(u64::MAX, |i| wall.saturating_sub(i.origin_ms));
                    write = Duration::from_millis(age) + cfg.check() > refresh;
                }
                Role::Candidate if step_up_due => write = true,
                Role::Candidate => {
                    if self
                        .sentinel
                        .as_ref()
                        .is_some_and(|s| s.step_up_at.is_none())
                    {
                        let young = self
                            .sentinel
                            .as_ref()
                            .is_some_and(|s| now.saturating_duration_since(s.started) < cfg.ttl);
                        let mut d = self.m.random_below(refresh / 4);
                        if young {
                            d += refresh / 4;
                        }
                        delay = Some(d);
                    }
                }
                Role::Follower => {}
            }
            if write {
                self.write_sentinel(now);
            }
            if let Some(s) = &mut self.sentinel {
                if write || role != Role::Candidate {
                    s.step_up_at = None;
                }
                if let Some(d) = delay {
                    s.step_up_at = Some(now + d);
                }
                if now >= s.next_check {
                    s.next_check = now + cfg.check();
                }
            }
        }
        let infos = self.infos();
        let wall = infos.wall_ms(now);
        let live = infos.get(&cfg.key, now).map(crate::infos::Info::expires_ms);
        // Only while partitioned and due (it lists every member).
        let due = self.sentinel.as_ref().is_some_and(|s| {
            live.is_none()
                && s.partitioned_since(false, wall).is_some()
                && s.next_rejoin.is_none_or(|at| now >= at)
        });
        let targets = if due {
            self.rejoin_targets()
        } else {
            Vec::new()
        };
        let Some(s) = &mut self.sentinel else {
            return;
        };
        if let Some(exp) = live {
            if s.next_rejoin.is_some() {
                tracing::info!(
                    partitions = s.partitions,
                    "sentinel seen again: no longer partitioned"
                );
            }
            s.last_expiry_ms = Some(exp);
            s.next_rejoin = None;
            s.rejoin_delay = REJOIN_MIN;
            return;
        }
        let Some(since) = s.partitioned_since(false, wall) else {
            return;
        };
        if s.next_rejoin.is_none() {
            s.partitions += 1;
            s.next_rejoin = Some(now);
        }
        if s.next_rejoin.is_some_and(|at| now >= at) {
            let delay = s.backoff();
            s.next_rejoin = Some(now + delay);
            s.rejoins += 1;
            tracing::warn!(
                "partitioned: sentinel expired {} s ago; rejoining through {}",
                (wall - since) / 1000,
                if targets.is_empty() {
                    "nobody (no bootstrap peers or known members)".to_string()
                } else {
                    targets
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
            if !targets.is_empty() {
                self.m.join(&targets, now);
            }
        }
    }
}
