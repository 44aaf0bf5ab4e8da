//! The metrics endpoint and the periodic stats log of a real sidecar
//! process: figures present and moving, no key bytes, clear errors for
//! other paths and methods.

#![allow(clippy::disallowed_methods)] // an end-to-end test waits on the wall clock

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use gossamer_tests::{free_ports, wait_until, Cluster, Flags, Kind};

const KEY: &str = "5f2d8e1c9a7b3e4f60718293a4b5c6d7";

/// One HTTP/1.1 request over a plain socket; returns the whole response.
fn http(port: u16, method: &str, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("metrics port accepts");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("a response");
    out
}

/// The value of the first sample line starting with `prefix`.
fn sample(body: &str, prefix: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_endpoint_and_stats_log() {
    let ports = free_ports(2);
    let c = Cluster::start_with(&[Kind::Rust, Kind::Rust], |i| {
        Flags::fast()
            .key(KEY)
            .network("net1")
            .arg("--metrics-listen", format!("127.0.0.1:{}", ports[i]))
            .arg("--stats-interval-secs", 1)
    })
    .unwrap();
    c.wait_all_see(2, Duration::from_secs(30)).unwrap();

    // Figures are there, and the traffic counters move between scrapes.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (first, body) = loop {
        let r = http(ports[0], "GET", "/metrics");
        let body = r.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
        let alive = sample(&body, "gossamer_members{state=\"alive\"}");
        if alive == Some(2.0) || Instant::now() > deadline {
            assert!(r.starts_with("HTTP/1.1 200"), "{r}");
            assert!(r.contains("application/openmetrics-text"), "{r}");
            break (
                sample(
                    &body,
                    "gossamer_wire_bytes_total{transport=\"udp\",direction=\"sent\"}",
                ),
                body,
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        sample(&body, "gossamer_members{state=\"alive\"}"),
        Some(2.0),
        "{body}"
    );
    assert_eq!(sample(&body, "gossamer_keyring_keys"), Some(1.0), "{body}");
    assert_eq!(sample(&body, "gossamer_health_score"), Some(0.0), "{body}");
    assert!(
        sample(&body, "gossamer_table_entries{network=\"net1\"}").is_some(),
        "{body}"
    );
    assert!(body.contains("gossamer_decrypt_failures_total"), "{body}");
    // Two healthy nodes: the failure detector's counters exist and are 0.
    for c in [
        "gossamer_failed_probes_total",
        "gossamer_suspicions_total",
        "gossamer_refutations_total",
        "gossamer_late_wakes_total",
    ] {
        assert_eq!(sample(&body, c), Some(0.0), "{c}: {body}");
    }
    let first = first.expect("udp bytes sent");
    let again = wait_until(
        Duration::from_secs(10),
        &format!("the UDP bytes-sent counter to move past {first}"),
        || {
            let again = http(ports[0], "GET", "/metrics");
            match sample(
                &again,
                "gossamer_wire_bytes_total{transport=\"udp\",direction=\"sent\"}",
            ) {
                Some(later) if later > first => Ok(again),
                later => Err(later),
            }
        },
    );

    // Key bytes never appear, in any common spelling.
    for text in [&body, &again] {
        assert!(!text.to_lowercase().contains(KEY), "key bytes in metrics");
    }

    // Other paths and methods get a clear answer.
    let r = http(ports[0], "GET", "/");
    assert!(
        r.starts_with("HTTP/1.1 404") && r.contains("/metrics"),
        "{r}"
    );
    let r = http(ports[0], "POST", "/metrics");
    assert!(r.starts_with("HTTP/1.1 405"), "{r}");

    // The periodic stats line reports the members and the health score.
    let log = c.peers[0].log_path().to_path_buf();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text
            .lines()
            .any(|l| l.contains("stats") && l.contains("alive=2") && l.contains("health_score=0"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no stats line in {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
