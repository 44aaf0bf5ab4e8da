//! Errors for everything that reads memberlist bytes.

/// Why a packet, stream or message could not be decoded. Messages name the
/// offending message type, field, value or length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The buffer was empty where a message type byte was expected.
    #[error("empty message: missing the message type byte")]
    Empty,
    /// The input ended early. On a stream this means "wait for more bytes";
    /// in a packet it is fatal.
    #[error("truncated {context}: needs {needed} bytes but only {available} remain")]
    Truncated {
        /// What was being read.
        context: String,
        /// Bytes needed from the current position.
        needed: usize,
        /// Bytes left in the buffer.
        available: usize,
    },
    /// A type byte memberlist does not define.
    #[error("unknown message type byte {0}")]
    UnknownType(u8),
    /// A defined type byte in a place it cannot appear.
    #[error("message type {ty} is not allowed {context}")]
    UnexpectedType {
        /// The type byte and its name.
        ty: String,
        /// Where it was found, e.g. "in a single packet message".
        context: &'static str,
    },
    /// A msgpack value of the wrong kind.
    #[error("{field}: expected {expected}, found msgpack marker 0x{marker:02x}")]
    UnexpectedMarker {
        /// `Struct.Field` (or a description of the position).
        field: String,
        /// What kind of value was expected.
        expected: &'static str,
        /// The marker byte found.
        marker: u8,
    },
    /// An integer that does not fit the Go field's type.
    #[error("{field}: integer {value} is out of range for {target}")]
    IntOutOfRange {
        /// `Struct.Field`.
        field: String,
        /// The decoded value.
        value: i128,
        /// The target type, e.g. "uint16".
        target: &'static str,
    },
    /// A string field (node name, label, error text) that is not UTF-8.
    #[error("{field}: string is not valid UTF-8")]
    InvalidUtf8 {
        /// `Struct.Field` or "label".
        field: String,
    },
    /// A length, count or size over one of memberlist's limits.
    #[error("{what} is {value}, over the limit of {limit}")]
    TooLarge {
        /// What was measured.
        what: String,
        /// The declared or actual size.
        value: u64,
        /// The limit.
        limit: u64,
    },
    /// A negative count or length in a push/pull or user message header.
    #[error("{what} is negative ({value})")]
    Negative {
        /// Which header field.
        what: &'static str,
        /// The value.
        value: i64,
    },
    /// The compound header's length table is cut short.
    #[error(
        "compound message declares {parts} parts but only {available} length bytes follow (needs {needed})"
    )]
    CompoundLengths {
        /// Declared part count.
        parts: usize,
        /// Bytes needed for the length table (2 per part).
        needed: usize,
        /// Bytes present after the count byte.
        available: usize,
    },
    /// A compound part runs past the end of the packet; this and the
    /// following parts are lost.
    #[error(
        "compound part {index} of {parts} declares {len} bytes but only {available} remain ({missing} parts lost)"
    )]
    CompoundPartTruncated {
        /// Zero-based index of the first missing part.
        index: usize,
        /// Declared part count.
        parts: usize,
        /// Declared length of part `index`.
        len: usize,
        /// Bytes left in the packet.
        available: usize,
        /// Parts that could not be read (`parts - index`).
        missing: usize,
    },
    /// The CRC in a `HasCrc` header does not match the payload.
    #[error("CRC mismatch: header says {expected:08x}, payload hashes to {actual:08x}")]
    CrcMismatch {
        /// CRC32 carried in the header.
        expected: u32,
        /// CRC32 of the payload.
        actual: u32,
    },
    /// A label header with a zero length byte.
    #[error("label header is present but declares an empty label")]
    EmptyLabel,
    /// A label longer than 255 bytes.
    #[error("label is {0} bytes long; labels are at most 255 bytes")]
    LabelTooLong(usize),
    /// A compress wrapper naming an algorithm other than LZW (0).
    #[error("cannot decompress unknown algorithm {0} (only 0, LZW, is defined)")]
    UnknownCompression(u64),
    /// The LZW stream is corrupt or ends without its end code.
    #[error("invalid LZW data: {0}")]
    Lzw(String),
    /// A compressed stream message that decompresses to nothing.
    #[error("decompressed message is empty")]
    DecompressedEmpty,
    /// A message inside a compressed wrapper is cut short (it cannot grow).
    #[error("inside compressed data: {0}")]
    InsideCompressed(Box<WireError>),
    /// Compound and compress wrappers nested deeper than Gossamer allows.
    #[error("wrappers nested more than {0} deep")]
    TooDeep(usize),
    /// An encrypted stream (type 10) reached the plaintext decoder.
    #[error("stream is encrypted (message type 10); decrypt it with the keyring before decoding")]
    Encrypted,
}

impl WireError {
    /// True if this error only means the input ended early, so a stream
    /// reader should wait for more bytes.
    pub fn is_truncated(&self) -> bool {
        matches!(self, WireError::Truncated { .. })
    }

    pub(crate) fn truncated(context: impl Into<String>, needed: usize, available: usize) -> Self {
        WireError::Truncated {
            context: context.into(),
            needed,
            available,
        }
    }
}
