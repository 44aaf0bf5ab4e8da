//! Each key's phase, and which key is primary.
//!
//! The rules, from DESIGN.md's rotation contract:
//! - a key is *installed* once every member holds it (with no members,
//!   nothing needs to hold it, so every usable key is installed);
//! - the primary is the newest installed key that is not being deleted;
//!   if no key qualifies, the primary of the last published snapshot stays
//!   (even while it is being deleted: it leaves only once a successor is
//!   everywhere); with no last primary (the first key, or it is gone), the
//!   oldest usable key not being deleted, then the oldest being deleted;
//! - a deleted key leaves the keyrings (and its finalizer is released) only
//!   when no member encrypts with it: with no members at once (even the
//!   last key: nobody uses it, and a held finalizer would block deleting
//!   the namespace); otherwise once it is not the primary, every member has
//!   reported, and none names it as its primary.
//!
//! - a deleted key the last published snapshot no longer carries stays out
//!   (and its finalizer may go): it left when that was safe, and a new
//!   version (whose ACKs are not in yet) must not bring it back.
//!
//! Reports count only when they describe the current snapshot: the runtime
//! fills [`KeyReports`] from members that acknowledged it, so a member that
//! has not applied the latest keyring is never counted as safe.

use gossamer_operator_api::KeyPhase;

use crate::{KeyInput, KeyReports, KeyState};

/// What the operator decided about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDecision {
    /// GossipKey name.
    pub name: String,
    /// Its phase.
    pub phase: KeyPhase,
    /// Its fingerprint, when its bytes are usable.
    pub fingerprint: Option<String>,
    /// Members holding it.
    pub holders: u32,
    /// How the snapshot carries it; `None`: not in the keyrings.
    pub state: Option<KeyState>,
    /// The finalizer may go: the key is gone from every keyring.
    pub release: bool,
}

/// The decisions for all keys of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPlan {
    /// One per GossipKey, in input order.
    pub decisions: Vec<KeyDecision>,
    /// The primary key's object name.
    pub primary: Option<String>,
}

/// Decides every key's phase for a cluster of `members` sidecars;
/// `last_primary` is the primary key's name in the last published snapshot.
/// The same as [`plan_keys_after`] without knowing that snapshot's keys.
pub fn plan_keys(
    keys: &[KeyInput],
    members: u32,
    reports: &KeyReports,
    last_primary: Option<&str>,
) -> KeyPlan {
    plan_keys_after(keys, members, reports, last_primary, None)
}

/// Decides every key's phase; `last_keys` are the key names of the last
/// published snapshot, when known: a deleted key absent there stays out.
pub fn plan_keys_after(
    keys: &[KeyInput],
    members: u32,
    reports: &KeyReports,
    last_primary: Option<&str>,
    last_keys: Option<&[String]>,
) -> KeyPlan {
    let holders = |fp: &str| reports.holders.get(fp).copied().unwrap_or(0);
    let installed = |fp: &str| members == 0 || holders(fp) >= members;
    // Retiring => removed, for good: it already left the keyrings.
    let gone = |k: &KeyInput| k.deleting && last_keys.is_some_and(|ks| !ks.contains(&k.name));
    // Usable keys still in the keyrings, oldest first.
    let mut usable: Vec<(&KeyInput, &str)> = keys
        .iter()
        .filter(|k| !gone(k))
        .filter_map(|k| k.material.as_ref().ok().map(|m| (k, m.fingerprint())))
        .collect();
    usable.sort_by(|a, b| (&a.0.created, &a.0.name).cmp(&(&b.0.created, &b.0.name)));

    // A key the members hold lost its bytes (its Secret now holds something
    // unusable, or is gone): the operator cannot list their keyrings any
    // more. No key is primary, so every sidecar refuses the snapshot (NACK)
    // and keeps the keyring it has until the Secret is restored. Promoting
    // a key, or dropping this one, could lose messages in flight; so even a
    // deleted key waits for its bytes to come back before it retires.
    let held = |k: &KeyInput| {
        Some(k.name.as_str()) == last_primary || last_keys.is_some_and(|ks| ks.contains(&k.name))
    };
    let stranded: Vec<&str> = keys
        .iter()
        .filter(|k| members > 0 && k.material.is_err() && held(k))
        .map(|k| k.name.as_str())
        .collect();
    let primary = match stranded.is_empty() {
        false => None,
        true => usable
            .iter()
            .rev()
            // Installed => Primary: the newest key every member holds.
            .find(|(k, fp)| !k.deleting && installed(fp))
            // Nothing newer is everywhere: the last primary stays.
            .or_else(|| {
                usable
                    .iter()
                    .find(|(k, _)| Some(k.name.as_str()) == last_primary)
            })
            // No last primary: the first key of the cluster.
            .or_else(|| usable.iter().find(|(k, _)| !k.deleting))
            .or_else(|| usable.first())
            .map(|(k, _)| k.name.clone()),
    };

    let everyone_reported = members == 0 || reports.reporting >= members;
    let decisions = keys
        .iter()
        .map(|k| {
            let is_primary = primary.as_deref() == Some(k.name.as_str());
            match &k.material {
                // Unusable bytes: nothing to install; a key the members
                // hold is not released (see `stranded`).
                Err(_) => {
                    let stranded = stranded.contains(&k.name.as_str());
                    KeyDecision {
                        name: k.name.clone(),
                        phase: if k.deleting {
                            KeyPhase::Retiring
                        } else if stranded && Some(k.name.as_str()) == last_primary {
                            // The members still encrypt with it.
                            KeyPhase::Primary
                        } else {
                            KeyPhase::Pending
                        },
                        fingerprint: None,
                        holders: 0,
                        state: None,
                        release: k.deleting && !stranded,
                    }
                }
                Ok(m) => {
                    let fp = m.fingerprint();
                    let encrypting = reports.encrypting.get(fp).copied().unwrap_or(0);
                    let removable = members == 0
                        || gone(k)
                        || (!is_primary && everyone_reported && encrypting == 0);
                    let (phase, state) = if k.deleting {
                        // Retiring => removed once nobody encrypts with it.
                        // Until a successor is everywhere it may still be
                        // the primary: the keyring keeps encrypting with it.
                        let state = match (removable, is_primary) {
                            (true, _) => None,
                            (false, true) => Some(KeyState::Primary),
                            (false, false) => Some(KeyState::Retiring),
                        };
                        (KeyPhase::Retiring, state)
                    } else if is_primary {
                        (KeyPhase::Primary, Some(KeyState::Primary))
                    } else if installed(fp) {
                        // Distributing => Installed: every member holds it.
                        (KeyPhase::Installed, Some(KeyState::Secondary))
                    } else {
                        // Pending => Distributing: usable, not yet everywhere.
                        (KeyPhase::Distributing, Some(KeyState::Secondary))
                    };
                    KeyDecision {
                        name: k.name.clone(),
                        phase,
                        fingerprint: Some(fp.to_string()),
                        holders: holders(fp),
                        state,
                        release: k.deleting && removable,
                    }
                }
            }
        })
        .collect();
    KeyPlan { decisions, primary }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyMaterial, Problem};

    fn key(name: &str, created: &str, byte: u8) -> KeyInput {
        KeyInput {
            name: name.into(),
            created: created.into(),
            deleting: false,
            material: KeyMaterial::new(vec![byte; 32], "ns", name, "key"),
        }
    }

    fn phases(plan: &KeyPlan) -> Vec<(&str, KeyPhase)> {
        plan.decisions
            .iter()
            .map(|d| (d.name.as_str(), d.phase))
            .collect()
    }

    #[test]
    fn without_members_the_newest_key_is_primary_at_once() {
        let keys = [
            key("k0", "2026-01-01T00:00:00Z", 0),
            key("k1", "2026-02-01T00:00:00Z", 1),
        ];
        let plan = plan_keys(&keys, 0, &KeyReports::default(), None);
        assert_eq!(plan.primary.as_deref(), Some("k1"));
        assert_eq!(
            phases(&plan),
            [("k0", KeyPhase::Installed), ("k1", KeyPhase::Primary)]
        );
    }

    #[test]
    fn with_members_and_no_reports_the_oldest_key_stays_primary() {
        let keys = [
            key("k0", "2026-01-01T00:00:00Z", 0),
            key("k1", "2026-02-01T00:00:00Z", 1),
        ];
        let plan = plan_keys(&keys, 3, &KeyReports::default(), None);
        assert_eq!(plan.primary.as_deref(), Some("k0"));
        assert_eq!(
            phases(&plan),
            [("k0", KeyPhase::Primary), ("k1", KeyPhase::Distributing)]
        );
    }

    #[test]
    fn a_key_every_member_holds_becomes_primary() {
        let keys = [
            key("k0", "2026-01-01T00:00:00Z", 0),
            key("k1", "2026-02-01T00:00:00Z", 1),
        ];
        let fp1 = keys[1].material.as_ref().unwrap().fingerprint().to_string();
        let mut reports = KeyReports {
            reporting: 3,
            ..Default::default()
        };
        reports.holders.insert(fp1.clone(), 2);
        assert_eq!(
            plan_keys(&keys, 3, &reports, None).primary.as_deref(),
            Some("k0")
        );
        reports.holders.insert(fp1, 3);
        assert_eq!(
            plan_keys(&keys, 3, &reports, None).primary.as_deref(),
            Some("k1")
        );
    }

    #[test]
    fn a_deleted_key_is_held_while_members_may_encrypt_with_it() {
        let mut keys = [
            key("k0", "2026-01-01T00:00:00Z", 0),
            key("k1", "2026-02-01T00:00:00Z", 1),
        ];
        keys[0].deleting = true;
        let fp0 = keys[0].material.as_ref().unwrap().fingerprint().to_string();
        let fp1 = keys[1].material.as_ref().unwrap().fingerprint().to_string();
        // No reports: held.
        let plan = plan_keys(&keys, 2, &KeyReports::default(), None);
        assert_eq!(plan.decisions[0].phase, KeyPhase::Retiring);
        assert!(!plan.decisions[0].release);
        assert_eq!(plan.decisions[0].state, Some(KeyState::Retiring));
        // Everyone reported, one still encrypts with k0: held.
        let mut reports = KeyReports {
            reporting: 2,
            ..Default::default()
        };
        reports.holders.insert(fp1.clone(), 2);
        reports.encrypting.insert(fp0.clone(), 1);
        reports.encrypting.insert(fp1.clone(), 1);
        assert!(!plan_keys(&keys, 2, &reports, None).decisions[0].release);
        // Nobody encrypts with it: removed and released.
        reports.encrypting.remove(&fp0);
        let plan = plan_keys(&keys, 2, &reports, None);
        assert!(plan.decisions[0].release);
        assert_eq!(plan.decisions[0].state, None);
        assert_eq!(plan.primary.as_deref(), Some("k1"));
    }

    #[test]
    fn the_only_key_stays_while_members_encrypt_with_it() {
        let mut keys = [key("k0", "2026-01-01T00:00:00Z", 0)];
        keys[0].deleting = true;
        let fp0 = keys[0].material.as_ref().unwrap().fingerprint().to_string();
        let mut reports = KeyReports {
            reporting: 1,
            ..Default::default()
        };
        reports.encrypting.insert(fp0, 1);
        let plan = plan_keys(&keys, 1, &reports, None);
        assert_eq!(plan.primary.as_deref(), Some("k0"));
        assert!(!plan.decisions[0].release);
        assert_eq!(plan.decisions[0].phase, KeyPhase::Retiring);
        // Still the only key: it still encrypts.
        assert_eq!(plan.decisions[0].state, Some(KeyState::Primary));
        // Nobody left to use it: released, so a namespace can be deleted.
        let plan = plan_keys(&keys, 0, &KeyReports::default(), None);
        assert!(plan.decisions[0].release);
        assert_eq!(plan.decisions[0].state, None);
    }

    #[test]
    fn a_deleted_primary_stays_until_its_successor_is_everywhere() {
        let mut keys = [
            key("old", "2026-01-01T00:00:00Z", 0),
            key("new", "2026-02-01T00:00:00Z", 1),
        ];
        keys[0].deleting = true;
        let fp_new = keys[1].material.as_ref().unwrap().fingerprint().to_string();
        let mut reports = KeyReports {
            reporting: 2,
            ..Default::default()
        };
        reports.holders.insert(fp_new.clone(), 1);
        // "new" is on one member of two: "old" stays primary.
        let plan = plan_keys(&keys, 2, &reports, Some("old"));
        assert_eq!(plan.primary.as_deref(), Some("old"));
        assert_eq!(plan.decisions[0].phase, KeyPhase::Retiring);
        assert_eq!(plan.decisions[0].state, Some(KeyState::Primary));
        assert!(!plan.decisions[0].release);
        // Everywhere: "new" takes over; "old" still goes only once nobody
        // encrypts with it, and both members still do.
        reports.holders.insert(fp_new, 2);
        let fp_old = keys[0].material.as_ref().unwrap().fingerprint().to_string();
        reports.encrypting.insert(fp_old, 2);
        let plan = plan_keys(&keys, 2, &reports, Some("old"));
        assert_eq!(plan.primary.as_deref(), Some("new"));
        assert_eq!(plan.decisions[0].state, Some(KeyState::Retiring));
    }

    #[test]
    fn a_removed_key_stays_out_while_acks_of_the_next_version_are_missing() {
        let mut keys = [
            key("old", "2026-01-01T00:00:00Z", 0),
            key("new", "2026-02-01T00:00:00Z", 1),
        ];
        keys[0].deleting = true;
        // The last snapshot still carried "old": without reports it stays.
        let carried = ["old".to_string(), "new".to_string()];
        let plan = plan_keys_after(
            &keys,
            2,
            &KeyReports::default(),
            Some("new"),
            Some(&carried),
        );
        assert_eq!(plan.decisions[0].state, Some(KeyState::Retiring));
        assert!(!plan.decisions[0].release);
        // The last snapshot removed it (it was safe then); the new version
        // has no ACKs yet, and still it does not come back.
        let removed = ["new".to_string()];
        let plan = plan_keys_after(
            &keys,
            2,
            &KeyReports::default(),
            Some("new"),
            Some(&removed),
        );
        assert_eq!(plan.decisions[0].state, None);
        assert!(plan.decisions[0].release);
        assert_eq!(plan.primary.as_deref(), Some("new"));
    }

    #[test]
    fn an_unusable_key_is_pending_and_never_primary() {
        let keys = [
            key("k0", "2026-01-01T00:00:00Z", 0),
            KeyInput {
                name: "bad".into(),
                created: "2026-03-01T00:00:00Z".into(),
                deleting: false,
                material: Err(Problem::SecretMissing {
                    namespace: "ns".into(),
                    name: "s".into(),
                    key: "key".into(),
                }),
            },
        ];
        let plan = plan_keys(&keys, 0, &KeyReports::default(), None);
        assert_eq!(plan.primary.as_deref(), Some("k0"));
        assert_eq!(plan.decisions[1].phase, KeyPhase::Pending);
        assert_eq!(plan.decisions[1].state, None);
    }

    fn unusable(k: KeyInput) -> KeyInput {
        KeyInput {
            material: Err(Problem::KeyLength {
                namespace: "ns".into(),
                name: k.name.clone(),
                key: "key".into(),
                len: 20,
            }),
            ..k
        }
    }

    #[test]
    fn a_held_key_whose_secret_turns_unusable_strands_the_plan_until_fixed() {
        let fp1 = KeyMaterial::new(vec![1; 32], "ns", "k1", "key")
            .unwrap()
            .fingerprint()
            .to_string();
        let k0 = key("k0", "2026-01-01T00:00:00Z", 0);
        let k1 = key("k1", "2026-02-01T00:00:00Z", 1);
        let held = ["k0".to_string(), "k1".to_string()];
        // k1 is on one member of two; k0, the primary, loses its bytes.
        let mut reports = KeyReports {
            reporting: 2,
            ..Default::default()
        };
        reports.holders.insert(fp1.clone(), 1);
        let keys = [unusable(k0.clone()), k1.clone()];
        let plan = plan_keys_after(&keys, 2, &reports, Some("k0"), Some(&held));
        assert_eq!(plan.primary, None, "k1 is not on every member");
        assert_eq!(plan.decisions[0].phase, KeyPhase::Primary);
        assert_eq!(plan.decisions[0].state, None);
        assert!(!plan.decisions[0].release);
        assert_eq!(plan.decisions[1].state, Some(KeyState::Secondary));
        // Even a successor on every member waits: the old key cannot stay
        // in the keyrings while members switch.
        reports.holders.insert(fp1, 2);
        let plan = plan_keys_after(&keys, 2, &reports, Some("k0"), Some(&held));
        assert_eq!(plan.primary, None);
        // Deleting the stranded key does not release it: the members
        // encrypt with it until a successor is primary.
        let deleting = KeyInput {
            deleting: true,
            ..unusable(k0.clone())
        };
        let plan = plan_keys_after(
            &[deleting, k1.clone()],
            2,
            &reports,
            Some("k0"),
            Some(&held),
        );
        assert_eq!(plan.primary, None);
        assert!(!plan.decisions[0].release);
        // A held secondary that loses its bytes strands the plan too.
        let plan = plan_keys_after(
            &[k0.clone(), unusable(k1.clone())],
            2,
            &reports,
            Some("k0"),
            Some(&held),
        );
        assert_eq!(plan.primary, None);
        // Without members nothing is held: the plan goes on.
        let plan = plan_keys_after(&keys, 0, &reports, Some("k0"), Some(&held));
        assert_eq!(plan.primary.as_deref(), Some("k1"));
        // Fixed: the rotation goes on as before (k1 is everywhere).
        let plan = plan_keys_after(
            &[k0.clone(), k1.clone()],
            2,
            &reports,
            Some("k0"),
            Some(&held),
        );
        assert_eq!(plan.primary.as_deref(), Some("k1"));
        // Fixed while k1 is on one member only: k0 stays primary.
        reports
            .holders
            .insert(plan.decisions[1].fingerprint.clone().unwrap(), 1);
        let plan = plan_keys_after(&[k0, k1], 2, &reports, Some("k0"), Some(&held));
        assert_eq!(plan.primary.as_deref(), Some("k0"));
    }
}
