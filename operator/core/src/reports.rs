//! What the sidecars say on the control stream, folded into the inputs of
//! the decisions: [`Acks`] for statuses and [`KeyReports`] for
//! [`plan_keys`](crate::plan_keys).
//!
//! The rule `plan_keys` relies on: a member's report counts only when the
//! member acknowledged the cluster's current version and its report
//! describes that version. A member still on an older keyring is never
//! counted as holding a key, nor as having stopped encrypting with one.

use std::collections::{BTreeMap, BTreeSet};

use crate::{Acks, KeyReports};

/// The longest NACK message kept (in bytes); longer ones are cut.
pub const MAX_NACK_MESSAGE: usize = 1024;

/// What the control stream last heard from one member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberReport {
    /// The highest version it acknowledged.
    pub acked: Option<u64>,
    /// Its last refusal, until it acknowledges that version or a newer one.
    pub nack: Option<Rejection>,
    /// Its last status report.
    pub status: Option<StatusSummary>,
}

impl MemberReport {
    /// Records an ACK. Versions never go back: an ACK of an older version
    /// than one already acknowledged is ignored.
    pub fn ack(&mut self, version: u64) {
        if self.acked.is_none_or(|a| version > a) {
            self.acked = Some(version);
        }
        if self.nack.as_ref().is_some_and(|n| n.version <= version) {
            self.nack = None;
        }
    }

    /// Records a NACK (the message is cut to [`MAX_NACK_MESSAGE`] bytes).
    pub fn nack(&mut self, member: &str, version: u64, code: i32, message: &str) {
        self.nack = Some(Rejection {
            member: member.into(),
            version,
            code,
            message: cut(message, MAX_NACK_MESSAGE),
        });
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// A member refused a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Pod name.
    pub member: String,
    /// The version refused.
    pub version: u64,
    /// A google.rpc.Code value.
    pub code: i32,
    /// The sidecar's message.
    pub message: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "member {} rejected snapshot version {} (code {}): {}",
            self.member, self.version, self.code, self.message
        )
    }
}

/// A member's status report, as far as the decisions need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusSummary {
    /// The version it runs.
    pub applied_version: u64,
    /// Fingerprints of every key its keyring holds.
    pub key_fingerprints: Vec<String>,
    /// Fingerprint of the key it encrypts with (empty: none).
    pub primary_fingerprint: String,
    /// Entries by network name.
    pub entries: BTreeMap<String, u64>,
}

/// The reports of a cluster folded for the decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aggregate {
    /// For statuses: who runs the current version, entries, rejections.
    pub acks: Acks,
    /// For the key plan.
    pub key_reports: KeyReports,
}

/// Folds the reports of a cluster whose current version is `version` and
/// whose members are `members` (Pod names); reports of Pods that are not
/// members are ignored.
pub fn aggregate(
    version: u64,
    members: &[String],
    reports: &BTreeMap<String, MemberReport>,
) -> Aggregate {
    let mut out = Aggregate::default();
    let members: BTreeSet<&str> = members.iter().map(String::as_str).collect();
    for (name, r) in reports {
        if !members.contains(name.as_str()) {
            continue;
        }
        if let Some(n) = r.nack.as_ref().filter(|n| n.version == version) {
            out.acks.rejected.push(n.clone());
        }
        if r.acked != Some(version) {
            continue;
        }
        out.acks.running.push(name.clone());
        let Some(s) = r.status.as_ref().filter(|s| s.applied_version == version) else {
            continue;
        };
        let kr = &mut out.key_reports;
        kr.reporting += 1;
        let held: BTreeSet<&String> = s.key_fingerprints.iter().collect();
        for fp in held {
            *kr.holders.entry(fp.clone()).or_default() += 1;
        }
        if !s.primary_fingerprint.is_empty() {
            *kr.encrypting
                .entry(s.primary_fingerprint.clone())
                .or_default() += 1;
        }
        // Entries replicate to every member of a network: the fullest view
        // counts, not the sum.
        for (net, n) in &s.entries {
            let e = out.acks.entries.entry(net.clone()).or_default();
            *e = (*e).max(*n);
        }
    }
    out
}

/// Pods that left a cluster, newest last, remembered so that snapshots can
/// name them (sidecars reap their entries at once). Bounded: the oldest
/// names are forgotten first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Departed {
    last_members: Option<BTreeSet<String>>,
    gone: Vec<String>,
}

impl Departed {
    /// How many departed names are kept.
    pub const LIMIT: usize = 64;

    /// Folds the cluster's current members: who was there last time and is
    /// not now has departed; a name that comes back is no longer departed.
    /// The first call only records the members.
    pub fn update(&mut self, members: &[String]) {
        let now: BTreeSet<String> = members.iter().cloned().collect();
        if let Some(last) = &self.last_members {
            for name in last.difference(&now) {
                self.gone.retain(|g| g != name);
                self.gone.push(name.clone());
            }
        }
        self.gone.retain(|g| !now.contains(g));
        let extra = self.gone.len().saturating_sub(Self::LIMIT);
        self.gone.drain(..extra);
        self.last_members = Some(now);
    }

    /// The departed Pod names, oldest first.
    pub fn names(&self) -> &[String] {
        &self.gone
    }

    /// The members last folded (`None` before the first fold).
    pub fn members(&self) -> Option<&BTreeSet<String>> {
        self.last_members.as_ref()
    }

    /// Picks up where a previous operator (or leader) left off: the
    /// members it last saw and the names it announced as departed, as it
    /// stored them. Pods deleted while no operator ran are then found
    /// departed at the next fold.
    pub fn resume(members: Vec<String>, gone: Vec<String>) -> Departed {
        let mut d = Departed {
            last_members: Some(members.into_iter().collect()),
            gone,
        };
        let extra = d.gone.len().saturating_sub(Self::LIMIT);
        d.gone.drain(..extra);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn report(acked: u64, applied: u64, held: &[&str], primary: &str) -> MemberReport {
        MemberReport {
            acked: Some(acked),
            nack: None,
            status: Some(StatusSummary {
                applied_version: applied,
                key_fingerprints: names(held),
                primary_fingerprint: primary.into(),
                entries: [("endpoints".to_string(), 5)].into(),
            }),
        }
    }

    #[test]
    fn only_members_that_acked_the_current_version_count() {
        let reports: BTreeMap<String, MemberReport> = [
            ("a".to_string(), report(7, 7, &["k0", "k1"], "k0")),
            // Acked an older version: runs an older keyring.
            ("b".to_string(), report(6, 6, &["k0"], "k0")),
            // Acked the current one, but its report is older.
            ("c".to_string(), report(7, 6, &["k0"], "k0")),
            // Not a member any more.
            ("gone".to_string(), report(7, 7, &["k1"], "k1")),
        ]
        .into();
        let agg = aggregate(7, &names(&["a", "b", "c"]), &reports);
        assert_eq!(agg.acks.running, names(&["a", "c"]));
        assert_eq!(agg.key_reports.reporting, 1);
        assert_eq!(agg.key_reports.holders.get("k0"), Some(&1));
        assert_eq!(agg.key_reports.holders.get("k1"), Some(&1));
        assert_eq!(agg.key_reports.encrypting.get("k0"), Some(&1));
        assert_eq!(agg.key_reports.encrypting.get("k1"), None);
        assert_eq!(agg.acks.entries.get("endpoints"), Some(&5));
    }

    #[test]
    fn a_fingerprint_listed_twice_holds_once() {
        let reports = [("a".to_string(), report(1, 1, &["k0", "k0"], ""))].into();
        let agg = aggregate(1, &names(&["a"]), &reports);
        assert_eq!(agg.key_reports.holders.get("k0"), Some(&1));
        assert!(agg.key_reports.encrypting.is_empty());
    }

    #[test]
    fn a_nack_of_the_current_version_is_a_rejection_until_acked() {
        let mut r = MemberReport::default();
        r.ack(3);
        r.nack("a", 4, 3, "bad key length");
        let reports: BTreeMap<_, _> = [("a".to_string(), r.clone())].into();
        let agg = aggregate(4, &names(&["a"]), &reports);
        assert_eq!(agg.acks.running, Vec::<String>::new());
        assert_eq!(
            agg.acks.rejected[0].to_string(),
            "member a rejected snapshot version 4 (code 3): bad key length"
        );
        // A newer version supersedes it: nothing to show for version 5.
        assert!(aggregate(5, &names(&["a"]), &reports)
            .acks
            .rejected
            .is_empty());
        r.ack(4);
        assert_eq!(r.nack, None);
        assert_eq!(r.acked, Some(4));
        // An old ACK never moves it back.
        r.ack(2);
        assert_eq!(r.acked, Some(4));
    }

    #[test]
    fn a_long_nack_message_is_cut_on_a_character_boundary() {
        let mut r = MemberReport::default();
        let long = "é".repeat(MAX_NACK_MESSAGE);
        r.nack("a", 1, 13, &long);
        let m = r.nack.unwrap().message;
        assert!(m.len() <= MAX_NACK_MESSAGE + 3);
        assert!(m.ends_with("..."));
    }

    #[test]
    fn a_resumed_record_finds_pods_deleted_while_no_operator_ran() {
        let mut d = Departed::resume(names(&["a", "b", "c"]), names(&["old"]));
        d.update(&names(&["a", "c", "d"]));
        assert_eq!(d.names(), names(&["old", "b"]));
        // A fresh record would only have learnt the members.
        let mut fresh = Departed::default();
        fresh.update(&names(&["a", "c", "d"]));
        assert!(fresh.names().is_empty());
        // Bounded like any record.
        let many: Vec<String> = (0..100).map(|i| format!("p{i}")).collect();
        assert_eq!(
            Departed::resume(vec![], many).names().len(),
            Departed::LIMIT
        );
    }

    #[test]
    fn departed_members_are_remembered_until_they_return() {
        let mut d = Departed::default();
        d.update(&names(&["a", "b", "c"]));
        assert!(d.names().is_empty());
        d.update(&names(&["a"]));
        assert_eq!(d.names(), names(&["b", "c"]));
        d.update(&names(&["a", "b"]));
        assert_eq!(d.names(), names(&["c"]));
        for i in 0..100 {
            d.update(&names(&[&format!("p{i}")]));
        }
        assert_eq!(d.names().len(), Departed::LIMIT);
        assert_eq!(d.names().last().map(String::as_str), Some("p98"));
    }
}
