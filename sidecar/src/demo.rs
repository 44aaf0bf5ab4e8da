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

/// Why the demo stopped. The texts name the node and what was expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// `--nodes` below 3.
    #[error("--nodes {0}: the demo needs at least 3 nodes")]
    TooFewNodes(usize),
    /// The demo's own executable (which it runs as every node) is unknown.
    #[error("cannot find own binary: {0}")]
    OwnBinary(#[source] std::io::Error),
    /// A node process could not be started.
    #[error("cannot start {name}: {source}")]
    Start {
        /// The node.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A node process came without its stdout pipe.
    #[error("{0} has no stdout to read its events from")]
    NoStdout(String),
    /// The first node printed no ready line in time.
    #[error("the first node did not start within {0:?}")]
    FirstNodeSlow(Duration),
    /// Not every node saw every node alive in time.
    #[error("members did not converge in {timeout:?}: {views:?}")]
    NotConverged {
        /// How long the demo waited.
        timeout: Duration,
        /// Each node's view at that point.
        views: Views,
    },
    /// Some node printed no API address in time.
    #[error("not every node told its API address within {0:?}")]
    ApiAddressesMissing(Duration),
    /// A node's ready line had no API address.
    #[error("demo-{0} did not tell its API address")]
    NoApiAddress(usize),
    /// A node's table API cannot be reached.
    #[error("cannot reach demo-{node}'s table API at {addr}: {source}")]
    Connect {
        /// The node's index.
        node: usize,
        /// The API address it told.
        addr: String,
        /// The transport error.
        source: tonic::transport::Error,
    },
    /// A table API call failed.
    #[error("{call} on demo-{node}: {source}")]
    Call {
        /// What was called (`create`, `get KEY`, ...).
        call: String,
        /// The node's index.
        node: usize,
        /// The gRPC status.
        source: tonic::Status,
    },
    /// An entry did not reach the expected value everywhere in time.
    #[error("demo-{node}: {key} is {} after {timeout:?}, expected {}", show(.got), show(.want))]
    NotReplicated {
        /// The node's index.
        node: usize,
        /// The entry's key.
        key: String,
        /// What the node read last (None: absent).
        got: Option<Vec<u8>>,
        /// What was expected (None: absent).
        want: Option<Vec<u8>>,
        /// How long the demo waited.
        timeout: Duration,
    },
    /// A watch delivered nothing in time.
    #[error("demo-{node}'s watch went quiet for {timeout:?}")]
    WatchQuiet {
        /// The node's index.
        node: usize,
        /// How long the demo waited.
        timeout: Duration,
    },
    /// A watch stream ended.
    #[error("demo-{0}'s watch ended")]
    WatchEnded(usize),
    /// A node could not be killed.
    #[error("cannot kill {name}: {source}")]
    Kill {
        /// The node.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The crashed node was not marked dead by every survivor in time.
    #[error("{node} was not marked dead by all in {timeout:?}")]
    NotMarkedDead {
        /// The killed node.
        node: String,
        /// How long the demo waited.
        timeout: Duration,
    },
    /// A graceful leave was not seen by every remaining node in time.
    #[error("{node}'s leave was not seen by all in {timeout:?}")]
    LeaveNotSeen {
        /// The node that left.
        node: String,
        /// How long the demo waited.
        timeout: Duration,
    },
}

/// An entry's value for a message: its text, or "absent".
fn show(v: &Option<Vec<u8>>) -> String {
    match v {
        Some(b) => format!("{:?}", String::from_utf8_lossy(b)),
        None => "absent".into(),
    }
}

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
) -> Result<Proc, DemoError> {
    let exe = std::env::current_exe().map_err(DemoError::OwnBinary)?;
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
    let mut child = cmd.spawn().map_err(|source| DemoError::Start {
        name: name.clone(),
        source,
    })?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| DemoError::NoStdout(name.clone()))?;
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

async fn connect(views: &Views, i: usize) -> Result<TablesClient<Channel>, DemoError> {
    let addr = views
        .get(&i)
        .and_then(|v| v.get(API))
        .ok_or(DemoError::NoApiAddress(i))?;
    TablesClient::connect(format!("http://{addr}"))
        .await
        .map_err(|source| DemoError::Connect {
            node: i,
            addr: addr.clone(),
            source,
        })
}

/// Names a failed call on node `node`.
fn call(call: impl Into<String>, node: usize) -> impl FnOnce(tonic::Status) -> DemoError {
    let call = call.into();
    move |source| DemoError::Call { call, node, source }
}

/// Polls every client until `key` reads `want` (None: absent) on all.
async fn until_everywhere(
    clients: &mut [TablesClient<Channel>],
    key: &str,
    want: Option<&[u8]>,
    timeout: Duration,
) -> Result<(), DemoError> {
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
                Err(s) => return Err(call(format!("get {key}"), i)(s)),
            };
            if got.as_deref() == want {
                break;
            }
            if Instant::now() > deadline {
                return Err(DemoError::NotReplicated {
                    node: i,
                    key: key.into(),
                    got,
                    want: want.map(<[u8]>::to_vec),
                    timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// Writes an entry through node 0's API and deletes it through node 1's,
/// showing both reach every node (and node 2's watcher).
async fn tables_demo(views: &Views, n: usize) -> Result<(), DemoError> {
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
        .map_err(call("watch", 2))?
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
        .map_err(call("create", 0))?;
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
        .map_err(call("delete", 1))?;
    println!("demo-1 deletes {key}");
    until_everywhere(&mut clients, key, None, Duration::from_secs(10)).await?;
    println!(
        "deleted: {key} is gone on all {n} nodes after {:.3} s (a tombstone replicated the delete)",
        start.elapsed().as_secs_f64()
    );
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let quiet = Duration::from_secs(5);
        let ev = tokio::time::timeout(quiet, next_event(&mut watch))
            .await
            .map_err(|_| DemoError::WatchQuiet {
                node: 2,
                timeout: quiet,
            })?
            .ok_or(DemoError::WatchEnded(2))?
            .map_err(call("watch stream", 2))?;
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
pub async fn run(n: usize) -> Result<(), DemoError> {
    if n < 3 {
        return Err(DemoError::TooFewNodes(n));
    }
    println!("Gossamer demo: {n} sidecar processes on 127.0.0.1, memberlist LAN profile (embedded default config)");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut views: Views = HashMap::new();
    let mut procs = vec![spawn(0, None, tx.clone()).await?];
    // Learn the first node's address from its ready line.
    let first_start = Duration::from_secs(10);
    let seed = loop {
        match tokio::time::timeout(first_start, rx.recv()).await {
            Ok(Some((0, v))) if v["ev"] == "ready" => {
                let addr = v["addr"].as_str().unwrap_or_default().to_string();
                apply(&mut views, &(0, v));
                break addr;
            }
            Ok(Some(line)) => apply(&mut views, &line),
            _ => return Err(DemoError::FirstNodeSlow(first_start)),
        }
    };
    println!("seed node demo-0 listening on {seed}");
    let start = Instant::now();
    for i in 1..n {
        procs.push(spawn(i, Some(&seed), tx.clone()).await?);
    }
    let converge = Duration::from_secs(30);
    let converged = wait_until(&mut rx, &mut views, converge, |v| {
        (0..n).all(|i| count(v.get(&i), "alive") == n)
    })
    .await;
    if !converged {
        return Err(DemoError::NotConverged {
            timeout: converge,
            views,
        });
    }
    println!(
        "converged: every node sees {n}/{n} alive after {:.2} s",
        start.elapsed().as_secs_f64()
    );
    let api_wait = Duration::from_secs(10);
    let api_known = wait_until(&mut rx, &mut views, api_wait, |v| {
        (0..n).all(|i| v.get(&i).is_some_and(|m| m.contains_key(API)))
    })
    .await;
    if !api_known {
        return Err(DemoError::ApiAddressesMissing(api_wait));
    }
    tables_demo(&views, n).await?;

    let victim = n - 1;
    let victim_name = procs[victim].name.clone();
    println!("SIGKILL {victim_name} (a crash: no goodbye)");
    let killed_at = Instant::now();
    procs[victim]
        .child
        .start_kill()
        .map_err(|source| DemoError::Kill {
            name: victim_name.clone(),
            source,
        })?;
    let survivors: Vec<usize> = (0..n).filter(|i| *i != victim).collect();
    let detect = Duration::from_secs(60);
    let detected = wait_until(&mut rx, &mut views, detect, |v| {
        survivors.iter().all(|i| {
            v.get(i)
                .and_then(|m| m.get(&victim_name))
                .map(String::as_str)
                == Some("dead")
        })
    })
    .await;
    if !detected {
        return Err(DemoError::NotMarkedDead {
            node: victim_name,
            timeout: detect,
        });
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
    let leave_wait = Duration::from_secs(30);
    let seen = wait_until(&mut rx, &mut views, leave_wait, |v| {
        others.iter().all(|i| {
            v.get(i)
                .and_then(|m| m.get(&leaver_name))
                .map(String::as_str)
                == Some("left")
        })
    })
    .await;
    if !seen {
        return Err(DemoError::LeaveNotSeen {
            node: leaver_name,
            timeout: leave_wait,
        });
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
