use std::fmt::Display;

/// Flags that may be given more than once.
const REPEATABLE: [&str; 3] = ["--seed", "--key", "--network"];

/// Start-up flags of a peer (tests/interop/README.md), minus `--name` and
/// `--bind`, which [`crate::Peer::spawn`] sets.
#[derive(Clone, Debug, Default)]
pub struct Flags {
    args: Vec<String>,
    envs: Vec<(String, String)>,
    program: Option<std::path::PathBuf>,
}

impl Flags {
    /// No flags: the LAN profile and the README's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The Local profile sped up for tests: probes every 300 ms with a
    /// 150 ms timeout, gossip every 50 ms, push/pull every 2 s.
    ///
    /// The short push/pull matters: the Local profile's RetransmitMult of 2
    /// lets a node send a broadcast only twice in all, so in a small cluster
    /// a join can miss a node entirely until the next push/pull (15 s by
    /// default).
    pub fn fast() -> Self {
        Self::new()
            .profile("local")
            .arg("--probe-interval-ms", 300)
            .arg("--probe-timeout-ms", 150)
            .arg("--gossip-interval-ms", 50)
            .arg("--push-pull-interval-ms", 2000)
    }

    /// Sets `flag value`; `flag` is spelled as in the README
    /// (`"--suspicion-mult"`). The repeatable `--seed` and `--key` are
    /// appended; any other flag replaces an earlier value, so presets such
    /// as [`Flags::fast`] can be overridden (a peer may reject a repeated
    /// flag).
    ///
    /// # Panics
    /// If `flag` does not start with `--`.
    pub fn arg(mut self, flag: &str, value: impl Display) -> Self {
        assert!(flag.starts_with("--"), "flag {flag:?} must start with --");
        if !REPEATABLE.contains(&flag) {
            if let Some(i) = self.args.chunks(2).position(|pair| pair[0] == flag) {
                self.args.drain(2 * i..2 * i + 2);
            }
        }
        self.args.push(flag.to_string());
        self.args.push(value.to_string());
        self
    }

    /// `--profile lan|wan|local`.
    pub fn profile(self, profile: &str) -> Self {
        self.arg("--profile", profile)
    }

    /// `--seed IP:PORT` (repeatable).
    pub fn seed(self, addr: &str) -> Self {
        self.arg("--seed", addr)
    }

    /// `--label TEXT`.
    pub fn label(self, label: &str) -> Self {
        self.arg("--label", label)
    }

    /// `--meta TEXT`.
    pub fn meta(self, meta: &str) -> Self {
        self.arg("--meta", meta)
    }

    /// `--key HEX` (repeatable, first is primary).
    pub fn key(self, hex: &str) -> Self {
        self.arg("--key", hex)
    }

    /// `--network ID` (repeatable): a NetworkDB network joined at start.
    pub fn network(self, id: &str) -> Self {
        self.arg("--network", id)
    }

    /// `--protocol-version N`.
    pub fn protocol_version(self, version: u8) -> Self {
        self.arg("--protocol-version", version)
    }

    /// Sets an environment variable of the peer's process (e.g.
    /// `RUST_LOG`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Runs `path` instead of the peer kind's usual binary (e.g. the
    /// static release sidecar the images ship).
    pub fn program(mut self, path: &std::path::Path) -> Self {
        self.program = Some(path.to_path_buf());
        self
    }

    /// The binary set with [`Flags::program`], if any.
    pub fn program_override(&self) -> Option<&std::path::Path> {
        self.program.as_deref()
    }

    /// The environment variables set with [`Flags::env`].
    pub fn envs(&self) -> &[(String, String)] {
        &self.envs
    }

    /// The flags as arguments.
    pub fn args(&self) -> &[String] {
        &self.args
    }
}
