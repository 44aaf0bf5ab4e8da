//! The msgpack subset memberlist uses, written the way go-msgpack's default
//! `MsgpackHandle` writes it and read the way go-msgpack reads it.

use rmp::Marker;

use super::{WireError, MAX_STREAM_MESSAGE_BYTES};

// ---------------------------------------------------------------- writing

/// Map header (fixmap, map16, map32).
pub(crate) fn write_map_len(out: &mut Vec<u8>, n: usize) {
    if n < 16 {
        out.push(0x80 | n as u8);
    } else if n < 65536 {
        out.push(0xde);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdf);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// A legacy "raw" header: fixraw below 32 bytes, then raw16, then raw32.
/// There is deliberately no 8-bit form: go-msgpack (without `WriteExt`)
/// never writes str8, and old decoders would not understand it.
fn write_raw_len(out: &mut Vec<u8>, n: usize) {
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n < 65536 {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// A Go string (also used for map keys).
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    write_raw_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// A Go `[]byte` that is nil when empty: go-msgpack writes a nil slice as
/// msgpack nil.
pub(crate) fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    if b.is_empty() {
        out.push(0xc0);
    } else {
        write_raw_len(out, b.len());
        out.extend_from_slice(b);
    }
}

/// An unsigned Go integer: the smallest unsigned form.
pub(crate) fn write_uint(out: &mut Vec<u8>, v: u64) {
    if v <= 0x7f {
        out.push(v as u8);
    } else if v <= 0xff {
        out.extend_from_slice(&[0xcc, v as u8]);
    } else if v <= 0xffff {
        out.push(0xcd);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= 0xffff_ffff {
        out.push(0xce);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// A signed Go integer (`int`). go-msgpack skips int8 for positive values:
/// 0..=127 is a fixint, 128 is already an int16.
pub(crate) fn write_int(out: &mut Vec<u8>, v: i64) {
    if v > i64::from(i8::MAX) {
        if v <= i64::from(i16::MAX) {
            out.push(0xd1);
            out.extend_from_slice(&(v as i16).to_be_bytes());
        } else if v <= i64::from(i32::MAX) {
            out.push(0xd2);
            out.extend_from_slice(&(v as i32).to_be_bytes());
        } else {
            out.push(0xd3);
            out.extend_from_slice(&v.to_be_bytes());
        }
    } else if v >= -32 {
        out.push(v as i8 as u8);
    } else if v >= i64::from(i8::MIN) {
        out.extend_from_slice(&[0xd0, v as i8 as u8]);
    } else if v >= i64::from(i16::MIN) {
        out.push(0xd1);
        out.extend_from_slice(&(v as i16).to_be_bytes());
    } else if v >= i64::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(v as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// A Go bool.
pub(crate) fn write_bool(out: &mut Vec<u8>, v: bool) {
    out.push(if v { 0xc3 } else { 0xc2 });
}

// ---------------------------------------------------------------- reading

/// A cursor over a byte slice. Every read checks bounds first; running out
/// of input is always [`WireError::Truncated`].
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// How a struct was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StructForm {
    /// A map of `len` key/value pairs (go-msgpack's default).
    Map(usize),
    /// An array of `len` values in field declaration order.
    Array(usize),
    /// Msgpack nil: every field zero.
    Nil,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Takes the next `n` bytes.
    pub(crate) fn take(&mut self, n: usize, context: &str) -> Result<&'a [u8], WireError> {
        if n > self.remaining() {
            return Err(WireError::truncated(context, n, self.remaining()));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn byte(&mut self, context: &str) -> Result<u8, WireError> {
        Ok(self.take(1, context)?[0])
    }

    fn be(&mut self, n: usize, context: &str) -> Result<u64, WireError> {
        Ok(self
            .take(n, context)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn marker(&mut self, field: &str) -> Result<(u8, Marker), WireError> {
        let b = self.byte(field)?;
        Ok((b, Marker::from_u8(b)))
    }

    /// Reads any msgpack integer (or nil as 0) as an i128.
    fn integer(&mut self, field: &str, expected: &'static str) -> Result<i128, WireError> {
        let (b, m) = self.marker(field)?;
        Ok(match m {
            Marker::Null => 0,
            Marker::FixPos(v) => i128::from(v),
            Marker::FixNeg(v) => i128::from(v),
            Marker::U8 => i128::from(self.be(1, field)?),
            Marker::U16 => i128::from(self.be(2, field)?),
            Marker::U32 => i128::from(self.be(4, field)?),
            Marker::U64 => i128::from(self.be(8, field)?),
            Marker::I8 => i128::from(self.be(1, field)? as u8 as i8),
            Marker::I16 => i128::from(self.be(2, field)? as u16 as i16),
            Marker::I32 => i128::from(self.be(4, field)? as u32 as i32),
            Marker::I64 => i128::from(self.be(8, field)? as i64),
            _ => return Err(unexpected(field, expected, b)),
        })
    }

    /// An unsigned field of at most `max`, named `target` in errors.
    pub(crate) fn uint(
        &mut self,
        field: &str,
        max: u64,
        target: &'static str,
    ) -> Result<u64, WireError> {
        let v = self.integer(field, "an integer")?;
        if v < 0 || v > i128::from(max) {
            return Err(WireError::IntOutOfRange {
                field: field.to_string(),
                value: v,
                target,
            });
        }
        Ok(v as u64)
    }

    pub(crate) fn u32(&mut self, field: &str) -> Result<u32, WireError> {
        Ok(self.uint(field, u64::from(u32::MAX), "uint32")? as u32)
    }

    pub(crate) fn u16(&mut self, field: &str) -> Result<u16, WireError> {
        Ok(self.uint(field, u64::from(u16::MAX), "uint16")? as u16)
    }

    /// A Go `int` (64-bit).
    pub(crate) fn int(&mut self, field: &str) -> Result<i64, WireError> {
        let v = self.integer(field, "an integer")?;
        i64::try_from(v).map_err(|_| WireError::IntOutOfRange {
            field: field.to_string(),
            value: v,
            target: "int",
        })
    }

    pub(crate) fn bool(&mut self, field: &str) -> Result<bool, WireError> {
        let (b, m) = self.marker(field)?;
        match m {
            Marker::True => Ok(true),
            Marker::False | Marker::Null => Ok(false),
            _ => Err(unexpected(field, "a bool", b)),
        }
    }

    /// The length of a raw/str/bin value whose marker was `m`, or None if
    /// `m` is not one of those.
    fn blob_len(&mut self, m: Marker, field: &str) -> Result<Option<usize>, WireError> {
        let n = match m {
            Marker::FixStr(n) => u64::from(n),
            Marker::Str8 | Marker::Bin8 => self.be(1, field)?,
            Marker::Str16 | Marker::Bin16 => self.be(2, field)?,
            Marker::Str32 | Marker::Bin32 => self.be(4, field)?,
            _ => return Ok(None),
        };
        if n > MAX_STREAM_MESSAGE_BYTES as u64 {
            return Err(WireError::TooLarge {
                what: format!("{field}: declared length"),
                value: n,
                limit: MAX_STREAM_MESSAGE_BYTES as u64,
            });
        }
        Ok(Some(n as usize))
    }

    /// A Go `[]byte`: nil, any string or binary form, or (as go-msgpack
    /// also accepts) an array of small integers.
    pub(crate) fn byte_vec(&mut self, field: &str) -> Result<Vec<u8>, WireError> {
        Ok(match self.bytes_or_array(field)? {
            Blob::Borrowed(s) => s.to_vec(),
            Blob::Owned(v) => v,
        })
    }

    fn bytes_or_array(&mut self, field: &str) -> Result<Blob<'a>, WireError> {
        let (b, m) = self.marker(field)?;
        if m == Marker::Null {
            return Ok(Blob::Borrowed(&[]));
        }
        if let Some(n) = self.blob_len(m, field)? {
            return Ok(Blob::Borrowed(self.take(n, field)?));
        }
        let n = match m {
            Marker::FixArray(n) => usize::from(n),
            Marker::Array16 => self.be(2, field)? as usize,
            Marker::Array32 => self.be(4, field)? as usize,
            _ => return Err(unexpected(field, "a byte string", b)),
        };
        // Every element takes at least one byte.
        if n > self.remaining() {
            return Err(WireError::truncated(field, n, self.remaining()));
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.uint(field, 255, "uint8")? as u8);
        }
        Ok(Blob::Owned(v))
    }

    /// A Go string. Gossamer requires UTF-8.
    pub(crate) fn string(&mut self, field: &str) -> Result<String, WireError> {
        let (b, m) = self.marker(field)?;
        if m == Marker::Null {
            return Ok(String::new());
        }
        let Some(n) = self.blob_len(m, field)? else {
            return Err(unexpected(field, "a string", b));
        };
        let s = self.take(n, field)?;
        String::from_utf8(s.to_vec()).map_err(|_| WireError::InvalidUtf8 {
            field: field.to_string(),
        })
    }

    /// The start of a struct: a map, an array, or nil.
    pub(crate) fn struct_form(&mut self, name: &str) -> Result<StructForm, WireError> {
        let (b, m) = self.marker(name)?;
        Ok(match m {
            Marker::Null => StructForm::Nil,
            Marker::FixMap(n) => StructForm::Map(usize::from(n)),
            Marker::Map16 => StructForm::Map(self.be(2, name)? as usize),
            Marker::Map32 => StructForm::Map(self.be(4, name)? as usize),
            Marker::FixArray(n) => StructForm::Array(usize::from(n)),
            Marker::Array16 => StructForm::Array(self.be(2, name)? as usize),
            Marker::Array32 => StructForm::Array(self.be(4, name)? as usize),
            _ => return Err(unexpected(name, "a map (struct)", b)),
        })
    }

    /// A map key naming a struct field (any string or binary form).
    pub(crate) fn key(&mut self, name: &str) -> Result<&'a [u8], WireError> {
        let (b, m) = self.marker(name)?;
        match self.blob_len(m, name)? {
            Some(n) => self.take(n, name),
            None => Err(unexpected(name, "a string map key", b)),
        }
    }

    /// Skips one complete value of any kind, without recursion.
    pub(crate) fn skip(&mut self, field: &str) -> Result<(), WireError> {
        let mut pending: usize = 1;
        while pending > 0 {
            pending -= 1;
            let (b, m) = self.marker(field)?;
            let (payload, children) = match m {
                Marker::FixPos(_)
                | Marker::FixNeg(_)
                | Marker::Null
                | Marker::True
                | Marker::False => (0, 0),
                Marker::U8 | Marker::I8 => (1, 0),
                Marker::U16 | Marker::I16 => (2, 0),
                Marker::U32 | Marker::I32 | Marker::F32 => (4, 0),
                Marker::U64 | Marker::I64 | Marker::F64 => (8, 0),
                Marker::FixStr(_)
                | Marker::Str8
                | Marker::Str16
                | Marker::Str32
                | Marker::Bin8
                | Marker::Bin16
                | Marker::Bin32 => (self.blob_len(m, field)?.unwrap_or(0), 0),
                Marker::FixExt1 => (2, 0),
                Marker::FixExt2 => (3, 0),
                Marker::FixExt4 => (5, 0),
                Marker::FixExt8 => (9, 0),
                Marker::FixExt16 => (17, 0),
                Marker::Ext8 => (self.be(1, field)? as usize + 1, 0),
                Marker::Ext16 => (self.be(2, field)? as usize + 1, 0),
                Marker::Ext32 => (self.be(4, field)? as usize + 1, 0),
                Marker::FixArray(n) => (0, usize::from(n)),
                Marker::Array16 => (0, self.be(2, field)? as usize),
                Marker::Array32 => (0, self.be(4, field)? as usize),
                Marker::FixMap(n) => (0, 2 * usize::from(n)),
                Marker::Map16 => (0, 2 * self.be(2, field)? as usize),
                Marker::Map32 => (0, 2 * self.be(4, field)? as usize),
                Marker::Reserved => return Err(unexpected(field, "a msgpack value", b)),
            };
            self.take(payload, field)?;
            pending = pending.saturating_add(children);
            // Every pending value needs at least one more byte; fail now
            // rather than loop over a declared count the input cannot hold.
            if pending > self.remaining() {
                return Err(WireError::truncated(field, pending, self.remaining()));
            }
        }
        Ok(())
    }
}

enum Blob<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

fn unexpected(field: &str, expected: &'static str, marker: u8) -> WireError {
    WireError::UnexpectedMarker {
        field: field.to_string(),
        expected,
        marker,
    }
}

/// A Go struct that memberlist sends as a msgpack map.
pub(crate) trait GoStruct: Default {
    /// The Go type name, for error messages.
    const NAME: &'static str;
    /// Field names in Go declaration order (used for the array form).
    const FIELDS: &'static [&'static str];

    /// Writes the struct as go-msgpack does: sorted keys, omitempty
    /// fields left out when zero.
    fn encode(&self, out: &mut Vec<u8>);

    /// Reads the value of field `key`; returns false for an unknown field
    /// (the caller then skips its value).
    fn decode_field(&mut self, key: &[u8], r: &mut Reader<'_>) -> Result<bool, WireError>;

    /// Reads a struct in any accepted form.
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let mut v = Self::default();
        match r.struct_form(Self::NAME)? {
            StructForm::Nil => {}
            StructForm::Map(n) => {
                for _ in 0..n {
                    let key = r.key(Self::NAME)?;
                    if !v.decode_field(key, r)? {
                        r.skip(Self::NAME)?;
                    }
                }
            }
            StructForm::Array(n) => {
                for i in 0..n {
                    match Self::FIELDS.get(i) {
                        Some(name) => {
                            v.decode_field(name.as_bytes(), r)?;
                        }
                        None => r.skip(Self::NAME)?,
                    }
                }
            }
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        write_int(&mut out, v);
        out
    }

    fn uint(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        write_uint(&mut out, v);
        out
    }

    #[test]
    fn ints_use_go_msgpack_forms() {
        assert_eq!(int(0), [0x00]);
        assert_eq!(int(127), [0x7f]);
        assert_eq!(int(128), [0xd1, 0x00, 0x80]);
        assert_eq!(int(200), [0xd1, 0x00, 0xc8]);
        assert_eq!(int(40000), [0xd2, 0x00, 0x00, 0x9c, 0x40]);
        assert_eq!(int(-1), [0xff]);
        assert_eq!(int(-33), [0xd0, 0xdf]);
        assert_eq!(uint(128), [0xcc, 0x80]);
        assert_eq!(uint(256), [0xcd, 0x01, 0x00]);
        assert_eq!(uint(70000), [0xce, 0x00, 0x01, 0x11, 0x70]);
    }

    #[test]
    fn raw_forms_never_use_str8() {
        let mut out = Vec::new();
        write_str(&mut out, &"x".repeat(31));
        assert_eq!(out[0], 0xbf);
        out.clear();
        write_str(&mut out, &"x".repeat(32));
        assert_eq!(&out[..3], &[0xda, 0x00, 0x20]);
        out.clear();
        write_bytes(&mut out, &[]);
        assert_eq!(out, [0xc0]);
        out.clear();
        write_bytes(&mut out, &vec![1; 70000]);
        assert_eq!(&out[..5], &[0xdb, 0x00, 0x01, 0x11, 0x70]);
    }

    #[test]
    fn reads_every_integer_width() {
        for (bytes, want) in [
            (&[0x05][..], 5u64),
            (&[0xcc, 0xff], 255),
            (&[0xcd, 0x01, 0x00], 256),
            (&[0xd0, 0x05], 5),
            (&[0xd1, 0x00, 0x80], 128),
            (&[0xd3, 0, 0, 0, 0, 0, 0, 0, 9], 9),
            (&[0xcf, 0, 0, 0, 0, 0, 0, 0, 9], 9),
            (&[0xc0], 0),
        ] {
            assert_eq!(Reader::new(bytes).u32("x").unwrap(), want as u32);
        }
        assert!(matches!(
            Reader::new(&[0xff]).u32("x"),
            Err(WireError::IntOutOfRange { value: -1, .. })
        ));
        assert!(matches!(
            Reader::new(&[0xce, 0, 1, 0, 0]).u16("x"),
            Err(WireError::IntOutOfRange { .. })
        ));
    }

    #[test]
    fn reads_new_string_and_bin_forms() {
        assert_eq!(
            Reader::new(&[0xd9, 2, b'h', b'i']).string("x").unwrap(),
            "hi"
        );
        assert_eq!(
            Reader::new(&[0xc4, 2, 1, 2]).byte_vec("x").unwrap(),
            vec![1, 2]
        );
        assert_eq!(
            Reader::new(&[0xc5, 0, 1, 7]).byte_vec("x").unwrap(),
            vec![7]
        );
        assert_eq!(
            Reader::new(&[0x93, 1, 5, 0xcc, 200]).byte_vec("x").unwrap(),
            vec![1, 5, 200]
        );
        assert!(Reader::new(&[0xc0]).byte_vec("x").unwrap().is_empty());
    }

    #[test]
    fn skip_is_iterative_and_bounded() {
        // Deeply nested arrays do not recurse.
        let mut deep = vec![0x91; 100_000];
        deep.push(0x01);
        let mut r = Reader::new(&deep);
        r.skip("x").unwrap();
        assert_eq!(r.remaining(), 0);
        // A huge declared map fails fast.
        let err = Reader::new(&[0xdf, 0xff, 0xff, 0xff, 0xff])
            .skip("x")
            .unwrap_err();
        assert!(err.is_truncated());
        // Reserved marker.
        assert!(Reader::new(&[0xc1]).skip("x").is_err());
    }

    #[test]
    fn huge_declared_lengths_are_rejected_before_waiting() {
        let err = Reader::new(&[0xdb, 0xff, 0xff, 0xff, 0xff])
            .byte_vec("x")
            .unwrap_err();
        assert!(matches!(err, WireError::TooLarge { .. }), "{err}");
    }
}
