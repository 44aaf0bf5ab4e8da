//! Membership churn as Kubernetes makes it: a whole Deployment's pods
//! joining one seed within a second ([`Wave::Join`]), and a rolling restart
//! in which each old pod leaves gracefully as a new pod (a new node) joins
//! ([`Wave::Rolling`]). The measure is how long after the last change every
//! running node holds exactly the running nodes alive ("all see all").
//!
//! Views are kept from the nodes' own join and leave events, so the time a
//! cluster converged is exact to the event, not to a polling step.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{name_of, Sim, SimConfig, SimError};
use crate::membership::{Config, Event, Profile};

/// The churn to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wave {
    /// Node 0 starts alone; every other node starts at a uniformly random
    /// time within `spread` and joins node 0.
    Join {
        /// Window the joins fall in.
        spread: Duration,
    },
    /// A converged cluster replaces `restarts` of its nodes one after
    /// another, `every` apart: the old node leaves gracefully (and stops a
    /// little later, as a pod does after its pre-stop hook) and a new node,
    /// with a new name, joins the last node of the cluster, which stays.
    Rolling {
        /// Nodes replaced.
        restarts: usize,
        /// Time between two replacements.
        every: Duration,
    },
}

/// A churn run.
#[derive(Debug, Clone)]
pub struct WaveConfig {
    /// Nodes running at any time (standby slots for the new pods of a
    /// rolling restart are added on top).
    pub nodes: usize,
    /// Seeds the network, the nodes and the schedule.
    pub seed: u64,
    /// memberlist defaults to start from.
    pub profile: Profile,
    /// What happens.
    pub wave: Wave,
    /// How long to watch after the last change.
    pub watch: Duration,
}

/// What a churn run measured.
#[derive(Debug, Clone)]
pub struct WaveReport {
    /// When the last change (join, leave) happened, from the start.
    pub last_change: Duration,
    /// How long after the last change every running node first held
    /// exactly the running nodes alive, for good (to the end of the
    /// watch); `None`: not by the end.
    pub converged_after: Option<Duration>,
    /// At the end, (observer, member) pairs where the observer's view is
    /// wrong, at most 10.
    pub wrong_at_end: Vec<(String, String)>,
    /// Fingerprint of the run.
    pub trace_hash: u64,
    /// Stream bytes sent in all (push/pull is most of it).
    pub tcp_bytes: u64,
    /// UDP bytes sent in all.
    pub udp_bytes: u64,
    /// Catch-up push/pulls started by the nodes running at the end: in
    /// all, and by the busiest node.
    pub catch_ups: (u64, u64),
}

/// Who should be seen alive, who sees whom alive, and how many views are
/// wrong, kept in step.
struct Views {
    running: Vec<bool>,
    view: Vec<Vec<bool>>,
    wrong: usize,
}

impl Views {
    fn new(n: usize) -> Self {
        Views {
            running: vec![false; n],
            view: vec![vec![false; n]; n],
            wrong: 0,
        }
    }

    fn recount(&mut self) {
        let n = self.running.len();
        self.wrong = (0..n)
            .filter(|i| self.running[*i])
            .map(|i| {
                (0..n)
                    .filter(|j| self.view[i][*j] != self.running[*j])
                    .count()
            })
            .sum();
    }

    /// Node `i` starts (with an empty view) or stops being a member.
    fn set_running(&mut self, i: usize, running: bool) {
        self.running[i] = running;
        if running {
            self.view[i].iter_mut().for_each(|v| *v = false);
        }
        self.recount();
    }

    fn see(&mut self, i: usize, j: usize, alive: bool) {
        if self.view[i][j] == alive {
            return;
        }
        self.view[i][j] = alive;
        if self.running[i] {
            if alive == self.running[j] {
                self.wrong -= 1;
            } else {
                self.wrong += 1;
            }
        }
    }
}

fn index_of_name(name: &str) -> Option<usize> {
    name.strip_prefix('n')?.parse().ok()
}

/// Runs a churn scenario from virtual time zero at `base`, every node's
/// membership configured by `configure` after the profile's defaults.
///
/// # Errors
/// A node's configuration is invalid, fewer than two nodes, or more
/// restarts than nodes less one.
pub fn run_wave(
    cfg: &WaveConfig,
    base: Instant,
    configure: impl Fn(usize, &mut Config) + 'static,
) -> Result<WaveReport, SimError> {
    let n = cfg.nodes;
    if n < 2 {
        return Err(SimError::TooFewNodes(n));
    }
    let mut rng = SmallRng::seed_from_u64(cfg.seed ^ 0x5741_5645);
    // (when, what): Start(i) starts a standby node and joins `seed`;
    // Leave(i) has a node leave; Stop(i) stops it.
    #[derive(Clone, Copy)]
    enum Act {
        Start(usize, usize),
        Leave(usize),
        Stop(usize),
    }
    let mut sim_cfg = SimConfig::lan(n, cfg.seed);
    sim_cfg.profile = cfg.profile;
    let mut plan: Vec<(Duration, Act)> = Vec::new();
    let total = match cfg.wave {
        Wave::Join { spread } => {
            sim_cfg.converged = false;
            sim_cfg.standby = n - 1;
            let nanos = spread.as_nanos().max(1) as u64;
            for i in 1..n {
                let at = Duration::from_nanos(rng.random_range(0..nanos));
                plan.push((at, Act::Start(i, 0)));
            }
            n
        }
        Wave::Rolling { restarts, every } => {
            if restarts + 1 > n {
                return Err(SimError::TooManyStandby {
                    standby: restarts,
                    nodes: n,
                });
            }
            sim_cfg.nodes = n + restarts;
            sim_cfg.standby = restarts;
            let anchor = n - 1;
            for r in 0..restarts {
                let at = Duration::from_secs(2) + every * r as u32;
                plan.push((at, Act::Leave(r)));
                plan.push((at + Duration::from_millis(500), Act::Stop(r)));
                let jitter = Duration::from_millis(rng.random_range(0..200));
                plan.push((at + jitter, Act::Start(n + r, anchor)));
            }
            n + restarts
        }
    };
    plan.sort_by_key(|(t, _)| *t);
    let last_change = plan
        .iter()
        .filter(|(_, a)| !matches!(a, Act::Stop(_)))
        .map(|(t, _)| *t)
        .max()
        .unwrap_or_default();
    let end = last_change + cfg.watch;
    let mut sim = Sim::configured(sim_cfg, base, configure)?;
    let mut views = Views::new(total);
    for i in 0..total {
        if sim.is_up(i) {
            views.running[i] = true;
            for j in 0..total {
                views.view[i][j] = sim.is_up(j);
            }
        }
    }
    views.recount();
    // When the wrong-view count last went to zero, while it stays there.
    let mut zero_since: Option<Duration> = (views.wrong == 0).then_some(Duration::ZERO);
    let fold = |sim: &mut Sim, views: &mut Views, zero_since: &mut Option<Duration>| {
        for (t, i, e) in sim.take_events() {
            let (j, alive) = match &e {
                Event::Join(m) => (index_of_name(&m.name), true),
                Event::Leave(m) => (index_of_name(&m.name), false),
                _ => continue,
            };
            let Some(j) = j.filter(|j| *j < total) else {
                continue;
            };
            views.see(i, j, alive);
            match (views.wrong, *zero_since) {
                (0, None) => *zero_since = Some(t),
                (w, Some(_)) if w > 0 => *zero_since = None,
                _ => {}
            }
        }
    };
    let step = Duration::from_millis(50);
    let mut plan = plan.into_iter().peekable();
    let mut t = Duration::ZERO;
    while t < end {
        let next = (t + step).min(end);
        while let Some((at, act)) = plan.next_if(|(at, _)| *at <= next) {
            sim.run_until(at);
            fold(&mut sim, &mut views, &mut zero_since);
            match act {
                Act::Start(i, seed) => {
                    views.set_running(i, true);
                    sim.restart(i, &[seed])?;
                }
                Act::Leave(i) => {
                    views.set_running(i, false);
                    sim.command(i, |m, now| m.leave(Duration::from_secs(1), now));
                }
                Act::Stop(i) => sim.crash(i),
            }
            match (views.wrong, zero_since) {
                (0, None) => zero_since = Some(at),
                (w, Some(_)) if w > 0 => zero_since = None,
                _ => {}
            }
            fold(&mut sim, &mut views, &mut zero_since);
        }
        sim.run_until(next);
        fold(&mut sim, &mut views, &mut zero_since);
        t = next;
    }
    let mut wrong_at_end = Vec::new();
    'outer: for i in (0..total).filter(|i| views.running[*i]) {
        for j in 0..total {
            if views.view[i][j] != views.running[j] {
                wrong_at_end.push((name_of(i), name_of(j)));
                if wrong_at_end.len() >= 10 {
                    break 'outer;
                }
            }
        }
    }
    let traffic = sim.traffic();
    let per_node: Vec<u64> = (0..total)
        .filter(|i| sim.is_up(*i))
        .map(|i| sim.node(i).stats().catch_ups)
        .collect();
    let catch_ups = (
        per_node.iter().sum(),
        per_node.iter().copied().max().unwrap_or(0),
    );
    Ok(WaveReport {
        catch_ups,
        last_change,
        converged_after: zero_since.map(|z| z.saturating_sub(last_change)),
        wrong_at_end,
        trace_hash: sim.trace_hash(),
        tcp_bytes: traffic.tcp_bytes,
        udp_bytes: traffic.udp_bytes,
    })
}

/// Runs `seeds` and summarises them against `within`: the seeds that did
/// not converge within it (with their time, `None` for never) and the
/// worst time seen.
///
/// # Errors
/// As [`run_wave`].
pub fn sweep(
    cfg: &WaveConfig,
    seeds: std::ops::Range<u64>,
    within: Duration,
    base: Instant,
    configure: impl Fn(usize, &mut Config) + Clone + 'static,
) -> Result<Sweep, SimError> {
    let mut out = Sweep {
        runs: 0,
        slow: Vec::new(),
        worst: Some(Duration::ZERO),
        times: Vec::new(),
    };
    for seed in seeds {
        let c = WaveConfig {
            seed,
            ..cfg.clone()
        };
        let r = run_wave(&c, base, configure.clone())?;
        out.runs += 1;
        out.times.push(r.converged_after);
        if r.converged_after.is_none_or(|d| d > within) {
            out.slow.push((seed, r.converged_after));
        }
        out.worst = match (out.worst, r.converged_after) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }
    Ok(out)
}

/// A sweep's outcome.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// Seeds run.
    pub runs: usize,
    /// Seeds over the bound: (seed, time after the last change, `None`:
    /// not converged by the end of the watch).
    pub slow: Vec<(u64, Option<Duration>)>,
    /// Worst time; `None` when some seed never converged.
    pub worst: Option<Duration>,
    /// Every seed's time, in seed order (`None`: never).
    pub times: Vec<Option<Duration>>,
}

impl Sweep {
    /// The `q`-quantile (0 to 1, nearest rank) of the seeds that
    /// converged, or `None` when it falls among those that never did.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let mut done: Vec<Duration> = self.times.iter().flatten().copied().collect();
        done.sort();
        let rank = ((q * self.times.len() as f64).ceil() as usize).max(1);
        done.get(rank - 1).copied()
    }
}

impl std::fmt::Display for Sweep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let worst = match self.worst {
            Some(w) => format!("{:.3} s", w.as_secs_f64()),
            None => "never (some seed)".into(),
        };
        let q = |q: f64| match self.quantile(q) {
            Some(d) => format!("{:.3} s", d.as_secs_f64()),
            None => "never".into(),
        };
        write!(
            f,
            "{} seeds, {} over the bound, p50 {}, p90 {}, p99 {}, worst {worst}",
            self.runs,
            self.slow.len(),
            q(0.5),
            q(0.9),
            q(0.99),
        )?;
        if !self.slow.is_empty() {
            let list: Vec<String> = self
                .slow
                .iter()
                .take(10)
                .map(|(s, d)| match d {
                    Some(d) => format!("{s}:{:.2}s", d.as_secs_f64()),
                    None => format!("{s}:never"),
                })
                .collect();
            write!(f, " [{}]", list.join(", "))?;
        }
        Ok(())
    }
}
