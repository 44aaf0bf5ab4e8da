// The clock is read once per test, as the arbitrary origin of time.
#![allow(clippy::disallowed_methods)]

use super::*;
use proptest::prelude::*;

const T0: u64 = 1_800_000_000_000;

fn infos(name: &str, now: Instant) -> Infos {
    Infos::new(Config::new(name), now, T0)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// What `a` would send `b` in push/pull, received by `b`.
fn push(a: &Infos, b: &mut Infos, now: Instant) -> usize {
    let state = codec::append_to_state(vec![8, 4], &a.local_state());
    b.handle_infos(codec::decode(&state).unwrap_or_default(), now)
}

#[test]
fn newer_wins_then_fewer_hops_then_origin() {
    let base = Info {
        key: "k".into(),
        value: b"v".to_vec(),
        origin: "a".into(),
        origin_ms: 10,
        ttl_ms: 1000,
        hops: 3,
    };
    let newer = Info {
        origin_ms: 11,
        hops: 9,
        ..base.clone()
    };
    let closer = Info {
        hops: 1,
        ..base.clone()
    };
    let other = Info {
        origin: "b".into(),
        ..base.clone()
    };
    assert!(newer.supersedes(&base) && !base.supersedes(&newer));
    assert!(closer.supersedes(&base) && !base.supersedes(&closer));
    assert!(other.supersedes(&base) && !base.supersedes(&other));
    assert!(!base.supersedes(&base));
}

#[test]
fn put_get_expire_and_hops() {
    let t = Instant::now();
    let mut a = infos("a", t);
    let mut b = infos("b", t);
    a.put("cluster", b"c1".to_vec(), secs(10), t).unwrap();
    assert_eq!(push(&a, &mut b, t), 1);
    let got = b.get("cluster", t).unwrap();
    assert_eq!((got.hops, got.origin.as_str(), got.origin_ms), (1, "a", T0));
    assert_eq!(b.stats().max_hops, 1);
    assert_eq!(b.stats().infos, 1);
    // The same info again is not news.
    assert_eq!(push(&a, &mut b, t), 0);
    // A timer is asked for at the expiry, and it drops the info.
    assert_eq!(b.poll_timeout(), Some(t + secs(10)));
    b.handle_timeout(t + secs(10));
    assert!(b.get("cluster", t + secs(10)).is_none());
    assert_eq!(b.stats().expired, 1);
    assert!(b.is_empty());
    // An expired info that arrives is ignored.
    assert_eq!(push(&a, &mut b, t + secs(11)), 0);
    assert!(b.is_empty());
    let events: Vec<InfoChange> = std::iter::from_fn(|| b.poll_event())
        .map(|e| e.change)
        .collect();
    assert_eq!(events, [InfoChange::Put, InfoChange::Expired]);
}

#[test]
fn local_writes_always_take_effect_even_if_the_clock_steps_back() {
    let t = Instant::now();
    let mut a = infos("a", t);
    let first = a.put("k", b"1".to_vec(), secs(60), t).unwrap();
    a.set_wall_clock(t + secs(1), T0 - 5_000);
    let second = a.put("k", b"2".to_vec(), secs(60), t + secs(1)).unwrap();
    assert!(second.origin_ms > first.origin_ms);
    assert_eq!(a.get("k", t + secs(1)).unwrap().value, b"2");
}

#[test]
fn bad_input_is_refused_with_the_value_named() {
    let t = Instant::now();
    let mut a = infos("a", t);
    assert_eq!(a.put("", vec![], secs(5), t), Err(InfosError::EmptyKey));
    let e = a.put("k", vec![0; 513], secs(5), t).unwrap_err();
    assert!(e.to_string().contains("513 bytes"), "{e}");
    let e = a
        .put("k", vec![], Duration::from_millis(10), t)
        .unwrap_err();
    assert!(matches!(e, InfosError::TtlOutOfRange { .. }), "{e}");
    let e = a.put(&"x".repeat(300), vec![], secs(5), t).unwrap_err();
    assert!(matches!(e, InfosError::KeyTooLong { len: 300, .. }), "{e}");
    a.register_group("load/", 2, GroupOrder::Max, t).unwrap();
    let e = a.put("load/a", b"lots".to_vec(), secs(5), t).unwrap_err();
    assert!(e.to_string().contains("\"lots\""), "{e}");
    for (p, l) in [("", 1), ("x/", 0), ("x/", 1001)] {
        assert!(a.register_group(p, l, GroupOrder::Min, t).is_err());
    }
    let e = a
        .register_group("load/x", 3, GroupOrder::Min, t)
        .unwrap_err();
    assert!(matches!(e, InfosError::PrefixOverlap { .. }), "{e}");
    let e = a.register_group("lo", 3, GroupOrder::Min, t).unwrap_err();
    assert!(e.to_string().contains("\"load/\""), "{e}");
    assert!(matches!(
        a.group("nope", t),
        Err(InfosError::NoSuchGroup { .. })
    ));
    // Re-registering the same prefix changes its settings.
    a.register_group("load/", 3, GroupOrder::Min, t).unwrap();
    assert_eq!(a.group("load/", t).unwrap().0.limit, 3);
    assert!(a.is_empty());
}

#[test]
fn a_group_keeps_its_best_and_refuses_worse_writes() {
    let t = Instant::now();
    let mut a = infos("a", t);
    a.register_group("cap/", 2, GroupOrder::Max, t).unwrap();
    a.put("cap/n1", b"5".to_vec(), secs(60), t).unwrap();
    a.put("cap/n2", b"7".to_vec(), secs(60), t).unwrap();
    let e = a.put("cap/n3", b"1".to_vec(), secs(60), t).unwrap_err();
    assert!(matches!(e, InfosError::BelowGroupLimit { limit: 2, .. }));
    a.put("cap/n4", b"9.5".to_vec(), secs(60), t).unwrap();
    let (_, members) = a.group("cap/", t).unwrap();
    let keys: Vec<&str> = members.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["cap/n4", "cap/n2"]);
    assert_eq!(a.stats().evicted, 1);
    // Lowering a member's own value keeps it when it still ranks.
    a.put("cap/n4", b"6".to_vec(), secs(60), t).unwrap();
    assert_eq!(a.group("cap/", t).unwrap().1.len(), 2);
    // Registering a smaller limit cuts at once; a MIN group keeps the least.
    a.register_group("cap/", 1, GroupOrder::Min, t).unwrap();
    let (_, members) = a.group("cap/", t).unwrap();
    assert_eq!(members[0].key, "cap/n4");
    assert_eq!(members.len(), 1);
}

#[test]
fn remote_infos_out_of_range_are_counted_not_stored() {
    let t = Instant::now();
    let mut a = infos("a", t);
    a.register_group("g/", 1, GroupOrder::Min, t).unwrap();
    let ok = Info {
        key: "k".into(),
        value: vec![],
        origin: "b".into(),
        origin_ms: T0,
        ttl_ms: 1000,
        hops: 0,
    };
    let bad = vec![
        Info {
            key: String::new(),
            ..ok.clone()
        },
        Info {
            value: vec![1; 600],
            ..ok.clone()
        },
        Info {
            ttl_ms: u64::MAX,
            ..ok.clone()
        },
        Info {
            origin: String::new(),
            ..ok.clone()
        },
        Info {
            key: "g/x".into(),
            value: b"NaN".to_vec(),
            ..ok.clone()
        },
    ];
    assert_eq!(a.handle_infos(bad, t), 0);
    assert_eq!(a.stats().malformed, 5);
    assert_eq!(
        a.handle_infos(
            vec![Info {
                hops: u32::MAX,
                ..ok
            }],
            t
        ),
        1
    );
    assert_eq!(a.get("k", t).unwrap().hops, u32::MAX);
}

#[test]
fn codec_rides_unseen_in_networkdb_envelopes() {
    use crate::tables::codec::{self as nc, Decoded};
    let info = Info {
        key: "k".into(),
        value: b"v".to_vec(),
        origin: "a".into(),
        origin_ms: T0,
        ttl_ms: 5000,
        hops: 2,
    };
    let msg = codec::encode_message(std::slice::from_ref(&info));
    assert_eq!(codec::message_len(&info), msg.len());
    // NetworkDB reads an empty compound.
    assert_eq!(nc::decode(&msg).unwrap(), Decoded::Compound(vec![]));
    assert!(codec::is_infos_only(&msg));
    assert_eq!(codec::decode(&msg).unwrap(), vec![info.clone()]);
    // Push/pull state stays NetworkDB's, with the infos beside it.
    let pp = crate::tables::proto::NetworkPushPull {
        l_time: 4,
        node_name: "a".into(),
        ..Default::default()
    };
    let state = nc::encode_push_pull(&pp);
    let both = codec::append_to_state(state.clone(), std::slice::from_ref(&info));
    assert_eq!(nc::decode(&both).unwrap(), Decoded::PushPull(pp));
    assert_eq!(codec::decode(&both).unwrap(), vec![info]);
    assert!(!codec::is_infos_only(&both));
    assert_eq!(codec::decode(&state), None);
    assert_eq!(codec::decode(b"\xff\xff"), None);
}

#[test]
fn broadcasts_are_transmit_limited_and_replaced_by_key() {
    let t = Instant::now();
    let mut a = infos("a", t);
    a.set_cluster_size(9);
    a.put("k", b"1".to_vec(), secs(60), t).unwrap();
    a.put("k", b"2".to_vec(), secs(60), t).unwrap();
    let mut sent = Vec::new();
    for _ in 0..20 {
        sent.extend(a.get_broadcasts(2, 1400));
    }
    // retransmit_mult 4 * ceil(log10(10)) = 4 sends, raised to the floor
    // of 12, of the latest only.
    assert_eq!(sent.len(), 12);
    for m in &sent {
        assert_eq!(codec::decode(m).unwrap()[0].value, b"2");
    }
    // Above the floor memberlist's rule counts: 4 * ceil(log10(1001)) = 16.
    let mut b = infos("b", t);
    b.set_cluster_size(1000);
    b.put("k", b"1".to_vec(), secs(60), t).unwrap();
    let mut sent = 0;
    for _ in 0..30 {
        sent += b.get_broadcasts(2, 1400).len();
    }
    assert_eq!(sent, 16);
}

#[test]
fn a_refreshed_key_is_relayed_memberlists_count_without_the_floor() {
    let t = Instant::now();
    let mut a = infos("a", t);
    a.set_cluster_size(64);
    a.set_refreshed("sentinel");
    a.put("sentinel", b"c".to_vec(), secs(60), t).unwrap();
    a.put("other", b"1".to_vec(), secs(60), t).unwrap();
    // Received from a peer: relayed the same way.
    let mut b = infos("b", t);
    b.set_cluster_size(64);
    b.set_refreshed("sentinel");
    push(&a, &mut b, t);
    for node in [&mut a, &mut b] {
        let (mut sentinel, mut other) = (0, 0);
        for _ in 0..30 {
            for m in node.get_broadcasts(2, 1400) {
                match codec::decode(&m).unwrap()[0].key.as_str() {
                    "sentinel" => sentinel += 1,
                    _ => other += 1,
                }
            }
        }
        // 4 * ceil(log10(65)) = 8; the floor of 12 for the other.
        assert_eq!((sentinel, other), (8, 12));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Nodes that register the same group and exchange push/pull state in
    /// any order end with identical contents, never above the limit.
    #[test]
    fn groups_converge_and_stay_within_the_limit(
        writes in prop::collection::vec((0usize..4, 0u8..12, -50i32..50), 1..40),
        limit in 1usize..5,
        max in any::<bool>(),
        rounds in prop::collection::vec((0usize..4, 0usize..4), 0..30),
    ) {
        let t = Instant::now();
        let order = if max { GroupOrder::Max } else { GroupOrder::Min };
        let mut nodes: Vec<Infos> = (0..4).map(|i| infos(&format!("n{i}"), t)).collect();
        for n in &mut nodes {
            n.register_group("g/", limit, order, t).unwrap();
        }
        let mut latest = BTreeMap::new();
        for (i, (node, key, v)) in writes.iter().enumerate() {
            let now = t + Duration::from_millis(i as u64 * 10);
            let key = format!("g/{key}");
            if nodes[*node].put(&key, v.to_string().into_bytes(), secs(600), now).is_ok() {
                latest.insert(key, *v);
            }
        }
        let now = t + secs(1);
        for (a, b) in rounds {
            let (a, b) = (a.min(3), b.min(3));
            if a != b {
                let src = nodes[a].local_state();
                nodes[b].handle_infos(src, now);
            }
            for n in &nodes {
                prop_assert!(n.group("g/", now).unwrap().1.len() <= limit);
            }
        }
        // Quiesce: all-pairs exchanges until nothing changes.
        loop {
            let mut changed = 0;
            for a in 0..4 {
                for b in 0..4 {
                    if a != b {
                        let src = nodes[a].local_state();
                        changed += nodes[b].handle_infos(src, now);
                    }
                }
            }
            if changed == 0 {
                break;
            }
        }
        // Hop counts differ by path; the infos themselves agree.
        let view = |n: &Infos| -> Vec<(String, Vec<u8>, String, u64)> {
            n.group("g/", now)
                .unwrap()
                .1
                .into_iter()
                .map(|i| (i.key, i.value, i.origin, i.origin_ms))
                .collect()
        };
        let first = view(&nodes[0]);
        prop_assert!(first.len() <= limit);
        prop_assert_eq!(first.is_empty(), latest.is_empty());
        for n in &nodes[1..] {
            prop_assert_eq!(&view(n), &first);
        }
    }
}
