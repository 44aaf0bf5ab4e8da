//! The desired-state plan: from any state a node can be in to any
//! configuration it can run, the steps reach it, in an order that never
//! leaves the node unable to encrypt or decrypt, and planning again gives
//! nothing (idempotence). A configuration it cannot run changes nothing.

use std::collections::BTreeSet;

use gossamer_core::desired::{plan, Desired, Observed, PlanError, Step};
use gossamer_core::keyring::{Fingerprint, Key};
use proptest::prelude::*;

fn key(i: u8) -> Key {
    Key::new(&[i + 1; 16]).unwrap()
}

const POOL: u8 = 5;
const NETS: [&str; 4] = ["net-a", "net-b", "net-c", "net-d"];
const NAMES: [&str; 4] = ["me", "m1", "m2", "m3"];

/// A keyring as a node can hold it: distinct keys, the primary among them.
fn keyring() -> impl Strategy<Value = (Vec<u8>, Option<usize>)> {
    prop::sample::subsequence((0..POOL).collect::<Vec<_>>(), 0..=POOL as usize)
        .prop_shuffle()
        .prop_flat_map(|ks| {
            let n = ks.len();
            let primary = if n == 0 {
                Just(None).boxed()
            } else {
                (0..n).prop_map(Some).boxed()
            };
            (Just(ks), primary)
        })
}

fn subset(of: &'static [&'static str]) -> impl Strategy<Value = BTreeSet<String>> {
    prop::sample::subsequence(of.to_vec(), 0..=of.len())
        .prop_map(|v| v.into_iter().map(String::from).collect())
}

fn peers() -> impl Strategy<Value = Vec<String>> {
    prop::sample::subsequence(
        vec!["10.0.0.1:7946", "10.0.0.2:7946", "seed.example:7946"],
        0..=3,
    )
    .prop_map(|v| v.into_iter().map(String::from).collect())
}

fn observed() -> impl Strategy<Value = Observed> {
    (
        keyring(),
        subset(&NETS),
        peers(),
        subset(&NAMES[1..]),
        any::<bool>(),
    )
        .prop_map(|((ks, p), networks, peers, members, alone)| Observed {
            name: "me".into(),
            keys: ks.iter().map(|&i| key(i).fingerprint()).collect(),
            primary: p.map(|j| key(ks[j]).fingerprint()),
            networks,
            peers,
            members,
            alone,
        })
}

fn desired() -> impl Strategy<Value = Desired> {
    (keyring(), subset(&NETS), peers(), subset(&NAMES[1..])).prop_map(
        |((ks, p), networks, peers, departed)| Desired {
            keys: ks.iter().map(|&i| key(i)).collect(),
            primary: p.map(|j| key(ks[j]).fingerprint()),
            networks,
            peers,
            departed,
        },
    )
}

/// Applies `steps` to the model, checking after each one what must hold on
/// a running node.
fn run(mut obs: Observed, steps: &[Step], want: &Desired) -> Result<Observed, TestCaseError> {
    let wanted: BTreeSet<Fingerprint> = want.keys.iter().map(Key::fingerprint).collect();
    let mut switched = false;
    let mut removed_any = false;
    for step in steps {
        match step {
            Step::InstallKey(k) => {
                prop_assert!(!switched, "a key was installed after the primary switched");
                prop_assert!(
                    !obs.keys.contains(&k.fingerprint()),
                    "reinstalled {}",
                    k.fingerprint()
                );
            }
            Step::UsePrimary(k) => {
                prop_assert!(
                    obs.keys.contains(&k.fingerprint()),
                    "{} made primary before it was installed",
                    k.fingerprint()
                );
                // Every wanted key is on the ring before the switch.
                prop_assert!(wanted.iter().all(|f| obs.keys.contains(f)));
                prop_assert!(!removed_any, "a key was removed before the switch");
                switched = true;
            }
            Step::RemoveKey(fp) => {
                prop_assert!(obs.primary != Some(*fp), "removed the primary {fp}");
                prop_assert!(!wanted.contains(fp), "removed wanted key {fp}");
                removed_any = true;
            }
            _ => {}
        }
        let had_primary = obs.primary.is_some();
        obs.apply(step);
        if had_primary {
            let p = obs.primary.expect("the keyring lost its primary");
            prop_assert!(obs.keys.contains(&p), "the primary {p} is not on the ring");
        }
    }
    Ok(obs)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// From any state to any runnable configuration: the steps reach it,
    /// safely, and a second plan is empty.
    #[test]
    fn the_plan_reaches_the_configuration_safely_and_once(obs in observed(), want in desired()) {
        let steps = match plan(&obs, &want) {
            Ok(s) => s,
            // Only turning encryption off is refused among these inputs.
            Err(PlanError::WouldDisableEncryption(fp)) => {
                prop_assert!(want.keys.is_empty());
                prop_assert_eq!(Some(fp), obs.primary);
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(format!("refused a runnable configuration: {e}"))),
        };
        let after = run(obs.clone(), &steps, &want)?;
        let have: BTreeSet<Fingerprint> = after.keys.iter().copied().collect();
        let wanted: BTreeSet<Fingerprint> = want.keys.iter().map(Key::fingerprint).collect();
        prop_assert_eq!(have, wanted);
        prop_assert_eq!(after.primary, want.primary.or(obs.primary.filter(|_| want.keys.is_empty())));
        prop_assert_eq!(&after.networks, &want.networks);
        prop_assert_eq!(&after.peers, &want.peers);
        prop_assert!(after.members.is_disjoint(&want.departed));
        let again = plan(&after, &want).unwrap();
        prop_assert!(again.is_empty(), "second plan not empty: {:?}", again);
    }
}

#[test]
fn a_rotation_installs_then_switches_then_removes() {
    let (old, new) = (key(0), key(1));
    let obs = Observed {
        name: "me".into(),
        keys: vec![old.fingerprint()],
        primary: Some(old.fingerprint()),
        ..Observed::default()
    };
    let install = Desired {
        keys: vec![old.clone(), new.clone()],
        primary: Some(old.fingerprint()),
        ..Desired::default()
    };
    let steps = plan(&obs, &install).unwrap();
    assert!(
        matches!(steps.as_slice(), [Step::InstallKey(k)] if k.fingerprint() == new.fingerprint())
    );

    let switch_and_remove = Desired {
        keys: vec![new.clone()],
        primary: Some(new.fingerprint()),
        ..Desired::default()
    };
    let mut mid = obs.clone();
    mid.apply(&steps[0]);
    let steps = plan(&mid, &switch_and_remove).unwrap();
    assert!(
        matches!(steps.as_slice(), [Step::UsePrimary(k), Step::RemoveKey(fp)]
            if k.fingerprint() == new.fingerprint() && *fp == old.fingerprint()),
        "{steps:?}"
    );
}

#[test]
fn peers_change_rejoins_only_a_node_that_is_alone() {
    let want = Desired {
        peers: vec!["10.0.0.9:7946".into()],
        ..Desired::default()
    };
    let mut obs = Observed {
        name: "me".into(),
        alone: true,
        ..Observed::default()
    };
    let steps = plan(&obs, &want).unwrap();
    assert!(matches!(steps.as_slice(), [Step::SetPeers(_), Step::Rejoin(p)] if p == &want.peers));
    obs.alone = false;
    let steps = plan(&obs, &want).unwrap();
    assert!(matches!(steps.as_slice(), [Step::SetPeers(_)]), "{steps:?}");
}

#[test]
fn configurations_a_node_cannot_run_are_refused_with_the_value() {
    let (a, b) = (key(0), key(1));
    let obs = Observed {
        name: "me".into(),
        keys: vec![a.fingerprint()],
        primary: Some(a.fingerprint()),
        ..Observed::default()
    };
    let cases: Vec<(Desired, PlanError)> = vec![
        (
            Desired {
                keys: vec![a.clone(), a.clone()],
                primary: Some(a.fingerprint()),
                ..Desired::default()
            },
            PlanError::DuplicateKey(a.fingerprint()),
        ),
        (
            Desired {
                keys: vec![a.clone()],
                ..Desired::default()
            },
            PlanError::NoPrimary(1),
        ),
        (
            Desired {
                keys: vec![a.clone()],
                primary: Some(b.fingerprint()),
                ..Desired::default()
            },
            PlanError::PrimaryNotListed(b.fingerprint()),
        ),
        (
            Desired {
                primary: Some(b.fingerprint()),
                ..Desired::default()
            },
            PlanError::PrimaryWithoutKeys(b.fingerprint()),
        ),
        (
            Desired::default(),
            PlanError::WouldDisableEncryption(a.fingerprint()),
        ),
        (
            Desired {
                keys: vec![a.clone()],
                primary: Some(a.fingerprint()),
                networks: [String::new()].into(),
                ..Desired::default()
            },
            PlanError::EmptyNetworkId,
        ),
        (
            Desired {
                keys: vec![a.clone()],
                primary: Some(a.fingerprint()),
                peers: vec!["10.0.0.1:7946".into(), " ".into()],
                ..Desired::default()
            },
            PlanError::EmptyPeer(1),
        ),
        (
            Desired {
                keys: vec![a.clone()],
                primary: Some(a.fingerprint()),
                departed: ["me".to_string()].into(),
                ..Desired::default()
            },
            PlanError::SelfDeparted("me".into()),
        ),
    ];
    for (want, err) in cases {
        let got = plan(&obs, &want).unwrap_err();
        assert_eq!(got, err);
        let text = got.to_string();
        // The message names the offending value; fingerprints, never bytes.
        match &got {
            PlanError::DuplicateKey(fp)
            | PlanError::PrimaryNotListed(fp)
            | PlanError::PrimaryWithoutKeys(fp)
            | PlanError::WouldDisableEncryption(fp) => {
                assert!(text.contains(&fp.to_string()), "{text}")
            }
            PlanError::SelfDeparted(n) => assert!(text.contains(n.as_str()), "{text}"),
            PlanError::EmptyPeer(i) => assert!(text.contains(&i.to_string()), "{text}"),
            _ => {}
        }
        assert!(!text.contains(&hex::encode(a.expose_bytes())));
        assert!(!got.label().is_empty());
    }
}

#[test]
fn a_departed_member_is_reaped_once() {
    let want = Desired {
        departed: ["m1".to_string(), "gone-long-ago".to_string()].into(),
        ..Desired::default()
    };
    let mut obs = Observed {
        name: "me".into(),
        members: ["m1".to_string(), "m2".to_string()].into(),
        ..Observed::default()
    };
    let steps = plan(&obs, &want).unwrap();
    assert!(
        matches!(steps.as_slice(), [Step::Reap(n)] if n == "m1"),
        "{steps:?}"
    );
    obs.apply(&steps[0]);
    assert!(plan(&obs, &want).unwrap().is_empty());
}
