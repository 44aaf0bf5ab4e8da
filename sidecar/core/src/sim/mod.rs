//! A deterministic simulator: many real [`Membership`] cores — or whole
//! [`crate::node::Node`]s, membership and tables as production composes
//! them — in virtual time on an in-memory network.
//!
//! One event queue orders everything that happens — each node's next timer,
//! packets in flight, the legs of stream exchanges — by (virtual time,
//! sequence number), so the same seed and the same script give the same run,
//! event for event; [`Sim::trace_hash`] fingerprints it. The network has a
//! per-packet latency (base plus uniform jitter), a loss rate, cuts between
//! groups of nodes (partitions, isolation) and pairwise cuts, crashes and
//! restarts. Streams (push/pull, the TCP fallback ping, reliable messages)
//! cross the same network: they take a round trip, see retransmission
//! delays under loss, and time out across cuts and towards crashed nodes.
//!
//! Pure, like the cores it drives: no clock (the caller passes the instant
//! that virtual time starts from), no sockets, seeded randomness. Nodes can
//! start from one shared converged [`Snapshot`] (copy-on-write), which is
//! what makes ten thousand nodes fit in memory.
//!
//! It is also the one in-memory network the core's tests run on: nodes
//! can be configured one by one ([`Sim::configured`]) or added later
//! ([`Sim::add_node`]); what they emit, membership and watch events, is
//! kept for the caller ([`Sim::events`], [`Sim::watch_events`]); each
//! node's view, counters and tables can be read ([`Sim::node`],
//! [`Sim::status`], [`Sim::tables`]); an [`LinkModel::instant`] link with
//! [`Sim::settle`] completes a command's exchanges without time passing.
//! [`model`] is the workload and oracle of the tables' property tests.

mod core;
pub mod model;
mod net;
pub mod scenario;
mod trace;
pub mod waves;

pub use self::core::{Core, NodeConfig};
pub use net::LinkModel;
pub use scenario::{run_scenario, run_scenario_guarded, Report, Scenario, ScenarioConfig};
pub use trace::Fnv64;

/// The simulated wall clock at virtual time zero (2026-01-01T00:00:00Z),
/// in Unix milliseconds.
pub const SIM_EPOCH_MS: u64 = 1_767_225_600_000;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::keyring::Key;
use crate::membership::{
    Config, Event, Member, Membership, NodeStatus, Profile, Snapshot, StreamId, StreamResult,
};
use crate::node::{Node, Output};
use crate::tables::{Tables, WatchEvent};
use net::Net;

/// Why a simulation cannot start or go on. Variant names fit metric labels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A node's configuration is invalid.
    #[error(transparent)]
    Node(#[from] crate::node::NodeError),
    /// More standby nodes than nodes.
    #[error("{standby} standby nodes of {nodes}: there cannot be more than the nodes")]
    TooManyStandby {
        /// Standby nodes asked for.
        standby: usize,
        /// Nodes in all.
        nodes: usize,
    },
    /// A scenario on fewer than two nodes.
    #[error("{0} nodes: a scenario needs at least 2")]
    TooFewNodes(usize),
    /// A scenario name that is none of the known ones.
    #[error("unknown scenario {0:?}: expected propagate, fail, partition or rotate")]
    UnknownScenario(String),
    /// A key the scenario needs is invalid.
    #[error(transparent)]
    Key(#[from] crate::keyring::KeyError),
    /// A command a scenario gives a node was refused.
    #[error("a node refused the scenario's command: {0}")]
    Command(String),
    /// The caller's guard stopped the run (e.g. over a memory budget).
    #[error("{0}")]
    Stopped(String),
}

/// The port every simulated node listens on.
const PORT: u16 = 7946;
/// First simulated address, 10.0.0.1; node `i` is 10.0.0.1 + i.
const FIRST_IP: u32 = 0x0a00_0001;

/// How a simulation is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Nodes.
    pub nodes: usize,
    /// Seeds the network and every node.
    pub seed: u64,
    /// memberlist defaults to start from.
    pub profile: Profile,
    /// Latency and loss of every link.
    pub link: LinkModel,
    /// Keyring of every node (first primary); empty: no encryption.
    pub keys: Vec<Key>,
    /// Start converged from one shared snapshot (every node alive); off:
    /// every node starts alone and joins through node 0.
    pub converged: bool,
    /// Every this often, each live node tries to join one member it saw
    /// die and has not seen back, as Serf's reconnect and NetworkDB's
    /// `reconnectNode` do above memberlist (memberlist alone never
    /// re-merges two halves that declared each other dead, and forgets a
    /// dead member after the gossip-to-the-dead time). Like theirs, the
    /// list of failed members is kept beside memberlist's, here per node,
    /// for as long as the run: for small clusters. `None`: off.
    pub reconnect: Option<Duration>,
    /// The last this many nodes start down, never having run (and outside
    /// the converged snapshot); [`Sim::restart`] starts them. They stand in
    /// for pods created later: a restarted pod is a new node.
    pub standby: usize,
}

impl SimConfig {
    /// `nodes` nodes with LAN defaults, a 1–2 ms link, no loss, converged.
    pub fn lan(nodes: usize, seed: u64) -> Self {
        SimConfig {
            nodes,
            seed,
            profile: Profile::Lan,
            link: LinkModel::default(),
            keys: Vec::new(),
            converged: true,
            reconnect: None,
            standby: 0,
        }
    }
}

/// The address of node `i`.
pub fn addr_of(i: usize) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(FIRST_IP + i as u32), PORT))
}

/// The name of node `i`.
pub fn name_of(i: usize) -> String {
    format!("n{i}")
}

fn index_of(addr: SocketAddr, n: usize) -> Option<usize> {
    let SocketAddr::V4(a) = addr else {
        return None;
    };
    let i = u32::from(*a.ip()).checked_sub(FIRST_IP)? as usize;
    (a.port() == PORT && i < n).then_some(i)
}

/// Something scheduled.
#[derive(Debug)]
enum Ev {
    /// A node's next timer (stale when the node rescheduled or restarted).
    Timer { node: u32, gen: u32 },
    /// A datagram arrives.
    Packet { from: u32, to: u32, data: Vec<u8> },
    /// A stream's request reaches its target.
    StreamOpen {
        from: u32,
        gen: u32,
        to: u32,
        id: StreamId,
        data: Vec<u8>,
        expect_reply: bool,
        deadline: u64,
    },
    /// Live nodes try to rejoin a member they hold dead.
    Reconnect,
    /// A stream's outcome reaches the node that opened it.
    StreamDone {
        node: u32,
        gen: u32,
        peer: u32,
        id: StreamId,
        outcome: Result<Option<Vec<u8>>, String>,
    },
}

struct Item {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Item {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    // Earliest first in a max-heap.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

struct Slot<C: Core> {
    m: C,
    up: bool,
    /// Bumped on crash and restart; stale timers and streams are dropped.
    gen: u32,
    /// When this node's timer is queued for.
    scheduled: Option<u64>,
    /// Members this node saw declared dead and not alive since, with their
    /// last address (kept only with [`SimConfig::reconnect`]).
    failed: BTreeMap<String, SocketAddr>,
    /// What the node was built from, and is rebuilt from on restart.
    cfg: C::Config,
}

/// Traffic counters, bytes as they leave a node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// UDP datagrams sent.
    pub packets: u64,
    /// Their bytes.
    pub udp_bytes: u64,
    /// Streams opened.
    pub streams: u64,
    /// Stream bytes, requests and replies.
    pub tcp_bytes: u64,
    /// Datagrams lost (loss rate).
    pub lost: u64,
    /// Datagrams dropped by a cut or a crashed node.
    pub blocked: u64,
}

/// The simulator; see the module documentation. `C` is what each node
/// runs: a bare [`Membership`] core (the default) or a
/// [`crate::node::Node`].
pub struct Sim<C: Core = Membership> {
    cfg: SimConfig,
    base: Instant,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Item>,
    nodes: Vec<Slot<C>>,
    net: Net,
    rng: SmallRng,
    trace: Fnv64,
    traffic: Traffic,
    events: Vec<(Duration, usize, Event)>,
    watch: Vec<(Duration, usize, WatchEvent)>,
    snapshot: Option<Arc<Snapshot>>,
    configure: Configure<C>,
}

/// Changes node `i`'s configuration; see [`Sim::configured`].
type Configure<C> = Box<dyn Fn(usize, &mut <C as Core>::Config)>;

impl Sim {
    /// Builds a cluster of bare membership cores at virtual time zero, which
    /// is `base`.
    ///
    /// # Errors
    /// A node's configuration is invalid.
    pub fn new(cfg: SimConfig, base: Instant) -> Result<Sim, SimError> {
        Sim::with_core(cfg, base)
    }
}

impl<C: Core> Sim<C> {
    /// Builds the cluster, each node running a `C`, at virtual time zero,
    /// which is `base`.
    ///
    /// # Errors
    /// A node's configuration is invalid, or `standby` exceeds `nodes`.
    pub fn with_core(cfg: SimConfig, base: Instant) -> Result<Sim<C>, SimError> {
        Sim::configured(cfg, base, |_, _| {})
    }

    /// As [`Sim::with_core`], with `configure` changing node `i`'s
    /// configuration from the profile's defaults before it is built. It is
    /// kept for nodes added later ([`Sim::add_node`]); a restart reuses the
    /// node's configuration.
    ///
    /// # Errors
    /// A node's configuration is invalid, or `standby` exceeds `nodes`.
    pub fn configured(
        cfg: SimConfig,
        base: Instant,
        configure: impl Fn(usize, &mut C::Config) + 'static,
    ) -> Result<Sim<C>, SimError> {
        let n = cfg.nodes;
        if cfg.standby > n {
            return Err(SimError::TooManyStandby {
                standby: cfg.standby,
                nodes: n,
            });
        }
        let active = n - cfg.standby;
        let mut sim: Sim<C> = Sim {
            base,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes: Vec::with_capacity(n),
            net: Net::new(n, cfg.link.clone()),
            rng: SmallRng::seed_from_u64(cfg.seed ^ 0x5349_4d55_4c41_5445),
            trace: Fnv64::new(),
            traffic: Traffic::default(),
            events: Vec::new(),
            watch: Vec::new(),
            snapshot: None,
            configure: Box::new(configure),
            cfg,
        };
        let configs: Vec<C::Config> = (0..n).map(|i| sim.default_config(i)).collect();
        if sim.cfg.converged {
            let vsn_of = |i: usize| {
                let c = C::membership_config(&configs[i]);
                [1, 5, c.protocol_version, 0, 0, 0]
            };
            let members = (0..active).map(|i| Member {
                name: name_of(i),
                addr: addr_of(i),
                meta: Vec::new(),
                incarnation: 1,
                status: NodeStatus::Alive,
                vsn: vsn_of(i),
            });
            sim.snapshot = Some(Snapshot::new(members, base));
        }
        for (i, cfg) in configs.into_iter().enumerate() {
            let m = sim.make_node(i, cfg.clone(), i < active)?;
            sim.nodes.push(Slot {
                m,
                up: i < active,
                gen: 0,
                scheduled: None,
                failed: BTreeMap::new(),
                cfg,
            });
            sim.net.set_down(i, i >= active);
        }
        for i in 0..active {
            if !sim.cfg.converged && i > 0 {
                let now = sim.instant();
                sim.nodes[i]
                    .m
                    .with_membership(now, |m, now| m.join(&[addr_of(0)], now));
            }
            sim.drain(i);
        }
        if let Some(every) = sim.cfg.reconnect {
            sim.push(every.as_nanos() as u64, Ev::Reconnect);
        }
        Ok(sim)
    }

    /// The configuration node `i` runs with.
    ///
    /// # Panics
    /// There is no node `i`.
    pub fn node_config(&self, i: usize) -> C::Config {
        self.nodes[i].cfg.clone()
    }

    /// Node `i`'s configuration before any per-node change: the profile,
    /// the keys, then the simulation's `configure`.
    fn default_config(&self, i: usize) -> C::Config {
        let mut m = Config::for_profile(self.cfg.profile, name_of(i), addr_of(i));
        m.keys = self.cfg.keys.clone();
        let mut c = C::config_for(m);
        (self.configure)(i, &mut c);
        c
    }

    fn node_seed(&self, i: usize, gen: u32) -> u64 {
        self.cfg
            .seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add((i as u64) << 20 | gen as u64)
    }

    fn make_node(&self, i: usize, cfg: C::Config, adopt: bool) -> Result<C, SimError> {
        let now = self.instant();
        let mut m = C::create(cfg, self.node_seed(i, 0), now)?;
        m.set_wall_clock(now, self.wall_ms());
        if let Some(s) = self.snapshot.as_ref().filter(|_| adopt) {
            m.adopt_snapshot(Arc::clone(s), now);
        }
        Ok(m)
    }

    // ----- queries ----------------------------------------------------------

    /// Virtual time elapsed.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.now)
    }

    /// The instant virtual time is now.
    pub fn instant(&self) -> Instant {
        self.base + Duration::from_nanos(self.now)
    }

    /// The simulated wall clock, which every node reads alike: Unix
    /// milliseconds, [`SIM_EPOCH_MS`] at virtual time zero.
    pub fn wall_ms(&self) -> u64 {
        SIM_EPOCH_MS + self.now().as_millis() as u64
    }

    /// Nodes, crashed ones included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True without nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s membership core.
    pub fn node(&self, i: usize) -> &Membership<C::D> {
        self.nodes[i].m.membership()
    }

    /// Node `i`, whole.
    pub fn core(&self, i: usize) -> &C {
        &self.nodes[i].m
    }

    /// Whether node `i` runs (not crashed).
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].up
    }

    /// How node `i` sees node `j` (by `j`'s name); `None`: not a member.
    pub fn status(&self, i: usize, j: usize) -> Option<NodeStatus> {
        let name = self.node(j).name();
        self.node(i).member(name).map(|m| m.status)
    }

    /// Live nodes that node `i` holds alive, itself included.
    pub fn alive_seen_by(&self, i: usize) -> usize {
        self.node(i)
            .members()
            .iter()
            .filter(|m| m.status == NodeStatus::Alive)
            .count()
    }

    /// Traffic so far.
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// A fingerprint of everything that happened so far: same seed and
    /// script, same hash.
    pub fn trace_hash(&self) -> u64 {
        self.trace.value()
    }

    /// Events the nodes emitted since the last call: (time, node, event).
    pub fn take_events(&mut self) -> Vec<(Duration, usize, Event)> {
        std::mem::take(&mut self.events)
    }

    /// Events the nodes emitted since the last [`Sim::take_events`], in
    /// order, without taking them.
    pub fn events(&self) -> &[(Duration, usize, Event)] {
        &self.events
    }

    /// Events node `i` emitted since the last [`Sim::take_events`].
    pub fn events_of(&self, i: usize) -> impl Iterator<Item = &Event> + '_ {
        self.events
            .iter()
            .filter(move |(_, n, _)| *n == i)
            .map(|(_, _, e)| e)
    }

    /// Watch events (changes of visible table entries) the nodes emitted
    /// since the last call: (time, node, event). A bare membership core
    /// emits none.
    pub fn take_watch_events(&mut self) -> Vec<(Duration, usize, WatchEvent)> {
        std::mem::take(&mut self.watch)
    }

    /// Watch events since the last [`Sim::take_watch_events`], without
    /// taking them.
    pub fn watch_events(&self) -> &[(Duration, usize, WatchEvent)] {
        &self.watch
    }

    /// Member entries held by nodes themselves rather than shared.
    pub fn owned_entries(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| n.m.membership().owned_entries())
            .sum()
    }

    // ----- faults and commands ----------------------------------------------

    /// Adds a node, index [`Sim::len`] before the call, addressed as
    /// [`addr_of`] that index, configured as the others then changed by
    /// `tweak` (a name taken from another node stands for that node
    /// restarted elsewhere). It starts now, alone: join it with
    /// [`Sim::command`].
    ///
    /// # Errors
    /// The configuration is invalid.
    pub fn add_node(&mut self, tweak: impl FnOnce(&mut C::Config)) -> Result<usize, SimError> {
        let i = self.nodes.len();
        let mut cfg = self.default_config(i);
        tweak(&mut cfg);
        let m = self.make_node(i, cfg.clone(), false)?;
        self.nodes.push(Slot {
            m,
            up: true,
            gen: 0,
            scheduled: None,
            failed: BTreeMap::new(),
            cfg,
        });
        self.net.add_node();
        self.trace.mix(b"add ").mix_u64(i as u64).mix_u64(self.now);
        self.drain(i);
        Ok(i)
    }

    /// Runs `f` on node `i` now, then carries out what it asked for.
    pub fn command<T>(&mut self, i: usize, f: impl FnOnce(&mut C, Instant) -> T) -> T {
        let now = self.instant();
        let out = f(&mut self.nodes[i].m, now);
        self.drain(i);
        out
    }

    /// Crashes node `i`: it stops at once, silently; what is in flight to
    /// it is lost.
    pub fn crash(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.up = false;
        n.gen += 1;
        n.scheduled = None;
        n.m.shutdown();
        self.net.set_down(i, true);
        self.trace
            .mix(&[b'C', 0, 0, 0])
            .mix_u64(i as u64)
            .mix_u64(self.now);
    }

    /// Restarts node `i` as a new process (empty state, incarnation 1)
    /// that joins through `seeds`; starts a standby node.
    ///
    /// # Errors
    /// The node's configuration is invalid.
    pub fn restart(&mut self, i: usize, seeds: &[usize]) -> Result<(), SimError> {
        let gen = self.nodes[i].gen + 1;
        let now = self.instant();
        let mut m = C::create(self.node_config(i), self.node_seed(i, gen), now)?;
        m.set_wall_clock(now, self.wall_ms());
        let n = &mut self.nodes[i];
        n.m = m;
        n.up = true;
        n.gen = gen;
        n.scheduled = None;
        n.failed.clear();
        self.net.set_down(i, false);
        let seeds: Vec<SocketAddr> = seeds.iter().map(|s| addr_of(*s)).collect();
        self.nodes[i]
            .m
            .with_membership(now, |m, now| m.join(&seeds, now));
        self.trace
            .mix(&[b'R', 0, 0, 0])
            .mix_u64(i as u64)
            .mix_u64(self.now);
        self.drain(i);
        Ok(())
    }

    /// Cuts the cluster into groups: nodes talk only within their group.
    pub fn partition(&mut self, group_of: impl Fn(usize) -> u32) {
        for i in 0..self.nodes.len() {
            self.net.set_group(i, group_of(i));
        }
        self.trace.mix(b"part").mix_u64(self.now);
    }

    /// Isolates node `i` from every other node.
    pub fn isolate(&mut self, i: usize) {
        self.net.set_group(i, u32::MAX - i as u32);
        self.trace.mix(b"isol").mix_u64(i as u64).mix_u64(self.now);
    }

    /// Cuts the link between `a` and `b`, both ways.
    pub fn cut(&mut self, a: usize, b: usize) {
        self.net.cut(a, b);
        self.trace
            .mix(b"cut ")
            .mix_u64(a as u64)
            .mix_u64(b as u64)
            .mix_u64(self.now);
    }

    /// Removes every cut and partition (crashed nodes stay crashed).
    pub fn heal(&mut self) {
        self.net.heal();
        self.trace.mix(b"heal").mix_u64(self.now);
    }

    /// Changes the link model from now on.
    pub fn set_link(&mut self, link: LinkModel) {
        self.net.link = link;
    }

    // ----- running ----------------------------------------------------------

    /// Runs until virtual time `until` (events at exactly `until` included).
    pub fn run_until(&mut self, until: Duration) {
        let end = until.as_nanos().min(u64::MAX as u128) as u64;
        while self.queue.peek().is_some_and(|it| it.at <= end) {
            let Some(item) = self.queue.pop() else {
                break;
            };
            self.now = self.now.max(item.at);
            self.step(item.ev);
        }
        self.now = self.now.max(end);
    }

    /// Runs for `d` more virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now() + d;
        self.run_until(until);
    }

    /// Runs what is due now without advancing virtual time: on an
    /// [`LinkModel::instant`] link, every exchange a command started
    /// (packets, their answers, streams) completes.
    pub fn settle(&mut self) {
        self.run_until(self.now());
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Item {
            at,
            seq: self.seq,
            ev,
        });
    }

    fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_nanos() as u64
    }

    fn step(&mut self, ev: Ev) {
        let now = self.instant();
        match ev {
            Ev::Timer { node, gen } => {
                let i = node as usize;
                let n = &mut self.nodes[i];
                if !n.up || n.gen != gen || n.scheduled != Some(self.now) {
                    return;
                }
                n.scheduled = None;
                self.trace.mix(b"T").mix_u64(self.now).mix_u64(i as u64);
                n.m.handle_timeout(now);
                self.drain(i);
            }
            Ev::Packet { from, to, data } => {
                let (f, t) = (from as usize, to as usize);
                if self.net.blocked(f, t) {
                    self.traffic.blocked += 1;
                    return;
                }
                self.trace
                    .mix(b"P")
                    .mix_u64(self.now)
                    .mix_u64(t as u64)
                    .mix(&data);
                self.nodes[t].m.handle_packet(addr_of(f), &data, now);
                self.drain(t);
            }
            Ev::Reconnect => self.reconnect(),
            Ev::StreamOpen {
                from,
                gen,
                to,
                id,
                data,
                expect_reply,
                deadline,
            } => self.stream_open(from, gen, to, id, data, expect_reply, deadline),
            Ev::StreamDone {
                node,
                gen,
                peer,
                id,
                outcome,
            } => {
                let i = node as usize;
                if !self.nodes[i].up || self.nodes[i].gen != gen {
                    return;
                }
                let result: StreamResult = match outcome {
                    Err(e) => Err(e),
                    Ok(None) => Ok(None),
                    Ok(Some(_)) if self.net.blocked(i, peer as usize) => {
                        Err("read: connection timed out".into())
                    }
                    Ok(Some(bytes)) => match self.nodes[i]
                        .m
                        .membership()
                        .decode_stream_frame(&bytes, false)
                    {
                        Ok(Some((msg, _))) => Ok(Some(msg)),
                        Ok(None) => Err("EOF: truncated reply".into()),
                        Err(e) => Err(e.to_string()),
                    },
                };
                self.trace
                    .mix(b"D")
                    .mix_u64(self.now)
                    .mix_u64(i as u64)
                    .mix_u64(id)
                    .mix(&[u8::from(result.is_ok())]);
                self.nodes[i].m.handle_stream_result(id, result, now);
                self.drain(i);
            }
        }
    }

    fn reconnect(&mut self) {
        let now = self.instant();
        self.trace.mix(b"reco").mix_u64(self.now);
        for i in 0..self.nodes.len() {
            if !self.nodes[i].up {
                continue;
            }
            let dead: Vec<SocketAddr> = self.nodes[i].failed.values().copied().collect();
            if dead.is_empty() {
                continue;
            }
            let pick = dead[self.rng.random_range(0..dead.len())];
            self.nodes[i]
                .m
                .with_membership(now, |m, now| m.join(&[pick], now));
            self.drain(i);
        }
        if let Some(every) = self.cfg.reconnect {
            self.push(self.now + every.as_nanos() as u64, Ev::Reconnect);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn stream_open(
        &mut self,
        from: u32,
        gen: u32,
        to: u32,
        id: StreamId,
        data: Vec<u8>,
        expect_reply: bool,
        deadline: u64,
    ) {
        let (f, t) = (from as usize, to as usize);
        let done = |outcome| Ev::StreamDone {
            node: from,
            gen,
            peer: to,
            id,
            outcome,
        };
        if self.net.blocked(f, t) {
            // No SYN-ACK: the dial hangs until the deadline.
            let at = deadline.max(self.now);
            self.push(
                at,
                done(Err(format!("dial tcp {}: i/o timeout", addr_of(t)))),
            );
            return;
        }
        let now = self.instant();
        self.trace
            .mix(b"S")
            .mix_u64(self.now)
            .mix_u64(t as u64)
            .mix_u64(data.len() as u64);
        // The target answers what it read, or the error reply to what it
        // could not read (none: it hangs up, and the opener reads EOF).
        let reply = match self.nodes[t]
            .m
            .membership()
            .decode_stream_frame(&data, true)
        {
            Ok(Some((msg, _))) => Ok(self.nodes[t].m.handle_stream(addr_of(f), msg, now)),
            Ok(None) => Err("EOF: truncated stream".to_string()),
            Err(e) => Ok(self.nodes[t].m.handle_stream_error(addr_of(f), &e, now)),
        };
        let outcome = match (reply, expect_reply) {
            (Err(e), _) => Err(e),
            (Ok(Some(bytes)), true) => {
                self.traffic.tcp_bytes += bytes.len() as u64;
                Ok(Some(bytes))
            }
            (Ok(_), _) => Ok(None),
        };
        self.drain(t);
        let back = self.tcp_delay();
        let at = self.now + back;
        if at > deadline {
            let at = deadline.max(self.now);
            self.push(at, done(Err("read: i/o timeout".into())));
        } else {
            self.push(at, done(outcome));
        }
    }

    /// One way over TCP: the link's latency plus a retransmission timeout
    /// (200 ms, doubling) for each lost segment, at most five.
    fn tcp_delay(&mut self) -> u64 {
        let mut d = self.net.latency(&mut self.rng);
        let mut rto = 200_000_000u64;
        for _ in 0..5 {
            if !self.net.lose(&mut self.rng) {
                break;
            }
            d += rto;
            rto *= 2;
        }
        d
    }

    /// Carries out node `i`'s outputs and requeues its timer.
    fn drain(&mut self, i: usize) {
        while let Some(out) = self.nodes[i].m.poll_output() {
            match out {
                Output::Packet { to, data } => {
                    self.traffic.packets += 1;
                    self.traffic.udp_bytes += data.len() as u64;
                    let Some(t) = index_of(to, self.nodes.len()) else {
                        continue;
                    };
                    if self.net.lose(&mut self.rng) {
                        self.traffic.lost += 1;
                        continue;
                    }
                    let at = self.now + self.net.latency(&mut self.rng);
                    self.push(
                        at,
                        Ev::Packet {
                            from: i as u32,
                            to: t as u32,
                            data,
                        },
                    );
                }
                Output::Stream(req) => {
                    self.traffic.streams += 1;
                    self.traffic.tcp_bytes += req.data.len() as u64;
                    let deadline = self.nanos(req.deadline);
                    let gen = self.nodes[i].gen;
                    let Some(t) = index_of(req.to, self.nodes.len()) else {
                        let ev = Ev::StreamDone {
                            node: i as u32,
                            gen,
                            peer: i as u32,
                            id: req.id,
                            outcome: Err(format!("dial tcp {}: connection refused", req.to)),
                        };
                        self.push(self.now, ev);
                        continue;
                    };
                    let at = self.now + self.tcp_delay();
                    let ev = Ev::StreamOpen {
                        from: i as u32,
                        gen,
                        to: t as u32,
                        id: req.id,
                        data: req.data,
                        expect_reply: req.expect_reply,
                        deadline,
                    };
                    if at > deadline {
                        let ev = Ev::StreamDone {
                            node: i as u32,
                            gen,
                            peer: t as u32,
                            id: req.id,
                            outcome: Err("dial: i/o timeout".into()),
                        };
                        self.push(deadline.max(self.now), ev);
                    } else {
                        self.push(at, ev);
                    }
                }
                Output::Event(e) => {
                    if self.cfg.reconnect.is_some() {
                        let failed = &mut self.nodes[i].failed;
                        match &e {
                            Event::Leave(m) if m.status == NodeStatus::Dead => {
                                failed.insert(m.name.clone(), m.addr);
                            }
                            Event::Leave(m) | Event::Join(m) | Event::Update(m) => {
                                failed.remove(&m.name);
                            }
                            _ => {}
                        }
                    }
                    self.trace
                        .mix(b"E")
                        .mix_u64(self.now)
                        .mix_u64(i as u64)
                        .mix(event_kind(&e).as_bytes());
                    self.events.push((self.now(), i, e));
                }
                Output::Watch(w) => {
                    self.trace
                        .mix(b"W")
                        .mix_u64(self.now)
                        .mix_u64(i as u64)
                        .mix(w.key.as_bytes());
                    self.watch.push((self.now(), i, w));
                }
                // Infos are read from the nodes; only the trace sees changes.
                Output::Info(e) => {
                    self.trace
                        .mix(b"I")
                        .mix_u64(self.now)
                        .mix_u64(i as u64)
                        .mix(e.info.key.as_bytes());
                }
            }
        }
        let n = &mut self.nodes[i];
        if !n.up {
            return;
        }
        // A later timer than the one queued needs nothing: the queued entry
        // fires, finds nothing due, and requeues the node then.
        if let Some(t) = n.m.poll_timeout() {
            let at = (t.saturating_duration_since(self.base).as_nanos() as u64).max(self.now);
            if n.scheduled.is_none_or(|s| at < s) {
                n.scheduled = Some(at);
                let gen = n.gen;
                self.push(
                    at,
                    Ev::Timer {
                        node: i as u32,
                        gen,
                    },
                );
            }
        }
    }
}

impl Sim<Node> {
    /// Node `i`'s tables.
    pub fn tables(&self, i: usize) -> &Tables {
        self.nodes[i].m.tables()
    }

    /// Node `i`'s infos.
    pub fn infos(&self, i: usize) -> &crate::infos::Infos {
        self.nodes[i].m.infos()
    }

    /// Runs `f` on node `i`'s infos now, then carries out what they asked
    /// for.
    pub fn with_infos<T>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut crate::infos::Infos, Instant) -> T,
    ) -> T {
        self.command(i, |n, now| n.with_infos(now, f))
    }

    /// Runs `f` on node `i`'s tables now, then carries out what they
    /// asked for.
    pub fn with_tables<T>(&mut self, i: usize, f: impl FnOnce(&mut Tables, Instant) -> T) -> T {
        self.command(i, |n, now| n.with_tables(now, f))
    }
}

/// A stable short name of an event's kind, for the trace.
fn event_kind(e: &Event) -> String {
    match e {
        Event::Join(m) => format!("join {}", m.name),
        Event::Leave(m) => format!("leave {} {}", m.name, m.status.as_str()),
        Event::Update(m) => format!("update {}", m.name),
        Event::UserMessage(d) => format!("user {}", d.len()),
        Event::RemoteState { data, .. } => format!("state {}", data.len()),
        Event::Conflict { other, .. } => format!("conflict {}", other.name),
        Event::JoinFinished { contacted, .. } => format!("joined {contacted}"),
        Event::LeaveFinished { broadcast_sent } => format!("left {broadcast_sent}"),
        other => format!("{:?}", std::mem::discriminant(other)),
    }
}

/// Cases for a property test: `PROPTEST_CASES` when set (a longer run),
/// else `default`.
#[cfg(test)]
fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[cfg(test)]
mod infos_tests;
#[cfg(test)]
mod reach_tests;
#[cfg(test)]
mod sentinel_tests;
#[cfg(test)]
mod tables_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod waves_tests;
