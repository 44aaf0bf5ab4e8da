//! The stdio control protocol (tests/interop/README.md): JSON events on
//! stdout, JSON commands on stdin. It lets one harness drive Gossamer
//! sidecars and Go memberlist peers alike, and powers the demo.

#![allow(clippy::disallowed_methods)] // shell: reads the clock for deadlines

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::keyring::{Fingerprint, Key};
use crate::membership::{Event, Member};
use crate::runtime::NodeHandle;

/// One command line.
#[derive(Debug, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
enum Cmd {
    Members,
    Join {
        seeds: Vec<String>,
    },
    Send {
        to: String,
        data: String,
        #[serde(default)]
        reliable: bool,
    },
    Broadcast {
        data: String,
    },
    SetState {
        data: String,
    },
    SetMeta {
        data: String,
    },
    Stats,
    Leave {
        #[serde(default = "default_leave_ms")]
        timeout_ms: u64,
    },
    AddKey {
        key: HexKey,
    },
    UseKey {
        key: HexKey,
    },
    RemoveKey {
        key: HexKey,
    },
    Keys,
    SetVerify {
        incoming: bool,
        outgoing: bool,
    },
    Shutdown,
}

/// Key text from a command line; `Debug` never shows it.
#[derive(Deserialize)]
#[serde(transparent)]
struct HexKey(String);

impl std::fmt::Debug for HexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HexKey(<redacted>)")
    }
}

impl HexKey {
    /// The key, or a printed error that names the command, never the text.
    fn parse(&self, cmd: &str) -> Option<Key> {
        match Key::from_hex(&self.0) {
            Ok(k) => Some(k),
            Err(e) => {
                print(json!({"ev": "error", "cmd": cmd, "error": e.to_string()}));
                None
            }
        }
    }
}

fn print_keys(fps: &[Fingerprint]) {
    let keys: Vec<String> = fps.iter().map(ToString::to_string).collect();
    print(json!({"ev": "keys", "primary": keys.first(), "keys": keys}));
}

fn default_leave_ms() -> u64 {
    5000
}

fn print(v: Value) {
    // One line per event; stdout is line-buffered by println.
    println!("{v}");
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn member_json(m: &Member) -> Value {
    json!({
        "node": m.name,
        "addr": m.addr.to_string(),
        "state": m.status.as_str(),
        "meta": text(&m.meta),
        "incarnation": m.incarnation,
    })
}

/// Prints one core event in the protocol's form.
fn print_event(e: &Event, leave_requested: &mut bool) {
    let v = match e {
        Event::Join(m) => {
            json!({"ev": "join", "node": m.name, "addr": m.addr.to_string(), "meta": text(&m.meta)})
        }
        Event::Leave(m) => json!({
            "ev": "leave", "node": m.name, "addr": m.addr.to_string(), "state": m.status.as_str()
        }),
        Event::Update(m) => {
            json!({"ev": "update", "node": m.name, "addr": m.addr.to_string(), "meta": text(&m.meta)})
        }
        Event::UserMessage(d) => json!({"ev": "user_msg", "data": text(d)}),
        Event::RemoteState { data, join } => {
            json!({"ev": "remote_state", "data": text(data), "join": join})
        }
        Event::Conflict { existing, other } => json!({
            "ev": "conflict", "node": existing.name,
            "existing": existing.addr.to_string(), "other": other.addr.to_string()
        }),
        Event::JoinFinished {
            contacted, errors, ..
        } => {
            if *contacted > 0 {
                json!({"ev": "joined", "contacted": contacted})
            } else {
                json!({"ev": "join_failed", "error": format!(
                    "failed to join: no seed answered; tried {}", errors.join("; "))})
            }
        }
        Event::SendFailed { to, error, .. } => {
            // Not printed: a late line could be taken for the answer to a
            // later command.
            tracing::warn!(node = %to, %error, "reliable user message not delivered");
            return;
        }
        Event::LeaveFinished { broadcast_sent } => {
            if !std::mem::take(leave_requested) {
                return;
            }
            json!({"ev": "left", "broadcast_sent": broadcast_sent})
        }
        // An event this protocol does not carry.
        _ => return,
    };
    print(v);
}

/// What ended the session.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// stdin closed or `shutdown`.
    Shutdown,
    /// SIGTERM: leave first.
    Terminate,
}

/// Runs the protocol until stdin closes, `shutdown`, or SIGTERM. `api` is
/// where the local table API listens, if it does (told in `ready`).
pub async fn serve(
    node: NodeHandle,
    events: &mut mpsc::UnboundedReceiver<Event>,
    api: Option<String>,
) -> Exit {
    let mut ready = json!({"ev": "ready", "name": node.name(), "addr": node.addr().to_string()});
    if let Some(a) = api {
        ready["api"] = json!(a);
    }
    print(ready);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM");
            None
        }
    };
    let mut leave_requested = false;
    loop {
        tokio::select! {
            Some(e) = events.recv() => print_event(&e, &mut leave_requested),
            line = lines.next_line() => match line {
                Ok(Some(l)) if l.trim().is_empty() => {}
                Ok(Some(l)) => {
                    if handle_line(&node, &l, &mut leave_requested).await {
                        return Exit::Shutdown;
                    }
                }
                Ok(None) | Err(_) => return Exit::Shutdown,
            },
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {
                return Exit::Terminate;
            }
        }
    }
}

/// Leaves (up to `timeout`), printing events meanwhile.
pub async fn leave_and_wait(
    node: &NodeHandle,
    events: &mut mpsc::UnboundedReceiver<Event>,
    timeout: Duration,
) {
    node.leave(timeout);
    let deadline = tokio::time::Instant::now() + timeout + Duration::from_millis(100);
    let mut requested = true;
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, events.recv()).await {
        let done = matches!(e, Event::LeaveFinished { .. });
        print_event(&e, &mut requested);
        if done {
            break;
        }
    }
}

/// Handles one command; true means shut down.
async fn handle_line(node: &NodeHandle, line: &str, leave_requested: &mut bool) -> bool {
    let cmd: Cmd = match serde_json::from_str(line) {
        Ok(c) => c,
        Err(e) => {
            // A line that may carry key material is never echoed, nor is
            // the parser's message (it can quote values).
            let error = if line.contains("key") {
                format!(
                    "bad command (line not shown: it may hold a key): invalid JSON or fields at line {} column {}",
                    e.line(),
                    e.column()
                )
            } else {
                format!("bad command {line:?}: {e}")
            };
            print(json!({"ev": "error", "cmd": "?", "error": error}));
            return false;
        }
    };
    match cmd {
        Cmd::Members => {
            let ms: Vec<Value> = node.members().await.iter().map(member_json).collect();
            print(json!({"ev": "members", "members": ms}));
        }
        Cmd::Join { seeds } => {
            let mut addrs = Vec::new();
            for s in &seeds {
                match crate::settings::resolve(s) {
                    Ok(a) => addrs.push(a),
                    Err(e) => {
                        print(json!({"ev": "join_failed", "error": e.to_string()}));
                        return false;
                    }
                }
            }
            node.join(addrs);
        }
        Cmd::Send { to, data, reliable } => {
            let r = if reliable {
                node.send_reliable(&to, data.into_bytes()).await
            } else {
                node.send_best_effort(&to, data.into_bytes()).await
            };
            match r {
                Ok(()) => print(json!({"ev": "ok", "cmd": "send"})),
                Err(e) => print(json!({"ev": "error", "cmd": "send", "error": e.to_string()})),
            }
        }
        Cmd::Broadcast { data } => {
            node.broadcast(data.into_bytes());
            print(json!({"ev": "ok", "cmd": "broadcast"}));
        }
        Cmd::SetState { data } => {
            node.set_local_state(data.into_bytes());
            print(json!({"ev": "ok", "cmd": "set_state"}));
        }
        Cmd::SetMeta { data } => match node.set_meta(data.into_bytes()).await {
            Ok(()) => print(json!({"ev": "ok", "cmd": "set_meta"})),
            Err(e) => print(json!({"ev": "error", "cmd": "set_meta", "error": e.to_string()})),
        },
        Cmd::Stats => {
            let t = node.traffic();
            let s = node.stats().await;
            print(
                json!({"ev": "stats", "udp_sent": t.udp_sent, "udp_recv": t.udp_recv,
                "tcp_sent": t.tcp_sent, "tcp_recv": t.tcp_recv,
                "decrypt_failures": s.decrypt_failures}),
            );
        }
        Cmd::AddKey { key } => {
            if let Some(k) = key.parse("add_key") {
                node.add_key(k).await;
                print(json!({"ev": "ok", "cmd": "add_key"}));
            }
        }
        Cmd::UseKey { key } => {
            if let Some(k) = key.parse("use_key") {
                match node.use_key(k).await {
                    Ok(()) => print(json!({"ev": "ok", "cmd": "use_key"})),
                    Err(e) => {
                        print(json!({"ev": "error", "cmd": "use_key", "error": e.to_string()}))
                    }
                }
            }
        }
        Cmd::RemoveKey { key } => {
            if let Some(k) = key.parse("remove_key") {
                match node.remove_key(k).await {
                    Ok(_) => print(json!({"ev": "ok", "cmd": "remove_key"})),
                    Err(e) => {
                        print(json!({"ev": "error", "cmd": "remove_key", "error": e.to_string()}))
                    }
                }
            }
        }
        Cmd::Keys => print_keys(&node.keys().await),
        Cmd::SetVerify { incoming, outgoing } => {
            node.set_verify(incoming, outgoing);
            print(json!({"ev": "ok", "cmd": "set_verify"}));
        }
        Cmd::Leave { timeout_ms } => {
            *leave_requested = true;
            node.leave(Duration::from_millis(timeout_ms));
        }
        Cmd::Shutdown => return true,
    }
    false
}
