//! Choosing and starting a control plane: the processes, their flags and
//! the order in which they start.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use std::{env, fs};

use crate::binaries::test_temp_dir;
use crate::error::{Error, Result};
use crate::kube::binaries::KubeBinaries;
use crate::kube::control_plane::{ControlPlane, Paths};
use crate::kube::kubeconfig::{self, Credential};
use crate::kube::pki::{CertRequest, Pki};
use crate::kube::supervised::{create_dir, Supervised};
use crate::ports::free_ports;

/// The ServiceAccount token issuer (`iss` of every token).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The audience Gossamer's sidecars ask their projected tokens for; the API
/// server accepts it besides [`ISSUER`].
pub const GOSSAMER_AUDIENCE: &str = "gossamer";
/// The default Service CIDR.
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/16";
/// How long [`ControlPlaneBuilder::start`] waits for readiness by default.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Options of a [`ControlPlane`]; [`ControlPlane::builder`] makes one.
///
/// Node parts (containerd, CNI, kube-scheduler, kubelet, kube-proxy) join
/// a started control plane through [`Node::start`](crate::kube::Node::start),
/// with the same PKI ([`CertRequest::kubelet`]) and the same supervision.
#[derive(Clone, Debug)]
pub struct ControlPlaneBuilder {
    service_cidr: String,
    audiences: Vec<String>,
    apiserver_args: Vec<String>,
    controller_manager_args: Vec<String>,
    ready_timeout: Duration,
    binaries: Option<KubeBinaries>,
}

impl Default for ControlPlaneBuilder {
    fn default() -> Self {
        ControlPlaneBuilder {
            service_cidr: DEFAULT_SERVICE_CIDR.to_string(),
            audiences: vec![ISSUER.to_string(), GOSSAMER_AUDIENCE.to_string()],
            apiserver_args: Vec::new(),
            controller_manager_args: Vec::new(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
            binaries: None,
        }
    }
}

impl ControlPlaneBuilder {
    /// The Service CIDR (IPv4, default [`DEFAULT_SERVICE_CIDR`]); its first
    /// address is the `kubernetes` Service's and is in the serving cert.
    pub fn service_cidr(mut self, cidr: &str) -> Self {
        self.service_cidr = cidr.to_string();
        self
    }

    /// One more audience the API server accepts in tokens.
    pub fn api_audience(mut self, audience: &str) -> Self {
        self.audiences.push(audience.to_string());
        self
    }

    /// Extra kube-apiserver flags (e.g. `--feature-gates=...`), after the
    /// harness's own; a repeated flag overrides.
    pub fn apiserver_args(mut self, args: &[&str]) -> Self {
        self.apiserver_args
            .extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Extra kube-controller-manager flags, after the harness's own.
    pub fn controller_manager_args(mut self, args: &[&str]) -> Self {
        self.controller_manager_args
            .extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// How long start-up may take, from launching etcd to the `default`
    /// ServiceAccount existing (default [`DEFAULT_READY_TIMEOUT`]).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Binaries to run instead of [`KubeBinaries::find`]'s.
    pub fn binaries(mut self, binaries: KubeBinaries) -> Self {
        self.binaries = Some(binaries);
        self
    }

    /// Starts etcd, then (with fresh PKI and kubeconfigs) kube-apiserver,
    /// then, once the API server is ready, kube-controller-manager; returns
    /// when the controller-manager has created the `default`
    /// ServiceAccount in `default`.
    ///
    /// Every process stops when the returned value is dropped or this test
    /// process ends in any way (see the module docs), and the state folder
    /// (PKI, etcd data, kubeconfigs) is then removed. Logs stay in
    /// `<test_temp_dir>/kube-<n>/`.
    ///
    /// # Errors
    /// If a binary is missing (the message says how to build it), the
    /// Service CIDR is not IPv4 `a.b.c.d/n`, a file cannot be written, a
    /// process exits, or readiness takes longer than the ready timeout;
    /// the message holds the tail of the relevant log.
    pub fn start(self) -> Result<ControlPlane> {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let bins = match &self.binaries {
            Some(b) => b.clone(),
            None => KubeBinaries::find()?.clone(),
        };
        for name in [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kubectl",
        ] {
            bins.get(name)?;
        }
        let service_ip = first_service_ip(&self.service_cidr)?;
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let log_dir = test_temp_dir().join(format!("kube-{seq}"));
        create_dir(&log_dir)?;
        let state_dir = env::temp_dir().join(format!("gossamer-kube-{}-{seq}", std::process::id()));
        let _ = fs::remove_dir_all(&state_dir);
        create_dir(&state_dir)?;
        let paths = Paths::new(&state_dir);

        let [etcd_port, etcd_peer_port, api_port, kcm_port] = free_ports(4)[..] else {
            unreachable!("free_ports(4) returns four ports")
        };
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let server = format!("https://127.0.0.1:{api_port}");

        // etcd first: it is the only process writing to the state folder,
        // so its watcher is the one that removes the folder once etcd is
        // gone. Launching it first also leaves no moment where the folder
        // exists without a watcher.
        let launched = Instant::now();
        let etcd = Supervised::spawn(
            "etcd",
            &bins.get("etcd")?,
            &etcd_args(&paths.etcd_data, &etcd_url, etcd_peer_port),
            &log_dir.join("etcd.log"),
            Some(&state_dir),
        )?;
        let mut cp = ControlPlane {
            bins,
            state_dir: state_dir.clone(),
            log_dir,
            pki: issue_pki(&paths, service_ip)?,
            server,
            etcd_url,
            service_cidr: self.service_cidr.clone(),
            service_ip,
            // Pods reach the API server through the `kubernetes` Service
            // only at a non-loopback address (the endpoint reconciler
            // refuses loopback).
            advertise: crate::kube::host::host_ip().ok(),
            paths,
            processes: Mutex::new(vec![etcd]),
            apiserver_ready_in: Duration::ZERO,
            started_in: Duration::ZERO,
            seq: AtomicUsize::new(0),
        };
        cp.write_kubeconfigs()?;

        let mut api_args = cp.apiserver_args(api_port, &self.audiences);
        api_args.extend(self.apiserver_args.iter().cloned());
        cp.spawn("kube-apiserver", &api_args)?;
        let deadline = launched + self.ready_timeout;
        cp.wait_apiserver(deadline)?;
        cp.apiserver_ready_in = launched.elapsed();

        let mut kcm_args = cp.controller_manager_args(kcm_port);
        kcm_args.extend(self.controller_manager_args.iter().cloned());
        cp.spawn("kube-controller-manager", &kcm_args)?;
        cp.wait_ready(deadline.saturating_duration_since(Instant::now()))?;
        cp.started_in = launched.elapsed();
        Ok(cp)
    }
}

/// The first address of an IPv4 CIDR: the `kubernetes` Service's ClusterIP.
fn first_service_ip(cidr: &str) -> Result<Ipv4Addr> {
    let bad = |why: &str| {
        Error::new(format!(
            "Service CIDR {cidr:?} {why}; give an IPv4 network such as {DEFAULT_SERVICE_CIDR}"
        ))
    };
    let (addr, prefix) = cidr.split_once('/').ok_or_else(|| bad("has no /prefix"))?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad("has no IPv4 address"))?;
    let prefix: u32 = prefix
        .parse()
        .ok()
        .filter(|p| (12..=30).contains(p))
        .ok_or_else(|| bad("needs a prefix length from 12 to 30"))?;
    let mask = u32::MAX << (32 - prefix);
    Ok(Ipv4Addr::from((u32::from(addr) & mask) + 1))
}

fn issue_pki(paths: &Paths, service_ip: Ipv4Addr) -> Result<Pki> {
    let pki = Pki::create(&paths.pki, "gossamer-test-ca")?;
    let service_ip = service_ip.to_string();
    pki.issue(&CertRequest::server(
        "kube-apiserver",
        "kube-apiserver",
        &[
            "127.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            &service_ip,
        ],
    ))?;
    pki.issue(&CertRequest::server(
        "kube-controller-manager-serving",
        "kube-controller-manager",
        &["127.0.0.1", "localhost"],
    ))?;
    pki.issue(&CertRequest::client(
        "admin",
        "gossamer-admin",
        Some("system:masters"),
    ))?;
    pki.issue(&CertRequest::client(
        "kube-controller-manager",
        "system:kube-controller-manager",
        None,
    ))?;
    // What kube-apiserver presents to kubelets (logs, exec) once a node
    // joins.
    pki.issue(&CertRequest::client(
        "apiserver-kubelet-client",
        "kube-apiserver-kubelet-client",
        Some("system:masters"),
    ))?;
    pki.signing_key("service-account")?;
    Ok(pki)
}

fn etcd_args(data: &Path, client_url: &str, peer_port: u16) -> Vec<String> {
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    vec![
        "--name=gossamer".into(),
        format!("--data-dir={}", data.display()),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=gossamer={peer_url}"),
        "--initial-cluster-state=new".into(),
        // Test data: durability buys nothing and costs a disk flush per
        // write.
        "--unsafe-no-fsync".into(),
    ]
}

impl ControlPlane {
    fn write_kubeconfigs(&self) -> Result<()> {
        let ca = &self.pki.ca().cert;
        let cert = |stem: &str| crate::kube::pki::CertFiles {
            cert: self.paths.pki.join(format!("{stem}.crt")),
            key: self.paths.pki.join(format!("{stem}.key")),
        };
        kubeconfig::write(
            &self.paths.admin_kubeconfig,
            &self.server,
            ca,
            "gossamer-admin",
            Credential::Cert(&cert("admin")),
        )?;
        kubeconfig::write(
            &self.paths.controller_manager_kubeconfig,
            &self.server,
            ca,
            "system:kube-controller-manager",
            Credential::Cert(&cert("kube-controller-manager")),
        )
    }

    fn apiserver_args(&self, port: u16, audiences: &[String]) -> Vec<String> {
        let pki = |f: &str| self.paths.pki.join(f).display().to_string();
        let listen: [String; 3] = match self.advertise {
            // Every address: 127.0.0.1 for the harness and kubectl, the
            // host's for Pods (through the `kubernetes` Service, which the
            // lease reconciler points at the advertised address). Clients
            // still need a certificate or token of this control plane.
            Some(ip) => [
                "--bind-address=0.0.0.0".into(),
                format!("--advertise-address={ip}"),
                "--endpoint-reconciler-type=lease".into(),
            ],
            // The reconciler refuses a loopback address: no endpoint.
            None => [
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                "--endpoint-reconciler-type=none".into(),
            ],
        };
        let mut args: Vec<String> = listen.into();
        args.extend([
            format!("--etcd-servers={}", self.etcd_url),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", self.paths.apiserver_cert_dir.display()),
            format!("--tls-cert-file={}", pki("kube-apiserver.crt")),
            format!("--tls-private-key-file={}", pki("kube-apiserver.key")),
            format!("--client-ca-file={}", pki("ca.crt")),
            "--authorization-mode=Node,RBAC".into(),
            "--enable-admission-plugins=NodeRestriction".into(),
            format!("--service-account-issuer={ISSUER}"),
            format!("--service-account-key-file={}", pki("service-account.pub")),
            format!(
                "--service-account-signing-key-file={}",
                pki("service-account.key")
            ),
            format!("--api-audiences={}", audiences.join(",")),
            format!("--service-cluster-ip-range={}", self.service_cidr),
            "--allow-privileged=true".into(),
            format!(
                "--kubelet-client-certificate={}",
                pki("apiserver-kubelet-client.crt")
            ),
            format!(
                "--kubelet-client-key={}",
                pki("apiserver-kubelet-client.key")
            ),
            // A test node's name does not resolve; its InternalIP does
            // (logs, exec, port-forward).
            "--kubelet-preferred-address-types=InternalIP,Hostname".into(),
        ]);
        args
    }

    fn controller_manager_args(&self, port: u16) -> Vec<String> {
        let pki = |f: &str| self.paths.pki.join(f).display().to_string();
        let kubeconfig = self.paths.controller_manager_kubeconfig.display();
        vec![
            format!("--kubeconfig={kubeconfig}"),
            format!("--authentication-kubeconfig={kubeconfig}"),
            format!("--authorization-kubeconfig={kubeconfig}"),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            format!(
                "--tls-cert-file={}",
                pki("kube-controller-manager-serving.crt")
            ),
            format!(
                "--tls-private-key-file={}",
                pki("kube-controller-manager-serving.key")
            ),
            format!("--client-ca-file={}", pki("ca.crt")),
            "--controllers=*".into(),
            "--use-service-account-credentials=true".into(),
            format!("--root-ca-file={}", pki("ca.crt")),
            format!(
                "--service-account-private-key-file={}",
                pki("service-account.key")
            ),
            // Lets a kubelet's client certificate request be signed later.
            format!("--cluster-signing-cert-file={}", pki("ca.crt")),
            format!("--cluster-signing-key-file={}", pki("ca.key")),
            "--cluster-name=gossamer".into(),
            "--leader-elect=false".into(),
        ]
    }

    /// Starts `name` (a binary of [`KubeBinaries`]) under supervision with
    /// its log in this control plane's log folder.
    pub(crate) fn spawn(&self, name: &str, args: &[String]) -> Result<()> {
        let program = self.bins.get(name)?;
        let log = self.log_dir.join(format!("{name}.log"));
        let process = Supervised::spawn(name, &program, args, &log, None)?;
        self.lock_processes().push(process);
        Ok(())
    }
}

impl Paths {
    pub(crate) fn new(state: &Path) -> Paths {
        Paths {
            pki: state.join("pki"),
            etcd_data: state.join("etcd"),
            apiserver_cert_dir: state.join("apiserver-certs"),
            admin_kubeconfig: state.join("admin.kubeconfig"),
            controller_manager_kubeconfig: state.join("kube-controller-manager.kubeconfig"),
            kubectl_cache: state.join("kubectl-cache"),
            tokens: state.join("tokens"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_service_ip_is_network_plus_one() {
        assert_eq!(
            first_service_ip("10.96.0.0/16").unwrap(),
            Ipv4Addr::new(10, 96, 0, 1)
        );
        assert_eq!(
            first_service_ip("10.0.7.9/24").unwrap(),
            Ipv4Addr::new(10, 0, 7, 1)
        );
    }

    #[test]
    fn bad_service_cidrs_say_what_is_wrong() {
        let e = first_service_ip("10.96.0.0").unwrap_err().to_string();
        assert!(e.contains("\"10.96.0.0\" has no /prefix"), "{e}");
        let e = first_service_ip("fd00::/108").unwrap_err().to_string();
        assert!(e.contains("no IPv4 address"), "{e}");
        let e = first_service_ip("10.96.0.0/8").unwrap_err().to_string();
        assert!(e.contains("prefix length from 12 to 30"), "{e}");
    }
}
