//! What can go wrong while reconciling. Variant names are the `error` label
//! of `gossamer_operator_reconcile_errors_total`.

/// A reconcile failure; the object is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("{action}: {source}")]
    Kube {
        /// What the operator was doing.
        action: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// An object lacks a field the API server always sets.
    #[error("{0} has no {1}; the API server sets it, so this object did not come from it")]
    MissingField(String, &'static str),
}

impl Error {
    /// The variant's name, for metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "Kube",
            Error::MissingField(..) => "MissingField",
        }
    }

    /// Wraps an API error with what was being done.
    pub fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Kube { action, source }
    }
}

/// Result of a reconcile step.
pub type Result<T, E = Error> = std::result::Result<T, E>;
