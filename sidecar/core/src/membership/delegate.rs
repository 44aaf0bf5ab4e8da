//! The application's hooks into membership, as memberlist's `Delegate`:
//! what to piggyback on gossip and what to send as push/pull state are
//! asked for at the moment a packet or stream is built, because both depend
//! on the space left and on state that changes between calls.
//!
//! Messages, remote state and membership changes go the other way as
//! [`super::Event`]s, which the caller drains and routes.

/// memberlist's `Delegate` (`GetBroadcasts`, `LocalState`), pure: the core
/// calls these synchronously while it builds packets and streams.
pub trait Delegate {
    /// Messages to piggyback on a gossip or probe packet, within `limit`
    /// bytes counting `overhead` bytes per message. Each is sent as a user
    /// message. Called once per packet built; MUST NOT return more than fits.
    fn get_broadcasts(&mut self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        let _ = (overhead, limit);
        Vec::new()
    }

    /// The user state to send in a push/pull (`join` when the exchange is a
    /// join). `None` sends the state set with
    /// [`super::Membership::set_local_state`].
    fn local_state(&mut self, join: bool) -> Option<Vec<u8>> {
        let _ = join;
        None
    }
}

/// No application hooks: no delegate broadcasts, and the push/pull state is
/// what [`super::Membership::set_local_state`] set.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NoDelegate;

impl Delegate for NoDelegate {}
