//! Convergence under churn, real processes on loopback: Gossamer sidecars
//! (default settings, and with `--memberlist-exact true`) beside Go
//! memberlist v0.7.0 peers, in the same run, same flags otherwise.
//!
//! - join wave: N peers start alone, then join the first, all at once
//!   (LAN) or 0.1 s apart (Local, as issue 14 measured); the figure is the
//!   time from the last join command until every peer holds N alive;
//! - rolling restart (LAN): in a converged cluster, one peer after another
//!   leaves gracefully and exits while a new peer (new name) joins the last
//!   one, 1 s apart; the figure is the time from the last join until every
//!   running peer holds exactly the running peers alive.
//!
//! Each trial is capped (`--timeout-s`, default 30): a trial over it
//! counts as "over" and is printed as such, not as a time. Prints, per
//! implementation and case, the trial count and the whole distribution.
//!
//! Run: `cargo bench -p gossamer-tests --bench convergence -- --trials 5`
//! (optionally `--cases local6,lan16,lan64,rolling16 --kinds go,rust,rust-exact`).
//! Not a timed test: a benchmark.

#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

use std::thread;
use std::time::{Duration, Instant};

use gossamer_tests::{Flags, Kind, Peer};

/// What a trial runs.
#[derive(Clone, Copy, Debug)]
enum Case {
    Join { n: usize, local: bool },
    Rolling { n: usize, restarts: usize },
}

impl Case {
    fn parse(s: &str) -> Case {
        match s {
            "local6" => Case::Join { n: 6, local: true },
            "rolling16" => Case::Rolling { n: 16, restarts: 4 },
            other => {
                let n = other
                    .strip_prefix("lan")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("unknown case {other:?}: local6, lanN, rolling16"));
                Case::Join { n, local: false }
            }
        }
    }

    fn name(self) -> String {
        match self {
            Case::Join { n, local: true } => format!("join, N = {n}, Local, 0.1 s apart"),
            Case::Join { n, local: false } => format!("join, N = {n}, LAN, at once"),
            Case::Rolling { n, restarts } => {
                format!("rolling restart of {restarts} of N = {n}, LAN, 1 s apart")
            }
        }
    }
}

/// Go, Rust with defaults, Rust with `--memberlist-exact true`.
#[derive(Clone, Copy, Debug)]
struct Impl {
    kind: Kind,
    exact: bool,
}

impl Impl {
    fn parse(s: &str) -> Impl {
        match s {
            "go" => Impl {
                kind: Kind::Go,
                exact: false,
            },
            "rust" => Impl {
                kind: Kind::Rust,
                exact: false,
            },
            "rust-exact" => Impl {
                kind: Kind::Rust,
                exact: true,
            },
            other => panic!("unknown kind {other:?}: go, rust, rust-exact"),
        }
    }

    fn name(self) -> &'static str {
        match (self.kind, self.exact) {
            (Kind::Go, _) => "Go memberlist",
            (_, false) => "Gossamer",
            (_, true) => "Gossamer, memberlist_exact",
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

/// Seconds after the last join until all see all; `None`: over the cap.
fn trial(imp: Impl, case: Case, cap: Duration) -> Option<f64> {
    match case {
        Case::Join { n, local } => {
            let peers: Vec<Peer> = (0..n)
                .map(|i| {
                    Peer::spawn(imp.kind, &format!("n{i}"), imp.flags(local)).expect("peer starts")
                })
                .collect();
            let seed = peers[0].addr().to_string();
            for p in &peers[1..] {
                if local {
                    thread::sleep(Duration::from_millis(100));
                }
                p.cmd(&serde_json::json!({"cmd": "join", "seeds": [seed]}))
                    .expect("join command");
            }
            let t0 = Instant::now();
            let ok = peers.iter().all(|p| {
                p.wait_for(|v| v.alive().len() == n, cap.saturating_sub(t0.elapsed()))
                    .is_ok()
            });
            ok.then(|| t0.elapsed().as_secs_f64())
        }
        Case::Rolling { n, restarts } => {
            let flags = imp.flags(false);
            let mut peers: Vec<Peer> = (0..n)
                .map(|i| {
                    Peer::spawn(imp.kind, &format!("n{i}"), flags.clone()).expect("peer starts")
                })
                .collect();
            let anchor = peers[n - 1].addr().to_string();
            for p in &peers[..n - 1] {
                p.cmd(&serde_json::json!({"cmd": "join", "seeds": [anchor]}))
                    .expect("join command");
            }
            for p in &peers {
                p.wait_for(|v| v.alive().len() == n, Duration::from_secs(120))
                    .expect("the cluster converges before the restarts");
            }
            let mut t0 = Instant::now();
            for (r, slot) in peers.iter_mut().take(restarts).enumerate() {
                let new =
                    Peer::spawn(imp.kind, &format!("r{r}"), flags.clone()).expect("peer starts");
                let mut old = std::mem::replace(slot, new);
                // The new pod starts as the old one leaves.
                slot.cmd(&serde_json::json!({"cmd": "join", "seeds": [anchor]}))
                    .expect("join command");
                t0 = Instant::now();
                let _ = old.leave(Duration::from_secs(2));
                let _ = old.shutdown();
                thread::sleep(Duration::from_secs(1));
            }
            let names: Vec<String> = peers.iter().map(|p| p.name().to_string()).collect();
            let ok = peers.iter().all(|p| {
                p.wait_for(
                    |v| {
                        let alive = v.alive();
                        alive.len() == n && names.iter().all(|m| alive.contains(&m.as_str()))
                    },
                    cap.saturating_sub(t0.elapsed()),
                )
                .is_ok()
            });
            ok.then(|| t0.elapsed().as_secs_f64())
        }
    }
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
        "| case | implementation | trials | within 2 s | over {} s | sorted times (s) |",
        cap.as_secs()
    );
    println!("|---|---|---|---|---|---|");
    for case in &cases {
        for imp in &impls {
            let mut times: Vec<f64> = Vec::new();
            let mut over = 0;
            for t in 0..trials {
                match trial(*imp, *case, cap) {
                    Some(s) => times.push(s),
                    None => over += 1,
                }
                eprintln!("{} / {}: trial {} done", case.name(), imp.name(), t + 1);
            }
            times.sort_by(f64::total_cmp);
            let within = times.iter().filter(|s| **s <= 2.0).count();
            let list: Vec<String> = times.iter().map(|s| format!("{s:.2}")).collect();
            let over_list = if over > 0 {
                format!(", {over} x over")
            } else {
                String::new()
            };
            println!(
                "| {} | {} | {} | {} | {} | {}{} |",
                case.name(),
                imp.name(),
                trials,
                within,
                over,
                list.join(", "),
                over_list
            );
        }
    }
}
