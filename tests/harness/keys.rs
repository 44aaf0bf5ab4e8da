//! Keyring commands of the peer protocol (`add_key`, `use_key`,
//! `remove_key`, `keys`, `set_verify`, `stats.decrypt_failures`), for both
//! kinds of peer.

use serde_json::{json, Value};

use crate::error::Result;
use crate::peer::{Peer, CMD_TIMEOUT};

/// A peer's keyring as its `keys` reply shows it: fingerprints only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    /// Fingerprint of the primary key, if any.
    pub primary: Option<String>,
    /// Fingerprints of all keys, primary first.
    pub keys: Vec<String>,
}

/// The fingerprint both kinds of peer show for the key `hex`: `sha256:`
/// and the first 8 hex digits of the SHA-256 of its bytes.
///
/// # Panics
/// If `hex` is not hex.
pub fn fingerprint(hex: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(decode_hex(hex));
    format!(
        "sha256:{}",
        digest[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

fn decode_hex(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2), "odd hex length");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex key"))
        .collect()
}

impl Peer {
    fn key_request(&self, cmd: Value) -> Result<()> {
        let name = cmd["cmd"].as_str().unwrap_or_default().to_string();
        let answer = self.request(
            &cmd,
            |e| e["cmd"] == name.as_str() && (e["ev"] == "ok" || e["ev"] == "error"),
            CMD_TIMEOUT,
        )?;
        if answer["ev"] == "ok" {
            Ok(())
        } else {
            Err(crate::Error::new(format!(
                "{} {name} failed: {}",
                self.name(),
                answer["error"]
            )))
        }
    }

    /// `add_key`: installs the key `hex` (primary if the ring was empty).
    ///
    /// # Errors
    /// With the peer's error text, or on timeout.
    pub fn add_key(&self, hex: &str) -> Result<()> {
        self.key_request(json!({"cmd": "add_key", "key": hex}))
    }

    /// `use_key`: makes the installed key `hex` the primary.
    ///
    /// # Errors
    /// With the peer's error text (e.g. the key is not installed).
    pub fn use_key(&self, hex: &str) -> Result<()> {
        self.key_request(json!({"cmd": "use_key", "key": hex}))
    }

    /// `remove_key`: removes the key `hex`.
    ///
    /// # Errors
    /// With the peer's error text (e.g. it is the primary).
    pub fn remove_key(&self, hex: &str) -> Result<()> {
        self.key_request(json!({"cmd": "remove_key", "key": hex}))
    }

    /// `set_verify`: memberlist's GossipVerifyIncoming/Outgoing.
    ///
    /// # Errors
    /// With the peer's error text, or on timeout.
    pub fn set_verify(&self, incoming: bool, outgoing: bool) -> Result<()> {
        self.key_request(json!({"cmd": "set_verify", "incoming": incoming, "outgoing": outgoing}))
    }

    /// `keys`: the keyring's fingerprints.
    ///
    /// # Errors
    /// On timeout.
    pub fn keys(&self) -> Result<Keys> {
        let v = self.request(&json!({"cmd": "keys"}), |e| e["ev"] == "keys", CMD_TIMEOUT)?;
        Ok(Keys {
            primary: v["primary"].as_str().map(str::to_string),
            keys: v["keys"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// `decrypt_failures` of a `stats` reply.
    ///
    /// # Errors
    /// On timeout, or if the peer's stats lack the field.
    pub fn decrypt_failures(&self) -> Result<u64> {
        let v = self.request(
            &json!({"cmd": "stats"}),
            |e| e["ev"] == "stats",
            CMD_TIMEOUT,
        )?;
        v["decrypt_failures"]
            .as_u64()
            .ok_or_else(|| self.report("stats reply has no decrypt_failures"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprint_is_a_sha256_prefix() {
        // SHA-256 of sixteen zero bytes starts 374708ff.
        assert_eq!(
            super::fingerprint("00000000000000000000000000000000"),
            "sha256:374708ff"
        );
    }
}
