//! The `compress` wrapper: LZW (LSB bit order, 8-bit literals, as Go's
//! `compress/lzw`) inside a msgpack `{Algo, Buf}` map.

use weezl::{decode::Decoder, BitOrder, LzwStatus};

use super::messages::CompressMsg;
use super::msgpack::{GoStruct, Reader};
use super::{MessageType, WireError, MAX_DECOMPRESSED_BYTES};

/// The only algorithm memberlist defines.
const LZW_ALGO: u64 = 0;
const LZW_LIT_WIDTH: u8 = 8;

/// The clear code for 8-bit literals; the end code is one more.
const CLEAR: u32 = 1 << LZW_LIT_WIDTH;
const END: u32 = CLEAR + 1;
/// Go's encoder resets its table when the last assigned code reaches this
/// value, so codes never need more than 12 bits.
const LAST_CODE: u32 = (1 << 12) - 1;
/// Slots of the encoder's hash table (Go's size).
const TABLE_SIZE: usize = 1 << 14;
const TABLE_MASK: usize = TABLE_SIZE - 1;

/// LZW-compresses `data` byte for byte as Go's
/// `lzw.NewWriter(w, lzw.LSB, 8)` does.
///
/// Written here rather than with weezl's encoder (weezl is used for
/// decoding) because the two differ once the code table fills up: Go emits
/// a clear code and starts over as soon as code 4095 is assigned, weezl one
/// code later. Both streams decode correctly anywhere, but only Go's policy
/// gives identical bytes for payloads of more than a few kilobytes.
pub fn lzw_compress(data: &[u8]) -> Vec<u8> {
    let mut w = BitWriter::default();
    let Some((&first, rest)) = data.split_first() else {
        // Go writes nothing until the first byte, then clear and end.
        w.put(CLEAR, 9);
        w.put(END, 9);
        return w.finish();
    };
    // Open addressing as Go's encoder does it: entries are `key << 12 |
    // code` (keys are 20 bits, codes 12), 0 is empty; much faster than a
    // SipHash map on this per-byte path, and the output is the same.
    let mut table = vec![0u32; TABLE_SIZE];
    let mut width = 9u32;
    let mut last = END; // the most recently assigned code
    let mut cur = u32::from(first);
    w.put(CLEAR, width);

    // Accounts for one emitted code: the decoder assigns a code per code it
    // reads after the first, so the encoder's next code and width follow.
    // Returns false when the table was reset instead.
    let advance = |w: &mut BitWriter, width: &mut u32, last: &mut u32| -> bool {
        *last += 1;
        if *last == 1 << *width {
            *width += 1;
        }
        if *last == LAST_CODE {
            w.put(CLEAR, *width);
            *width = 9;
            *last = END;
            return false;
        }
        true
    };

    for &byte in rest {
        let key = (cur << 8) | u32::from(byte);
        let mut h = ((key >> 12) ^ key) as usize & TABLE_MASK;
        let mut found = None;
        while table[h] != 0 {
            if table[h] >> 12 == key {
                found = Some(table[h] & LAST_CODE);
                break;
            }
            h = (h + 1) & TABLE_MASK;
        }
        if let Some(code) = found {
            cur = code;
            continue;
        }
        w.put(cur, width);
        if advance(&mut w, &mut width, &mut last) {
            // `h` is the empty slot the probe stopped at.
            table[h] = (key << 12) | last;
        } else {
            table.iter_mut().for_each(|e| *e = 0);
        }
        cur = u32::from(byte);
    }
    w.put(cur, width);
    advance(&mut w, &mut width, &mut last);
    w.put(END, width);
    w.finish()
}

/// Packs codes least-significant bit first.
#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    bits: u64,
    n: u32,
}

impl BitWriter {
    fn put(&mut self, code: u32, width: u32) {
        self.bits |= u64::from(code) << self.n;
        self.n += width;
        while self.n >= 8 {
            self.out.push(self.bits as u8);
            self.bits >>= 8;
            self.n -= 8;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.bits as u8);
        }
        self.out
    }
}

/// LZW-decompresses `data`, failing if the output would exceed `limit`
/// bytes or the data is corrupt or ends without an end code (Go's reader
/// reports that as an unexpected EOF too).
pub fn lzw_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, WireError> {
    let mut dec = Decoder::new(BitOrder::Lsb, LZW_LIT_WIDTH);
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut inp = data;
    loop {
        let res = dec.decode_bytes(inp, &mut chunk);
        inp = &inp[res.consumed_in..];
        if out.len() + res.consumed_out > limit {
            return Err(WireError::TooLarge {
                what: "decompressed message".into(),
                value: (out.len() + res.consumed_out) as u64,
                limit: limit as u64,
            });
        }
        out.extend_from_slice(&chunk[..res.consumed_out]);
        match res.status {
            Ok(LzwStatus::Done) => return Ok(out),
            Ok(LzwStatus::Ok) => {}
            Ok(LzwStatus::NoProgress) => {
                return Err(WireError::Lzw(
                    "data ends without an end-of-data code".into(),
                ))
            }
            Err(e) => return Err(WireError::Lzw(e.to_string())),
        }
    }
}

/// Wraps `payload` (one or more encoded messages) as
/// `[9][msgpack compress{Algo: 0, Buf: lzw(payload)}]`.
pub fn compress_payload(payload: &[u8]) -> Vec<u8> {
    let msg = CompressMsg {
        algo: LZW_ALGO,
        buf: lzw_compress(payload),
    };
    let mut out = vec![MessageType::Compress as u8];
    msg.encode(&mut out);
    out
}

/// Reads a compress wrapper's msgpack body (the bytes after the type byte
/// 9) from `r` and returns the decompressed payload.
pub(crate) fn read_compressed(r: &mut Reader<'_>) -> Result<Vec<u8>, WireError> {
    let msg = CompressMsg::decode(r)?;
    if msg.algo != LZW_ALGO {
        return Err(WireError::UnknownCompression(msg.algo));
    }
    lzw_decompress(&msg.buf, MAX_DECOMPRESSED_BYTES)
}

/// Decompresses a compress wrapper given its body (the bytes after the
/// type byte 9); trailing bytes are ignored, as memberlist ignores them.
pub fn decompress_payload(body: &[u8]) -> Result<Vec<u8>, WireError> {
    read_compressed(&mut Reader::new(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        for data in [&b""[..], b"a", b"abababababababab", &[7u8; 10_000]] {
            let c = compress_payload(data);
            assert_eq!(c[0], 9);
            assert_eq!(decompress_payload(&c[1..]).unwrap(), data);
        }
    }

    #[test]
    fn go_empty_stream() {
        // Go's writer emits clear (256) then end (257) for empty input.
        assert_eq!(lzw_compress(b""), vec![0x00, 0x03, 0x02]);
    }

    #[test]
    fn table_resets_roundtrip() {
        // Pseudo-random bytes fill the 12-bit table several times.
        let mut x = 1u32;
        let data: Vec<u8> = (0..100_000)
            .map(|_| {
                x = x.wrapping_mul(1103515245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        assert_eq!(
            lzw_decompress(&lzw_compress(&data), usize::MAX).unwrap(),
            data
        );
        let runs: Vec<u8> = (0..200_000u32).map(|i| (i / 3 % 7) as u8).collect();
        assert_eq!(
            lzw_decompress(&lzw_compress(&runs), usize::MAX).unwrap(),
            runs
        );
    }

    #[test]
    fn limit_and_corruption() {
        let c = lzw_compress(&[0u8; 100_000]);
        assert!(matches!(
            lzw_decompress(&c, 1000),
            Err(WireError::TooLarge { .. })
        ));
        assert!(lzw_decompress(&c[..c.len() / 2], usize::MAX).is_err());
        assert!(lzw_decompress(&[0xff; 10], usize::MAX).is_err());
    }

    #[test]
    fn unknown_algorithm() {
        let msg = CompressMsg {
            algo: 1,
            buf: vec![],
        };
        let mut out = vec![];
        msg.encode(&mut out);
        assert_eq!(
            decompress_payload(&out).unwrap_err(),
            WireError::UnknownCompression(1)
        );
    }
}
