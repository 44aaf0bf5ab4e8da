//! A real node beside a [`ControlPlane`]: containerd (Debian's, with runc),
//! the CNI bridge, kube-scheduler, kubelet and kube-proxy, so Pods run.
//!
//! Only one node runs on a host at a time: containerd, runc, CNI and the
//! kubelet share fixed host paths, the kubelet's port and firewall chains.
//! A second [`Node::start`] waits for the first node's cleanup.
//!
//! # Host changes, and undoing them
//!
//! Before anything starts, `tests/kube/node-cleanup.sh watch` takes the
//! host-wide node lock and records the host (sysctls, fixed paths, firewall
//! chains, cgroups). It then waits for EOF on a pipe only this test process
//! holds, so it cleans up after [`Node::stop`], on drop, and when the test
//! process dies in any way: it kills the node's processes and every process
//! of a Pod (the `kubepods` cgroups), unmounts what they mounted, deletes
//! the bridge, the firewall chains and the cgroups they added, restores the
//! sysctls and removes the fixed paths that were not there. [`Node::stop`]
//! then checks the host on its own ([`Baseline::leftovers`]) and fails with
//! the list of what is left.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::binaries::{test_temp_dir, workspace_root};
use crate::error::{Error, Result};
use crate::kube::control_plane::ControlPlane;
use crate::kube::host::{host_ip, Baseline};
use crate::kube::images::{NodeImages, PAUSE_IMAGE};
use crate::kube::kubeconfig::{self, Credential};
use crate::kube::pki::{write_file, CertFiles, CertRequest};
use crate::kube::supervised::{create_dir, log_tail, Supervised};
use crate::ports::free_ports;

/// The node's name (`system:node:<name>` for the Node authorizer).
pub const NODE_NAME: &str = "gossamer-node";
/// The Pod network: the CNI bridge's host-local range. Clear of the host's
/// and of the Service CIDR.
pub const POD_CIDR: &str = "10.88.0.0/16";
/// The CNI bridge on the host.
pub const BRIDGE: &str = "gossamer0";
/// The bridge's address: the Pods' gateway, and where CoreDNS answers
/// (the kubelet's `clusterDNS`).
pub const CLUSTER_DNS: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);
/// The cluster's DNS domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// What CoreDNS may read: Services, their endpoints and namespaces.
const COREDNS_RBAC: &str = r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: gossamer-test:coredns
rules:
- apiGroups: [""]
  resources: [services, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: gossamer-test:coredns
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "gossamer-test:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:coredns"}
"#;
/// How long [`Node::start`] waits for the Node to be Ready.
pub const NODE_READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long [`Node::start`] waits for another test node's cleanup.
const LOCK_TIMEOUT: Duration = Duration::from_secs(900);
/// How long the cleanup may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Where the Debian packages put the CNI plugins.
const CNI_BIN_DIR: &str = "/usr/lib/cni";
/// The fixed paths the cleanup script watches (its `fixed_paths`).
const FIXED_PATHS: [&str; 10] = [
    "/run/containerd",
    "/var/lib/cni",
    "/var/lib/kubelet",
    "/var/log/pods",
    "/var/log/containers",
    "/run/netns",
    "/run/xtables.lock",
    "/opt/containerd",
    "/etc/kubernetes",
    "/var/lib/containerd",
];

/// A running node: containerd, kube-scheduler, kubelet and kube-proxy,
/// registered as [`NODE_NAME`] and Ready, with the images of
/// [`NodeImages`] imported (use `imagePullPolicy: Never`).
pub struct Node {
    name: String,
    ip: Ipv4Addr,
    state_dir: PathBuf,
    log_dir: PathBuf,
    kubelet_root: PathBuf,
    containerd_socket: PathBuf,
    processes: Mutex<Vec<Supervised>>,
    janitor: Mutex<Option<Janitor>>,
    baseline: Baseline,
    ready_in: Duration,
}

/// The cleanup script's process and the pipe whose EOF starts the cleanup.
struct Janitor {
    child: Child,
    lifeline: Option<ChildStdin>,
    log: PathBuf,
}

/// Programs a node needs from the host, and the Debian package of each.
const HOST_PROGRAMS: [(&str, &str); 5] = [
    ("/usr/bin/containerd", "containerd"),
    ("/usr/bin/ctr", "containerd"),
    ("/usr/sbin/runc", "runc"),
    ("/usr/lib/cni/bridge", "containernetworking-plugins"),
    ("/usr/sbin/iptables", "iptables"),
];

impl Node {
    /// Starts a node for `cp` and waits until it is Ready.
    ///
    /// # Errors
    /// If this process is not root, a program or image is missing (the
    /// message says how to install or build it), another node's cleanup takes over 15 minutes, a part
    /// exits or the Node is not Ready in [`NODE_READY_TIMEOUT`]; the
    /// message holds the relevant log's tail. Whatever started is stopped
    /// and cleaned up before this returns.
    pub fn start(cp: &ControlPlane) -> Result<Node> {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        if !running_as_root() {
            return Err(Error::new(
                "the test node needs root: containerd, runc, the CNI plugins, iptables and \
                 the kubelet change the host's mounts, network and cgroups; run the test as root",
            ));
        }
        for (path, package) in HOST_PROGRAMS {
            if !Path::new(path).is_file() {
                return Err(Error::new(format!(
                    "{path} is missing: install Debian's {package} \
                     (`bash tests/kube/node-install.sh` installs every node part)"
                )));
            }
        }
        let bins = cp.binaries();
        for name in ["kubelet", "kube-scheduler", "kube-proxy", "coredns"] {
            bins.get(name)?;
        }
        let images = NodeImages::find()?;
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let log_dir = test_temp_dir().join(format!("node-{seq}"));
        create_dir(&log_dir)?;
        // Unix socket paths are short: the state lives in the temp dir.
        let state_dir =
            std::env::temp_dir().join(format!("gossamer-node-{}-{seq}", std::process::id()));
        let ip = host_ip()?;

        let janitor = Janitor::start(&state_dir, &log_dir.join("cleanup.log"))?;
        let baseline = Baseline::read(&state_dir.join("baseline"), &FIXED_PATHS);
        let mut node = Node {
            name: NODE_NAME.to_string(),
            ip,
            kubelet_root: state_dir.join("kubelet"),
            containerd_socket: state_dir.join("containerd/containerd.sock"),
            state_dir,
            log_dir,
            processes: Mutex::new(Vec::new()),
            janitor: Mutex::new(Some(janitor)),
            baseline: Baseline::default(),
            ready_in: Duration::ZERO,
        };
        node.baseline = baseline?;
        let launched = Instant::now();
        node.start_containerd()?;
        node.import_images(images)?;
        node.write_cni_config()?;
        node.create_bridge()?;
        node.start_scheduler(cp)?;
        node.start_kubelet(cp)?;
        node.start_kube_proxy(cp)?;
        node.start_coredns(cp, launched + NODE_READY_TIMEOUT)?;
        node.wait_ready(cp, launched + NODE_READY_TIMEOUT)?;
        node.ready_in = launched.elapsed();
        Ok(node)
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's InternalIP (the host's address the kubelet serves on).
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The kubelet's root folder (Pods' volumes are below `pods/<uid>/`).
    pub fn kubelet_root(&self) -> &Path {
        &self.kubelet_root
    }

    /// The folder of the node's logs (containerd, kubelet, kube-scheduler,
    /// kube-proxy, the cleanup); kept after the node stops.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// From launching containerd to the Node being Ready.
    pub fn ready_in(&self) -> Duration {
        self.ready_in
    }

    /// `Err` naming the first part that exited, with its log tail.
    ///
    /// # Errors
    /// If a part is not running.
    pub fn check_running(&self) -> Result<()> {
        for p in self.lock_processes().iter() {
            p.check_running()?;
        }
        Ok(())
    }

    /// Stops every part and cleans the host up (see the module docs), then
    /// checks the host on its own.
    ///
    /// # Errors
    /// If the cleanup failed or anything is left: the message lists every
    /// leftover and the cleanup log's tail.
    pub fn stop(self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&self) -> Result<()> {
        {
            let mut processes = self.lock_processes();
            while let Some(p) = processes.pop() {
                p.stop();
            }
        }
        let Some(janitor) = self
            .janitor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return Ok(());
        };
        let log = janitor.log.clone();
        let status = janitor.finish();
        let left = self.baseline.leftovers(&self.state_dir, BRIDGE);
        if status.is_ok() && left.is_empty() {
            return Ok(());
        }
        let mut msg = String::from("the test node left the host unclean");
        if let Err(e) = status {
            let _ = write!(msg, "; {e}");
        }
        for l in &left {
            let _ = write!(msg, "\n  {l}");
        }
        let _ = write!(
            msg,
            "\ncleanup log {}:\n{}\nclean up by hand with `bash tests/kube/node-cleanup.sh clean {} {BRIDGE}`",
            log.display(),
            log_tail(&log, 30),
            self.state_dir.display()
        );
        Err(Error::new(msg))
    }

    fn lock_processes(&self) -> std::sync::MutexGuard<'_, Vec<Supervised>> {
        self.processes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn spawn(&self, name: &str, program: &Path, args: &[String]) -> Result<()> {
        let log = self.log_dir.join(format!("{name}.log"));
        let process = Supervised::spawn(name, program, args, &log, None)?;
        self.lock_processes().push(process);
        Ok(())
    }

    fn start_containerd(&self) -> Result<()> {
        let dir = self.state_dir.join("containerd");
        create_dir(&dir)?;
        let config = dir.join("config.toml");
        write_file(&config, &self.containerd_config(), 0o644)?;
        self.spawn(
            "containerd",
            Path::new("/usr/bin/containerd"),
            &[format!("--config={}", config.display())],
        )?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.check_running()?;
            if self.containerd_socket.exists() && self.ctr(&["version"]).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::new(format!(
                    "containerd did not answer on {} within 30 s; log {}:\n{}",
                    self.containerd_socket.display(),
                    self.log_dir.join("containerd.log").display(),
                    log_tail(&self.log_dir.join("containerd.log"), 30)
                )));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn containerd_config(&self) -> String {
        let d = self.state_dir.join("containerd");
        let q = |p: &Path| serde_json::Value::from(p.to_string_lossy()).to_string();
        format!(
            r#"version = 2
root = {root}
state = {state}
[grpc]
  address = {socket}
[plugins."io.containerd.internal.v1.opt"]
  path = {opt}
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # The kubelet asks for a negative OOM score, which this host may not
  # grant; without this every sandbox fails to start.
  restrict_oom_score_adj = true
  # Network namespaces under the state folder, not /run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    # Copies instead of overlay mounts: the images are small, and nothing
    # is mounted outside the state folder.
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = {cni}
"#,
            root = q(&d.join("root")),
            state = q(&d.join("state")),
            socket = q(&self.containerd_socket),
            opt = q(&d.join("opt")),
            cni = q(&self.state_dir.join("cni/net.d")),
        )
    }

    /// Runs `ctr -n k8s.io` against this node's containerd.
    fn ctr(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("/usr/bin/ctr")
            .arg("--address")
            .arg(&self.containerd_socket)
            .args(["-n", "k8s.io"])
            .args(args)
            .output()
            .map_err(|e| Error::new(format!("cannot run ctr: {e}")))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(Error::new(format!(
                "`ctr -n k8s.io {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end()
            )))
        }
    }

    fn import_images(&self, images: &NodeImages) -> Result<()> {
        for (image, archive) in images.archives() {
            let archive = archive.to_string_lossy();
            self.ctr(&["images", "import", "--snapshotter", "native", &archive])
                .map_err(|e| e.context(format!("importing {image}")))?;
        }
        let listed = self.ctr(&["images", "list", "-q"])?;
        for (image, _) in images.archives() {
            if !listed.lines().any(|l| l == image) {
                return Err(Error::new(format!(
                    "containerd lists no {image} after importing it; it lists:\n{listed}"
                )));
            }
        }
        Ok(())
    }

    fn write_cni_config(&self) -> Result<()> {
        let dir = self.state_dir.join("cni/net.d");
        create_dir(&dir)?;
        let config = serde_json::json!({
            "cniVersion": "0.4.0",
            "name": "gossamer-test",
            "plugins": [{
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                // Pods talk to each other and to the host; nothing needs
                // NAT to the outside, so no CNI-* nat chains.
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": self.state_dir.join("cni/ipam"),
                },
            }],
        });
        write_file(
            &dir.join("10-gossamer.conflist"),
            &serde_json::to_string_pretty(&config).unwrap_or_default(),
            0o644,
        )
    }

    /// A client certificate and a kubeconfig for `user`.
    fn kubeconfig(&self, cp: &ControlPlane, req: &CertRequest) -> Result<PathBuf> {
        let files: CertFiles = cp.pki().issue(req)?;
        let path = self.state_dir.join(format!("{}.kubeconfig", req.stem));
        kubeconfig::write(
            &path,
            cp.server(),
            cp.ca_pem_path(),
            &req.common_name,
            Credential::Cert(&files),
        )?;
        Ok(path)
    }

    fn start_scheduler(&self, cp: &ControlPlane) -> Result<()> {
        let kubeconfig = self.kubeconfig(
            cp,
            &CertRequest::client("kube-scheduler", "system:kube-scheduler", None),
        )?;
        let [port] = free_ports(1)[..] else {
            unreachable!("free_ports(1) returns one port")
        };
        let k = kubeconfig.display();
        self.spawn(
            "kube-scheduler",
            &cp.binaries().get("kube-scheduler")?,
            &[
                format!("--kubeconfig={k}"),
                format!("--authentication-kubeconfig={k}"),
                format!("--authorization-kubeconfig={k}"),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={port}"),
                "--leader-elect=false".into(),
            ],
        )
    }

    fn start_kubelet(&self, cp: &ControlPlane) -> Result<()> {
        let ip = self.ip.to_string();
        let cert = cp
            .pki()
            .issue(&CertRequest::kubelet(&self.name, &[&ip, &self.name]))?;
        let kubeconfig = self.state_dir.join("kubelet.kubeconfig");
        kubeconfig::write(
            &kubeconfig,
            cp.server(),
            cp.ca_pem_path(),
            &format!("system:node:{}", self.name),
            Credential::Cert(&cert),
        )?;
        let [port, healthz] = free_ports(2)[..] else {
            unreachable!("free_ports(2) returns two ports")
        };
        create_dir(&self.kubelet_root)?;
        let pod_logs = self.state_dir.join("pod-logs");
        create_dir(&pod_logs)?;
        let q = |p: &Path| serde_json::Value::from(p.to_string_lossy()).to_string();
        let config = format!(
            r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This host is cgroup v1 (kubelet 1.35+ refuses it by default), has no
# systemd and may have swap.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: "unix://{socket}"
address: "{ip}"
port: {port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {healthz}
tlsCertFile: {cert}
tlsPrivateKeyFile: {key}
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: false}}
  x509: {{clientCAFile: {ca}}}
# Only holders of a certificate from the test CA reach the kubelet.
authorization: {{mode: AlwaysAllow}}
podLogsDir: {pod_logs}
clusterDomain: {CLUSTER_DOMAIN}
clusterDNS: ["{CLUSTER_DNS}"]
resolvConf: /etc/resolv.conf
# The node's disk is the host's, shared with everything else on it: a full
# disk must not evict the test's Pods or taint the node. "0%" turns a disk
# signal off (the kubelet ignores 0% and 100% thresholds), as kind does.
evictionHard: {{memory.available: "1Mi", nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%"}}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
registerNode: true
"#,
            socket = self.containerd_socket.display(),
            cert = q(&cert.cert),
            key = q(&cert.key),
            ca = q(cp.ca_pem_path()),
            pod_logs = q(&pod_logs),
        );
        let config_path = self.state_dir.join("kubelet.yaml");
        write_file(&config_path, &config, 0o644)?;
        self.spawn(
            "kubelet",
            &cp.binaries().get("kubelet")?,
            &[
                format!("--config={}", config_path.display()),
                format!("--kubeconfig={}", kubeconfig.display()),
                format!("--root-dir={}", self.kubelet_root.display()),
                format!(
                    "--cert-dir={}",
                    self.state_dir.join("kubelet-pki").display()
                ),
                format!("--hostname-override={}", self.name),
                format!("--node-ip={ip}"),
                "--v=2".into(),
            ],
        )
    }

    fn start_kube_proxy(&self, cp: &ControlPlane) -> Result<()> {
        let kubeconfig = self.kubeconfig(
            cp,
            &CertRequest::client("kube-proxy", "system:kube-proxy", None),
        )?;
        let [healthz, metrics] = free_ports(2)[..] else {
            unreachable!("free_ports(2) returns two ports")
        };
        let q = |p: &Path| serde_json::Value::from(p.to_string_lossy()).to_string();
        let config = format!(
            r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {{kubeconfig: {kubeconfig}}}
hostnameOverride: {name}
clusterCIDR: {POD_CIDR}
healthzBindAddress: "127.0.0.1:{healthz}"
metricsBindAddress: "127.0.0.1:{metrics}"
# Leave the host's conntrack settings and route_localnet alone.
conntrack: {{maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}}
iptables: {{localhostNodePorts: false}}
"#,
            kubeconfig = q(&kubeconfig),
            name = self.name,
        );
        let config_path = self.state_dir.join("kube-proxy.yaml");
        write_file(&config_path, &config, 0o644)?;
        self.spawn(
            "kube-proxy",
            &cp.binaries().get("kube-proxy")?,
            &[
                format!("--config={}", config_path.display()),
                "--v=2".into(),
            ],
        )
    }

    /// The bridge with the Pods' gateway address, made before any Pod so
    /// CoreDNS can listen on it (the bridge plugin takes it as it is). The
    /// cleanup deletes it.
    fn create_bridge(&self) -> Result<()> {
        let prefix = POD_CIDR.split_once('/').map_or("16", |(_, p)| p);
        let gateway = format!("{CLUSTER_DNS}/{prefix}");
        for args in [
            vec!["link", "add", BRIDGE, "type", "bridge"],
            vec!["addr", "add", &gateway, "dev", BRIDGE],
            vec!["link", "set", BRIDGE, "up"],
        ] {
            let out = Command::new("ip")
                .args(&args)
                .output()
                .map_err(|e| Error::new(format!("cannot run ip (iproute2): {e}")))?;
            if !out.status.success() {
                return Err(Error::new(format!(
                    "`ip {}` failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        Ok(())
    }

    /// CoreDNS on the host, answering on the bridge's address for
    /// `cluster.local` from the API server (Services and their
    /// endpoints), and forwarding other names to the host's resolvers.
    /// Waits until its `ready` plugin says the Kubernetes data is loaded.
    fn start_coredns(&self, cp: &ControlPlane, deadline: Instant) -> Result<()> {
        cp.kubectl_apply_stdin(COREDNS_RBAC)?
            .ok()
            .map_err(|e| e.context("applying CoreDNS's RBAC"))?;
        let kubeconfig =
            self.kubeconfig(cp, &CertRequest::client("coredns", "system:coredns", None))?;
        let [health, ready] = free_ports(2)[..] else {
            unreachable!("free_ports(2) returns two ports")
        };
        let corefile = self.state_dir.join("Corefile");
        write_file(
            &corefile,
            &format!(
                r#".:53 {{
    bind {CLUSTER_DNS}
    errors
    health 127.0.0.1:{health}
    ready 127.0.0.1:{ready}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    forward . /etc/resolv.conf
    cache 5
}}
"#,
                kubeconfig = kubeconfig.display()
            ),
            0o644,
        )?;
        self.spawn(
            "coredns",
            &cp.binaries().get("coredns")?,
            &[
                "-conf".into(),
                corefile.display().to_string(),
                "-pidfile".into(),
                self.state_dir.join("coredns.pid").display().to_string(),
            ],
        )?;
        let log = self.log_dir.join("coredns.log");
        loop {
            self.check_running()?;
            let answer = std::net::TcpStream::connect(("127.0.0.1", ready)).and_then(|mut s| {
                use std::io::{Read, Write};
                s.set_read_timeout(Some(Duration::from_secs(2)))?;
                s.write_all(b"GET /ready HTTP/1.0\r\n\r\n")?;
                let mut text = String::new();
                s.read_to_string(&mut text)?;
                Ok(text)
            });
            if answer.is_ok_and(|t| t.starts_with("HTTP/1.0 200") || t.starts_with("HTTP/1.1 200"))
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::new(format!(
                    "CoreDNS not ready on 127.0.0.1:{ready}; log {}:\n{}",
                    log.display(),
                    log_tail(&log, 30)
                )));
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_ready(&self, cp: &ControlPlane, deadline: Instant) -> Result<()> {
        let jsonpath = r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#;
        loop {
            self.check_running()?;
            let out = cp.kubectl(&["get", "node", &self.name, "-o", jsonpath])?;
            if out.success() && out.stdout.trim() == "True" {
                return Ok(());
            }
            let last = if out.success() {
                format!("Ready={:?}", out.stdout.trim())
            } else {
                out.stderr.trim().to_string()
            };
            if Instant::now() >= deadline {
                let kubelet_log = self.log_dir.join("kubelet.log");
                return Err(Error::new(format!(
                    "node {} not Ready within {NODE_READY_TIMEOUT:?} (last: {last}); kubelet log {}:\n{}\ncontainerd log:\n{}",
                    self.name,
                    kubelet_log.display(),
                    log_tail(&kubelet_log, 40),
                    log_tail(&self.log_dir.join("containerd.log"), 15),
                )));
            }
            thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("{e}");
        }
    }
}

impl Janitor {
    /// Starts the cleanup script and waits until it holds the node lock and
    /// has recorded the host.
    fn start(state_dir: &Path, log: &Path) -> Result<Janitor> {
        let script = workspace_root().join("tests/kube/node-cleanup.sh");
        let log_file = fs::File::create(log)
            .map_err(|e| Error::new(format!("cannot create log {}: {e}", log.display())))?;
        let mut child = Command::new("bash")
            .arg(&script)
            .arg("watch")
            .arg(state_dir)
            .arg(BRIDGE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|e| Error::new(format!("cannot run `bash {}`: {e}", script.display())))?;
        let lifeline = child.stdin.take();
        let stdout = child.stdout.take();
        let mut janitor = Janitor {
            child,
            lifeline,
            log: log.to_path_buf(),
        };
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            if let Some(out) = stdout {
                let _ = BufReader::new(out).read_line(&mut line);
            }
            let _ = tx.send(line);
        });
        match rx.recv_timeout(LOCK_TIMEOUT) {
            Ok(line) if line.trim() == "ready" => Ok(janitor),
            outcome => {
                let _ = janitor.child.kill();
                let _ = janitor.child.wait();
                Err(Error::new(format!(
                    "the node cleanup script did not get ready ({}); log {}:\n{}",
                    match outcome {
                        Ok(_) => "it ended".to_string(),
                        Err(_) => format!("another test node held the host for {LOCK_TIMEOUT:?}"),
                    },
                    log.display(),
                    log_tail(log, 20)
                )))
            }
        }
    }

    /// Closes the pipe and waits for the cleanup to end.
    fn finish(mut self) -> Result<()> {
        self.lifeline.take();
        let deadline = Instant::now() + CLEANUP_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(Error::new(format!(
                        "the cleanup script exited with {status}"
                    )))
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                Ok(None) => {
                    return Err(Error::new(format!(
                        "the cleanup script still runs after {CLEANUP_TIMEOUT:?}"
                    )))
                }
                Err(e) => return Err(Error::new(format!("cannot wait for the cleanup: {e}"))),
            }
        }
    }
}

/// Whether this process's effective user is root (from /proc, no libc).
fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let uids = s.lines().find_map(|l| l.strip_prefix("Uid:"))?;
            uids.split_whitespace().nth(1).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}
