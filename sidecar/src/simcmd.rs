//! `gossamer-sidecar sim`: runs a simulator scenario, prints what it
//! measured and writes the convergence curve (CSV and SVG).

mod plot;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, TryFromFloatSecsError};

use gossamer_sidecar::membership::Profile;
use gossamer_sidecar::sim::{self, LinkModel, Scenario, ScenarioConfig, SimConfig, SimError};

pub use plot::PlotError;

/// Arguments of `sim`.
#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// Simulated nodes.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// propagate, fail, partition or rotate.
    #[arg(long, default_value = "propagate")]
    scenario: Scenario,
    /// Datagram loss rate, 0.0 to 1.0 (TCP segments lost cost a retransmission).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Seed of the network and every node.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Virtual seconds to simulate.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Directory for curve.csv and curve.svg (created if missing).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Gossip profile: lan, wan or local.
    #[arg(long, default_value = "lan")]
    profile: Profile,
    /// One-way latency floor, milliseconds.
    #[arg(long, default_value_t = 1.0)]
    latency_ms: f64,
    /// Uniform extra latency, milliseconds.
    #[arg(long, default_value_t = 1.0)]
    jitter_ms: f64,
    /// When the fact happens, virtual seconds.
    #[arg(long, default_value_t = 2.0)]
    fact_at: f64,
    /// How long the partition lasts, seconds (partition scenario).
    #[arg(long, default_value_t = 20.0)]
    partition_secs: f64,
    /// Every this many seconds each node rejoins one member it holds dead,
    /// as Serf's and NetworkDB's reconnect do (scans member lists: keep
    /// to small clusters). Default: off.
    #[arg(long)]
    reconnect_secs: Option<f64>,
    /// Start every node alone and join through node 0 instead of from a
    /// converged snapshot (every node then holds its own table).
    #[arg(long)]
    join: bool,
    /// Stop the run with an error when this process's resident memory
    /// passes this many MiB (checked every virtual second; 0: no limit).
    #[arg(long, default_value_t = 4096)]
    max_memory_mb: u64,
}

/// Why `sim` stopped without a result. The texts name the flag or file
/// and what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimCmdError {
    /// `--loss` outside `0.0..1.0`.
    #[error("--loss {0}: use a rate from 0.0 up to (not including) 1.0")]
    Loss(f64),
    /// A time flag that is negative, not a number or too large.
    #[error("--{flag} {value}: {source}")]
    Time {
        /// The flag, without dashes.
        flag: &'static str,
        /// The value given, in the flag's unit.
        value: f64,
        /// Why it is no duration.
        source: TryFromFloatSecsError,
    },
    /// The simulation could not be built or was stopped.
    #[error(transparent)]
    Simulation(#[from] SimError),
    /// The `--out` directory cannot be created.
    #[error("cannot create {}: {source}", dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An output file cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The SVG plot could not be drawn.
    #[error(transparent)]
    Plot(#[from] PlotError),
}

/// The process went over `--max-memory-mb` during a run.
#[derive(Debug, thiserror::Error)]
#[error(
    "stopped at {:.0} s of virtual time: {rss_mib} MiB resident, over --max-memory-mb \
     {limit_mib}{}; run fewer --nodes, or raise --max-memory-mb",
    .at.as_secs_f64(),
    if *.partition { PARTITION_HINT } else { "" }
)]
pub struct MemoryExceeded {
    /// Virtual time reached.
    at: Duration,
    /// Resident memory, MiB.
    rss_mib: u64,
    /// `--max-memory-mb`.
    limit_mib: u64,
    /// Whether the scenario is a partition (memory grows faster there).
    partition: bool,
}

const PARTITION_HINT: &str = " (after a partition every node holds its own view of the other \
                              side: memory grows with the square of --nodes)";

/// `value` of time flag `--flag`, counted in `per_second` units a second.
fn secs(flag: &'static str, value: f64, per_second: f64) -> Result<Duration, SimCmdError> {
    Duration::try_from_secs_f64(value / per_second).map_err(|source| SimCmdError::Time {
        flag,
        value,
        source,
    })
}

/// A field of /proc/self/status (Linux), as written there.
fn proc_status(field: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// Peak resident memory of this process.
fn peak_rss() -> Option<String> {
    proc_status("VmHWM")
}

/// Resident memory of this process now, in KiB.
fn rss_kib() -> Option<u64> {
    proc_status("VmRSS")?
        .strip_suffix(" kB")?
        .trim()
        .parse()
        .ok()
}

/// The memory budget of a run: an error naming the figures once the
/// process holds more than `limit_mb` MiB.
fn memory_guard(a: &SimArgs) -> impl FnMut(Duration) -> Result<(), MemoryExceeded> + '_ {
    move |t| {
        let Some(kib) = rss_kib().filter(|_| a.max_memory_mb > 0) else {
            return Ok(());
        };
        if kib / 1024 <= a.max_memory_mb {
            return Ok(());
        }
        Err(MemoryExceeded {
            at: t,
            rss_mib: kib / 1024,
            limit_mib: a.max_memory_mb,
            partition: a.scenario == Scenario::Partition,
        })
    }
}

fn run(a: &SimArgs) -> Result<(), SimCmdError> {
    if !(0.0..1.0).contains(&a.loss) {
        return Err(SimCmdError::Loss(a.loss));
    }
    let sim_cfg = SimConfig {
        nodes: a.nodes,
        seed: a.seed,
        profile: a.profile,
        link: LinkModel {
            latency: secs("latency-ms", a.latency_ms, 1000.0)?,
            jitter: secs("jitter-ms", a.jitter_ms, 1000.0)?,
            loss: a.loss,
        },
        keys: Vec::new(),
        converged: !a.join,
        reconnect: a
            .reconnect_secs
            .map(|s| secs("reconnect-secs", s, 1.0))
            .transpose()?,
        standby: 0,
    };
    let mut cfg = ScenarioConfig::new(sim_cfg, a.scenario, secs("duration", a.duration, 1.0)?);
    cfg.fact_at = secs("fact-at", a.fact_at, 1.0)?;
    cfg.partition_for = secs("partition-secs", a.partition_secs, 1.0)?;
    let started = Instant::now();
    // The core's guard hands its reason back as text (SimError::Stopped),
    // which the core shows as is.
    let mut guard = memory_guard(a);
    // Virtual time starts now; the simulation never reads the clock again.
    let report = sim::run_scenario_guarded(&cfg, started, |t| guard(t).map_err(|e| e.to_string()))?;
    let wall = started.elapsed();
    println!("{report}");
    println!(
        "wall time: {:.1} s; peak memory (VmHWM): {}",
        wall.as_secs_f64(),
        peak_rss().unwrap_or_else(|| "unknown".into())
    );
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).map_err(|source| SimCmdError::CreateDir {
            dir: dir.clone(),
            source,
        })?;
        let write = |path: &PathBuf, text: &str| {
            std::fs::write(path, text).map_err(|source| SimCmdError::Write {
                path: path.clone(),
                source,
            })
        };
        let csv = dir.join("curve.csv");
        write(&csv, &plot::csv(&report))?;
        let svg = dir.join("curve.svg");
        write(&svg, &plot::svg(&report)?)?;
        let txt = dir.join("report.txt");
        write(&txt, &format!("{report}\n"))?;
        println!(
            "wrote {}, {} and {}",
            csv.display(),
            svg.display(),
            txt.display()
        );
    }
    Ok(())
}

/// Runs `sim` and reports errors on stderr.
pub fn main(a: &SimArgs) -> ExitCode {
    match run(a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_time_flag_is_named_with_the_value_as_given() {
        let e = secs("latency-ms", -5.0, 1000.0).unwrap_err();
        assert!(matches!(e, SimCmdError::Time { flag: "latency-ms", value, .. } if value == -5.0));
        assert!(e.to_string().starts_with("--latency-ms -5: "), "{e}");
        assert_eq!(
            secs("latency-ms", 1.5, 1000.0).unwrap(),
            Duration::from_micros(1500)
        );
    }

    #[test]
    fn the_memory_limit_names_the_figures_and_the_partition_hint() {
        let e = MemoryExceeded {
            at: Duration::from_secs(12),
            rss_mib: 130,
            limit_mib: 128,
            partition: true,
        };
        assert_eq!(
            e.to_string(),
            "stopped at 12 s of virtual time: 130 MiB resident, over --max-memory-mb 128 \
             (after a partition every node holds its own view of the other side: memory grows \
             with the square of --nodes); run fewer --nodes, or raise --max-memory-mb"
        );
    }
}
