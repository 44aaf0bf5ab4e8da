//! Scripted runs and what they measure: how fast a fact reaches every node,
//! how fast a crash is detected, how a partition heals, how a key rotates,
//! and at what cost in false positives and bytes.

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{name_of, Sim, SimConfig, SimError};
use crate::keyring::Key;
use crate::membership::{Event, NodeStatus};

/// What to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Node 0 changes its metadata (a new incarnation, gossiped as an alive
    /// message that receivers re-gossip); the fact is "knows the new
    /// metadata".
    Propagate,
    /// The last node crashes; the fact is "has declared it dead".
    Fail,
    /// The cluster is cut in two halves, then healed; the fact is "sees
    /// every member alive again" (timed from the heal).
    Partition,
    /// Key rotation: install a new key everywhere, make it primary, remove
    /// the old one, each step staggered over a second; the fact is "uses the
    /// new key"; decrypt failures are counted.
    Rotate,
}

impl std::str::FromStr for Scenario {
    type Err = SimError;
    fn from_str(s: &str) -> Result<Self, SimError> {
        match s {
            "propagate" => Ok(Scenario::Propagate),
            "fail" => Ok(Scenario::Fail),
            "partition" => Ok(Scenario::Partition),
            "rotate" => Ok(Scenario::Rotate),
            other => Err(SimError::UnknownScenario(other.to_string())),
        }
    }
}

impl Scenario {
    /// The scenario's name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Propagate => "propagate",
            Scenario::Fail => "fail",
            Scenario::Partition => "partition",
            Scenario::Rotate => "rotate",
        }
    }
}

/// A scenario run.
#[derive(Debug, Clone)]
pub struct ScenarioConfig {
    /// The cluster and network.
    pub sim: SimConfig,
    /// What happens.
    pub scenario: Scenario,
    /// Virtual time simulated in all.
    pub duration: Duration,
    /// When the fact happens (the metadata change, the crash, the cut, the
    /// first key step).
    pub fact_at: Duration,
    /// How long a partition lasts.
    pub partition_for: Duration,
    /// Every node runs with `memberlist_exact` (memberlist's own
    /// behaviour; the trace hashes of runs before Gossamer's catch-up
    /// push/pulls and transmit floor).
    pub memberlist_exact: bool,
}

impl ScenarioConfig {
    /// `scenario` on `sim` for `duration`, the fact at 2 s, partitions of 20 s.
    pub fn new(sim: SimConfig, scenario: Scenario, duration: Duration) -> Self {
        ScenarioConfig {
            sim,
            scenario,
            duration,
            fact_at: Duration::from_secs(2),
            partition_for: Duration::from_secs(20),
            memberlist_exact: false,
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// The scenario.
    pub scenario: Scenario,
    /// Nodes simulated.
    pub nodes: usize,
    /// Nodes the fact is measured over (live ones).
    pub population: usize,
    /// Seed.
    pub seed: u64,
    /// Loss rate.
    pub loss: f64,
    /// Virtual time simulated.
    pub duration: Duration,
    /// Gossip fanout and interval of the profile.
    pub fanout: usize,
    /// Gossip interval of the profile.
    pub gossip_interval: Duration,
    /// When each node of the population learned the fact, counted from the
    /// fact (partition: from the heal); `None`: never.
    pub learned: Vec<Option<Duration>>,
    /// Dead declarations of live members, counted at each observer:
    /// failed probes of a reachable member (or their echoes).
    pub false_positive_declarations: u64,
    /// Distinct live members (and incarnations) so declared dead somewhere.
    pub false_positive_incidents: u64,
    /// Dead declarations across a partition (expected, not false).
    pub cross_partition_declarations: u64,
    /// Declarations of a member by its own side of a healed partition, at
    /// an incarnation the other side had declared it dead at: the other
    /// side's dead messages, gossiped to the members it holds dead for the
    /// gossip-to-the-dead time, reach the subject's side after the heal and
    /// are accepted there (as memberlist's `deadNode` does) until the
    /// subject refutes them. The partition's doing, not a failed probe.
    pub partition_echo_declarations: u64,
    /// Distinct members (and incarnations) among those echo declarations.
    pub partition_echo_incidents: u64,
    /// Decrypt failures summed over nodes.
    pub decrypt_failures: u64,
    /// UDP bytes sent, all nodes.
    pub udp_bytes: u64,
    /// Stream bytes sent, all nodes (requests and replies).
    pub tcp_bytes: u64,
    /// Datagrams sent.
    pub packets: u64,
    /// Member entries held per node (not shared), at the end.
    pub owned_entries: usize,
    /// Fingerprint of the run.
    pub trace_hash: u64,
}

impl Report {
    /// Time until `q` (0..=1) of the population learned the fact.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let mut t: Vec<Duration> = self.learned.iter().flatten().copied().collect();
        t.sort();
        let need = ((q * self.population as f64).ceil() as usize).max(1);
        (t.len() >= need).then(|| t[need - 1])
    }

    /// Fraction of the population that learned the fact by `t`.
    pub fn fraction_at(&self, t: Duration) -> f64 {
        let k = self.learned.iter().flatten().filter(|x| **x <= t).count();
        k as f64 / self.population.max(1) as f64
    }

    /// The epidemic lower bound in gossip rounds: `ceil(log_{fanout+1} N)`.
    pub fn bound_rounds(&self) -> u32 {
        epidemic_rounds(self.fanout, self.nodes)
    }

    /// The epidemic lower bound as time.
    pub fn bound(&self) -> Duration {
        self.gossip_interval * self.bound_rounds()
    }

    /// Bytes each node sent per second, UDP and streams.
    pub fn bytes_per_node_sec(&self) -> (f64, f64) {
        let d = self.nodes as f64 * self.duration.as_secs_f64().max(1e-9);
        (self.udp_bytes as f64 / d, self.tcp_bytes as f64 / d)
    }

    /// False positives (distinct incidents) per node-hour.
    pub fn false_positives_per_node_hour(&self) -> f64 {
        let hours = self.nodes as f64 * self.duration.as_secs_f64() / 3600.0;
        self.false_positive_incidents as f64 / hours.max(1e-12)
    }

    /// Serf's convergence model, as its convergence simulator draws it
    /// (hashicorp/serf `website/source/assets/javascripts/_simulator.js`,
    /// `convergenceAtRound`): a logistic curve
    /// `1 / (1 + (n + 1) e^(-c n x))` in gossip rounds `x`, with contact
    /// rate `c = fanout / n * (1 - loss) * 0.5`.
    pub fn serf_model(&self, t: Duration) -> f64 {
        serf_model(
            self.nodes,
            self.fanout,
            self.loss,
            t.as_secs_f64() / self.gossip_interval.as_secs_f64(),
        )
    }
}

/// `ceil(log_{fanout+1} n)`.
pub fn epidemic_rounds(fanout: usize, n: usize) -> u32 {
    if n <= 1 {
        return 0;
    }
    let r = (n as f64).ln() / ((fanout + 1) as f64).ln();
    // Guard exact powers against rounding up by an ulp.
    (r - 1e-9).ceil() as u32
}

/// Serf's model; see [`Report::serf_model`].
pub fn serf_model(n: usize, fanout: usize, loss: f64, rounds: f64) -> f64 {
    let n = n as f64;
    let contact = fanout as f64 / n * (1.0 - loss) * 0.5;
    1.0 / (1.0 + (n + 1.0) * (-contact * n * rounds).exp())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Option<Duration>| match d {
            Some(d) => format!("{:.3} s", d.as_secs_f64()),
            None => "never".into(),
        };
        let what = match self.scenario {
            Scenario::Propagate => "learned the new metadata",
            Scenario::Fail => "declared the crashed node dead",
            Scenario::Partition => "saw every member alive after the heal",
            Scenario::Rotate => "switched to the new key",
        };
        writeln!(
            f,
            "scenario {} | nodes {} | loss {:.1}% | seed {} | {:.0} s virtual",
            self.scenario.as_str(),
            self.nodes,
            self.loss * 100.0,
            self.seed,
            self.duration.as_secs_f64()
        )?;
        writeln!(f, "nodes that {what} (of {}):", self.population)?;
        writeln!(
            f,
            "  50%: {}   99%: {}   100%: {}",
            ms(self.quantile(0.5)),
            ms(self.quantile(0.99)),
            ms(self.quantile(1.0))
        )?;
        let unreached = self.learned.iter().filter(|x| x.is_none()).count();
        if unreached > 0 {
            writeln!(f, "  not reached by the end: {unreached}")?;
        }
        writeln!(
            f,
            "epidemic lower bound: ceil(log_{} {}) = {} rounds x {} ms = {:.3} s",
            self.fanout + 1,
            self.nodes,
            self.bound_rounds(),
            self.gossip_interval.as_millis(),
            self.bound().as_secs_f64()
        )?;
        writeln!(
            f,
            "false positives: {} incidents ({:.3} per node-hour), {} declarations",
            self.false_positive_incidents,
            self.false_positives_per_node_hour(),
            self.false_positive_declarations
        )?;
        if self.scenario == Scenario::Partition {
            writeln!(
                f,
                "dead declarations across the cut (expected): {}",
                self.cross_partition_declarations
            )?;
            writeln!(
                f,
                "same-side declarations carried over the heal by the other side's dead \
                 messages (memberlist does the same): {} incidents, {} declarations",
                self.partition_echo_incidents, self.partition_echo_declarations
            )?;
        }
        if self.scenario == Scenario::Rotate {
            writeln!(f, "decrypt failures: {}", self.decrypt_failures)?;
        }
        let (udp, tcp) = self.bytes_per_node_sec();
        writeln!(
            f,
            "bytes per node per second: {:.0} (UDP {:.0}, streams {:.0}); {} datagrams",
            udp + tcp,
            udp,
            tcp,
            self.packets
        )?;
        writeln!(
            f,
            "member entries owned per node at the end: {:.1}",
            self.owned_entries as f64 / self.nodes.max(1) as f64
        )?;
        write!(f, "trace hash: {:016x}", self.trace_hash)
    }
}

/// Steps between looks at the nodes' events.
const STEP: Duration = Duration::from_millis(50);

/// Runs a scenario from virtual time zero at `base`.
///
/// # Errors
/// A node's configuration is invalid, or too few nodes for the scenario.
pub fn run_scenario(cfg: &ScenarioConfig, base: Instant) -> Result<Report, SimError> {
    run_scenario_guarded(cfg, base, |_| Ok(()))
}

/// As [`run_scenario`], calling `guard` with the virtual time reached once
/// per virtual second; an error from it ends the run with that error (the
/// command uses it to stop a run that outgrows its memory budget).
///
/// # Errors
/// As [`run_scenario`], or the guard's.
pub fn run_scenario_guarded(
    cfg: &ScenarioConfig,
    base: Instant,
    mut guard: impl FnMut(Duration) -> Result<(), String>,
) -> Result<Report, SimError> {
    let n = cfg.sim.nodes;
    if n < 2 {
        return Err(SimError::TooFewNodes(n));
    }
    let mut sim_cfg = cfg.sim.clone();
    let (old_key, new_key) = (Key::new(&[7; 32]), Key::new(&[9; 32]));
    let (old_key, new_key) = (old_key?, new_key?);
    if cfg.scenario == Scenario::Rotate {
        sim_cfg.keys = vec![old_key.clone()];
    }
    let exact = cfg.memberlist_exact;
    let mut sim = Sim::<crate::membership::Membership>::configured(sim_cfg, base, move |_, c| {
        c.memberlist_exact = exact;
    })?;
    let probe = sim.node_config(0);
    let victim = n - 1;
    let half = |i: usize| u32::from(i >= n / 2) + 1;
    let population = if cfg.scenario == Scenario::Fail {
        n - 1
    } else {
        n
    };
    let mut learned: Vec<Option<Duration>> = vec![None; n];
    let mut down_count: Vec<i64> = vec![0; n];
    let mut fp_declarations = 0u64;
    let mut cross = 0u64;
    let mut incidents: HashSet<(String, u32)> = HashSet::new();
    let mut across_declared: HashSet<(String, u32)> = HashSet::new();
    let mut echoes = 0u64;
    let mut echo_incidents: HashSet<(String, u32)> = HashSet::new();
    let heal_at = cfg.fact_at + cfg.partition_for;
    let mut healed = false;
    let mut rng = SmallRng::seed_from_u64(cfg.sim.seed ^ 0x524f_5441_5445);
    // Rotation steps: (when, node, step), staggered over a second each.
    let mut rotation: Vec<(Duration, usize, u8)> = Vec::new();
    if cfg.scenario == Scenario::Rotate {
        for (step, offset) in [(0u8, 0u64), (1, 3), (2, 6)] {
            for i in 0..n {
                let jitter = Duration::from_nanos(rng.random_range(0..1_000_000_000));
                rotation.push((cfg.fact_at + Duration::from_secs(offset) + jitter, i, step));
            }
        }
        rotation.sort_by_key(|r| (r.0, r.2, r.1));
        rotation.reverse();
    }
    sim.take_events();
    let mut fact_done = false;
    let mut t = Duration::ZERO;
    while t < cfg.duration {
        let next = (t + STEP).min(cfg.duration);
        // Scripted actions due before the next look.
        loop {
            let due_fact = !fact_done && cfg.fact_at <= next;
            let due_heal = cfg.scenario == Scenario::Partition && !healed && heal_at <= next;
            let due_rot = rotation.last().is_some_and(|r| r.0 <= next);
            let at = [
                due_fact.then_some(cfg.fact_at),
                due_heal.then_some(heal_at),
                rotation.last().filter(|_| due_rot).map(|r| r.0),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(at) = at else { break };
            sim.run_until(at);
            if due_fact && at == cfg.fact_at {
                fact_done = true;
                match cfg.scenario {
                    Scenario::Propagate => {
                        sim.command(0, |m, now| m.set_meta(b"v2".to_vec(), now))
                            .map_err(|e| SimError::Command(e.to_string()))?;
                        learned[0] = Some(Duration::ZERO);
                    }
                    Scenario::Fail => sim.crash(victim),
                    Scenario::Partition => sim.partition(half),
                    Scenario::Rotate => {}
                }
            } else if due_heal && at == heal_at {
                healed = true;
                sim.heal();
            } else if let Some((_, i, step)) = rotation.pop() {
                let (k_old, k_new) = (old_key.clone(), new_key.clone());
                sim.command(i, move |m, _| match step {
                    0 => {
                        m.add_key(k_new);
                    }
                    1 => {
                        let _ = m.use_key(&k_new);
                    }
                    _ => {
                        let _ = m.remove_key(&k_old);
                    }
                });
                if step == 1 {
                    learned[i] = Some(sim.now().saturating_sub(cfg.fact_at));
                }
            }
            collect(
                &mut sim,
                cfg,
                &mut Observe {
                    learned: &mut learned,
                    down_count: &mut down_count,
                    fp: &mut fp_declarations,
                    cross: &mut cross,
                    incidents: &mut incidents,
                    across_declared: &mut across_declared,
                    echoes: &mut echoes,
                    echo_incidents: &mut echo_incidents,
                    victim,
                    half: &half,
                },
            );
        }
        sim.run_until(next);
        collect(
            &mut sim,
            cfg,
            &mut Observe {
                learned: &mut learned,
                down_count: &mut down_count,
                fp: &mut fp_declarations,
                cross: &mut cross,
                incidents: &mut incidents,
                across_declared: &mut across_declared,
                echoes: &mut echoes,
                echo_incidents: &mut echo_incidents,
                victim,
                half: &half,
            },
        );
        if cfg.scenario == Scenario::Partition && healed {
            let since = sim.now().saturating_sub(heal_at);
            for i in 0..n {
                if learned[i].is_none() && down_count[i] == 0 {
                    learned[i] = Some(since);
                }
            }
        }
        if next.as_secs() != t.as_secs() {
            guard(next).map_err(SimError::Stopped)?;
        }
        t = next;
    }
    if cfg.scenario == Scenario::Fail {
        learned.remove(victim);
    }
    let traffic = sim.traffic();
    let decrypt_failures = (0..n)
        .filter(|i| sim.is_up(*i))
        .map(|i| sim.node(i).stats().decrypt_failures)
        .sum();
    Ok(Report {
        scenario: cfg.scenario,
        nodes: n,
        population,
        seed: cfg.sim.seed,
        loss: cfg.sim.link.loss,
        duration: cfg.duration,
        fanout: probe.gossip_nodes,
        gossip_interval: probe.gossip_interval,
        learned,
        false_positive_declarations: fp_declarations,
        false_positive_incidents: incidents.len() as u64,
        cross_partition_declarations: cross,
        partition_echo_declarations: echoes,
        partition_echo_incidents: echo_incidents.len() as u64,
        decrypt_failures,
        udp_bytes: traffic.udp_bytes,
        tcp_bytes: traffic.tcp_bytes,
        packets: traffic.packets,
        owned_entries: sim.owned_entries(),
        trace_hash: sim.trace_hash(),
    })
}

struct Observe<'a> {
    learned: &'a mut Vec<Option<Duration>>,
    down_count: &'a mut Vec<i64>,
    fp: &'a mut u64,
    cross: &'a mut u64,
    incidents: &'a mut HashSet<(String, u32)>,
    /// (member, incarnation) declared dead by the other side of the cut.
    across_declared: &'a mut HashSet<(String, u32)>,
    echoes: &'a mut u64,
    echo_incidents: &'a mut HashSet<(String, u32)>,
    victim: usize,
    half: &'a dyn Fn(usize) -> u32,
}

fn index_of_name(name: &str) -> Option<usize> {
    name.strip_prefix('n')?.parse().ok()
}

fn collect(sim: &mut Sim, cfg: &ScenarioConfig, o: &mut Observe<'_>) {
    let fact_at = cfg.fact_at;
    let victim_name = name_of(o.victim);
    for (t, i, e) in sim.take_events() {
        let since = t.saturating_sub(fact_at);
        match &e {
            Event::Update(m) | Event::Join(m)
                if cfg.scenario == Scenario::Propagate && m.name == "n0" && m.meta == b"v2" =>
            {
                o.learned[i].get_or_insert(since);
            }
            _ => {}
        }
        match &e {
            Event::Leave(m) => {
                o.down_count[i] += 1;
                if m.status != NodeStatus::Dead {
                    continue;
                }
                let subject = index_of_name(&m.name);
                let is_victim = cfg.scenario == Scenario::Fail && m.name == victim_name;
                if is_victim {
                    o.learned[i].get_or_insert(since);
                    continue;
                }
                // Declarations across the cut, even those that complete
                // after the heal, are the partition's doing, not false.
                let across = cfg.scenario == Scenario::Partition
                    && subject.is_some_and(|s| (o.half)(s) != (o.half)(i));
                let id = (m.name.clone(), m.incarnation);
                if across {
                    *o.cross += 1;
                    o.across_declared.insert(id);
                } else if o.across_declared.contains(&id) {
                    // Same side, at an incarnation the other side declared
                    // dead: its dead message, arrived after the heal.
                    *o.echoes += 1;
                    o.echo_incidents.insert(id);
                } else {
                    *o.fp += 1;
                    o.incidents.insert(id);
                }
            }
            Event::Join(m) if m.name != name_of(i) => {
                o.down_count[i] -= 1;
            }
            _ => {}
        }
    }
}
