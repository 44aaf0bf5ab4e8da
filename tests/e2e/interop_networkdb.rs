//! Live interop with a real libnetwork NetworkDB node
//! (`tests/interop/networkdb-peer`, moby v2.0.0-beta.24) and Gossamer
//! sidecars on loopback, all on memberlist's LAN defaults (NetworkDB's only
//! profile): entries written on either side appear on the other, updates
//! and deletes propagate, a node that leaves a network or the cluster has
//! its entries dropped everywhere, a failed owner's entries are hidden on
//! both sides, and a sidecar restarted as a new node at the same address
//! gets the tables back by bulk sync while the old node's entries go.
//!
//! Differences from libnetwork that are not asserted here are listed in
//! `tests/interop/README.md` ("NetworkDB peer").

// Wall-clock deadlines: this drives real processes.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gossamer_proto::tables::v1 as pb;
use gossamer_tests::{free_ports, Flags, Kind, Peer};
use pb::tables_client::TablesClient;
use tonic::transport::Channel;
use tonic::Code;

const NET: &str = "endpoints";
const TABLE: &str = "backends";
/// Replication and membership deadline. Failure detection on the LAN
/// profile (1 s probes, suspicion multiplier 4) takes several seconds.
const T: Duration = Duration::from_secs(60);

/// Polls `$cond` (which may `.await`) every 100 ms until it holds, or
/// fails the test after [`T`] naming `$what` (and showing `$detail`, which
/// may `.await` too, when given).
macro_rules! eventually {
    ($what:expr, $cond:expr) => {
        eventually!($what, $cond, String::new())
    };
    ($what:expr, $cond:expr, $detail:expr) => {{
        let start = Instant::now();
        let deadline = start + T;
        loop {
            if $cond {
                eprintln!("{:>6.1}s  {}", start.elapsed().as_secs_f64(), $what);
                break;
            }
            if Instant::now() >= deadline {
                panic!("not within {T:?}: {}\n{}", $what, $detail);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }};
}

/// A sidecar with its API client.
struct Sidecar {
    peer: Peer,
    api: TablesClient<Channel>,
}

async fn connect(port: u16) -> TablesClient<Channel> {
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + T;
    loop {
        match TablesClient::connect(url.clone()).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {url}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Starts sidecar `name` on the LAN profile, seeded with `seed`, serving
/// the API, joined to [`NET`] at start when `join_net`.
async fn sidecar(name: &str, port: Option<u16>, seed: &str, join_net: bool) -> Sidecar {
    let api_port = free_ports(1)[0];
    let mut flags = Flags::new()
        .seed(seed)
        .arg("--api-listen", format!("127.0.0.1:{api_port}"));
    if join_net {
        flags = flags.network(NET);
    }
    let peer = match port {
        Some(p) => Peer::spawn_at(Kind::Rust, name, p, flags),
        None => Peer::spawn(Kind::Rust, name, flags),
    }
    .unwrap();
    let api = connect(api_port).await;
    Sidecar { peer, api }
}

fn go_node(name: &str) -> Peer {
    Peer::spawn(Kind::GoNetworkDb, name, Flags::new().network(NET)).unwrap()
}

fn write(key: &str, value: &str) -> pb::WriteEntryRequest {
    pb::WriteEntryRequest {
        network: NET.into(),
        table: TABLE.into(),
        key: key.into(),
        value: value.as_bytes().to_vec(),
    }
}

async fn rust_get(s: &mut Sidecar, key: &str) -> Option<String> {
    let req = pb::GetEntryRequest {
        network: NET.into(),
        table: TABLE.into(),
        key: key.into(),
    };
    match s.api.get_entry(req).await {
        Ok(e) => Some(String::from_utf8(e.into_inner().value).expect("test values are text")),
        Err(st) if st.code() == Code::NotFound => None,
        Err(st) => panic!("{}: get {key}: {st}", s.peer.name()),
    }
}

async fn rust_list(s: &mut Sidecar) -> BTreeMap<String, String> {
    let req = pb::ListTableRequest {
        network: NET.into(),
        table: TABLE.into(),
    };
    let entries = s.api.list_table(req).await.unwrap().into_inner().entries;
    entries
        .into_iter()
        .map(|e| (e.key, String::from_utf8(e.value).expect("text")))
        .collect()
}

/// Peers of [`NET`] a sidecar counts (itself included).
/// The sidecar's health of [`NET`], `None` when it has not joined.
async fn rust_net_health(s: &mut Sidecar) -> Option<pb::NetworkHealth> {
    let h = s
        .api
        .health(pb::HealthRequest {})
        .await
        .unwrap()
        .into_inner();
    h.networks.into_iter().find(|n| n.network == NET)
}

async fn rust_net_peers(s: &mut Sidecar) -> u64 {
    rust_net_health(s).await.map_or(0, |n| n.peers)
}

/// Waits until the Go node and every sidecar hold all `n` nodes as members
/// of [`NET`].
async fn wait_network_formed(go: &Peer, sidecars: &mut [&mut Sidecar], n: usize) {
    eventually!(
        format!("{} sees {n} peers in {NET}", go.name()),
        go.ndb_peers(NET).unwrap().len() == n
    );
    for s in sidecars.iter_mut() {
        eventually!(
            format!("{} sees {n} peers in {NET}", s.peer.name()),
            rust_net_peers(s).await as usize == n
        );
    }
}

fn go_saw(go: &Peer, op: &str, key: &str, value: Option<&str>) -> bool {
    go.table_events().iter().any(|e| {
        e.op == op
            && e.network == NET
            && e.table == TABLE
            && e.key == key
            && e.value.as_deref() == value
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_replicate_both_ways_and_a_leaving_go_node_takes_its_entries() {
    let go = go_node("g0");
    let mut r1 = sidecar("r1", None, go.addr(), true).await;
    let mut r2 = sidecar("r2", None, go.addr(), true).await;
    wait_network_formed(&go, &mut [&mut r1, &mut r2], 3).await;

    // Go writes; both sidecars see the create, the update, the delete.
    go.ndb_create(NET, TABLE, "from-go", "v1").unwrap();
    for s in [&mut r1, &mut r2] {
        eventually!(
            "from-go=v1 on rust",
            rust_get(s, "from-go").await.as_deref() == Some("v1")
        );
    }
    go.ndb_update(NET, TABLE, "from-go", "v2").unwrap();
    for s in [&mut r1, &mut r2] {
        eventually!(
            "from-go=v2 on rust",
            rust_get(s, "from-go").await.as_deref() == Some("v2")
        );
    }
    go.ndb_delete(NET, TABLE, "from-go").unwrap();
    for s in [&mut r1, &mut r2] {
        eventually!(
            "from-go deleted on rust",
            rust_get(s, "from-go").await.is_none()
        );
    }

    // A sidecar writes; Go's store and its watcher see each step, and so
    // does the other sidecar.
    r1.api.create_entry(write("from-rust", "a")).await.unwrap();
    eventually!(
        "from-rust=a on go",
        go.ndb_get(NET, TABLE, "from-rust").unwrap().as_deref() == Some("a")
    );
    eventually!(
        "from-rust=a on r2",
        rust_get(&mut r2, "from-rust").await.as_deref() == Some("a")
    );
    assert!(
        go_saw(&go, "create", "from-rust", Some("a")),
        "{:?}",
        go.table_events()
    );
    r1.api.update_entry(write("from-rust", "b")).await.unwrap();
    eventually!(
        "from-rust=b on go",
        go.ndb_get(NET, TABLE, "from-rust").unwrap().as_deref() == Some("b")
    );
    eventually!(
        "go watcher saw the update",
        go_saw(&go, "update", "from-rust", Some("b"))
    );
    r1.api
        .delete_entry(pb::DeleteEntryRequest {
            network: NET.into(),
            table: TABLE.into(),
            key: "from-rust".into(),
        })
        .await
        .unwrap();
    eventually!(
        "from-rust deleted on go",
        go.ndb_get(NET, TABLE, "from-rust").unwrap().is_none()
    );
    eventually!(
        "go watcher saw the delete",
        go_saw(&go, "delete", "from-rust", None)
    );
    eventually!(
        "from-rust deleted on r2",
        rust_get(&mut r2, "from-rust").await.is_none()
    );

    // A tombstone blocks a stale create: Go cannot resurrect the deleted
    // key by an update, but may create it again (a fresh Lamport time).
    assert!(go.ndb_update(NET, TABLE, "from-rust", "stale").is_err());
    go.ndb_create(NET, TABLE, "from-rust", "again").unwrap();
    for s in [&mut r1, &mut r2] {
        eventually!(
            "from-rust recreated by go",
            rust_get(s, "from-rust").await.as_deref() == Some("again")
        );
    }

    // Go leaves the network: the sidecars drop every entry it owns (no
    // tombstones forged for it) and keep their own.
    r2.api.create_entry(write("r2-own", "x")).await.unwrap();
    go.ndb_create(NET, TABLE, "go-leaving", "1").unwrap();
    for s in [&mut r1, &mut r2] {
        eventually!(
            "go-leaving on rust",
            rust_get(s, "go-leaving").await.is_some()
        );
    }
    eventually!(
        "r2-own on go",
        go.ndb_get(NET, TABLE, "r2-own").unwrap().is_some()
    );
    go.ndb_leave_network(NET).unwrap();
    for s in [&mut r1, &mut r2] {
        eventually!(
            "the left go node's entries dropped on rust",
            rust_get(s, "go-leaving").await.is_none() && rust_get(s, "from-rust").await.is_none()
        );
        eventually!("the network has two peers", rust_net_peers(s).await == 2);
        assert_eq!(rust_get(s, "r2-own").await.as_deref(), Some("x"));
    }

    // It joins again (bulk sync brings it the sidecars' entries), writes,
    // then leaves the cluster: its entries go and it is marked left.
    go.ndb_join_network(NET).unwrap();
    eventually!(
        "bulk sync on join brought r2-own to go",
        go.ndb_get(NET, TABLE, "r2-own").unwrap().as_deref() == Some("x")
    );
    go.ndb_create(NET, TABLE, "go-closing", "1").unwrap();
    for s in [&mut r1, &mut r2] {
        eventually!(
            "go-closing on rust",
            rust_get(s, "go-closing").await.is_some()
        );
    }
    go.leave(Duration::from_secs(5)).unwrap();
    for s in [&mut r1, &mut r2] {
        eventually!(
            "the closed go node's entries dropped on rust",
            rust_get(s, "go-closing").await.is_none()
        );
        let members = s
            .api
            .members(pb::MembersRequest {})
            .await
            .unwrap()
            .into_inner()
            .members;
        let g0 = members.iter().find(|m| m.name == "g0");
        assert!(g0.is_none_or(|m| m.state == "left"), "{members:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_owner_is_hidden_on_both_sides() {
    let mut go = go_node("g0");
    let mut r1 = sidecar("r1", None, go.addr(), true).await;
    let mut r2 = sidecar("r2", None, go.addr(), true).await;
    wait_network_formed(&go, &mut [&mut r1, &mut r2], 3).await;

    go.ndb_create(NET, TABLE, "of-go", "g").unwrap();
    r2.api.create_entry(write("of-r2", "r")).await.unwrap();
    eventually!(
        "of-r2 on go",
        go.ndb_get(NET, TABLE, "of-r2").unwrap().is_some()
    );
    eventually!("of-r2 on r1", rust_get(&mut r1, "of-r2").await.is_some());
    eventually!("of-go on r1", rust_get(&mut r1, "of-go").await.is_some());

    // A crashed sidecar's entries are hidden by Go and by the other sidecar
    // once memberlist declares it dead (not deleted, not tombstoned).
    r2.peer.kill();
    eventually!(
        "go hides the dead sidecar's entry",
        go.ndb_get(NET, TABLE, "of-r2").unwrap().is_none()
    );
    eventually!(
        "r1 hides the dead sidecar's entry",
        rust_get(&mut r1, "of-r2").await.is_none()
    );
    assert!(
        !go.ndb_list(NET, TABLE).unwrap().contains_key("of-r2"),
        "GetTableByNetwork shows a failed owner's entry"
    );

    // A crashed Go node's entries are hidden by the sidecar.
    go.kill();
    eventually!(
        "r1 hides the dead go node's entry",
        rust_get(&mut r1, "of-go").await.is_none()
    );
    let net = rust_net_health(&mut r1).await.expect("joined");
    assert!(
        net.hidden >= 2,
        "both failed owners' entries are kept hidden: {net:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_restarted_as_a_new_node_gets_the_tables_back_by_bulk_sync() {
    let go = go_node("g0");
    let mut r1 = sidecar("r1", None, go.addr(), true).await;
    let mut r2 = sidecar("r2", None, go.addr(), true).await;
    wait_network_formed(&go, &mut [&mut r1, &mut r2], 3).await;

    for i in 0..20 {
        go.ndb_create(NET, TABLE, &format!("go-{i}"), &format!("g{i}"))
            .unwrap();
        r2.api
            .create_entry(write(&format!("r2-{i}"), &format!("r{i}")))
            .await
            .unwrap();
    }
    r1.api.create_entry(write("r1-old", "old")).await.unwrap();
    eventually!(
        "r1 holds all 41 entries",
        rust_list(&mut r1).await.len() == 41
    );
    eventually!(
        "go holds r1-old",
        go.ndb_get(NET, TABLE, "r1-old").unwrap().is_some()
    );
    let expected: BTreeMap<String, String> = rust_list(&mut r1)
        .await
        .into_iter()
        .filter(|(k, _)| k != "r1-old")
        .collect();

    // Crash r1 and restart it as a new node at the same address, as a
    // restarted pod is (DESIGN.md); it joins the cluster, then the
    // network, whose join bulk-syncs with every member.
    let port: u16 = r1.peer.addr().rsplit_once(':').unwrap().1.parse().unwrap();
    r1.peer.kill();
    let mut r1b = sidecar("r1b", Some(port), go.addr(), false).await;
    eventually!(
        "r1b is a member of the cluster on go's side",
        go.members().unwrap().iter().any(|m| m.node == "r1b")
    );
    eventually!(
        "r1b has g0 and r2 as members",
        r1b.peer
            .members()
            .unwrap()
            .iter()
            .filter(|m| m.node == "g0" || m.node == "r2")
            .count()
            == 2
    );
    r1b.api
        .join_network(pb::NetworkRequest {
            network: NET.into(),
        })
        .await
        .unwrap();
    // The join's push/pull told r1b who is in the network (memberlist
    // merges node states before the state naming them), so the network
    // join bulk-syncs with g0 and r2 at once rather than waiting for a
    // periodic sync.
    let peers = rust_net_peers(&mut r1b).await;
    assert!(peers >= 3, "r1b knows g0 and r2 in {NET}: {peers} peers");
    eventually!(
        "bulk sync restored the table on r1b",
        rust_list(&mut r1b).await == expected,
        format!(
            "  expected: {expected:?}\n  r1b holds: {:?}\n{}\n{}",
            rust_list(&mut r1b).await,
            r1b.peer.report("r1b"),
            go.report("g0")
        )
    );

    // The new incarnation at the old address purged the old node on both
    // sides: its entry is gone, not hidden until the 24 h node reap.
    eventually!(
        "go purged r1's entry",
        go.ndb_get(NET, TABLE, "r1-old").unwrap().is_none()
    );
    eventually!(
        "r2 purged r1's entry",
        rust_get(&mut r2, "r1-old").await.is_none()
    );
    let net = rust_net_health(&mut r2).await.expect("joined");
    assert_eq!(net.hidden, 0, "{net:?}");

    // And it takes part as any other node.
    r1b.api.create_entry(write("r1b-new", "n")).await.unwrap();
    eventually!(
        "r1b-new on go",
        go.ndb_get(NET, TABLE, "r1b-new").unwrap().as_deref() == Some("n")
    );
    eventually!(
        "r1b-new on r2",
        rust_get(&mut r2, "r1b-new").await.as_deref() == Some("n")
    );
}
