//! Snapshot versions: they only grow, and only when the content changes.

/// The version of a cluster's snapshot and the hash of its content, as kept
/// in the API (so versions survive operator restarts and failovers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// Version, from 1.
    pub version: u64,
    /// [`Snapshot::content_hash`](crate::Snapshot::content_hash) of that version.
    pub hash: String,
}

/// Hands out versions for one cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versioner {
    last: Option<Stamp>,
}

impl Versioner {
    /// Starts from the stamp stored in the API, if any.
    pub fn resume(last: Option<Stamp>) -> Self {
        Versioner { last }
    }

    /// The last stamp handed out (or resumed from).
    pub fn last(&self) -> Option<&Stamp> {
        self.last.as_ref()
    }

    /// The stamp for content with this hash: `None` when it equals the last
    /// one (no new version), else the next version. The caller stores it
    /// and then calls [`commit`](Self::commit); until then, asking again
    /// gives the same answer.
    pub fn next(&self, hash: &str) -> Option<Stamp> {
        match &self.last {
            Some(last) if last.hash == hash => None,
            Some(last) => Some(Stamp {
                version: last.version + 1,
                hash: hash.into(),
            }),
            None => Some(Stamp {
                version: 1,
                hash: hash.into(),
            }),
        }
    }

    /// Records a stamp as stored. A stamp not newer than the last is
    /// ignored: versions never go back.
    pub fn commit(&mut self, stamp: Stamp) {
        if self.last.as_ref().is_none_or(|l| stamp.version > l.version) {
            self.last = Some(stamp);
        }
    }
}
