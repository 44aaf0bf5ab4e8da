//! Long-running processes that die with the test process, however it ends.
//!
//! Rust never drops statics, so a process owned by a `OnceLock` outlives a
//! test binary that simply returns, and nothing in-process runs when the
//! binary is SIGKILLed. `PR_SET_PDEATHSIG` fires when the spawning *thread*
//! exits, and tests run on threads. So each process is started by a small
//! `sh` watcher instead:
//!
//! 1. `sh` forks a watcher subshell whose stdin is a pipe whose only write
//!    end this test process holds (std opens it close-on-exec, so no other
//!    child inherits it), then `exec`s the program: the PID the harness
//!    holds *is* the program's.
//! 2. When the test process is gone, by any means, the kernel closes the
//!    write end and the watcher reads EOF. The program is the watcher's
//!    parent while it lives, so "my parent is still that PID" proves the PID
//!    was not reused: the watcher sends SIGTERM, waits up to 2 s for the
//!    program to exit, then sends SIGKILL, and finally removes the folder it
//!    was given to clean up. (etcd and kube-apiserver ending together each
//!    wait on the other's connections, so they usually need the SIGKILL;
//!    test state is thrown away, so nothing is lost.)
//!
//! [`Supervised::stop`] kills the program itself (SIGKILL, reaped by
//! `wait`) and closes the pipe, so the watcher only cleans up.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, PoisonError};

use crate::error::{Error, Result};

/// The watcher. Arguments: the folder to remove once the program is gone
/// (may be empty), then the program and its arguments. Its own messages go
/// to the program's log, prefixed with `[watch]`.
const WATCH_SH: &str = r#"
remove=$1; shift
prog=$$
exec 3<&0 </dev/null
(
  # The parent of this subshell is $prog for as long as the program lives:
  # a dead program's children are re-parented at once.
  alive() {
    read -r s </proc/self/stat || return 1
    s=${s##*) }
    set -- $s
    [ "$2" = "$prog" ]
  }
  wait_gone() {
    i=0
    while alive && [ "$i" -lt "$1" ]; do sleep 0.1; i=$((i + 1)); done
  }
  while read -r _ <&3; do :; done
  exec 3<&-
  if alive; then
    echo "[watch] test process gone: SIGTERM to pid $prog" >&2
    kill -TERM "$prog" 2>/dev/null
    wait_gone 20
    if alive; then
      echo "[watch] pid $prog still running after 2 s: SIGKILL" >&2
      kill -KILL "$prog" 2>/dev/null
      wait_gone 50
    fi
  fi
  if [ -n "$remove" ]; then rm -rf -- "$remove"; fi
) &
exec 3<&- "$@"
"#;

/// A program started under the watcher, its output in a log file.
pub(crate) struct Supervised {
    name: String,
    pid: u32,
    log: PathBuf,
    child: Mutex<Child>,
    /// The write end of the watcher's pipe; dropping it tells the watcher
    /// to clean up.
    lifeline: Mutex<Option<ChildStdin>>,
}

impl Supervised {
    /// Starts `program args…` with stdout and stderr appended to `log`
    /// (which starts with the command line). When this process ends, or
    /// after [`Supervised::stop`], the watcher stops the program and then
    /// removes `remove` if given.
    pub(crate) fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
        remove: Option<&Path>,
    ) -> Result<Supervised> {
        Self::spawn_env(name, program, args, &[], log, remove)
    }

    /// As [`Supervised::spawn`], with `env` added to the environment.
    pub(crate) fn spawn_env(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
        log: &Path,
        remove: Option<&Path>,
    ) -> Result<Supervised> {
        let mut log_file = File::create(log)
            .map_err(|e| Error::new(format!("cannot create log {}: {e}", log.display())))?;
        let shown = format!("{} {}", program.display(), args.join(" "));
        let _ = writeln!(log_file, "# {shown}");
        let err_file = log_file
            .try_clone()
            .map_err(|e| Error::new(format!("cannot reopen log {}: {e}", log.display())))?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCH_SH)
            .arg("gossamer-watch")
            .arg(remove.map(Path::as_os_str).unwrap_or_default())
            .arg(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(err_file))
            .spawn()
            .map_err(|e| {
                Error::new(format!(
                    "cannot start {name} ({shown}) under `sh`: {e}; /bin/sh must exist"
                ))
            })?;
        let lifeline = child.stdin.take();
        Ok(Supervised {
            name: name.to_string(),
            pid: child.id(),
            log: log.to_path_buf(),
            child: Mutex::new(child),
            lifeline: Mutex::new(lifeline),
        })
    }

    /// The program's name as given to [`Supervised::spawn`].
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The program's PID (the watcher `exec`s it).
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The log file.
    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// `Err` naming the program, its exit status and its log tail if it has
    /// exited.
    pub(crate) fn check_running(&self) -> Result<()> {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::new(format!(
                "{} (pid {}) exited with {status}; log {}:\n{}",
                self.name,
                self.pid,
                self.log.display(),
                log_tail(&self.log, 40)
            ))),
            Err(e) => Err(Error::new(format!(
                "cannot check whether {} (pid {}) runs: {e}",
                self.name, self.pid
            ))),
        }
    }

    /// Kills the program (SIGKILL), reaps it and lets the watcher clean up.
    /// Idempotent.
    pub(crate) fn stop(&self) {
        {
            let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        self.lifeline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last `lines` lines of a log (at most its last 64 KiB), for errors.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    const MAX: u64 = 64 * 1024;
    let read = || -> std::io::Result<String> {
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(MAX)))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            all[start..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Creates `dir` and its parents.
pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)
        .map_err(|e| Error::new(format!("cannot create folder {}: {e}", dir.display())))
}
