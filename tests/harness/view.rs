//! A peer's state as reconstructed from its stdout events.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::str::FromStr;

use serde_json::Value;

/// A member's state as a peer reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberState {
    /// Alive.
    Alive,
    /// Suspected of having failed (only visible through `members`).
    Suspect,
    /// Declared failed by the cluster.
    Dead,
    /// Left gracefully.
    Left,
}

impl FromStr for MemberState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "alive" => Ok(MemberState::Alive),
            "suspect" => Ok(MemberState::Suspect),
            "dead" => Ok(MemberState::Dead),
            "left" => Ok(MemberState::Left),
            other => Err(format!("unknown member state {other:?}")),
        }
    }
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        })
    }
}

/// One node in a peer's view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Node name.
    pub node: String,
    /// `IP:PORT` the node advertises.
    pub addr: String,
    /// State.
    pub state: MemberState,
    /// Metadata text.
    pub meta: String,
    /// Incarnation, known only from a `members` reply.
    pub incarnation: Option<u64>,
}

/// A push/pull user state a peer merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteState {
    /// The remote node's `set_state` data.
    pub data: String,
    /// Whether the push/pull was part of a join.
    pub join: bool,
}

/// A name conflict a peer reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// Conflicting node name.
    pub node: String,
    /// Address already known for it.
    pub existing: String,
    /// Address of the newcomer.
    pub other: String,
}

/// A failed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmdError {
    /// The command name (empty for unparsable input).
    pub cmd: String,
    /// The peer's error text.
    pub error: String,
}

/// Bytes on the wire reported by a `stats` reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// UDP payload bytes sent.
    pub udp_sent: u64,
    /// UDP payload bytes received.
    pub udp_recv: u64,
    /// TCP stream bytes sent.
    pub tcp_sent: u64,
    /// TCP stream bytes received.
    pub tcp_recv: u64,
}

/// Everything a peer has said on stdout so far, folded into a view.
///
/// Membership comes from `join`/`update`/`leave` events and is replaced
/// wholesale by each `members` reply (the only source of `suspect` and of
/// incarnations). Lines are applied in order, so the view always reflects
/// the latest line.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// Name from the `ready` event.
    pub name: String,
    /// Address from the `ready` event.
    pub addr: String,
    /// `ready` was seen.
    pub ready: bool,
    /// Known nodes by name, the peer itself included.
    pub members: BTreeMap<String, Member>,
    /// `members` replies received.
    pub members_replies: usize,
    /// Data of every `user_msg`, in arrival order.
    pub user_msgs: Vec<String>,
    /// Every `remote_state`, in arrival order.
    pub remote_states: Vec<RemoteState>,
    /// Every `conflict`.
    pub conflicts: Vec<Conflict>,
    /// Every `error`.
    pub errors: Vec<CmdError>,
    /// Every `stats` reply.
    pub stats: Vec<Stats>,
    /// `contacted` of every `joined`.
    pub joined: Vec<u64>,
    /// Error text of every `join_failed`.
    pub join_failed: Vec<String>,
    /// `left` answers received.
    pub left: usize,
    /// Every event line, parsed, in order.
    pub events: Vec<Value>,
    /// Stdout lines that were not JSON objects with an `ev` (protocol
    /// violations).
    pub bad_lines: Vec<String>,
    /// Stdout reached end of file: the process exited or closed it.
    pub eof: bool,
}

fn text(ev: &Value, key: &str) -> String {
    ev.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn number(ev: &Value, key: &str) -> u64 {
    ev.get(key).and_then(Value::as_u64).unwrap_or_default()
}

impl View {
    /// Folds one stdout line into the view.
    pub(crate) fn apply_line(&mut self, line: &str) {
        let parsed: Option<Value> = serde_json::from_str(line).ok();
        match parsed {
            Some(ev) if ev.get("ev").and_then(Value::as_str).is_some() => {
                if let Err(e) = self.apply(&ev) {
                    self.bad_lines.push(format!("{line}  ({e})"));
                }
                self.events.push(ev);
            }
            _ => self.bad_lines.push(line.to_string()),
        }
    }

    fn apply(&mut self, ev: &Value) -> Result<(), String> {
        match ev["ev"].as_str().unwrap_or_default() {
            "ready" => {
                self.ready = true;
                self.name = text(ev, "name");
                self.addr = text(ev, "addr");
            }
            kind @ ("join" | "update" | "leave") => {
                let node = text(ev, "node");
                let state = if kind == "leave" {
                    text(ev, "state").parse()?
                } else {
                    MemberState::Alive
                };
                let old = self.members.remove(&node);
                let meta = match (ev.get("meta").and_then(Value::as_str), &old) {
                    (Some(m), _) => m.to_string(),
                    (None, Some(o)) => o.meta.clone(),
                    (None, None) => String::new(),
                };
                let member = Member {
                    node: node.clone(),
                    addr: text(ev, "addr"),
                    state,
                    meta,
                    incarnation: old.and_then(|o| o.incarnation),
                };
                self.members.insert(node, member);
            }
            "members" => {
                let list = ev["members"].as_array().ok_or("members is not an array")?;
                let mut members = BTreeMap::new();
                for m in list {
                    let member = Member {
                        node: text(m, "node"),
                        addr: text(m, "addr"),
                        state: text(m, "state").parse()?,
                        meta: text(m, "meta"),
                        incarnation: m.get("incarnation").and_then(Value::as_u64),
                    };
                    members.insert(member.node.clone(), member);
                }
                self.members = members;
                self.members_replies += 1;
            }
            "user_msg" => self.user_msgs.push(text(ev, "data")),
            "remote_state" => self.remote_states.push(RemoteState {
                data: text(ev, "data"),
                join: ev.get("join").and_then(Value::as_bool).unwrap_or(false),
            }),
            "conflict" => self.conflicts.push(Conflict {
                node: text(ev, "node"),
                existing: text(ev, "existing"),
                other: text(ev, "other"),
            }),
            "error" => self.errors.push(CmdError {
                cmd: text(ev, "cmd"),
                error: text(ev, "error"),
            }),
            "stats" => self.stats.push(Stats {
                udp_sent: number(ev, "udp_sent"),
                udp_recv: number(ev, "udp_recv"),
                tcp_sent: number(ev, "tcp_sent"),
                tcp_recv: number(ev, "tcp_recv"),
            }),
            "joined" => self.joined.push(number(ev, "contacted")),
            "join_failed" => self.join_failed.push(text(ev, "error")),
            "left" => self.left += 1,
            // Keyring replies are read by `Peer::keys`.
            "ok" | "keys" => {}
            // NetworkDB peer answers and events, read by `crate::networkdb`.
            "table_event" | "node_event" | "entry" | "table" | "peers" => {}
            other => return Err(format!("unknown event {other:?}")),
        }
        Ok(())
    }

    /// The state of `node` in this view, if known.
    pub fn state_of(&self, node: &str) -> Option<MemberState> {
        self.members.get(node).map(|m| m.state)
    }

    /// Names of the nodes this view holds as alive, the peer itself included.
    pub fn alive(&self) -> Vec<&str> {
        self.members
            .values()
            .filter(|m| m.state == MemberState::Alive)
            .map(|m| m.node.as_str())
            .collect()
    }

    /// A readable dump: membership, counters and the last `last_events`
    /// event lines.
    pub fn dump(&self, last_events: usize) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "  ready: {} name: {:?} addr: {:?} eof: {}",
            self.ready, self.name, self.addr, self.eof
        );
        let _ = writeln!(s, "  members ({}):", self.members.len());
        for m in self.members.values() {
            let _ = writeln!(
                s,
                "    {} {} {} meta={:?} incarnation={:?}",
                m.node, m.addr, m.state, m.meta, m.incarnation
            );
        }
        let _ = writeln!(
            s,
            "  user_msgs: {:?}\n  remote_states: {:?}\n  joined: {:?} join_failed: {:?} left: {}\n  errors: {:?}\n  conflicts: {:?}",
            self.user_msgs, self.remote_states, self.joined, self.join_failed, self.left, self.errors, self.conflicts
        );
        if !self.bad_lines.is_empty() {
            let _ = writeln!(s, "  NON-PROTOCOL STDOUT LINES: {:?}", self.bad_lines);
        }
        // `members` replies are already folded into the membership above.
        let shown: Vec<&Value> = self
            .events
            .iter()
            .filter(|e| e["ev"] != "members")
            .collect();
        let skip = shown.len().saturating_sub(last_events);
        let _ = writeln!(
            s,
            "  last {} of {} events ({} members replies not shown):",
            shown.len() - skip,
            shown.len(),
            self.members_replies
        );
        for ev in &shown[skip..] {
            let _ = writeln!(s, "    {ev}");
        }
        s
    }
}
