//! Sidecar processes with the local table API over real gRPC: a write on
//! one node appears on all (by Get and by Watch), an update and a delete
//! propagate, the batched write call works, and every error class of the
//! API has its status code and a message naming the bad value.

// Wall-clock deadlines: this drives real processes.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use gossamer_proto::tables::v1 as pb;
use gossamer_tests::{free_ports, Cluster, Flags, Kind};
use pb::tables_client::TablesClient;
use pb::watch_event::Type;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::Code;

const N: usize = 3;
const T: Duration = Duration::from_secs(30);
const NET: &str = "endpoints";
const TABLE: &str = "backends";

async fn client(port: u16) -> TablesClient<Channel> {
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

fn write(network: &str, table: &str, key: &str, value: &[u8]) -> pb::WriteEntryRequest {
    pb::WriteEntryRequest {
        network: network.into(),
        table: table.into(),
        key: key.into(),
        value: value.to_vec(),
    }
}

fn get(network: &str, table: &str, key: &str) -> pb::GetEntryRequest {
    pb::GetEntryRequest {
        network: network.into(),
        table: table.into(),
        key: key.into(),
    }
}

/// Waits until `key` reads `want` (None: absent) on every client.
async fn wait_value(clients: &mut [TablesClient<Channel>], key: &str, want: Option<&[u8]>) {
    let deadline = Instant::now() + T;
    for (i, c) in clients.iter_mut().enumerate() {
        loop {
            let got = match c.get_entry(get(NET, TABLE, key)).await {
                Ok(e) => Some(e.into_inner().value),
                Err(s) if s.code() == Code::NotFound => None,
                Err(s) => panic!("n{i}: get {key}: {s}"),
            };
            if got.as_deref() == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "n{i}: {key} is {got:?}, expected {want:?} within {T:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn assert_code<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, names: &[&str]) {
    let s = r.expect_err("the call should have failed");
    assert_eq!(s.code(), code, "{s:?}");
    for n in names {
        assert!(
            s.message().contains(n),
            "{:?} does not name {n:?}",
            s.message()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_sidecars_replicate_through_the_grpc_api_and_watch_sees_it() {
    let ports = free_ports(N);
    let c = Cluster::start_with(&[Kind::Rust; N], |i| {
        Flags::fast()
            .arg("--api-listen", format!("127.0.0.1:{}", ports[i]))
            .arg("--network", NET)
    })
    .unwrap();
    c.wait_all_see(N, T).unwrap();
    let mut clients = Vec::new();
    for p in &ports {
        clients.push(client(*p).await);
    }

    // Members and health over the API.
    let members = clients[0]
        .members(pb::MembersRequest {})
        .await
        .unwrap()
        .into_inner()
        .members;
    assert_eq!(members.len(), N, "{members:?}");
    let h = clients[1]
        .health(pb::HealthRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(h.node, "n1");
    assert!(h.networks.iter().any(|n| n.network == NET), "{h:?}");

    // An entry present before the watch starts comes first, then SYNCED.
    clients[0]
        .create_entry(write(NET, TABLE, "before", b"0"))
        .await
        .unwrap();
    wait_value(&mut clients, "before", Some(b"0")).await;
    let mut watch = clients[2]
        .watch_table(pb::WatchTableRequest {
            network: NET.into(),
            table: TABLE.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut next = async || {
        tokio::time::timeout(T, watch.next())
            .await
            .expect("a watch event in time")
            .expect("the watch is open")
            .expect("no error")
    };
    let e = next().await;
    assert_eq!((e.r#type(), e.key.as_str()), (Type::Existing, "before"));
    assert_eq!(next().await.r#type(), Type::Synced);

    // Create on n0, update on n1, delete on n2: every node sees each step,
    // and n2's watcher sees them in order.
    clients[0]
        .create_entry(write(NET, TABLE, "k", b"v1"))
        .await
        .unwrap();
    wait_value(&mut clients, "k", Some(b"v1")).await;
    let e = next().await;
    assert_eq!(
        (e.r#type(), e.key.as_str(), &e.value[..], e.owner.as_str()),
        (Type::Created, "k", &b"v1"[..], "n0")
    );
    clients[1]
        .update_entry(write(NET, TABLE, "k", b"v2"))
        .await
        .unwrap();
    wait_value(&mut clients, "k", Some(b"v2")).await;
    let e = next().await;
    assert_eq!(
        (e.r#type(), &e.value[..], &e.prev_value[..]),
        (Type::Updated, &b"v2"[..], &b"v1"[..])
    );
    clients[2]
        .delete_entry(pb::DeleteEntryRequest {
            network: NET.into(),
            table: TABLE.into(),
            key: "k".into(),
        })
        .await
        .unwrap();
    wait_value(&mut clients, "k", None).await;
    let e = next().await;
    assert_eq!((e.r#type(), e.key.as_str()), (Type::Deleted, "k"));

    // The batched call: 500 writes in 5 messages, one of which fails.
    let mut batches = Vec::new();
    for b in 0..5 {
        let writes = (0..100)
            .map(|i| pb::Write {
                op: pb::write::Op::Upsert as i32,
                network: NET.into(),
                table: TABLE.into(),
                key: format!("bulk-{:03}", b * 100 + i),
                value: b"x".to_vec(),
            })
            .collect();
        batches.push(pb::WriteBatch { writes });
    }
    batches[4].writes[99].network = "nowhere".into();
    let r = clients[1]
        .write_entries(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.applied, r.failed), (499, 1), "{r:?}");
    assert_eq!(r.failures[0].index, 499);
    assert_eq!(r.failures[0].code, Code::FailedPrecondition as i32);
    assert!(r.failures[0].message.contains("nowhere"));
    let deadline = Instant::now() + T;
    for (i, c) in clients.iter_mut().enumerate() {
        loop {
            let n = c
                .list_table(pb::ListTableRequest {
                    network: NET.into(),
                    table: TABLE.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .entries
                .len();
            if n == 500 {
                break;
            }
            assert!(Instant::now() < deadline, "n{i} lists {n} entries, not 500");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_class_has_its_status_and_names_the_bad_value() {
    let port = free_ports(1)[0];
    let c = Cluster::start(
        &[Kind::Rust],
        Flags::fast()
            .arg("--api-listen", format!("127.0.0.1:{port}"))
            .arg("--network", NET),
    )
    .unwrap();
    let mut api = client(port).await;

    // InvalidArgument: empty names, each named; an oversized value with the limit.
    assert_code(
        api.create_entry(write("", TABLE, "k", b"v")).await,
        Code::InvalidArgument,
        &["network id"],
    );
    assert_code(
        api.create_entry(write(NET, "", "k", b"v")).await,
        Code::InvalidArgument,
        &["table name"],
    );
    assert_code(
        api.create_entry(write(NET, TABLE, "", b"v")).await,
        Code::InvalidArgument,
        &["key"],
    );
    assert_code(
        api.create_entry(write(NET, TABLE, "big", &[7u8; 4000]))
            .await,
        Code::InvalidArgument,
        &["\"big\"", "over the limit of"],
    );
    assert_code(
        api.watch_table(pb::WatchTableRequest {
            network: NET.into(),
            table: String::new(),
        })
        .await,
        Code::InvalidArgument,
        &["table name"],
    );

    // FailedPrecondition: the network is not joined (writes, reads, watch).
    assert_code(
        api.create_entry(write("other", TABLE, "k", b"v")).await,
        Code::FailedPrecondition,
        &["\"other\"", "not joined"],
    );
    assert_code(
        api.get_entry(get("other", TABLE, "k")).await,
        Code::FailedPrecondition,
        &["\"other\""],
    );
    assert_code(
        api.watch_table(pb::WatchTableRequest {
            network: "other".into(),
            table: TABLE.into(),
        })
        .await,
        Code::FailedPrecondition,
        &["\"other\""],
    );
    assert_code(
        api.leave_network(pb::NetworkRequest {
            network: "other".into(),
        })
        .await,
        Code::FailedPrecondition,
        &["\"other\""],
    );

    // NotFound: get, update and delete of a missing entry.
    assert_code(
        api.get_entry(get(NET, TABLE, "missing")).await,
        Code::NotFound,
        &["\"missing\"", TABLE, NET],
    );
    assert_code(
        api.update_entry(write(NET, TABLE, "missing", b"v")).await,
        Code::NotFound,
        &["\"missing\""],
    );

    // AlreadyExists: create twice; join a joined network.
    api.create_entry(write(NET, TABLE, "k", b"v"))
        .await
        .unwrap();
    assert_code(
        api.create_entry(write(NET, TABLE, "k", b"v")).await,
        Code::AlreadyExists,
        &["\"k\""],
    );
    assert_code(
        api.join_network(pb::NetworkRequest {
            network: NET.into(),
        })
        .await,
        Code::AlreadyExists,
        &[NET],
    );

    // Joining makes the network usable; leaving makes it refuse again.
    api.join_network(pb::NetworkRequest {
        network: "other".into(),
    })
    .await
    .unwrap();
    api.create_entry(write("other", TABLE, "k", b"v"))
        .await
        .unwrap();
    api.leave_network(pb::NetworkRequest {
        network: "other".into(),
    })
    .await
    .unwrap();
    assert_code(
        api.get_entry(get("other", TABLE, "k")).await,
        Code::FailedPrecondition,
        &["\"other\""],
    );
    drop(c);
}

/// The local API carries the standard health service (Kubernetes gRPC
/// probes) and server reflection (grpcurl), beside the table service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_api_answers_health_checks_and_reflection() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let port = free_ports(1)[0];
    let c = Cluster::start(
        &[Kind::Rust],
        Flags::fast().arg("--api-listen", format!("127.0.0.1:{port}")),
    )
    .unwrap();
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    let mut health = HealthClient::new(channel.clone());
    for service in ["", "gossamer.tables.v1.Tables"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "service {service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let mut reflection = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::once(req))
        .await
        .unwrap()
        .into_inner();
    let first = answers.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        panic!("not a service list: {first:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in ["gossamer.tables.v1.Tables", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    // Only what this server serves: the control stream is the operator's.
    assert!(!names.iter().any(|n| n.contains("control")), "{names:?}");
    // The descriptors are served too: grpcurl can describe the API.
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "gossamer.tables.v1.Tables".into(),
        )),
    };
    let mut answers = ServerReflectionClient::new(
        Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
    .server_reflection_info(tokio_stream::once(req))
    .await
    .unwrap()
    .into_inner();
    let r = answers.next().await.unwrap().unwrap();
    assert!(
        matches!(r.message_response, Some(MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()),
        "{r:?}"
    );
    drop(c);
}
