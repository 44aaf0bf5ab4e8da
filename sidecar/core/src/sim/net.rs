//! The simulated network: latency, loss, partitions, cuts, crashed nodes.

use std::collections::HashSet;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::Rng;

/// Latency and loss of every link.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkModel {
    /// Minimum one-way latency.
    pub latency: Duration,
    /// Uniform extra latency in `0..jitter`.
    pub jitter: Duration,
    /// Probability that a datagram (or a TCP segment, which costs a
    /// retransmission timeout) is lost, `0.0..1.0`.
    pub loss: f64,
}

impl Default for LinkModel {
    /// A LAN: 1 ms plus up to 1 ms, no loss.
    fn default() -> Self {
        LinkModel {
            latency: Duration::from_millis(1),
            jitter: Duration::from_millis(1),
            loss: 0.0,
        }
    }
}

impl LinkModel {
    /// No latency, no loss: a command's exchanges complete at the instant
    /// it is given (see [`super::Sim::settle`]).
    pub fn instant() -> Self {
        LinkModel {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
        }
    }
}

pub(super) struct Net {
    pub link: LinkModel,
    down: Vec<bool>,
    group: Vec<u32>,
    cuts: HashSet<(u32, u32)>,
}

impl Net {
    pub fn new(n: usize, link: LinkModel) -> Self {
        Net {
            link,
            down: vec![false; n],
            group: vec![0; n],
            cuts: HashSet::new(),
        }
    }

    /// One more node, up, in group 0.
    pub fn add_node(&mut self) {
        self.down.push(false);
        self.group.push(0);
    }

    pub fn set_down(&mut self, i: usize, down: bool) {
        self.down[i] = down;
    }

    pub fn set_group(&mut self, i: usize, g: u32) {
        self.group[i] = g;
    }

    pub fn cut(&mut self, a: usize, b: usize) {
        let (a, b) = (a.min(b) as u32, a.max(b) as u32);
        self.cuts.insert((a, b));
    }

    pub fn heal(&mut self) {
        self.group.iter_mut().for_each(|g| *g = 0);
        self.cuts.clear();
    }

    /// Whether nothing passes between `a` and `b` now.
    pub fn blocked(&self, a: usize, b: usize) -> bool {
        self.down[a]
            || self.down[b]
            || self.group[a] != self.group[b]
            || (!self.cuts.is_empty() && self.cuts.contains(&(a.min(b) as u32, a.max(b) as u32)))
    }

    /// One draw of the one-way latency, in nanoseconds.
    pub fn latency(&self, rng: &mut SmallRng) -> u64 {
        let base = self.link.latency.as_nanos() as u64;
        let jitter = self.link.jitter.as_nanos() as u64;
        base + if jitter > 0 {
            rng.random_range(0..jitter)
        } else {
            0
        }
    }

    /// One draw of the loss; no randomness is used without loss, so a
    /// lossless run does not depend on how many packets were sent.
    pub fn lose(&self, rng: &mut SmallRng) -> bool {
        self.link.loss > 0.0 && rng.random_bool(self.link.loss.clamp(0.0, 1.0))
    }
}
