//! A short, stable name for a network. (A key's short name, its
//! fingerprint, is the engine's: `gossamer_core::keyring::Fingerprint`.)

use sha2::{Digest, Sha256};

/// A network's stable wire id: the first 12 hex digits of the SHA-256 of
/// the GossipNetwork's uid. A network deleted and created again under the
/// same name is a new network, as a NetworkDB network id is.
pub fn network_id(uid: &str) -> String {
    let d = Sha256::digest(uid.as_bytes());
    hex::encode(&d[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_ids_are_12_hex_digits_and_stable() {
        let a = network_id("2f1c9a34-0000-4000-8000-000000000001");
        assert_eq!(a.len(), 12);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, network_id("2f1c9a34-0000-4000-8000-000000000001"));
        assert_ne!(a, network_id("2f1c9a34-0000-4000-8000-000000000002"));
    }
}
