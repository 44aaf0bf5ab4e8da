//! The real control plane of `gossamer_tests::kube`: etcd, kube-apiserver
//! and kube-controller-manager built by `tests/kube/install.sh`, shared by
//! the tests of this binary, each test in namespaces of its own.

#![allow(clippy::disallowed_methods)] // tests wait on the wall clock

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use std::{env, fs, thread};

use gossamer_tests::kube::{
    ControlPlane, KubeBinaries, KubeVersions, GOSSAMER_AUDIENCE, KUBE_BIN_ENV,
};
use gossamer_tests::test_temp_dir;
use k8s_openapi::api::authentication::v1::{
    TokenRequest, TokenRequestSpec, TokenReview, TokenReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::Api;

fn cp() -> &'static ControlPlane {
    ControlPlane::shared().unwrap()
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        ..ObjectMeta::default()
    }
}

#[test]
fn kubectl_and_the_server_are_the_pinned_version() {
    let pinned = KubeVersions::pinned().unwrap().kube;
    assert_eq!(pinned, "v1.37.2", "tests/kube/versions.sh changed");
    let out = cp().kubectl(&["version"]).unwrap().ok().unwrap();
    assert!(
        out.contains(&format!("Client Version: {pinned}\n")),
        "kubectl is not {pinned}:\n{out}"
    );
    assert!(
        out.contains(&format!("Server Version: {pinned}\n")),
        "kube-apiserver is not {pinned}:\n{out}"
    );
}

#[test]
fn a_namespace_is_created_and_listed() {
    let cp = cp();
    let ns = cp.namespace("listed").unwrap();
    let all = cp
        .kubectl(&["get", "namespaces", "-o", "name"])
        .unwrap()
        .ok()
        .unwrap();
    assert!(
        all.lines().any(|l| l == format!("namespace/{ns}")),
        "{ns} is not listed:\n{all}"
    );
    let phase = cp
        .kubectl(&["get", "namespace", &ns, "-o", "jsonpath={.status.phase}"])
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(phase, "Active");
}

#[test]
fn namespace_prefixes_must_be_dns_labels() {
    let err = cp().namespace("Not_A_Label").unwrap_err().to_string();
    assert!(err.contains("\"Not_A_Label\" is not a DNS label"), "{err}");
}

#[test]
fn a_failed_start_reports_the_log_of_the_failed_process() {
    let err = ControlPlane::builder()
        .apiserver_args(&["--no-such-flag=1"])
        .start()
        .err()
        .expect("kube-apiserver refuses an unknown flag");
    let err = err.to_string();
    assert!(
        err.contains("kube-apiserver (pid ") && err.contains("unknown flag: --no-such-flag"),
        "{err}"
    );
}

#[tokio::test]
async fn token_review_accepts_a_token_for_its_own_audience_only() {
    let cp = cp();
    let ns = cp.namespace("tokens").unwrap();
    let client = cp.client().await.unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    sas.create(
        &PostParams::default(),
        &ServiceAccount {
            metadata: meta("sidecar"),
            ..ServiceAccount::default()
        },
    )
    .await
    .unwrap();
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec![GOSSAMER_AUDIENCE.to_string()]),
            expiration_seconds: Some(600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let token = sas
        .create_token_request("sidecar", &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .expect("a TokenRequest answer has a status")
        .token
        .expect("a TokenRequest answer has a token");

    let reviews: Api<TokenReview> = Api::all(client);
    let review = |audience: &str| TokenReview {
        spec: TokenReviewSpec {
            token: token.clone(),
            audiences: Some(vec![audience.to_string()]),
        },
        ..TokenReview::default()
    };
    let accepted = reviews
        .create(&PostParams::default(), &review(GOSSAMER_AUDIENCE))
        .await
        .unwrap()
        .status
        .expect("a TokenReview answer has a status");
    assert_eq!(accepted.authenticated, Some(true), "{accepted:?}");
    assert_eq!(
        accepted.audiences.as_deref(),
        Some(&[GOSSAMER_AUDIENCE.to_string()][..])
    );
    let user = accepted
        .user
        .expect("an authenticated review names the user");
    assert_eq!(
        user.username.as_deref(),
        Some(format!("system:serviceaccount:{ns}:sidecar").as_str())
    );

    let rejected = reviews
        .create(&PostParams::default(), &review("someone-else"))
        .await
        .unwrap()
        .status
        .expect("a TokenReview answer has a status");
    assert_ne!(rejected.authenticated, Some(true), "{rejected:?}");
    let why = rejected.error.unwrap_or_default();
    assert!(
        why.contains("audience"),
        "rejected for another reason: {why}"
    );
}

#[tokio::test]
async fn the_garbage_collector_deletes_dependents_of_a_deleted_owner() {
    let cp = cp();
    let ns = cp.namespace("gc").unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(cp.client().await.unwrap(), &ns);
    let owner = cms
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: meta("owner"),
                ..ConfigMap::default()
            },
        )
        .await
        .unwrap();
    let dependent = cms
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    owner_references: Some(vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "ConfigMap".into(),
                        name: "owner".into(),
                        uid: owner
                            .metadata
                            .uid
                            .clone()
                            .expect("created objects have a uid"),
                        ..OwnerReference::default()
                    }]),
                    ..meta("dependent")
                },
                ..ConfigMap::default()
            },
        )
        .await
        .unwrap();
    let dependent_uid = dependent.metadata.uid.expect("created objects have a uid");

    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    let gone = await_condition(
        cms.clone(),
        "dependent",
        conditions::is_deleted(&dependent_uid),
    );
    let waited = tokio::time::timeout(Duration::from_secs(60), gone).await;
    let left = cms.get_opt("dependent").await.unwrap();
    assert!(
        matches!(waited, Ok(Ok(_))) && left.is_none(),
        "the garbage collector left ConfigMap {ns}/dependent for 60 s after its owner was \
         deleted ({waited:?}); kube-controller-manager log: {}",
        cp.log_dir().join("kube-controller-manager.log").display()
    );
}

#[test]
fn a_service_account_token_kubeconfig_is_held_to_rbac() {
    let cp = cp();
    let allowed = cp.namespace("rbac-allowed").unwrap();
    let denied = cp.namespace("rbac-denied").unwrap();
    let rbac = format!(
        "apiVersion: v1
kind: ServiceAccount
metadata: {{name: reader, namespace: {allowed}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pod-reader, namespace: {allowed}}}
rules:
- apiGroups: [\"\"]
  resources: [pods]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: reader-reads-pods, namespace: {allowed}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}}
subjects:
- {{kind: ServiceAccount, name: reader, namespace: {allowed}}}
"
    );
    let applied = cp.kubectl_apply_stdin(&rbac).unwrap().ok().unwrap();
    assert!(applied.contains("rolebinding.rbac.authorization.k8s.io/reader-reads-pods created"));
    let reader = cp.token_kubeconfig(&allowed, "reader").unwrap();
    let user = format!("system:serviceaccount:{allowed}:reader");

    let who = cp
        .kubectl_as(
            &reader,
            &[
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username}",
            ],
        )
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(who, user);

    let ok = cp
        .kubectl_as(&reader, &["get", "pods", "-n", &allowed])
        .unwrap();
    assert!(ok.success(), "{ok:?}");
    assert!(
        ok.stderr
            .contains(&format!("No resources found in {allowed} namespace.")),
        "{ok:?}"
    );

    for (args, resource) in [
        (vec!["get", "pods", "-n", denied.as_str()], "pods"),
        (vec!["get", "secrets", "-n", allowed.as_str()], "secrets"),
    ] {
        let out = cp.kubectl_as(&reader, &args).unwrap();
        assert!(!out.success(), "{out:?}");
        assert!(
            out.stderr.contains(&format!(
                "{resource} is forbidden: User \"{user}\" cannot list resource \"{resource}\""
            )),
            "kubectl {}: {}",
            args.join(" "),
            out.stderr
        );
    }
}

/// Set in a copy of this test binary that starts the shared control plane,
/// reports it, waits for its stdin to close and then panics (`panic`) or
/// waits to be SIGKILLed (`sigkill`).
const CHILD_ENV: &str = "GOSSAMER_KUBE_CLEANUP_CHILD";
/// The line a child prints once its control plane is ready.
const MARKER: &str = "gossamer-cleanup-child:";
const CLEANUP_TEST: &str = "processes_and_state_are_gone_after_a_panic_and_a_sigkill";

#[test]
fn processes_and_state_are_gone_after_a_panic_and_a_sigkill() {
    match env::var(CHILD_ENV).as_deref() {
        Ok(mode @ ("panic" | "sigkill")) => {
            print_marker();
            // The parent checks the PIDs while this process is parked here.
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            assert_ne!(
                mode, "panic",
                "deliberate panic: the watchers must stop the control plane"
            );
            return;
        }
        Ok(other) => panic!("{CHILD_ENV}={other:?}: expected panic or sigkill"),
        Err(_) => {}
    }
    // Both children at once: each starts a control plane of its own.
    let mut children = ["panic", "sigkill"].map(|mode| (mode, spawn_child(mode)));
    let seen = children
        .each_mut()
        .map(|(mode, child)| read_marker(mode, child));
    for ((mode, mut child), seen) in children.into_iter().zip(seen) {
        if mode == "sigkill" {
            child.kill().unwrap();
        } else {
            drop(child.stdin.take());
        }
        let status = child.wait().unwrap();
        if mode == "panic" {
            assert_eq!(
                status.code(),
                Some(101),
                "the panicking child exited with {status}; stderr in {}",
                child_log(mode).display()
            );
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let alive: Vec<_> = seen
                .processes
                .iter()
                .filter(|(_, (pid, start))| start_time(*pid) == Some(*start))
                .map(|(name, (pid, _))| format!("{name} (pid {pid})"))
                .collect();
            let state_left = seen.state_dir.exists();
            if alive.is_empty() && !state_left {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "30 s after the {mode} child ended, still running: {alive:?}; state folder {} \
                 left: {state_left}; logs in {}",
                seen.state_dir.display(),
                seen.log_dir.display()
            );
            thread::sleep(Duration::from_millis(100));
        }
        for name in seen.processes.keys() {
            let log = fs::read_to_string(seen.log_dir.join(format!("{name}.log"))).unwrap();
            assert!(
                log.contains("[watch] test process gone: SIGTERM to pid"),
                "{name} was not stopped by its watcher after the {mode} child ended"
            );
        }
    }
}

/// In a child: starts the shared control plane and prints its state
/// folder, log folder and processes (`name=pid` pairs).
fn print_marker() {
    let cp = cp();
    let procs: Vec<String> = cp
        .processes()
        .iter()
        .map(|p| format!("{}={}", p.name, p.pid))
        .collect();
    println!(
        "{MARKER} {} {} {}",
        cp.state_dir().display(),
        cp.log_dir().display(),
        procs.join(" ")
    );
}

/// What a child reported: each process's PID and start time, and folders.
struct Seen {
    processes: HashMap<String, (u32, u64)>,
    state_dir: PathBuf,
    log_dir: PathBuf,
}

/// Starts this test binary's cleanup test as a child in `mode`; its stderr
/// (the deliberate panic, too) goes to [`child_log`].
fn spawn_child(mode: &str) -> Child {
    let stderr = fs::File::create(child_log(mode)).unwrap();
    let bins = KubeBinaries::find().unwrap();
    Command::new(env::current_exe().unwrap())
        .args([CLEANUP_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode)
        .env(KUBE_BIN_ENV, bins.dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

fn child_log(mode: &str) -> PathBuf {
    test_temp_dir().join(format!("cleanup-child-{mode}.log"))
}

/// Reads a child's marker line; checks that each PID runs the binary it is
/// named after (the watcher `exec`s it).
fn read_marker(mode: &str, child: &mut Child) -> Seen {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    // libtest prints `test <name> ... ` on the same line before it.
    let marker = loop {
        match lines.next() {
            Some(Ok(line)) if line.contains(MARKER) => break line,
            Some(Ok(line)) => printed.push(line),
            _ => panic!(
                "the {mode} child ended before its control plane was ready; stderr in {}, \
                 stdout:\n{}",
                child_log(mode).display(),
                printed.join("\n")
            ),
        }
    };
    // Keep draining so the child never blocks on a full pipe.
    thread::spawn(move || lines.for_each(drop));
    let (_, reported) = marker
        .split_once(MARKER)
        .expect("the line holds the marker");
    let mut fields = reported.split_whitespace();
    let state_dir = PathBuf::from(fields.next().unwrap());
    let log_dir = PathBuf::from(fields.next().unwrap());
    let mut processes = HashMap::new();
    for pair in fields {
        let (name, pid) = pair.split_once('=').unwrap();
        let pid: u32 = pid.parse().unwrap();
        let exe = program_of(pid);
        assert!(
            exe.ends_with(&format!("/{name}")),
            "pid {pid} reported as {name} runs {exe}: the watcher must exec the program"
        );
        let start = start_time(pid).unwrap();
        processes.insert(name.to_string(), (pid, start));
    }
    assert_eq!(processes.len(), 3, "{marker}");
    assert!(state_dir.is_dir(), "{marker}");
    Seen {
        processes,
        state_dir,
        log_dir,
    }
}

/// The first word of a process's command line.
fn program_of(pid: u32) -> String {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let first = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(first).into_owned()
}

/// A live (not zombie) process's start time in clock ticks since boot; a
/// PID reused by another process has another.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    // After the command: state is field 3, starttime field 22.
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    fields.get(19)?.parse().ok()
}
