//! Key rotation under load, multi-process: 8 Gossamer sidecars and 2 Go
//! memberlist peers exchange user messages continuously while a new key is
//! added everywhere, made primary everywhere, and the old key removed.
//! Nothing may be lost to decryption (every peer reports zero decrypt
//! failures and every reliable message arrives), and no key's bytes may
//! appear, in hex of either case or base64, in any peer's log (sidecars at
//! RUST_LOG=debug) or event output.

// Multi-process test: wall-clock time is its nature.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use gossamer_tests::leak::{base64, bytes, find_leak};
use gossamer_tests::{fingerprint, wait_until, Cluster, Flags, Kind, Peer};

const T: Duration = Duration::from_secs(30);
const OLD: &str = "8d1f0a3b5c7e9f21436587a9cbedf0123456789abcdef0fedcba987654321012";
const NEW: &str = "c4b3a29180706f5e4d3c2b1a0f1e2d3c4b5a69788796a5b4c3d2e1f001122334";
/// Each sender sends at most this many messages, one every `PACE`.
const MAX_PER_SENDER: usize = 1000;
const PACE: Duration = Duration::from_millis(30);
/// Pause between two peers within one rotation step.
const STAGGER: Duration = Duration::from_millis(300);
/// Messages every sender sends between two rollout steps (about a second
/// at [`PACE`]).
const PER_STEP: usize = 30;

#[test]
fn the_leak_detector_finds_every_form() {
    let raw = bytes(OLD);
    assert_eq!(
        base64(
            b"Man",
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            true
        ),
        "TWFu"
    );
    assert_eq!(
        base64(
            b"Ma",
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            true
        ),
        "TWE="
    );
    for planted in [
        format!("key={}", OLD.to_uppercase()),
        format!("key={OLD}"),
        format!("secret {:?} here", raw),
        format!(
            "b64 {}",
            base64(
                &raw,
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                true
            )
        ),
    ] {
        assert!(find_leak(&planted, &[OLD]).is_some(), "{planted}");
    }
    assert!(find_leak(&fingerprint(OLD), &[OLD, NEW]).is_none());
}

/// Messages one sender sent, by kind.
#[derive(Default)]
struct Sent {
    reliable: Vec<String>,
    best_effort: Vec<String>,
}

#[test]
fn rotating_keys_under_load_loses_nothing_and_leaks_nothing() {
    // Children inherit it: every sidecar logs at debug level.
    std::env::set_var("RUST_LOG", "debug");
    use Kind::{Go, Rust};
    let kinds = [Rust, Rust, Go, Rust, Rust, Rust, Go, Rust, Rust, Rust];
    let c = Cluster::start(&kinds, Flags::fast().key(OLD)).unwrap();
    let n = c.peers.len();
    c.wait_all_see(n, T).unwrap();

    let stop = AtomicBool::new(false);
    let sent: Vec<Mutex<Sent>> = (0..n).map(|_| Mutex::default()).collect();
    let started = Instant::now();
    thread::scope(|s| {
        for (i, p) in c.peers.iter().enumerate() {
            let (stop, sent, peers) = (&stop, &sent[i], &c.peers);
            s.spawn(move || {
                for seq in 0..MAX_PER_SENDER {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let to = &peers[(i + 1 + seq % (n - 1)) % n];
                    let reliable = seq % 2 == 0;
                    let data = format!("m:{}:{}:{seq}", p.name(), to.name());
                    p.send(to.name(), &data, reliable)
                        .unwrap_or_else(|e| panic!("send {data}: {e}"));
                    let mut s = sent.lock().unwrap();
                    if reliable {
                        s.reliable.push(format!("{}|{data}", to.name()));
                    } else {
                        s.best_effort.push(format!("{}|{data}", to.name()));
                    }
                    drop(s);
                    thread::sleep(PACE);
                }
            });
        }

        // Between steps, every sender sends a batch more messages, so that
        // each state of the rollout carries traffic.
        let sent_so_far = || -> Vec<usize> {
            sent.iter()
                .map(|s| {
                    let s = s.lock().unwrap();
                    s.reliable.len() + s.best_effort.len()
                })
                .collect()
        };
        let traffic = |when: &str| {
            let before = sent_so_far();
            wait_until(
                T,
                &format!("every sender to send {PER_STEP} more messages {when}"),
                || {
                    let now = sent_so_far();
                    if before.iter().zip(&now).all(|(b, a)| *a >= b + PER_STEP) {
                        Ok(())
                    } else {
                        Err((before.clone(), now))
                    }
                },
            )
        };
        // Each step goes peer by peer with a pause (STAGGER, a deliberate
        // window), as an operator rolls it out: for seconds, peers
        // encrypting with the old key and peers encrypting with the new one
        // exchange messages, which only works if every installed key is
        // tried to decrypt.
        let step = |what: &str, f: &dyn Fn(&Peer) -> gossamer_tests::Result<()>| {
            traffic(&format!("before {what}"));
            for p in &c.peers {
                f(p).unwrap_or_else(|e| panic!("{what} on {}: {e}", p.name()));
                thread::sleep(STAGGER);
            }
            eprintln!("{what} done everywhere after {:?}", started.elapsed());
        };
        step("add new key", &|p| p.add_key(NEW));
        step("use new key", &|p| p.use_key(NEW));
        for p in &c.peers {
            assert_eq!(
                p.keys().unwrap().primary,
                Some(fingerprint(NEW)),
                "{}",
                p.name()
            );
        }
        // Removing the primary is refused, on both kinds.
        for p in [&c.peers[0], &c.peers[2]] {
            assert!(p.remove_key(NEW).is_err(), "{}", p.name());
        }
        step("remove old key", &|p| p.remove_key(OLD));
        traffic("after the old key is removed");
        stop.store(true, Ordering::Relaxed);
    });

    // Every reliable message arrives; best-effort ones all but rarely.
    let mut totals = (0usize, 0usize, 0usize, 0usize);
    for s in &sent {
        let s = s.lock().unwrap();
        for (list, reliable) in [(&s.reliable, true), (&s.best_effort, false)] {
            for entry in list.iter() {
                let (to, data) = entry.split_once('|').unwrap();
                let peer = c.peer(to);
                let arrived = peer
                    .wait_for(
                        |v| v.user_msgs.iter().any(|m| m == data),
                        Duration::from_secs(if reliable { 10 } else { 0 }),
                    )
                    .is_ok();
                match (reliable, arrived) {
                    (true, true) => totals.0 += 1,
                    (true, false) => panic!("reliable message {data} never arrived at {to}"),
                    (false, true) => totals.2 += 1,
                    (false, false) => totals.3 += 1,
                }
            }
            if reliable {
                totals.1 += list.len();
            }
        }
    }
    let be_sent = totals.2 + totals.3;
    eprintln!(
        "reliable: {}/{} arrived; best-effort: {}/{be_sent} arrived",
        totals.0, totals.1, totals.2
    );
    assert!(
        totals.1 >= 200,
        "too few messages sent during rotation: {}",
        totals.1
    );
    assert!(
        totals.3 * 100 <= be_sent,
        "over 1% of best-effort messages lost"
    );

    for p in &c.peers {
        assert_eq!(
            p.decrypt_failures().unwrap(),
            0,
            "{}",
            p.report("decrypt failures")
        );
        assert_eq!(p.keys().unwrap().keys, [fingerprint(NEW)], "{}", p.name());
    }
    c.wait_all_see(n, T).unwrap();

    // The old key is really gone: a peer holding only it cannot join.
    let stale = Peer::spawn(Rust, "stale", Flags::fast().key(OLD)).unwrap();
    assert!(stale.join(&[c.peers[0].addr()]).is_err());

    // No key in any log or event line. The harness writes each peer's
    // command line as the log's first line, its --key values shown by
    // fingerprint: that line is scanned too.
    let mut sidecar_logs = String::new();
    for p in c.peers.iter().chain([&stale]) {
        let body = std::fs::read_to_string(p.log_path()).unwrap();
        if let Some(leak) = find_leak(&body, &[OLD, NEW]) {
            panic!(
                "{} leaked a key in its log {}: {leak}",
                p.name(),
                p.log_path().display()
            );
        }
        let events: String = p.view().events.iter().map(|e| format!("{e}\n")).collect();
        if let Some(leak) = find_leak(&events, &[OLD, NEW]) {
            panic!("{} leaked a key on stdout: {leak}", p.name());
        }
        if p.kind() == Rust {
            sidecar_logs.push_str(&body);
        }
    }
    // The logs were captured at debug level and speak of the keys, by
    // fingerprint.
    assert!(
        sidecar_logs.contains("DEBUG"),
        "sidecar logs are not at debug level"
    );
    assert!(
        sidecar_logs.contains(&fingerprint(NEW)),
        "no key fingerprint in the logs"
    );
}
