//! Gossip encryption between Gossamer sidecars and real Go memberlist
//! v0.7.0 peers on loopback: encrypted joins both ways with and without a
//! label, keyrings with different primaries, a wrong key that never joins
//! (and both sides saying why), and moving a running mixed cluster from
//! plain to encrypted gossip in steps without anyone being marked dead.

use std::thread;
use std::time::Duration;

use gossamer_tests::{fingerprint, wait_until, Cluster, Flags, Kind, MemberState, Peer};

const T: Duration = Duration::from_secs(30);
const K1: &str = "5f3a1c9e7b2d4068a1b2c3d4e5f60718293a4b5c6d7e8f901122334455667788";
const K2: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const WRONG: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa9988";

fn pair(first: Kind, second: Kind, flags: Flags) -> Cluster {
    let c = Cluster::start(&[first, second], flags).unwrap();
    c.wait_all_see(2, T).unwrap();
    c
}

/// Both peers exchange user messages, best-effort and reliable, and see no
/// decrypt failure.
fn exchange_messages(c: &Cluster) {
    let (a, b) = (&c.peers[0], &c.peers[1]);
    a.send(b.name(), "udp-a", false).unwrap();
    a.send(b.name(), "tcp-a", true).unwrap();
    b.send(a.name(), "udp-b", false).unwrap();
    b.send(a.name(), "tcp-b", true).unwrap();
    let has = |p: &Peer, want: [&str; 2]| {
        p.wait_for(
            |v| want.iter().all(|w| v.user_msgs.iter().any(|m| m == w)),
            T,
        )
        .unwrap()
    };
    has(b, ["udp-a", "tcp-a"]);
    has(a, ["udp-b", "tcp-b"]);
    for p in &c.peers {
        assert_eq!(
            p.decrypt_failures().unwrap(),
            0,
            "{}",
            p.report("decrypt failures")
        );
    }
}

fn log_of(p: &Peer) -> String {
    std::fs::read_to_string(p.log_path()).unwrap_or_default()
}

#[test]
fn go_and_rust_join_both_ways_encrypted_without_a_label() {
    let c = pair(Kind::Go, Kind::Rust, Flags::fast().key(K1));
    exchange_messages(&c);
    let c = pair(Kind::Rust, Kind::Go, Flags::fast().key(K2));
    exchange_messages(&c);
    for p in &c.peers {
        let keys = p.keys().unwrap();
        assert_eq!(keys.primary.as_deref(), Some(fingerprint(K2).as_str()));
        assert_eq!(keys.keys, [fingerprint(K2)]);
    }
}

#[test]
fn go_and_rust_join_both_ways_encrypted_with_a_label() {
    let flags = Flags::fast().key(K1).label("shop/default");
    exchange_messages(&pair(Kind::Go, Kind::Rust, flags.clone()));
    exchange_messages(&pair(Kind::Rust, Kind::Go, flags.protocol_version(5)));
}

#[test]
fn keyrings_with_different_primaries_interoperate() {
    // Each encrypts with its own primary; each holds the other's.
    let c = Cluster::start_with(&[Kind::Go, Kind::Rust, Kind::Go, Kind::Rust], |i| {
        if i % 2 == 0 {
            Flags::fast().key(K1).key(K2)
        } else {
            Flags::fast().key(K2).key(K1)
        }
    })
    .unwrap();
    c.wait_all_see(4, T).unwrap();
    // An observation window: for two seconds probes flow both ways between
    // peers with different primaries, and none fails to decrypt.
    let before = c.stats().unwrap();
    thread::sleep(Duration::from_secs(2));
    for (p, (b, a)) in c.peers.iter().zip(before.iter().zip(c.stats().unwrap())) {
        assert!(
            a.udp_sent > b.udp_sent && a.udp_recv > b.udp_recv,
            "{}: no UDP traffic in the window: {b:?} then {a:?}",
            p.name()
        );
    }
    c.wait_all_see(4, T).unwrap();
    for p in &c.peers {
        assert_eq!(
            p.decrypt_failures().unwrap(),
            0,
            "{}",
            p.report("decrypt failures")
        );
    }
}

#[test]
fn a_wrong_key_never_joins_and_both_sides_say_why() {
    for (seed_kind, joiner_kind) in [(Kind::Go, Kind::Rust), (Kind::Rust, Kind::Go)] {
        let seed = Peer::spawn(seed_kind, "seed", Flags::fast().key(K1)).unwrap();
        let joiner = Peer::spawn(joiner_kind, "joiner", Flags::fast().key(WRONG)).unwrap();
        let err = joiner.join(&[seed.addr()]).unwrap_err().to_string();
        // The joiner says the seed's answer could not be decrypted.
        let expect = match joiner_kind {
            Kind::Rust => "no installed key could decrypt",
            Kind::Go => "no installed keys could decrypt",
            Kind::GoNetworkDb => unreachable!("not used here"),
        };
        assert!(err.contains(expect), "{joiner_kind} joiner: {err}");
        // The seed counted the failure and logged it with the sender.
        seed.wait_for(|_| true, T).unwrap();
        let failures = seed.decrypt_failures().unwrap();
        assert!(
            failures >= 1,
            "{}",
            seed.report("no decrypt failure counted")
        );
        let log = log_of(&seed);
        let said = match seed_kind {
            Kind::Rust => log.contains("cannot decrypt gossip from this sender"),
            Kind::Go => log.contains("no installed keys could decrypt"),
            Kind::GoNetworkDb => unreachable!("not used here"),
        };
        assert!(said, "{}", seed.report("no decrypt failure in the log"));
        // An observation window: for two seconds the joiner does not get
        // in by gossip either.
        thread::sleep(Duration::from_secs(2));
        for p in [&seed, &joiner] {
            let alive: Vec<String> = p
                .members()
                .unwrap()
                .into_iter()
                .filter(|m| m.state == MemberState::Alive)
                .map(|m| m.node)
                .collect();
            assert_eq!(
                alive,
                [p.name()],
                "{}",
                p.report("joined despite a wrong key")
            );
        }
        // Both kinds name the sender's address (`from=IP:PORT`).
        assert!(log.contains("from=127.0.0.1:"), "{log}");
    }
}

#[test]
fn plain_and_encrypted_peers_do_not_mix() {
    for (seed_kind, joiner_kind) in [(Kind::Go, Kind::Rust), (Kind::Rust, Kind::Go)] {
        let seed = Peer::spawn(seed_kind, "seed", Flags::fast().key(K1)).unwrap();
        let joiner = Peer::spawn(joiner_kind, "plain", Flags::fast()).unwrap();
        let err = joiner.join(&[seed.addr()]).unwrap_err().to_string();
        assert!(err.contains("encrypt"), "{joiner_kind} joiner: {err}");
        assert!(seed.decrypt_failures().unwrap() >= 1);
    }
}

#[test]
fn a_running_mixed_cluster_moves_from_plain_to_encrypted_in_steps() {
    use Kind::{Go, Rust};
    let c = Cluster::start(&[Go, Rust, Go, Rust], Flags::fast()).unwrap();
    c.wait_all_see(4, T).unwrap();
    // After a step: probes and acks (about ten per peer) flow under the
    // new setting, and everyone is still seen alive.
    let settle = |step: &str| {
        let before = c.stats().unwrap();
        wait_until(
            T,
            &format!("1 KiB of UDP each way on every peer after {step}"),
            || {
                let now = c.stats().unwrap();
                let moved = before.iter().zip(&now).all(|(b, a)| {
                    a.udp_sent >= b.udp_sent + 1024 && a.udp_recv >= b.udp_recv + 1024
                });
                if moved {
                    Ok(())
                } else {
                    Err((before.clone(), now))
                }
            },
        );
        c.wait_all_see(4, T).unwrap();
    };
    // 1. Install the key, still sending and accepting plain gossip.
    for p in &c.peers {
        p.set_verify(false, false).unwrap();
        p.add_key(K1).unwrap();
    }
    settle("installing the key");
    // 2. Encrypt outgoing gossip; plain is still accepted.
    for p in &c.peers {
        p.set_verify(false, true).unwrap();
    }
    settle("encrypting outgoing gossip");
    // 3. Refuse plain gossip.
    for p in &c.peers {
        p.set_verify(true, true).unwrap();
    }
    settle("refusing plain gossip");
    for p in &c.peers {
        // Nobody was ever suspected or declared dead on the way.
        let gone: Vec<String> = p
            .view()
            .events
            .iter()
            .filter(|e| e["ev"] == "leave")
            .map(|e| e.to_string())
            .collect();
        assert!(gone.is_empty(), "{}: {gone:?}", p.name());
        assert!(p
            .members()
            .unwrap()
            .iter()
            .all(|m| m.state == MemberState::Alive));
        assert_eq!(
            p.decrypt_failures().unwrap(),
            0,
            "{}",
            p.report("decrypt failures")
        );
        assert_eq!(p.keys().unwrap().keys, [fingerprint(K1)]);
    }
    // Encryption is now enforced: a plain peer cannot join any of them.
    for seed in [&c.peers[0], &c.peers[1]] {
        let plain = Peer::spawn(Kind::Rust, "plain", Flags::fast()).unwrap();
        assert!(plain.join(&[seed.addr()]).is_err());
    }
}
