//! A cluster that starts all at once, as a Deployment's Pods do: eight
//! sidecar processes, each given the other seven as seeds, none of which is
//! up when the first one starts. The join loop retries until the seeds
//! answer; readiness and the join metrics say where each node stands.

#![allow(clippy::disallowed_methods)] // an end-to-end test waits on the wall clock

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use gossamer_tests::{free_ports, wait_until, Flags, Kind, Peer};

const N: usize = 8;
const T: Duration = Duration::from_secs(60);

/// One HTTP/1.1 GET over a plain socket; the whole response.
fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("metrics port accepts");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("a response");
    out
}

/// The value of the sample line that starts with `name ` (no labels).
fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn eight_sidecars_started_together_with_each_other_as_seeds_converge() {
    let ports = free_ports(N + 1);
    let metrics = ports[N];
    let flags = |i: usize| {
        let mut f = Flags::fast();
        for (j, p) in ports[..N].iter().enumerate() {
            if j != i {
                f = f.arg("--seed", format!("127.0.0.1:{p}"));
            }
        }
        f
    };

    // The first node starts while none of its seeds is up: it stays up,
    // alone, not ready, and keeps trying.
    let first = Peer::spawn_at(
        Kind::Rust,
        "n0",
        ports[0],
        flags(0).arg("--metrics-listen", format!("127.0.0.1:{metrics}")),
    )
    .unwrap();
    wait_until(T, "two failed join tries", || {
        match sample(&get(metrics, "/metrics"), "gossamer_join_failures_total") {
            Some(n) if n >= 2.0 => Ok(()),
            n => Err(n),
        }
    });
    let r = get(metrics, "/readyz");
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    assert!(
        r.contains("not joined yet") && r.contains("no seed answered"),
        "{r}"
    );
    assert!(get(metrics, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(
        !first.is_stopped(),
        "a seed that does not answer is not fatal"
    );

    // The other seven start at the same moment.
    let rest: Vec<Peer> = thread::scope(|s| {
        let handles: Vec<_> = (1..N)
            .map(|i| {
                let f = flags(i);
                let port = ports[i];
                s.spawn(move || Peer::spawn_at(Kind::Rust, &format!("n{i}"), port, f))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });

    let started = Instant::now();
    for p in std::iter::once(&first).chain(&rest) {
        let left = T.saturating_sub(started.elapsed());
        p.wait_for(|v| v.alive().len() == N, left)
            .unwrap_or_else(|e| panic!("{} never saw all {N}: {e}", p.name()));
    }
    eprintln!(
        "{N} sidecars started together converged {:.1} s after the last start",
        started.elapsed().as_secs_f64()
    );
    wait_until(T, "n0 ready", || {
        let r = get(metrics, "/readyz");
        if r.starts_with("HTTP/1.1 200") {
            Ok(())
        } else {
            Err(r)
        }
    });
    let m = get(metrics, "/metrics");
    assert_eq!(sample(&m, "gossamer_joined"), Some(1.0), "{m}");
    assert!(sample(&m, "gossamer_join_attempts_total").unwrap() >= 2.0);
}
