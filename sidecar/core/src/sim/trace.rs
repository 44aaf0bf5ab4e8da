//! A stable 64-bit fingerprint of a run (FNV-1a), the same on every
//! platform and Rust version, unlike `std`'s hashers.

/// FNV-1a, 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv64 {
    /// The FNV offset basis.
    pub fn new() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }

    /// Mixes in `bytes`.
    pub fn mix(&mut self, bytes: &[u8]) -> &mut Self {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// Mixes in `v`, little-endian.
    pub fn mix_u64(&mut self, v: u64) -> &mut Self {
        self.mix(&v.to_le_bytes())
    }

    /// The hash so far.
    pub fn value(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(Fnv64::new().value(), 0xcbf2_9ce4_8422_2325);
        assert_eq!(Fnv64::new().mix(b"a").value(), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(Fnv64::new().mix(b"foobar").value(), 0x8594_4171_f739_67e8);
    }
}
