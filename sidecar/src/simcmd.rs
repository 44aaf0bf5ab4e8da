//! `gossamer-sidecar sim`: runs a simulator scenario, prints what it
//! measured and writes the convergence curve (CSV and SVG).

mod plot;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use gossamer_sidecar::membership::Profile;
use gossamer_sidecar::sim::{self, LinkModel, Scenario, ScenarioConfig, SimConfig};

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

fn secs(s: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|e| format!("--{what} {s}: {e}"))
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
fn memory_guard(a: &SimArgs) -> impl FnMut(Duration) -> Result<(), String> + '_ {
    move |t| {
        let Some(kib) = rss_kib().filter(|_| a.max_memory_mb > 0) else {
            return Ok(());
        };
        if kib / 1024 <= a.max_memory_mb {
            return Ok(());
        }
        let hint = if a.scenario == Scenario::Partition {
            " (after a partition every node holds its own view of the other \
             side: memory grows with the square of --nodes)"
        } else {
            ""
        };
        Err(format!(
            "stopped at {:.0} s of virtual time: {} MiB resident, over --max-memory-mb {}{hint}; \
             run fewer --nodes, or raise --max-memory-mb",
            t.as_secs_f64(),
            kib / 1024,
            a.max_memory_mb
        ))
    }
}

fn run(a: &SimArgs) -> Result<(), String> {
    if !(0.0..1.0).contains(&a.loss) {
        return Err(format!(
            "--loss {}: use a rate from 0.0 up to (not including) 1.0",
            a.loss
        ));
    }
    let sim_cfg = SimConfig {
        nodes: a.nodes,
        seed: a.seed,
        profile: a.profile,
        link: LinkModel {
            latency: secs(a.latency_ms / 1000.0, "latency-ms")?,
            jitter: secs(a.jitter_ms / 1000.0, "jitter-ms")?,
            loss: a.loss,
        },
        keys: Vec::new(),
        converged: !a.join,
        reconnect: a
            .reconnect_secs
            .map(|s| secs(s, "reconnect-secs"))
            .transpose()?,
        standby: 0,
    };
    let mut cfg = ScenarioConfig::new(sim_cfg, a.scenario, secs(a.duration, "duration")?);
    cfg.fact_at = secs(a.fact_at, "fact-at")?;
    cfg.partition_for = secs(a.partition_secs, "partition-secs")?;
    let started = Instant::now();
    // Virtual time starts now; the simulation never reads the clock again.
    let report =
        sim::run_scenario_guarded(&cfg, started, memory_guard(a)).map_err(|e| e.to_string())?;
    let wall = started.elapsed();
    println!("{report}");
    println!(
        "wall time: {:.1} s; peak memory (VmHWM): {}",
        wall.as_secs_f64(),
        peak_rss().unwrap_or_else(|| "unknown".into())
    );
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let csv = dir.join("curve.csv");
        std::fs::write(&csv, plot::csv(&report))
            .map_err(|e| format!("cannot write {}: {e}", csv.display()))?;
        let svg = dir.join("curve.svg");
        std::fs::write(&svg, plot::svg(&report)?)
            .map_err(|e| format!("cannot write {}: {e}", svg.display()))?;
        let txt = dir.join("report.txt");
        std::fs::write(&txt, format!("{report}\n"))
            .map_err(|e| format!("cannot write {}: {e}", txt.display()))?;
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
