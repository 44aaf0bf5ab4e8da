//! Key rotation is safe under any interleaving: members apply snapshots
//! late and in any order, join and leave, keys are added and deleted, and
//! the operator rebuilds whenever it likes. Two things must never happen:
//!
//! - a key becomes primary (members start encrypting with it) while a
//!   member that already runs a keyring lacks it (it could not decrypt);
//! - a key leaves the keyrings while a member still encrypts with it.
//!
//! Reports reach the operator only from members that applied the current
//! snapshot, as the control stream's ACKs make them. A key's Secret may be
//! overwritten with unusable bytes and fixed again; a member refuses (NACKs)
//! a snapshot that lists keys without a primary or turns encryption off, as
//! the sidecar's plan does, and keeps what it runs.

use std::collections::{BTreeMap, BTreeSet};

use gossamer_operator_core::{
    build_snapshot, kept_keys, ClusterRef, ClusterState, GossipSettings, KeyInput, KeyMaterial,
    KeyReports, KeyState, Member, Snapshot,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Ev {
    AddKey,
    DeleteKey(usize),
    Join,
    Leave(usize),
    /// A member applies the current snapshot (install, switch, remove) and
    /// acknowledges it.
    Apply(usize),
    /// The operator rebuilds the snapshot from what it knows.
    Rebuild,
    /// A key's Secret is overwritten with bytes of the wrong length.
    BreakKey(usize),
    /// The Secret is fixed again.
    FixKey(usize),
    /// The key reconciler catches up: a deleted key the snapshot no longer
    /// carries loses its finalizer and its object goes away. It runs
    /// apart from rebuilds, so rebuilds may see such keys still there.
    Release,
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        1 => Just(Ev::AddKey),
        1 => (0usize..8).prop_map(Ev::DeleteKey),
        1 => Just(Ev::Join),
        1 => (0usize..8).prop_map(Ev::Leave),
        4 => (0usize..8).prop_map(Ev::Apply),
        3 => Just(Ev::Rebuild),
        1 => Just(Ev::Release),
        1 => (0usize..8).prop_map(Ev::BreakKey),
        1 => (0usize..8).prop_map(Ev::FixKey),
    ]
}

#[derive(Debug, Default, Clone)]
struct Sidecar {
    /// The snapshot version it runs; `None` until its first.
    applied: Option<u64>,
    keyring: BTreeSet<String>,
    primary: Option<String>,
}

struct World {
    keys: Vec<KeyInput>,
    next_key: u8,
    members: BTreeMap<u32, Sidecar>,
    next_member: u32,
    version: u64,
    current: Option<Snapshot>,
    /// The last primary published, by name and fingerprint: the operator
    /// remembers it across snapshots that have none.
    last_primary: Option<(String, String)>,
    /// What the operator counts as kept after the current snapshot.
    kept: Option<Vec<String>>,
}

impl World {
    fn state(&self) -> ClusterState {
        let mut reports = KeyReports::default();
        for m in self
            .members
            .values()
            .filter(|m| m.applied == Some(self.version))
        {
            reports.reporting += 1;
            for fp in &m.keyring {
                *reports.holders.entry(fp.clone()).or_default() += 1;
            }
            if let Some(p) = &m.primary {
                *reports.encrypting.entry(p.clone()).or_default() += 1;
            }
        }
        ClusterState {
            keys: self.keys.clone(),
            members: self
                .members
                .keys()
                .map(|i| Member {
                    name: format!("m{i}"),
                    labels: Default::default(),
                    ip: None,
                    ready: true,
                    started: None,
                })
                .collect(),
            key_reports: reports,
            last_primary: self.last_primary.as_ref().map(|(n, _)| n.clone()),
            // As the operator keeps them: a snapshot without a primary
            // leaves the last primary in the keyrings (members refuse it).
            last_keys: self.kept(),
            ..Default::default()
        }
    }

    /// The keys the members keep after the current snapshot, as the
    /// operator counts them.
    fn kept(&self) -> Option<Vec<String>> {
        self.kept.clone()
    }

    fn rebuild(&mut self) -> Result<(), TestCaseError> {
        let c = ClusterRef {
            namespace: "ns".into(),
            name: "default".into(),
        };
        let next = build_snapshot(&c, &self.state(), &GossipSettings::default());
        let changed = self
            .current
            .as_ref()
            .is_none_or(|s| s.content_hash() != next.content_hash());
        if !changed {
            return Ok(());
        }
        let fp_primary = |s: &Snapshot| {
            s.keys
                .iter()
                .find(|k| k.state == KeyState::Primary)
                .map(|k| k.fingerprint.clone())
        };
        let running: Vec<&Sidecar> = self
            .members
            .values()
            .filter(|m| m.applied.is_some())
            .collect();
        let old_primary = self.last_primary.as_ref().map(|(_, fp)| fp.clone());
        let new_primary = fp_primary(&next);
        if let (Some(old), Some(new)) = (&old_primary, &new_primary) {
            if old != new {
                // A member with no keyring runs in plaintext; its first
                // key becomes its primary as it installs it.
                for m in running.iter().filter(|m| !m.keyring.is_empty()) {
                    prop_assert!(
                        m.keyring.contains(new),
                        "{new} made primary while a running member lacks it: {m:?}"
                    );
                }
            }
        }
        // A keyring that had a primary keeps one while it has keys: a
        // keyring without one would send in plaintext. Only a held key whose
        // Secret turned unusable leaves a snapshot without one, which every
        // member refuses.
        let kept = self.kept().unwrap_or_default();
        let stranded = !self.members.is_empty()
            && self.keys.iter().any(|k| {
                k.material.is_err()
                    && (kept.contains(&k.name)
                        || self
                            .last_primary
                            .as_ref()
                            .is_some_and(|(n, _)| *n == k.name))
            });
        prop_assert!(
            next.keys.is_empty() || new_primary.is_some() || old_primary.is_none() || stranded,
            "the keyring lost its primary: {next:?}"
        );
        prop_assert!(
            !stranded || new_primary.is_none(),
            "a key made primary while a held key's Secret is unusable: {next:?}"
        );
        // A member that encrypts refuses a snapshot without a primary, so
        // only one with a primary can take a key from it.
        if let Some(old) = self.current.as_ref().filter(|_| new_primary.is_some()) {
            for k in &old.keys {
                if !next.keys.iter().any(|n| n.fingerprint == k.fingerprint) {
                    for m in &running {
                        prop_assert!(
                            m.primary.as_ref() != Some(&k.fingerprint),
                            "{} removed while a member encrypts with it: {m:?}",
                            k.fingerprint
                        );
                    }
                }
            }
        }
        // A deleted key that left the keyrings never comes back: a new
        // version has no ACKs yet, and that must not undo a removal.
        if let Some(kept) = self.kept() {
            for k in &next.keys {
                let deleting = self.keys.iter().any(|i| i.name == k.name && i.deleting);
                prop_assert!(
                    !deleting || kept.contains(&k.name),
                    "deleted key {} came back after it left the keyrings",
                    k.name
                );
            }
        }
        self.kept = Some(kept_keys(&next, &self.state()));
        self.version += 1;
        if let Some(k) = next.keys.iter().find(|k| k.state == KeyState::Primary) {
            self.last_primary = Some((k.name.clone(), k.fingerprint.clone()));
        }
        self.current = Some(next);
        Ok(())
    }

    fn new() -> Self {
        World {
            keys: Vec::new(),
            next_key: 0,
            members: BTreeMap::new(),
            next_member: 0,
            version: 0,
            current: None,
            last_primary: None,
            kept: None,
        }
    }

    /// One event; `Err` when a rebuild breaks an invariant.
    fn step(&mut self, e: &Ev) -> Result<(), TestCaseError> {
        match *e {
            Ev::AddKey => {
                let n = self.next_key;
                self.next_key += 1;
                self.keys.push(KeyInput {
                    name: format!("k{n:02}"),
                    created: format!("2026-11-01T00:{n:02}:00Z"),
                    deleting: false,
                    material: KeyMaterial::new(vec![n; 32], "ns", "s", "key"),
                });
            }
            Ev::DeleteKey(i) => {
                let len = self.keys.len();
                if len > 0 {
                    self.keys[i % len].deleting = true;
                }
            }
            Ev::Join => {
                self.members.insert(self.next_member, Sidecar::default());
                self.next_member += 1;
            }
            Ev::Leave(i) => {
                if let Some(id) = self
                    .members
                    .keys()
                    .nth(i % self.members.len().max(1))
                    .copied()
                {
                    self.members.remove(&id);
                }
            }
            Ev::BreakKey(i) | Ev::FixKey(i) => {
                let len = self.keys.len();
                if len > 0 {
                    let k = &mut self.keys[i % len];
                    let n = k.name[1..].parse::<u8>().unwrap_or(0);
                    let bytes = if matches!(e, Ev::BreakKey(_)) {
                        vec![n; 20]
                    } else {
                        vec![n; 32]
                    };
                    k.material = KeyMaterial::new(bytes, "ns", "s", "key");
                }
            }
            Ev::Apply(i) => self.apply(i),
            Ev::Rebuild => self.rebuild()?,
            Ev::Release => {
                if let Some(kept) = self.kept() {
                    self.keys.retain(|k| !k.deleting || kept.contains(&k.name));
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, i: usize) {
        let Some(snap) = &self.current else { return };
        let Some(id) = self
            .members
            .keys()
            .nth(i % self.members.len().max(1))
            .copied()
        else {
            return;
        };
        let m = self.members.get_mut(&id).expect("listed");
        let primary = snap.keys.iter().any(|k| k.state == KeyState::Primary);
        if (!snap.keys.is_empty() && !primary) || (snap.keys.is_empty() && m.primary.is_some()) {
            // NACK: it keeps what it runs.
            return;
        }
        // Install, switch, remove: in that order, as one step.
        m.keyring = snap.keys.iter().map(|k| k.fingerprint.clone()).collect();
        m.primary = snap
            .keys
            .iter()
            .find(|k| k.state == KeyState::Primary)
            .map(|k| k.fingerprint.clone());
        m.applied = Some(self.version);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_interleaving_makes_a_key_primary_or_removes_it_early(evs in prop::collection::vec(ev(), 1..120)) {
        let mut w = World::new();
        for e in &evs {
            w.step(e)?;
        }
    }
}

impl World {
    /// Steps through `evs`; panics naming the event that broke an
    /// invariant.
    fn run(&mut self, evs: &[Ev]) {
        for e in evs {
            let r = self.step(e);
            assert!(r.is_ok(), "after {e:?}: {r:?}");
        }
    }
}

/// Two members run k00 as primary; its successor k01 is on one of them.
fn successor_on_one_of_two() -> World {
    use Ev::*;
    let mut w = World::new();
    w.run(&[
        Join,
        Join,
        AddKey,
        Rebuild,
        Apply(0),
        Apply(1),
        Rebuild,
        AddKey,
        Rebuild,
        Apply(0),
    ]);
    w
}

/// The interleaving the last-primary rule exists for: the old primary is
/// deleted while its successor is on one member of two.
#[test]
fn a_deleted_primary_is_not_replaced_before_its_successor_is_everywhere() {
    use Ev::*;
    let mut w = successor_on_one_of_two();
    w.run(&[DeleteKey(0), Rebuild]);
    assert_eq!(
        w.current.as_ref().and_then(|s| s.primary()),
        Some("k00"),
        "{:?}",
        w.current
    );
}

/// The primary's Secret is overwritten with unusable bytes while its
/// successor is on one member of two: no snapshot names another primary,
/// the members refuse the one without a primary, and fixing the Secret
/// lets the rotation go on.
#[test]
fn an_unusable_primary_secret_promotes_nothing_until_fixed() {
    use Ev::*;
    let mut w = successor_on_one_of_two();
    w.run(&[BreakKey(0), Rebuild, Apply(0), Apply(1)]);
    let snap = w.current.clone().expect("published");
    assert_eq!(snap.primary(), None, "{snap:?}");
    for m in w.members.values() {
        assert!(m.primary.is_some(), "a member applied it: {m:?}");
    }
    w.run(&[FixKey(0), Rebuild, Apply(0), Apply(1)]);
    assert_eq!(w.current.as_ref().and_then(|s| s.primary()), Some("k00"));
}
