//! Cluster-wide infos in mixed clusters: Gossamer sidecars put infos and
//! groups (and keep the cluster sentinel) beside real Go NetworkDB
//! (moby v2.0.0-beta.24) and Go memberlist (v0.7.0) peers. The infos reach
//! every sidecar, the Go peers keep working (table entries replicate both
//! ways, nobody is declared dead), and their logs show no error about the
//! infos: they ride in a NetworkDB envelope field that Go's decoder skips
//! (see `gossamer_core::infos::codec`).

// Wall-clock deadlines: this drives real processes.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use gossamer_proto::infos::v1 as ipb;
use gossamer_proto::tables::v1 as pb;
use gossamer_tests::{free_ports, Flags, Kind, MemberState, Peer};
use ipb::infos_client::InfosClient;
use pb::tables_client::TablesClient;
use tonic::transport::Channel;

const NET: &str = "endpoints";
const TABLE: &str = "backends";
const T: Duration = Duration::from_secs(60);

macro_rules! eventually {
    ($what:expr, $cond:expr) => {{
        let start = Instant::now();
        loop {
            if $cond {
                eprintln!("{:>6.1}s  {}", start.elapsed().as_secs_f64(), $what);
                break;
            }
            if start.elapsed() >= T {
                panic!("not within {T:?}: {}", $what);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }};
}

struct Sidecar {
    peer: Peer,
    channel: Channel,
}

impl Sidecar {
    fn infos(&self) -> InfosClient<Channel> {
        InfosClient::new(self.channel.clone())
    }
    fn tables(&self) -> TablesClient<Channel> {
        TablesClient::new(self.channel.clone())
    }
}

async fn channel(port: u16) -> Channel {
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    loop {
        match Channel::from_shared(url.clone()).unwrap().connect().await {
            Ok(c) => return c,
            Err(e) if start.elapsed() > T => panic!("cannot connect to {url}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A sidecar seeded with `seed`, serving the API, with a short sentinel
/// TTL so that the sentinel is rewritten often during the test.
async fn sidecar(name: &str, seed: &str, base: Flags) -> Sidecar {
    let api_port = free_ports(1)[0];
    let flags = base
        .seed(seed)
        .arg("--api-listen", format!("127.0.0.1:{api_port}"))
        .arg("--sentinel-ttl-ms", 6000);
    let peer = Peer::spawn(Kind::Rust, name, flags).unwrap();
    let channel = channel(api_port).await;
    Sidecar { peer, channel }
}

fn put(key: &str, value: &str) -> ipb::PutInfoRequest {
    ipb::PutInfoRequest {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        ttl_ms: 120_000,
    }
}

async fn has_info(s: &Sidecar, key: &str) -> bool {
    s.infos()
        .get_info(ipb::GetInfoRequest { key: key.into() })
        .await
        .is_ok()
}

/// Puts plain infos and a group on every sidecar, and waits until each
/// sidecar holds every plain info and the same group.
async fn use_infos(sidecars: &[&Sidecar]) {
    for s in sidecars {
        s.infos()
            .register_group(ipb::RegisterGroupRequest {
                prefix: "load/".into(),
                limit: 2,
                order: ipb::Order::Max as i32,
            })
            .await
            .unwrap();
    }
    for (i, s) in sidecars.iter().enumerate() {
        for k in 0..20 {
            s.infos()
                .put_info(put(&format!("info/{}/{k}", s.peer.name()), "x"))
                .await
                .unwrap();
        }
        s.infos()
            .put_info(put(
                &format!("load/{}", s.peer.name()),
                &(i * 10).to_string(),
            ))
            .await
            .unwrap();
    }
    for s in sidecars {
        for o in sidecars {
            let key = format!("info/{}/19", o.peer.name());
            eventually!(
                format!("{} holds {key}", s.peer.name()),
                has_info(s, &key).await
            );
        }
        eventually!(
            format!("{} holds the group's best 2", s.peer.name()),
            s.infos()
                .get_group(ipb::GetGroupRequest {
                    prefix: "load/".into()
                })
                .await
                .unwrap()
                .into_inner()
                .infos
                .len()
                == 2
        );
        let st = s
            .infos()
            .status(ipb::StatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(!st.partitioned, "{}: {st:?}", s.peer.name());
    }
}

/// Lines of a Go peer's log that report an error.
fn error_lines(p: &Peer) -> Vec<String> {
    std::fs::read_to_string(p.log_path())
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("[err]")
                || l.contains("level=error")
                || l.contains("unknown message type")
                || l.contains("error decoding")
                || l.contains("invalid message type")
        })
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infos_pass_a_go_networkdb_node_unseen_and_tables_keep_working() {
    let go = Peer::spawn(Kind::GoNetworkDb, "g0", Flags::new().network(NET)).unwrap();
    let r1 = sidecar("r1", go.addr(), Flags::new().network(NET)).await;
    let r2 = sidecar("r2", go.addr(), Flags::new().network(NET)).await;
    eventually!(
        "g0 sees 3 peers in the network",
        go.ndb_peers(NET).unwrap().len() == 3
    );
    use_infos(&[&r1, &r2]).await;
    // Table entries still replicate both ways.
    go.ndb_create(NET, TABLE, "from-go", "v1").unwrap();
    let get = |key: &str| pb::GetEntryRequest {
        network: NET.into(),
        table: TABLE.into(),
        key: key.into(),
    };
    for s in [&r1, &r2] {
        eventually!(
            format!("from-go on {}", s.peer.name()),
            s.tables().get_entry(get("from-go")).await.is_ok()
        );
    }
    r2.tables()
        .create_entry(pb::WriteEntryRequest {
            network: NET.into(),
            table: TABLE.into(),
            key: "from-rust".into(),
            value: b"a".to_vec(),
        })
        .await
        .unwrap();
    eventually!(
        "from-rust on g0",
        go.ndb_get(NET, TABLE, "from-rust").unwrap().as_deref() == Some("a")
    );
    // Keep gossiping infos (and the sentinel) for a few push/pull rounds.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(go.ndb_peers(NET).unwrap().len(), 3);
    let errors = error_lines(&go);
    assert!(
        errors.is_empty(),
        "g0 logged errors:\n{}",
        errors.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infos_pass_go_memberlist_peers_unseen() {
    let g0 = Peer::spawn(Kind::Go, "g0", Flags::fast()).unwrap();
    let g1 = Peer::spawn(Kind::Go, "g1", Flags::fast().seed(g0.addr())).unwrap();
    let r1 = sidecar("r1", g0.addr(), Flags::fast()).await;
    let r2 = sidecar("r2", g1.addr(), Flags::fast()).await;
    for p in [&g0, &g1, &r1.peer, &r2.peer] {
        p.wait_for(
            |v| {
                v.members
                    .values()
                    .filter(|m| m.state == MemberState::Alive)
                    .count()
                    == 4
            },
            T,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", p.name()));
    }
    use_infos(&[&r1, &r2]).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    for g in [&g0, &g1] {
        let alive = g
            .members()
            .unwrap()
            .into_iter()
            .filter(|m| m.state == MemberState::Alive)
            .count();
        assert_eq!(alive, 4, "{}", g.report("members after the infos"));
        let errors = error_lines(g);
        assert!(
            errors.is_empty(),
            "{} logged errors:\n{}",
            g.name(),
            errors.join("\n")
        );
    }
}
