//! The cluster sentinel: partition detection and re-bootstrap, as early
//! CockroachDB gossip does it.
//!
//! One info (the sentinel, its value the cluster id) is kept fresh by one
//! member; every node that sees it expire considers itself cut off from
//! the cluster ("partitioned") and rejoins until it sees the sentinel again.
//!
//! # Who writes it
//!
//! - **The oldest live member.** Every node puts its start time into a
//!   MIN group (`age_prefix`, limit [`AGE_LIMIT`]) with the sentinel's TTL,
//!   refreshed every sixth of it; the writer is the first of that group
//!   whose origin membership sees alive (or this node). The group keeps
//!   the few oldest, so this costs a handful of infos however large the
//!   cluster.
//! - **Healthy.** Its Lifeguard health score is below
//!   [`MAX_WRITER_HEALTH`].
//! - **With a quorum.** It writes only while it sees a strict majority of
//!   the members it knows alive (not suspect; members that left
//!   gracefully or were declared departed are forgotten, failed ones are
//!   not). Without this, a node cut off alone would soon be the oldest
//!   live member it sees and keep its own copy fresh, and never notice.
//!   The price: a cluster that loses half its members for good without
//!   them leaving or being declared departed (the operator does that in
//!   Kubernetes) has nobody to write it, and reports partitioned until
//!   they return.
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

/// How many of the oldest members the age group keeps.
pub const AGE_LIMIT: usize = 3;
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
    /// notices. Refreshed every sixth of it. Default 30 s.
    pub ttl: Duration,
    /// The prefix of the age group.
    pub age_prefix: String,
}

impl SentinelConfig {
    /// Defaults for cluster `cluster_id`: key `gossamer/sentinel`, TTL
    /// 30 s, ages under `gossamer/age/`.
    pub fn new(cluster_id: impl Into<String>) -> Self {
        SentinelConfig {
            key: "gossamer/sentinel".into(),
            cluster_id: cluster_id.into(),
            ttl: Duration::from_secs(30),
            age_prefix: "gossamer/age/".into(),
        }
    }

    fn refresh(&self) -> Duration {
        (self.ttl / 6).max(Duration::from_millis(100))
    }
}

/// What a node knows of the sentinel, and its partition state.
#[derive(Debug)]
pub(super) struct Sentinel {
    pub(super) cfg: SentinelConfig,
    /// This node's start (Unix ms): its age.
    pub(super) started_ms: u64,
    pub(super) next_refresh: Instant,
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
    pub(super) fn new(cfg: SentinelConfig, started_ms: u64, now: Instant) -> Self {
        Sentinel {
            cfg,
            started_ms,
            next_refresh: now,
            last_expiry_ms: None,
            known: BTreeSet::new(),
            bootstrap: Vec::new(),
            next_rejoin: None,
            rejoin_delay: REJOIN_MIN,
            rejoins: 0,
            partitions: 0,
        }
    }

    pub(super) fn refresh_every(&self) -> Duration {
        self.cfg.refresh()
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
use crate::infos::{GroupOrder, InfosError};
use crate::membership::NodeStatus;

impl Node {
    /// Starts keeping the cluster sentinel (see [`SentinelConfig`]):
    /// registers the age group and writes this node's age. Off until
    /// called. The wall clock MUST be anchored first
    /// ([`Node::set_wall_clock`]): the start time it reads is this node's
    /// age.
    ///
    /// # Errors
    /// The TTL is below 2 s or above the infos' longest TTL, or the age
    /// prefix overlaps a registered group.
    pub fn enable_sentinel(&mut self, cfg: SentinelConfig, now: Instant) -> Result<(), InfosError> {
        let infos = &mut self.m.delegate_mut().infos;
        let max = infos.config().max_ttl;
        if cfg.ttl < Duration::from_secs(2) || cfg.ttl > max {
            return Err(InfosError::TtlOutOfRange {
                key: cfg.key.clone(),
                ttl: cfg.ttl,
                min: Duration::from_secs(2),
                max,
            });
        }
        infos.register_group(&cfg.age_prefix, AGE_LIMIT, GroupOrder::Min, now)?;
        let started = infos.wall_ms(now);
        let mut s = Sentinel::new(cfg, started, now);
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
            writer: self.sentinel_writer(now),
            partitions: s.partitions,
            rejoins: s.rejoins,
            rejoin_targets: self.rejoin_targets(),
        })
    }

    pub(super) fn sentinel_timeout(&self) -> Option<Instant> {
        let s = self.sentinel.as_ref()?;
        Some(match s.next_rejoin {
            Some(r) => r.min(s.next_refresh),
            None => s.next_refresh,
        })
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

    /// Whether this node writes the sentinel: it is the oldest alive member
    /// of the age group (a suspect writer is passed over at once, so the
    /// next oldest takes over within a probe round), it is healthy, and it
    /// sees a quorum.
    fn sentinel_writer(&self, now: Instant) -> bool {
        let Some(s) = &self.sentinel else {
            return false;
        };
        let me = self.m.name();
        let Ok((_, ages)) = self.infos().group(&s.cfg.age_prefix, now) else {
            return false;
        };
        let oldest_live = ages.iter().find(|i| {
            i.origin == me
                || self
                    .m
                    .member(&i.origin)
                    .is_some_and(|m| m.status == NodeStatus::Alive)
        });
        oldest_live.is_some_and(|i| i.origin == me)
            && self.m.health_score() < MAX_WRITER_HEALTH
            && self.sentinel_quorum()
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

    /// Refreshes this node's age (and the sentinel, when it is the
    /// writer), notices an expiry, and rejoins while partitioned.
    pub(super) fn sentinel_tick(&mut self, now: Instant) {
        let Some(s) = &self.sentinel else {
            return;
        };
        let cfg = s.cfg.clone();
        let started = s.started_ms;
        if now >= s.next_refresh {
            let every = s.refresh_every();
            let me = self.m.name().to_string();
            let infos = &mut self.m.delegate_mut().infos;
            // A young node's age is refused by the group: expected. Ages
            // live as long as the sentinel, so a node cut off cannot become
            // the oldest it knows before it has seen the sentinel expire.
            let _ = infos.put(
                &format!("{}{me}", cfg.age_prefix),
                started.to_string().into_bytes(),
                cfg.ttl,
                now,
            );
            if self.sentinel_writer(now) {
                let infos = &mut self.m.delegate_mut().infos;
                if let Err(e) =
                    infos.put(&cfg.key, cfg.cluster_id.clone().into_bytes(), cfg.ttl, now)
                {
                    tracing::warn!(error = %e, "cannot write the cluster sentinel");
                }
            }
            if let Some(s) = &mut self.sentinel {
                s.next_refresh = now + every;
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
