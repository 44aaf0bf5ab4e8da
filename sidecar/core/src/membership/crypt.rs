//! Encryption in the core: sealing and opening packets and streams as
//! memberlist does, keyring commands, and decrypt-failure accounting.
//!
//! When to encrypt and what to accept (memberlist v0.7.0):
//!
//! | keys | verify-outgoing | sends | verify-incoming | accepts |
//! |---|---|---|---|---|
//! | none | – | plain | – | plain (an encrypted stream is refused) |
//! | some | off | plain | off | encrypted with any key, or plain |
//! | some | on | encrypted (primary key) | on | encrypted with any key only |
//!
//! Packets carry the cluster label as additional data; encrypted stream
//! frames carry `[10][length]` followed by the label.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::codec::StreamCodecError;
use super::Membership;
use crate::keyring::{seal_stream_frame, EncryptionVersion, Fingerprint, Key, KeyringError};
use crate::wire::{self, StreamMessage};

/// A peer's decrypt failures are logged at most this often.
const DECRYPT_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Peers whose decrypt failures are counted one by one; failures from
/// further addresses only count in the total (bounds memory against spoofed
/// sources).
const MAX_TRACKED_PEERS: usize = 1024;

/// One peer's decrypt failures.
#[derive(Debug, Default, Clone)]
pub(super) struct PeerFailures {
    count: u64,
    last_logged: Option<Instant>,
    unlogged: u64,
}

/// Decrypt failures per sender address.
#[derive(Debug, Default)]
pub(super) struct DecryptFailures {
    peers: HashMap<SocketAddr, PeerFailures>,
}

impl<D: super::Delegate> Membership<D> {
    fn encryption_on(&self) -> bool {
        !self.keyring.is_empty()
    }

    fn encrypts(&self) -> bool {
        self.encryption_on() && self.cfg.gossip_verify_outgoing
    }

    /// The payload layout this node writes.
    pub(super) fn encryption_version(&self) -> EncryptionVersion {
        EncryptionVersion::for_protocol(self.cfg.protocol_version)
    }

    /// Encrypts a packet body (after compression and CRC) when this node
    /// encrypts; the label is the additional data.
    pub(super) fn seal_packet(&mut self, body: Vec<u8>) -> Vec<u8> {
        if !self.encrypts() {
            return body;
        }
        let mut out = Vec::new();
        let vsn = self.encryption_version();
        match self.keyring.encrypt(
            vsn,
            &body,
            self.cfg.label.as_bytes(),
            &mut self.nonces,
            &mut out,
        ) {
            Ok(()) => out,
            // encrypts() checked for a primary key.
            Err(_) => body,
        }
    }

    /// Bytes to keep free in a packet for encryption: memberlist reserves
    /// the maximum overhead whenever keys are installed.
    pub(super) fn seal_overhead(&self) -> usize {
        if self.encryption_on() {
            self.encryption_version().max_overhead()
        } else {
            0
        }
    }

    /// Decrypts a received packet body (label removed). `None`: refused,
    /// and counted.
    pub(super) fn open_packet(
        &mut self,
        from: SocketAddr,
        body: &[u8],
        now: Instant,
    ) -> Option<Vec<u8>> {
        if !self.encryption_on() {
            return Some(body.to_vec());
        }
        match self.keyring.decrypt(body, self.cfg.label.as_bytes()) {
            Ok(plain) => Some(plain),
            // Moving from plain to encrypted: take it as plain.
            Err(_) if !self.cfg.gossip_verify_incoming => Some(body.to_vec()),
            Err(e) => {
                self.record_decrypt_failure(from, &format!("packet: {e}"), now);
                None
            }
        }
    }

    /// Encodes a stream message as this node sends it: compressed if
    /// enabled, encrypted if this node encrypts, and with `outbound` the
    /// label header that opens a connection.
    pub(super) fn seal_stream(&mut self, msg: &StreamMessage, outbound: bool) -> Vec<u8> {
        let mut body = wire::encode_stream(msg, self.cfg.enable_compression);
        if self.encrypts() {
            let vsn = self.encryption_version();
            if let Ok(framed) =
                seal_stream_frame(&self.keyring, vsn, &body, &self.cfg.label, &mut self.nonces)
            {
                body = framed;
            }
        }
        if outbound {
            wire::add_label_header(&self.cfg.label, &body)
        } else {
            body
        }
    }

    /// Counts a packet or stream from `from` that could not be decrypted,
    /// and logs it with the sender's address, at most once per 10 seconds
    /// per sender.
    pub fn record_decrypt_failure(&mut self, from: SocketAddr, reason: &str, now: Instant) {
        self.stats.decrypt_failures += 1;
        let peers = &mut self.decrypt_failures.peers;
        if !peers.contains_key(&from) && peers.len() >= MAX_TRACKED_PEERS {
            debug!(%from, reason, "cannot decrypt (sender not tracked: too many failing senders)");
            return;
        }
        let p = peers.entry(from).or_default();
        p.count += 1;
        let due = p
            .last_logged
            .is_none_or(|t| now.saturating_duration_since(t) >= DECRYPT_LOG_INTERVAL);
        if due {
            warn!(
                %from,
                reason,
                failures = p.count,
                unlogged = p.unlogged,
                keys = %fingerprint_list(&self.keyring.fingerprints()),
                "cannot decrypt gossip from this sender: it uses a key this node does not hold, or encryption settings differ"
            );
            p.last_logged = Some(now);
            p.unlogged = 0;
        } else {
            p.unlogged += 1;
        }
    }

    /// Handles a stream message that could not be read from an accepted
    /// connection: counts and logs it, and returns the error reply to send,
    /// as memberlist does (none for a label mismatch: the stream is
    /// dropped).
    pub fn handle_stream_error(
        &mut self,
        from: SocketAddr,
        error: &StreamCodecError,
        now: Instant,
    ) -> Option<Vec<u8>> {
        if self.shut_down {
            return None;
        }
        match error {
            StreamCodecError::Label { .. } => {
                self.stats.label_mismatches += 1;
                warn!(%from, error = %error, "refused a stream from another cluster");
                return None;
            }
            e if e.is_decrypt_failure() => {
                self.record_decrypt_failure(from, &format!("stream: {e}"), now);
            }
            e => {
                self.stats.malformed += 1;
                debug!(%from, error = %e, "refused inbound stream");
            }
        }
        let reply = StreamMessage::Err(wire::ErrResp {
            error: error.to_string(),
        });
        Some(self.seal_stream(&reply, false))
    }

    // ----- keyring commands ------------------------------------------------

    /// Installs `key` for decryption (memberlist `AddKey`, NetworkDB
    /// `SetKey`); on an empty keyring it becomes the primary and this node
    /// starts encrypting (subject to verify-outgoing). Adding an installed
    /// key changes nothing; returns whether it was added.
    pub fn add_key(&mut self, key: Key) -> bool {
        let fp = key.fingerprint();
        let added = self.keyring.add(key);
        if added {
            info!(key = %fp, keys = self.keyring.len(), "key installed");
        }
        added
    }

    /// Makes an installed key the one that encrypts (memberlist `UseKey`,
    /// NetworkDB `SetPrimaryKey`). Every peer should hold it first.
    ///
    /// # Errors
    /// The key is not installed.
    pub fn use_key(&mut self, key: &Key) -> Result<(), KeyringError> {
        self.keyring.use_key(key)?;
        info!(key = %key.fingerprint(), "primary key switched");
        Ok(())
    }

    /// Removes a key (memberlist `RemoveKey`, NetworkDB `RemoveKey`);
    /// removing a key that is not installed changes nothing (returns false).
    ///
    /// # Errors
    /// The key is the primary: make another primary first.
    pub fn remove_key(&mut self, key: &Key) -> Result<bool, KeyringError> {
        let removed = self.keyring.remove(key)?;
        if removed {
            info!(key = %key.fingerprint(), keys = self.keyring.len(), "key removed");
        }
        Ok(removed)
    }

    /// Fingerprints of the installed keys, primary first.
    pub fn keyring_fingerprints(&self) -> Vec<Fingerprint> {
        self.keyring.fingerprints()
    }

    /// The keyring in force.
    pub fn keyring(&self) -> &crate::keyring::Keyring {
        &self.keyring
    }

    /// Sets memberlist's `GossipVerifyIncoming` and `GossipVerifyOutgoing`
    /// at run time, to move a running cluster from plain to encrypted
    /// gossip in steps: install the key everywhere with both off, then turn
    /// outgoing on everywhere, then incoming.
    pub fn set_gossip_verify(&mut self, incoming: bool, outgoing: bool) {
        self.cfg.gossip_verify_incoming = incoming;
        self.cfg.gossip_verify_outgoing = outgoing;
        info!(incoming, outgoing, "gossip verification set");
    }

    /// Decrypt failures per sender address (up to 1024 senders), sorted
    /// by address.
    pub fn decrypt_failures_by_peer(&self) -> Vec<(SocketAddr, u64)> {
        let mut v: Vec<(SocketAddr, u64)> = self
            .decrypt_failures
            .peers
            .iter()
            .map(|(a, p)| (*a, p.count))
            .collect();
        v.sort();
        v
    }
}

fn fingerprint_list(fps: &[Fingerprint]) -> String {
    if fps.is_empty() {
        return "none".into();
    }
    fps.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
