//! The infos service in process, on a node of the in-memory network.

use std::time::Duration;

use gossamer_proto::infos::v1 as pb;
use pb::infos_server::Infos as _;
use tokio_stream::StreamExt;
use tonic::{Code, Request, Status};

use super::InfosService;
use crate::runtime::{start_on, MemNetwork, NodeHandle};

async fn service() -> (InfosService, NodeHandle) {
    let net = MemNetwork::new();
    let cfg = crate::membership::Config::lan("a", "127.0.0.1:0".parse().unwrap());
    let (node, _events) = start_on(&net, cfg, "127.0.0.1:0".parse().unwrap(), 1)
        .await
        .unwrap();
    (InfosService::new(node.clone()), node)
}

fn put(key: &str, value: &[u8], ttl_ms: u64) -> Request<pb::PutInfoRequest> {
    Request::new(pb::PutInfoRequest {
        key: key.into(),
        value: value.to_vec(),
        ttl_ms,
    })
}

fn group(prefix: &str, limit: u32, order: pb::Order) -> Request<pb::RegisterGroupRequest> {
    Request::new(pb::RegisterGroupRequest {
        prefix: prefix.into(),
        limit,
        order: order as i32,
    })
}

/// The status code of a failed call, checking that the message names
/// `offending`.
#[track_caller]
fn code<T: std::fmt::Debug>(r: Result<T, Status>, offending: &str) -> Code {
    let s = r.expect_err("the call succeeded");
    assert!(
        s.message().contains(offending),
        "{offending:?} not named: {s:?}"
    );
    s.code()
}

#[tokio::test(start_paused = true)]
async fn errors_name_the_bad_value_with_the_right_code() {
    let (api, node) = service().await;
    let inv = Code::InvalidArgument;
    assert_eq!(code(api.put_info(put("", b"v", 5000)).await, "empty"), inv);
    assert_eq!(code(api.put_info(put("k", b"v", 10)).await, "10ms"), inv);
    assert_eq!(
        code(
            api.put_info(put("k", b"v", 100 * 24 * 3600 * 1000)).await,
            "\"k\""
        ),
        inv
    );
    assert_eq!(
        code(api.put_info(put("k", &[0; 600], 5000)).await, "600 bytes"),
        inv
    );
    let long = "x".repeat(300);
    assert_eq!(
        code(api.put_info(put(&long, b"", 5000)).await, "300 bytes"),
        inv
    );
    assert_eq!(
        code(
            api.register_group(group("g/", 0, pb::Order::Max)).await,
            "limit 0"
        ),
        inv
    );
    assert_eq!(
        code(
            api.register_group(group("g/", 5000, pb::Order::Max)).await,
            "5000"
        ),
        inv
    );
    assert_eq!(
        code(
            api.register_group(group("g/", 5, pb::Order::Unspecified))
                .await,
            "\"g/\""
        ),
        inv
    );
    assert_eq!(
        code(
            api.register_group(group("", 5, pb::Order::Max)).await,
            "prefix is empty"
        ),
        inv
    );
    api.register_group(group("g/", 2, pb::Order::Max))
        .await
        .unwrap();
    assert_eq!(
        code(
            api.register_group(group("g/sub/", 2, pb::Order::Max)).await,
            "\"g/\""
        ),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(api.put_info(put("g/a", b"many", 5000)).await, "\"many\""),
        inv
    );
    api.put_info(put("g/a", b"5", 5000)).await.unwrap();
    api.put_info(put("g/b", b"6", 5000)).await.unwrap();
    assert_eq!(
        code(api.put_info(put("g/c", b"1", 5000)).await, "\"g/c\""),
        Code::FailedPrecondition
    );
    let get = |k: &str| Request::new(pb::GetInfoRequest { key: k.into() });
    assert_eq!(
        code(api.get_info(get("nope")).await, "\"nope\""),
        Code::NotFound
    );
    assert_eq!(code(api.get_info(get("")).await, "empty"), inv);
    let gg = |p: &str| Request::new(pb::GetGroupRequest { prefix: p.into() });
    assert_eq!(
        code(api.get_group(gg("h/")).await, "\"h/\""),
        Code::NotFound
    );
    node.shutdown();
    node.stopped().await;
    assert_eq!(
        api.put_info(put("k", b"v", 5000)).await.unwrap_err().code(),
        Code::Unavailable
    );
}

#[tokio::test(start_paused = true)]
async fn put_get_group_and_expiry() {
    let (api, _node) = service().await;
    let i = api
        .put_info(put("k", b"v", 2000))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((i.origin.as_str(), i.hops, i.ttl_ms), ("a", 0, 2000));
    assert!(i.origin_unix_ms > 1_700_000_000_000, "wall-clock millis");
    let got = api
        .get_info(Request::new(pb::GetInfoRequest { key: "k".into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, i);
    api.register_group(group("load/", 2, pb::Order::Min))
        .await
        .unwrap();
    for (k, v) in [("load/x", "3"), ("load/y", "1"), ("load/z", "2")] {
        api.put_info(put(k, v.as_bytes(), 60_000)).await.unwrap();
    }
    let g = api
        .get_group(Request::new(pb::GetGroupRequest {
            prefix: "load/".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let keys: Vec<&str> = g.infos.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["load/y", "load/z"]);
    assert_eq!((g.limit, g.order), (2, pb::Order::Min as i32));
    let st = api
        .status(Request::new(pb::StatusRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((st.infos, st.partitioned), (3, false));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let e = api
        .get_info(Request::new(pb::GetInfoRequest { key: "k".into() }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test(start_paused = true)]
async fn watch_gives_the_snapshot_then_changes_under_its_prefix() {
    let (api, _node) = service().await;
    api.put_info(put("a/1", b"x", 60_000)).await.unwrap();
    api.put_info(put("b/1", b"x", 60_000)).await.unwrap();
    let mut w = api
        .watch_infos(Request::new(pb::WatchInfosRequest {
            prefix: "a/".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let kind = |e: &pb::InfoEvent| pb::info_event::Type::try_from(e.r#type).unwrap();
    let e = w.next().await.unwrap().unwrap();
    assert_eq!(
        (kind(&e), e.info.unwrap().key.as_str()),
        (pb::info_event::Type::Existing, "a/1")
    );
    let e = w.next().await.unwrap().unwrap();
    assert_eq!(kind(&e), pb::info_event::Type::Synced);
    api.put_info(put("b/2", b"x", 60_000)).await.unwrap();
    api.put_info(put("a/2", b"y", 1000)).await.unwrap();
    let e = w.next().await.unwrap().unwrap();
    assert_eq!(
        (kind(&e), e.info.unwrap().key.as_str()),
        (pb::info_event::Type::Put, "a/2")
    );
    let e = w.next().await.unwrap().unwrap();
    assert_eq!(
        (kind(&e), e.info.unwrap().key.as_str()),
        (pb::info_event::Type::Expired, "a/2")
    );
}
