//! A deterministic simulator for [`Replica`]: several merchant members on a seeded virtual
//! network and clock, with message loss, duplication, reordering and delay, members that
//! crash (possibly between a vote's persist and its send) and restart from their disk,
//! and either a member that equivocates or a member restored from an older copy of its
//! disk (a backup), which must recover its own chain from its peers before it produces. No threads, no sockets, no wall clock: a seed and the
//! commit reproduce a run exactly.
//!
//! The members run the whole domain ([`workload`]): payments, refunds, invoices that
//! issue and that fail, retries, fee failures and the operator's deposits that re-issue
//! them, red-letter reversals, corrected invoices and the verifier's claims, so every
//! witness re-derives every kind of derived entry.
//!
//! After every handled input it checks ([`check`]) that no two certificates exist for
//! one (chain, height), that every member's certified blocks agree, and that every
//! honest member holding a block holds the same entries (derived ones included) and the
//! same state root for it; after the faults stop it checks that every honest member
//! converges to the same heads, state roots and state records, with every honest block
//! certified and the equivocator's chain frozen everywhere it was seen.

mod check;
mod ledger;
mod reconfigure;
mod workload;

pub use ledger::{MemChain, MemLedger};
pub use workload::WorkloadCounts;

use crate::replica::{Config, Fatal, Input, Output, Replica};
use fapiao_core::event::{InvoiceType, MerchantPolicy};
use fapiao_core::genesis::{Role, Roles};
use fapiao_core::tax::{self, RateRule};
use fapiao_core::{
    Block, BlockHash, Certificate, Entry, Equivocation, Fen, Genesis, Hash32, Member, MemberCode, SecretKey, TaxRate,
    Timestamp,
};
use std::collections::BTreeMap;

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
    /// Merchant members that witness (at least 4 when `equivocate` is set).
    pub members: usize,
    /// Merchant members that do not witness: they produce their chain, validate nothing
    /// else, and must never hold another member's block (the confidentiality rule is
    /// checked after every step).
    pub merchants_only: usize,
    /// How long faults (loss, duplication, delay, crashes) and block production last.
    pub fault_ms: u64,
    /// How long after the faults the members have to converge.
    pub settle_ms: u64,
    /// Chance that a message is lost, in percent.
    pub loss_percent: u64,
    /// Chance that a message is delivered twice, in percent.
    pub duplicate_percent: u64,
    /// Largest delivery delay (random delays reorder messages).
    pub delay_ms_max: u64,
    /// Most crashes in a run: the seed draws 1 to this many (0: none), each of any
    /// member (the equivocator too, one member possibly twice) at any time during the
    /// faults; each restarts from its disk 200 to 1500 ms later.
    pub crashes_max: u64,
    /// One member, chosen by the seed, signs two blocks at some heights and sends the
    /// second to one honest peer.
    pub equivocate: bool,
    /// The operator's node produces the admin chain, which makes one configuration change
    /// during the faults (a witness removed, the quorum raised, or a key rotated).
    pub reconfigure: bool,
    /// One honest member, chosen by the seed, is backed up (a copy of its disk) at some
    /// time during the faults and, at a later time, stopped and started on that copy.
    /// Not with `equivocate`: a restored witness may vote again at heights whose votes the
    /// backup lost, so with an equivocator too the run would hold two faulty members of
    /// four, beyond what a quorum of three tolerates.
    pub restore: bool,
    /// Mean time between a member's blocks.
    pub block_interval_ms: u64,
    /// Most input events in one block (the workload draws 1 to this many).
    pub block_events_max: u64,
}

impl SimConfig {
    /// The standard run for `seed`: 4 witnesses (and, for odd seeds, one merchant that
    /// is not a witness), every fault on.
    pub fn standard(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            members: 4,
            merchants_only: (seed % 2) as usize,
            fault_ms: 4_000,
            settle_ms: 60_000,
            loss_percent: 10,
            duplicate_percent: 5,
            delay_ms_max: 200,
            crashes_max: 2,
            equivocate: seed % 3 != 2,
            restore: seed % 3 == 2,
            reconfigure: true,
            block_interval_ms: 400,
            block_events_max: 6,
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
    /// Messages a receiver's transport refused: their sender is no member of the newest
    /// configuration the receiver knows.
    pub refused: u64,
    /// Blocks produced by honest members.
    pub honest_blocks: u64,
    /// Conflicting blocks the equivocator sent.
    pub equivocations: u64,
    /// Certificates formed, over all members.
    pub certificates: u64,
    /// Crashes.
    pub crashes: u64,
    /// Of those, of the equivocating member.
    pub equivocator_crashes: u64,
    /// Members started on an older copy of their disk.
    pub restores: u64,
    /// Blocks of its own chain a restored member's backup lacked (which it must recover
    /// from its peers, where they reached one).
    pub recovered_blocks: u64,
    /// Heights a restored member signed again because the block it had signed there
    /// reached no reachable member (lost in flight before the member stopped).
    pub resigned_unseen: u64,
    /// Configuration changes the admin proposed (one per run at most).
    pub reconfigurations: u64,
    /// Of those, chain resets under a successor key.
    pub resets: u64,
    /// Runs whose reset chain had its next block certified, by the reset's committee,
    /// before the run ended.
    pub resets_resumed: u64,
    /// Virtual time at which every honest member had converged.
    pub converged_at_ms: u64,
    /// What the honest chains hold, as every honest member re-derived it.
    pub workload: WorkloadCounts,
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

#[derive(Debug, Clone)]
enum Msg {
    Header(fapiao_core::Header),
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
    /// An answer, with the range it answers (as the node's transport pairs an answer
    /// with its request).
    Certificates {
        chain: MemberCode,
        range: (u64, u64),
        certificates: Vec<Certificate>,
    },
    /// An answer, with the first height it answers.
    Blocks {
        chain: MemberCode,
        lo: u64,
        blocks: Vec<(Block, Option<Certificate>)>,
    },
}

/// One merchant member: its node (replica and disk) and its clients (workload).
struct Node {
    code: MemberCode,
    key: SecretKey,
    disk: MemLedger,
    replica: Option<Replica>,
    next_block_ms: u64,
    next_tick_ms: u64,
    workload: workload::Workload,
    /// Per chain, the height up to which this member's stored blocks were compared with
    /// every other honest member's ([`check`]).
    checked: BTreeMap<MemberCode, u64>,
    /// Whether the replica holds production ([`Output::HoldProduction`]).
    held: bool,
    /// The heights each peer's last heads answer claimed per chain, as the node keeps
    /// them for [`crate::sync::check_blocks`]: (peer, chain) → height. Lost at a crash.
    peer_heights: BTreeMap<(MemberCode, MemberCode), u64>,
}

/// The restore fault: `member`'s disk is copied at `backup_at` and it is started on the
/// copy at `restore_at`.
struct Restore {
    member: usize,
    backup_at: u64,
    restore_at: u64,
    backup: Option<MemLedger>,
}

/// A block as the first honest member to store it holds it, for comparison with every
/// later holder.
struct Held {
    hash: BlockHash,
    entries: Vec<Entry>,
    root: Hash32,
    holder: MemberCode,
}

/// The whole simulated network.
struct World {
    cfg: SimConfig,
    config: Config,
    rng: Rng,
    now: u64,
    step: u64,
    seq: u64,
    members: Vec<Node>,
    /// The operator member's key (signs fee deposits and policy; runs no node).
    operator: SecretKey,
    /// The verifier member's key (signs claims; runs no node).
    verifier: SecretKey,
    equivocator: Option<usize>,
    /// (deliver at, sequence) → (to, from, message).
    queue: BTreeMap<(u64, u64), (usize, usize, Msg)>,
    /// Every certificate any member formed or accepted: (chain, height) → block.
    certified: BTreeMap<(MemberCode, u64), BlockHash>,
    /// Every block an honest member stored, by (chain, height): one per distinct block.
    held: BTreeMap<(MemberCode, u64), Vec<Held>>,
    /// Crashes still to happen: (at, member), by time.
    crashes: Vec<(u64, usize)>,
    /// Restarts due: (at, member).
    restarts: Vec<(u64, usize)>,
    restore: Option<Restore>,
    /// Every block an honest member signed for its own chain: (chain, height) → block.
    signed: BTreeMap<(MemberCode, u64), BlockHash>,
    /// The operator's node, which produces the admin chain.
    admin: Option<usize>,
    /// The run's configuration change.
    change: Option<reconfigure::Change>,
    /// A member the change removed: its node keeps running, its chain is closed, and the
    /// end-of-run liveness checks leave it out.
    left: Option<usize>,
    /// A member stopped for its key rotation, until it comes back under the new key.
    paused: Option<usize>,
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

/// Runs one simulation and turns a panic inside it (a broken assertion in the replica,
/// the domain or the simulator) into a failure naming the seed.
pub fn run_caught(cfg: SimConfig) -> Result<SimReport, SimFailure> {
    match std::panic::catch_unwind(|| run(cfg)) {
        Ok(r) => r,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic without a message".into());
            Err(SimFailure {
                seed: cfg.seed,
                at_ms: 0,
                step: 0,
                message: format!("panicked: {message}"),
            })
        }
    }
}

fn member_key(seed: u64, i: usize) -> SecretKey {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8] = i as u8 + 1;
    SecretKey::from_seed(&s)
}

fn merchant(i: usize, witness: bool, key: &SecretKey, fee_balance: Fen, policy: MerchantPolicy) -> Member {
    Member {
        code: MemberCode::new(110_001 + i as u32).unwrap_or_else(|| unreachable!()),
        name: format!("Merchant {}", i + 1),
        roles: if witness {
            Roles::of(&[Role::Witness, Role::Merchant])
        } else {
            Roles::of(&[Role::Merchant])
        },
        key: key.public(),
        addresses: vec![],
        initial_fee_balance: fee_balance,
        tax_id: None,
        policy: Some(policy),
    }
}

/// A genesis of `n` merchants that witness, with keys derived from `seed` (what replica
/// tests use).
pub fn genesis(seed: u64, n: usize) -> (Genesis, Vec<SecretKey>) {
    genesis_of(seed, &vec![true; n])
}

/// A genesis of one merchant per entry of `witness` (whether it witnesses), in code
/// order, with keys derived from `seed`.
pub fn genesis_of(seed: u64, witness: &[bool]) -> (Genesis, Vec<SecretKey>) {
    let keys: Vec<SecretKey> = (0..witness.len()).map(|i| member_key(seed, i)).collect();
    let policy = MerchantPolicy {
        permitted_types: vec![InvoiceType::Normal],
        max_invoice_total: Fen::from_fen(100_000_000),
        rates: vec![RateRule::always(TaxRate::Bp(600))],
    };
    let members = keys
        .iter()
        .enumerate()
        .map(|(i, k)| merchant(i, witness[i], k, Fen::from_fen(1_000), policy.clone()))
        .collect();
    let g = Genesis::new(
        "sim".into(),
        Timestamp(0),
        None,
        Fen::from_fen(10),
        tax::sample_classifications(),
        members,
    )
    .unwrap_or_else(|e| panic!("simulator genesis is valid: {e}"));
    (g, keys)
}

/// The simulated consortium: `n` merchants (the witnesses), an operator and a verifier.
pub struct Consortium {
    /// The genesis.
    pub genesis: Genesis,
    /// The merchants' member keys, in member code order.
    pub merchants: Vec<SecretKey>,
    /// The operator member's key.
    pub operator: SecretKey,
    /// The verifier member's key.
    pub verifier: SecretKey,
}

/// Fee per issued invoice in the simulated consortium.
pub const SIM_FEE_FEN: i64 = 10;
/// A simulated merchant's opening fee balance: four invoices, so fee failures and the
/// deposits that re-issue them come early in every run.
pub const SIM_OPENING_FEE_FEN: i64 = 4 * SIM_FEE_FEN;

/// The simulated operator's member code (it owns the admin chain).
pub const OPERATOR_CODE: u32 = 900_001;

/// The simulator's consortium for `seed`: `n` merchants that witness and then `m` that
/// do not, with a small fee balance and a policy up to the amount bound, the operator
/// (code 900001) and a verifier (800001), which sign events but run no node and do not
/// attest; the usual Chinese VAT rates.
pub fn consortium(seed: u64, n: usize, m: usize) -> Consortium {
    let merchants: Vec<SecretKey> = (0..n + m).map(|i| member_key(seed, i)).collect();
    let operator = member_key(seed, 200);
    let verifier = member_key(seed, 201);
    let mut members: Vec<Member> = merchants
        .iter()
        .enumerate()
        .map(|(i, k)| {
            merchant(
                i,
                i < n,
                k,
                Fen::from_fen(SIM_OPENING_FEE_FEN),
                workload::default_policy(),
            )
        })
        .collect();
    for (code, name, roles, key) in [
        (900_001, "Operator", &[Role::Operator][..], &operator),
        (800_001, "Tax Office", &[Role::Verifier, Role::TaxOffice][..], &verifier),
    ] {
        members.push(Member {
            code: MemberCode::new(code).unwrap_or_else(|| unreachable!()),
            name: name.into(),
            roles: Roles::of(roles),
            key: key.public(),
            addresses: vec![],
            initial_fee_balance: Fen::ZERO,
            tax_id: None,
            policy: None,
        });
    }
    let genesis = Genesis::new(
        "sim".into(),
        Timestamp(0),
        None,
        Fen::from_fen(SIM_FEE_FEN),
        tax::sample_classifications(),
        members,
    )
    .unwrap_or_else(|e| panic!("simulator genesis is valid: {e}"));
    Consortium {
        genesis,
        merchants,
        operator,
        verifier,
    }
}

impl World {
    // Long: the simulated world's members, faults and schedule, set up from one seed.
    fn new(cfg: SimConfig) -> World {
        assert!(cfg.members >= 1 && (!cfg.equivocate || cfg.members >= 4));
        assert!(cfg.block_events_max >= 1);
        let Consortium {
            genesis,
            merchants,
            operator,
            verifier,
        } = consortium(cfg.seed, cfg.members, cfg.merchants_only);
        // The operator owns the admin chain and runs its node, last.
        let admin_code = MemberCode::new(OPERATOR_CODE).unwrap_or_else(|| unreachable!());
        let genesis = genesis
            .with_admin(Some(admin_code))
            .unwrap_or_else(|e| panic!("the operator may own the admin chain: {e}"));
        let mut rng = Rng::new(cfg.seed);
        let mut members: Vec<Node> = merchants
            .into_iter()
            .enumerate()
            .map(|(i, key)| {
                let code = genesis.config().members()[i].code;
                let disk = MemLedger::new(genesis.clone());
                Node {
                    code,
                    key,
                    disk,
                    replica: None,
                    next_block_ms: rng.range(1, cfg.block_interval_ms),
                    next_tick_ms: rng.range(1, 100),
                    workload: workload::Workload::new(Rng::new(rng.next_u64())),
                    checked: BTreeMap::new(),
                    held: true,
                    peer_heights: BTreeMap::new(),
                }
            })
            .collect();
        members.push(Node {
            code: admin_code,
            key: operator.clone(),
            disk: MemLedger::new(genesis.clone()),
            replica: None,
            // It produces only the run's configuration change.
            next_block_ms: u64::MAX,
            next_tick_ms: rng.range(1, 100),
            workload: workload::Workload::new(Rng::new(rng.next_u64())),
            checked: BTreeMap::new(),
            held: true,
            peer_heights: BTreeMap::new(),
        });
        let admin = Some(members.len() - 1);
        let n = (cfg.members + cfg.merchants_only) as u64;
        let mut crashes = Vec::new();
        if cfg.crashes_max > 0 {
            for _ in 0..rng.range(1, cfg.crashes_max) {
                let at = rng.range(cfg.fault_ms / 8, cfg.fault_ms * 7 / 8);
                crashes.push((at, rng.range(0, n - 1) as usize));
            }
            crashes.sort();
        }
        let equivocator = cfg.equivocate.then(|| rng.range(0, n - 1) as usize);
        let restore = (cfg.restore && !cfg.equivocate).then(|| {
            let backup_at = rng.range(cfg.fault_ms / 8, cfg.fault_ms / 3);
            let earliest = backup_at + 2 * cfg.block_interval_ms;
            Restore {
                member: rng.range(0, n - 1) as usize,
                backup_at,
                restore_at: rng.range(earliest, earliest.max(cfg.fault_ms * 7 / 8)),
                backup: None,
            }
        });
        let avoid: Vec<usize> = equivocator
            .into_iter()
            .chain(restore.as_ref().map(|r| r.member))
            .collect();
        let change = cfg
            .reconfigure
            .then(|| reconfigure::Change::draw(&mut rng, cfg.fault_ms, cfg.members, &avoid, restore.is_some()))
            .flatten();
        let mut w = World {
            cfg,
            config: Config::default(),
            rng,
            now: 0,
            step: 0,
            seq: 0,
            members,
            operator,
            verifier,
            equivocator,
            queue: BTreeMap::new(),
            certified: BTreeMap::new(),
            held: BTreeMap::new(),
            crashes,
            restarts: Vec::new(),
            restore,
            signed: BTreeMap::new(),
            admin,
            change,
            left: None,
            paused: None,
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

    fn up(&self, i: usize) -> bool {
        self.members[i].replica.is_some()
    }

    /// Starts (or restarts) member `i` from its disk and connects it to every live peer.
    fn start(&mut self, i: usize) {
        if self.paused == Some(i) {
            return; // stopped for its key rotation: it comes back under the new key
        }
        let m = &mut self.members[i];
        let genesis = m.disk.genesis.clone();
        // As the node's start does: what certified resets set aside leaves the disk first.
        let epochs = match crate::disk::epochs(&m.disk, &genesis) {
            Ok((epochs, _, _)) => epochs,
            Err(e) => match e {},
        };
        let due = match crate::disk::set_aside_due(&m.disk, &epochs) {
            Ok(due) => due,
            Err(e) => match e {},
        };
        for (chain, height, _) in due {
            m.disk.set_aside(&epochs, chain, height);
        }
        let persisted = m.disk.persisted();
        if epochs.latest().member(m.code).is_none_or(|x| x.key != m.key.public()) {
            // A member its own disk says was removed stays down, as the node refuses to
            // start with a key that is no member of the newest epoch it knows.
            return;
        }
        m.peer_heights.clear();
        let replica = Replica::new(self.config, genesis, m.code, m.key.clone(), persisted);
        // Held from the start exactly when the replica holds it (it has a chain and
        // another witness may hold blocks of it).
        let latest = replica.epochs().latest();
        m.held = latest.chain_owner(m.code).is_some() && latest.with_role(Role::Witness).any(|w| w.code != m.code);
        m.replica = Some(replica);
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
        if Some(i) == self.equivocator {
            self.report.equivocator_crashes += 1;
        }
        // Messages in flight to a crashed member are lost with its connections, and so
        // are its sync requests and answers in flight (they travel on those connections;
        // gossip it sent may still be relayed).
        self.queue.retain(|_, (to, from, msg)| {
            let sync = matches!(
                msg,
                Msg::HeadsRequest
                    | Msg::Heads(_)
                    | Msg::BlocksRequest { .. }
                    | Msg::Blocks { .. }
                    | Msg::CertificatesRequest { .. }
                    | Msg::Certificates { .. }
            );
            *to != i && !(*from == i && sync)
        });
        let gone = self.members[i].code;
        for j in 0..self.members.len() {
            if j != i && self.up(j) {
                // As the node does on a disconnection: its claims go with it.
                self.members[j].peer_heights.retain(|(p, _), _| *p != gone);
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

    /// Whether member `i` is due to crash now (it is up and handling an input).
    fn crash_due(&mut self, i: usize) -> bool {
        if !self.faulty() {
            return false;
        }
        match self.crashes.iter().position(|(t, m)| *m == i && *t <= self.now) {
            Some(k) => {
                self.crashes.remove(k);
                true
            }
            None => false,
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
        let crash_now = self.crash_due(i);
        let cut = if crash_now {
            self.rng.range(0, outputs.len() as u64) as usize
        } else {
            outputs.len()
        };
        for o in outputs.into_iter().take(cut) {
            self.perform(i, o);
        }
        if crash_now {
            self.restarts.push((self.now + self.rng.range(200, 1_500), i));
            self.crash(i);
        }
        self.check_held(i);
    }

    // Long: one arm per replica output, each what the node's host does with it.
    fn perform(&mut self, i: usize, o: Output) {
        let code = self.members[i].code;
        match o {
            Output::AnnounceHeader(h) => self.broadcast(i, Msg::Header(h)),
            Output::SendBlock { peer, block } => {
                let to = self.index(peer);
                self.send(i, to, Msg::Block(block), false);
            }
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
            Output::HoldProduction { .. } => self.members[i].held = true,
            Output::ReleaseProduction { .. } => self.members[i].held = false,
            // The simulated network connects every member of every epoch.
            Output::EpochStarted(_) => {}
            // What the node's host does: set aside another member's chain (its own at its
            // next start), and the superseded evidence no longer freezes anything.
            Output::ChainReset {
                chain,
                height,
                set_aside,
                certified_voided,
                ..
            } => self.chain_reset(i, chain, height, set_aside, certified_voided),
        }
    }

    /// What the node's host does for [`Output::ChainReset`] on member `i`: another
    /// member's chain is set aside above `height` (its own at its next start), and
    /// superseded evidence no longer freezes anything. A reset that voids a certified
    /// height is a violation: the simulated admin names the certified head.
    fn chain_reset(&mut self, i: usize, chain: MemberCode, height: u64, set_aside: bool, voided: u64) {
        let code = self.members[i].code;
        if voided > 0 {
            self.violation(format!(
                "member {code}: the reset of chain {chain} at {height} voided {voided} certified heights"
            ));
        }
        let Some(epochs) = self.members[i].replica.as_ref().map(|r| r.epochs().clone()) else {
            return;
        };
        let disk = &mut self.members[i].disk;
        if set_aside && chain != code {
            disk.set_aside(&epochs, chain, height);
        }
        if disk.evidence.get(&chain).is_some_and(|ev| epochs.superseded(ev)) {
            disk.evidence.remove(&chain);
        }
    }

    /// The newest configuration member `i` knows (genesis's while it is down).
    fn latest_config(&self, i: usize) -> fapiao_core::Config {
        match &self.members[i].replica {
            Some(r) => r.epochs().latest().clone(),
            None => self.members[i].disk.genesis.config().clone(),
        }
    }

    /// The restore fault's two moments: the backup (a copy of the disk), then the stop
    /// and the start on the copy.
    fn restore_due(&mut self) {
        let Some(r) = &mut self.restore else { return };
        let i = r.member;
        if r.backup.is_none() && r.backup_at <= self.now {
            r.backup = Some(self.members[i].disk.clone());
        }
        if r.restore_at > self.now {
            return;
        }
        let Some(backup) = self.restore.take().and_then(|r| r.backup) else {
            return;
        };
        self.report.restores += 1;
        let own = |d: &MemLedger| {
            d.chains
                .get(&self.members[i].code)
                .map_or(0, |c| c.blocks().len() as u64)
        };
        self.report.recovered_blocks += own(&self.members[i].disk).saturating_sub(own(&backup));
        if self.up(i) {
            self.crash(i);
            self.report.crashes -= 1;
            self.restarts.push((self.now + self.rng.range(200, 1_500), i));
        }
        // A member already down restarts on the copy when its restart is due.
        let m = &mut self.members[i];
        m.disk = backup;
        m.checked.clear();
    }

    fn index(&self, code: MemberCode) -> usize {
        self.members
            .iter()
            .position(|m| m.code == code)
            .unwrap_or_else(|| unreachable!("outputs name members"))
    }

    // Long: one arm per message kind, as the node's transport dispatches them.
    fn deliver(&mut self, to: usize, from: usize, msg: Msg) {
        let from_code = self.members[from].code;
        if self.up(to) && self.latest_config(to).member(from_code).is_none() {
            // The node's transport admits only members of the newest configuration it
            // knows: a removed member's messages go nowhere.
            self.report.refused += 1;
            return;
        }
        self.report.delivered += 1;
        match msg {
            Msg::Header(header) => self.input(
                to,
                Input::Header {
                    from: from_code,
                    header,
                },
            ),
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
            Msg::Heads(heads) => {
                // The node's check of an answer; an honest peer's always passes.
                if let Err(e) = crate::sync::check_heads(&heads) {
                    self.violation(format!("heads from {from_code}: {e}"));
                    return;
                }
                for h in &heads {
                    self.members[to].peer_heights.insert((from_code, h.chain), h.height);
                }
                self.input(to, Input::Heads { from: from_code, heads })
            }
            Msg::BlocksRequest {
                chain,
                from: lo,
                to: hi,
            } => {
                let latest = self.latest_config(to);
                let d = &self.members[to].disk;
                // The node's rule, with no frame limit: the simulated network has none.
                let answer =
                    crate::sync::answer_blocks(d, &latest, &self.config, from_code, (chain, lo, hi), usize::MAX);
                let Some(blocks) = answer.unwrap_or_else(|e| match e {}) else {
                    // The node's responder refuses too (PROTOCOL.md, "Confidentiality").
                    self.violation(format!(
                        "member {from_code} asked for chain {chain}, which it may not read"
                    ));
                    return;
                };
                self.send(to, from, Msg::Blocks { chain, lo, blocks }, false);
            }
            Msg::CertificatesRequest {
                chain,
                from: lo,
                to: hi,
            } => {
                let d = &self.members[to].disk;
                let certificates =
                    crate::sync::answer_certificates(d, &self.config, (chain, lo, hi)).unwrap_or_else(|e| match e {});
                self.send(
                    to,
                    from,
                    Msg::Certificates {
                        chain,
                        range: (lo, hi),
                        certificates,
                    },
                    false,
                );
            }
            Msg::Certificates {
                chain,
                range,
                certificates,
            } => {
                if let Err(e) = crate::sync::check_certificates(chain, range, &certificates) {
                    self.violation(format!("certificates from {from_code}: {e}"));
                    return;
                }
                self.input(
                    to,
                    Input::Certificates {
                        from: from_code,
                        chain,
                        certificates,
                    },
                )
            }
            Msg::Blocks { chain, lo, blocks } => {
                let claimed = self.members[to].peer_heights.get(&(from_code, chain)).copied();
                if let Err(e) = crate::sync::check_blocks(chain, lo, &blocks, claimed) {
                    self.violation(format!("blocks from {from_code}: {e}"));
                    return;
                }
                self.input(
                    to,
                    Input::Blocks {
                        from: from_code,
                        chain,
                        blocks,
                    },
                )
            }
        }
    }

    /// The next block's input events from member `i`'s clients, who read its own chain.
    fn workload_events(&mut self, i: usize, n: usize) -> Vec<fapiao_core::Event> {
        let m = &mut self.members[i];
        let empty = MemChain::default();
        let chain = m.disk.chains.get(&m.code).unwrap_or(&empty);
        let who = workload::Signers {
            network: m.disk.genesis.network_id(),
            chain: m.code,
            owner: &m.key,
            operator: &self.operator,
            verifier: &self.verifier,
            codes: m.disk.genesis.classifications(),
        };
        m.workload.events(&who, chain, self.now, n)
    }

    /// Member `i` builds, stores and announces its next block (the equivocator sometimes
    /// also signs a second block at the same height and sends it to one honest peer).
    // Long: one member's block, built as the node's producer builds it, step by step.
    fn produce(&mut self, i: usize) {
        let genesis = self.members[i].disk.genesis.clone();
        let code = self.members[i].code;
        if self.members[i].disk.evidence.contains_key(&code) || self.members[i].held {
            return;
        }
        let n = self.rng.range(1, self.cfg.block_events_max) as usize;
        let events = self.workload_events(i, n);
        let built = self.build(i, &genesis, &events);
        let accepted = built.as_ref().map_or(0, |b| {
            b.block.entries.iter().filter(|e| matches!(e, Entry::Event(_))).count()
        });
        let rejected = (events.len() - accepted) as u64;
        let Some(built) = built else { return };
        let height = built.block.header.body.height;
        if Some(i) == self.equivocator && height % EQUIVOCATE_EVERY == 2 {
            let other = {
                let m = &mut self.members[i];
                let who = workload::Signers {
                    network: genesis.network_id(),
                    chain: m.code,
                    owner: &m.key,
                    operator: &self.operator,
                    verifier: &self.verifier,
                    codes: genesis.classifications(),
                };
                vec![m.workload.payment(&who, self.now)]
            };
            let targets: Vec<usize> = (0..self.members.len())
                .filter(|t| Some(*t) != self.equivocator && self.up(*t))
                .collect();
            if let (Some(twin), false) = (self.build(i, &genesis, &other), targets.is_empty()) {
                let to = targets[self.rng.range(0, targets.len() as u64 - 1) as usize];
                self.report.equivocations += 1;
                // Its header, gossiped to one member: the block that member then fetches
                // from the equivocator is the other one.
                self.send(i, to, Msg::Header(twin.block.header), true);
            }
        }
        if Some(i) != self.equivocator {
            let hash = built.block.header.hash();
            if let Some(other) = self.signed.insert((code, height), hash).filter(|h| *h != hash) {
                // The rule: never sign a height at which a reachable member holds a block
                // of ours. A block the member signed that reached nobody (lost in flight
                // before it crashed) is beyond what any member can know; it is counted.
                let holder = (0..self.members.len()).find(|&j| {
                    j != i
                        && self.up(j)
                        && self.members[j]
                            .disk
                            .chains
                            .get(&code)
                            .and_then(|c| c.blocks.get(height as usize - 1))
                            .is_some_and(|b| b.header.hash() == other)
                });
                match holder {
                    Some(j) => self.violation(format!(
                        "member {code} signed a second block at height {height} of its own chain ({other}, then \
                         {hash}) while member {} holds the first",
                        self.members[j].code
                    )),
                    None => self.report.resigned_unseen += 1,
                }
            }
        }
        let m = &mut self.members[i];
        let block = m.disk.chains.entry(code).or_default().store_own(built);
        m.disk.votes.insert((code, height), block.header.hash());
        m.workload.observe(&block);
        if Some(i) != self.equivocator {
            self.report.honest_blocks += 1;
            self.report.workload.rejected += rejected;
        }
        self.input(i, Input::OwnBlock(block));
    }

    /// Executes `events` on top of member `i`'s own head and signs the header.
    fn build(&self, i: usize, genesis: &Genesis, events: &[fapiao_core::Event]) -> Option<ledger::Built> {
        let m = &self.members[i];
        let empty = MemChain::default();
        let c = m.disk.chains.get(&m.code).unwrap_or(&empty);
        // The producer makes its block in the newest epoch its replica knows.
        let config = match &m.replica {
            Some(r) => r.epochs().latest().clone(),
            None => genesis.config().clone(),
        };
        c.execute_next(genesis, &config, m.code, &m.key, Timestamp(self.now), events)
    }

    fn run(&mut self) -> Result<(), SimFailure> {
        let end = self.cfg.fault_ms + self.cfg.settle_ms;
        while self.now <= end {
            // The next thing to happen: a delivery, a tick, a block or a restart.
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
            for (t, _) in &self.restarts {
                next = next.min(*t);
            }
            if next > end {
                break;
            }
            self.now = next;
            let due: Vec<usize> = self
                .restarts
                .iter()
                .filter(|(t, _)| *t <= self.now)
                .map(|(_, i)| *i)
                .collect();
            self.restarts.retain(|(t, _)| *t > self.now);
            self.restore_due();
            for i in due {
                self.start(i);
            }
            self.reconfigure_due();
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
                return self.finish();
            }
        }
        self.converged()
            .map_err(|m| self.fail(format!("did not converge: {m}")))?;
        self.finish()
    }

    /// The end of a converged run: the final checks, then the report.
    fn finish(&mut self) -> Result<(), SimFailure> {
        self.report.converged_at_ms = self.now;
        self.check_final_state().map_err(|m| self.fail(m))?;
        if let Some((target, Some(kept))) = self.change.as_ref().map(|c| (c.target, c.kept)) {
            let code = self.members[target].code;
            self.report.resets_resumed += u64::from(self.certified.contains_key(&(code, kept + 1)));
        }
        for i in self.honest() {
            let m = &self.members[i];
            if let Some(c) = m.disk.chains.get(&m.code) {
                self.report.workload.add(&WorkloadCounts::of_blocks(c.blocks()));
            }
        }
        Ok(())
    }

    fn honest(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|i| Some(*i) != self.equivocator)
            .collect()
    }

    /// The honest members still in the consortium: the end-of-run liveness checks are
    /// theirs (a removed member's chain is closed, its last blocks never certified).
    fn staying(&self) -> Vec<usize> {
        self.honest().into_iter().filter(|i| Some(*i) != self.left).collect()
    }
}
