//! The snapshot builder and versions, as pure functions: examples and
//! properties (any sequence of object changes yields strictly increasing
//! versions; identical content yields no new version).

use std::collections::BTreeMap;

use gossamer_operator_api::FromMembers;
use gossamer_operator_core::{
    build_snapshot, ClusterRef, ClusterState, GossipSettings, KeyInput, KeyMaterial, KeyState,
    Member, NetworkInput, PeersInput, Versioner,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use proptest::prelude::*;

fn cluster() -> ClusterRef {
    ClusterRef {
        namespace: "shop".into(),
        name: "default".into(),
    }
}

fn member(i: u32, app: &str) -> Member {
    Member {
        name: format!("pod-{i}"),
        labels: BTreeMap::from([("app".to_string(), app.to_string())]),
        ip: Some(format!("10.1.0.{i}")),
        ready: i.is_multiple_of(2),
        started: Some(format!("2026-11-01T00:00:{:02}Z", 59 - i % 60)),
    }
}

fn network(name: &str, app: &str, tables: &[&str]) -> NetworkInput {
    NetworkInput {
        name: name.into(),
        uid: format!("uid-{name}"),
        selector: LabelSelector {
            match_labels: Some(BTreeMap::from([("app".to_string(), app.to_string())])),
            ..Default::default()
        },
        tables: tables.iter().map(|s| s.to_string()).collect(),
    }
}

fn key(name: &str, day: u32, byte: u8) -> KeyInput {
    KeyInput {
        name: name.into(),
        created: format!("2026-11-{day:02}T00:00:00Z"),
        deleting: false,
        material: KeyMaterial::new(vec![byte; 32], "shop", name, "key"),
    }
}

#[test]
fn a_snapshot_carries_keys_networks_members_and_peers() {
    let state = ClusterState {
        networks: vec![
            network("endpoints", "checkout", &["backends", "health"]),
            network("empty", "none", &[]),
        ],
        keys: vec![key("k1", 2, 1), key("k0", 1, 0)],
        peers: vec![PeersInput {
            name: "seeds".into(),
            static_peers: vec!["seed.shop.svc:7946".into()],
            from_members: Some(FromMembers { count: 2 }),
        }],
        members: (0..6)
            .map(|i| member(i, if i < 4 { "checkout" } else { "other" }))
            .collect(),
        ..Default::default()
    };
    let s = build_snapshot(&cluster(), &state, &GossipSettings::default());
    assert_eq!(s.label, "shop/default");
    // Keys oldest first; members have not reported holding k1 yet, so the
    // older k0 stays primary.
    assert_eq!(
        s.keys
            .iter()
            .map(|k| (k.name.as_str(), k.state))
            .collect::<Vec<_>>(),
        [("k0", KeyState::Primary), ("k1", KeyState::Secondary)]
    );
    assert_eq!(s.networks[0].name, "empty");
    assert!(s.networks[0].members.is_empty());
    assert_eq!(s.networks[1].members, ["pod-0", "pod-1", "pod-2", "pod-3"]);
    assert_eq!(s.networks[1].tables, ["backends", "health"]);
    assert_eq!(s.networks[1].id.len(), 12);
    // Static first; then ready members, longest-lived first (pod-4 started
    // before pod-2, which started before pod-0).
    assert_eq!(
        s.peers,
        ["seed.shop.svc:7946", "10.1.0.4:7946", "10.1.0.2:7946"]
    );
    // Key bytes never reach the serialized content.
    let json = serde_json::to_string(&s).unwrap();
    assert!(!json.contains("bytes"), "{json}");
    assert!(format!("{s:?}").contains("<32 key bytes>"));
}

#[test]
fn an_invalid_network_is_left_out_and_the_rest_stays() {
    let mut bad = network("bad", "x", &["t"]);
    bad.selector.match_expressions = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
            key: "app".into(),
            operator: "Like".into(),
            values: None,
        },
    ]);
    let state = ClusterState {
        networks: vec![bad, network("good", "x", &["t"])],
        ..Default::default()
    };
    let s = build_snapshot(&cluster(), &state, &GossipSettings::default());
    assert_eq!(
        s.networks
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>(),
        ["good"]
    );
}

/// One change to a cluster's objects.
#[derive(Debug, Clone)]
enum Op {
    AddNetwork(u8),
    DeleteNetwork(u8),
    SetTables(u8, u8),
    AddMember(u8),
    DeleteMember(u8),
    Relabel(u8),
    AddKey(u8),
    DeleteKey(u8),
    SetPeers(u8),
    /// Touches nothing the snapshot carries (a resync, a status write).
    Nothing,
    /// Restarts the operator: the versioner resumes from the stored stamp.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..4).prop_map(Op::AddNetwork),
        (0u8..4).prop_map(Op::DeleteNetwork),
        (0u8..4, 0u8..4).prop_map(|(n, t)| Op::SetTables(n, t)),
        (0u8..12).prop_map(Op::AddMember),
        (0u8..12).prop_map(Op::DeleteMember),
        (0u8..12).prop_map(Op::Relabel),
        (0u8..3).prop_map(Op::AddKey),
        (0u8..3).prop_map(Op::DeleteKey),
        (0u8..3).prop_map(Op::SetPeers),
        Just(Op::Nothing),
        Just(Op::Restart),
    ]
}

fn apply(state: &mut ClusterState, op: &Op) {
    match *op {
        Op::AddNetwork(n) => {
            let name = format!("net{n}");
            if !state.networks.iter().any(|x| x.name == name) {
                state
                    .networks
                    .push(network(&name, if n % 2 == 0 { "a" } else { "b" }, &["t0"]));
            }
        }
        Op::DeleteNetwork(n) => state.networks.retain(|x| x.name != format!("net{n}")),
        Op::SetTables(n, t) => {
            if let Some(x) = state
                .networks
                .iter_mut()
                .find(|x| x.name == format!("net{n}"))
            {
                x.tables = (0..=t).map(|i| format!("t{i}")).collect();
            }
        }
        Op::AddMember(m) => {
            if !state.members.iter().any(|x| x.name == format!("pod-{m}")) {
                state.members.push(member(m.into(), "a"));
            }
        }
        Op::DeleteMember(m) => state.members.retain(|x| x.name != format!("pod-{m}")),
        Op::Relabel(m) => {
            if let Some(x) = state
                .members
                .iter_mut()
                .find(|x| x.name == format!("pod-{m}"))
            {
                let app = x.labels.get("app").cloned().unwrap_or_default();
                x.labels.insert(
                    "app".into(),
                    if app == "a" { "b".into() } else { "a".into() },
                );
            }
        }
        Op::AddKey(k) => {
            if !state.keys.iter().any(|x| x.name == format!("k{k}")) {
                state.keys.push(key(&format!("k{k}"), u32::from(k) + 1, k));
            }
        }
        Op::DeleteKey(k) => state.keys.retain(|x| x.name != format!("k{k}")),
        Op::SetPeers(c) => {
            state.peers = vec![PeersInput {
                name: "seeds".into(),
                static_peers: vec![],
                from_members: (c > 0).then_some(FromMembers { count: c }),
            }]
        }
        Op::Nothing | Op::Restart => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn versions_only_grow_and_only_when_content_changes(ops in prop::collection::vec(op(), 1..60)) {
        let mut state = ClusterState::default();
        let mut versioner = Versioner::default();
        // What is "stored in the API": the last committed stamp.
        let mut stored = None;
        let mut prev_hash = None::<String>;
        for op in &ops {
            if let Op::Restart = op {
                versioner = Versioner::resume(stored.clone());
            }
            apply(&mut state, op);
            let snap = build_snapshot(&cluster(), &state, &GossipSettings::default());
            let hash = snap.content_hash();
            let before = versioner.last().map(|s| s.version);
            match versioner.next(&hash) {
                Some(stamp) => {
                    prop_assert!(Some(&hash) != prev_hash.as_ref(), "a new version for identical content after {op:?}");
                    prop_assert!(Some(stamp.version) > before, "version {} not above {before:?}", stamp.version);
                    stored = Some(stamp.clone());
                    versioner.commit(stamp);
                }
                None => prop_assert_eq!(Some(&hash), prev_hash.as_ref(), "changed content got no version after {:?}", op),
            }
            // Building again from the same state, with inputs in another
            // order, gives the same content.
            let mut shuffled = state.clone();
            shuffled.networks.reverse();
            shuffled.members.reverse();
            shuffled.keys.reverse();
            prop_assert_eq!(build_snapshot(&cluster(), &shuffled, &GossipSettings::default()).content_hash(), hash.clone());
            prev_hash = Some(hash);
        }
    }
}
