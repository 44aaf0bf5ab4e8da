//! A running control plane and what tests do with it.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::error::{Error, Result};
use crate::kube::binaries::KubeBinaries;
use crate::kube::block_on::block_on;
use crate::kube::builder::{ControlPlaneBuilder, ISSUER};
use crate::kube::kubeconfig::{self, Credential};
use crate::kube::kubectl::{self, KubectlOutput};
use crate::kube::pki::Pki;
use crate::kube::supervised::{create_dir, Supervised};

/// How long [`ControlPlane::namespace`] waits for the namespace's
/// `default` ServiceAccount.
const NAMESPACE_TIMEOUT: Duration = Duration::from_secs(30);

/// Files of the state folder.
pub(crate) struct Paths {
    pub(crate) pki: PathBuf,
    pub(crate) etcd_data: PathBuf,
    pub(crate) apiserver_cert_dir: PathBuf,
    pub(crate) admin_kubeconfig: PathBuf,
    pub(crate) controller_manager_kubeconfig: PathBuf,
    pub(crate) kubectl_cache: PathBuf,
    pub(crate) tokens: PathBuf,
}

/// A running etcd + kube-apiserver + kube-controller-manager on 127.0.0.1
/// (free ports), with client-certificate auth, `Node,RBAC` authorization,
/// ServiceAccount tokens (issuer [`ISSUER`], audiences the issuer and
/// [`GOSSAMER_AUDIENCE`](crate::kube::GOSSAMER_AUDIENCE)) and every default
/// controller (garbage collector, namespace, serviceaccount, tokens...).
///
/// Start one with [`ControlPlane::builder`] or share one per test binary
/// with [`ControlPlane::shared`]. Processes run from
/// [`KubeBinaries`]; each is stopped by PID when this value is dropped or
/// when the test process ends, even by SIGKILL (a watcher reads EOF on a
/// pipe that only this process holds), and the state folder is removed
/// then too.
pub struct ControlPlane {
    pub(crate) bins: KubeBinaries,
    pub(crate) state_dir: PathBuf,
    pub(crate) log_dir: PathBuf,
    pub(crate) pki: Pki,
    pub(crate) server: String,
    pub(crate) etcd_url: String,
    pub(crate) service_cidr: String,
    pub(crate) service_ip: Ipv4Addr,
    /// The host's address the API server advertises (the `kubernetes`
    /// Service's endpoint, so Pods reach it); `None`: loopback only.
    pub(crate) advertise: Option<Ipv4Addr>,
    pub(crate) paths: Paths,
    pub(crate) processes: Mutex<Vec<Supervised>>,
    pub(crate) apiserver_ready_in: Duration,
    pub(crate) started_in: Duration,
    /// Numbers namespaces and token files.
    pub(crate) seq: AtomicUsize,
}

/// A process of the control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// `etcd`, `kube-apiserver`, `kube-controller-manager`.
    pub name: String,
    /// Its PID.
    pub pid: u32,
    /// Its log (stdout and stderr).
    pub log: PathBuf,
}

impl ControlPlane {
    /// Options for a control plane of this test's own.
    pub fn builder() -> ControlPlaneBuilder {
        ControlPlaneBuilder::default()
    }

    /// The control plane of this test binary, started with default options
    /// by the first caller (the others wait); it runs until the binary
    /// exits. Tests sharing it MUST use their own namespaces
    /// ([`ControlPlane::namespace`]) and unique cluster-scoped names.
    ///
    /// # Errors
    /// If it could not start; every later call returns the same error at
    /// once rather than starting again.
    pub fn shared() -> Result<&'static ControlPlane> {
        static SHARED: OnceLock<std::result::Result<ControlPlane, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| ControlPlane::builder().start().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::new(format!("the shared control plane did not start: {e}")))
    }

    /// The API server's URL, `https://127.0.0.1:<port>`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The cluster CA certificate (PEM file): what clients trust the API
    /// server with, and what signs client and kubelet certificates.
    pub fn ca_pem_path(&self) -> &Path {
        &self.pki.ca().cert
    }

    /// The cluster CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        self.pki.ca_pem()
    }

    /// The CA, to issue more certificates (e.g. a kubelet's).
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// A kubeconfig for user `gossamer-admin` in `system:masters` (client
    /// certificate).
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.paths.admin_kubeconfig
    }

    /// The address Pods reach the API server at through the `kubernetes`
    /// Service (the host's address; the server listens on every address),
    /// or `None` when this host has no non-loopback address and the server
    /// listens on 127.0.0.1 only.
    pub fn advertise_address(&self) -> Option<Ipv4Addr> {
        self.advertise
    }

    /// etcd's client URL, `http://127.0.0.1:<port>`.
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// The Service CIDR.
    pub fn service_cidr(&self) -> &str {
        &self.service_cidr
    }

    /// The `kubernetes` Service's ClusterIP (first address of the CIDR).
    pub fn kubernetes_service_ip(&self) -> Ipv4Addr {
        self.service_ip
    }

    /// The ServiceAccount token issuer.
    pub fn issuer(&self) -> &str {
        ISSUER
    }

    /// The binaries this control plane runs (kubectl, helm... are there
    /// too).
    pub fn binaries(&self) -> &KubeBinaries {
        &self.bins
    }

    /// The folder of PKI, etcd data and kubeconfigs; removed when the
    /// control plane stops.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The folder of the processes' logs; kept.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// From launching etcd to ready (the `default` ServiceAccount exists).
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// From launching etcd to kube-apiserver's `/readyz` answering `ok`
    /// (kube-controller-manager is launched then).
    pub fn apiserver_ready_in(&self) -> Duration {
        self.apiserver_ready_in
    }

    /// The running processes, in start order.
    pub fn processes(&self) -> Vec<ProcessInfo> {
        self.lock_processes()
            .iter()
            .map(|p| ProcessInfo {
                name: p.name().to_string(),
                pid: p.pid(),
                log: p.log().to_path_buf(),
            })
            .collect()
    }

    /// Runs the built kubectl as the admin: `kubectl --kubeconfig <admin>
    /// args…`. A non-zero exit is not an error: assert on
    /// [`KubectlOutput`], or take stdout with [`KubectlOutput::ok`].
    ///
    /// # Errors
    /// If kubectl cannot be run.
    pub fn kubectl(&self, args: &[&str]) -> Result<KubectlOutput> {
        self.kubectl_as(&self.paths.admin_kubeconfig, args)
    }

    /// As [`ControlPlane::kubectl`] with another kubeconfig (e.g. one of
    /// [`ControlPlane::token_kubeconfig`]).
    ///
    /// # Errors
    /// If kubectl cannot be run.
    pub fn kubectl_as(&self, kubeconfig: &Path, args: &[&str]) -> Result<KubectlOutput> {
        kubectl::run(
            &self.bins.get("kubectl")?,
            kubeconfig,
            &self.paths.kubectl_cache,
            args,
            None,
        )
    }

    /// `kubectl apply -f -` of `yaml` as the admin.
    ///
    /// # Errors
    /// If kubectl cannot be run (a rejected manifest is an `Ok` with a
    /// non-zero status).
    pub fn kubectl_apply_stdin(&self, yaml: &str) -> Result<KubectlOutput> {
        kubectl::run(
            &self.bins.get("kubectl")?,
            &self.paths.admin_kubeconfig,
            &self.paths.kubectl_cache,
            &["apply", "-f", "-"],
            Some(yaml),
        )
    }

    /// `kubectl apply -f -` of `yaml` as the admin, which must succeed.
    ///
    /// # Panics
    /// If kubectl cannot be run or the server refuses the manifest (a
    /// test's own manifests are meant to be accepted).
    pub fn apply(&self, yaml: &str) {
        let out = self.kubectl_apply_stdin(yaml).expect("kubectl runs");
        assert!(out.success(), "kubectl apply failed:\n{yaml}\n{out:?}");
    }

    /// `kubectl get KIND NAME -n NS -o jsonpath=PATH` as the admin,
    /// trimmed; "" when the object (or the field) is missing.
    ///
    /// # Panics
    /// If kubectl cannot be run.
    pub fn jsonpath(&self, ns: &str, kind: &str, name: &str, path: &str) -> String {
        let jp = format!("jsonpath={path}");
        let out = self
            .kubectl(&["get", kind, name, "-n", ns, "-o", &jp])
            .expect("kubectl runs");
        if out.success() {
            out.stdout.trim().to_string()
        } else {
            String::new()
        }
    }

    /// A kube client for the admin. Call it from inside a Tokio runtime:
    /// the client's connection task is spawned on it.
    ///
    /// # Errors
    /// If the kubeconfig cannot be read.
    pub async fn client(&self) -> Result<Client> {
        self.client_for(&self.paths.admin_kubeconfig).await
    }

    /// A kube client for the user of `kubeconfig` (e.g. one of
    /// [`ControlPlane::token_kubeconfig`]); from inside a Tokio runtime.
    ///
    /// # Errors
    /// If the kubeconfig cannot be read or names no usable cluster.
    pub async fn client_for(&self, kubeconfig: &Path) -> Result<Client> {
        let what = || format!("kubeconfig {}", kubeconfig.display());
        let file = Kubeconfig::read_from(kubeconfig)
            .map_err(|e| Error::new(format!("cannot read {}: {e}", what())))?;
        let config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
            .await
            .map_err(|e| Error::new(format!("cannot load {}: {e}", what())))?;
        Client::try_from(config)
            .map_err(|e| Error::new(format!("cannot build a client from {}: {e}", what())))
    }

    /// Creates namespace `<prefix>-<n>`, unique in this control plane, and
    /// waits until its `default` ServiceAccount exists (so Pods can be
    /// created in it at once); returns its name.
    ///
    /// # Errors
    /// If `prefix` is not a lowercase DNS label of at most 40 characters,
    /// or the namespace cannot be created or stays without its
    /// ServiceAccount for 30 s.
    pub fn namespace(&self, prefix: &str) -> Result<String> {
        let label = prefix.len() <= 40
            && prefix.starts_with(|c: char| c.is_ascii_lowercase())
            && !prefix.ends_with('-')
            && prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !label {
            return Err(Error::new(format!(
                "namespace prefix {prefix:?} is not a DNS label: use at most 40 of a-z, 0-9 \
                 and '-', starting with a letter and not ending with '-'"
            )));
        }
        let name = format!("{prefix}-{}", self.seq.fetch_add(1, Ordering::Relaxed));
        block_on(async {
            let client = self.client().await?;
            let ns = Namespace {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            };
            Api::<Namespace>::all(client.clone())
                .create(&PostParams::default(), &ns)
                .await
                .map_err(|e| Error::new(format!("cannot create namespace {name}: {e}")))?;
            let sas = Api::<ServiceAccount>::namespaced(client, &name);
            let deadline = Instant::now() + NAMESPACE_TIMEOUT;
            self.poll(
                deadline,
                &format!("ServiceAccount default in namespace {name}"),
                "kube-controller-manager",
                || async { Ok(sas.get_opt("default").await?.is_some()) },
            )
            .await
        })?;
        Ok(name)
    }

    /// Writes a kubeconfig that authenticates as ServiceAccount
    /// `namespace/name` with a TokenRequest token (one hour, default
    /// audiences), for running a process with only that account's RBAC
    /// rights; returns its path. The token is a secret: the file is mode
    /// 0600 and the token is never printed.
    ///
    /// # Errors
    /// If the ServiceAccount does not exist (kubectl's message says so) or
    /// the file cannot be written.
    pub fn token_kubeconfig(&self, namespace: &str, name: &str) -> Result<PathBuf> {
        let token = self
            .kubectl(&["create", "token", name, "-n", namespace, "--duration=1h"])?
            .ok()
            .map_err(|e| e.context(format!("requesting a token for {namespace}/{name}")))?;
        let token = token.trim();
        create_dir(&self.paths.tokens)?;
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let path = self
            .paths
            .tokens
            .join(format!("{namespace}-{name}-{n}.kubeconfig"));
        kubeconfig::write(
            &path,
            &self.server,
            &self.pki.ca().cert,
            &format!("system:serviceaccount:{namespace}:{name}"),
            Credential::Token(token),
        )?;
        Ok(path)
    }

    pub(crate) fn lock_processes(&self) -> MutexGuard<'_, Vec<Supervised>> {
        self.processes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for ControlPlane {
    /// Stops the processes, newest first, and removes the state folder.
    fn drop(&mut self) {
        let mut processes = self.lock_processes();
        while let Some(p) = processes.pop() {
            p.stop();
        }
        drop(processes);
        let _ = fs::remove_dir_all(&self.state_dir);
    }
}
