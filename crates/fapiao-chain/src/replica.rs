//! The replication state machine of one member: it holds and validates every chain the
//! member may read (its own; every chain for a witness or a tax office), attests them
//! when the member is a witness, forms certificates, detects equivocation (from full
//! blocks, and from the headers gossiped for chains it may not read) and drives sync.
//!
//! Sans-IO: [`Replica::handle`] takes the time and one input; what must happen next comes
//! out of [`Replica::poll_output`], in order. The host performs each output before it
//! handles the next input, and it performs them in the order given: that is how "persist
//! the vote before sending the attestation" holds. The one call back into the host is
//! [`Ledger`], the chain store: reading a stored header, and appending a block after
//! re-executing it (the re-execution needs the chain's state, which the host owns).

use crate::validate::Invalid;
use fapiao_core::block::BlockError;
use fapiao_core::{
    Attestation, AttestationBody, Block, BlockHash, Certificate, Epochs, Equivocation, Genesis, Hash32, Header,
    MemberCode, NetworkId, Reconfiguration, Role, SecretKey, Timestamp,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

mod blocks;
mod certify;
mod epochs;
mod own;
mod sync;

/// Every bound of the state machine, with its unit last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// How far a block's time may be ahead of the local clock.
    pub skew_ms_max: u64,
    /// Blocks kept per chain while their parent is missing.
    pub buffer_blocks_max: usize,
    /// Their encoded bytes per chain: a member may fill its own chain's buffer with
    /// blocks it signs at heights it never reaches, so the count alone (64 blocks of up to
    /// 4 MiB) is too loose a bound on memory.
    pub buffer_bytes_max: usize,
    /// How far above a chain's local head attestations are kept.
    pub attestation_heights_max: u64,
    /// How often every connected peer is asked for its heads.
    pub sync_interval_ms: u64,
    /// After this long an unanswered block request is given up and may be re-sent.
    pub sync_timeout_ms: u64,
    /// Blocks asked for in one request (the responder may send fewer).
    pub sync_blocks_max: u64,
    /// Certificates asked for in one request.
    pub sync_certificates_max: u64,
    /// How often our attestations for uncertified blocks, and known evidence, are sent again.
    pub resend_interval_ms: u64,
    /// Uncertified heights per chain whose attestations are re-sent.
    pub resend_heights_max: u64,
    /// How long production waits at start (or while a peer's claim on our chain is
    /// checked) for a peer to show how far our own chain goes. With no answer by then,
    /// nobody reachable holds more of it.
    pub own_chain_wait_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            skew_ms_max: 30_000,
            buffer_blocks_max: 64,
            buffer_bytes_max: 16 * 1024 * 1024,
            attestation_heights_max: 256,
            sync_interval_ms: 1_000,
            sync_timeout_ms: 5_000,
            sync_blocks_max: 32,
            sync_certificates_max: 256,
            resend_interval_ms: 2_000,
            resend_heights_max: 16,
            own_chain_wait_ms: 10_000,
        }
    }
}

/// One chain as a member sees it: what a heads request answers (on the wire too, in the
/// canonical encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeadSummary {
    /// The chain.
    pub chain: MemberCode,
    /// Height of the last stored block (0: none).
    pub height: u64,
    /// Its hash (zero when none).
    pub hash: BlockHash,
    /// Every block up to here has a certificate.
    pub certified: u64,
    /// Equivocation evidence is known for this chain.
    pub frozen: bool,
}

/// A block as stored by the host, with the timestamp the next block must not go below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredHead {
    /// Height.
    pub height: u64,
    /// Block hash.
    pub hash: BlockHash,
    /// Block time.
    pub timestamp: Timestamp,
    /// The block's epoch: the epoch that certifies the chain's next block.
    pub epoch: u32,
}

impl StoredHead {
    /// The head a stored block's header makes.
    pub fn of(header: &Header) -> StoredHead {
        StoredHead {
            height: header.body.height,
            hash: header.hash(),
            timestamp: header.body.timestamp,
            epoch: header.body.epoch,
        }
    }
}

/// What a restarting member loads from its disk.
#[derive(Debug, Clone, Default)]
pub struct Persisted {
    /// Each chain's stored head.
    pub heads: BTreeMap<MemberCode, StoredHead>,
    /// Each chain's contiguous certified prefix: every height up to it is certified.
    pub certified: BTreeMap<MemberCode, u64>,
    /// Certificates stored above each chain's contiguous certified prefix.
    pub certificates: Vec<Certificate>,
    /// Our votes above the certified prefix: (chain, height, block, the epoch that
    /// certifies it, the epoch it was made in).
    pub votes: Vec<(MemberCode, u64, BlockHash, u32, u32)>,
    /// Evidence we hold; each freezes its chain.
    pub evidence: Vec<Equivocation>,
    /// The configuration changes of the admin chain's certified prefix, in order.
    pub reconfigurations: Vec<Reconfiguration>,
    /// The admin chain height up to which they were read.
    pub admin_applied: u64,
}

/// An input to the state machine.
#[derive(Debug, Clone)]
pub enum Input {
    /// A block delivered by `from` (not necessarily its author).
    Block {
        /// The member whose node delivered it.
        from: MemberCode,
        /// The block.
        block: Block,
    },
    /// A block header gossiped by `from` (not necessarily its author). Blocks themselves
    /// are not gossiped: a member that may read the chain fetches the block by sync from
    /// a peer that checks it may (PROTOCOL.md, "Confidentiality").
    Header {
        /// The member whose node delivered it.
        from: MemberCode,
        /// The header.
        header: Header,
    },
    /// An attestation gossiped by `from`.
    Attestation {
        /// The member whose node delivered it.
        from: MemberCode,
        /// The attestation.
        attestation: Attestation,
    },
    /// Equivocation evidence gossiped by `from`.
    Evidence {
        /// The member whose node delivered it.
        from: MemberCode,
        /// The evidence.
        evidence: Equivocation,
    },
    /// `from`'s answer to a heads request.
    Heads {
        /// The peer.
        from: MemberCode,
        /// Its view of every chain.
        heads: Vec<HeadSummary>,
    },
    /// `from`'s answer to a block request for `chain`, in height order.
    Blocks {
        /// The peer.
        from: MemberCode,
        /// The chain asked for.
        chain: MemberCode,
        /// Blocks with their certificates where the peer has one.
        blocks: Vec<(Block, Option<Certificate>)>,
    },
    /// `from`'s answer to a certificates request for `chain`.
    Certificates {
        /// The peer.
        from: MemberCode,
        /// The chain asked for.
        chain: MemberCode,
        /// Certificates, by increasing height.
        certificates: Vec<Certificate>,
    },
    /// The host produced, stored (with our vote) and will serve its own next block.
    OwnBlock(Block),
    /// Time passed.
    Tick,
    /// A member's node connected.
    PeerConnected(MemberCode),
    /// A member's node went away.
    PeerGone(MemberCode),
}

/// What the host must do, in order.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Gossip our own block's header to every member.
    AnnounceHeader(Header),
    /// Deliver our own block to `peer`, a connected member that may read our chain (a
    /// witness or a tax office): on the same hop as the header, so that a block we sign
    /// is held by the witnesses as soon as gossip would have carried it, which is what
    /// lets a restored member find it again (PROTOCOL.md, "Never signing a height twice").
    SendBlock {
        /// The peer.
        peer: MemberCode,
        /// The block.
        block: Block,
    },
    /// Gossip an attestation (ours).
    BroadcastAttestation(Attestation),
    /// Gossip equivocation evidence.
    BroadcastEvidence(Equivocation),
    /// Ask `peer` for its heads.
    RequestHeads {
        /// The peer.
        peer: MemberCode,
    },
    /// Ask `peer` for `chain`'s blocks `from..=to` with their certificates.
    RequestBlocks {
        /// The peer.
        peer: MemberCode,
        /// The chain.
        chain: MemberCode,
        /// First height.
        from: u64,
        /// Last height.
        to: u64,
    },
    /// Ask `peer` for `chain`'s certificates `from..=to` (we hold those blocks).
    RequestCertificates {
        /// The peer.
        peer: MemberCode,
        /// The chain.
        chain: MemberCode,
        /// First height.
        from: u64,
        /// Last height.
        to: u64,
    },
    /// Durably record that we attested `block` at (chain, height). Must complete before
    /// the attestation that follows is sent. (For a block appended through
    /// [`Ledger::append`] the vote is already stored with it; performing this again is
    /// idempotent.)
    PersistVote {
        /// The chain.
        chain: MemberCode,
        /// The height.
        height: u64,
        /// The block.
        block: BlockHash,
    },
    /// Durably store a certificate.
    PersistCertificate(Certificate),
    /// A block we hold is now final.
    BlockCertified {
        /// The chain.
        chain: MemberCode,
        /// The height.
        height: u64,
        /// The block.
        block: BlockHash,
    },
    /// New, verified evidence: store it; its chain is now frozen here.
    EvidenceFound(Equivocation),
    /// Produce no block (and, with `refuse_writes`, admit no event) until
    /// [`Output::ReleaseProduction`]: a peer may hold blocks of our own chain above our
    /// head, and producing would sign one of those heights a second time. Emitted at
    /// start, while a peer's claim is checked, while our chain is recovered from peers,
    /// and for good when a block of ours does not re-execute on our ledger.
    HoldProduction {
        /// For the log, the status and the refusal.
        reason: String,
        /// Whether admission refuses writes meanwhile.
        refuse_writes: bool,
    },
    /// Production may resume: no reachable peer holds our chain above our head.
    ReleaseProduction {
        /// For the log.
        why: String,
    },
    /// A certified configuration change started a new epoch: the host admits the new
    /// configuration's members to its transport, and its producer makes blocks in it.
    EpochStarted(fapiao_core::Config),
    /// The reset that starts `epoch` resumed `chain` after `height`. The host moves the
    /// chain's stored evidence, which no longer freezes it, to the record of superseded
    /// evidence; and with `set_aside`, it sets aside the blocks it stores above `height`
    /// (all made before `epoch`) with their certificates and our votes, rewinding the
    /// chain's state and indexes to `height`. Performed before anything that follows.
    ChainReset {
        /// The chain.
        chain: MemberCode,
        /// The last height kept.
        height: u64,
        /// The reset's epoch.
        epoch: u32,
        /// Whether stored blocks above `height` are set aside.
        set_aside: bool,
        /// Heights above `height` this member held certified, now void: the reset
        /// named a height below the chain's certified prefix (PROTOCOL.md "Chain
        /// recovery": the admin must name the prefix a witness shows). 0 normally.
        certified_voided: u64,
    },
}

/// How an input was taken.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Used.
    Accepted,
    /// Valid but of no use now (duplicate, too old, too far ahead, frozen chain).
    Ignored(&'static str),
    /// Invalid: the peer that sent it should be penalised.
    Invalid(Invalid),
}

/// The verdict on an object that failed its check: a peer is at fault, unless the
/// object names an epoch this member does not know yet (it learns it from the admin
/// chain, and the object comes back through sync).
fn refused(e: BlockError) -> Verdict {
    match e {
        BlockError::UnknownEpoch(_) => Verdict::Ignored("an epoch this member does not know yet"),
        e => Verdict::Invalid(e.into()),
    }
}

/// The chain store the state machine appends to.
pub trait Ledger {
    /// A storage failure: the host must stop.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The stored header of `chain` at `height`.
    fn header(&self, chain: MemberCode, height: u64) -> Result<Option<Header>, Self::Error>;
    /// The stored block of `chain` at `height` (the replica reads the admin chain's
    /// certified blocks for their configuration changes).
    fn block(&self, chain: MemberCode, height: u64) -> Result<Option<Block>, Self::Error>;
    /// Re-executes `block` (the chain's next block: its parent is the stored head, and
    /// its time and epoch were checked) under `config`, its epoch's configuration, and,
    /// when valid, stores it durably as the new head together with our vote for it, in
    /// one atomic write. A stored block is always a voted block, so a crash between
    /// storing and voting cannot leave a block we hold but would not count towards its
    /// certificate after a restart.
    fn append(&mut self, block: &Block, config: &fapiao_core::Config) -> Result<Result<(), Invalid>, Self::Error>;
}

/// A storage failure reported by the [`Ledger`], with the ledger's own error as its source.
#[derive(Debug, thiserror::Error)]
#[error("ledger failed: {0}")]
pub struct Fatal(#[source] pub Box<dyn std::error::Error + Send + Sync + 'static>);

#[derive(Debug, Clone, Copy)]
struct SyncInFlight {
    peer: MemberCode,
    since_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct PeerView {
    peer: MemberCode,
    height: u64,
    certified: u64,
}

/// The attestations pooled at one height: by (block, certifying epoch), then witness.
type Pooled = BTreeMap<(BlockHash, u32), BTreeMap<MemberCode, Attestation>>;

/// Our vote at one height: the block we store there, the epoch whose committee
/// certifies it, the epoch it was made in, and whether we attested it. A witness of the
/// certifying epoch attests a block once its parent is certified, and only a block its
/// chain's current owner key signed ([`Replica::attest_pending`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Vote {
    block: BlockHash,
    epoch: u32,
    made_in: u32,
    attested: bool,
}

#[derive(Debug, Default)]
struct ChainState {
    head: Option<StoredHead>,
    /// Every height `1..=certified` has a certificate for the block we store.
    certified: u64,
    /// Certificates above `certified`, by height: the certified block.
    certs: BTreeMap<u64, BlockHash>,
    /// The blocks we store above `certified` (our votes, when we are a witness).
    votes: BTreeMap<u64, Vote>,
    /// Attestations above `certified`: height → (block, epoch) → witness → attestation.
    pool: BTreeMap<u64, Pooled>,
    /// Blocks whose parent we do not have yet, with their encoded size.
    buffer: BTreeMap<u64, (Block, usize)>,
    sync: Option<SyncInFlight>,
    /// The most advanced view a peer advertised for this chain.
    best: Option<PeerView>,
    /// Valid headers gossiped above our head: their blocks are fetched until held, and a
    /// block that arrives for one of these heights with another hash is evidence.
    ahead: BTreeMap<u64, Header>,
    /// When we first saw a peer ahead, and the (certified, height) it had then. Gossip
    /// normally closes a small gap by itself, so sync starts only if we are still below
    /// that mark one heads round later.
    behind: Option<Behind>,
    frozen: Option<Equivocation>,
}

/// The chains a member holds. Every input naming a chain the member does not hold is
/// turned away before it reaches a handler (`handle`, `answered`, the `contains_key`
/// checks at each door), so inside the handlers a chain is always held: [`Chains::held`]
/// states that once instead of at every lookup.
#[derive(Debug, Default)]
struct Chains(BTreeMap<MemberCode, ChainState>);

impl std::ops::Deref for Chains {
    type Target = BTreeMap<MemberCode, ChainState>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Chains {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Chains {
    /// A chain the caller's door already checked is held.
    fn held(&self, chain: MemberCode) -> &ChainState {
        self.0
            .get(&chain)
            .unwrap_or_else(|| unreachable!("chain {chain} passed the door but is not held"))
    }

    /// As [`Chains::held`], to change it.
    fn held_mut(&mut self, chain: MemberCode) -> &mut ChainState {
        self.0
            .get_mut(&chain)
            .unwrap_or_else(|| unreachable!("chain {chain} passed the door but is not held"))
    }
}

/// The mark a peer ahead of us set: its certified height and height, and when we saw it.
#[derive(Debug, Clone, Copy)]
struct Behind {
    certified: u64,
    height: u64,
    seen_ms: u64,
}

impl ChainState {
    fn height(&self) -> u64 {
        self.head.map_or(0, |h| h.height)
    }

    /// The block we store (and voted for) at `height` above the certified prefix.
    fn voted(&self, height: u64) -> Option<BlockHash> {
        self.votes.get(&height).map(|v| v.block)
    }
}

/// What a member knows of its own chain as its peers hold it (PROTOCOL.md, "Never
/// signing a height twice after a restore").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnChain {
    /// Production held until enough peers have said how far they hold our chain (see
    /// [`Replica::own_release_if_ready`]); `since_ms` is when the wait began (the first
    /// input).
    Waiting { since_ms: Option<u64> },
    /// `peer` claims our chain above our head: its block at our next height was asked for,
    /// to check our own signature on it before believing the claim. `since_ms`: the wait's.
    Checking {
        peer: MemberCode,
        asked_ms: u64,
        since_ms: u64,
    },
    /// A peer showed a block of ours above our head: our ledger lost blocks (an older
    /// backup, an empty ledger). Blocks of our own chain are taken from sync answers like
    /// any member's until we hold every height the peers claim.
    Recovering { since_ms: u64 },
    /// Producing: nothing we know of lies above our head.
    Clear,
    /// A block of ours does not re-execute on our ledger: held until the operator repairs it.
    Behind,
}

/// A chain this member may not read: the latest headers gossiped for it, enough to see
/// its owner sign two blocks at one height.
#[derive(Debug, Default)]
struct Watched {
    headers: BTreeMap<u64, Header>,
    frozen: Option<Equivocation>,
}

/// One member's replication state machine.
pub struct Replica {
    config: Config,
    /// Every epoch's configuration known: genesis's, then each certified change.
    epochs: Epochs,
    /// The admin chain's height up to which its configuration changes are in `epochs`.
    admin_applied: u64,
    network: NetworkId,
    me: MemberCode,
    key: SecretKey,
    /// The chains this member may read and holds.
    chains: Chains,
    /// The chains it may not read: headers only.
    watched: BTreeMap<MemberCode, Watched>,
    peers: BTreeSet<MemberCode>,
    outputs: VecDeque<Output>,
    last_heads_poll_ms: u64,
    last_resend_ms: u64,
    /// Our own chain against what the peers hold of it.
    own: OwnChain,
    /// How far each connected peer last said it holds our own chain.
    own_claims: BTreeMap<MemberCode, (u64, u64)>,
    /// Only claims received from this time on count for a release: a block of ours still
    /// in flight, or parked at a peer, may land there after an earlier answer. A heads
    /// poll after the first input, and again after each block of ours taken back.
    own_fresh_from_ms: u64,
    /// Members that claimed our chain above our head and could not show the block: their
    /// claims on it are ignored from then on (an honest member never makes one while we
    /// run, so a liar must not hold our production again and again).
    own_liars: BTreeSet<MemberCode>,
    /// Chains whose certified prefix moved, or that got a new vote: the vote just above
    /// the prefix may be attested now ([`Replica::attest_pending`], after each input).
    to_attest: BTreeSet<MemberCode>,
}

impl Replica {
    /// A replica for member `me` (whose key is `key`), restored from what its host
    /// persisted. `me` must be a member of the newest configuration persisted, and `key`
    /// its key there.
    // Long: the replica's fields, each restored from what was persisted.
    pub fn new(config: Config, genesis: Genesis, me: MemberCode, key: SecretKey, persisted: Persisted) -> Replica {
        let network = genesis.network_id();
        let mut epochs = Epochs::new(&genesis);
        for r in &persisted.reconfigurations {
            // Each was valid when its block was executed, on the same configuration.
            if epochs.apply(r).is_err() {
                break;
            }
        }
        let latest = epochs.latest();
        assert!(
            latest.member(me).is_some_and(|m| m.key == key.public()),
            "a replica runs for a member of the newest configuration with that member's key"
        );
        let mut chains: BTreeMap<MemberCode, ChainState> = epochs
            .every_chain()
            .into_iter()
            .filter(|c| latest.may_read(me, *c))
            .map(|c| (c, ChainState::default()))
            .collect();
        let mut watched: BTreeMap<MemberCode, Watched> = epochs
            .every_chain()
            .into_iter()
            .filter(|c| !chains.contains_key(c))
            .map(|c| (c, Watched::default()))
            .collect();
        for (chain, head) in persisted.heads {
            if let Some(c) = chains.get_mut(&chain) {
                c.head = Some(head);
            }
        }
        for (chain, certified) in persisted.certified {
            if let Some(c) = chains.get_mut(&chain) {
                c.certified = certified.min(c.height());
            }
        }
        for cert in persisted.certificates {
            if epochs.set_aside(cert.chain, cert.height, cert.epoch).is_some() {
                continue; // a set-aside block's, stored before the reset was learned
            }
            if let Some(c) = chains.get_mut(&cert.chain) {
                if cert.height > c.certified {
                    c.certs.insert(cert.height, cert.block);
                }
            }
        }
        for (chain, height, block, epoch, made_in) in persisted.votes {
            if let Some(c) = chains.get_mut(&chain) {
                if height > c.certified {
                    // Attested again (the same vote) once its parent is certified here.
                    let attested = false;
                    c.votes.insert(
                        height,
                        Vote {
                            block,
                            epoch,
                            made_in,
                            attested,
                        },
                    );
                }
            }
        }
        for ev in persisted.evidence {
            if epochs.superseded(&ev) {
                // On record, but a reset has since resumed the chain.
                continue;
            }
            let chain = ev.first.body.chain;
            if let Some(c) = chains.get_mut(&chain) {
                c.frozen.get_or_insert(ev);
            } else if let Some(w) = watched.get_mut(&chain) {
                w.frozen.get_or_insert(ev);
            }
        }
        // Only other witnesses are sure to hold our chain; with none (or no chain of our
        // own) nothing can lie above our head.
        let alone = latest.chain_owner(me).is_none() || latest.with_role(Role::Witness).all(|m| m.code == me);
        let mut outputs = VecDeque::new();
        if !alone {
            outputs.push_back(Output::HoldProduction {
                reason: "waiting for a peer to say how far this node's own chain goes".into(),
                refuse_writes: false,
            });
        }
        let to_attest = chains.keys().copied().collect();
        Replica {
            config,
            epochs,
            admin_applied: persisted.admin_applied,
            network,
            me,
            key,
            chains: Chains(chains),
            watched,
            peers: BTreeSet::new(),
            outputs,
            last_heads_poll_ms: 0,
            last_resend_ms: 0,
            own: if alone {
                OwnChain::Clear
            } else {
                OwnChain::Waiting { since_ms: None }
            },
            own_claims: BTreeMap::new(),
            own_fresh_from_ms: 0,
            own_liars: BTreeSet::new(),
            to_attest,
        }
    }

    /// The next thing the host must do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The settings it runs with (the sync responder's limits come from here).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every chain's head, certified prefix and frozen flag: the answer to a heads request.
    pub fn heads(&self) -> Vec<HeadSummary> {
        self.chains
            .iter()
            .map(|(chain, c)| HeadSummary {
                chain: *chain,
                height: c.height(),
                hash: c.head.map_or(BlockHash(Hash32::ZERO), |h| h.hash),
                certified: c.certified,
                frozen: c.frozen.is_some(),
            })
            .collect()
    }

    /// Evidence held for each frozen chain.
    pub fn evidence(&self) -> Vec<Equivocation> {
        let held = self.chains.values().filter_map(|c| c.frozen.clone());
        held.chain(self.watched.values().filter_map(|w| w.frozen.clone()))
            .collect()
    }

    /// Connected member peers.
    pub fn peers(&self) -> &BTreeSet<MemberCode> {
        &self.peers
    }

    /// Handles one input at time `now`. The outputs it causes are queued for
    /// [`Replica::poll_output`].
    pub fn handle<L: Ledger>(&mut self, now: Timestamp, input: Input, ledger: &mut L) -> Result<Verdict, Fatal> {
        let verdict = self.take(now, input, ledger)?;
        // A change certified by this input is known before anything is attested, so a
        // block signed by a key it rotates away is not attested in the same breath. Our
        // own attestations can certify an admin block in turn: learn again after them.
        self.learn_epochs(ledger).map_err(|e| Fatal(Box::new(e)))?;
        self.attest_pending();
        self.learn_epochs(ledger).map_err(|e| Fatal(Box::new(e)))?;
        Ok(verdict)
    }

    fn take<L: Ledger>(&mut self, now: Timestamp, input: Input, ledger: &mut L) -> Result<Verdict, Fatal> {
        let fatal = |e: L::Error| Fatal(Box::new(e));
        if self.own == (OwnChain::Waiting { since_ms: None }) {
            // The wait starts with the first input, not at construction (a host may build
            // the replica well before its transport runs).
            self.own = OwnChain::Waiting { since_ms: Some(now.0) };
            self.own_fresh_from_ms = now.0 + self.config.sync_interval_ms;
        }
        match input {
            Input::Block { from, block } => self.on_block(now, from, block, ledger).map_err(fatal),
            Input::Header { from, header } => self.on_header(now, from, header, ledger).map_err(fatal),
            Input::Attestation { from: _, attestation } => Ok(self.on_attestation(attestation)),
            Input::Evidence { from: _, evidence } => Ok(self.on_evidence(evidence, false)),
            Input::Heads { from, heads } => {
                self.on_heads(now, from, &heads);
                Ok(Verdict::Accepted)
            }
            Input::Blocks { from, chain, blocks } => self.on_blocks(now, from, chain, blocks, ledger).map_err(fatal),
            Input::Certificates {
                from,
                chain,
                certificates,
            } => Ok(self.on_certificates(now, from, chain, certificates)),
            Input::OwnBlock(block) => Ok(self.on_own_block(block)),
            Input::Tick => {
                self.on_tick(now);
                Ok(Verdict::Accepted)
            }
            Input::PeerConnected(peer) => {
                if peer != self.me && self.epochs.latest().member(peer).is_some() && self.peers.insert(peer) {
                    self.outputs.push_back(Output::RequestHeads { peer });
                }
                Ok(Verdict::Accepted)
            }
            Input::PeerGone(peer) => {
                self.peers.remove(&peer);
                self.own_claims.remove(&peer);
                for c in self.chains.values_mut() {
                    if c.sync.is_some_and(|s| s.peer == peer) {
                        c.sync = None;
                    }
                    if c.best.is_some_and(|v| v.peer == peer) {
                        c.best = None;
                    }
                }
                Ok(Verdict::Accepted)
            }
        }
    }

    fn on_tick(&mut self, now: Timestamp) {
        let now = now.0;
        match self.own {
            // A checked peer that does not answer loses its claim; the wait goes on.
            OwnChain::Checking {
                peer,
                asked_ms: asked,
                since_ms: since,
            } if now.saturating_sub(asked) >= self.config.sync_timeout_ms => {
                self.own_claims.remove(&peer);
                self.own = OwnChain::Waiting { since_ms: Some(since) };
                self.own_release_if_ready(now);
            }
            OwnChain::Waiting { .. } | OwnChain::Recovering { .. } => self.own_release_if_ready(now),
            _ => {}
        }
        if now.saturating_sub(self.last_heads_poll_ms) >= self.config.sync_interval_ms {
            self.last_heads_poll_ms = now;
            for peer in &self.peers {
                self.outputs.push_back(Output::RequestHeads { peer: *peer });
            }
        }
        for c in self.chains.values_mut() {
            if c.sync
                .is_some_and(|s| now.saturating_sub(s.since_ms) >= self.config.sync_timeout_ms)
            {
                c.sync = None;
            }
        }
        if now.saturating_sub(self.last_resend_ms) >= self.config.resend_interval_ms {
            self.last_resend_ms = now;
            let mut again = Vec::new();
            for (chain, c) in self.chains.iter() {
                if let Some(ev) = &c.frozen {
                    self.outputs.push_back(Output::BroadcastEvidence(ev.clone()));
                    continue;
                }
                for (height, vote) in c.votes.iter().take(self.config.resend_heights_max as usize) {
                    if c.certs.contains_key(height) || !vote.attested {
                        continue;
                    }
                    again.push(
                        AttestationBody {
                            network: self.network,
                            chain: *chain,
                            epoch: vote.epoch,
                            height: *height,
                            block: vote.block,
                            witness: self.me,
                        }
                        .sign(&self.key),
                    );
                }
            }
            self.outputs.extend(again.into_iter().map(Output::BroadcastAttestation));
            // Evidence found from headers alone (a chain this member only watches) is
            // re-sent too: it may be the only copy, and gossip loses messages.
            let watched: Vec<Equivocation> = self.watched.values().filter_map(|w| w.frozen.clone()).collect();
            self.outputs.extend(watched.into_iter().map(Output::BroadcastEvidence));
        }
    }
}
