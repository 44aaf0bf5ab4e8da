//! Warm start of the test control plane (`gossamer_tests::kube`): from
//! launching etcd to ready (kube-apiserver `/readyz` ok and the `default`
//! ServiceAccount created by kube-controller-manager), with the binaries
//! already built. Each run starts a fresh control plane (new PKI, empty
//! etcd) and stops it before the next.
//!
//! Run: `cargo bench -p gossamer-tests --bench kube_start -- --runs 5`.
//! Prints one line per run and a summary.

#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

use std::time::{Duration, Instant};

use gossamer_tests::kube::{ControlPlane, KubeBinaries};

fn runs() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse().expect("--runs takes a number"))
        .unwrap_or(5)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo bench --no-run` never gets here.
    let bins = KubeBinaries::find().unwrap();
    println!("binaries: {}", bins.dir().display());
    let mut times: Vec<Duration> = Vec::new();
    for run in 1..=runs() {
        let total = Instant::now();
        let cp = ControlPlane::builder().start().unwrap();
        let ready = cp.started_in();
        let apiserver = cp.apiserver_ready_in();
        let with_setup = total.elapsed();
        let stopping = Instant::now();
        drop(cp);
        println!(
            "run {run}: launch -> ready {:.2} s (kube-apiserver /readyz at {:.2} s; with PKI \
             and set-up {:.2} s), stop {:.2} s",
            ready.as_secs_f64(),
            apiserver.as_secs_f64(),
            with_setup.as_secs_f64(),
            stopping.elapsed().as_secs_f64()
        );
        times.push(ready);
    }
    times.sort();
    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "launch -> ready over {} runs: min {:.2} s, median {:.2} s, max {:.2} s",
        times.len(),
        secs(times[0]),
        secs(times[times.len() / 2]),
        secs(times[times.len() - 1])
    );
}
