//! Short, stable names for keys and networks.

use sha2::{Digest, Sha256};

/// A key's fingerprint: `sha256:` and the first 8 hex digits of the SHA-256
/// of its bytes, exactly as the sidecar's keyring prints it. It is the only
/// thing about a key that logs, Events, status and metrics ever show.
pub fn fingerprint(key: &[u8]) -> String {
    let d = Sha256::digest(key);
    format!("sha256:{}", hex::encode(&d[..4]))
}

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
    fn fingerprint_is_the_sidecars_format() {
        // sha256("") = e3b0c442...
        assert_eq!(fingerprint(b""), "sha256:e3b0c442");
        assert_eq!(fingerprint(&[0u8; 32]).len(), "sha256:".len() + 8);
    }

    #[test]
    fn network_ids_are_12_hex_digits_and_stable() {
        let a = network_id("2f1c9a34-0000-4000-8000-000000000001");
        assert_eq!(a.len(), 12);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, network_id("2f1c9a34-0000-4000-8000-000000000001"));
        assert_ne!(a, network_id("2f1c9a34-0000-4000-8000-000000000002"));
    }
}
