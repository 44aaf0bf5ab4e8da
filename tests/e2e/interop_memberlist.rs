//! Gossamer sidecars and real Go memberlist v0.7.0 peers in one cluster on
//! loopback: joins both ways, failure detection both ways, leave, user
//! messages, push/pull user state, metadata, and label isolation.

use std::thread;
use std::time::Duration;

use gossamer_tests::{Cluster, Flags, Kind, MemberState, Peer, View};

const T: Duration = Duration::from_secs(30);

fn pair(first: Kind, second: Kind, flags: Flags) -> Cluster {
    let c = Cluster::start(&[first, second], flags).unwrap();
    c.wait_all_see(2, T).unwrap();
    c
}

#[test]
fn rust_joins_go() {
    let c = pair(Kind::Go, Kind::Rust, Flags::fast());
    for p in &c.peers {
        let names: Vec<String> = p.members().unwrap().into_iter().map(|m| m.node).collect();
        assert_eq!(names, ["n0", "n1"], "{}", p.report("members"));
    }
}

#[test]
fn go_joins_rust() {
    pair(Kind::Rust, Kind::Go, Flags::fast());
}

#[test]
fn go_and_rust_join_without_compression_and_on_protocol_5() {
    pair(
        Kind::Go,
        Kind::Rust,
        Flags::fast()
            .arg("--compression", false)
            .protocol_version(5),
    );
    pair(Kind::Rust, Kind::Go, Flags::fast().protocol_version(4));
}

#[test]
fn three_go_and_three_rust_all_see_six_alive_and_detect_crashes_both_ways() {
    use Kind::{Go, Rust};
    let mut c = Cluster::start(&[Go, Rust, Go, Rust, Go, Rust], Flags::fast()).unwrap();
    c.wait_all_see(6, T).unwrap();
    // Stable: an observation window of ten probe rounds (300 ms each) in
    // which probes flow and nobody is declared dead.
    let before = c.stats().unwrap();
    thread::sleep(Duration::from_secs(3));
    for (p, (b, a)) in c.peers.iter().zip(before.iter().zip(c.stats().unwrap())) {
        assert!(
            a.udp_sent > b.udp_sent && a.udp_recv > b.udp_recv,
            "{}: no UDP traffic in the window: {b:?} then {a:?}",
            p.name()
        );
        assert_eq!(
            p.with_view(left_or_dead),
            0,
            "{}",
            p.report("a false death")
        );
    }
    c.wait_all_see(6, T).unwrap();

    // A Go node crashes: the Rust nodes (and the Go ones) mark it dead.
    c.peers[4].kill();
    c.wait_all_mark("n4", MemberState::Dead, T).unwrap();
    // A Rust node crashes: the Go nodes (and the Rust ones) mark it dead.
    c.peers[5].kill();
    c.wait_all_mark("n5", MemberState::Dead, T).unwrap();
    c.wait_all_see(4, T).unwrap();
}

#[test]
fn rust_leave_is_seen_as_left_by_go() {
    use Kind::{Go, Rust};
    let mut c = Cluster::start(&[Go, Go, Rust, Rust], Flags::fast()).unwrap();
    c.wait_all_see(4, T).unwrap();
    c.peers[3].leave(Duration::from_secs(3)).unwrap();
    c.wait_all_mark("n3", MemberState::Left, T).unwrap();
    // SIGTERM is a graceful leave too, and exits 0.
    c.peers[2].terminate().unwrap();
    assert!(c.peers[2].wait_exit(T).unwrap().success());
    c.wait_all_mark("n2", MemberState::Left, T).unwrap();
}

#[test]
fn go_leave_is_seen_as_left_by_rust() {
    use Kind::{Go, Rust};
    let c = Cluster::start(&[Rust, Rust, Go], Flags::fast()).unwrap();
    c.wait_all_see(3, T).unwrap();
    c.peers[2].leave(Duration::from_secs(3)).unwrap();
    c.wait_all_mark("n2", MemberState::Left, T).unwrap();
}

fn got(data: &'static str) -> impl Fn(&View) -> bool {
    move |v| v.user_msgs.iter().any(|m| m == data)
}

/// Best-effort messages may drop; on loopback they practically never do,
/// but retry a few times rather than flake.
fn send_udp(from: &Peer, to: &Peer, data: &'static str) {
    for _ in 0..5 {
        from.send(to.name(), data, false).unwrap();
        if to.wait_for(got(data), Duration::from_secs(1)).is_ok() {
            return;
        }
    }
    to.wait_for(got(data), Duration::ZERO).unwrap();
}

#[test]
fn user_messages_and_broadcasts_cross_both_ways() {
    let c = pair(Kind::Go, Kind::Rust, Flags::fast());
    let (go, rust) = (&c.peers[0], &c.peers[1]);
    send_udp(rust, go, "udp rust->go");
    send_udp(go, rust, "udp go->rust");
    rust.send("n0", "tcp rust->go", true).unwrap();
    go.wait_for(got("tcp rust->go"), T).unwrap();
    go.send("n1", "tcp go->rust", true).unwrap();
    rust.wait_for(got("tcp go->rust"), T).unwrap();
    rust.broadcast("gossip rust->go").unwrap();
    go.wait_for(got("gossip rust->go"), T).unwrap();
    go.broadcast("gossip go->rust").unwrap();
    rust.wait_for(got("gossip go->rust"), T).unwrap();
    let err = rust.send("nobody", "x", true).unwrap_err();
    assert!(format!("{err}").contains("nobody"), "{err}");
}

#[test]
fn push_pull_user_state_crosses_both_ways() {
    for (a, b) in [(Kind::Go, Kind::Rust), (Kind::Rust, Kind::Go)] {
        let flags = Flags::fast().arg("--push-pull-interval-ms", 500);
        let n0 = Peer::spawn(a, "n0", flags.clone()).unwrap();
        let n1 = Peer::spawn(b, "n1", flags).unwrap();
        n0.set_state(&format!("state of {a}")).unwrap();
        n1.set_state(&format!("state of {b}")).unwrap();
        assert_eq!(n1.join(&[n0.addr()]).unwrap(), 1);
        let want_a = format!("state of {a}");
        let want_b = format!("state of {b}");
        n1.wait_for(
            |v| v.remote_states.iter().any(|s| s.join && s.data == want_a),
            T,
        )
        .unwrap();
        n0.wait_for(
            |v| v.remote_states.iter().any(|s| s.join && s.data == want_b),
            T,
        )
        .unwrap();
        // Periodic (non-join) push/pull carries later changes.
        n0.set_state("v2").unwrap();
        n1.wait_for(
            |v| v.remote_states.iter().any(|s| !s.join && s.data == "v2"),
            T,
        )
        .unwrap();
    }
}

#[test]
fn metadata_and_its_update_cross_both_ways() {
    let c = Cluster::start_with(&[Kind::Go, Kind::Rust], |i| {
        Flags::fast().meta(&format!("pod-{i}"))
    })
    .unwrap();
    c.wait_all_see(2, T).unwrap();
    for p in &c.peers {
        let ms = p.members().unwrap();
        assert_eq!(ms[0].meta, "pod-0", "{}", p.report("meta"));
        assert_eq!(ms[1].meta, "pod-1", "{}", p.report("meta"));
    }
    c.peers[1].set_meta("pod-1 v2").unwrap();
    c.peers[0]
        .wait_for(
            |v| v.members.get("n1").is_some_and(|m| m.meta == "pod-1 v2"),
            T,
        )
        .unwrap();
    c.peers[0].set_meta("pod-0 v2").unwrap();
    c.peers[1]
        .wait_for(
            |v| v.members.get("n0").is_some_and(|m| m.meta == "pod-0 v2"),
            T,
        )
        .unwrap();
}

#[test]
fn labelled_clusters_interoperate_and_mismatched_labels_never_join() {
    // Same label: they join.
    pair(Kind::Go, Kind::Rust, Flags::fast().label("shop/default"));
    pair(Kind::Rust, Kind::Go, Flags::fast().label("shop/default"));

    for (a, b) in [(Kind::Go, Kind::Rust), (Kind::Rust, Kind::Go)] {
        let n0 = Peer::spawn(a, "n0", Flags::fast().label("shop/a")).unwrap();
        let n1 = Peer::spawn(b, "n1", Flags::fast().label("shop/b").seed(n0.addr())).unwrap();
        n1.wait_for(|v| !v.join_failed.is_empty() || !v.joined.is_empty(), T)
            .unwrap();
        let err = n1.with_view(|v| v.join_failed.first().cloned());
        let err = err.unwrap_or_else(|| panic!("{}", n1.report("a join across labels must fail")));
        assert!(
            err.contains(n0.addr()),
            "the error names the address tried: {err}"
        );
        // An unlabelled node does not get in either.
        let n2 = Peer::spawn(b, "n2", Flags::fast()).unwrap();
        let err = n2.join(&[n0.addr()]).unwrap_err();
        assert!(format!("{err}").contains(n0.addr()), "{err}");
        // An observation window: for a second, with gossip every 50 ms,
        // nobody learns of anybody.
        thread::sleep(Duration::from_secs(1));
        for p in [&n0, &n1, &n2] {
            assert_eq!(
                p.members().unwrap().len(),
                1,
                "{}",
                p.report("sees only itself")
            );
        }
    }
}

/// How many `leave` events (a node dead or left) a view holds.
fn left_or_dead(v: &View) -> usize {
    v.events.iter().filter(|e| e["ev"] == "leave").count()
}

/// Issue 14's slow mode in a mixed cluster: a Go seed and seven peers,
/// Go and Gossamer alternately, join it 0.1 s apart with the Local
/// profile (each broadcast sent only twice by the Go peers, push/pull
/// every 15 s). Gossamer's catch-up push/pulls and its transmit floor are
/// plain memberlist messages to the Go peers, and carry the late joiners
/// to everyone well before the periodic push/pull that pure Go clusters
/// wait for in about half of such runs.
#[test]
#[allow(clippy::disallowed_methods)] // one deadline, from the last join
fn a_mixed_join_wave_converges_before_the_periodic_push_pull() {
    use Kind::{Go, Rust};
    let kinds = [Go, Rust, Go, Rust, Go, Rust, Go, Rust];
    let flags = Flags::new().profile("local");
    let peers: Vec<Peer> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| Peer::spawn(*k, &format!("n{i}"), flags.clone()).unwrap())
        .collect();
    let seed = peers[0].addr().to_string();
    for p in &peers[1..] {
        thread::sleep(Duration::from_millis(100));
        p.join(&[seed.as_str()]).unwrap();
    }
    let t0 = std::time::Instant::now();
    let n = peers.len();
    for p in &peers {
        let left = Duration::from_secs(10).saturating_sub(t0.elapsed());
        p.wait_for(|v| v.alive().len() == n, left)
            .map_err(|e| p.report(&format!("not all {n} alive 10 s after the last join: {e}")))
            .unwrap();
    }
    eprintln!(
        "mixed join wave: all see all {:?} after the last join",
        t0.elapsed()
    );
}
