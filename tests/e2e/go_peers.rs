//! Go-only scenarios: prove the harness and the Go memberlist peer.

use std::process::Command;
use std::thread;
use std::time::Duration;

use gossamer_tests::{wait_until, workspace_root, Cluster, Flags, Kind, MemberState, Peer};

const T: Duration = Duration::from_secs(20);
const GO3: [Kind; 3] = [Kind::Go, Kind::Go, Kind::Go];

#[test]
fn three_go_peers_join_and_see_each_other_alive() {
    let c = Cluster::start(&GO3, Flags::fast()).unwrap();
    c.wait_all_see(3, T).unwrap();
    for peer in &c.peers {
        let members = peer.members().unwrap();
        let names: Vec<&str> = members.iter().map(|m| m.node.as_str()).collect();
        assert_eq!(names, ["n0", "n1", "n2"], "{}", peer.report("members"));
        for m in &members {
            assert_eq!(m.state, MemberState::Alive);
            assert!(
                m.incarnation.is_some(),
                "members reply carries incarnations"
            );
            assert_eq!(m.addr, c.peer(&m.node).addr());
        }
        // Joining is a TCP push/pull; probes and gossip follow over UDP.
        let stats = wait_until(
            T,
            &format!("{}: UDP sent and received", peer.name()),
            || {
                let s = peer.stats().unwrap();
                if s.udp_sent > 0 && s.udp_recv > 0 {
                    Ok(s)
                } else {
                    Err(s)
                }
            },
        );
        assert!(stats.tcp_sent > 0 && stats.tcp_recv > 0, "{stats:?}");
        assert!(peer.cpu_time().is_ok());
        assert!(peer.rss_bytes().unwrap() > 1 << 20);
        assert!(peer.with_view(|v| v.bad_lines.is_empty()));
    }
}

#[test]
fn sigkill_is_marked_dead_by_the_others() {
    let mut c = Cluster::start(&GO3, Flags::fast()).unwrap();
    c.wait_all_see(3, T).unwrap();
    c.peers[2].kill();
    c.wait_all_mark("n2", MemberState::Dead, T).unwrap();
    for peer in c.running() {
        let leave = peer.with_view(|v| {
            v.events
                .iter()
                .find(|e| e["ev"] == "leave" && e["node"] == "n2")
                .cloned()
        });
        assert_eq!(leave.expect("a leave event for n2")["state"], "dead");
    }
    c.wait_all_see(2, T).unwrap();
}

#[test]
fn graceful_leave_is_marked_left() {
    let mut c = Cluster::start(&[Kind::Go; 4], Flags::fast()).unwrap();
    c.wait_all_see(4, T).unwrap();

    // The leave command: the peer stays up, the others see it left.
    c.peers[3].leave(Duration::from_secs(2)).unwrap();
    c.wait_all_mark("n3", MemberState::Left, T).unwrap();
    assert_eq!(
        c.peers[3].with_view(|v| v.state_of("n3")),
        Some(MemberState::Left)
    );

    // SIGTERM: a graceful leave, then exit 0.
    c.peers[2].terminate().unwrap();
    let status = c.peers[2].wait_exit(T).unwrap();
    assert!(status.success(), "SIGTERM must exit 0, got {status}");
    c.wait_all_mark("n2", MemberState::Left, T).unwrap();
    // n3 left: it no longer hears gossip, so only n0 and n1 are asked.
    for peer in c.members() {
        let members = peer.members().unwrap();
        let states: Vec<(&str, MemberState)> =
            members.iter().map(|m| (m.node.as_str(), m.state)).collect();
        assert_eq!(
            states,
            [
                ("n0", MemberState::Alive),
                ("n1", MemberState::Alive),
                ("n2", MemberState::Left),
                ("n3", MemberState::Left)
            ],
            "members lists left nodes too"
        );
    }
}

#[test]
fn user_messages_cross() {
    let c = Cluster::start(&[Kind::Go, Kind::Go], Flags::fast()).unwrap();
    c.wait_all_see(2, T).unwrap();
    let (n0, n1) = (&c.peers[0], &c.peers[1]);

    n1.send("n0", "over tcp", true).unwrap();
    n0.wait_for(|v| v.user_msgs.iter().any(|m| m == "over tcp"), T)
        .unwrap();

    // Best effort may drop; loopback practically never does, but retry a
    // few times rather than flake.
    for _ in 0..5 {
        n1.send("n0", "over udp", false).unwrap();
        if n0
            .wait_for(
                |v| v.user_msgs.iter().any(|m| m == "over udp"),
                Duration::from_secs(1),
            )
            .is_ok()
        {
            break;
        }
    }
    n0.wait_for(
        |v| v.user_msgs.iter().any(|m| m == "over udp"),
        Duration::ZERO,
    )
    .unwrap();

    n0.broadcast("gossiped").unwrap();
    n1.wait_for(|v| v.user_msgs.iter().any(|m| m == "gossiped"), T)
        .unwrap();

    let err = n1.send("nobody", "x", true).unwrap_err();
    assert!(format!("{err}").contains("nobody"), "{err}");
}

#[test]
fn user_state_crosses_on_push_pull() {
    let flags = Flags::fast().arg("--push-pull-interval-ms", 500);
    let n0 = Peer::spawn(Kind::Go, "n0", flags.clone()).unwrap();
    let n1 = Peer::spawn(Kind::Go, "n1", flags).unwrap();
    n0.set_state("state of n0").unwrap();
    n1.set_state("state of n1").unwrap();

    // The join is a push/pull: both sides merge the other's state.
    assert_eq!(n1.join(&[n0.addr()]).unwrap(), 1);
    let joined = |data: &'static str| {
        move |v: &gossamer_tests::View| v.remote_states.iter().any(|s| s.join && s.data == data)
    };
    n1.wait_for(joined("state of n0"), T).unwrap();
    n0.wait_for(joined("state of n1"), T).unwrap();

    // Periodic push/pull carries later changes.
    n0.set_state("n0 v2").unwrap();
    n1.wait_for(
        |v| v.remote_states.iter().any(|s| !s.join && s.data == "n0 v2"),
        T,
    )
    .unwrap();
}

#[test]
fn different_labels_never_join() {
    let n0 = Peer::spawn(Kind::Go, "n0", Flags::fast().label("ns/a")).unwrap();
    let n1 = Peer::spawn(Kind::Go, "n1", Flags::fast().label("ns/b").seed(n0.addr())).unwrap();
    n1.wait_for(|v| !v.join_failed.is_empty() || !v.joined.is_empty(), T)
        .unwrap();
    let err = n1.with_view(|v| v.join_failed.first().cloned());
    let err = err.unwrap_or_else(|| panic!("{}", n1.report("a join across labels must fail")));
    assert!(
        err.contains(n0.addr()),
        "join_failed names the address: {err}"
    );

    // Nor does an unlabelled node get in, and nobody learns of anybody.
    let n2 = Peer::spawn(Kind::Go, "n2", Flags::fast()).unwrap();
    let err = n2.join(&[n0.addr()]).unwrap_err();
    assert!(format!("{err}").contains(n0.addr()), "{err}");
    // An observation window: for a second, with gossip every 50 ms, nobody
    // learns of anybody.
    thread::sleep(Duration::from_secs(1));
    for peer in [&n0, &n1, &n2] {
        let members = peer.members().unwrap();
        assert_eq!(members.len(), 1, "{}", peer.report("sees only itself"));
    }
}

/// Runs `go <args>` in `tests/interop/<dir>` and fails with its output.
fn go(dir: &str, args: &[&str]) {
    let cwd = workspace_root().join("tests/interop").join(dir);
    let out = Command::new("go")
        .args(args)
        .current_dir(&cwd)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `go` in {}: {e}; install Go", cwd.display()));
    assert!(
        out.status.success(),
        "`go {}` in {} failed ({}):\n{}{}",
        args.join(" "),
        cwd.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Go programs the interop tests rely on pass `go vet`, and the byte
/// counting transport both peers share passes its own tests (among them:
/// shutting down under load returns, which once hung a NetworkDB close).
#[test]
fn go_interop_programs_vet_clean_and_the_shared_transport_passes_its_tests() {
    for dir in [
        "wirecount",
        "peer",
        "networkdb-peer",
        "golden",
        "networkdb-golden",
    ] {
        go(dir, &["vet", "./..."]);
    }
    go("wirecount", &["test", "-count=1", "./..."]);
}
