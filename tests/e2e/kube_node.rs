//! A real single-node cluster: the control plane of `gossamer_tests::kube`
//! plus containerd, runc, the CNI bridge, kube-scheduler, kubelet and
//! kube-proxy (`Node`), running the sidecar image built without a registry
//! (`tests/kube/images.sh`). Two Pods with the sidecar as a native sidecar
//! gossip with each other over the Pod network; afterwards the host must be
//! as it was.

#![allow(clippy::disallowed_methods)] // tests wait on the wall clock

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use gossamer_tests::kube::{
    ControlPlane, Node, GOSSAMER_AUDIENCE, PAUSE_IMAGE, POD_CIDR, SIDECAR_IMAGE,
};
use gossamer_tests::wait_until;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{ObjectMeta, PostParams};
use kube::Api;

const GOSSIP_PORT: u16 = 7946;
const METRICS_PORT: u16 = 9946;
const POD_TIMEOUT: Duration = Duration::from_secs(90);

/// A Pod running the sidecar as a native sidecar (an init container with
/// `restartPolicy: Always`) beside an app container, with a projected
/// ServiceAccount token for audience `gossamer`.
fn pod_yaml(ns: &str, name: &str, seed: Option<Ipv4Addr>) -> String {
    let seed = seed
        .map(|ip| format!(", \"--seed\", \"{ip}:{GOSSIP_PORT}\""))
        .unwrap_or_default();
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {ns}
  labels: {{app: gossamer-node-test}}
spec:
  terminationGracePeriodSeconds: 5
  securityContext: {{runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}}
  initContainers:
  - name: gossamer
    image: {SIDECAR_IMAGE}
    imagePullPolicy: Never
    restartPolicy: Always
    env:
    - name: POD_IP
      valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
    args: ["run", "--bind", "0.0.0.0:{GOSSIP_PORT}", "--advertise", "$(POD_IP):{GOSSIP_PORT}",
           "--metrics-listen", "0.0.0.0:{METRICS_PORT}", "--profile", "local"{seed}]
    ports:
    - {{name: gossip-udp, containerPort: {GOSSIP_PORT}, protocol: UDP}}
    - {{name: gossip, containerPort: {GOSSIP_PORT}, protocol: TCP}}
    - {{name: metrics, containerPort: {METRICS_PORT}, protocol: TCP}}
    readinessProbe:
      httpGet: {{path: /readyz, port: {METRICS_PORT}}}
      periodSeconds: 1
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {{drop: [ALL]}}
    volumeMounts:
    - {{name: gossamer-token, mountPath: /var/run/secrets/gossamer, readOnly: true}}
  containers:
  - name: app
    image: {PAUSE_IMAGE}
    imagePullPolicy: Never
  volumes:
  - name: gossamer-token
    projected:
      sources:
      - serviceAccountToken: {{audience: {GOSSAMER_AUDIENCE}, expirationSeconds: 3600, path: token}}
"#
    )
}

/// `kubectl get pod -o jsonpath=...`, trimmed.
fn pod_field(cp: &ControlPlane, ns: &str, name: &str, jsonpath: &str) -> String {
    cp.kubectl(&[
        "get",
        "pod",
        name,
        "-n",
        ns,
        "-o",
        &format!("jsonpath={jsonpath}"),
    ])
    .unwrap()
    .ok()
    .unwrap()
    .trim()
    .to_string()
}

/// Waits for the Pod to be Running and Ready; returns its IP. On timeout
/// the panic shows `kubectl describe` and the kubelet's log tail.
fn wait_pod_ready(cp: &ControlPlane, node: &Node, ns: &str, name: &str) -> Ipv4Addr {
    let out = cp
        .kubectl(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{name}"),
            "-n",
            ns,
            &format!("--timeout={}s", POD_TIMEOUT.as_secs()),
        ])
        .unwrap();
    if !out.success() {
        let describe = cp
            .kubectl(&["describe", "pod", name, "-n", ns])
            .map(|o| o.stdout)
            .unwrap_or_default();
        let kubelet = node.log_dir().join("kubelet.log");
        panic!(
            "pod {ns}/{name} not Ready within {POD_TIMEOUT:?}: {}\n{describe}\nkubelet log {} ends:\n{}",
            out.stderr.trim(),
            kubelet.display(),
            tail(&std::fs::read_to_string(&kubelet).unwrap_or_default(), 30)
        );
    }
    assert_eq!(pod_field(cp, ns, name, "{.status.phase}"), "Running");
    let ip: Ipv4Addr = pod_field(cp, ns, name, "{.status.podIP}")
        .parse()
        .unwrap_or_else(|e| panic!("pod {ns}/{name} has no IPv4 pod IP: {e}"));
    assert!(
        ip.octets()[..2] == [10, 88],
        "pod IP {ip} is not in the node's Pod CIDR {POD_CIDR}"
    );
    ip
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `GET path` from the host to a Pod's IP (across the CNI bridge): the
/// status line's code and the body.
fn http_get(ip: Ipv4Addr, port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let addr = SocketAddr::from((ip, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// `gossamer_members{state="alive"}` of the sidecar at `ip`.
fn alive_members(ip: Ipv4Addr) -> Result<i64, String> {
    let (code, body) = http_get(ip, METRICS_PORT, "/metrics").map_err(|e| e.to_string())?;
    if code != 200 {
        return Err(format!("GET /metrics: {code}"));
    }
    body.lines()
        .find_map(|l| l.strip_prefix("gossamer_members{state=\"alive\"} "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "no gossamer_members{state=\"alive\"} line".to_string())
}

/// The projected token the kubelet wrote for the Pod, reviewed by the API
/// server for audience `gossamer`: (authenticated, user name, audiences).
fn review_projected_token(
    cp: &ControlPlane,
    node: &Node,
    uid: &str,
) -> (bool, String, Vec<String>) {
    let path = node
        .kubelet_root()
        .join("pods")
        .join(uid)
        .join("volumes/kubernetes.io~projected/gossamer-token/token");
    let token = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the projected token {}: {e}", path.display()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let api = Api::<TokenReview>::all(cp.client().await.unwrap());
        let review = TokenReview {
            metadata: ObjectMeta::default(),
            spec: TokenReviewSpec {
                token: token.trim().to_string(),
                audiences: Some(vec![GOSSAMER_AUDIENCE.to_string()]),
            },
            status: None,
        };
        let status = api
            .create(&PostParams::default(), &review)
            .await
            .unwrap()
            .status
            .unwrap_or_default();
        (
            status.authenticated.unwrap_or(false),
            status.user.and_then(|u| u.username).unwrap_or_default(),
            status.audiences.unwrap_or_default(),
        )
    })
}

#[test]
fn sidecar_pods_gossip_over_the_pod_network_and_the_host_is_left_clean() {
    let cp = ControlPlane::shared().unwrap();
    let node = Node::start(cp).unwrap();
    eprintln!(
        "node {} ({}) Ready in {:?}; logs in {}",
        node.name(),
        node.ip(),
        node.ready_in(),
        node.log_dir().display()
    );
    let ns = cp.namespace("node").unwrap();

    // The first sidecar has no seed; the second joins it by pod IP.
    cp.kubectl_apply_stdin(&pod_yaml(&ns, "first", None))
        .unwrap()
        .ok()
        .unwrap();
    let first = wait_pod_ready(cp, &node, &ns, "first");
    cp.kubectl_apply_stdin(&pod_yaml(&ns, "second", Some(first)))
        .unwrap()
        .ok()
        .unwrap();
    let second = wait_pod_ready(cp, &node, &ns, "second");
    assert_ne!(first, second);
    assert_eq!(
        pod_field(cp, &ns, "first", "{.spec.nodeName}"),
        node.name(),
        "the scheduler bound the Pod elsewhere"
    );
    assert_eq!(
        pod_field(
            cp,
            &ns,
            "first",
            "{.status.initContainerStatuses[0].started}"
        ),
        "true",
        "the native sidecar is not running"
    );

    // Both sidecars see each other alive: gossip crossed the Pod network
    // both ways; the host reaches both Pod IPs over the bridge.
    for ip in [first, second] {
        wait_until(
            Duration::from_secs(30),
            &format!("the sidecar at {ip} sees 2 alive members"),
            || match alive_members(ip) {
                Ok(2) => Ok(()),
                other => Err(other),
            },
        );
        let (code, body) = http_get(ip, METRICS_PORT, "/readyz").unwrap();
        assert_eq!(code, 200, "/readyz of {ip}: {body}");
    }

    // kubectl logs: the API server reaches the kubelet, which reads the
    // container's log; the first sidecar logged the second one's join.
    let joined = format!("addr={second}:{GOSSIP_PORT}");
    wait_until(
        Duration::from_secs(20),
        "the first sidecar's log shows the second one joining",
        || {
            let out = cp
                .kubectl(&["logs", "first", "-c", "gossamer", "-n", &ns])
                .unwrap();
            if out.success() && out.stdout.contains("member joined") && out.stdout.contains(&joined)
            {
                Ok(())
            } else {
                Err(format!("{}{}", out.stdout, out.stderr))
            }
        },
    );

    // The projected token has audience `gossamer` and names the Pod's
    // ServiceAccount.
    let uid = pod_field(cp, &ns, "second", "{.metadata.uid}");
    let (authenticated, user, audiences) = review_projected_token(cp, &node, &uid);
    assert!(authenticated, "the projected token was not accepted");
    assert_eq!(user, format!("system:serviceaccount:{ns}:default"));
    assert_eq!(audiences, vec![GOSSAMER_AUDIENCE.to_string()]);

    // Deleting the Pods stops their containers.
    let started = Instant::now();
    cp.kubectl(&[
        "delete",
        "pods",
        "--all",
        "-n",
        &ns,
        "--wait=true",
        "--timeout=60s",
    ])
    .unwrap()
    .ok()
    .unwrap();
    eprintln!("pods deleted in {:?}", started.elapsed());
    for ip in [first, second] {
        wait_until(
            Duration::from_secs(20),
            &format!("nothing answers on {ip}:{METRICS_PORT} any more"),
            || match http_get(ip, METRICS_PORT, "/healthz") {
                Err(_) => Ok(()),
                Ok(answer) => Err(answer),
            },
        );
    }
    node.check_running().unwrap();

    // Stopping the node cleans the host and checks it: no process, mount,
    // bridge, network namespace, firewall chain, cgroup, changed sysctl or
    // fixed path is left.
    node.stop().unwrap();
}
