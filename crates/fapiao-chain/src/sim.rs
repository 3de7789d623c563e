//! A deterministic simulator for [`Replica`]: several members on a seeded virtual
//! network and clock, with message loss, duplication, reordering and delay, a member that
//! crashes (possibly between a vote's persist and its send) and restarts from its disk,
//! and a member that equivocates. No threads, no sockets, no wall clock: a seed and the
//! commit reproduce a run exactly.
//!
//! After every handled input it checks that no two certificates exist for one
//! (chain, height) and that every member's certified blocks agree; after the faults stop
//! it checks that every honest member converges to the same heads and state roots, with
//! every honest block certified and the equivocator's chain frozen everywhere.

use crate::replica::{Config, Fatal, Input, Ledger, Output, Persisted, Replica, StoredHead};
use crate::validate::{reexecute, Invalid};
use fapiao_core::block::entries_root;
use fapiao_core::event::{Currency, EventKind, InvoiceType, MerchantPolicy, PaymentMethod, PaymentRecorded};
use fapiao_core::genesis::Role;
use fapiao_core::smt::{self, MemNodes, Node, NodeKey, NodeStore};
use fapiao_core::{
    Block, BlockHash, Certificate, Equivocation, EventBody, Fen, Genesis, Hash32, Header, HeaderBody, Member,
    MemberCode, SecretKey, TaxRate, Timestamp,
};
use fapiao_domain::{execute_block, BlockContext, ChainContext, MemState, StateKey, StateRead, StateValue};
use std::collections::BTreeMap;
use std::convert::Infallible;

/// In-memory state reads cannot fail.
fn unreachable_read(e: crate::validate::ReadError<Infallible>) -> ! {
    match e {
        crate::validate::ReadError::State(fapiao_domain::state::ExecError::Read(e)) => match e {},
        crate::validate::ReadError::State(fapiao_domain::state::ExecError::Corrupt(k)) => {
            panic!("simulated state corrupt at {k:?}")
        }
        crate::validate::ReadError::Tree(fapiao_core::smt::TreeError::Read(e)) => match e {},
        crate::validate::ReadError::Tree(fapiao_core::smt::TreeError::Corrupt(d)) => {
            panic!("simulated tree corrupt at depth {d}")
        }
    }
}

/// SplitMix64: small, fast, and the same on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// What one simulated run does.
#[derive(Debug, Clone, Copy)]
pub struct SimConfig {
    /// The seed: with the commit, it fixes the whole run.
    pub seed: u64,
    /// Merchant members (at least 4 when `equivocate` is set).
    pub members: usize,
    /// How long faults (loss, duplication, delay, crash) and block production last.
    pub fault_ms: u64,
    /// How long after the faults the members have to converge.
    pub settle_ms: u64,
    /// Chance that a message is lost, in percent.
    pub loss_percent: u64,
    /// Chance that a message is delivered twice, in percent.
    pub duplicate_percent: u64,
    /// Largest delivery delay (random delays reorder messages).
    pub delay_ms_max: u64,
    /// Member 1 crashes once during the faults and restarts from its disk.
    pub crash: bool,
    /// The last member signs two blocks at some heights and sends the second to one peer.
    pub equivocate: bool,
    /// Mean time between a member's blocks.
    pub block_interval_ms: u64,
}

impl SimConfig {
    /// The standard run for `seed`: 4 members, every fault on.
    pub fn standard(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            members: 4,
            fault_ms: 4_000,
            settle_ms: 60_000,
            loss_percent: 10,
            duplicate_percent: 5,
            delay_ms_max: 200,
            crash: true,
            equivocate: true,
            block_interval_ms: 400,
        }
    }
}

/// What a successful run saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimReport {
    /// Inputs handled by all members.
    pub steps: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages dropped by the network.
    pub lost: u64,
    /// Blocks produced by honest members.
    pub honest_blocks: u64,
    /// Conflicting blocks the equivocator sent.
    pub equivocations: u64,
    /// Certificates formed, over all members.
    pub certificates: u64,
    /// Crashes.
    pub crashes: u64,
    /// Virtual time at which every honest member had converged.
    pub converged_at_ms: u64,
}

/// A broken invariant, with the seed that reproduces it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("simulation seed {seed} failed at {at_ms} ms (step {step}): {message}")]
pub struct SimFailure {
    /// The seed.
    pub seed: u64,
    /// Virtual time.
    pub at_ms: u64,
    /// Inputs handled so far.
    pub step: u64,
    /// What broke.
    pub message: String,
}

/// One chain in memory: its blocks, state records and state tree. The simulator's
/// members keep one per chain; tests use one to build blocks as a chain owner would.
#[derive(Default, Clone)]
pub struct MemChain {
    blocks: Vec<Block>,
    state: MemState,
    nodes: MemNodes,
}

impl StateRead for MemChain {
    type Error = Infallible;
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>, Infallible> {
        self.state.get(key)
    }
}

impl NodeStore for MemChain {
    type Error = Infallible;
    fn node(&self, at: &NodeKey) -> Result<Option<Node>, Infallible> {
        self.nodes.node(at)
    }
}

impl MemChain {
    /// The blocks, from height 1.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Executes `events` as the next block of `chain` at `timestamp` (or later, to keep
    /// time monotonic) and signs it with `key`, without storing it. `None` when every
    /// event is rejected.
    pub fn build_next(
        &self,
        genesis: &Genesis,
        chain: MemberCode,
        key: &SecretKey,
        timestamp: Timestamp,
        events: &[fapiao_core::Event],
    ) -> Option<Block> {
        let (height, parent, last) = match self.blocks.last() {
            Some(b) => (b.header.body.height + 1, b.header.hash(), b.header.body.timestamp.0),
            None => (1, BlockHash(Hash32::ZERO), 0),
        };
        let timestamp = Timestamp(timestamp.0.max(last));
        let ctx = ChainContext::new(genesis, chain)?;
        let bc = BlockContext { height, timestamp };
        let ex = match execute_block(&ctx, &bc, self, events) {
            Ok(x) => x,
            Err(e) => match e {
                fapiao_domain::state::ExecError::Read(e) => match e {},
                fapiao_domain::state::ExecError::Corrupt(k) => panic!("in-memory state corrupt at {k:?}"),
            },
        };
        if ex.entries.is_empty() {
            return None;
        }
        let (_, root) =
            fapiao_core::state::tree_update(self, &ex.writes).unwrap_or_else(|e| panic!("in-memory tree: {e}"));
        let header = HeaderBody {
            network: genesis.network_id(),
            chain,
            height,
            parent,
            timestamp,
            events_root: entries_root(&ex.entries),
            event_count: ex.entries.len() as u32,
            state_root: root,
        }
        .sign(key);
        Some(Block {
            header,
            entries: ex.entries,
        })
    }

    /// Re-executes `block` as the next block and stores it.
    pub fn apply(&mut self, genesis: &Genesis, block: &Block) -> Result<(), Invalid> {
        let done = match reexecute(genesis, block, self) {
            Ok(x) => x?,
            Err(e) => unreachable_read(e),
        };
        assert_eq!(
            block.header.body.height,
            self.blocks.len() as u64 + 1,
            "apply extends the head"
        );
        self.state.apply(done.writes);
        self.nodes.apply(done.tree);
        self.blocks.push(block.clone());
        Ok(())
    }

    /// The state root.
    pub fn root(&self) -> Hash32 {
        self.nodes
            .0
            .get(&NodeKey::on_path(0, &smt::EMPTY))
            .map(|n| n.hash())
            .unwrap_or(smt::EMPTY)
    }
}

/// A member's disk in memory (every chain, votes, certificates, evidence): the
/// simulator's [`Ledger`], and it survives a simulated crash.
#[derive(Clone)]
pub struct MemLedger {
    genesis: Genesis,
    chains: BTreeMap<MemberCode, MemChain>,
    votes: BTreeMap<(MemberCode, u64), BlockHash>,
    certs: BTreeMap<(MemberCode, u64), Certificate>,
    evidence: BTreeMap<MemberCode, Equivocation>,
}

impl Ledger for MemLedger {
    type Error = Infallible;

    fn header(&self, chain: MemberCode, height: u64) -> Result<Option<Header>, Infallible> {
        Ok(self
            .chains
            .get(&chain)
            .and_then(|c| c.blocks.get(height.wrapping_sub(1) as usize))
            .map(|b| b.header.clone()))
    }

    fn append(&mut self, block: &Block) -> Result<Result<(), Invalid>, Infallible> {
        let c = self.chains.entry(block.header.body.chain).or_default();
        if let Err(e) = c.apply(&self.genesis, block) {
            return Ok(Err(e));
        }
        // The vote goes with the block, atomically (see `Ledger::append`).
        let b = &block.header.body;
        self.votes.insert((b.chain, b.height), block.header.hash());
        Ok(Ok(()))
    }
}

impl MemLedger {
    /// An empty ledger for `genesis`.
    pub fn new(genesis: Genesis) -> MemLedger {
        MemLedger {
            genesis,
            chains: BTreeMap::new(),
            votes: BTreeMap::new(),
            certs: BTreeMap::new(),
            evidence: BTreeMap::new(),
        }
    }

    /// A chain as stored here.
    pub fn chain(&self, chain: MemberCode) -> Option<&MemChain> {
        self.chains.get(&chain)
    }

    /// What a restarting replica loads.
    pub fn persisted(&self) -> Persisted {
        let mut p = Persisted::default();
        for (chain, c) in &self.chains {
            if let Some(b) = c.blocks.last() {
                p.heads.insert(
                    *chain,
                    StoredHead {
                        height: b.header.body.height,
                        hash: b.header.hash(),
                        timestamp: b.header.body.timestamp,
                    },
                );
            }
            let mut certified = 0;
            while let Some(cert) = self.certs.get(&(*chain, certified + 1)) {
                match c.blocks.get(certified as usize) {
                    Some(b) if b.header.hash() == cert.block => certified += 1,
                    _ => break,
                }
            }
            p.certified.insert(*chain, certified);
        }
        let floor = |chain: &MemberCode| p.certified.get(chain).copied().unwrap_or(0);
        p.certificates = self
            .certs
            .iter()
            .filter(|((c, h), _)| *h > floor(c))
            .map(|(_, cert)| cert.clone())
            .collect();
        p.votes = self
            .votes
            .iter()
            .filter(|((c, h), _)| *h > floor(c))
            .map(|((c, h), b)| (*c, *h, *b))
            .collect();
        p.evidence = self.evidence.values().cloned().collect();
        p
    }
}

#[derive(Debug, Clone)]
enum Msg {
    Block(Block),
    Attestation(fapiao_core::Attestation),
    Evidence(Equivocation),
    HeadsRequest,
    Heads(Vec<crate::replica::HeadSummary>),
    BlocksRequest {
        chain: MemberCode,
        from: u64,
        to: u64,
    },
    CertificatesRequest {
        chain: MemberCode,
        from: u64,
        to: u64,
    },
    Certificates {
        chain: MemberCode,
        certificates: Vec<Certificate>,
    },
    Blocks {
        chain: MemberCode,
        blocks: Vec<(Block, Option<Certificate>)>,
    },
}

struct Member_ {
    code: MemberCode,
    key: SecretKey,
    disk: MemLedger,
    replica: Option<Replica>,
    next_block_ms: u64,
    next_tick_ms: u64,
    payments: u64,
}

/// The whole simulated network.
struct World {
    cfg: SimConfig,
    config: Config,
    rng: Rng,
    now: u64,
    step: u64,
    seq: u64,
    members: Vec<Member_>,
    /// (deliver at, sequence) → (to, from, message).
    queue: BTreeMap<(u64, u64), (usize, usize, Msg)>,
    /// Every certificate any member formed or accepted: (chain, height) → block.
    certified: BTreeMap<(MemberCode, u64), BlockHash>,
    crash_at: Option<u64>,
    restart_at: Option<u64>,
    report: SimReport,
    /// The first broken invariant.
    failure: Option<SimFailure>,
}

const EQUIVOCATE_EVERY: u64 = 4;

/// Runs one simulation; `Err` names the seed and the broken invariant.
pub fn run(cfg: SimConfig) -> Result<SimReport, SimFailure> {
    let mut w = World::new(cfg);
    w.run()?;
    Ok(w.report)
}

fn member_key(seed: u64, i: usize) -> SecretKey {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8] = i as u8 + 1;
    SecretKey::from_seed(&s)
}

/// A genesis of `n` merchants with keys derived from `seed`.
pub fn genesis(seed: u64, n: usize) -> (Genesis, Vec<SecretKey>) {
    let keys: Vec<SecretKey> = (0..n).map(|i| member_key(seed, i)).collect();
    let members = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Member {
            code: MemberCode::new(110_001 + i as u32).unwrap_or_else(|| unreachable!()),
            name: format!("Merchant {}", i + 1),
            role: Role::Merchant,
            key: k.public(),
            addresses: vec![],
            initial_fee_balance: Fen::from_fen(1_000),
            policy: Some(MerchantPolicy {
                permitted_types: vec![InvoiceType::Normal],
                max_invoice_total: Fen::from_fen(100_000_000),
            }),
        })
        .collect();
    let g = Genesis::new(
        "sim".into(),
        Timestamp(0),
        None,
        Fen::from_fen(10),
        vec![TaxRate(0), TaxRate(600), TaxRate(1300)],
        members,
    )
    .unwrap_or_else(|e| panic!("simulator genesis is valid: {e}"));
    (g, keys)
}

impl World {
    fn new(cfg: SimConfig) -> World {
        assert!(cfg.members >= 1 && (!cfg.equivocate || cfg.members >= 4));
        let (genesis, keys) = genesis(cfg.seed, cfg.members);
        let mut rng = Rng::new(cfg.seed);
        let members = keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| {
                let code = genesis.members()[i].code;
                let disk = MemLedger::new(genesis.clone());
                Member_ {
                    code,
                    key,
                    disk,
                    replica: None,
                    next_block_ms: rng.range(1, cfg.block_interval_ms),
                    next_tick_ms: rng.range(1, 100),
                    payments: 0,
                }
            })
            .collect();
        let crash_at = cfg.crash.then(|| rng.range(cfg.fault_ms / 4, cfg.fault_ms * 3 / 4));
        let mut w = World {
            cfg,
            config: Config::default(),
            rng,
            now: 0,
            step: 0,
            seq: 0,
            members,
            queue: BTreeMap::new(),
            certified: BTreeMap::new(),
            crash_at,
            restart_at: None,
            report: SimReport::default(),
            failure: None,
        };
        for i in 0..w.members.len() {
            w.start(i);
        }
        w
    }

    fn fail(&self, message: String) -> SimFailure {
        SimFailure {
            seed: self.cfg.seed,
            at_ms: self.now,
            step: self.step,
            message,
        }
    }

    fn violation(&mut self, message: String) {
        if self.failure.is_none() {
            self.failure = Some(self.fail(message));
        }
    }

    fn faulty(&self) -> bool {
        self.now < self.cfg.fault_ms
    }

    fn equivocator(&self) -> Option<usize> {
        self.cfg.equivocate.then(|| self.members.len() - 1)
    }

    fn up(&self, i: usize) -> bool {
        self.members[i].replica.is_some()
    }

    /// Starts (or restarts) member `i` from its disk and connects it to every live peer.
    fn start(&mut self, i: usize) {
        let m = &mut self.members[i];
        let genesis = m.disk.genesis.clone();
        m.replica = Some(Replica::new(
            self.config,
            genesis,
            m.code,
            m.key.clone(),
            m.disk.persisted(),
        ));
        let codes: Vec<(usize, MemberCode)> = self.members.iter().enumerate().map(|(j, m)| (j, m.code)).collect();
        for (j, code) in codes {
            if j != i && self.up(j) {
                let me = self.members[i].code;
                self.input(i, Input::PeerConnected(code));
                self.input(j, Input::PeerConnected(me));
            }
        }
    }

    fn crash(&mut self, i: usize) {
        self.members[i].replica = None;
        self.report.crashes += 1;
        // Messages in flight to a crashed member are lost with its connections.
        self.queue.retain(|_, (to, _, _)| *to != i);
        let gone = self.members[i].code;
        for j in 0..self.members.len() {
            if j != i && self.up(j) {
                self.input(j, Input::PeerGone(gone));
            }
        }
    }

    fn send(&mut self, from: usize, to: usize, msg: Msg, reliable: bool) {
        if !self.up(to) || !self.up(from) {
            return;
        }
        let faulty = self.faulty() && !reliable;
        if faulty && self.rng.chance(self.cfg.loss_percent) {
            self.report.lost += 1;
            return;
        }
        let copies = if faulty && self.rng.chance(self.cfg.duplicate_percent) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = if faulty {
                self.rng.range(1, self.cfg.delay_ms_max)
            } else {
                self.rng.range(1, 20)
            };
            self.seq += 1;
            self.queue.insert((self.now + delay, self.seq), (to, from, msg.clone()));
        }
    }

    fn broadcast(&mut self, from: usize, msg: Msg) {
        for to in 0..self.members.len() {
            if to != from {
                self.send(from, to, msg.clone(), false);
            }
        }
    }

    /// Hands `input` to member `i` and performs its outputs, checking invariants.
    fn input(&mut self, i: usize, input: Input) {
        let now = Timestamp(self.now);
        if !self.up(i) {
            return;
        }
        self.step += 1;
        self.report.steps += 1;
        let m = &mut self.members[i];
        let Some(replica) = m.replica.as_mut() else {
            return;
        };
        match replica.handle(now, input, &mut m.disk) {
            Ok(_verdict) => {}
            Err(Fatal(e)) => panic!("in-memory ledger cannot fail: {e}"),
        }
        let mut outputs = Vec::new();
        while let Some(o) = m.replica.as_mut().and_then(Replica::poll_output) {
            outputs.push(o);
        }
        // A crash can land between any two outputs: the ones after it never happen.
        let crash_now = self.crash_at.is_some_and(|t| self.now >= t) && i == 1 && self.up(1);
        let cut = if crash_now {
            self.rng.range(0, outputs.len() as u64) as usize
        } else {
            outputs.len()
        };
        for o in outputs.into_iter().take(cut) {
            self.perform(i, o);
        }
        if crash_now {
            self.crash_at = None;
            self.restart_at = Some(self.now + self.rng.range(200, 1_500));
            self.crash(1);
        }
    }

    fn perform(&mut self, i: usize, o: Output) {
        let code = self.members[i].code;
        match o {
            Output::BroadcastBlock(b) => self.broadcast(i, Msg::Block(b)),
            Output::BroadcastAttestation(a) => self.broadcast(i, Msg::Attestation(a)),
            Output::BroadcastEvidence(e) => self.broadcast(i, Msg::Evidence(e)),
            Output::RequestHeads { peer } => {
                let to = self.index(peer);
                self.send(i, to, Msg::HeadsRequest, false);
            }
            Output::RequestBlocks { peer, chain, from, to } => {
                let t = self.index(peer);
                self.send(i, t, Msg::BlocksRequest { chain, from, to }, false);
            }
            Output::RequestCertificates { peer, chain, from, to } => {
                let t = self.index(peer);
                self.send(i, t, Msg::CertificatesRequest { chain, from, to }, false);
            }
            Output::PersistVote { chain, height, block } => {
                let prev = self.members[i].disk.votes.insert((chain, height), block);
                if prev.is_some_and(|p| p != block) {
                    self.violation(format!("member {code} voted for two blocks at ({chain}, {height})"));
                }
            }
            Output::PersistCertificate(cert) => {
                self.report.certificates += 1;
                let key = (cert.chain, cert.height);
                match self.certified.get(&key).copied() {
                    Some(b) if b != cert.block => self.violation(format!(
                        "two certificates for chain {} height {}: {} and {}",
                        cert.chain, cert.height, b, cert.block
                    )),
                    _ => {
                        self.certified.insert(key, cert.block);
                    }
                }
                self.members[i].disk.certs.insert(key, cert);
            }
            Output::BlockCertified { chain, height, block } => {
                let stored = self.members[i]
                    .disk
                    .chains
                    .get(&chain)
                    .and_then(|c| c.blocks.get(height as usize - 1))
                    .map(|b| b.header.hash());
                if stored != Some(block) || self.certified.get(&(chain, height)) != Some(&block) {
                    self.violation(format!(
                        "member {code} reports ({chain}, {height}) certified as {block} but stores {stored:?}"
                    ));
                }
            }
            Output::EvidenceFound(ev) => {
                self.members[i].disk.evidence.insert(ev.first.body.chain, ev);
            }
        }
    }

    fn index(&self, code: MemberCode) -> usize {
        self.members
            .iter()
            .position(|m| m.code == code)
            .unwrap_or_else(|| unreachable!("outputs name members"))
    }

    fn deliver(&mut self, to: usize, from: usize, msg: Msg) {
        self.report.delivered += 1;
        let from_code = self.members[from].code;
        match msg {
            Msg::Block(block) => self.input(to, Input::Block { from: from_code, block }),
            Msg::Attestation(attestation) => self.input(
                to,
                Input::Attestation {
                    from: from_code,
                    attestation,
                },
            ),
            Msg::Evidence(evidence) => self.input(
                to,
                Input::Evidence {
                    from: from_code,
                    evidence,
                },
            ),
            Msg::HeadsRequest => {
                if let Some(r) = &self.members[to].replica {
                    let heads = r.heads();
                    self.send(to, from, Msg::Heads(heads), false);
                }
            }
            Msg::Heads(heads) => self.input(to, Input::Heads { from: from_code, heads }),
            Msg::BlocksRequest {
                chain,
                from: lo,
                to: hi,
            } => {
                let d = &self.members[to].disk;
                let hi = hi.min(lo.saturating_add(self.config.sync_blocks_max - 1));
                let blocks: Vec<(Block, Option<Certificate>)> = (lo..=hi)
                    .map_while(|h| {
                        let b = d.chains.get(&chain)?.blocks.get(h.checked_sub(1)? as usize)?.clone();
                        let cert = d.certs.get(&(chain, h)).filter(|c| c.block == b.header.hash()).cloned();
                        Some((b, cert))
                    })
                    .collect();
                self.send(to, from, Msg::Blocks { chain, blocks }, false);
            }
            Msg::CertificatesRequest {
                chain,
                from: lo,
                to: hi,
            } => {
                let d = &self.members[to].disk;
                let hi = hi.min(lo.saturating_add(self.config.sync_certificates_max - 1));
                let certificates: Vec<Certificate> = d
                    .certs
                    .range((chain, lo)..=(chain, hi))
                    .map(|(_, c)| c.clone())
                    .collect();
                self.send(to, from, Msg::Certificates { chain, certificates }, false);
            }
            Msg::Certificates { chain, certificates } => self.input(
                to,
                Input::Certificates {
                    from: from_code,
                    chain,
                    certificates,
                },
            ),
            Msg::Blocks { chain, blocks } => self.input(
                to,
                Input::Blocks {
                    from: from_code,
                    chain,
                    blocks,
                },
            ),
        }
    }

    /// Member `i` builds, stores and announces its next block (the equivocator sometimes
    /// also signs a second block at the same height and sends it to one peer).
    fn produce(&mut self, i: usize) {
        let genesis = self.members[i].disk.genesis.clone();
        let code = self.members[i].code;
        if self.members[i].disk.evidence.contains_key(&code) {
            return;
        }
        let n = 1 + self.rng.range(0, 2) as usize;
        let events = self.payments(i, n);
        let block = self.build(i, &genesis, &events);
        let Some(block) = block else { return };
        let height = block.header.body.height;
        if Some(i) == self.equivocator() && height % EQUIVOCATE_EVERY == 2 {
            let other = self.payments(i, 1);
            if let Some(twin) = self.build(i, &genesis, &other) {
                // Sent to one honest member that never crashes, so that it surely arrives.
                let targets: Vec<usize> = self
                    .honest()
                    .into_iter()
                    .filter(|t| !(self.cfg.crash && *t == 1))
                    .collect();
                let to = targets[self.rng.range(0, targets.len() as u64 - 1) as usize];
                self.report.equivocations += 1;
                self.send(i, to, Msg::Block(twin), true);
            }
        }
        let m = &mut self.members[i];
        let c = m.disk.chains.entry(code).or_default();
        if let Err(e) = c.apply(&genesis, &block) {
            panic!("own block must re-execute: {e}");
        }
        m.disk.votes.insert((code, height), block.header.hash());
        if Some(i) != self.equivocator() {
            self.report.honest_blocks += 1;
        }
        self.input(i, Input::OwnBlock(block));
    }

    fn payments(&mut self, i: usize, n: usize) -> Vec<fapiao_core::Event> {
        let network = self.members[i].disk.genesis.network_id();
        let m = &mut self.members[i];
        (0..n)
            .map(|_| {
                m.payments += 1;
                let amount = Fen::from_fen(100 + (m.payments as i64 * 37) % 10_000);
                EventBody {
                    network,
                    chain: m.code,
                    author: m.key.public(),
                    timestamp: Timestamp(self.now),
                    kind: EventKind::PaymentRecorded(PaymentRecorded {
                        payment_id: format!("p-{}-{}", self.cfg.seed, m.payments),
                        amount,
                        currency: Currency::Cny,
                        method: PaymentMethod::Card,
                        terminal_id: "pos-1".into(),
                        external_ref: format!("x{}", m.payments),
                    }),
                }
                .sign(&m.key)
            })
            .collect()
    }

    /// Executes `events` on top of member `i`'s own head and signs the header.
    fn build(&self, i: usize, genesis: &Genesis, events: &[fapiao_core::Event]) -> Option<Block> {
        let m = &self.members[i];
        let empty = MemChain::default();
        let c = m.disk.chains.get(&m.code).unwrap_or(&empty);
        c.build_next(genesis, m.code, &m.key, Timestamp(self.now), events)
    }

    fn run(&mut self) -> Result<(), SimFailure> {
        let end = self.cfg.fault_ms + self.cfg.settle_ms;
        while self.now <= end {
            // The next thing to happen: a delivery, a tick, a block, a crash or restart.
            let mut next = end + 1;
            if let Some(((t, _), _)) = self.queue.first_key_value() {
                next = next.min(*t);
            }
            for (i, m) in self.members.iter().enumerate() {
                if self.up(i) {
                    next = next.min(m.next_tick_ms);
                    if m.next_block_ms < self.cfg.fault_ms {
                        next = next.min(m.next_block_ms);
                    }
                }
            }
            if let Some(t) = self.restart_at {
                next = next.min(t);
            }
            if next > end {
                break;
            }
            self.now = next;
            if self.restart_at.is_some_and(|t| t <= self.now) {
                self.restart_at = None;
                self.start(1);
            }
            while let Some(entry) = self.queue.first_entry() {
                if entry.key().0 > self.now {
                    break;
                }
                let (to, from, msg) = entry.remove();
                self.deliver(to, from, msg);
            }
            for i in 0..self.members.len() {
                if !self.up(i) {
                    continue;
                }
                if self.members[i].next_block_ms <= self.now && self.now < self.cfg.fault_ms {
                    self.members[i].next_block_ms = self.now + self.rng.range(1, 2 * self.cfg.block_interval_ms);
                    self.produce(i);
                }
                if self.up(i) && self.members[i].next_tick_ms <= self.now {
                    self.members[i].next_tick_ms = self.now + 100;
                    self.input(i, Input::Tick);
                }
            }
            if let Some(f) = self.failure.take() {
                return Err(f);
            }
            self.check_certified_agree()?;
            if self.now > self.cfg.fault_ms && self.now % 500 < 100 && self.converged().is_ok() {
                self.report.converged_at_ms = self.now;
                return Ok(());
            }
        }
        self.converged()
            .map_err(|m| self.fail(format!("did not converge: {m}")))?;
        self.report.converged_at_ms = self.now;
        Ok(())
    }

    /// Every member's certified blocks are the globally certified ones.
    fn check_certified_agree(&self) -> Result<(), SimFailure> {
        for m in &self.members {
            for ((chain, height), cert) in &m.disk.certs {
                if self.certified.get(&(*chain, *height)) != Some(&cert.block) {
                    return Err(self.fail(format!("member {} holds a certificate nobody else agrees on", m.code)));
                }
            }
        }
        Ok(())
    }

    fn honest(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|i| Some(*i) != self.equivocator())
            .collect()
    }

    /// Honest members agree on every honest chain's head and state root, and every block
    /// of those chains is certified everywhere; the equivocator's chain is frozen at every
    /// honest member that saw the equivocation.
    fn converged(&self) -> Result<(), String> {
        let honest = self.honest();
        for &i in &honest {
            if !self.up(i) {
                return Err(format!("member {} is down", self.members[i].code));
            }
        }
        for &c in &honest {
            let chain = self.members[c].code;
            let own = self.members[c]
                .disk
                .chains
                .get(&chain)
                .map(|x| (x.blocks.len(), x.root()));
            for &i in &honest {
                let m = &self.members[i];
                let theirs = m.disk.chains.get(&chain).map(|x| (x.blocks.len(), x.root()));
                if theirs != own {
                    return Err(format!(
                        "member {} has chain {chain} at {theirs:?}, owner at {own:?}",
                        m.code
                    ));
                }
                let len = own.map_or(0, |o| o.0 as u64);
                let replica = m.replica.as_ref().ok_or("down")?;
                let certified = replica
                    .heads()
                    .iter()
                    .find(|h| h.chain == chain)
                    .map_or(0, |h| h.certified);
                if certified != len {
                    return Err(format!(
                        "member {} has chain {chain} certified to {certified} of {len}",
                        m.code
                    ));
                }
            }
        }
        if let Some(e) = self.equivocator() {
            if self.report.equivocations > 0 {
                let chain = self.members[e].code;
                for &i in &honest {
                    if !self.members[i].disk.evidence.contains_key(&chain) {
                        return Err(format!(
                            "member {} has no evidence against {chain}",
                            self.members[i].code
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
