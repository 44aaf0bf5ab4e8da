//! `gossamer-operator` as a real process against a real control plane,
//! authenticated as its own ServiceAccount with only the RBAC of
//! `operator/deploy/rbac.yaml`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::kube::{create_dir, log_tail, ControlPlane, Supervised};
use crate::{free_ports, operator_binary, test_temp_dir, workspace_root};

/// The operator's namespace (its Lease and ServiceAccount live there).
pub const OPERATOR_NAMESPACE: &str = "gossamer-system";
/// The operator's ServiceAccount.
pub const OPERATOR_ACCOUNT: &str = "gossamer-operator";
/// The Secret holding the control stream's CA (in [`OPERATOR_NAMESPACE`]).
pub const CA_SECRET: &str = "gossamer-ca";
/// The ConfigMap publishing the CA certificate (key `ca.crt`).
pub const CA_BUNDLE_CONFIGMAP: &str = "gossamer-ca-bundle";
/// The MutatingWebhookConfiguration whose caBundle the operator keeps
/// (the operator's default, and what `operator/deploy/rbac.yaml` allows).
pub const INJECTOR_CONFIGURATION: &str = "gossamer-sidecar-injector";
/// A DNS name of the operator Service the serving certificate carries.
pub const CONTROL_SERVICE_DNS: &str = "gossamer-operator.gossamer-system.svc";

/// How to start one operator replica.
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    /// Its identity in the leader Lease.
    pub identity: String,
    /// The Lease's name (replicas with the same name compete).
    pub lease_name: String,
    /// `--lease-duration-secs`.
    pub lease_duration_secs: u64,
    /// `--lease-grace-secs`.
    pub lease_grace_secs: u64,
    /// `--log-format json` instead of text.
    pub json_logs: bool,
    /// `--control-extra-san`: more names of the control stream's serving
    /// certificate (the Service's DNS names are always there).
    pub control_extra_sans: Vec<String>,
    /// `--control-cert-lifetime-secs`, when set.
    pub control_cert_lifetime_secs: Option<u64>,
    /// `--control-insecure-dev-mode`: no TLS, no TokenReview.
    pub control_insecure: bool,
    /// `RUST_LOG=debug`: every debug line too (the key-leak scans read
    /// them).
    pub debug_logs: bool,
    /// The control stream's port; `None`: a free one. A replica that
    /// replaces another takes its port, as a Service would route to it.
    pub control_port: Option<u16>,
    /// `--inject-config`: the injected sidecar's settings file.
    pub inject_config: Option<PathBuf>,
    /// `--resync-secs`, when set: how soon a change the operator does not
    /// watch (a Secret's bytes) is seen.
    pub resync_secs: Option<u64>,
}

impl OperatorOptions {
    /// A replica named `identity` competing for the Lease `gossamer-operator`
    /// with a short (6 s) Lease, so failover tests stay quick.
    pub fn new(identity: &str) -> Self {
        OperatorOptions {
            identity: identity.into(),
            lease_name: "gossamer-operator".into(),
            lease_duration_secs: 6,
            lease_grace_secs: 2,
            json_logs: false,
            control_extra_sans: vec!["127.0.0.1".into()],
            control_cert_lifetime_secs: None,
            control_insecure: false,
            control_port: None,
            debug_logs: false,
            inject_config: None,
            resync_secs: None,
        }
    }
}

/// Applies `crds/` and the operator's RBAC (namespace, ServiceAccount,
/// roles) to the control plane, once per control plane, as a user would
/// with `kubectl apply -f`. Waits until the CRDs are Established.
///
/// # Errors
/// If kubectl refuses a manifest (its message is in the error).
pub fn install(cp: &ControlPlane) -> Result<()> {
    static DONE: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    if done.iter().any(|s| s == cp.server()) {
        return Ok(());
    }
    let root = workspace_root();
    let crds = root.join("crds");
    let crds = crds.to_string_lossy();
    cp.kubectl(&["apply", "-f", &crds])?
        .ok()
        .map_err(|e| e.context("kubectl apply -f crds/"))?;
    cp.kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "-f",
        &crds,
    ])?
    .ok()
    .map_err(|e| e.context("waiting for the CRDs to be Established"))?;
    let ns = cp.kubectl(&["get", "namespace", OPERATOR_NAMESPACE])?;
    if !ns.success() {
        cp.kubectl(&["create", "namespace", OPERATOR_NAMESPACE])?
            .ok()?;
    }
    let rbac = root.join("operator/deploy/rbac.yaml");
    cp.kubectl(&["apply", "-f", &rbac.to_string_lossy()])?
        .ok()
        .map_err(|e| e.context("kubectl apply -f operator/deploy/rbac.yaml"))?;
    done.push(cp.server().to_string());
    Ok(())
}

/// One running operator replica.
pub struct Operator {
    proc: Supervised,
    admin_port: u16,
    control_port: u16,
    webhook_port: u16,
    identity: String,
}

impl Operator {
    /// Installs CRDs and RBAC if needed, then starts a replica that uses a
    /// TokenRequest token of the operator's ServiceAccount (not admin).
    ///
    /// # Errors
    /// If the install or the start fails.
    pub fn start(cp: &ControlPlane, opts: OperatorOptions) -> Result<Operator> {
        install(cp)?;
        let kubeconfig = cp.token_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_ACCOUNT)?;
        let bin = operator_binary();
        let ports = free_ports(3);
        let (admin_port, control_port, webhook_port) =
            (ports[0], opts.control_port.unwrap_or(ports[1]), ports[2]);
        let dir = test_temp_dir().join("operators");
        create_dir(&dir)?;
        static SEQ: AtomicU32 = AtomicU32::new(1);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let log: PathBuf = dir.join(format!("{}-{n}.log", opts.identity));
        let mut args: Vec<String> = vec![
            "run".into(),
            "--kubeconfig".into(),
            kubeconfig.to_string_lossy().into_owned(),
            "--namespace".into(),
            OPERATOR_NAMESPACE.into(),
            "--identity".into(),
            opts.identity.clone(),
            "--lease-name".into(),
            opts.lease_name.clone(),
            "--lease-duration-secs".into(),
            opts.lease_duration_secs.to_string(),
            "--lease-grace-secs".into(),
            opts.lease_grace_secs.to_string(),
            "--admin-listen".into(),
            format!("127.0.0.1:{admin_port}"),
            "--control-listen".into(),
            format!("127.0.0.1:{control_port}"),
            "--webhook-listen".into(),
            format!("127.0.0.1:{webhook_port}"),
        ];
        if let Some(secs) = opts.resync_secs {
            args.extend(["--resync-secs".into(), secs.to_string()]);
        }
        if let Some(path) = &opts.inject_config {
            args.extend(["--inject-config".into(), path.display().to_string()]);
        }
        for san in &opts.control_extra_sans {
            args.extend(["--control-extra-san".into(), san.clone()]);
        }
        if let Some(secs) = opts.control_cert_lifetime_secs {
            args.extend(["--control-cert-lifetime-secs".into(), secs.to_string()]);
        }
        if opts.control_insecure {
            args.push("--control-insecure-dev-mode".into());
        }
        if opts.json_logs {
            args.extend(["--log-format".into(), "json".into()]);
        }
        let env: &[(&str, &str)] = if opts.debug_logs {
            &[("RUST_LOG", "debug,h2=info")]
        } else {
            &[]
        };
        let proc = Supervised::spawn_env(
            &format!("gossamer-operator {}", opts.identity),
            &bin,
            &args,
            env,
            &log,
            None,
        )?;
        let op = Operator {
            proc,
            admin_port,
            control_port,
            webhook_port,
            identity: opts.identity,
        };
        op.wait_ready(Duration::from_secs(60))?;
        Ok(op)
    }

    /// The replica's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The port of the control stream, on 127.0.0.1.
    pub fn control_port(&self) -> u16 {
        self.control_port
    }

    /// The port of the sidecar injector (HTTPS, `/inject`), on 127.0.0.1.
    pub fn webhook_port(&self) -> u16 {
        self.webhook_port
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.proc.log()).unwrap_or_default()
    }

    /// `Err` with the log tail if the process has exited.
    pub fn check_running(&self) -> Result<()> {
        self.proc.check_running()
    }

    /// GET `path` on the admin server: status code and body.
    ///
    /// # Errors
    /// If the server does not answer within 5 s.
    pub fn get(&self, path: &str) -> Result<(u16, String)> {
        http_get(self.admin_port, path)
    }

    /// The value of the first sample whose line starts with `series` (a
    /// metric name, optionally with its labels) on /metrics.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").ok()?;
        body.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// Whether this replica says it holds the Lease.
    pub fn is_leader(&self) -> bool {
        self.metric("gossamer_operator_leader") == Some(1.0)
    }

    /// Waits until /readyz answers 200.
    ///
    /// # Errors
    /// If the process exits or `timeout` passes.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            if let Ok((200, _)) = self.get("/readyz") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::new(format!(
                    "{} not ready within {timeout:?}; log:\n{}",
                    self.identity,
                    log_tail(self.proc.log(), 40)
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: the replica dies without releasing its Lease.
    pub fn kill(&self) {
        self.proc.stop();
    }

    /// SIGTERM, then waits for a clean exit.
    ///
    /// # Errors
    /// If it does not exit within `timeout`, or exits non-zero.
    pub fn terminate(&self, timeout: Duration) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Err(e) = self.check_running() {
                let msg = e.to_string();
                return if msg.contains("exit status: 0") {
                    Ok(())
                } else {
                    Err(e.context("after SIGTERM"))
                };
            }
            if Instant::now() > deadline {
                return Err(Error::new(format!(
                    "{} still runs {timeout:?} after SIGTERM",
                    self.identity
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let what = || format!("GET http://127.0.0.1:{port}{path}");
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))
        .map_err(|e| Error::new(format!("{}: {e}", what())))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| Error::new(format!("{}: {e}", what())))?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)
        .map_err(|e| Error::new(format!("{}: {e}", what())))?;
    let code = buf
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Error::new(format!("{}: no HTTP status in {buf:?}", what())))?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}
