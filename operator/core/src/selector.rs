//! Label selectors, checked and matched as the API server's own rules say.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::Problem;

/// A checked label selector. An empty selector selects everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Equals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Selector {
    /// Checks a selector: operators are In, NotIn, Exists or DoesNotExist;
    /// In and NotIn have values, Exists and DoesNotExist have none; keys
    /// and values are valid label syntax.
    pub fn parse(sel: &LabelSelector) -> Result<Self, Problem> {
        let bad = |detail: String| Problem::InvalidSelector { detail };
        let mut terms = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            check_key(k).map_err(bad)?;
            check_value(v).map_err(|e| bad(format!("matchLabels[{k:?}]: {e}")))?;
            terms.push(Term::Equals(k.clone(), v.clone()));
        }
        for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
            check_key(&e.key).map_err(|d| bad(format!("matchExpressions[{i}]: {d}")))?;
            let values = e.values.clone().unwrap_or_default();
            for v in &values {
                check_value(v).map_err(|d| bad(format!("matchExpressions[{i}]: {d}")))?;
            }
            let term = match e.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(bad(format!(
                        "matchExpressions[{i}] (key {:?}): operator {} needs at least one value",
                        e.key, e.operator
                    )))
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(bad(format!(
                        "matchExpressions[{i}] (key {:?}): operator {} takes no values, got {values:?}",
                        e.key, e.operator
                    )))
                }
                "In" => Term::In(e.key.clone(), values),
                "NotIn" => Term::NotIn(e.key.clone(), values),
                "Exists" => Term::Exists(e.key.clone()),
                "DoesNotExist" => Term::DoesNotExist(e.key.clone()),
                other => {
                    return Err(bad(format!(
                        "matchExpressions[{i}] (key {:?}): operator {other:?} is not one of In, NotIn, Exists, DoesNotExist",
                        e.key
                    )))
                }
            };
            terms.push(term);
        }
        Ok(Selector { terms })
    }

    /// Whether a set of labels matches every term.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Equals(k, v) => labels.get(k) == Some(v),
            Term::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Term::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Term::Exists(k) => labels.contains_key(k),
            Term::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            });
        if !ok {
            return Err(format!(
                "label key {key:?} has an invalid prefix: it must be a DNS subdomain such as example.com"
            ));
        }
    }
    if !is_name_part(name) {
        return Err(format!(
            "label key {key:?} is invalid: a name of 1-63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric"
        ));
    }
    Ok(())
}

fn check_value(v: &str) -> Result<(), String> {
    if v.is_empty() || is_name_part(v) {
        Ok(())
    } else {
        Err(format!(
            "label value {v:?} is invalid: at most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelector {
        LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: (!values.is_empty())
                    .then(|| values.iter().map(|s| s.to_string()).collect()),
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn empty_selects_everything() {
        let s = Selector::parse(&LabelSelector::default()).unwrap();
        assert!(s.matches(&labels(&[])));
        assert!(s.matches(&labels(&[("app", "x")])));
    }

    #[test]
    fn match_labels_and_expressions() {
        let mut sel = expr("tier", "In", &["web", "api"]);
        sel.match_labels = Some(labels(&[("app", "shop")]));
        let s = Selector::parse(&sel).unwrap();
        assert!(s.matches(&labels(&[("app", "shop"), ("tier", "web")])));
        assert!(!s.matches(&labels(&[("app", "shop"), ("tier", "db")])));
        assert!(!s.matches(&labels(&[("tier", "web")])));
        let s = Selector::parse(&expr("tier", "NotIn", &["db"])).unwrap();
        assert!(s.matches(&labels(&[])));
        assert!(!s.matches(&labels(&[("tier", "db")])));
        let s = Selector::parse(&expr("tier", "Exists", &[])).unwrap();
        assert!(s.matches(&labels(&[("tier", "")])));
        let s = Selector::parse(&expr("tier", "DoesNotExist", &[])).unwrap();
        assert!(!s.matches(&labels(&[("tier", "")])));
    }

    #[test]
    fn bad_selectors_say_what_is_wrong() {
        let e = Selector::parse(&expr("tier", "Equals", &["x"])).unwrap_err();
        assert!(e.to_string().contains("\"Equals\" is not one of In"), "{e}");
        let e = Selector::parse(&expr("tier", "In", &[])).unwrap_err();
        assert!(e.to_string().contains("needs at least one value"), "{e}");
        let e = Selector::parse(&expr("tier", "Exists", &["x"])).unwrap_err();
        assert!(e.to_string().contains("takes no values"), "{e}");
        let e = Selector::parse(&expr("bad key!", "Exists", &[])).unwrap_err();
        assert!(e.to_string().contains("\"bad key!\""), "{e}");
        assert_eq!(e.reason(), "InvalidSelector");
    }
}
