//! `gossamer-sidecar demo`: a local cluster of sidecar processes on
//! loopback from the embedded default configuration. It shows members
//! converge, a killed node detected as dead, and a stopped node seen as left.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

struct Proc {
    name: String,
    child: Child,
}

/// (node index, event line)
type Line = (usize, Value);

async fn spawn(
    i: usize,
    seed: Option<&str>,
    tx: mpsc::UnboundedSender<Line>,
) -> Result<Proc, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let name = format!("demo-{i}");
    let mut cmd = Command::new(exe);
    cmd.args(["run", "--stdio", "--bind", "127.0.0.1:0", "--name", &name]);
    if let Some(s) = seed {
        cmd.args(["--seed", s]);
    }
    cmd.env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    let out = child.stdout.take().ok_or("no stdout")?;
    tokio::spawn(async move {
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<Value>(&l) {
                if tx.send((i, v)).is_err() {
                    break;
                }
            }
        }
    });
    Ok(Proc { name, child })
}

/// Each node's view: node name -> state.
type Views = HashMap<usize, BTreeMap<String, String>>;

fn apply(views: &mut Views, (i, v): &Line) {
    let view = views.entry(*i).or_default();
    let node = v["node"].as_str().unwrap_or_default().to_string();
    match v["ev"].as_str() {
        Some("join") => {
            view.insert(node, "alive".into());
        }
        Some("leave") => {
            view.insert(node, v["state"].as_str().unwrap_or("dead").into());
        }
        _ => {}
    }
}

async fn wait_until(
    rx: &mut mpsc::UnboundedReceiver<Line>,
    views: &mut Views,
    timeout: Duration,
    mut done: impl FnMut(&Views) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(views) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(line)) => apply(views, &line),
            _ => return done(views),
        }
    }
    true
}

fn count(view: Option<&BTreeMap<String, String>>, state: &str) -> usize {
    view.map_or(0, |v| v.values().filter(|s| *s == state).count())
}

/// Runs the demo with `n` nodes.
///
/// # Errors
/// A node could not start, or the cluster did not behave in time.
pub async fn run(n: usize) -> Result<(), String> {
    if n < 3 {
        return Err(format!("--nodes {n}: the demo needs at least 3 nodes"));
    }
    println!("Gossamer demo: {n} sidecar processes on 127.0.0.1, memberlist LAN profile (embedded default config)");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut views: Views = HashMap::new();
    let mut procs = vec![spawn(0, None, tx.clone()).await?];
    // Learn the first node's address from its ready line.
    let seed = loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some((0, v))) if v["ev"] == "ready" => {
                break v["addr"].as_str().unwrap_or_default().to_string()
            }
            Ok(Some(line)) => apply(&mut views, &line),
            _ => return Err("the first node did not start within 10 s".into()),
        }
    };
    println!("seed node demo-0 listening on {seed}");
    let start = Instant::now();
    for i in 1..n {
        procs.push(spawn(i, Some(&seed), tx.clone()).await?);
    }
    let converged = wait_until(&mut rx, &mut views, Duration::from_secs(30), |v| {
        (0..n).all(|i| count(v.get(&i), "alive") == n)
    })
    .await;
    if !converged {
        return Err(format!("members did not converge in 30 s: {views:?}"));
    }
    println!(
        "converged: every node sees {n}/{n} alive after {:.2} s",
        start.elapsed().as_secs_f64()
    );

    let victim = n - 1;
    let victim_name = procs[victim].name.clone();
    println!("SIGKILL {victim_name} (a crash: no goodbye)");
    let killed_at = Instant::now();
    procs[victim]
        .child
        .start_kill()
        .map_err(|e| format!("kill failed: {e}"))?;
    let survivors: Vec<usize> = (0..n).filter(|i| *i != victim).collect();
    let detected = wait_until(&mut rx, &mut views, Duration::from_secs(60), |v| {
        survivors.iter().all(|i| {
            v.get(i)
                .and_then(|m| m.get(&victim_name))
                .map(String::as_str)
                == Some("dead")
        })
    })
    .await;
    if !detected {
        return Err(format!("{victim_name} was not marked dead by all in 60 s"));
    }
    println!(
        "detected: all {} survivors mark {victim_name} dead after {:.2} s (probe, indirect probes, Lifeguard suspicion)",
        survivors.len(),
        killed_at.elapsed().as_secs_f64()
    );

    let leaver = n - 2;
    let leaver_name = procs[leaver].name.clone();
    println!("{leaver_name} leaves gracefully");
    if let Some(stdin) = procs[leaver].child.stdin.as_mut() {
        let _ = stdin
            .write_all(b"{\"cmd\":\"leave\",\"timeout_ms\":3000}\n")
            .await;
    }
    let left_at = Instant::now();
    let others: Vec<usize> = (0..n).filter(|i| *i != victim && *i != leaver).collect();
    let seen = wait_until(&mut rx, &mut views, Duration::from_secs(30), |v| {
        others.iter().all(|i| {
            v.get(i)
                .and_then(|m| m.get(&leaver_name))
                .map(String::as_str)
                == Some("left")
        })
    })
    .await;
    if !seen {
        return Err(format!("{leaver_name}'s leave was not seen by all in 30 s"));
    }
    println!(
        "left: all {} remaining nodes see {leaver_name} as left after {:.2} s",
        others.len(),
        left_at.elapsed().as_secs_f64()
    );
    for p in &mut procs {
        let _ = p.child.start_kill();
    }
    println!("demo finished: all nodes stopped");
    Ok(())
}
