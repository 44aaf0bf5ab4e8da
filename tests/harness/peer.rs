//! One peer process driven over the stdio JSON-lines protocol.

use std::fmt;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::binaries::{go_peer_binary, networkdb_peer_binary, sidecar_binary, test_temp_dir};
use crate::error::{Error, Result};
use crate::flags::Flags;
use crate::ports::free_ports;
use crate::view::{Member, Stats, View};

/// How long a peer may take to print `ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a command may take to be answered (beyond its own timeout).
pub const CMD_TIMEOUT: Duration = Duration::from_secs(10);

/// Which implementation a peer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// hashicorp/memberlist v0.7.0 (`tests/interop/peer`).
    Go,
    /// `gossamer-sidecar run --stdio`.
    Rust,
    /// libnetwork NetworkDB from moby v2.0.0-beta.24
    /// (`tests/interop/networkdb-peer`); takes only `--seed`, `--network`,
    /// `--key` and `--profile lan`, and speaks the NetworkDB commands of
    /// [`crate::networkdb`].
    GoNetworkDb,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Go => "go",
            Kind::Rust => "rust",
            Kind::GoNetworkDb => "go-networkdb",
        })
    }
}

struct Shared {
    view: Mutex<View>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running peer process on loopback.
///
/// A reader thread folds its stdout into a [`View`]; its stderr goes to a
/// log file under [`test_temp_dir`]. Dropping the peer kills the process
/// (SIGKILL); when dropped during a panic it first prints its log path and
/// view, so a failed test says what each peer saw.
pub struct Peer {
    kind: Kind,
    name: String,
    addr: String,
    log: PathBuf,
    child: Child,
    stdin: Mutex<Option<ChildStdin>>,
    /// Serialises request/answer pairs so answers cannot be mismatched.
    requests: Mutex<()>,
    shared: Arc<Shared>,
    stopped: AtomicBool,
}

impl Peer {
    /// Starts a peer named `name` on a free loopback port and waits for its
    /// `ready` event.
    ///
    /// # Errors
    /// If the process cannot start, exits, or is not ready within
    /// [`READY_TIMEOUT`]; the error holds its stderr tail.
    ///
    /// # Panics
    /// If the peer binary cannot be built (see [`go_peer_binary`],
    /// [`sidecar_binary`]).
    pub fn spawn(kind: Kind, name: &str, flags: Flags) -> Result<Peer> {
        let port = free_ports(1)[0];
        Self::spawn_at(kind, name, port, flags)
    }

    /// As [`Peer::spawn`], bound to `127.0.0.1:port`.
    pub fn spawn_at(kind: Kind, name: &str, port: u16, flags: Flags) -> Result<Peer> {
        Self::spawn_in(kind, name, &format!("127.0.0.1:{port}"), None, flags)
    }

    /// As [`Peer::spawn`], bound to `addr` (`IP:PORT`), and run inside the
    /// network namespace `netns` when given (`ip netns exec`, which execs
    /// the peer: the child's pid is the peer's).
    pub fn spawn_in(
        kind: Kind,
        name: &str,
        addr: &str,
        netns: Option<&str>,
        flags: Flags,
    ) -> Result<Peer> {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let addr = addr.to_string();
        let program = match (kind, flags.program_override()) {
            (_, Some(p)) => p.to_path_buf(),
            (Kind::Go, None) => go_peer_binary(),
            (Kind::GoNetworkDb, None) => networkdb_peer_binary(),
            (Kind::Rust, None) => sidecar_binary(),
        };
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(program);
                c
            }
            None => Command::new(program),
        };
        if kind == Kind::Rust {
            cmd.args(["run", "--stdio"]);
        }
        cmd.args(["--name", name, "--bind", &addr])
            .args(flags.args())
            .envs(flags.envs().iter().map(|(k, v)| (k, v)));

        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let log = test_temp_dir().join(format!("{seq:03}-{name}-{kind}.log"));
        let mut log_file = File::create(&log)
            .map_err(|e| Error::new(format!("cannot create peer log {}: {e}", log.display())))?;
        let shown = shown_command_line(&cmd);
        let _ = writeln!(log_file, "# {shown}");

        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|e| Error::new(format!("cannot start {kind} peer {name}: {shown}: {e}")))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let shared = Arc::new(Shared {
            view: Mutex::new(View::default()),
            changed: Condvar::new(),
        });
        let reader_shared = Arc::clone(&shared);
        thread::Builder::new()
            .name(format!("peer-{name}-stdout"))
            .spawn(move || read_events(stdout, &reader_shared))
            .map_err(|e| Error::new(format!("cannot start reader thread: {e}")))?;

        let peer = Peer {
            kind,
            name: name.to_string(),
            addr,
            log,
            stdin: Mutex::new(child.stdin.take()),
            child,
            requests: Mutex::new(()),
            shared,
            stopped: AtomicBool::new(false),
        };
        peer.wait_for(|v| v.ready, READY_TIMEOUT)
            .map_err(|e| e.context(format!("starting {kind} peer {name}")))?;
        Ok(peer)
    }

    /// Which implementation this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Node name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `IP:PORT` it binds and advertises (`127.0.0.1:PORT` unless spawned
    /// with [`Peer::spawn_in`]).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its stderr log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Whether it was killed, terminated or shut down, or closed stdout.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed) || self.shared.lock().eof
    }

    /// Whether it holds itself as left (after `leave` or SIGTERM).
    pub fn has_left(&self) -> bool {
        self.with_view(|v| v.state_of(&self.name) == Some(crate::MemberState::Left))
    }

    /// A copy of the current view.
    pub fn view(&self) -> View {
        self.shared.lock().clone()
    }

    /// Runs `f` on the current view without copying it.
    pub fn with_view<R>(&self, f: impl FnOnce(&View) -> R) -> R {
        f(&self.shared.lock())
    }

    /// Writes one command line to stdin, without waiting for an answer.
    ///
    /// # Errors
    /// If stdin is closed (the peer exited).
    pub fn cmd(&self, cmd: &Value) -> Result<()> {
        let mut stdin = self.stdin.lock().unwrap_or_else(PoisonError::into_inner);
        let pipe = stdin
            .as_mut()
            .ok_or_else(|| self.report(&format!("cannot send {cmd}: stdin is closed")))?;
        writeln!(pipe, "{cmd}")
            .and_then(|()| pipe.flush())
            .map_err(|e| self.report(&format!("cannot send {cmd}: {e}")))
    }

    /// Sends `cmd` and waits for the first later event for which
    /// `is_answer` holds, returning it.
    ///
    /// # Errors
    /// If the peer exits or no answer arrives within `timeout`.
    pub fn request(
        &self,
        cmd: &Value,
        is_answer: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Value> {
        let _serial = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        let start = self.shared.lock().events.len();
        self.cmd(cmd)?;
        let mut answer = None;
        self.wait_for(
            |v| {
                answer = v.events[start..].iter().find(|e| is_answer(e)).cloned();
                answer.is_some()
            },
            timeout,
        )
        .map_err(|e| {
            let e = e.context(format!("waiting for the answer to {cmd}"));
            match self.goroutines() {
                Some(dump) => e.context(format!("goroutines of the silent Go peer:\n{dump}")),
                None => e,
            }
        })?;
        Ok(answer.expect("set when the wait succeeded"))
    }

    /// A Go peer that does not answer is stuck somewhere: SIGQUIT makes the
    /// Go runtime write every goroutine's stack to its log and exit. Returns
    /// the goroutines of the dump that are inside the peer's own code,
    /// memberlist or NetworkDB (the rest is the runtime's), or `None` for a
    /// sidecar or a peer already gone.
    fn goroutines(&self) -> Option<String> {
        if self.kind == Kind::Rust || self.is_stopped() {
            return None;
        }
        let before = fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let _ = Command::new("kill")
            .args(["-QUIT", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && !self.is_stopped() {
            thread::sleep(Duration::from_millis(50));
        }
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let dump = text.get(before as usize..).unwrap_or_default();
        let wanted: Vec<&str> = dump
            .split("\n\n")
            .filter(|g| {
                g.starts_with("goroutine ")
                    && (g.contains("networkdb") || g.contains("memberlist") || g.contains("main."))
            })
            .collect();
        Some(wanted.join("\n\n"))
    }

    /// Sends a command answered by `ok` or `error` (matched on `cmd`).
    pub(crate) fn request_ok(&self, cmd: Value) -> Result<()> {
        let name = cmd["cmd"].as_str().unwrap_or_default().to_string();
        let answer = self.request(&cmd, |e| is_answer_to(e, &name, &["ok"]), CMD_TIMEOUT)?;
        match answer["ev"].as_str() {
            Some("ok") => Ok(()),
            _ => Err(self.report(&format!("{cmd} failed: {}", answer["error"]))),
        }
    }

    /// Waits until `pred` holds for the view.
    ///
    /// # Errors
    /// On timeout or when the peer closes stdout first; the error dumps the
    /// view and the tail of the peer's log.
    pub fn wait_for(&self, mut pred: impl FnMut(&View) -> bool, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut view = self.shared.lock();
        loop {
            if pred(&view) {
                return Ok(());
            }
            if view.eof {
                drop(view);
                return Err(
                    self.report("the peer exited (stdout closed) before the condition held")
                );
            }
            let now = Instant::now();
            if now >= deadline {
                drop(view);
                return Err(self.report(&format!("condition not met within {timeout:?}")));
            }
            view = self
                .shared
                .changed
                .wait_timeout(view, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Asks for the member list (`members`); the view is updated from it.
    ///
    /// # Errors
    /// If no reply arrives within [`CMD_TIMEOUT`].
    pub fn members(&self) -> Result<Vec<Member>> {
        self.request(
            &json!({"cmd": "members"}),
            |e| e["ev"] == "members",
            CMD_TIMEOUT,
        )?;
        Ok(self.with_view(|v| v.members.values().cloned().collect()))
    }

    /// Joins `seeds`; returns how many were contacted.
    ///
    /// # Errors
    /// With the peer's `join_failed` text, or on timeout.
    pub fn join(&self, seeds: &[&str]) -> Result<u64> {
        let answer = self.request(
            &json!({"cmd": "join", "seeds": seeds}),
            |e| e["ev"] == "joined" || e["ev"] == "join_failed",
            CMD_TIMEOUT,
        )?;
        match answer["ev"].as_str() {
            Some("joined") => Ok(answer["contacted"].as_u64().unwrap_or_default()),
            _ => Err(Error::new(format!(
                "{} could not join {seeds:?}: {}",
                self.name, answer["error"]
            ))),
        }
    }

    /// Sends a user message to node `to`: best-effort (UDP) or reliable (TCP).
    ///
    /// # Errors
    /// With the peer's error text, or on timeout.
    pub fn send(&self, to: &str, data: &str, reliable: bool) -> Result<()> {
        self.request_ok(json!({"cmd": "send", "to": to, "data": data, "reliable": reliable}))
    }

    /// Queues a user broadcast for gossip.
    ///
    /// # Errors
    /// With the peer's error text, or on timeout.
    pub fn broadcast(&self, data: &str) -> Result<()> {
        self.request_ok(json!({"cmd": "broadcast", "data": data}))
    }

    /// Sets the local user state sent on push/pull.
    ///
    /// # Errors
    /// With the peer's error text, or on timeout.
    pub fn set_state(&self, data: &str) -> Result<()> {
        self.request_ok(json!({"cmd": "set_state", "data": data}))
    }

    /// Updates the node metadata.
    ///
    /// # Errors
    /// With the peer's error text, or on timeout.
    pub fn set_meta(&self, data: &str) -> Result<()> {
        self.request_ok(json!({"cmd": "set_meta", "data": data}))
    }

    /// Asks for the byte counters.
    ///
    /// # Errors
    /// On timeout.
    pub fn stats(&self) -> Result<Stats> {
        self.request(
            &json!({"cmd": "stats"}),
            |e| e["ev"] == "stats",
            CMD_TIMEOUT,
        )?;
        Ok(self.with_view(|v| *v.stats.last().expect("a stats reply was applied")))
    }

    /// Leaves gracefully (the process stays up) and waits for `left`.
    ///
    /// # Errors
    /// With the peer's error text, or on timeout.
    pub fn leave(&self, timeout: Duration) -> Result<()> {
        let cmd = json!({"cmd": "leave", "timeout_ms": timeout.as_millis() as u64});
        let answer = self.request(
            &cmd,
            |e| e["ev"] == "left" || is_answer_to(e, "leave", &[]),
            timeout + CMD_TIMEOUT,
        )?;
        match answer["ev"].as_str() {
            Some("left") => Ok(()),
            _ => Err(self.report(&format!("leave failed: {}", answer["error"]))),
        }
    }

    /// Sends `shutdown` and waits for the process to exit.
    ///
    /// # Errors
    /// If it does not exit within [`CMD_TIMEOUT`].
    pub fn shutdown(&mut self) -> Result<ExitStatus> {
        self.stopped.store(true, Ordering::Relaxed);
        self.cmd(&json!({"cmd": "shutdown"}))?;
        self.wait_exit(CMD_TIMEOUT)
    }

    /// Crashes the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (graceful leave, then exit 0); see [`Peer::wait_exit`].
    ///
    /// # Errors
    /// If the signal cannot be sent.
    pub fn terminate(&mut self) -> Result<()> {
        self.stopped.store(true, Ordering::Relaxed);
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .map_err(|e| Error::new(format!("cannot run kill -TERM {}: {e}", self.pid())))?;
        if status.success() {
            Ok(())
        } else {
            Err(self.report(&format!("kill -TERM {} failed: {status}", self.pid())))
        }
    }

    /// Waits for the process to exit.
    ///
    /// # Errors
    /// If it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => return Err(self.report(&format!("still running after {timeout:?}"))),
                Err(e) => return Err(self.report(&format!("cannot wait for the process: {e}"))),
            }
        }
    }

    /// User plus system CPU time consumed so far (`/proc/<pid>/stat`).
    ///
    /// # Errors
    /// If the process is gone or the file cannot be parsed.
    pub fn cpu_time(&self) -> Result<Duration> {
        let path = format!("/proc/{}/stat", self.pid());
        let stat = fs::read_to_string(&path)
            .map_err(|e| Error::new(format!("cannot read {path}: {e}")))?;
        // Fields after the parenthesised command name, which may hold spaces;
        // utime and stime are fields 14 and 15 of proc(5), 11 and 12 here.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        match (ticks(11), ticks(12)) {
            (Some(u), Some(s)) => Ok(Duration::from_secs_f64(
                (u + s) as f64 / clock_ticks() as f64,
            )),
            _ => Err(Error::new(format!(
                "cannot parse utime/stime in {path}: {stat:?}"
            ))),
        }
    }

    /// Resident set size in bytes (`VmRSS` of `/proc/<pid>/status`).
    ///
    /// # Errors
    /// If the process is gone or the file cannot be parsed.
    pub fn rss_bytes(&self) -> Result<u64> {
        let path = format!("/proc/{}/status", self.pid());
        let status = fs::read_to_string(&path)
            .map_err(|e| Error::new(format!("cannot read {path}: {e}")))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .ok_or_else(|| Error::new(format!("no VmRSS in {path}")))
    }

    /// An error about this peer: `msg`, its view and its log tail.
    pub fn report(&self, msg: &str) -> Error {
        Error::new(format!(
            "{} peer {} (pid {}, {}): {msg}\n{}  stderr log: {}\n{}",
            self.kind,
            self.name,
            self.pid(),
            self.addr,
            self.with_view(|v| v.dump(40)),
            self.log.display(),
            log_tail(&self.log, 30)
        ))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("--- {}", self.report("state when the test failed"));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ev` is an `error` for command `cmd`, or one of `ok_evs` for it.
fn is_answer_to(ev: &Value, cmd: &str, ok_evs: &[&str]) -> bool {
    let kind = ev["ev"].as_str().unwrap_or_default();
    ev["cmd"] == cmd && (kind == "error" || ok_evs.contains(&kind))
}

fn read_events(stdout: std::process::ChildStdout, shared: &Shared) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        shared.lock().apply_line(&line);
        shared.changed.notify_all();
    }
    shared.lock().eof = true;
    shared.changed.notify_all();
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    tail.iter().map(|l| format!("    | {l}\n")).collect()
}

fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// The command line as logs show it: each `--key` value replaced by its
/// fingerprint, so that no log holds key bytes, not even a test key's.
fn shown_command_line(cmd: &Command) -> String {
    let mut out = vec![cmd.get_program().to_string_lossy().into_owned()];
    let mut key_next = false;
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        let hex = a.len() % 2 == 0 && a.bytes().all(|b| b.is_ascii_hexdigit());
        out.push(if key_next && hex {
            crate::keys::fingerprint(&a)
        } else if key_next {
            "<key>".to_string()
        } else {
            a.to_string()
        });
        key_next = a == "--key";
    }
    out.join(" ")
}
