//! Sixteen sidecar processes on loopback: convergence, crash detection,
//! graceful leave on SIGTERM.

use std::time::Duration;

use gossamer_tests::{Cluster, Flags, Kind, MemberState};

const N: usize = 16;
const T: Duration = Duration::from_secs(60);

#[test]
fn sixteen_sidecars_converge_detect_a_crash_and_see_a_leave() {
    let mut c = Cluster::start(&[Kind::Rust; N], Flags::fast()).unwrap();
    c.wait_all_see(N, T).unwrap();

    c.peers[7].kill();
    c.wait_all_mark("n7", MemberState::Dead, T).unwrap();

    c.peers[11].terminate().unwrap();
    assert!(
        c.peers[11].wait_exit(T).unwrap().success(),
        "SIGTERM exits 0"
    );
    c.wait_all_mark("n11", MemberState::Left, T).unwrap();

    c.wait_all_see(N - 2, T).unwrap();
    // Nobody else was ever declared dead: no false positives.
    for p in c.members() {
        let others_gone: Vec<String> = p.with_view(|v| {
            v.events
                .iter()
                .filter(|e| e["ev"] == "leave" && e["node"] != "n7" && e["node"] != "n11")
                .map(|e| e.to_string())
                .collect()
        });
        assert!(others_gone.is_empty(), "{}: {others_gone:?}", p.name());
    }
}
