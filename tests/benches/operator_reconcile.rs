//! Reconcile latency of the operator on a real control plane: a change to a
//! GossipNetwork's spec, until its status shows the new generation
//! (`observedGeneration`), with 100 GossipNetworks and 1,000 Pods with a
//! sidecar indexed. Also the operator's resident memory idle and with those
//! objects indexed.
//!
//! Run: `cargo bench -p gossamer-tests --bench operator_reconcile`
//! (`-- --pods N --networks M --changes K` to change the sizes).

#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use gossamer_operator_api::GossipNetwork;
use gossamer_tests::kube::ControlPlane;
use gossamer_tests::operator::{Operator, OperatorOptions};
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse().expect("a number"))
        .unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn apply_many(cp: &ControlPlane, docs: Vec<String>) {
    for chunk in docs.chunks(200) {
        let out = cp.kubectl_apply_stdin(&chunk.join("---\n")).unwrap();
        assert!(out.success(), "{out:?}");
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let pods = arg("--pods", 1000);
    let networks = arg("--networks", 100);
    let changes = arg("--changes", 200);
    let cp = ControlPlane::shared().unwrap();
    let op = Operator::start(cp, OperatorOptions::new("bench")).unwrap();
    while !op.is_leader() {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let idle = rss_kib(op.pid());
    let ns = cp.namespace("bench").unwrap();

    let t = Instant::now();
    apply_many(
        cp,
        (0..pods)
            .map(|i| format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: {ns}, labels: {{gossamer.dev/cluster: default, app: a{}}}}}\nspec: {{containers: [{{name: app, image: gossamer.dev/none:0}}]}}\n",
                i % networks
            ))
            .collect(),
    );
    apply_many(
        cp,
        (0..networks)
            .map(|i| format!(
                "apiVersion: gossamer.dev/v1alpha1\nkind: GossipNetwork\nmetadata: {{name: net{i}, namespace: {ns}}}\nspec: {{memberSelector: {{matchLabels: {{app: a{i}}}}}, tables: [{{name: t0}}]}}\n"
            ))
            .collect(),
    );
    println!(
        "created {pods} Pods and {networks} GossipNetworks in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let want_members = (pods / networks).to_string();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let out = cp
            .kubectl(&[
                "get",
                "gossipnetworks",
                "-n",
                &ns,
                "-o",
                "jsonpath={range .items[*]}{.status.members}{\"\\n\"}{end}",
            ])
            .unwrap();
        let ready = out.stdout.lines().filter(|l| *l == want_members).count();
        if ready == networks {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {ready} of {networks} networks counted their members"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "every network counted its {want_members} members after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(3));
    let loaded = rss_kib(op.pid());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let latencies = rt.block_on(async {
        let client = cp.client().await.unwrap();
        let api: Api<GossipNetwork> = Api::namespaced(client, &ns);
        // Every (name, observedGeneration) as the status shows it, first seen.
        let seen: Arc<Mutex<HashMap<(String, i64), Instant>>> = Arc::default();
        let watch = {
            let (api, seen) = (api.clone(), seen.clone());
            tokio::spawn(async move {
                let mut s = watcher(api, watcher::Config::default()).boxed();
                while let Some(Ok(ev)) = s.next().await {
                    if let watcher::Event::Apply(n) | watcher::Event::InitApply(n) = ev {
                        if let Some(g) = n.status.as_ref().and_then(|s| s.observed_generation) {
                            seen.lock()
                                .unwrap()
                                .entry((n.name_any(), g))
                                .or_insert_with(Instant::now);
                        }
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut lat = Vec::new();
        for c in 0..changes {
            let name = format!("net{}", c % networks);
            let tables: Vec<_> = (0..=c / networks + 1)
                .map(|t| serde_json::json!({"name": format!("t{t}")}))
                .collect();
            let start = Instant::now();
            let n = api
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({"spec": {"tables": tables}})),
                )
                .await
                .unwrap();
            let gen = n.metadata.generation.unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Some(at) = seen.lock().unwrap().get(&(name.clone(), gen)) {
                    lat.push(at.saturating_duration_since(start));
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{name} generation {gen} never reconciled"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        watch.abort();
        lat
    });
    let mut sorted = latencies.clone();
    sorted.sort();
    println!(
        "reconcile latency (spec change -> status with its generation), {} changes over {networks} networks, {pods} pods: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, min {:.1} ms",
        sorted.len(),
        percentile(&sorted, 0.5).as_secs_f64() * 1e3,
        percentile(&sorted, 0.99).as_secs_f64() * 1e3,
        sorted.last().unwrap().as_secs_f64() * 1e3,
        sorted[0].as_secs_f64() * 1e3,
    );
    println!(
        "operator resident memory: idle {:.1} MiB; with {pods} pods and {networks} networks indexed {:.1} MiB; after the changes {:.1} MiB",
        idle as f64 / 1024.0,
        loaded as f64 / 1024.0,
        rss_kib(op.pid()) as f64 / 1024.0
    );
}
