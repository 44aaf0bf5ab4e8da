//! Convergence under churn, real processes on loopback: Gossamer sidecars
//! (default settings, and with `--memberlist-exact true`) beside Go
//! memberlist v0.7.0 peers, and mixed clusters of both, in the same run,
//! same flags otherwise.
//!
//! - join wave: N peers start alone, then join the first, all at once
//!   (LAN) or 0.1 s apart (Local, as issue 14 measured); the figure is the
//!   time from the last join command until every peer holds N alive;
//! - rolling restart (LAN): in a converged cluster, one peer after another
//!   leaves gracefully and exits while a new peer (new name) joins the last
//!   one, 1 s apart; the figure is the time from the last join until every
//!   running peer holds exactly the running peers alive;
//! - graceful leave (LAN): in a converged cluster of N, one peer leaves
//!   (memberlist's `Leave`) and exits; the figure is the time from the
//!   leave command until every other peer holds it as left. A peer that
//!   missed the notice finds out by failure detection and holds it as
//!   dead: such a trial is counted as "missed" (and timed when all had
//!   seen it either way).
//!
//! Each trial is capped (`--timeout-s`, default 30): a trial over it
//! counts as "over" and is printed as such, not as a time. Prints, per
//! implementation and case, the trial count and the whole distribution.
//!
//! Run: `cargo bench -p gossamer-tests --bench convergence -- --trials 5`
//! (optionally `--cases local6,lan16,lan64,rolling16,leave16 --kinds go,rust,rust-exact,mixed`).
//! Not a timed test: a benchmark.

#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

use std::thread;
use std::time::{Duration, Instant};

use gossamer_tests::{Flags, Kind, MemberState, Peer};

/// What a trial runs.
#[derive(Clone, Copy, Debug)]
enum Case {
    Join {
        n: usize,
        local: bool,
    },
    Rolling {
        n: usize,
        restarts: usize,
        local: bool,
    },
    Leave {
        n: usize,
    },
    /// A rolling restart of all `n` peers, each step timed: the next
    /// restart starts once every peer holds exactly the running peers
    /// alive (or the cap passed), and at least 1 s after the last.
    Steps {
        n: usize,
        local: bool,
    },
}

impl Case {
    fn parse(s: &str) -> Case {
        match s {
            "local6" => Case::Join { n: 6, local: true },
            "rolling16" => Case::Rolling {
                n: 16,
                restarts: 4,
                local: false,
            },
            "restart-local6" => Case::Rolling {
                n: 6,
                restarts: 6,
                local: true,
            },
            "steps-local6" => Case::Steps { n: 6, local: true },
            other => {
                let size = |prefix: &str| other.strip_prefix(prefix).and_then(|n| n.parse().ok());
                if let Some(n) = size("lan") {
                    Case::Join { n, local: false }
                } else if let Some(n) = size("restart") {
                    Case::Rolling {
                        n,
                        restarts: n,
                        local: false,
                    }
                } else if let Some(n) = size("leave") {
                    Case::Leave { n }
                } else if let Some(n) = size("steps") {
                    Case::Steps { n, local: false }
                } else {
                    panic!(
                        "unknown case {other:?}: local6, lanN, rolling16, restart-local6, restartN, leaveN, steps-local6, stepsN"
                    )
                }
            }
        }
    }

    fn name(self) -> String {
        match self {
            Case::Join { n, local: true } => format!("join, N = {n}, Local, 0.1 s apart"),
            Case::Join { n, local: false } => format!("join, N = {n}, LAN, at once"),
            Case::Rolling { n, restarts, local } => {
                let profile = if local { "Local" } else { "LAN" };
                format!("rolling restart of {restarts} of N = {n}, {profile}, 1 s apart")
            }
            Case::Leave { n } => format!("graceful leave, 1 of N = {n}, LAN"),
            Case::Steps { n, local } => {
                let profile = if local { "Local" } else { "LAN" };
                format!("rolling restart of N = {n}, {profile}, each step")
            }
        }
    }

    /// Issue 14's target for the case, in seconds.
    fn bound(self) -> f64 {
        match self {
            Case::Leave { .. } => 1.0,
            _ => 2.0,
        }
    }
}

/// Go, Rust with defaults, Rust with `--memberlist-exact true`, or a
/// mixed cluster (Go and Gossamer with defaults, alternately).
#[derive(Clone, Copy, Debug)]
struct Impl {
    kind: Kind,
    exact: bool,
    mixed: bool,
}

impl Impl {
    fn parse(s: &str) -> Impl {
        match s {
            "go" => Impl {
                kind: Kind::Go,
                exact: false,
                mixed: false,
            },
            "rust" => Impl {
                kind: Kind::Rust,
                exact: false,
                mixed: false,
            },
            "rust-exact" => Impl {
                kind: Kind::Rust,
                exact: true,
                mixed: false,
            },
            "mixed" => Impl {
                kind: Kind::Go,
                exact: false,
                mixed: true,
            },
            other => panic!("unknown kind {other:?}: go, rust, rust-exact, mixed"),
        }
    }

    fn name(self) -> &'static str {
        match (self.kind, self.exact, self.mixed) {
            (_, _, true) => "mixed: Go memberlist and Gossamer alternately",
            (Kind::Go, _, _) => "Go memberlist",
            (_, false, _) => "Gossamer",
            (_, true, _) => "Gossamer, memberlist_exact",
        }
    }

    /// The kind of the `i`th peer (peer 0 is the seed of a join wave).
    fn kind_of(self, i: usize) -> Kind {
        match (self.mixed, i % 2) {
            (true, 0) => Kind::Go,
            (true, _) => Kind::Rust,
            (false, _) => self.kind,
        }
    }

    fn flags(self, local: bool) -> Flags {
        let mut f = Flags::new().meta("");
        if local {
            f = f.profile("local");
        }
        if self.exact {
            f = f.arg("--memberlist-exact", true);
        }
        f
    }
}

/// What one trial measured.
struct Trial {
    /// Seconds until all saw the change; `None`: over the cap.
    secs: Option<f64>,
    /// Some peer learned of a graceful leave only by failure detection.
    missed: bool,
}

impl Trial {
    fn timed(secs: Option<f64>) -> Trial {
        Trial {
            secs,
            missed: false,
        }
    }
}

/// Starts `n` peers with `flags` and joins them to the first one, all at
/// once or 0.1 s apart (`spaced`); returns them and when the last join
/// was sent.
fn join_wave(imp: Impl, flags: &Flags, n: usize, spaced: bool) -> (Vec<Peer>, Instant) {
    let peers: Vec<Peer> = (0..n)
        .map(|i| Peer::spawn(imp.kind_of(i), &format!("n{i}"), flags.clone()).expect("peer starts"))
        .collect();
    let seed = peers[0].addr().to_string();
    for p in &peers[1..] {
        if spaced {
            thread::sleep(Duration::from_millis(100));
        }
        p.cmd(&serde_json::json!({"cmd": "join", "seeds": [seed]}))
            .expect("join command");
    }
    (peers, Instant::now())
}

/// Waits (up to five minutes: Go memberlist at 64 nodes may wait for
/// periodic push/pulls) until every peer holds all `n` alive.
fn converged(peers: &[Peer], n: usize) {
    for p in peers {
        p.wait_for(|v| v.alive().len() == n, Duration::from_secs(300))
            .expect("the cluster converges before the change");
    }
}

/// Whether every peer comes to hold exactly the running peers alive
/// within `timeout`.
fn all_hold_exactly(peers: &[Peer], timeout: Duration) -> bool {
    let t0 = Instant::now();
    let names: Vec<String> = peers.iter().map(|p| p.name().to_string()).collect();
    peers.iter().all(|p| {
        p.wait_for(
            |v| {
                let alive = v.alive();
                alive.len() == names.len() && names.iter().all(|m| alive.contains(&m.as_str()))
            },
            timeout.saturating_sub(t0.elapsed()),
        )
        .is_ok()
    })
}

/// A rolling restart of every peer, one at a time: the new peer (a new
/// name, as a Deployment's Pod) joins the one restarted last while the old
/// one leaves gracefully and exits. One sample per step: the time from
/// the new peer's join command until every running peer holds exactly the
/// running peers alive.
fn rolling_steps(imp: Impl, n: usize, local: bool, cap: Duration) -> Vec<Trial> {
    let flags = imp.flags(local);
    let (mut peers, _) = join_wave(imp, &flags, n, false);
    converged(&peers, n);
    let mut steps = Vec::with_capacity(n);
    for r in 0..n {
        let new =
            Peer::spawn(imp.kind_of(r), &format!("r{r}"), flags.clone()).expect("peer starts");
        let seed = peers[(r + n - 1) % n].addr().to_string();
        let mut old = std::mem::replace(&mut peers[r], new);
        let t0 = Instant::now();
        peers[r]
            .cmd(&serde_json::json!({"cmd": "join", "seeds": [seed]}))
            .expect("join command");
        let _ = old.leave(Duration::from_secs(2));
        let _ = old.shutdown();
        let ok = all_hold_exactly(&peers, cap.saturating_sub(t0.elapsed()));
        steps.push(Trial::timed(ok.then(|| t0.elapsed().as_secs_f64())));
        if let Some(rest) = Duration::from_secs(1).checked_sub(t0.elapsed()) {
            thread::sleep(rest);
        }
    }
    steps
}

fn trial(imp: Impl, case: Case, cap: Duration) -> Vec<Trial> {
    if let Case::Steps { n, local } = case {
        return rolling_steps(imp, n, local, cap);
    }
    vec![match case {
        Case::Join { n, local } => {
            let (peers, t0) = join_wave(imp, &imp.flags(local), n, local);
            let ok = peers.iter().all(|p| {
                p.wait_for(|v| v.alive().len() == n, cap.saturating_sub(t0.elapsed()))
                    .is_ok()
            });
            Trial::timed(ok.then(|| t0.elapsed().as_secs_f64()))
        }
        Case::Rolling { n, restarts, local } => {
            let flags = imp.flags(local);
            let (mut peers, _) = join_wave(imp, &flags, n, false);
            converged(&peers, n);
            let mut t0 = Instant::now();
            for r in 0..restarts {
                let new = Peer::spawn(imp.kind_of(r), &format!("r{r}"), flags.clone())
                    .expect("peer starts");
                // The new pod joins the one restarted last (at first the
                // last one started) as the old one leaves.
                let seed = peers[(r + n - 1) % n].addr().to_string();
                let mut old = std::mem::replace(&mut peers[r], new);
                peers[r]
                    .cmd(&serde_json::json!({"cmd": "join", "seeds": [seed]}))
                    .expect("join command");
                t0 = Instant::now();
                let _ = old.leave(Duration::from_secs(2));
                let _ = old.shutdown();
                thread::sleep(Duration::from_secs(1));
            }
            let ok = all_hold_exactly(&peers, cap.saturating_sub(t0.elapsed()));
            Trial::timed(ok.then(|| t0.elapsed().as_secs_f64()))
        }
        Case::Leave { n } => {
            let (mut peers, _) = join_wave(imp, &imp.flags(false), n, false);
            converged(&peers, n);
            let mut leaver = peers.remove(n - 1);
            let name = leaver.name().to_string();
            let t0 = Instant::now();
            let _ = leaver.leave(Duration::from_secs(2));
            let _ = leaver.shutdown();
            let gone =
                |s: Option<MemberState>| matches!(s, Some(MemberState::Left | MemberState::Dead));
            let ok = peers.iter().all(|p| {
                p.wait_for(
                    |v| gone(v.state_of(&name)),
                    cap.saturating_sub(t0.elapsed()),
                )
                .is_ok()
            });
            let secs = ok.then(|| t0.elapsed().as_secs_f64());
            let missed = peers
                .iter()
                .any(|p| p.with_view(|v| v.state_of(&name)) != Some(MemberState::Left));
            Trial { secs, missed }
        }
        Case::Steps { .. } => unreachable!("timed step by step above"),
    }]
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test --benches` run
    // only checks that it builds.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "convergence benchmark: run with `cargo bench -p gossamer-tests --bench convergence`"
        );
        return;
    }
    let trials: usize = arg("--trials").map_or(5, |s| s.parse().expect("--trials takes a count"));
    let cap = Duration::from_secs(
        arg("--timeout-s").map_or(30, |s| s.parse().expect("--timeout-s takes seconds")),
    );
    let cases: Vec<Case> = arg("--cases")
        .unwrap_or_else(|| "local6,lan16,lan64,rolling16".into())
        .split(',')
        .map(Case::parse)
        .collect();
    let impls: Vec<Impl> = arg("--kinds")
        .unwrap_or_else(|| "go,rust,rust-exact".into())
        .split(',')
        .map(Impl::parse)
        .collect();
    println!(
        "| case | implementation | samples (one per trial; per step for stepsN) | within the bound (2 s; leave: 1 s) | over {} s | leave missed by some peer | p50 | p99 | sorted times (s) |",
        cap.as_secs()
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for case in &cases {
        for imp in &impls {
            let mut times: Vec<f64> = Vec::new();
            let (mut over, mut missed, mut samples) = (0, 0, 0);
            for t in 0..trials {
                for r in trial(*imp, *case, cap) {
                    match r.secs {
                        Some(s) => times.push(s),
                        None => over += 1,
                    }
                    missed += usize::from(r.missed);
                    samples += 1;
                }
                eprintln!("{} / {}: trial {} done", case.name(), imp.name(), t + 1);
            }
            times.sort_by(f64::total_cmp);
            let within = times.iter().filter(|s| **s <= case.bound()).count();
            let list: Vec<String> = times.iter().map(|s| format!("{s:.2}")).collect();
            let over_list = if over > 0 {
                format!(", {over} x over")
            } else {
                String::new()
            };
            // Percentiles over all samples, those over the cap counting as
            // the slowest.
            let pct = |p: f64| {
                let rank = ((p * samples as f64).ceil() as usize).max(1);
                times
                    .get(rank - 1)
                    .map_or_else(|| "over".to_string(), |s| format!("{s:.2}"))
            };
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {}{} |",
                case.name(),
                imp.name(),
                samples,
                within,
                over,
                missed,
                pct(0.5),
                pct(0.99),
                list.join(", "),
                over_list
            );
        }
    }
}
