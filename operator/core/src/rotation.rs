//! Scheduled key rotation (`spec.rotateAfter`).
//!
//! A GossipKey with `rotateAfter` gets a successor GossipKey once it is
//! that old: a new generated key in the same cluster with the same
//! `rotateAfter`, so the chain goes on. The successor follows the usual
//! phases (Distributing, Installed, Primary); once it is Primary its
//! predecessor is deleted and retires as any deleted key does (it leaves
//! the keyrings when no member encrypts with it). Successors are found by
//! label and have a name derived from the chain, so a restart or a
//! repeated reconcile never makes a second one.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::Problem;

/// On a successor: the name of the key it replaces.
pub const PREDECESSOR_LABEL: &str = "gossamer.dev/predecessor";
/// On a successor: the first key of its chain.
pub const CHAIN_LABEL: &str = "gossamer.dev/rotation-of";
/// On a successor: its place in the chain (the first key is 0).
pub const INDEX_LABEL: &str = "gossamer.dev/rotation-index";

/// The shortest `rotateAfter`.
pub const MIN_ROTATE_AFTER: Duration = Duration::from_secs(60);

/// Longest chain name kept in a successor's name, so that the name (and
/// its generated Secret's, `gossamer-key-` + name) stay within 253
/// characters and the label value within 63.
const MAX_CHAIN: usize = 40;

/// Parses `rotateAfter`: Go's duration form without signs or units below a
/// second (`720h`, `1h30m`, `90m`, `1.5h`), at least [`MIN_ROTATE_AFTER`].
///
/// # Errors
/// [`Problem::InvalidRotateAfter`] naming the value.
pub fn parse_rotate_after(value: &str) -> Result<Duration, Problem> {
    let bad = || Problem::InvalidRotateAfter {
        value: value.to_string(),
    };
    let mut total = 0f64;
    let mut rest = value;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(n);
        if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
            return Err(bad());
        }
        let x: f64 = num.parse().map_err(|_| bad())?;
        let unit = match tail.as_bytes().first() {
            Some(b'h') => 3600.0,
            Some(b'm') => 60.0,
            Some(b's') => 1.0,
            _ => return Err(bad()),
        };
        total += x * unit;
        rest = &tail[1..];
    }
    // Ten years is plenty; beyond it the timestamp arithmetic may overflow.
    if !(MIN_ROTATE_AFTER.as_secs_f64()..=315_576_000.0).contains(&total) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Where a key stands in its rotation schedule.
#[derive(Clone, Debug, PartialEq)]
pub enum Rotation {
    /// No `rotateAfter`.
    Never,
    /// Not old enough: look again after this long; the successor is due at
    /// the time given.
    Later(Duration, Time),
    /// Old enough: its successor should exist.
    Due,
}

/// Whether a key created at `created` with `rotate_after` is due at `now`.
pub fn rotation(created: &Time, rotate_after: Option<Duration>, now: &Time) -> Rotation {
    let Some(after) = rotate_after else {
        return Rotation::Never;
    };
    let Ok(after) = k8s_openapi::jiff::SignedDuration::try_from(after) else {
        return Rotation::Never;
    };
    let Ok(due) = created.0.checked_add(after) else {
        return Rotation::Never;
    };
    if now.0 >= due {
        return Rotation::Due;
    }
    let left = now.0.duration_until(due);
    Rotation::Later(
        Duration::try_from(left).unwrap_or(Duration::ZERO),
        Time(due),
    )
}

/// The successor of a key: its name and its three labels, from the key's
/// name and its own chain labels (absent on a first key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Successor {
    /// The successor's name.
    pub name: String,
    /// The first key of the chain ([`CHAIN_LABEL`]).
    pub chain: String,
    /// Its place in the chain ([`INDEX_LABEL`]).
    pub index: u64,
}

/// The successor of `name`, given its labels' values of [`CHAIN_LABEL`]
/// and [`INDEX_LABEL`] when it is itself a successor.
pub fn successor(name: &str, chain: Option<&str>, index: Option<&str>) -> Successor {
    let index = index.and_then(|i| i.parse::<u64>().ok()).unwrap_or(0) + 1;
    let mut chain = chain.unwrap_or(name).to_string();
    if chain.len() > MAX_CHAIN {
        chain.truncate(MAX_CHAIN);
    }
    let chain = chain.trim_end_matches(['-', '.']).to_string();
    Successor {
        name: format!("{chain}-r{index}"),
        chain,
        index,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn go_durations_parse() {
        for (s, secs) in [
            ("720h", 720 * 3600),
            ("1h30m", 5400),
            ("90m", 5400),
            ("1.5h", 5400),
            ("60s", 60),
            ("1m", 60),
            ("2h0m30s", 7230),
        ] {
            assert_eq!(
                parse_rotate_after(s).unwrap(),
                Duration::from_secs(secs),
                "{s}"
            );
        }
    }

    #[test]
    fn bad_durations_name_the_value() {
        for s in [
            "",
            "59s",
            "30s",
            "1",
            "h",
            "1d",
            "-1h",
            "1.h",
            ".5h",
            "1h-",
            "1e3h",
            "99999999h",
        ] {
            let e = parse_rotate_after(s).unwrap_err();
            assert_eq!(e.reason(), "InvalidRotateAfter", "{s}");
            assert!(e.to_string().contains(&format!("{s:?}")), "{e}");
        }
    }

    #[test]
    fn due_once_old_enough() {
        let after = Some(Duration::from_secs(60));
        assert_eq!(rotation(&t(1000), None, &t(5000)), Rotation::Never);
        assert_eq!(
            rotation(&t(1000), after, &t(1010)),
            Rotation::Later(Duration::from_secs(50), t(1060))
        );
        assert_eq!(rotation(&t(1000), after, &t(1060)), Rotation::Due);
        assert_eq!(rotation(&t(1000), after, &t(9000)), Rotation::Due);
    }

    #[test]
    fn successors_form_a_chain() {
        let s1 = successor("cluster-key", None, None);
        assert_eq!(
            (s1.name.as_str(), s1.chain.as_str(), s1.index),
            ("cluster-key-r1", "cluster-key", 1)
        );
        let s2 = successor(&s1.name, Some(&s1.chain), Some(&s1.index.to_string()));
        assert_eq!(s2.name, "cluster-key-r2");
        let long = "k".repeat(250);
        let s = successor(&long, None, None);
        assert!(s.name.len() <= 63 && s.chain.len() <= 63, "{s:?}");
        let s = successor("a-b-", None, Some("garbage"));
        assert_eq!(s.name, "a-b-r1");
    }
}
