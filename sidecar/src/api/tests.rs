use super::*;

#[tokio::test]
async fn listen_addresses_are_checked_with_typed_errors() {
    assert_eq!(
        "127.0.0.1:7947".parse::<Listen>().unwrap(),
        Listen::Tcp(([127, 0, 0, 1], 7947).into())
    );
    assert_eq!(
        "unix:/run/g.sock".parse::<Listen>().unwrap(),
        Listen::Unix("/run/g.sock".into())
    );
    assert!(matches!(
        "unix:".parse::<Listen>(),
        Err(ListenError::EmptyUnixPath)
    ));
    let e = "localhost".parse::<Listen>().unwrap_err();
    assert!(
        matches!(&e, ListenError::Address { value, .. } if value == "localhost"),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("neither IP:PORT nor unix:PATH"),
        "{e}"
    );
    // A taken port names the address.
    let first = Listener::bind(&"127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let Listener::Tcp(_, taken) = &first else {
        panic!("a TCP listener")
    };
    let e = Listener::bind(&Listen::Tcp(*taken)).await.unwrap_err();
    assert!(
        matches!(&e, ListenError::Bind { addr, .. } if addr == taken),
        "{e:?}"
    );
}

// ----- the service in process, on a node of the in-memory network -----

use std::time::Duration;

use tonic::Code;

use crate::runtime::{start_on, MemNetwork, WATCH_BUFFER};

async fn service() -> (Service, NodeHandle) {
    let net = MemNetwork::new();
    let cfg = crate::membership::Config::lan("a", "127.0.0.1:0".parse().unwrap());
    let (node, _events) = start_on(&net, cfg, "127.0.0.1:0".parse().unwrap(), 1)
        .await
        .unwrap();
    (Service::new(node.clone()), node)
}

fn write(network: &str, table: &str, key: &str, value: &[u8]) -> Request<pb::WriteEntryRequest> {
    Request::new(pb::WriteEntryRequest {
        network: network.into(),
        table: table.into(),
        key: key.into(),
        value: value.to_vec(),
    })
}

fn get(network: &str, table: &str, key: &str) -> Request<pb::GetEntryRequest> {
    Request::new(pb::GetEntryRequest {
        network: network.into(),
        table: table.into(),
        key: key.into(),
    })
}

fn network(network: &str) -> Request<pb::NetworkRequest> {
    Request::new(pb::NetworkRequest {
        network: network.into(),
    })
}

fn watch(network: &str, table: &str) -> Request<pb::WatchTableRequest> {
    Request::new(pb::WatchTableRequest {
        network: network.into(),
        table: table.into(),
    })
}

/// The status code of a failed call, checking that the message names
/// `offending`.
#[track_caller]
fn code<T>(r: Result<T, Status>, offending: &str) -> Code {
    let Err(s) = r else {
        panic!("the call succeeded; expected it to fail naming {offending:?}")
    };
    assert!(
        s.message().contains(offending),
        "{offending:?} not named: {s:?}"
    );
    s.code()
}

/// Bad input maps to the status its error class documents, names the
/// offending value, and changes nothing; a stopped node is Unavailable.
#[tokio::test(start_paused = true)]
async fn errors_map_to_their_grpc_codes() {
    let (api, node) = service().await;
    // Empty names: InvalidArgument.
    assert_eq!(
        code(api.join_network(network("")).await, "network id"),
        Code::InvalidArgument
    );
    assert_eq!(
        code(api.leave_network(network("")).await, "network id"),
        Code::InvalidArgument
    );
    // A network not joined: FailedPrecondition, for writes, reads and watches.
    let c = code(api.create_entry(write("n", "t", "k", b"v")).await, "\"n\"");
    assert_eq!(c, Code::FailedPrecondition);
    assert_eq!(
        code(api.get_entry(get("n", "t", "k")).await, "\"n\""),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(api.watch_table(watch("n", "t")).await, "\"n\""),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(api.leave_network(network("n")).await, "\"n\""),
        Code::FailedPrecondition
    );

    api.join_network(network("n")).await.unwrap();
    assert_eq!(
        code(api.join_network(network("n")).await, "\"n\""),
        Code::AlreadyExists
    );
    assert_eq!(
        code(
            api.create_entry(write("n", "", "k", b"v")).await,
            "table name"
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        code(api.create_entry(write("n", "t", "", b"v")).await, "key"),
        Code::InvalidArgument
    );
    assert_eq!(
        code(api.get_entry(get("n", "t", "")).await, "key"),
        Code::InvalidArgument
    );
    assert_eq!(
        code(api.watch_table(watch("n", "")).await, "table name"),
        Code::InvalidArgument
    );
    let huge = vec![0u8; 100_000];
    assert_eq!(
        code(
            api.create_entry(write("n", "t", "big", &huge)).await,
            "\"big\""
        ),
        Code::InvalidArgument
    );

    api.create_entry(write("n", "t", "k", b"v")).await.unwrap();
    assert_eq!(
        code(api.create_entry(write("n", "t", "k", b"w")).await, "\"k\""),
        Code::AlreadyExists
    );
    assert_eq!(
        code(api.update_entry(write("n", "t", "x", b"w")).await, "\"x\""),
        Code::NotFound
    );
    let del = pb::DeleteEntryRequest {
        network: "n".into(),
        table: "t".into(),
        key: "x".into(),
    };
    assert_eq!(
        code(api.delete_entry(Request::new(del)).await, "\"x\""),
        Code::NotFound
    );
    assert_eq!(
        code(api.get_entry(get("n", "t", "x")).await, "\"x\""),
        Code::NotFound
    );

    // None of it changed the table.
    let list = pb::ListTableRequest {
        network: "n".into(),
        table: "t".into(),
    };
    let entries = api
        .list_table(Request::new(list))
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].key.as_str(), entries[0].value.as_slice()),
        ("k", &b"v"[..])
    );

    node.shutdown();
    node.stopped().await;
    assert_eq!(
        code(api.get_entry(get("n", "t", "k")).await, "stopping"),
        Code::Unavailable
    );
    assert_eq!(
        code(api.join_network(network("m")).await, "stopping"),
        Code::Unavailable
    );
}

/// Creates `count` entries in one turn of the node's task, so a watcher
/// cannot read in between.
async fn burst(node: &NodeHandle, from: usize, count: usize) {
    node.call(move |n, now| {
        n.with_tables(now, |t, now| {
            for i in from..from + count {
                t.create_entry("n", "t", &format!("k{i}"), b"v".to_vec(), now)
                    .unwrap();
            }
        })
    })
    .await
    .unwrap();
}

async fn next(s: &mut WatchStream) -> Option<Result<pb::WatchEvent, Status>> {
    tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("the watch neither sent nor ended")
}

fn kind(ev: &pb::WatchEvent) -> pb::watch_event::Type {
    pb::watch_event::Type::try_from(ev.r#type).unwrap()
}

/// A watcher gets every change up to [`WATCH_BUFFER`] behind; one change
/// more and its watch ends with Aborted, saying how far behind it fell; a
/// new watch starts over from the current content.
#[tokio::test(start_paused = true)]
async fn a_watch_that_falls_behind_is_aborted_and_can_restart() {
    use pb::watch_event::Type;
    let (api, node) = service().await;
    api.join_network(network("n")).await.unwrap();

    let mut w = api.watch_table(watch("n", "t")).await.unwrap().into_inner();
    assert_eq!(kind(&next(&mut w).await.unwrap().unwrap()), Type::Synced);
    // Exactly as many changes as are buffered: all arrive, in order.
    burst(&node, 0, WATCH_BUFFER).await;
    for i in 0..WATCH_BUFFER {
        let ev = next(&mut w).await.unwrap().unwrap();
        assert_eq!(
            (kind(&ev), ev.key.as_str()),
            (Type::Created, format!("k{i}").as_str())
        );
    }
    // One more than the buffer holds: the watch ends, and says why.
    burst(&node, WATCH_BUFFER, WATCH_BUFFER + 1).await;
    let end = next(&mut w)
        .await
        .unwrap()
        .expect_err("the watch is aborted");
    assert_eq!(end.code(), Code::Aborted, "{end:?}");
    assert!(end.message().contains("fell 1 changes behind"), "{end:?}");
    assert!(next(&mut w).await.is_none(), "nothing follows the abort");

    let mut again = api.watch_table(watch("n", "t")).await.unwrap().into_inner();
    let mut existing = 0;
    loop {
        let ev = next(&mut again).await.unwrap().unwrap();
        match kind(&ev) {
            Type::Existing => existing += 1,
            Type::Synced => break,
            other => panic!("{other:?} before Synced"),
        }
    }
    assert_eq!(existing, 2 * WATCH_BUFFER + 1);
}
