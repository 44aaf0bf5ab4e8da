//! Transmit-limited broadcast queue (memberlist's `TransmitLimitedQueue`).
//!
//! Each message is sent `limit` times, piggybacked on pings, acks and gossip.
//! Messages sent the fewest times go first; among those, larger ones first (so
//! they still fit) and then newer ones first. A named message (one about a
//! node) replaces any queued message with the same name.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

/// Identifies a queued broadcast so its owner can learn when it is finished.
pub type BroadcastId = u64;

#[derive(Debug)]
struct Item {
    name: Option<String>,
    msg: Vec<u8>,
    transmits: usize,
    notify: bool,
    /// Sent at most this often, whatever the limit `take` is given.
    cap: Option<usize>,
}

/// Ordering key: fewest transmits, then longest, then newest.
type Key = (usize, Reverse<usize>, Reverse<BroadcastId>);

/// A queue of broadcasts, each sent a bounded number of times.
#[derive(Debug, Default)]
pub struct BroadcastQueue {
    items: BTreeMap<Key, Item>,
    by_name: HashMap<String, Key>,
    next_id: BroadcastId,
    finished: Vec<BroadcastId>,
    /// Size plays no part in the order (see [`BroadcastQueue::newest_first`]).
    unsized_order: bool,
}

impl BroadcastQueue {
    /// A queue that orders by transmits and then newest first, whatever
    /// the size. memberlist sends longer messages first among those sent
    /// equally often; in a join storm the queue holds hundreds of unsent
    /// alive messages, and one about a node with a shorter name (`web-9`
    /// beside `web-10` in a StatefulSet) waits behind every longer one,
    /// at every hop, for seconds. Packing does not suffer: a message that
    /// does not fit is skipped and smaller ones fill the space.
    pub fn newest_first() -> Self {
        BroadcastQueue {
            unsized_order: true,
            ..Self::default()
        }
    }

    /// The membership queue for `cfg`: memberlist's order with
    /// `memberlist_exact`, [`BroadcastQueue::newest_first`] otherwise.
    pub(super) fn for_membership(cfg: &super::Config) -> Self {
        if cfg.memberlist_exact {
            Self::default()
        } else {
            Self::newest_first()
        }
    }

    /// Queues `msg`. A `name` replaces an earlier message with the same name
    /// (the older one counts as finished). With `notify`, the returned id is
    /// reported by [`BroadcastQueue::take_finished`] once the message has been
    /// sent its limit or was replaced.
    pub fn push(&mut self, name: Option<String>, msg: Vec<u8>, notify: bool) -> BroadcastId {
        self.push_capped(name, msg, notify, None)
    }

    /// As [`BroadcastQueue::push`], sent at most `cap` times (when lower
    /// than the limit [`BroadcastQueue::take`] is given).
    pub fn push_capped(
        &mut self,
        name: Option<String>,
        msg: Vec<u8>,
        notify: bool,
        cap: Option<usize>,
    ) -> BroadcastId {
        self.next_id += 1;
        let id = self.next_id;
        if let Some(name) = &name {
            if let Some(old) = self.by_name.remove(name) {
                if let Some(item) = self.items.remove(&old) {
                    if item.notify {
                        self.finished.push(old.2 .0);
                    }
                }
            }
        }
        let size = if self.unsized_order { 0 } else { msg.len() };
        let key = (0, Reverse(size), Reverse(id));
        if let Some(name) = &name {
            self.by_name.insert(name.clone(), key);
        }
        self.items.insert(
            key,
            Item {
                name,
                msg,
                transmits: 0,
                notify,
                cap,
            },
        );
        id
    }

    /// True when a message named `name` is queued.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Messages queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Takes messages that fit in `limit` bytes, counting `overhead` bytes per
    /// message, and counts one transmission for each; a message sent
    /// `transmit_limit` times leaves the queue.
    pub fn take(&mut self, overhead: usize, limit: usize, transmit_limit: usize) -> Vec<Vec<u8>> {
        self.take_sent_under(overhead, limit, transmit_limit, usize::MAX)
    }

    /// As [`BroadcastQueue::take`], of the messages sent fewer than
    /// `under` times only.
    pub fn take_sent_fewer_than(
        &mut self,
        under: usize,
        overhead: usize,
        limit: usize,
        transmit_limit: usize,
    ) -> Vec<Vec<u8>> {
        self.take_sent_under(overhead, limit, transmit_limit, under)
    }

    /// True when some message was sent fewer than `under` times.
    pub fn has_sent_fewer_than(&self, under: usize) -> bool {
        self.items.keys().next().is_some_and(|k| k.0 < under)
    }

    fn take_sent_under(
        &mut self,
        overhead: usize,
        limit: usize,
        transmit_limit: usize,
        under: usize,
    ) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut used = 0usize;
        let mut picked: Vec<Key> = Vec::new();
        for (key, item) in &self.items {
            if used + overhead >= limit || key.0 >= under {
                break;
            }
            let cost = overhead + item.msg.len();
            if used + cost > limit {
                continue;
            }
            used += cost;
            picked.push(*key);
        }
        for key in picked {
            let Some(mut item) = self.items.remove(&key) else {
                continue;
            };
            out.push(item.msg.clone());
            item.transmits += 1;
            let limit = item.cap.map_or(transmit_limit, |c| c.min(transmit_limit));
            if item.transmits >= limit.max(1) {
                if let Some(name) = &item.name {
                    self.by_name.remove(name);
                }
                if item.notify {
                    self.finished.push(key.2 .0);
                }
            } else {
                let new_key = (item.transmits, key.1, key.2);
                if let Some(name) = &item.name {
                    self.by_name.insert(name.clone(), new_key);
                }
                self.items.insert(new_key, item);
            }
        }
        out
    }

    /// The messages [`BroadcastQueue::take`] would take, without counting
    /// a transmission for any of them.
    pub fn peek(&self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut used = 0usize;
        for item in self.items.values() {
            if used + overhead >= limit {
                break;
            }
            let cost = overhead + item.msg.len();
            if used + cost > limit {
                continue;
            }
            used += cost;
            out.push(item.msg.clone());
        }
        out
    }

    /// Drops the most-sent messages until at most `max` remain.
    pub fn prune(&mut self, max: usize) {
        while self.items.len() > max {
            let Some((key, item)) = self.items.pop_last() else {
                break;
            };
            if let Some(name) = &item.name {
                self.by_name.remove(name);
            }
            if item.notify {
                self.finished.push(key.2 .0);
            }
        }
    }

    /// Ids of notifying broadcasts that finished since the last call.
    pub fn take_finished(&mut self) -> Vec<BroadcastId> {
        std::mem::take(&mut self.finished)
    }
}

/// memberlist's retransmit limit: `mult * ceil(log10(n + 1))`.
pub fn retransmit_limit(mult: usize, n: usize) -> usize {
    let scale = ((n as f64) + 1.0).log10().ceil() as usize;
    mult * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_grows_with_log_of_cluster_size() {
        assert_eq!(retransmit_limit(4, 0), 0);
        assert_eq!(retransmit_limit(4, 1), 4);
        assert_eq!(retransmit_limit(4, 9), 4);
        assert_eq!(retransmit_limit(4, 10), 8);
        assert_eq!(retransmit_limit(4, 99), 8);
        assert_eq!(retransmit_limit(4, 100), 12);
    }

    #[test]
    fn named_message_replaces_older() {
        let mut q = BroadcastQueue::default();
        let a = q.push(Some("n1".into()), b"old".to_vec(), true);
        q.push(Some("n1".into()), b"new".to_vec(), false);
        assert_eq!(q.len(), 1);
        assert_eq!(q.take_finished(), vec![a]);
        assert_eq!(q.take(2, 1400, 3), vec![b"new".to_vec()]);
    }

    #[test]
    fn each_message_is_sent_its_limit_then_dropped() {
        let mut q = BroadcastQueue::default();
        let id = q.push(None, vec![1; 10], true);
        for _ in 0..3 {
            assert_eq!(q.take(2, 1400, 3).len(), 1);
        }
        assert!(q.is_empty());
        assert_eq!(q.take_finished(), vec![id]);
    }

    #[test]
    fn fewest_transmits_then_newest_first_within_budget() {
        let mut q = BroadcastQueue::default();
        q.push(None, vec![1; 10], false);
        q.take(2, 1400, 5);
        q.push(None, vec![2; 10], false);
        q.push(None, vec![3; 10], false);
        // Room for two: both unsent ones, newest first.
        let got = q.take(2, 24, 5);
        assert_eq!(got, vec![vec![3; 10], vec![2; 10]]);
        // A too-large message is skipped, not blocking smaller ones; among
        // equally sent ones, newest first.
        q.push(None, vec![4; 100], false);
        let got = q.take(2, 30, 5);
        assert_eq!(got, vec![vec![3; 10], vec![2; 10]]);
    }

    #[test]
    fn memberlist_order_sends_longer_first_newest_first_ignores_size() {
        // An alive about `web-10`, then one about `web-9`: room for one.
        let mut go = BroadcastQueue::default();
        let mut ours = BroadcastQueue::newest_first();
        for q in [&mut go, &mut ours] {
            q.push(Some("web-10".into()), vec![1; 41], false);
            q.push(Some("web-9".into()), vec![2; 40], false);
        }
        assert_eq!(go.take(2, 50, 5), vec![vec![1; 41]]);
        assert_eq!(ours.take(2, 50, 5), vec![vec![2; 40]]);
        // Fewest transmits still comes first, and packing still skips what
        // does not fit.
        ours.push(None, vec![3; 100], false);
        assert_eq!(ours.take(2, 50, 5), vec![vec![1; 41]]);
    }

    #[test]
    fn take_sent_fewer_than_skips_messages_sent_more() {
        let mut q = BroadcastQueue::default();
        q.push(None, vec![1; 10], false);
        q.take(2, 1400, 5);
        assert!(!q.has_sent_fewer_than(1));
        assert!(q.has_sent_fewer_than(2));
        assert!(q.take_sent_fewer_than(1, 2, 1400, 5).is_empty());
        q.push(None, vec![2; 10], false);
        assert!(q.has_sent_fewer_than(1));
        assert_eq!(q.take_sent_fewer_than(1, 2, 1400, 5), vec![vec![2; 10]]);
        // Both stay queued for the gossip rounds.
        assert_eq!(q.len(), 2);
        assert_eq!(q.take_sent_fewer_than(2, 2, 1400, 5).len(), 2);
        assert!(!q.has_sent_fewer_than(2));
    }

    #[test]
    fn peek_counts_no_transmission() {
        let mut q = BroadcastQueue::default();
        q.push(None, vec![1; 10], false);
        for _ in 0..5 {
            assert_eq!(q.peek(2, 1400), vec![vec![1; 10]]);
        }
        assert_eq!(q.take(2, 1400, 1).len(), 1);
        assert!(q.is_empty());
    }

    #[test]
    fn prune_drops_most_sent() {
        let mut q = BroadcastQueue::default();
        q.push(None, vec![1], false);
        q.take(0, 100, 10);
        q.push(None, vec![2], false);
        q.prune(1);
        assert_eq!(q.take(0, 100, 10), vec![vec![2]]);
    }

    #[test]
    fn a_capped_message_leaves_after_its_cap_the_rest_after_the_limit() {
        let mut q = BroadcastQueue::default();
        q.push(None, vec![1], false);
        q.push_capped(None, vec![2], false, Some(2));
        q.push_capped(None, vec![3], false, Some(9));
        let sent: Vec<usize> = (0..5).map(|_| q.take(0, 100, 4).len()).collect();
        // Both for two rounds, then the uncapped one and the one capped
        // above the limit until the limit.
        assert_eq!(sent, [3, 3, 2, 2, 0]);
    }
}
