use std::fmt;

/// A harness failure, carrying everything a person needs to see why: what
/// was awaited, the peer's view at that moment and where its log is.
///
/// `Debug` prints the message verbatim, so `.unwrap()` and `?` in a test
/// show a readable multi-line report rather than an escaped string.
pub struct Error(String);

/// Result of harness operations.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }

    /// Prefixes the message with what the caller was doing.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Error(format!("{what}: {}", self.0))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}
