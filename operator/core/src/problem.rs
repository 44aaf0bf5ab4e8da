//! What can be wrong with an object, said so a person can fix it.

/// Why an object cannot take part in its cluster's config. Each variant's
/// name is the condition reason, the Event reason and a metric label; its
/// text says what is wrong, with the offending value, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The Secret a key names does not exist (yet).
    #[error("Secret {namespace}/{name} does not exist: create it with the key under data[{key:?}], or omit spec.secretRef to let the operator generate one")]
    SecretMissing {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The data key the GossipKey names.
        key: String,
    },
    /// The Secret exists but lacks the named data key.
    #[error("Secret {namespace}/{name} has no data key {key:?} (it has: {present}): put the raw key bytes there, or fix spec.secretRef.key")]
    SecretKeyMissing {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The data key the GossipKey names.
        key: String,
        /// The data keys it does have, comma-separated.
        present: String,
    },
    /// The key bytes are not an AES key.
    #[error("Secret {namespace}/{name} data[{key:?}] is {len} bytes; an AES-GCM key must be exactly 16, 24 or 32 raw bytes (not hex, not base64 text): write raw bytes, e.g. `head -c 32 /dev/urandom > key` then `kubectl create secret generic {name} --from-file={key}=key`")]
    KeyLength {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The data key.
        key: String,
        /// How many bytes it holds.
        len: usize,
    },
    /// A secretRef that points into another namespace.
    #[error("spec.secretRef.namespace is {secret_namespace:?} but a GossipKey may only use Secrets of its own namespace {namespace:?}: copy the Secret into {namespace:?} and drop spec.secretRef.namespace")]
    CrossNamespaceRef {
        /// The GossipKey's namespace.
        namespace: String,
        /// The namespace the reference names.
        secret_namespace: String,
    },
    /// A label selector that cannot select anything as written.
    #[error("spec.memberSelector is invalid: {detail}")]
    InvalidSelector {
        /// What is wrong with it.
        detail: String,
    },
    /// The Secret the operator would generate exists and is not its own.
    #[error("Secret {namespace}/{name} exists but is not owned by this GossipKey, so the operator will not put a generated key there: delete or rename that Secret, or set spec.secretRef to use it")]
    GeneratedSecretTaken {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// A rotateAfter that is not a usable duration.
    #[error("spec.rotateAfter {value:?} is not a duration of at least 1m (use Go's form, e.g. 720h or 90m)")]
    InvalidRotateAfter {
        /// The value given.
        value: String,
    },
    /// The name `rotateAfter` gives the successor belongs to another key.
    #[error("spec.rotateAfter {value:?} is due but GossipKey {name} exists and is not this key's successor (no gossamer.dev/predecessor label naming it): rename or delete that GossipKey, or remove rotateAfter")]
    SuccessorNameTaken {
        /// The successor's name.
        name: String,
        /// The rotateAfter value.
        value: String,
    },
}

impl Problem {
    /// The variant's name: the reason of the condition and Event, and the
    /// `reason` label of the error metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Problem::SecretMissing { .. } => "SecretMissing",
            Problem::SecretKeyMissing { .. } => "SecretKeyMissing",
            Problem::KeyLength { .. } => "KeyLength",
            Problem::CrossNamespaceRef { .. } => "CrossNamespaceRef",
            Problem::InvalidSelector { .. } => "InvalidSelector",
            Problem::InvalidRotateAfter { .. } => "InvalidRotateAfter",
            Problem::GeneratedSecretTaken { .. } => "GeneratedSecretTaken",
            Problem::SuccessorNameTaken { .. } => "SuccessorNameTaken",
        }
    }
}
