//! Cluster-wide infos and groups, as early CockroachDB gossip keeps them,
//! as a pure state machine.
//!
//! An *info* is a key -> value with a time to live, written by one node
//! (its *origin*) and gossiped to every member of the cluster (infos are
//! not scoped to a NetworkDB network). Each carries its origin's name, its
//! origin timestamp and the number of hops it travelled.
//!
//! # Rules that MUST hold
//!
//! - **Timestamps are wall-clock Unix milliseconds**, read by the shell and
//!   given to the core as an input ([`Infos::set_wall_clock`] anchors a
//!   wall-clock reading to an [`Instant`]; later instants are converted by
//!   adding the elapsed time). As in CockroachDB, comparing origin
//!   timestamps across nodes and expiring infos assumes clocks agree to well
//!   within the shortest TTL (NTP); a skewed node's infos win or lose and
//!   expire early or late by its skew. A node's own write is stamped at
//!   least one millisecond after the info it replaces, so a local write
//!   always takes effect even if the clock stepped back.
//! - **Conflicts**: for one key, a newer origin timestamp wins; equal
//!   timestamps prefer fewer hops; then the greater origin name and value
//!   ([`Info::supersedes`]), so every node keeps the same one.
//! - **Expiry**: an info is dropped everywhere when the wall clock passes
//!   `origin_ms + ttl_ms`, without a delete message; an expired info that
//!   arrives is ignored.
//! - **Groups**: a registered key prefix with a `limit` and a MIN or MAX
//!   order on the value (a decimal number). A node keeps, and so gossips,
//!   only the `limit` best infos of the group (ties broken by the smaller
//!   key); a received info that would rank below them is ignored and not
//!   relayed. Groups are registered on each node (as CockroachDB registers
//!   them in code); every node that registers the same group converges on
//!   the same contents once gossip quiesces, because push/pull exchanges
//!   each node's best `limit` and every merge keeps the best of the union.
//!   Registered prefixes never overlap, so a key is in at most one group.
//! - **Dissemination**: an accepted info (local or received) is queued for
//!   memberlist's piggybacked broadcasts ([`Infos::get_broadcasts`],
//!   transmit-limited like memberlist's own) with its hop count; the whole
//!   live set travels in push/pull state ([`Infos::local_state`]). See
//!   [`codec`] for how both ride in NetworkDB's envelope unseen by Go
//!   NetworkDB.

pub mod codec;
mod types;

#[cfg(test)]
mod tests;

pub use types::{Config, Group, GroupOrder, Info, InfoChange, InfoEvent, InfosError, Stats};

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use crate::membership::{retransmit_limit, BroadcastQueue};

/// The infos of one node.
#[derive(Debug)]
pub struct Infos {
    cfg: Config,
    store: BTreeMap<String, Info>,
    /// (expires_ms, key) of every info held.
    expiry: BTreeSet<(u64, String)>,
    groups: BTreeMap<String, Group>,
    queue: BroadcastQueue,
    /// A wall-clock reading (Unix ms) and the instant it was taken.
    anchor: (Instant, u64),
    /// The latest wall-clock time seen in an input.
    last_ms: u64,
    cluster_size: usize,
    /// Keys rewritten several times per TTL (see [`Infos::set_refreshed`]).
    refreshed: BTreeSet<String>,
    events: VecDeque<InfoEvent>,
    stats: Stats,
}

/// A value's rank in a group: its number and key.
fn score(value: &[u8]) -> Option<f64> {
    std::str::from_utf8(value)
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
}

/// `Less` when `a` ranks better than `b` in a group of this order.
fn rank(order: GroupOrder, a: (f64, &str), b: (f64, &str)) -> Ordering {
    let by_value = match order {
        GroupOrder::Max => b.0.total_cmp(&a.0),
        GroupOrder::Min => a.0.total_cmp(&b.0),
    };
    by_value.then_with(|| a.1.cmp(b.1))
}

fn cut(s: &str) -> String {
    s.chars().take(64).collect()
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Infos {
    /// Creates the infos of node `cfg.node_name`, with the wall clock
    /// anchored at `unix_ms` Unix milliseconds at `now`.
    pub fn new(cfg: Config, now: Instant, unix_ms: u64) -> Self {
        Infos {
            cfg,
            store: BTreeMap::new(),
            expiry: BTreeSet::new(),
            groups: BTreeMap::new(),
            queue: BroadcastQueue::default(),
            anchor: (now, unix_ms),
            last_ms: unix_ms,
            cluster_size: 1,
            refreshed: BTreeSet::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Re-anchors the wall clock: it reads `unix_ms` at `now`. The shell
    /// calls it at start and MAY call it again to follow clock corrections.
    pub fn set_wall_clock(&mut self, now: Instant, unix_ms: u64) {
        self.anchor = (now, unix_ms);
        self.last_ms = self.last_ms.max(unix_ms);
    }

    /// The wall-clock time (Unix ms) at `now`.
    pub fn wall_ms(&self, now: Instant) -> u64 {
        let (at, base) = self.anchor;
        if now >= at {
            base.saturating_add(ms(now - at))
        } else {
            base.saturating_sub(ms(at - now))
        }
    }

    /// How many live members share the cluster (sets how often each info
    /// is retransmitted).
    pub fn set_cluster_size(&mut self, n: usize) {
        self.cluster_size = n.max(1);
    }

    // ----- application calls -------------------------------------------------

    /// Writes `key = value` with time to live `ttl`, as this node.
    ///
    /// # Errors
    /// An empty or too long key, a too large value, a TTL out of range, a
    /// non-numeric value under a group's prefix, or a value its group
    /// ranks below its limit. Nothing changes then.
    pub fn put(
        &mut self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        now: Instant,
    ) -> Result<Info, InfosError> {
        self.expire(now);
        self.check_key(key)?;
        if value.len() > self.cfg.max_value_len {
            return Err(InfosError::ValueTooLarge {
                key: cut(key),
                len: value.len(),
                max: self.cfg.max_value_len,
            });
        }
        if ttl < self.cfg.min_ttl || ttl > self.cfg.max_ttl {
            return Err(InfosError::TtlOutOfRange {
                key: cut(key),
                ttl,
                min: self.cfg.min_ttl,
                max: self.cfg.max_ttl,
            });
        }
        let wall = self.wall_ms(now);
        let origin_ms = match self.store.get(key) {
            Some(old) if old.origin_ms >= wall => old.origin_ms.saturating_add(1),
            _ => wall,
        };
        let info = Info {
            key: key.to_string(),
            value,
            origin: self.cfg.node_name.clone(),
            origin_ms,
            ttl_ms: ms(ttl),
            hops: 0,
        };
        if let Some(g) = self.group_of(key) {
            let Some(s) = score(&info.value) else {
                return Err(InfosError::NotANumber {
                    key: cut(key),
                    prefix: g.prefix.clone(),
                    value: cut(&String::from_utf8_lossy(&info.value)),
                });
            };
            if !self.would_keep(g, key, s) {
                return Err(InfosError::BelowGroupLimit {
                    key: cut(key),
                    prefix: g.prefix.clone(),
                    limit: g.limit,
                });
            }
        }
        self.accept(info.clone());
        Ok(info)
    }

    /// Marks `key` as rewritten by its writer several times per TTL (the
    /// cluster sentinel, every third of it): a node that misses one
    /// rewrite still holds the one before, which push/pull also carries,
    /// so every node that accepts it piggybacks it memberlist's
    /// `retransmit_mult * ceil(log10(n + 1))` times, without the
    /// `min_transmits` floor that protects infos written once.
    pub fn set_refreshed(&mut self, key: &str) {
        self.refreshed.insert(key.to_string());
    }

    /// The live info under `key`.
    pub fn get(&self, key: &str, now: Instant) -> Option<&Info> {
        let wall = self.wall_ms(now);
        self.store.get(key).filter(|i| i.expires_ms() > wall)
    }

    /// The live infos whose keys start with `prefix`, in key order.
    pub fn with_prefix<'a>(
        &'a self,
        prefix: &'a str,
        now: Instant,
    ) -> impl Iterator<Item = &'a Info> + 'a {
        let wall = self.wall_ms(now);
        self.store
            .range(prefix.to_string()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(_, i)| i)
            .filter(move |i| i.expires_ms() > wall)
    }

    /// Registers a group, or changes the limit and order of one registered
    /// with the same prefix; infos beyond the limit are dropped at once.
    ///
    /// # Errors
    /// An empty prefix, a limit out of `1..=max_group_limit`, or a prefix
    /// that overlaps another group's.
    pub fn register_group(
        &mut self,
        prefix: &str,
        limit: usize,
        order: GroupOrder,
        now: Instant,
    ) -> Result<(), InfosError> {
        if prefix.is_empty() {
            return Err(InfosError::EmptyPrefix);
        }
        if limit == 0 || limit > self.cfg.max_group_limit {
            return Err(InfosError::LimitOutOfRange {
                prefix: cut(prefix),
                limit,
                max: self.cfg.max_group_limit,
            });
        }
        if let Some(existing) = self.groups.keys().find(|p| {
            p.as_str() != prefix && (p.starts_with(prefix) || prefix.starts_with(p.as_str()))
        }) {
            return Err(InfosError::PrefixOverlap {
                prefix: cut(prefix),
                existing: existing.clone(),
            });
        }
        let g = Group {
            prefix: prefix.to_string(),
            limit,
            order,
        };
        self.groups.insert(prefix.to_string(), g.clone());
        // Infos that are not numbers cannot be ranked: they leave the group.
        let bad: Vec<String> = self
            .store
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, i)| score(&i.value).is_none())
            .map(|(k, _)| k.clone())
            .collect();
        for k in bad {
            self.drop_info(&k, InfoChange::Evicted);
        }
        self.trim(&g);
        self.expire(now);
        Ok(())
    }

    /// The registered groups.
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// Group `prefix` and its live infos, best first.
    ///
    /// # Errors
    /// No group is registered with that prefix.
    pub fn group(&self, prefix: &str, now: Instant) -> Result<(Group, Vec<Info>), InfosError> {
        let g = self
            .groups
            .get(prefix)
            .ok_or_else(|| InfosError::NoSuchGroup {
                prefix: cut(prefix),
            })?
            .clone();
        let mut members: Vec<(f64, Info)> = self
            .with_prefix(prefix, now)
            .filter_map(|i| score(&i.value).map(|s| (s, i.clone())))
            .collect();
        members.sort_by(|a, b| rank(g.order, (a.0, &a.1.key), (b.0, &b.1.key)));
        Ok((g, members.into_iter().map(|(_, i)| i).collect()))
    }

    /// The live infos' count.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// True when no info is held.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Counters and gauges.
    pub fn stats(&self) -> Stats {
        Stats {
            infos: self.store.len(),
            max_hops: self.store.values().map(|i| i.hops).max().unwrap_or(0),
            ..self.stats
        }
    }

    // ----- inputs ---------------------------------------------------------------

    /// Infos received from a peer (a user message or push/pull state), with
    /// the hop counts the sender holds them at. Returns how many were
    /// accepted.
    pub fn handle_infos(&mut self, infos: Vec<Info>, now: Instant) -> usize {
        self.expire(now);
        let wall = self.wall_ms(now);
        let mut accepted = 0;
        for mut info in infos {
            if self.check_key(&info.key).is_err()
                || info.value.len() > self.cfg.max_value_len
                || info.ttl_ms > ms(self.cfg.max_ttl)
                || info.origin.is_empty()
            {
                self.stats.malformed += 1;
                continue;
            }
            info.hops = info.hops.saturating_add(1);
            if info.expires_ms() <= wall {
                self.stats.ignored += 1;
                continue;
            }
            if self
                .store
                .get(&info.key)
                .is_some_and(|old| !info.supersedes(old))
            {
                self.stats.ignored += 1;
                continue;
            }
            if let Some(g) = self.group_of(&info.key) {
                let Some(s) = score(&info.value) else {
                    self.stats.malformed += 1;
                    continue;
                };
                if !self.would_keep(g, &info.key, s) {
                    self.stats.ignored += 1;
                    continue;
                }
            }
            self.stats.accepted += 1;
            accepted += 1;
            self.accept(info);
        }
        accepted
    }

    /// Drops the infos whose TTL has run out by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
    }

    /// When the next info expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let &(exp, _) = self.expiry.first()?;
        let (at, base) = self.anchor;
        Some(if exp >= base {
            at + Duration::from_millis(exp - base)
        } else {
            at
        })
    }

    /// The next change for watchers.
    pub fn poll_event(&mut self) -> Option<InfoEvent> {
        self.events.pop_front()
    }

    // ----- what goes on the wire ---------------------------------------------------

    /// Queued infos to piggyback on membership's messages, within `limit`
    /// bytes counting `overhead` per message (memberlist's `GetBroadcasts`).
    pub fn get_broadcasts(&mut self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        let transmits = retransmit_limit(self.cfg.retransmit_mult, self.cluster_size)
            .max(self.cfg.min_transmits);
        self.queue.take(overhead, limit, transmits)
    }

    /// Every live info, for push/pull state.
    pub fn local_state(&self) -> Vec<Info> {
        self.store
            .values()
            .filter(|i| i.expires_ms() > self.last_ms)
            .cloned()
            .collect()
    }

    // ----- internals ------------------------------------------------------------------

    fn check_key(&self, key: &str) -> Result<(), InfosError> {
        if key.is_empty() {
            return Err(InfosError::EmptyKey);
        }
        if key.len() > self.cfg.max_key_len {
            return Err(InfosError::KeyTooLong {
                key: cut(key),
                len: key.len(),
                max: self.cfg.max_key_len,
            });
        }
        Ok(())
    }

    /// The group `key` belongs to. Prefixes never overlap, so only the
    /// greatest registered prefix not above `key` can be one of its
    /// prefixes.
    fn group_of(&self, key: &str) -> Option<&Group> {
        self.groups
            .range::<str, _>((std::ops::Bound::Unbounded, std::ops::Bound::Included(key)))
            .next_back()
            .map(|(_, g)| g)
            .filter(|g| key.starts_with(g.prefix.as_str()))
    }

    /// Whether the group would keep `key` with score `s`: fewer than
    /// `limit` other members rank better.
    fn would_keep(&self, g: &Group, key: &str, s: f64) -> bool {
        let better = self
            .store
            .range(g.prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(g.prefix.as_str()))
            .filter(|(k, _)| k.as_str() != key)
            .filter_map(|(k, i)| score(&i.value).map(|v| (v, k)))
            .filter(|(v, k)| rank(g.order, (*v, k), (s, key)) == Ordering::Less)
            .count();
        better < g.limit
    }

    /// Stores an info that won, tells watchers, queues it for gossip and
    /// cuts its group back to its limit.
    fn accept(&mut self, info: Info) {
        let key = info.key.clone();
        if let Some(old) = self.store.remove(&key) {
            self.expiry.remove(&(old.expires_ms(), key.clone()));
        }
        self.expiry.insert((info.expires_ms(), key.clone()));
        let cap = self
            .refreshed
            .contains(&key)
            .then(|| retransmit_limit(self.cfg.retransmit_mult, self.cluster_size));
        self.queue.push_capped(
            Some(key.clone()),
            codec::encode_message(std::slice::from_ref(&info)),
            false,
            cap,
        );
        self.queue.prune(self.store.len().max(256) * 2);
        self.events.push_back(InfoEvent {
            change: InfoChange::Put,
            info: info.clone(),
        });
        self.store.insert(key.clone(), info);
        if let Some(g) = self.group_of(&key).cloned() {
            self.trim(&g);
        }
    }

    /// Drops the members of `g` beyond its limit.
    fn trim(&mut self, g: &Group) {
        let mut members: Vec<(f64, String)> = self
            .store
            .range(g.prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(g.prefix.as_str()))
            .filter_map(|(k, i)| score(&i.value).map(|s| (s, k.clone())))
            .collect();
        if members.len() <= g.limit {
            return;
        }
        members.sort_by(|a, b| rank(g.order, (a.0, &a.1), (b.0, &b.1)));
        for (_, k) in members.split_off(g.limit) {
            self.drop_info(&k, InfoChange::Evicted);
        }
    }

    fn drop_info(&mut self, key: &str, why: InfoChange) {
        if let Some(info) = self.store.remove(key) {
            self.expiry.remove(&(info.expires_ms(), key.to_string()));
            match why {
                InfoChange::Expired => self.stats.expired += 1,
                InfoChange::Evicted => self.stats.evicted += 1,
                InfoChange::Put => {}
            }
            self.events.push_back(InfoEvent { change: why, info });
        }
    }

    fn expire(&mut self, now: Instant) {
        let wall = self.wall_ms(now);
        self.last_ms = self.last_ms.max(wall);
        while let Some((exp, key)) = self.expiry.first().cloned() {
            if exp > wall {
                break;
            }
            self.drop_info(&key, InfoChange::Expired);
        }
    }
}
