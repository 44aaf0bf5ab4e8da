//! `gossamer-sidecar demo`: a local cluster of sidecar processes on
//! loopback from the embedded default configuration. It shows members
//! converge, an entry written through one node's table API appear on all,
//! its delete propagate, a killed node detected as dead, and a stopped node
//! seen as left.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::time::{Duration, Instant};

use gossamer_proto::tables::v1 as pb;
use pb::tables_client::TablesClient;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// The network every demo node joins at start.
const NETWORK: &str = "demo";
/// The table the demo writes.
const TABLE: &str = "services";

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
    cmd.args(["run", "--stdio", "--bind", "127.0.0.1:0", "--name", &name])
        .args(["--api-listen", "127.0.0.1:0", "--network", NETWORK]);
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

/// Each node's view: node name -> state; its API address under "api".
type Views = HashMap<usize, BTreeMap<String, String>>;

/// The key under which a view keeps its node's API address.
const API: &str = "\0api";

fn apply(views: &mut Views, (i, v): &Line) {
    let view = views.entry(*i).or_default();
    let node = v["node"].as_str().unwrap_or_default().to_string();
    match v["ev"].as_str() {
        Some("ready") => {
            if let Some(a) = v["api"].as_str() {
                view.insert(API.into(), a.into());
            }
        }
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

async fn connect(views: &Views, i: usize) -> Result<TablesClient<Channel>, String> {
    let addr = views
        .get(&i)
        .and_then(|v| v.get(API))
        .ok_or(format!("demo-{i} did not tell its API address"))?;
    TablesClient::connect(format!("http://{addr}"))
        .await
        .map_err(|e| format!("cannot reach demo-{i}'s table API at {addr}: {e}"))
}

/// Polls every client until `key` reads `want` (None: absent) on all.
async fn until_everywhere(
    clients: &mut [TablesClient<Channel>],
    key: &str,
    want: Option<&[u8]>,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    for (i, c) in clients.iter_mut().enumerate() {
        loop {
            let req = pb::GetEntryRequest {
                network: NETWORK.into(),
                table: TABLE.into(),
                key: key.into(),
            };
            let got = match c.get_entry(req).await {
                Ok(e) => Some(e.into_inner().value),
                Err(s) if s.code() == tonic::Code::NotFound => None,
                Err(s) => return Err(format!("demo-{i}: {s}")),
            };
            if got.as_deref() == want {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("demo-{i}: {key} is {got:?} after {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// Writes an entry through node 0's API and deletes it through node 1's,
/// showing both reach every node (and node 2's watcher).
async fn tables_demo(views: &Views, n: usize) -> Result<(), String> {
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        clients.push(connect(views, i).await?);
    }
    let mut watch = clients[2]
        .watch_table(pb::WatchTableRequest {
            network: NETWORK.into(),
            table: TABLE.into(),
        })
        .await
        .map_err(|e| format!("watch on demo-2: {e}"))?
        .into_inner();
    let key = "checkout";
    let value = b"10.0.0.7:8080";
    let start = Instant::now();
    clients[0]
        .create_entry(pb::WriteEntryRequest {
            network: NETWORK.into(),
            table: TABLE.into(),
            key: key.into(),
            value: value.to_vec(),
        })
        .await
        .map_err(|e| format!("create on demo-0: {e}"))?;
    println!(
        "demo-0 writes {NETWORK}/{TABLE}/{key} = {} through its gRPC table API",
        String::from_utf8_lossy(value)
    );
    until_everywhere(&mut clients, key, Some(value), Duration::from_secs(10)).await?;
    println!(
        "replicated: all {n} nodes read {key} after {:.3} s (NetworkDB gossip in network {NETWORK:?})",
        start.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    clients[1]
        .delete_entry(pb::DeleteEntryRequest {
            network: NETWORK.into(),
            table: TABLE.into(),
            key: key.into(),
        })
        .await
        .map_err(|e| format!("delete on demo-1: {e}"))?;
    println!("demo-1 deletes {key}");
    until_everywhere(&mut clients, key, None, Duration::from_secs(10)).await?;
    println!(
        "deleted: {key} is gone on all {n} nodes after {:.3} s (a tombstone replicated the delete)",
        start.elapsed().as_secs_f64()
    );
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let ev = tokio::time::timeout(Duration::from_secs(5), next_event(&mut watch))
            .await
            .map_err(|_| "demo-2's watch went quiet".to_string())?
            .ok_or("demo-2's watch ended")?
            .map_err(|e| format!("demo-2's watch: {e}"))?;
        if ev.r#type() != pb::watch_event::Type::Synced {
            seen.push(format!("{:?} {}", ev.r#type(), ev.key).to_lowercase());
        }
    }
    println!("demo-2's watch saw: {}", seen.join(", "));
    Ok(())
}

async fn next_event(
    s: &mut tonic::Streaming<pb::WatchEvent>,
) -> Option<Result<pb::WatchEvent, tonic::Status>> {
    s.message().await.transpose()
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
                let addr = v["addr"].as_str().unwrap_or_default().to_string();
                apply(&mut views, &(0, v));
                break addr;
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
    let api_known = wait_until(&mut rx, &mut views, Duration::from_secs(10), |v| {
        (0..n).all(|i| v.get(&i).is_some_and(|m| m.contains_key(API)))
    })
    .await;
    if !api_known {
        return Err("not every node told its API address".into());
    }
    tables_demo(&views, n).await?;

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
